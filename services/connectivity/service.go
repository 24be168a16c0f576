package connectivity

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/dittonode/dittonode/consensus"
	"github.com/dittonode/dittonode/ditto"
)

// Config of the connectivity service.
type Config struct {
	// MaxConnectionBytes bounds one connection definition.
	MaxConnectionBytes int `json:"maxConnectionBytes" yaml:"max-connection-bytes"`
	// Admins are the authorization subjects that may manage connections
	// over /api/2/connections (Ditto's devops role), e.g. "nginx:ditto".
	// Empty: nobody may.
	Admins []string `json:"admins" yaml:"admins"`
	// Mapping bounds payload mapping (JavaScript sandbox).
	Mapping MappingConfig `json:"mapping" yaml:"mapping"`
	// Runtime tunes the clients of running connections.
	Runtime RuntimeConfig `json:"runtime" yaml:"runtime"`
	// DeviceHashCost is the bcrypt cost of device passwords (default 10;
	// tests lower it, bcrypt under the race detector is slow).
	DeviceHashCost int `json:"deviceHashCost" yaml:"device-hash-cost"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{MaxConnectionBytes: 100 * 1024, DeviceHashCost: bcryptCost, Mapping: defaultMappingConfig(), Runtime: defaultRuntimeConfig()}
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxConnectionBytes == 0 {
		c.MaxConnectionBytes = d.MaxConnectionBytes
	}
	m := &c.Mapping
	if m.CallTimeout == 0 {
		m.CallTimeout = d.Mapping.CallTimeout
	}
	if m.CallHeapBytes == 0 {
		m.CallHeapBytes = d.Mapping.CallHeapBytes
	}
	if m.MaxAllocBytes == 0 {
		m.MaxAllocBytes = d.Mapping.MaxAllocBytes
	}
	if m.MaxScriptBytes == 0 {
		m.MaxScriptBytes = d.Mapping.MaxScriptBytes
	}
	c.Runtime = c.Runtime.withDefaults()
	return c
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.MaxConnectionBytes < 0 || c.Mapping.MaxAllocBytes < 0 || c.Mapping.CallTimeout < 0 {
		return fmt.Errorf("connectivity: negative limits")
	}
	return nil
}

// Log is the connectivity consensus group as this service uses it.
type Log interface {
	Propose(ctx context.Context, cmd []byte) (any, error)
	ReadBarrier(ctx context.Context) error
}

// Deps are the service's collaborators.
type Deps struct {
	Log    Log
	Clock  func() time.Time
	Logger *slog.Logger
	// Types are the connection types this node can run (those with a
	// client factory); default: mqtt, mqtt-5, http-push.
	Types []string
}

// Service validates, proposes and reads connection definitions.
type Service struct {
	cfg  Config
	deps Deps
	fsm  *fsm
	// verified remembers successful device password checks (devices.go).
	verified  verifiedCache
	dummyOnce sync.Once
	dummy     []byte
}

// New returns a service; it only allocates.
func New(cfg Config, deps Deps) *Service {
	cfg = cfg.withDefaults()
	if deps.Types == nil {
		deps.Types = []string{TypeMQTT, TypeMQTT5, TypeHTTPPush}
	}
	if cfg.DeviceHashCost == 0 {
		cfg.DeviceHashCost = bcryptCost
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, deps: deps, fsm: newFSM()}
}

// FSM is the state machine of the "connectivity" group.
func (s *Service) FSM() consensus.FSM { return s.fsm }

// Put creates (createOnly) or replaces (mustExist) a connection definition.
// It reports whether the connection was created.
func (s *Service) Put(ctx context.Context, def any, createOnly, mustExist bool) (*Record, bool, error) {
	c, b, err := s.Validate(def)
	if err != nil {
		return nil, false, err
	}
	cmd := encodeCommand(cmdPut, putCmd{ID: c.ID, JSON: b, Time: ditto.FormatTime(s.deps.Clock()), CreateOnly: createOnly, MustExist: mustExist})
	return s.propose(ctx, cmd)
}

// Validate checks a definition fully (model, placeholders, filters,
// mapping scripts) and returns it parsed and encoded.
func (s *Service) Validate(def any) (*Connection, []byte, error) {
	if _, ok := def.(map[string]any); !ok {
		return nil, nil, ditto.ErrConnectionInvalid.New("The connection definition must be a JSON object.")
	}
	b := ditto.EncodeJSON(def)
	if len(b) > s.cfg.MaxConnectionBytes {
		return nil, nil, ditto.ErrConnectionInvalid.New("The connection definition is larger than %d bytes.", s.cfg.MaxConnectionBytes)
	}
	c, err := ParseConnection(b, s.deps.Types)
	if err != nil {
		return nil, nil, err
	}
	return c, b, nil
}

// CanManage reports whether auth may manage connections.
func (s *Service) CanManage(auth ditto.Auth) bool {
	for _, sub := range auth.Subjects {
		if slices.Contains(s.cfg.Admins, sub) {
			return true
		}
	}
	return false
}

// Delete removes a connection definition.
func (s *Service) Delete(ctx context.Context, id string) error {
	if id == EmbeddedID {
		return ditto.ErrConnectionNotDeletable.New("The connection '%s' is the node's embedded MQTT broker and cannot be deleted.", id)
	}
	_, _, err := s.propose(ctx, encodeCommand(cmdDelete, deleteCmd{ID: id}))
	return err
}

// Retrieve returns the applied definition, after a linearizable read fence
// unless local is set.
func (s *Service) Retrieve(ctx context.Context, id string, local bool) (*Record, error) {
	if !local {
		if err := s.deps.Log.ReadBarrier(ctx); err != nil {
			return nil, err
		}
	}
	r, ok := s.fsm.lookup(id)
	if !ok {
		return nil, ditto.ErrConnectionNotFound.New("The connection with ID '%s' could not be found.", id)
	}
	return r, nil
}

// List returns every applied definition, ordered by ID.
func (s *Service) List() []*Record { return s.fsm.list() }

func (s *Service) propose(ctx context.Context, cmd []byte) (*Record, bool, error) {
	res, err := s.deps.Log.Propose(ctx, cmd)
	if err != nil {
		return nil, false, err
	}
	r, ok := res.(applyResult)
	if !ok {
		return nil, false, fmt.Errorf("connectivity: unexpected apply result %T", res)
	}
	if r.Err != nil {
		return nil, false, r.Err
	}
	return r.Record, r.Created, nil
}

package connectivity

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dittonode/dittonode/consensus"
	"github.com/dittonode/dittonode/ditto"
)

// Config of the connectivity service.
type Config struct {
	// MaxConnectionBytes bounds one connection definition.
	MaxConnectionBytes int `json:"maxConnectionBytes" yaml:"max-connection-bytes"`
	// DeviceHashCost is the bcrypt cost of device passwords (default 10;
	// tests lower it, bcrypt under the race detector is slow).
	DeviceHashCost int `json:"deviceHashCost" yaml:"device-hash-cost"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{MaxConnectionBytes: 100 * 1024, DeviceHashCost: bcryptCost}
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
	if cfg.MaxConnectionBytes == 0 {
		cfg.MaxConnectionBytes = DefaultConfig().MaxConnectionBytes
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

// Connection is a validated connection definition as stored.
type Connection = Record

// Put creates (createOnly) or replaces (mustExist) a connection definition.
// It reports whether the connection was created.
func (s *Service) Put(ctx context.Context, def any, createOnly, mustExist bool) (*Record, bool, error) {
	id, err := validate(def)
	if err != nil {
		return nil, false, err
	}
	b := ditto.EncodeJSON(def)
	if len(b) > s.cfg.MaxConnectionBytes {
		return nil, false, ditto.ErrConnectionInvalid.New("The connection definition is larger than %d bytes.", s.cfg.MaxConnectionBytes)
	}
	cmd := encodeCommand(cmdPut, putCmd{ID: id, JSON: b, Time: ditto.FormatTime(s.deps.Clock()), CreateOnly: createOnly, MustExist: mustExist})
	return s.propose(ctx, cmd)
}

// Delete removes a connection definition.
func (s *Service) Delete(ctx context.Context, id string) error {
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

// validate checks the required fields of a connection definition and
// returns its ID.
func validate(def any) (string, error) {
	m, ok := def.(map[string]any)
	if !ok {
		return "", ditto.ErrConnectionInvalid.New("The connection definition must be a JSON object.")
	}
	for _, f := range []string{"id", "connectionType", "connectionStatus", "uri"} {
		if _, ok := m[f].(string); !ok {
			return "", ditto.ErrJSONFieldMissing.New("The connection field '%s' is missing or not a string.", f)
		}
	}
	id := m["id"].(string)
	if !ditto.ValidConnectionID(id) {
		return "", ditto.ErrConnectionIDInvalid.New("Connection ID '%s' is not valid.", id)
	}
	switch m["connectionType"] {
	case "amqp-091", "amqp-10", "mqtt", "mqtt-5", "kafka", "http-push", "hono":
	default:
		return "", ditto.ErrConnectionInvalid.New("The connectionType '%v' is not supported.", m["connectionType"])
	}
	switch m["connectionStatus"] {
	case "open", "closed":
	default:
		return "", ditto.ErrConnectionInvalid.New("The connectionStatus must be 'open' or 'closed'.")
	}
	return id, nil
}

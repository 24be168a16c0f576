package things

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/dittonode/dittonode/consensus"
	"github.com/dittonode/dittonode/ditto"
)

// Log keys.
const (
	logKeyCount  = "count"
	logKeyThing  = "thing"
	logKeyPolicy = "policy"
	logKeyError  = "error"
)

// Config is the things service configuration.
type Config struct {
	// MaxThingBytes bounds the canonical JSON of a thing (Ditto: 100 kB).
	MaxThingBytes int `json:"maxThingBytes" yaml:"maxThingBytes"`
}

// DefaultConfig returns Ditto's defaults.
func DefaultConfig() Config { return Config{MaxThingBytes: 100 * 1024} }

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.MaxThingBytes < 0 {
		return errors.New("things: maxThingBytes must not be negative")
	}
	return nil
}

// Log is the "things" consensus group as the service uses it;
// consensus.Group implements it.
type Log interface {
	// Propose replicates cmd and returns the FSM's Apply result once the
	// entry was applied locally.
	Propose(ctx context.Context, cmd []byte) (any, error)
	// ReadBarrier waits until the local state machine has applied
	// everything the group committed before the call, and the policies
	// service everything its group committed before the call (things are
	// enforced with their policies, which replicate separately).
	ReadBarrier(ctx context.Context) error
}

// Policies is the policies service as the things service uses it.
type Policies interface {
	// Handle executes a policy command (create the policy of a new thing,
	// retrieve a policy for _policy and _copyPolicyFrom).
	Handle(ctx context.Context, cmd ditto.Command) (ditto.Result, error)
	// EnforcerFor returns the compiled enforcer of the applied policy, with
	// entry namespaces evaluated against entityNamespace.
	EnforcerFor(policyID, entityNamespace string) (ditto.Enforcer, bool)
	// Compensate deletes a policy created for a thing whose create failed,
	// if it is still at revision.
	Compensate(ctx context.Context, policyID string, revision int64) error
}

// Deps are the collaborators of the service.
type Deps struct {
	Log      Log
	Policies Policies
	// Bus receives one event per applied change; nil drops them.
	Bus *ditto.Bus
	// Clock stamps _created/_modified before proposing (default time.Now).
	Clock  func() time.Time
	Logger *slog.Logger
}

// Service is the things service: the thing state machine and the handling
// of thing commands.
type Service struct {
	cfg      Config
	log      Log
	policies Policies
	bus      *ditto.Bus
	clock    func() time.Time
	logger   *slog.Logger

	mu     sync.RWMutex
	things map[string]*Record // includes tombstones of deleted things
	// scratch is the apply's encoding buffer (guarded by mu).
	scratch []byte
	// stamp is the last event timestamp formatted (guarded by mu): the
	// events of one millisecond share one string, and so do the search
	// documents and index keys that keep it.
	stamp struct {
		at Millis
		s  string
	}
}

// New returns a service; it only allocates. Zero Config fields get their
// defaults.
func New(cfg Config, deps Deps) *Service {
	if cfg.MaxThingBytes == 0 {
		cfg.MaxThingBytes = DefaultConfig().MaxThingBytes
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Service{
		cfg:      cfg,
		log:      deps.Log,
		policies: deps.Policies,
		bus:      deps.Bus,
		clock:    deps.Clock,
		logger:   deps.Logger,
		things:   make(map[string]*Record),
	}
}

// FSM returns the state machine to register with the "things" group. It
// implements consensus.BatchFSM.
func (s *Service) FSM() consensus.FSM { return fsm{s: s} }

func (s *Service) publish(sig *ditto.Signal) {
	if s.bus != nil {
		s.bus.Publish(*sig)
	}
}

// Lookup returns the applied record of a thing.
func (s *Service) Lookup(id string) (Record, bool) {
	r, ok := s.lookup(id)
	if !ok {
		return Record{}, false
	}
	return *r, true
}

func (s *Service) lookup(id string) (*Record, bool) {
	s.mu.RLock()
	r := s.things[id]
	s.mu.RUnlock()
	if r == nil || r.deleted() {
		return nil, false
	}
	return r, true
}

// Range calls fn for every applied thing, in no particular order, until fn
// returns false. It iterates a capture taken at the call, so fn may call
// back into the service.
func (s *Service) Range(fn func(Record) bool) {
	s.mu.RLock()
	recs := make([]*Record, 0, len(s.things))
	for _, r := range s.things {
		if !r.deleted() {
			recs = append(recs, r)
		}
	}
	s.mu.RUnlock()
	for _, r := range recs {
		if !fn(*r) {
			return
		}
	}
}

// Len returns the number of applied things.
func (s *Service) Len() int {
	n := 0
	s.mu.RLock()
	for _, r := range s.things {
		if !r.deleted() {
			n++
		}
	}
	s.mu.RUnlock()
	return n
}

// propose replicates e and converts the Apply result.
func (s *Service) propose(ctx context.Context, e *entry) (ditto.Result, error) {
	out, err := s.log.Propose(ctx, e.encode())
	if err != nil {
		return ditto.Result{}, fmt.Errorf("propose thing command: %w", err)
	}
	switch v := out.(type) {
	case ditto.Result:
		return v, nil
	case *ditto.Error:
		return ditto.Result{}, v
	case *etagError:
		return ditto.Result{}, v
	}
	return ditto.Result{}, fmt.Errorf("things: unexpected apply result %T", out)
}

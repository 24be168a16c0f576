package policies

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Config of the policies service.
type Config struct {
	// MaxPolicyBytes bounds the encoded size of one policy (Ditto: 100 kB).
	MaxPolicyBytes int `json:"maxPolicyBytes" yaml:"max-policy-bytes"`
	// SweepInterval is how often Start's sweeper looks for expired subjects.
	SweepInterval time.Duration `json:"sweepInterval" yaml:"sweep-interval"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{MaxPolicyBytes: 100 * 1024, SweepInterval: time.Minute}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.MaxPolicyBytes < 0 {
		return errors.New("policies: negative MaxPolicyBytes")
	}
	if c.SweepInterval < 0 {
		return errors.New("policies: negative SweepInterval")
	}
	return nil
}

// Log is the consensus group as this service uses it (consensus.Group
// implements it).
type Log interface {
	// Propose replicates cmd and returns the FSM Apply result after the entry
	// was applied locally.
	Propose(ctx context.Context, cmd []byte) (any, error)
	// ReadBarrier is a linearizable read fence.
	ReadBarrier(ctx context.Context) error
}

// leaderReporter is optionally implemented by a Log; the sweeper proposes
// only on the leader when it is.
type leaderReporter interface {
	IsLeader() bool
}

// Deps are the service's collaborators.
type Deps struct {
	Log Log
	// Bus receives a signal for every applied change; may be nil.
	Bus *ditto.Bus
	// Clock stamps commands and evaluates subject expiry; default time.Now.
	Clock  func() time.Time
	Logger *slog.Logger
}

package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/dittonode/dittonode/services/connectivity"
	"github.com/dittonode/dittonode/services/gateway"
	"github.com/dittonode/dittonode/services/live"
	"github.com/dittonode/dittonode/services/policies"
	"github.com/dittonode/dittonode/services/search"
	"github.com/dittonode/dittonode/services/things"
)

// Config is everything a node needs, as plain data. cmd/dittonode builds it
// from flags, environment and a config file; tests build it directly.
type Config struct {
	// DataDir holds the node key, the Raft groups and later broker and
	// federation state.
	DataDir string
	// NodeName is a human-readable name for logs and status (default: the
	// short peer ID).
	NodeName string

	HTTP         gateway.Config
	Things       things.Config
	Policies     policies.Config
	Connectivity connectivity.Config
	Live         live.Config
	Search       search.Config
	Raft         RaftConfig

	// StartTimeout bounds how long Start waits for every Raft group to
	// elect a leader before the node serves anyway (requests then get 503
	// until a leader exists).
	StartTimeout time.Duration
}

// RaftConfig tunes the Raft groups of all stateful services.
type RaftConfig struct {
	// SnapshotThreshold is how many log entries trigger a snapshot.
	SnapshotThreshold uint64
	// SnapshotInterval is how often the threshold is checked.
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries stay in the log after a snapshot.
	TrailingLogs uint64
	// NoSync turns off fsync of the Raft log. Only for tests: with it an
	// acknowledged write can be lost on power failure.
	NoSync bool
}

// DefaultConfig returns a single-node configuration with data in ./data and
// HTTP on 127.0.0.1:8080.
func DefaultConfig() Config {
	return Config{
		DataDir:      "./data",
		HTTP:         gateway.DefaultConfig(),
		Things:       things.DefaultConfig(),
		Policies:     policies.DefaultConfig(),
		Connectivity: connectivity.DefaultConfig(),
		Live:         live.DefaultConfig(),
		Search:       search.DefaultConfig(),
		Raft: RaftConfig{
			SnapshotThreshold: 16384,
			SnapshotInterval:  30 * time.Second,
			TrailingLogs:      4096,
		},
		StartTimeout: 10 * time.Second,
	}
}

// Validate reports the first configuration error.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("data directory must be set")
	}
	if err := c.HTTP.Validate(); err != nil {
		return fmt.Errorf("http: %w", err)
	}
	if err := c.Live.Validate(); err != nil {
		return err
	}
	return nil
}

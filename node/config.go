package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/dittonode/dittonode/mqtt"
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
	// MQTT is the embedded broker; it is off when every listener address
	// is empty.
	MQTT mqtt.Config
	// Devices are device identities created at start when missing (the
	// --dev device ditto/ditto).
	Devices []DeviceSeed
	Raft    RaftConfig
	// Mesh joins this node with others into one cluster over libp2p; it
	// runs only with a cluster secret.
	Mesh MeshConfig

	// StartTimeout bounds how long Start waits for every Raft group to
	// elect a leader before the node serves anyway (requests then get 503
	// until a leader exists).
	StartTimeout time.Duration

	// MemoryLimit is the soft memory limit in bytes for the Go runtime of
	// the process running the node (0: none). It is process-wide, so the
	// node does not apply it: cmd/dittonode does (debug.SetMemoryLimit),
	// unless GOMEMLIMIT is set. Under write load the heap otherwise grows
	// to twice the live heap before a collection; with the limit the
	// collector runs earlier instead, costing CPU: once the live heap
	// nears the limit the collector runs nearly continuously (capped at
	// about half the CPU). With 100k things (a live heap of ~110-140 MB)
	// a 200 MiB limit halved PUT, GET and search throughput, so there is
	// none by default; set one on gateways short of memory.
	MemoryLimit int64

	// IdleRelease is how often the process checks whether it has gone
	// quiet, to give the heap pages a load left behind back to the OS
	// once per quiet spell (0: never). Process-wide as MemoryLimit:
	// cmd/dittonode applies it.
	IdleRelease time.Duration
}

// DefaultMemoryLimit is the default soft memory limit (Config.MemoryLimit):
// none.
const DefaultMemoryLimit = 0

// RaftConfig tunes the Raft groups of all stateful services.
type RaftConfig struct {
	// SnapshotThreshold is how many new commands trigger a snapshot.
	SnapshotThreshold uint64
	// SnapshotInterval is how often the threshold is checked.
	SnapshotInterval time.Duration
	// TrailingLogs is how many commands stay in the log after a snapshot.
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
		MQTT:         mqttOff(),
		Raft: RaftConfig{
			// A short log keeps restarts fast; snapshots stream in the
			// background. Bolt reads its file through a memory map, and
			// the pages a commit wrote are read back and stay resident
			// until the store drops them after a compaction
			// (consensus.pagedStore), so the log's span counts in RSS.
			// 16384 commands checked every second: under 10k writes/s a
			// group snapshots every ~2 s (a snapshot of 100k things costs
			// ~50 ms of CPU; 4096 made it every second), the log files'
			// resident pages stay at 4-7 MB as with 4096, and a restart
			// replays at most 18k commands.
			SnapshotThreshold: 16384,
			SnapshotInterval:  time.Second,
			TrailingLogs:      2048,
		},
		StartTimeout: 10 * time.Second,
		MemoryLimit:  DefaultMemoryLimit,
		IdleRelease:  5 * time.Second,
		Mesh: MeshConfig{
			Listen:          []string{"/ip4/0.0.0.0/udp/4001/quic-v1", "/ip4/0.0.0.0/tcp/4001"},
			BootstrapExpect: 1,
			MDNS:            true,
		},
	}
}

// DeviceSeed is a device identity to create at start when it is missing.
type DeviceSeed struct {
	Username, Password string
	Subjects           []string
}

// mqttOff is the broker's default configuration with every listener off;
// cmd/dittonode turns the TCP listener on (--mqtt, default 127.0.0.1:1883),
// tests choose their own ports.
func mqttOff() mqtt.Config {
	c := mqtt.DefaultConfig()
	c.Addr = ""
	return c
}

// Validate reports the first configuration error.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("data directory must be set")
	}
	if err := c.HTTP.Validate(); err != nil {
		return fmt.Errorf("http: %w", err)
	}
	if err := c.Mesh.Validate(); err != nil {
		return fmt.Errorf("mesh: %w", err)
	}
	if err := c.Live.Validate(); err != nil {
		return err
	}
	if c.MemoryLimit < 0 {
		return errors.New("memory limit is negative")
	}
	if err := c.MQTT.Validate(); err != nil {
		return fmt.Errorf("mqtt: %w", err)
	}
	return nil
}

// MeshConfig configures the libp2p mesh (see docs/ARCHITECTURE.md).
type MeshConfig struct {
	// Listen are the libp2p listen multiaddrs (QUIC and TCP).
	Listen []string `json:"listen" yaml:"p2p"`
	// Join are multiaddrs (ending in /p2p/<peer ID>) of members to join.
	Join []string `json:"join" yaml:"join"`
	// BootstrapExpect is how many members a new cluster waits for before
	// the lowest peer ID bootstraps it; 1 is a single-node cluster.
	BootstrapExpect int `json:"bootstrapExpect" yaml:"bootstrap-expect"`
	// ClusterSecret admits members; without it the node runs alone and
	// starts no mesh.
	ClusterSecret string `json:"-" yaml:"cluster-secret"`
	// MDNS announces and finds members on the LAN.
	MDNS bool `json:"mdns" yaml:"mdns"`
	// RemoveAfter removes a member unreachable that long (0: never).
	RemoveAfter time.Duration `json:"removeAfter" yaml:"remove-after"`
}

// Enabled reports whether the mesh runs.
func (m MeshConfig) Enabled() bool { return m.ClusterSecret != "" }

// Validate reports the first mesh configuration error.
func (m MeshConfig) Validate() error {
	switch {
	case m.BootstrapExpect < 0:
		return fmt.Errorf("bootstrap-expect %d is negative", m.BootstrapExpect)
	case !m.Enabled() && (len(m.Join) > 0 || m.BootstrapExpect > 1):
		return errors.New("a cluster of more than one node needs a cluster secret (--cluster-secret or DITTONODE_CLUSTER_SECRET)")
	case m.Enabled() && len(m.Listen) == 0:
		return errors.New("no p2p listen address")
	case m.RemoveAfter < 0:
		return errors.New("remove-after is negative")
	}
	for _, j := range m.Join {
		if _, err := parseJoin(j); err != nil {
			return err
		}
	}
	return nil
}

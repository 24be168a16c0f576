package consensus

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config configures one Group. Zero fields take the DefaultConfig values in
// New, except Name, Dir and NodeID, which are required.
type Config struct {
	// Name is the group name: "things", "policies" or "connectivity".
	Name string `json:"name" yaml:"name"`
	// Dir holds raft.db (log and stable store) and snapshots/; by
	// convention <data>/raft/<name>.
	Dir string `json:"dir" yaml:"dir"`
	// NodeID is this node's raft server ID, at most 255 bytes; forwarded
	// entries carry it as their origin.
	NodeID string `json:"nodeID" yaml:"nodeID"`
	// Bootstrap makes this node the single voter of a new cluster when Dir
	// holds no raft state yet (or, with BootstrapServers, starts the
	// cluster with those members). With existing state it has no effect.
	Bootstrap bool `json:"bootstrap" yaml:"bootstrap"`
	// BootstrapServers is the first configuration a bootstrapping node
	// writes: every member of a new cluster at once, this node among them
	// (the other members start without state and learn it from the
	// leader). Empty: this node alone.
	BootstrapServers []Server `json:"bootstrapServers,omitempty" yaml:"bootstrapServers,omitempty"`

	// HeartbeatTimeout is how long a follower waits for the leader before
	// it starts an election; a single node becomes leader within one to
	// two of them after Start.
	HeartbeatTimeout time.Duration `json:"heartbeatTimeout" yaml:"heartbeatTimeout"`
	// ElectionTimeout is how long a candidate waits for votes.
	ElectionTimeout time.Duration `json:"electionTimeout" yaml:"electionTimeout"`
	// LeaderLeaseTimeout is how long a leader stays leader without quorum
	// contact; at most HeartbeatTimeout.
	LeaderLeaseTimeout time.Duration `json:"leaderLeaseTimeout" yaml:"leaderLeaseTimeout"`
	// CommitTimeout bounds how long followers may wait to learn a new
	// commit index when the leader has nothing else to send.
	CommitTimeout time.Duration `json:"commitTimeout" yaml:"commitTimeout"`

	// SnapshotThreshold is the number of new commands that triggers a
	// snapshot, checked every SnapshotInterval. Raft counts entries; the
	// group converts (logscale.go).
	SnapshotThreshold uint64 `json:"snapshotThreshold" yaml:"snapshotThreshold"`
	// SnapshotInterval is how often the snapshot threshold is checked.
	SnapshotInterval time.Duration `json:"snapshotInterval" yaml:"snapshotInterval"`
	// TrailingLogs is how many commands' entries are kept after a snapshot
	// so slow followers catch up from the log instead of a snapshot.
	TrailingLogs uint64 `json:"trailingLogs" yaml:"trailingLogs"`
	// MaxAppendEntries is the largest batch of entries written, replicated
	// and applied at once; 1 to 1024.
	MaxAppendEntries int `json:"maxAppendEntries" yaml:"maxAppendEntries"`

	// PackDepth is how many entries of packed proposals the leader keeps
	// appended but not yet applied before it holds further proposals
	// back, to append them together (pack.go); 1 to 64.
	PackDepth int `json:"packDepth" yaml:"packDepth"`

	// NoSync skips fsync in the log store. Tests only: a crash loses
	// acknowledged writes.
	NoSync bool `json:"noSync" yaml:"noSync"`

	// Tests only: storeDelay is added to every log write (a slow disk),
	// noEarly turns early replication off (early.go).
	storeDelay time.Duration
	noEarly    bool
}

// DefaultConfig returns the defaults; Name, Dir and NodeID stay empty.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   100 * time.Millisecond,
		ElectionTimeout:    200 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
		CommitTimeout:      10 * time.Millisecond,
		SnapshotThreshold:  8192,
		SnapshotInterval:   30 * time.Second,
		TrailingLogs:       10240,
		MaxAppendEntries:   256,
		PackDepth:          1,
	}
}

// withDefaults returns c with every zero tunable replaced by its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = d.HeartbeatTimeout
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = max(d.ElectionTimeout, c.HeartbeatTimeout)
	}
	if c.LeaderLeaseTimeout == 0 {
		c.LeaderLeaseTimeout = min(d.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if c.CommitTimeout == 0 {
		c.CommitTimeout = d.CommitTimeout
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = d.SnapshotInterval
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = d.TrailingLogs
	}
	if c.MaxAppendEntries == 0 {
		c.MaxAppendEntries = d.MaxAppendEntries
	}
	if c.PackDepth == 0 {
		c.PackDepth = d.PackDepth
	}
	return c
}

// Validate reports whether c, with zero tunables defaulted, is usable.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name is required"))
	} else if strings.ContainsAny(c.Name, `/\`) || c.Name == "." || c.Name == ".." {
		errs = append(errs, fmt.Errorf("name %q is not a plain name", c.Name))
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("dir is required"))
	}
	if len(c.BootstrapServers) > 0 {
		self := false
		seen := make(map[string]bool, len(c.BootstrapServers))
		for _, sv := range c.BootstrapServers {
			switch {
			case sv.ID == "" || sv.Address == "":
				errs = append(errs, errors.New("bootstrap server without ID or address"))
			case seen[sv.ID]:
				errs = append(errs, fmt.Errorf("bootstrap server %s listed twice", sv.ID))
			case sv.Suffrage != "" && sv.Suffrage != "Voter" && sv.Suffrage != "Nonvoter":
				errs = append(errs, fmt.Errorf("bootstrap server %s: suffrage %q is not Voter or Nonvoter", sv.ID, sv.Suffrage))
			}
			seen[sv.ID] = true
			self = self || (sv.ID == c.NodeID && sv.Suffrage != "Nonvoter")
		}
		if !self {
			errs = append(errs, errors.New("bootstrap servers must include this node as a voter"))
		}
	}
	if c.NodeID == "" {
		errs = append(errs, errors.New("node ID is required"))
	} else if len(c.NodeID) > maxOriginLen {
		errs = append(errs, fmt.Errorf("node ID is %d bytes, above %d", len(c.NodeID), maxOriginLen))
	}
	const floor = 5 * time.Millisecond
	for _, d := range []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{
		{"heartbeat timeout", c.HeartbeatTimeout, floor},
		{"election timeout", c.ElectionTimeout, floor},
		{"leader lease timeout", c.LeaderLeaseTimeout, floor},
		{"commit timeout", c.CommitTimeout, time.Millisecond},
		{"snapshot interval", c.SnapshotInterval, floor},
	} {
		if d.v < d.min {
			errs = append(errs, fmt.Errorf("%s %s is below %s", d.name, d.v, d.min))
		}
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("leader lease timeout %s exceeds heartbeat timeout %s", c.LeaderLeaseTimeout, c.HeartbeatTimeout))
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("election timeout %s is below heartbeat timeout %s", c.ElectionTimeout, c.HeartbeatTimeout))
	}
	if c.MaxAppendEntries < 1 || c.MaxAppendEntries > 1024 {
		errs = append(errs, fmt.Errorf("max append entries %d is outside 1..1024", c.MaxAppendEntries))
	}
	if c.PackDepth < 1 || c.PackDepth > 64 {
		errs = append(errs, fmt.Errorf("pack depth %d is outside 1..64", c.PackDepth))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("consensus config: %w", err)
	}
	return nil
}

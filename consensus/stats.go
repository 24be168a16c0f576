package consensus

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Stats counts the work of a group's write pipeline since Start: how many
// commands share one durable log write (one bolt transaction with its two
// fsyncs) and what applying them to the FSM costs. The counters only grow; compare
// two readings to see a rate.
type Stats struct {
	// LogWrites is the number of batches written to the log store, each
	// one bolt transaction made durable with fsyncs (unless NoSync).
	LogWrites uint64 `json:"logWrites"`
	// LogEntries is the number of entries those writes stored, and
	// LogCommands the commands in them (an entry may pack several).
	LogEntries  uint64 `json:"logEntries"`
	LogCommands uint64 `json:"logCommands"`
	// LogWriteTime is the time spent in those writes.
	LogWriteTime time.Duration `json:"logWriteTime"`
	// ApplyBatches is the number of batches handed to the FSM.
	ApplyBatches uint64 `json:"applyBatches"`
	// ApplyEntries is the number of log entries in those batches.
	ApplyEntries uint64 `json:"applyEntries"`
	// ApplyTime is the time the FSM spent applying them, including the
	// synchronous observers of the applied changes.
	ApplyTime time.Duration `json:"applyTime"`
	// CommitHints is the number of commits this node, as a follower,
	// learned from a leader's answer before the leader's next append
	// (commithint.go).
	CommitHints uint64 `json:"commitHints"`
	// EarlyAppends is the number of requests this node, as leader, sent
	// to a follower while it wrote the same entries to its own log
	// (early.go); EarlyEntries the entries they carried; EarlyRefused
	// those the follower refused or that failed in transit (raft's own
	// replication then delivers the entries).
	EarlyAppends uint64 `json:"earlyAppends"`
	EarlyEntries uint64 `json:"earlyEntries"`
	EarlyRefused uint64 `json:"earlyRefused"`
	// Packs is the number of entries this node, as leader, appended for
	// proposals, and PackedCommands the proposals they held (pack.go).
	Packs          uint64 `json:"packs"`
	PackedCommands uint64 `json:"packedCommands"`
}

// Sub returns the difference s - o, counter by counter.
func (s Stats) Sub(o Stats) Stats {
	return Stats{
		LogWrites:    s.LogWrites - o.LogWrites,
		LogEntries:   s.LogEntries - o.LogEntries,
		LogCommands:  s.LogCommands - o.LogCommands,
		LogWriteTime: s.LogWriteTime - o.LogWriteTime,
		ApplyBatches: s.ApplyBatches - o.ApplyBatches,
		ApplyEntries: s.ApplyEntries - o.ApplyEntries,
		ApplyTime:    s.ApplyTime - o.ApplyTime,
		CommitHints:  s.CommitHints - o.CommitHints,
		EarlyAppends: s.EarlyAppends - o.EarlyAppends,
		EarlyEntries: s.EarlyEntries - o.EarlyEntries,
		EarlyRefused: s.EarlyRefused - o.EarlyRefused,

		Packs:          s.Packs - o.Packs,
		PackedCommands: s.PackedCommands - o.PackedCommands,
	}
}

// EntriesPerLogWrite is the mean number of entries per durable log write.
func (s Stats) EntriesPerLogWrite() float64 { return ratio(float64(s.LogEntries), s.LogWrites) }

// CommandsPerLogWrite is the mean number of commands per durable log
// write.
func (s Stats) CommandsPerLogWrite() float64 {
	return ratio(float64(s.LogCommands), s.LogWrites)
}

// CommandsPerPack is the mean number of proposals per entry the leader
// appended.
func (s Stats) CommandsPerPack() float64 { return ratio(float64(s.PackedCommands), s.Packs) }

// EntriesPerApply is the mean number of entries per FSM batch.
func (s Stats) EntriesPerApply() float64 { return ratio(float64(s.ApplyEntries), s.ApplyBatches) }

// LogWriteMean is the mean duration of one durable log write.
func (s Stats) LogWriteMean() time.Duration {
	return time.Duration(ratio(float64(s.LogWriteTime), s.LogWrites))
}

// ApplyMean is the mean time the FSM spent on one batch.
func (s Stats) ApplyMean() time.Duration {
	return time.Duration(ratio(float64(s.ApplyTime), s.ApplyBatches))
}

func ratio(a float64, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return a / float64(b)
}

// statCounters are the live counters behind Stats.
type statCounters struct {
	logWrites, logEntries, logNanos     atomic.Uint64
	logCommands, packs, packedCommands  atomic.Uint64
	applyBatches, applyEntries, applyNs atomic.Uint64
	commitHints                         atomic.Uint64
	earlyAppends, earlyEntries          atomic.Uint64
	earlyRefused                        atomic.Uint64
}

func (c *statCounters) load() Stats {
	return Stats{
		LogWrites:    c.logWrites.Load(),
		LogEntries:   c.logEntries.Load(),
		LogCommands:  c.logCommands.Load(),
		LogWriteTime: time.Duration(c.logNanos.Load()),
		ApplyBatches: c.applyBatches.Load(),
		ApplyEntries: c.applyEntries.Load(),
		ApplyTime:    time.Duration(c.applyNs.Load()),
		CommitHints:  c.commitHints.Load(),
		EarlyAppends: c.earlyAppends.Load(),
		EarlyEntries: c.earlyEntries.Load(),
		EarlyRefused: c.earlyRefused.Load(),

		Packs:          c.packs.Load(),
		PackedCommands: c.packedCommands.Load(),
	}
}

func (c *statCounters) packed(commands int) {
	c.packs.Add(1)
	c.packedCommands.Add(uint64(commands))
}

func (c *statCounters) applied(entries int, d time.Duration) {
	c.applyBatches.Add(1)
	c.applyEntries.Add(uint64(entries))
	c.applyNs.Add(uint64(d))
}

// countingLogs is the log store raft writes through: it counts the batches
// (StoreLogs on the leader, AppendEntries on a follower) and their time.
type countingLogs struct {
	raft.LogStore
	c *statCounters
	// early, when set, sees every batch before it is written (early.go).
	early *earlyReplicator
	// delay is added to every write; tests only (Config.storeDelay).
	delay time.Duration
	// lease, when set, ends on a configuration entry (read.go).
	lease *readLease
	// writes, when set, counts the writes for the packer (pack.go).
	writes *writeCount
}

// IsMonotonic passes raft's question on: a store that refuses gaps makes
// raft drop the whole log when it installs a snapshot past its end.
func (l countingLogs) IsMonotonic() bool {
	m, ok := l.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

func (l countingLogs) StoreLog(log *raft.Log) error {
	return l.StoreLogs([]*raft.Log{log})
}

func (l countingLogs) StoreLogs(logs []*raft.Log) error {
	if l.lease != nil {
		// Raft appends a configuration entry right after it took the new
		// configuration as its latest, on the same goroutine: before the
		// entry can reach anyone, no lease of the old voter set stands.
		for _, e := range logs {
			if e.Type == raft.LogConfiguration {
				l.lease.epoch.Add(1)
				break
			}
		}
	}
	if l.early != nil {
		l.early.offer(logs)
	}
	if l.writes != nil {
		l.writes.started.Add(1)
		defer l.writes.finish()
	}
	start := time.Now()
	if l.delay > 0 {
		time.Sleep(l.delay)
	}
	err := l.LogStore.StoreLogs(logs)
	cmds := 0
	for _, e := range logs {
		switch {
		case e.Type != raft.LogCommand:
		case isPacked(e.Extensions):
			cmds += packedCount(e.Data)
		default:
			cmds++
		}
	}
	l.c.logCommands.Add(uint64(cmds))
	l.c.logWrites.Add(1)
	l.c.logEntries.Add(uint64(len(logs)))
	l.c.logNanos.Add(uint64(time.Since(start)))
	return err
}

// Stats returns the write pipeline's counters.
func (g *Group) Stats() Stats { return g.stats.load() }

package consensus

import (
	"time"

	"github.com/hashicorp/raft"
)

// Raft measures its log in entries: it snapshots once SnapshotThreshold
// entries arrived since the last snapshot and keeps TrailingLogs entries
// after one. A packed entry (pack.go) holds many commands under load and
// one when idle, so fixed entry counts would let the log, and the replay at
// restart, grow with the load. scaleLoop keeps both counts at the
// configured numbers of commands instead: every SnapshotInterval it
// divides them by the mean number of commands per entry that this node
// wrote to its log since the last adjustment.
func (g *Group) scaleLoop(r *raft.Raft) {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.SnapshotInterval)
	defer t.Stop()
	last := g.stats.load()
	per := 1.0
	for {
		select {
		case <-t.C:
		case <-g.done:
			return
		}
		now := g.stats.load()
		if d := now.Sub(last); d.LogEntries >= minScaleEntries {
			per = max(1, float64(d.LogCommands)/float64(d.LogEntries))
			last = now
		}
		rc := r.ReloadableConfig()
		threshold, trailing := scaledCounts(g.cfg, per)
		if rc.SnapshotThreshold == threshold && rc.TrailingLogs == trailing {
			continue
		}
		rc.SnapshotThreshold, rc.TrailingLogs = threshold, trailing
		if err := r.ReloadConfig(rc); err != nil {
			g.log.Warn("consensus: adjusting the snapshot threshold failed", logKeyError, err)
		}
	}
}

// minScaleEntries is how many entries a measurement needs; below it (an
// idle group) the previous mean stays.
const minScaleEntries = 32

// minScaledCount is the floor of both scaled counts.
const minScaledCount = 16

// scaledCounts are raft's entry counts for cfg's command counts at per
// commands per entry.
func scaledCounts(cfg Config, per float64) (threshold, trailing uint64) {
	scale := func(n uint64) uint64 { return max(minScaledCount, uint64(float64(n)/per)) }
	return scale(cfg.SnapshotThreshold), scale(cfg.TrailingLogs)
}

package consensus

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
)

// fsmAdapter drives an FSM from raft, tracks the applied index, drops
// duplicate forwarded entries (dedup.go) and hands the results of this
// node's forwarded proposals to their waiters. Raft calls ApplyBatch,
// Snapshot and Restore from one goroutine at a time.
type fsmAdapter struct {
	fsm     FSM
	batch   BatchFSM // nil when fsm is not a BatchFSM
	applied *appliedTracker

	// self is this node's ID: entries whose header names it as origin
	// resolve pending proposals.
	self    string
	pending *proposals
	dedup   dedupTable
	stats   *statCounters // nil in tests that build an adapter alone

	// scratch buffers reused across ApplyBatch calls.
	cmds  [][]byte
	marks []entryMark
}

// entryMark is what ApplyBatch decided for one log entry.
type entryMark struct {
	apply bool   // hand it to the FSM
	mine  uint64 // sequence number of this node's proposal, or 0
	stale bool   // dropped as too old to deduplicate
}

var _ raft.BatchingFSM = (*fsmAdapter)(nil)

func newFSMAdapter(fsm FSM, applied *appliedTracker) *fsmAdapter {
	a := &fsmAdapter{fsm: fsm, applied: applied}
	a.batch, _ = fsm.(BatchFSM)
	return a
}

// Apply is raft's single-entry path; with BatchingFSM raft does not use it,
// but it is kept correct.
func (a *fsmAdapter) Apply(l *raft.Log) any {
	return a.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies the command entries of logs, in order, and skips the
// rest (configuration changes, duplicate forwarded entries) with a nil
// result. Runs of consecutive applied indexes go to BatchFSM.ApplyBatch in
// one call.
func (a *fsmAdapter) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	if len(logs) == 0 {
		return out
	}
	if a.stats != nil {
		start := time.Now()
		defer func() { a.stats.applied(len(logs), time.Since(start)) }()
	}
	marks := a.mark(logs)
	for i := 0; i < len(logs); {
		if !marks[i].apply {
			i++
			continue
		}
		if a.batch == nil {
			out[i] = a.fsm.Apply(logs[i].Index, logs[i].Data)
			i++
			continue
		}
		j := i + 1
		for j < len(logs) && marks[j].apply && logs[j].Index == logs[j-1].Index+1 {
			j++
		}
		a.cmds = a.cmds[:0]
		for _, l := range logs[i:j] {
			a.cmds = append(a.cmds, l.Data)
		}
		res := a.batch.ApplyBatch(logs[i].Index, a.cmds)
		if len(res) != j-i {
			panic(fmt.Sprintf("consensus: ApplyBatch returned %d results for %d commands", len(res), j-i))
		}
		copy(out[i:j], res)
		clear(a.cmds)
		i = j
	}
	if a.pending != nil {
		for i, m := range marks {
			switch {
			case m.mine == 0:
			case m.stale:
				a.pending.resolve(m.mine, nil, fmt.Errorf("%w: dropped as too old to deduplicate", ErrNotApplied))
			case m.apply:
				a.pending.resolve(m.mine, out[i], nil)
			}
		}
	}
	clear(marks)
	a.applied.advance(logs[len(logs)-1].Index)
	return out
}

// mark decides, in log order, which entries reach the FSM.
func (a *fsmAdapter) mark(logs []*raft.Log) []entryMark {
	if cap(a.marks) < len(logs) {
		a.marks = make([]entryMark, len(logs))
	}
	marks := a.marks[:len(logs)]
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		if len(l.Extensions) == 0 {
			marks[i].apply = true
			continue
		}
		origin, seq, _, ok := parseHeader(l.Extensions)
		if !ok {
			// Not ours: apply as a plain command.
			marks[i].apply = true
			continue
		}
		v := a.dedup.admit(origin, seq, l.Index)
		marks[i].apply = v == admitted
		marks[i].stale = v == stale
		if string(origin) == a.self {
			marks[i].mine = seq
		}
	}
	return marks
}

// Snapshot captures the FSM together with the applied index it reflects.
func (a *fsmAdapter) Snapshot() (raft.FSMSnapshot, error) {
	s, err := a.fsm.Snapshot()
	if err != nil {
		return nil, err
	}
	return &fsmSnapshot{s: s, index: a.applied.load(), dedup: a.dedup.clone()}, nil
}

// Restore replaces the FSM state with a snapshot written by fsmSnapshot.
func (a *fsmAdapter) Restore(rc io.ReadCloser) error {
	br := bufio.NewReaderSize(rc, 64<<10)
	index, dedup, err := readSnapshotHeader(br)
	if err != nil {
		return err
	}
	if err := a.fsm.Restore(br); err != nil {
		return fmt.Errorf("restore fsm: %w", err)
	}
	a.dedup = dedup
	if a.pending != nil {
		// Entries of ours that the snapshot covers will not be applied
		// here again: settle their proposals from the table.
		a.pending.settle(func(seq uint64) (bool, error) {
			seen, old := a.dedup.state(a.self, seq)
			switch {
			case seen:
				return true, fmt.Errorf("%w: applied, but installed through a snapshot: result unavailable", ErrLeadershipLost)
			case old:
				return true, fmt.Errorf("%w: dropped as too old to deduplicate", ErrNotApplied)
			}
			return false, nil
		})
	}
	a.applied.set(index)
	return nil
}

type fsmSnapshot struct {
	s     Snapshot
	index uint64
	dedup dedupTable
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	bw := bufio.NewWriterSize(sink, 64<<10)
	err := writeSnapshotHeader(bw, s.index, &s.dedup)
	if err == nil {
		err = s.s.Persist(bw)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return errors.Join(err, sink.Cancel())
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() { s.s.Release() }

// A snapshot starts with snapshotMagic and the big-endian applied index
// (the last entry the FSM saw), then the dedup table (version 2 only),
// then the FSM's own bytes. Version 1 snapshots (no table) still restore.
var (
	snapshotMagic   = [8]byte{'d', 'n', 's', 'n', 'a', 'p', 0, 2}
	snapshotMagicV1 = [8]byte{'d', 'n', 's', 'n', 'a', 'p', 0, 1}
)

const snapshotHeaderLen = 16

var errBadSnapshot = errors.New("not a dittonode consensus snapshot")

func writeSnapshotHeader(w io.Writer, index uint64, dedup *dedupTable) error {
	var h [snapshotHeaderLen]byte
	copy(h[:8], snapshotMagic[:])
	binary.BigEndian.PutUint64(h[8:], index)
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	return dedup.writeTo(w)
}

func readSnapshotHeader(r io.Reader) (uint64, dedupTable, error) {
	var h [snapshotHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, dedupTable{}, fmt.Errorf("read snapshot header: %w", errors.Join(errBadSnapshot, err))
	}
	index := binary.BigEndian.Uint64(h[8:])
	switch [8]byte(h[:8]) {
	case snapshotMagicV1:
		return index, dedupTable{}, nil
	case snapshotMagic:
		t, err := readDedupTable(r)
		if err != nil {
			return 0, dedupTable{}, fmt.Errorf("read snapshot header: %w", errors.Join(errBadSnapshot, err))
		}
		return index, t, nil
	}
	return 0, dedupTable{}, fmt.Errorf("read snapshot header: %w", errBadSnapshot)
}

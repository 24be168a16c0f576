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
	cmds  []Command
	marks []entryMark
}

// entryMark is what ApplyBatch decided for one command: its entry (log)
// and place there (pos, -1 for an unpacked entry).
type entryMark struct {
	log   int
	pos   int
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

// ApplyBatch applies the commands of logs, in order, and skips the rest
// (configuration changes, duplicate forwarded commands) with a nil result.
// A packed entry's result is a packResult with one result per command.
func (a *fsmAdapter) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	if len(logs) == 0 {
		return out
	}
	if a.stats != nil {
		start := time.Now()
		defer func() { a.stats.applied(len(logs), time.Since(start)) }()
	}
	marks, cmds := a.mark(logs, out)
	var res []any
	switch {
	case len(cmds) == 0:
	case a.batch != nil:
		res = a.batch.ApplyBatch(cmds)
		if len(res) != len(cmds) {
			panic(fmt.Sprintf("consensus: ApplyBatch returned %d results for %d commands", len(res), len(cmds)))
		}
	default:
		res = make([]any, len(cmds))
		for i, c := range cmds {
			res[i] = a.fsm.Apply(c.Index, c.Data)
		}
	}
	k := 0
	for _, m := range marks {
		var r any
		if m.apply {
			r = res[k]
			k++
		}
		if m.pos < 0 {
			out[m.log] = r
		} else {
			out[m.log].(packResult)[m.pos] = r
		}
		if a.pending == nil || m.mine == 0 {
			continue
		}
		switch {
		case m.stale:
			a.pending.resolve(m.mine, nil, fmt.Errorf("%w: dropped as too old to deduplicate", ErrNotApplied))
		case m.apply:
			a.pending.resolve(m.mine, r, nil)
		}
	}
	clear(a.cmds)
	clear(marks)
	a.applied.advance(logs[len(logs)-1].Index)
	return out
}

// mark decides, in log order, which commands reach the FSM; it returns a
// mark per command and the commands to apply. Packed entries get their
// packResult in out.
func (a *fsmAdapter) mark(logs []*raft.Log, out []any) ([]entryMark, []Command) {
	marks, cmds := a.marks[:0], a.cmds[:0]
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		if !isPacked(l.Extensions) {
			m := a.markOne(l.Extensions, l.Index)
			m.log, m.pos = i, -1
			marks = append(marks, m)
			if m.apply {
				cmds = append(cmds, Command{Index: fsmIndex(l.Index, 0), Data: l.Data})
			}
			continue
		}
		pr := make(packResult, packedCount(l.Data))
		out[i] = pr
		ok := packedCommands(l.Data, func(pos int, hdr, cmd []byte) {
			m := a.markOne(hdr, l.Index)
			m.log, m.pos = i, pos
			marks = append(marks, m)
			if m.apply {
				cmds = append(cmds, Command{Index: fsmIndex(l.Index, pos), Data: cmd})
			}
		})
		if !ok {
			// Only a leader's packer writes these; every node reads the
			// same bytes, so all stop here alike.
			panic(fmt.Sprintf("consensus: malformed packed entry at index %d", l.Index))
		}
	}
	a.marks, a.cmds = marks, cmds
	return marks, cmds
}

// markOne decides for one command with forwarding header hdr (or none) in
// the entry at index.
func (a *fsmAdapter) markOne(hdr []byte, index uint64) entryMark {
	if len(hdr) == 0 {
		return entryMark{apply: true}
	}
	origin, seq, _, ok := parseHeader(hdr)
	if !ok {
		// Not ours: apply as a plain command.
		return entryMark{apply: true}
	}
	v := a.dedup.admit(origin, seq, index)
	m := entryMark{apply: v == admitted, stale: v == stale}
	if string(origin) == a.self {
		m.mine = seq
	}
	return m
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

package consensus

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// fsmAdapter drives an FSM from raft and tracks the applied index. Raft
// calls ApplyBatch, Snapshot and Restore from one goroutine at a time.
type fsmAdapter struct {
	fsm     FSM
	batch   BatchFSM // nil when fsm is not a BatchFSM
	applied *appliedTracker

	// scratch buffers reused across ApplyBatch calls.
	cmds [][]byte
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
// rest (configuration changes) with a nil result. Runs of consecutive
// command indexes go to BatchFSM.ApplyBatch in one call.
func (a *fsmAdapter) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	if len(logs) == 0 {
		return out
	}
	for i := 0; i < len(logs); {
		if logs[i].Type != raft.LogCommand {
			i++
			continue
		}
		if a.batch == nil {
			out[i] = a.fsm.Apply(logs[i].Index, logs[i].Data)
			i++
			continue
		}
		j := i + 1
		for j < len(logs) && logs[j].Type == raft.LogCommand && logs[j].Index == logs[j-1].Index+1 {
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
	a.applied.advance(logs[len(logs)-1].Index)
	return out
}

// Snapshot captures the FSM together with the applied index it reflects.
func (a *fsmAdapter) Snapshot() (raft.FSMSnapshot, error) {
	s, err := a.fsm.Snapshot()
	if err != nil {
		return nil, err
	}
	return &fsmSnapshot{s: s, index: a.applied.load()}, nil
}

// Restore replaces the FSM state with a snapshot written by fsmSnapshot.
func (a *fsmAdapter) Restore(rc io.ReadCloser) error {
	index, err := readSnapshotHeader(rc)
	if err != nil {
		return err
	}
	if err := a.fsm.Restore(rc); err != nil {
		return fmt.Errorf("restore fsm: %w", err)
	}
	a.applied.set(index)
	return nil
}

type fsmSnapshot struct {
	s     Snapshot
	index uint64
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	bw := bufio.NewWriterSize(sink, 64<<10)
	err := writeSnapshotHeader(bw, s.index)
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
// (the last entry the FSM saw), then the FSM's own bytes.
var snapshotMagic = [8]byte{'d', 'n', 's', 'n', 'a', 'p', 0, 1}

const snapshotHeaderLen = 16

var errBadSnapshot = errors.New("not a dittonode consensus snapshot")

func writeSnapshotHeader(w io.Writer, index uint64) error {
	var h [snapshotHeaderLen]byte
	copy(h[:8], snapshotMagic[:])
	binary.BigEndian.PutUint64(h[8:], index)
	_, err := w.Write(h[:])
	return err
}

func readSnapshotHeader(r io.Reader) (uint64, error) {
	var h [snapshotHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, fmt.Errorf("read snapshot header: %w", errors.Join(errBadSnapshot, err))
	}
	if [8]byte(h[:8]) != snapshotMagic {
		return 0, fmt.Errorf("read snapshot header: %w", errBadSnapshot)
	}
	return binary.BigEndian.Uint64(h[8:]), nil
}

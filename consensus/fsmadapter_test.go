package consensus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/raft"
)

func makeLogs(n int) []*raft.Log {
	logs := make([]*raft.Log, n)
	for i := range logs {
		logs[i] = &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: []byte("c")}
	}
	return logs
}

func TestAdapterApplyBatch(t *testing.T) {
	cmd := func(i uint64) *raft.Log {
		return &raft.Log{Index: i, Type: raft.LogCommand, Data: []byte{byte('a' + i)}}
	}
	conf := func(i uint64) *raft.Log { return &raft.Log{Index: i, Type: raft.LogConfiguration} }
	packed := func(i uint64, cmds ...string) *raft.Log {
		data := binary.AppendUvarint(nil, uint64(len(cmds)))
		for _, c := range cmds {
			data = binary.AppendUvarint(data, 0)
			data = binary.AppendUvarint(data, uint64(len(c)))
			data = append(data, c...)
		}
		return &raft.Log{Index: i, Type: raft.LogCommand, Data: data, Extensions: packExtensions}
	}
	tests := []struct {
		name        string
		logs        []*raft.Log
		wantEntries []entry
		wantBatches int
		wantNil     []int // positions with a nil result
	}{
		{"commands", []*raft.Log{cmd(1), cmd(2), cmd(3)}, []entry{{1, "b", 0}, {2, "c", 0}, {3, "d", 0}}, 1, nil},
		{"configuration in between", []*raft.Log{cmd(1), conf(2), cmd(3)}, []entry{{1, "b", 0}, {3, "d", 0}}, 1, []int{1}},
		{"gap from a barrier", []*raft.Log{cmd(1), cmd(3)}, []entry{{1, "b", 0}, {3, "d", 0}}, 1, nil},
		{"packed", []*raft.Log{cmd(1), packed(2, "x", "y", "z"), cmd(3)}, []entry{{1, "b", 0}, {2, "x", 0}, {2, "y", 1}, {2, "z", 2}, {3, "d", 0}}, 1, nil},
		{"configuration only", []*raft.Log{conf(7)}, nil, 0, []int{0}},
	}
	for _, tt := range tests {
		for _, kind := range fsmKinds {
			t.Run(tt.name+"/"+kind.name, func(t *testing.T) {
				fsm := kind.new()
				var applied appliedTracker
				a := newFSMAdapter(fsm, &applied)
				res := a.ApplyBatch(tt.logs)
				if len(res) != len(tt.logs) {
					t.Fatalf("%d results for %d logs", len(res), len(tt.logs))
				}
				for _, i := range tt.wantNil {
					if res[i] != nil {
						t.Errorf("result %d = %v, want nil", i, res[i])
					}
				}
				if diff := diffSlices(tt.wantEntries, fsm.snapshotEntries()); diff != "" {
					t.Errorf("entries: %s", diff)
				}
				if got, want := applied.load(), tt.logs[len(tt.logs)-1].Index; got != want {
					t.Errorf("applied = %d, want %d", got, want)
				}
				if b, ok := fsm.(*batchTestFSM); ok && b.batches != tt.wantBatches {
					t.Errorf("ApplyBatch calls = %d, want %d", b.batches, tt.wantBatches)
				}
			})
		}
	}
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

func TestAdapterSnapshotRoundTrip(t *testing.T) {
	src := &testFSM{}
	var applied appliedTracker
	a := newFSMAdapter(src, &applied)
	a.ApplyBatch(makeLogs(5))
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed=%t cancelled=%t", sink.closed, sink.cancelled)
	}

	dst := &testFSM{}
	var applied2 appliedTracker
	b := newFSMAdapter(dst, &applied2)
	if err := b.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if applied2.load() != 5 {
		t.Errorf("applied after restore = %d, want 5", applied2.load())
	}
	if diff := diffSlices(src.snapshotEntries(), dst.snapshotEntries()); diff != "" {
		t.Errorf("restored entries: %s", diff)
	}

	t.Run("foreign snapshot", func(t *testing.T) {
		err := b.Restore(io.NopCloser(bytes.NewReader([]byte("not ours at all, no"))))
		if !errors.Is(err, errBadSnapshot) {
			t.Errorf("Restore = %v, want errBadSnapshot", err)
		}
	})
}

type failSnapshot struct{}

func (failSnapshot) Persist(io.Writer) error { return errors.New("disk full") }
func (failSnapshot) Release()                {}

func TestAdapterPersistFailureCancels(t *testing.T) {
	s := &fsmSnapshot{s: failSnapshot{}, index: 3}
	var sink memSink
	if err := s.Persist(&sink); err == nil {
		t.Fatal("Persist succeeded")
	}
	if !sink.cancelled || sink.closed {
		t.Errorf("sink closed=%t cancelled=%t, want cancelled only", sink.closed, sink.cancelled)
	}
}

func FuzzReadSnapshotHeader(f *testing.F) {
	var ok bytes.Buffer
	writeSnapshotHeader(&ok, 42, &dedupTable{})
	f.Add(ok.Bytes())
	var full bytes.Buffer
	var t dedupTable
	t.admit([]byte("n1"), 7, 3)
	t.admit([]byte("n2"), 1<<32+1, 4)
	writeSnapshotHeader(&full, 9, &t)
	f.Add(full.Bytes())
	f.Add([]byte{})
	f.Add([]byte("dnsnap\x00"))
	f.Add(append(ok.Bytes(), "payload"...))
	f.Add(append(snapshotMagicV1[:], 0, 0, 0, 0, 0, 0, 0, 5))
	f.Fuzz(func(t *testing.T, data []byte) {
		index, table, err := readSnapshotHeader(bytes.NewReader(data))
		if err != nil {
			return
		}
		if [8]byte(data[:8]) == snapshotMagicV1 {
			if len(table.m) != 0 || index != binary.BigEndian.Uint64(data[8:16]) {
				t.Fatalf("v1 header %x read as index %d, %d origins", data[:16], index, len(table.m))
			}
			return
		}
		var again bytes.Buffer
		if err := writeSnapshotHeader(&again, index, &table); err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, again.Bytes()) {
			t.Fatalf("header %x re-encodes as %x", data[:min(len(data), again.Len())], again.Bytes())
		}
	})
}

package consensus

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// encodePack builds a packed entry's data the way appendPack does.
func encodePack(hdrs, cmds [][]byte) []byte {
	data := binary.AppendUvarint(nil, uint64(len(cmds)))
	for i, c := range cmds {
		data = binary.AppendUvarint(data, uint64(len(hdrs[i])))
		data = append(data, hdrs[i]...)
		data = binary.AppendUvarint(data, uint64(len(c)))
		data = append(data, c...)
	}
	return data
}

// TestPackedProposals: concurrent proposals on a slow disk share entries,
// each proposer gets its own command's result, and every command has its
// own FSM index; a proposal on an idle group goes out alone at once.
func TestPackedProposals(t *testing.T) {
	cfg := testConfig(t.TempDir(), "n1")
	cfg.storeDelay = 5 * time.Millisecond
	fsm := &batchTestFSM{}
	g := mustStart(t, cfg, fsm, Deps{Logger: testLogger(t)})
	waitLeader(t, g)
	before := g.Stats()

	const workers, each = 64, 5
	var mu sync.Mutex
	results := map[string]result{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				cmd := fmt.Sprintf("w%d-%d", w, i)
				res, err := g.Propose(t.Context(), []byte(cmd))
				if err != nil {
					t.Errorf("Propose %s: %v", cmd, err)
					return
				}
				mu.Lock()
				results[cmd] = res.(result)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	st := g.Stats().Sub(before)
	if st.PackedCommands != workers*each {
		t.Fatalf("packed %d commands, want %d", st.PackedCommands, workers*each)
	}
	if st.CommandsPerPack() < 4 {
		t.Errorf("%.1f commands per entry with %d proposers on a slow disk; the packer does not pack", st.CommandsPerPack(), workers)
	}
	if st.LogCommands < workers*each || st.LogEntries >= st.LogCommands {
		t.Errorf("log stats: %+v", st)
	}
	seen := map[uint64]string{}
	for _, e := range fsm.snapshotEntries() {
		at := fsmIndex(e.Index, int(e.Pos))
		if prev, dup := seen[at]; dup {
			t.Fatalf("FSM index %d given to %q and %q", at, prev, e.Cmd)
		}
		seen[at] = e.Cmd
	}
	for cmd, r := range results {
		if seen[r.at()] != cmd {
			t.Errorf("%s answered with the result of %q", cmd, seen[r.at()])
		}
	}

	before = g.Stats()
	start := time.Now()
	mustPropose(t, g, "alone")
	if d := g.Stats().Sub(before); d.Packs != 1 || d.PackedCommands != 1 || d.LogEntries != 1 {
		t.Errorf("a lone proposal: %+v", d)
	}
	t.Logf("%.1f commands per entry; a lone proposal took %s", st.CommandsPerPack(), time.Since(start))
}

// TestPackedRestart: a restarted node replays packed entries from its log
// to the same commands at the same FSM indexes.
func TestPackedRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir, "n1")
	cfg.storeDelay = 2 * time.Millisecond
	fsm := &testFSM{}
	g, err := New(cfg, fsm, Deps{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, g)
	proposeParallel(t, g, "p", 300, 32)
	if st := g.Stats(); st.Packs >= st.PackedCommands {
		t.Fatalf("nothing packed: %+v", st)
	}
	want := fsm.snapshotEntries()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	again := &testFSM{}
	g2 := mustStart(t, cfg, again, Deps{Logger: testLogger(t)})
	waitLeader(t, g2)
	if err := g2.WaitApplied(t.Context(), want[len(want)-1].Index); err != nil {
		t.Fatal(err)
	}
	got := again.snapshotEntries()
	if len(got) < len(want) {
		t.Fatalf("replayed %d commands, want %d", len(got), len(want))
	}
	if diff := diffSlices(want, got[:len(want)]); diff != "" {
		t.Fatalf("replay: %s", diff)
	}
}

// TestAdapterPackedDedup: commands of a packed entry are deduplicated one
// by one, and this node's proposals among them are resolved.
func TestAdapterPackedDedup(t *testing.T) {
	fsm := &batchTestFSM{}
	var applied appliedTracker
	var pending proposals
	pending.init(8)
	a := newFSMAdapter(fsm, &applied)
	a.self, a.pending = "me", &pending
	pr, err := pending.add(context.Background(), nil, 7)
	if err != nil {
		t.Fatal(err)
	}
	hdrs := [][]byte{appendHeader(nil, "peer", 1), nil, appendHeader(nil, "peer", 1), appendHeader(nil, "me", 7)}
	cmds := [][]byte{[]byte("a"), []byte("local"), []byte("a-again"), []byte("mine")}
	res := a.ApplyBatch([]*raft.Log{
		fwdLog(1, "peer", 2, "b"),
		{Index: 2, Type: raft.LogCommand, Data: encodePack(hdrs, cmds), Extensions: packExtensions},
		fwdLog(3, "peer", 2, "b-again"),
	})
	want := []entry{{1, "b", 0}, {2, "a", 0}, {2, "local", 1}, {2, "mine", 3}}
	if diff := diffSlices(want, fsm.snapshotEntries()); diff != "" {
		t.Fatalf("applied: %s", diff)
	}
	pack, ok := res[1].(packResult)
	if !ok || len(pack) != 4 || pack[2] != nil || pack[0] == nil || res[2] != nil {
		t.Fatalf("results: %#v", res)
	}
	<-pr.done
	if r, ok := pr.res.(result); !ok || r.Index != 2 || r.Pos != 3 {
		t.Errorf("seq 7 got %v, %v; want the result at index 2, place 3", pr.res, pr.err)
	}
	if fsm.batches != 1 {
		t.Errorf("%d FSM batches, want 1", fsm.batches)
	}
	if applied.load() != 3 {
		t.Errorf("applied %d, want 3", applied.load())
	}
}

// TestScaledCounts: raft's entry counts follow the commands per entry.
func TestScaledCounts(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SnapshotThreshold, cfg.TrailingLogs = 4096, 2048
	for _, tt := range []struct {
		per                 float64
		threshold, trailing uint64
	}{
		{1, 4096, 2048},
		{16, 256, 128},
		{1000, minScaledCount, minScaledCount},
	} {
		th, tr := scaledCounts(cfg, tt.per)
		if th != tt.threshold || tr != tt.trailing {
			t.Errorf("%.0f commands per entry: %d, %d; want %d, %d", tt.per, th, tr, tt.threshold, tt.trailing)
		}
	}

	c := testConfig(t.TempDir(), "n1")
	c.SnapshotInterval = 20 * time.Millisecond
	c.SnapshotThreshold, c.TrailingLogs = 4096, 2048
	c.storeDelay = 5 * time.Millisecond
	g := mustStart(t, c, &testFSM{}, Deps{Logger: testLogger(t)})
	waitLeader(t, g)
	proposeParallel(t, g, "s", 2000, 64)
	r, err := g.raft()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		if rc := r.ReloadableConfig(); rc.SnapshotThreshold >= 4096 || rc.TrailingLogs >= 2048 {
			return fmt.Errorf("raft counts %d / %d entries after packed writes (%+v)", rc.SnapshotThreshold, rc.TrailingLogs, g.Stats())
		}
		return nil
	})
}

func FuzzPackedCommands(f *testing.F) {
	f.Add(encodePack([][]byte{nil, appendHeader(nil, "n1", 3)}, [][]byte{[]byte("x"), []byte("yz")}))
	f.Add([]byte{0})
	f.Add([]byte{2, 0, 1, 'a'})
	f.Fuzz(func(t *testing.T, data []byte) {
		var hdrs, cmds [][]byte
		ok := packedCommands(data, func(pos int, hdr, cmd []byte) {
			if pos != len(cmds) {
				t.Fatalf("place %d after %d commands", pos, len(cmds))
			}
			hdrs, cmds = append(hdrs, hdr), append(cmds, cmd)
		})
		if !ok {
			return
		}
		if packedCount(data) != len(cmds) {
			t.Fatalf("count %d, %d commands", packedCount(data), len(cmds))
		}
		size := 0
		for i := range cmds {
			size += len(hdrs[i]) + len(cmds[i])
		}
		if size > len(data) {
			t.Fatalf("%d bytes of commands in %d bytes", size, len(data))
		}
		if again := encodePack(hdrs, cmds); len(again) <= len(data) && !bytes.Equal(again, data[:len(again)]) && len(again) == len(data) {
			t.Fatalf("re-encoding differs: %x vs %x", again, data)
		}
	})
}

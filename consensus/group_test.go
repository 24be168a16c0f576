package consensus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	base := DefaultConfig()
	base.Name, base.Dir, base.NodeID = "things", "/data/raft/things", "n1"
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"zero tunables default", func(c *Config) { *c = Config{Name: "p", Dir: "d", NodeID: "n"} }, ""},
		{"no name", func(c *Config) { c.Name = "" }, "name is required"},
		{"name with slash", func(c *Config) { c.Name = "a/b" }, "not a plain name"},
		{"no dir", func(c *Config) { c.Dir = "" }, "dir is required"},
		{"no node id", func(c *Config) { c.NodeID = "" }, "node ID is required"},
		{"heartbeat too low", func(c *Config) { c.HeartbeatTimeout = time.Millisecond; c.LeaderLeaseTimeout = time.Millisecond }, "heartbeat timeout 1ms is below"},
		{"lease above heartbeat", func(c *Config) { c.LeaderLeaseTimeout = time.Second }, "exceeds heartbeat"},
		{"election below heartbeat", func(c *Config) { c.ElectionTimeout = 50 * time.Millisecond }, "election timeout 50ms is below heartbeat"},
		{"batch too large", func(c *Config) { c.MaxAppendEntries = 5000 }, "outside 1..1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	t.Run("calls before start", func(t *testing.T) {
		g, err := New(testConfig(t.TempDir(), "n1"), &testFSM{}, Deps{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Propose(t.Context(), []byte("x")); !errors.Is(err, ErrClosed) {
			t.Errorf("Propose before Start = %v, want ErrClosed", err)
		}
		if err := g.ReadBarrier(t.Context()); !errors.Is(err, ErrClosed) {
			t.Errorf("ReadBarrier before Start = %v, want ErrClosed", err)
		}
		if got := g.Status().State; got != "Shutdown" {
			t.Errorf("Status().State = %q, want Shutdown", got)
		}
		if err := g.Close(); err != nil {
			t.Errorf("Close without Start: %v", err)
		}
		if err := g.Start(t.Context()); !errors.Is(err, ErrClosed) {
			t.Errorf("Start after Close = %v, want ErrClosed", err)
		}
	})
	t.Run("failed start then close", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		g, err := New(testConfig(file, "n1"), &testFSM{}, Deps{})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Start(t.Context()); err == nil {
			t.Fatal("Start on a file as dir succeeded")
		}
		for range 2 {
			if err := g.Close(); err != nil {
				t.Errorf("Close after failed Start: %v", err)
			}
		}
	})
	t.Run("close twice and calls after close", func(t *testing.T) {
		g, err := New(testConfig(t.TempDir(), "n1"), &testFSM{}, Deps{Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := g.Start(t.Context()); err == nil {
			t.Error("second Start succeeded")
		}
		waitLeader(t, g)
		for range 2 {
			if err := g.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
		if _, err := g.Propose(t.Context(), []byte("x")); !errors.Is(err, ErrClosed) {
			t.Errorf("Propose after Close = %v, want ErrClosed", err)
		}
		if err := g.WaitApplied(t.Context(), 1<<40); !errors.Is(err, ErrClosed) {
			t.Errorf("WaitApplied after Close = %v, want ErrClosed", err)
		}
		if err := g.Snapshot(); !errors.Is(err, ErrClosed) {
			t.Errorf("Snapshot after Close = %v, want ErrClosed", err)
		}
		if _, err := g.Servers(); !errors.Is(err, ErrClosed) {
			t.Errorf("Servers after Close = %v, want ErrClosed", err)
		}
	})
}

// proposeN proposes cmd-0..cmd-(n-1) from one goroutine and returns the
// results.
func proposeN(t testing.TB, g *Group, prefix string, n int) []result {
	t.Helper()
	out := make([]result, 0, n)
	for i := range n {
		res, err := g.Propose(t.Context(), fmt.Appendf(nil, "%s-%d", prefix, i))
		if err != nil {
			t.Fatalf("Propose %d: %v", i, err)
		}
		out = append(out, res.(result))
	}
	return out
}

func TestProposeApplyRestart(t *testing.T) {
	for _, kind := range fsmKinds {
		t.Run(kind.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(dir, "n1")
			cfg.NoSync = false
			fsm := kind.new()
			g := mustStart(t, cfg, fsm, Deps{Logger: testLogger(t)})
			waitLeader(t, g)
			want := proposeN(t, g, "a", 200)
			if got := fsm.snapshotResults(); !slices.Equal(got, want) {
				t.Fatalf("FSM results differ from Propose results:\n%s", diffSlices(want, got))
			}
			wantEntries := fsm.snapshotEntries()
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}

			fsm2 := kind.new()
			g2 := mustStart(t, cfg, fsm2, Deps{Logger: testLogger(t)})
			waitLeader(t, g2)
			if err := g2.ReadBarrier(t.Context()); err != nil {
				t.Fatalf("ReadBarrier after restart: %v", err)
			}
			if diff := diffSlices(wantEntries, fsm2.snapshotEntries()); diff != "" {
				t.Errorf("entries after restart (-want +got):\n%s", diff)
			}
			if diff := diffSlices(want, fsm2.snapshotResults()); diff != "" {
				t.Errorf("results after restart (-want +got):\n%s", diff)
			}
			// The group keeps working after a restart.
			if res, err := g2.Propose(t.Context(), []byte("after")); err != nil || res.(result).Seq != 200 {
				t.Errorf("Propose after restart = %v, %v; want Seq 200", res, err)
			}
		})
	}
}

func TestConcurrentProposeOrder(t *testing.T) {
	fsm := &batchTestFSM{}
	g := mustStart(t, testConfig(t.TempDir(), "n1"), fsm, Deps{Logger: testLogger(t)})
	waitLeader(t, g)
	const workers, each = 16, 50
	var wg sync.WaitGroup
	results := make([][]result, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				res, err := g.Propose(t.Context(), fmt.Appendf(nil, "w%d-%d", w, i))
				if err != nil {
					t.Errorf("Propose: %v", err)
					return
				}
				results[w] = append(results[w], res.(result))
			}
		})
	}
	wg.Wait()
	all := fsm.snapshotResults()
	if len(all) != workers*each {
		t.Fatalf("applied %d commands, want %d", len(all), workers*each)
	}
	for w, rs := range results {
		for i := 1; i < len(rs); i++ {
			if rs[i].Index <= rs[i-1].Index {
				t.Errorf("worker %d: result %d index %d not after %d", w, i, rs[i].Index, rs[i-1].Index)
			}
		}
	}
	for i, r := range all {
		if r.Seq != i {
			t.Fatalf("result %d has Seq %d", i, r.Seq)
		}
	}
	fsm.mu.Lock()
	batches := fsm.batches
	fsm.mu.Unlock()
	t.Logf("%d commands in %d ApplyBatch calls", len(all), batches)
}

// copyDir copies a group directory while the group runs, the state a
// crashed process leaves behind once its writes hit the disk.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o750)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCrashRecovery(t *testing.T) {
	for _, snapshot := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshot=%t", snapshot), func(t *testing.T) {
			cfg := testConfig(t.TempDir(), "n1")
			cfg.NoSync = false
			cfg.TrailingLogs = 10
			fsm := &batchTestFSM{}
			g := mustStart(t, cfg, fsm, Deps{Logger: testLogger(t)})
			waitLeader(t, g)
			proposeN(t, g, "a", 100)
			if snapshot {
				if err := g.Snapshot(); err != nil {
					t.Fatalf("Snapshot: %v", err)
				}
				if s := g.Status().LastSnapshotIndex; s == 0 {
					t.Fatalf("no snapshot recorded: %+v", g.Status())
				}
			}
			proposeN(t, g, "b", 50)
			want := fsm.snapshotEntries()

			// No Close: copy the files of the running group and recover
			// from the copy.
			crashed := testConfig(t.TempDir(), "n1")
			crashed.TrailingLogs = 10
			copyDir(t, cfg.Dir, crashed.Dir)
			fsm2 := &batchTestFSM{}
			g2 := mustStart(t, crashed, fsm2, Deps{Logger: testLogger(t)})
			waitLeader(t, g2)
			if err := g2.ReadBarrier(t.Context()); err != nil {
				t.Fatalf("ReadBarrier: %v", err)
			}
			if diff := diffSlices(want, fsm2.snapshotEntries()); diff != "" {
				t.Errorf("recovered entries (-want +got):\n%s", diff)
			}
			if snapshot {
				fsm2.mu.Lock()
				restores := fsm2.restores
				fsm2.mu.Unlock()
				if restores != 1 {
					t.Errorf("FSM restored %d times, want 1", restores)
				}
			}
		})
	}
}

func TestWaitApplied(t *testing.T) {
	g := mustStart(t, testConfig(t.TempDir(), "n1"), &testFSM{}, Deps{Logger: testLogger(t)})
	waitLeader(t, g)
	proposeN(t, g, "a", 3)
	next := g.AppliedIndex() + 1

	t.Run("already applied", func(t *testing.T) {
		if err := g.WaitApplied(t.Context(), next-1); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		err := g.WaitApplied(ctx, next+100)
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitApplied = %v, want ErrTimeout", err)
		}
	})
	t.Run("woken by apply", func(t *testing.T) {
		errc := make(chan error, 3)
		for _, idx := range []uint64{next, next + 1, next + 1} {
			go func() { errc <- g.WaitApplied(t.Context(), idx) }()
		}
		proposeN(t, g, "b", 2)
		for range 3 {
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("woken by close", func(t *testing.T) {
		cfg := testConfig(t.TempDir(), "n2")
		g2, err := New(cfg, &testFSM{}, Deps{})
		if err != nil {
			t.Fatal(err)
		}
		if err := g2.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { errc <- g2.WaitApplied(context.Background(), 1<<40) }()
		waitFor(t, time.Second, func() error {
			if !g2.applied.pending() {
				return errors.New("waiter not registered")
			}
			return nil
		})
		if err := g2.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("WaitApplied = %v, want ErrClosed", err)
		}
	})
}

func TestReadBarrier(t *testing.T) {
	fsm := &testFSM{}
	g := mustStart(t, testConfig(t.TempDir(), "n1"), fsm, Deps{Logger: testLogger(t)})
	waitLeader(t, g)

	// Right after election the log ends with the leader's no-op, which the
	// FSM never sees; the barrier must still complete.
	if err := g.ReadBarrier(t.Context()); err != nil {
		t.Fatalf("ReadBarrier on fresh leader: %v", err)
	}
	if a, c := g.AppliedIndex(), g.CommitIndex(); a < c-1 {
		t.Errorf("applied %d far below commit %d", a, c)
	}

	proposeN(t, g, "a", 10)
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			commit := g.CommitIndex()
			if err := g.ReadBarrier(t.Context()); err != nil {
				t.Errorf("ReadBarrier: %v", err)
				return
			}
			if a := g.AppliedIndex(); a < commit {
				t.Errorf("applied %d < commit %d seen before the barrier", a, commit)
			}
		})
	}
	wg.Wait()
	if n := len(fsm.snapshotEntries()); n != 10 {
		t.Errorf("FSM has %d entries, want 10", n)
	}

	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := g.ReadBarrier(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("ReadBarrier with cancelled ctx = %v", err)
		}
	})
}

func TestLeaderCh(t *testing.T) {
	g, err := New(testConfig(t.TempDir(), "n1"), &testFSM{}, Deps{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ch := g.LeaderCh(ctx)
	deadline := time.After(5 * time.Second)
	for leader := false; !leader; {
		select {
		case leader = <-ch:
		case <-deadline:
			t.Fatal("never became leader")
		}
	}
	other := g.LeaderCh(t.Context())
	if v := <-other; !v {
		t.Error("new LeaderCh does not start with true")
	}
	cancel()
	waitFor(t, time.Second, func() error {
		select {
		case _, ok := <-ch:
			if !ok {
				return nil
			}
		default:
		}
		return errors.New("channel not closed after ctx end")
	})
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	for range other {
	}
}

func TestServersAndStatus(t *testing.T) {
	g := mustStart(t, testConfig(t.TempDir(), "n1"), &testFSM{}, Deps{})
	waitLeader(t, g)
	proposeN(t, g, "a", 5)
	servers, err := g.Servers()
	if err != nil {
		t.Fatal(err)
	}
	want := []Server{{ID: "n1", Address: "n1", Suffrage: "Voter"}}
	if diff := diffSlices(want, servers); diff != "" {
		t.Errorf("Servers (-want +got):\n%s", diff)
	}
	st := g.Status()
	if st.State != "Leader" || st.LeaderID != "n1" || st.Term == 0 || st.CommitIndex < 5 || st.AppliedIndex < 5 || st.NumPeers != 0 {
		t.Errorf("Status = %+v", st)
	}
	if id, addr := g.Leader(); id != "n1" || addr != "n1" {
		t.Errorf("Leader() = %q, %q", id, addr)
	}
	if err := g.AddVoter(t.Context(), "n1", "n1"); err != nil {
		t.Errorf("AddVoter of itself: %v", err)
	}
	if !slices.ContainsFunc(servers, func(s Server) bool { return s.ID == "n1" }) {
		t.Error("n1 missing")
	}
}

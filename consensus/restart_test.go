package consensus

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proposeParallel proposes n commands from workers goroutines.
func proposeParallel(t testing.TB, g *Group, prefix string, n, workers int) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if _, err := g.Propose(context.Background(), fmt.Appendf(nil, "%s-%d", prefix, i)); err != nil {
					t.Errorf("Propose: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestRestartRecoveryTime restarts a group holding 100k entries (20k under
// -race), most of them behind a snapshot, and reports how long until the first write.
func TestRestartRecoveryTime(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100k entries")
	}
	total, snapAt := 100_000, 80_000
	if raceEnabled {
		total, snapAt = 20_000, 16_000
	}
	cfg := testConfig(t.TempDir(), "n1")
	cfg.HeartbeatTimeout = DefaultConfig().HeartbeatTimeout
	cfg.ElectionTimeout = DefaultConfig().ElectionTimeout
	cfg.LeaderLeaseTimeout = DefaultConfig().LeaderLeaseTimeout
	fsm := &batchTestFSM{}
	g := mustStart(t, cfg, fsm, Deps{Logger: testLogger(t)})
	waitLeader(t, g)
	load := time.Now()
	proposeParallel(t, g, "a", snapAt, 64)
	if err := g.Snapshot(); err != nil {
		t.Fatal(err)
	}
	proposeParallel(t, g, "b", total-snapAt, 64)
	t.Logf("loaded %d entries in %s", total, time.Since(load))
	want := fsm.snapshotEntries()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	fsm2 := &batchTestFSM{}
	start := time.Now()
	g2, err := New(cfg, fsm2, Deps{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g2.Close() })
	if err := g2.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	started := time.Since(start)
	waitLeader(t, g2)
	leader := time.Since(start)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := g2.Propose(ctx, []byte("first")); err != nil {
		t.Fatal(err)
	}
	firstWrite := time.Since(start)
	t.Logf("restart with %d entries (snapshot at %d): Start %s, leader %s, first Propose done %s (all from Start)",
		total, snapAt, started, leader, firstWrite)
	got := fsm2.snapshotEntries()
	if diff := diffSlices(want, got[:len(got)-1]); diff != "" {
		t.Fatalf("state after restart: %s", diff)
	}
}

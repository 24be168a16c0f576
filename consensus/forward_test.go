package consensus

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// memForwarder is the in-memory Forwarder: it calls the target Group's
// leader-side methods directly and carries every error through ErrorCode
// and ErrorFromCode, as the node's wire does.
type memForwarder struct {
	mu     sync.Mutex
	groups map[memTarget]*Group
	sent   [][]byte // every forwarded command, in send order

	// dup delivers every Forward twice, like a transport that retries.
	dup      atomic.Bool
	forwards atomic.Int64
	reads    atomic.Int64
	// multiReads counts ReadIndexes calls, multiGroups the groups they
	// asked for.
	multiReads  atomic.Int64
	multiGroups atomic.Int64
	// noHints drops the committed entry of every Forward's answer.
	noHints atomic.Bool
	// readWire is how long a read-index round trip takes on the wire (0:
	// none). Over a real network readers join the next round while one is
	// under way; in memory, without it, a round can finish before the next
	// reader runs.
	readWire atomic.Int64
}

func (f *memForwarder) wire() {
	if d := time.Duration(f.readWire.Load()); d > 0 {
		time.Sleep(d)
	}
}

// memTarget is a group on a node.
type memTarget struct{ node, group string }

var (
	_ Forwarder   = (*memForwarder)(nil)
	_ ReadIndexer = (*memForwarder)(nil)
)

func newMemForwarder() *memForwarder { return &memForwarder{groups: make(map[memTarget]*Group)} }

func (f *memForwarder) add(id string, g *Group) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.groups[memTarget{id, g.cfg.Name}] = g
}

func (f *memForwarder) target(group, id string) (*Group, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.groups[memTarget{id, group}]
	if g == nil {
		return nil, fmt.Errorf("%w: dial %s: no such node or group", ErrNotApplied, id)
	}
	return g, nil
}

func (f *memForwarder) sentAt(i int) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent[i]
}

func (f *memForwarder) Forward(ctx context.Context, group, leaderID, leaderAddr string, cmd []byte) (Committed, error) {
	g, err := f.target(group, leaderID)
	if err != nil {
		return Committed{}, err
	}
	f.forwards.Add(1)
	wire := slices.Clone(cmd)
	f.mu.Lock()
	f.sent = append(f.sent, wire)
	f.mu.Unlock()
	c, err := g.AcceptForwarded(ctx, wire)
	if err == nil && f.dup.Load() {
		c, err = g.AcceptForwarded(ctx, wire)
	}
	if f.noHints.Load() {
		c = Committed{}
	}
	return c, overWire(err)
}

func (f *memForwarder) ReadIndex(ctx context.Context, group, leaderID, leaderAddr string) (uint64, error) {
	g, err := f.target(group, leaderID)
	if err != nil {
		return 0, err
	}
	f.reads.Add(1)
	f.wire()
	c, err := g.LeaderReadIndex(ctx)
	return c.Index, overWire(err)
}

// ReadIndexes asks each group in turn (no sharing between callers).
func (f *memForwarder) ReadIndexes(ctx context.Context, leaderID, leaderAddr string, groups []string) ([]Committed, error) {
	f.multiReads.Add(1)
	f.multiGroups.Add(int64(len(groups)))
	f.wire()
	out := make([]Committed, len(groups))
	for i, group := range groups {
		g, err := f.target(group, leaderID)
		if err != nil {
			return nil, err
		}
		if out[i], err = g.LeaderReadIndex(ctx); err != nil {
			return nil, overWire(err)
		}
	}
	return out, nil
}

func overWire(err error) error {
	if err == nil {
		return nil
	}
	return ErrorFromCode(ErrorCode(err), err.Error())
}

func others(nodes []*clusterNode, not *clusterNode) []*clusterNode {
	var out []*clusterNode
	for _, nd := range nodes {
		if nd != not {
			out = append(out, nd)
		}
	}
	return out
}

// counts maps each applied command to how often nd's FSM applied it.
func counts(nd *clusterNode) map[string]int {
	m := make(map[string]int)
	for _, e := range nd.fsm.snapshotEntries() {
		m[e.Cmd]++
	}
	return m
}

func byIndex(nd *clusterNode) map[uint64]string {
	m := make(map[uint64]string)
	for _, e := range nd.fsm.snapshotEntries() {
		m[fsmIndex(e.Index, int(e.Pos))] = e.Cmd
	}
	return m
}

// settle waits until every node applied the leader's current read index.
func settle(t testing.TB, nodes []*clusterNode) {
	t.Helper()
	leader := leaderOf(t, nodes)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := leader.g.ReadBarrier(ctx); err != nil {
		t.Fatalf("ReadBarrier: %v", err)
	}
	waitReplicated(t, nodes, leader.g.AppliedIndex())
}

func mustPropose(t *testing.T, g *Group, cmd string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	res, err := g.Propose(ctx, []byte(cmd))
	if err != nil {
		t.Fatalf("%s Propose(%s): %v", g.cfg.NodeID, cmd, err)
	}
	r, ok := res.(result)
	if !ok {
		t.Fatalf("%s Propose(%s) = %#v, want a result", g.cfg.NodeID, cmd, res)
	}
	return r
}

func TestForward(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	fwd := newMemForwarder()
	nodes := startClusterWith(t, 3, clusterOptions{fwd: fwd})
	leader := leaderOf(t, nodes)
	followers := others(nodes, leader)

	t.Run("propose on followers", func(t *testing.T) {
		for _, nd := range followers {
			for i := range 5 {
				cmd := fmt.Sprintf("%s-%d", nd.id, i)
				r := mustPropose(t, nd.g, cmd)
				// Propose returns once this node applied the entry.
				if got := byIndex(nd)[r.at()]; got != cmd {
					t.Fatalf("%s: entry %d is %q right after Propose, want %q", nd.id, r.Index, got, cmd)
				}
			}
		}
		if fwd.forwards.Load() == 0 {
			t.Fatal("nothing was forwarded")
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		var mu sync.Mutex
		results := make(map[string]result)
		var wg sync.WaitGroup
		for w := range 6 {
			nd := nodes[w%len(nodes)]
			wg.Go(func() {
				for i := range 15 {
					cmd := fmt.Sprintf("c%d-%d", w, i)
					res, err := nd.g.Propose(t.Context(), []byte(cmd))
					if err != nil {
						t.Errorf("%s Propose: %v", nd.id, err)
						return
					}
					mu.Lock()
					results[cmd] = res.(result)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		settle(t, nodes)
		applied := byIndex(nodes[0])
		for cmd, r := range results {
			if applied[r.at()] != cmd {
				t.Errorf("%s acknowledged at %d, which holds %q", cmd, r.Index, applied[r.at()])
			}
		}
		for cmd, n := range counts(nodes[0]) {
			if n != 1 {
				t.Errorf("%s applied %d times", cmd, n)
			}
		}
	})

	t.Run("duplicate delivery", func(t *testing.T) {
		fwd.dup.Store(true)
		defer fwd.dup.Store(false)
		for _, nd := range followers {
			for i := range 5 {
				mustPropose(t, nd.g, fmt.Sprintf("dup-%s-%d", nd.id, i))
			}
		}
		settle(t, nodes)
		for _, nd := range nodes {
			for cmd, n := range counts(nd) {
				if n != 1 {
					t.Errorf("%s: %s applied %d times", nd.id, cmd, n)
				}
			}
		}
	})

	t.Run("linearizable reads", func(t *testing.T) {
		// Write through one node, read through another right away: the
		// read must see the acknowledged write.
		for i := range 30 {
			from := nodes[i%3]
			via := nodes[(i+1+i/3%2)%3]
			cmd := fmt.Sprintf("lin-%d", i)
			mustPropose(t, from.g, cmd)
			if err := via.g.ReadBarrier(t.Context()); err != nil {
				t.Fatalf("%s ReadBarrier: %v", via.id, err)
			}
			if counts(via)[cmd] != 1 {
				t.Fatalf("write %s acknowledged by %s is not visible to a read through %s", cmd, from.id, via.id)
			}
		}
	})

	t.Run("batched read index", func(t *testing.T) {
		via := followers[0]
		roundTrips := func() int64 { return fwd.reads.Load() + fwd.multiReads.Load() }
		fwd.readWire.Store(int64(200 * time.Microsecond)) // a LAN round trip
		defer fwd.readWire.Store(0)
		before := roundTrips()
		const readers, each = 32, 10
		var wg sync.WaitGroup
		for range readers {
			wg.Go(func() {
				for range each {
					if err := via.g.ReadBarrier(t.Context()); err != nil {
						t.Errorf("ReadBarrier: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		calls := roundTrips() - before
		t.Logf("%d follower reads took %d read-index round trips", readers*each, calls)
		if calls == 0 {
			t.Fatal("follower reads asked the leader nothing")
		}
		if calls*2 > readers*each {
			t.Errorf("%d round trips for %d reads: not batched", calls, readers*each)
		}
	})
}

// TestForwardFailover closes the leader under forwarded write load (every
// forward delivered twice) and checks that nothing applies twice, every
// acknowledged write applies exactly once where it was acknowledged, and
// writes succeed again through the survivors.
func TestForwardFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	fwd := newMemForwarder()
	fwd.dup.Store(true)
	nodes := startClusterWith(t, 3, clusterOptions{fwd: fwd})
	leader := leaderOf(t, nodes)

	type outcome struct {
		res result
		err error
	}
	var (
		mu          sync.Mutex
		outcomes    = make(map[string]outcome)
		acked       atomic.Int64
		afterClose  atomic.Int64
		closed      atomic.Bool
		stop        = make(chan struct{})
		wg          sync.WaitGroup
		unexpected  atomic.Value
		workersPerN = 3
	)
	for w := range workersPerN * len(nodes) {
		nd := nodes[w%len(nodes)]
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				cmd := fmt.Sprintf("w%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				res, err := nd.g.Propose(ctx, []byte(cmd))
				cancel()
				var o outcome
				o.err = err
				if err == nil {
					o.res = res.(result)
					acked.Add(1)
					if closed.Load() {
						afterClose.Add(1)
					}
				} else if !errors.Is(err, ErrNotApplied) && !errors.Is(err, ErrLeadershipLost) &&
					!errors.Is(err, ErrTimeout) && !errors.Is(err, ErrClosed) {
					unexpected.Store(fmt.Sprintf("%s: %v", cmd, err))
				}
				mu.Lock()
				outcomes[cmd] = o
				mu.Unlock()
				if errors.Is(err, ErrClosed) {
					return // this worker's node is gone
				}
			}
		})
	}
	waitFor(t, 10*time.Second, func() error {
		if n := acked.Load(); n < 60 {
			return fmt.Errorf("%d writes acknowledged before failover", n)
		}
		return nil
	})
	if err := leader.g.Close(); err != nil {
		t.Fatal(err)
	}
	closed.Store(true)
	start := time.Now()
	waitFor(t, 10*time.Second, func() error {
		if n := afterClose.Load(); n < 60 {
			return fmt.Errorf("%d writes acknowledged after failover", n)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	t.Logf("writes acknowledged again %s after closing the leader", time.Since(start).Round(time.Millisecond))
	if u := unexpected.Load(); u != nil {
		t.Errorf("unexpected error class: %v", u)
	}

	survivors := others(nodes, leader)
	settle(t, survivors)
	var ok, notApplied, unknown, unknownApplied int
	for _, nd := range survivors {
		applied := counts(nd)
		at := byIndex(nd)
		for cmd, n := range applied {
			if n != 1 {
				t.Errorf("%s: %s applied %d times", nd.id, cmd, n)
			}
		}
		for cmd, o := range outcomes {
			switch {
			case o.err == nil:
				if at[o.res.at()] != cmd {
					t.Errorf("%s: acknowledged %s at %d, which holds %q", nd.id, cmd, o.res.Index, at[o.res.at()])
				}
			case errors.Is(o.err, ErrNotApplied):
				if applied[cmd] != 0 {
					t.Errorf("%s: %s reported not applied, but applied", nd.id, cmd)
				}
			}
		}
	}
	applied := counts(survivors[0])
	for _, o := range outcomes {
		switch {
		case o.err == nil:
			ok++
		case errors.Is(o.err, ErrNotApplied):
			notApplied++
		default:
			unknown++
		}
	}
	for cmd, o := range outcomes {
		if o.err != nil && !errors.Is(o.err, ErrNotApplied) && applied[cmd] == 1 {
			unknownApplied++
		}
	}
	t.Logf("%d acknowledged, %d not applied, %d unknown outcome (%d of them applied)", ok, notApplied, unknown, unknownApplied)
	// The closed leader's log is a prefix of the survivors'.
	old, now := leader.fsm.snapshotEntries(), survivors[0].fsm.snapshotEntries()
	if len(old) > len(now) || diffSlices(old, now[:len(old)]) != "" {
		t.Errorf("old leader's entries are not a prefix of the survivors': %s", diffSlices(old, now[:min(len(old), len(now))]))
	}

	t.Run("no quorum", func(t *testing.T) {
		if err := survivors[0].g.Close(); err != nil {
			t.Fatal(err)
		}
		last := survivors[1].g
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		if _, err := last.Propose(ctx, []byte("lonely")); !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrLeadershipLost) {
			t.Errorf("Propose without quorum = %v, want ErrTimeout or ErrLeadershipLost", err)
		}
		ctx2, cancel2 := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel2()
		if err := last.ReadBarrier(ctx2); !errors.Is(err, ErrTimeout) {
			t.Errorf("ReadBarrier without quorum = %v, want ErrTimeout", err)
		}
	})
}

// TestForwardRestart checks that deduplication survives snapshots and
// restarts: a replayed delivery of an old forwarded command is dropped by
// every node, including those that rebuilt the table from a snapshot, and
// a restarted node's new proposals still apply.
func TestForwardRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	fwd := newMemForwarder()
	nodes := startClusterWith(t, 3, clusterOptions{fwd: fwd, config: func(c *Config) {
		c.TrailingLogs = 2
		c.SnapshotInterval = time.Hour
	}})
	leader := leaderOf(t, nodes)
	followers := others(nodes, leader)
	f := followers[0]
	for i := range 5 {
		mustPropose(t, f.g, fmt.Sprintf("a-%d", i))
	}
	first := fwd.sentAt(0)
	proposeN(t, leader.g, "pad", 5)
	settle(t, nodes)
	for _, nd := range nodes {
		if err := nd.g.Snapshot(); err != nil {
			t.Fatalf("%s Snapshot: %v", nd.id, err)
		}
	}

	if err := f.g.Close(); err != nil {
		t.Fatal(err)
	}
	f.start(t, f.net, f.fwd)
	f.fsm.mu.Lock()
	restores := f.fsm.restores
	f.fsm.mu.Unlock()
	if restores == 0 {
		t.Fatal("restarted follower did not restore its snapshot")
	}
	// Deliver the first forwarded command again: raft commits it, every
	// FSM must drop it.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := leader.g.AcceptForwarded(ctx, first); err != nil {
		t.Fatalf("replay: %v", err)
	}
	// The restarted node's new proposals carry fresh sequence numbers.
	r := mustPropose(t, f.g, "b-0")
	if got := byIndex(f)[r.at()]; got != "b-0" {
		t.Fatalf("after restart: entry %d is %q, want b-0", r.Index, got)
	}
	settle(t, nodes)

	// A node restarting now restores the snapshot taken before the replay
	// and applies the replayed entry from its log: it must drop it too.
	g2 := followers[1]
	if err := g2.g.Close(); err != nil {
		t.Fatal(err)
	}
	g2.start(t, g2.net, g2.fwd)
	settle(t, nodes)
	for _, nd := range nodes {
		for cmd, n := range counts(nd) {
			if n != 1 {
				t.Errorf("%s: %s applied %d times", nd.id, cmd, n)
			}
		}
		if counts(nd)["a-0"] != 1 {
			t.Errorf("%s lost a-0", nd.id)
		}
	}
}

// BenchmarkForwardProposeParallel measures durable writes with 64
// concurrent proposers spread over a 3-node in-memory cluster: two thirds
// of them forward through a follower.
func BenchmarkForwardProposeParallel(b *testing.B) {
	fwd := newMemForwarder()
	nodes := startClusterWith(b, 3, clusterOptions{fwd: fwd, config: func(c *Config) { c.NoSync = false }})
	leaderOf(b, nodes)
	cmd := []byte(`{"thing":"org.acme:sensor-1","path":"/features/temp/properties/value","value":21.5}`)
	var next atomic.Int64
	b.SetParallelism(64 / max(1, runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		g := nodes[next.Add(1)%3].g
		for pb.Next() {
			if _, err := g.Propose(context.Background(), cmd); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// TestForwardCommitHint: a follower that forwarded a proposal learns its
// commit from the leader's answer (a commit hint), not with the leader's
// next idle append (CommitTimeout, here far longer than the deadline).
// Without the hint the same proposal times out.
func TestForwardCommitHint(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	fwd := newMemForwarder()
	nodes := startClusterWith(t, 3, clusterOptions{fwd: fwd, config: func(c *Config) {
		c.CommitTimeout = 20 * time.Second
	}})
	leader := leaderOf(t, nodes)
	for _, nd := range others(nodes, leader) {
		before := nd.g.Stats().CommitHints
		for i := range 3 {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			res, err := nd.g.Propose(ctx, fmt.Appendf(nil, "%s-hint-%d", nd.id, i))
			cancel()
			if err != nil {
				t.Fatalf("%s: Propose through the leader: %v (%+v)", nd.id, err, nd.g.Status())
			}
			if r, ok := res.(result); !ok || r.Index == 0 {
				t.Fatalf("%s: result %#v", nd.id, res)
			}
		}
		if nd.g.Stats().CommitHints == before {
			t.Fatalf("%s applied its proposals without a commit hint", nd.id)
		}
	}

	fwd.noHints.Store(true)
	nd := others(nodes, leader)[0]
	// Stop the other follower: the commit then needs nd's own ack, so the
	// append that carries nd's entry cannot also carry its commit (when
	// the other follower acked first, the leader's request to nd could).
	if err := others(nodes, leader)[1].g.Close(); err != nil {
		t.Fatal(err)
	}
	term := leader.g.Status().Term
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err := nd.g.Propose(ctx, []byte("no-hint"))
	switch {
	case errors.Is(err, ErrTimeout):
	case leader.g.Status().Term != term || !leader.g.IsLeader():
		// A new leader's first append carries the commit index.
		t.Logf("leadership changed during the proposal without a hint (%v)", err)
	default:
		t.Fatalf("Propose without a commit hint = %v, want ErrTimeout (the leader's next append is 20 s away)", err)
	}
}

// TestReadBarrierAll: a follower's read over two groups led by one node
// costs one ReadIndexes round trip and sees every write acknowledged
// before it in both; when the groups have different leaders, each passes
// its own barrier.
func TestReadBarrierAll(t *testing.T) {
	if testing.Short() {
		t.Skip("two 3-node groups")
	}
	fwd := newMemForwarder()
	named := func(name string) func(*Config) {
		return func(c *Config) {
			c.Name = name
			// No commit index from idle appends: a follower learns it
			// from the read index's commit hint, or waits 20 s.
			c.CommitTimeout = 20 * time.Second
		}
	}
	as := startClusterWith(t, 3, clusterOptions{fwd: fwd, config: named("a")})
	bs := startClusterWith(t, 3, clusterOptions{fwd: fwd, config: named("b")})
	la, lb := leaderOf(t, as), leaderOf(t, bs)
	if la.id != lb.id {
		t.Fatalf("groups led by %s and %s; both bootstrap on n1", la.id, lb.id)
	}
	var fa, fb *clusterNode
	for i := range as {
		if as[i].id != la.id {
			fa, fb = as[i], bs[i]
			break
		}
	}

	// Leadership may move on a loaded machine: every barrier must hold,
	// and the single round trip must show whenever one node kept leading.
	single := 0
	for i := range 5 {
		ra := mustPropose(t, la.g, fmt.Sprintf("a%d", i))
		rb := mustPropose(t, lb.g, fmt.Sprintf("b%d", i))
		multi, groups, reads := fwd.multiReads.Load(), fwd.multiGroups.Load(), fwd.reads.Load()
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		err := ReadBarrierAll(ctx, fa.g, fb.g)
		cancel()
		if err != nil {
			t.Fatalf("ReadBarrierAll: %v", err)
		}
		if fwd.multiReads.Load()-multi == 1 && fwd.multiGroups.Load()-groups == 2 && fwd.reads.Load() == reads {
			single++
		}
		if fa.g.AppliedIndex() < ra.Index || fb.g.AppliedIndex() < rb.Index {
			t.Fatalf("after ReadBarrierAll applied a=%d b=%d, want >= %d, %d", fa.g.AppliedIndex(), fb.g.AppliedIndex(), ra.Index, rb.Index)
		}
	}
	if single == 0 {
		t.Fatal("no ReadBarrierAll on a follower took a single ReadIndexes round trip")
	}

	// On the leader of both: local confirm rounds, no round trip.
	before := fwd.multiReads.Load()
	if err := ReadBarrierAll(t.Context(), la.g, lb.g); err != nil {
		t.Fatalf("ReadBarrierAll on the leader: %v", err)
	}
	if fwd.multiReads.Load() != before && la.g.IsLeader() && lb.g.IsLeader() {
		t.Fatal("ReadBarrierAll on the leader of both groups asked a remote node")
	}

	// Different leaders: each group passes its own barrier.
	var other *clusterNode
	for _, nd := range bs {
		if nd.id != lb.id {
			other = nd
			break
		}
	}
	transferLeadership(t, lb.g, other.id)
	waitFor(t, 10*time.Second, func() error {
		if id, _ := fb.g.Leader(); id != other.id {
			return fmt.Errorf("%s sees leader %q of b, want %s", fb.id, id, other.id)
		}
		return nil
	})
	ra := mustPropose(t, la.g, "a-last")
	rb := mustPropose(t, other.g, "b-last")
	for i, nd := range as {
		if nd.id == la.id || nd.id == other.id {
			continue
		}
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		err := ReadBarrierAll(ctx, nd.g, bs[i].g)
		cancel()
		if err != nil {
			t.Fatalf("ReadBarrierAll with two leaders: %v", err)
		}
		if nd.g.AppliedIndex() < ra.Index || bs[i].g.AppliedIndex() < rb.Index {
			t.Fatalf("after ReadBarrierAll applied a=%d b=%d, want >= %d, %d", nd.g.AppliedIndex(), bs[i].g.AppliedIndex(), ra.Index, rb.Index)
		}
	}
}

// transferLeadership hands g's leadership to the member id (whose address
// on a memNetwork is its id).
func transferLeadership(t *testing.T, g *Group, id string) {
	t.Helper()
	r, err := g.raft()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(id)).Error(); err != nil {
		t.Fatalf("transfer leadership to %s: %v", id, err)
	}
}

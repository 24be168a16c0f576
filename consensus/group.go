package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Deps are the collaborators of a Group.
type Deps struct {
	// Logger receives raft's logs; nil discards them.
	Logger *slog.Logger
	// Stream carries raft RPCs to and from other nodes; nil runs a single
	// node on an in-memory transport.
	Stream StreamLayer
	// Forwarder lets a follower serve Propose and ReadBarrier through the
	// leader; nil makes them return ErrNotLeader on a follower.
	Forwarder Forwarder
}

// Group is one raft instance driving one FSM. Its methods are safe for
// concurrent use.
type Group struct {
	cfg    Config
	log    *slog.Logger
	stream StreamLayer
	fwd    Forwarder
	fsm    *fsmAdapter

	applied appliedTracker
	stats   statCounters

	// mu serialises Start and Close.
	mu      sync.Mutex
	started bool
	closed  bool
	down    bool // resources released

	// r is set by Start once raft runs; nil before.
	r       atomic.Pointer[raft.Raft]
	closing atomic.Bool
	store   *pagedStore
	stable  *closableStable // store as raft's stable store, safe across Close
	logs    raft.LogStore
	snaps   *raft.FileSnapshotStore
	trans   raft.Transport
	// hints hands raft the commits learned from the leader's answers; nil
	// on the in-memory transport of a single node (commithint.go).
	hints      *hintTransport
	commitHint commitHints

	// done is closed once raft has shut down; loops and waiters stop.
	done chan struct{}
	wg   sync.WaitGroup

	catchUpKick chan struct{}
	// leaderReads runs the leader's shared confirm rounds (ReadBarrier on
	// the leader, LeaderReadIndex); followerReads runs one ReadIndex round
	// trip to the leader for a follower's concurrent readers.
	leaderReads   readBatcher
	followerReads readBatcher
	// readyTerm is the last term in which this node, as leader, saw an
	// entry of its own term committed; until then its commit index may
	// trail the previous leader's.
	readyTerm atomic.Uint64
	// reads is the leader's read lease (read.go).
	reads      readLease
	leaders    leaderFanout
	leaderSeen leaderWatch

	// Forwarded proposals: sequence numbers (seq is the last one handed
	// out, seqCeil the persisted reservation; seqMu serialises extending
	// it) and the proposals waiting for their local apply.
	seq     atomic.Uint64
	seqCeil atomic.Uint64
	seqMu   sync.Mutex
	pending proposals

	// pack is the leader's proposal packer (pack.go).
	pack packer
}

// New allocates a Group for fsm; Start begins work.
func New(cfg Config, fsm FSM, deps Deps) (*Group, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if fsm == nil {
		return nil, errors.New("consensus: nil FSM")
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &Group{
		cfg:         cfg,
		log:         logger.With(logKeyGroup, cfg.Name),
		stream:      deps.Stream,
		fwd:         deps.Forwarder,
		done:        make(chan struct{}),
		catchUpKick: make(chan struct{}, 1),
	}
	g.pending.init(maxPendingForwards)
	g.pack.init(cfg.PackDepth)
	g.fsm = newFSMAdapter(fsm, &g.applied)
	g.fsm.stats = &g.stats
	g.fsm.self = cfg.NodeID
	g.fsm.pending = &g.pending
	g.leaderReads.init()
	g.followerReads.init()
	g.commitHint.init()
	g.leaders.init()
	g.leaderSeen.init()
	return g, nil
}

// logCacheEntries is the most entries the log cache keeps.
const logCacheEntries = 64

const (
	logKeyGroup = "group"
	logKeyError = "error"
)

// Start opens the stores, starts raft and, on first start with Bootstrap,
// writes the first configuration: this node as the single voter, or
// BootstrapServers. It returns once raft runs, before any
// leader is elected; a single node becomes leader about one to two
// HeartbeatTimeouts later. Start restores the latest snapshot before it
// returns.
func (g *Group) Start(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closed:
		return ErrClosed
	case g.started:
		return fmt.Errorf("consensus group %s: already started", g.cfg.Name)
	}
	g.started = true
	if err := g.start(ctx); err != nil {
		err = errors.Join(err, g.teardown())
		return fmt.Errorf("start consensus group %s: %w", g.cfg.Name, err)
	}
	return nil
}

func (g *Group) start(ctx context.Context) error {
	cfg := g.cfg
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return err
	}
	path := filepath.Join(cfg.Dir, "raft.db")
	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path:   path,
		NoSync: cfg.NoSync,
		// The log is appended and truncated all the time, so bolt's free
		// list is large and changes on every commit. A hash map free list
		// does not reallocate and merge an array per commit, and not
		// writing the free list at all saves a page write per commit; bolt
		// rebuilds it on open by scanning the (small) log database. Both
		// keep bolt's crash safety, and etcd runs its backend this way.
		BoltOptions: &bbolt.Options{
			Timeout:        time.Second,
			NoFreelistSync: true,
			FreelistType:   bbolt.FreelistMapType,
		},
	})
	if err != nil {
		return fmt.Errorf("open log store: %w", err)
	}
	store := newPagedStore(bolt, path)
	g.store = store
	g.stable = &closableStable{s: store}
	if err := g.reserveSeq(); err != nil {
		return err
	}
	// The cache serves recent entries to replication and to the apply
	// loop of followers without a bolt read. Under load an entry packs
	// tens of commands (pack.go), so a few dozen entries cover a round of
	// replication; more would only hold memory.
	cache, err := raft.NewLogCache(min(logCacheEntries, 2*cfg.MaxAppendEntries), store)
	if err != nil {
		return err
	}
	g.reads.dur = cfg.HeartbeatTimeout / 2
	logs := countingLogs{LogStore: cache, c: &g.stats, delay: cfg.storeDelay, lease: &g.reads, writes: &g.pack.writes}
	g.logs = logs
	hcl := newHCLog(g.log, "raft")
	if g.snaps, err = raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hcl.Named("snapshot")); err != nil {
		return fmt.Errorf("open snapshot store: %w", err)
	}
	if g.stream == nil {
		_, g.trans = raft.NewInmemTransport(raft.ServerAddress(cfg.NodeID))
	} else {
		g.hints = newHintTransport(raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  raftStream{g.stream},
			MaxPool: 3,
			Timeout: 10 * time.Second,
			Logger:  hcl.Named("net"),
			// No pipelined replication. In hashicorp/raft 1.7.3 the
			// pipeline deadlocks when a follower rejects an append (it is
			// behind, after a restart or a partition): the decoder stops
			// reading responses, the transport's decode goroutine blocks
			// handing over the next one, and the sender blocks handing
			// over its request, so replication to that follower stops for
			// good and Shutdown waits forever. One RPC in flight uses the
			// synchronous path, which the library's authors measured as
			// no slower under batching.
			MaxRPCsInFlight: 1,
		}))
		g.trans = g.hints
		if !cfg.noEarly {
			logs.early = newEarlyReplicator(g, g.hints)
			g.logs = logs
		}
	}
	existing, err := raft.HasExistingState(g.logs, store, g.snaps)
	if err != nil {
		return fmt.Errorf("inspect raft state: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.MaxAppendEntries = cfg.MaxAppendEntries
	// A buffered apply channel lets many proposers queue while the leader
	// writes the previous batch, so concurrent proposals share one fsync.
	rc.BatchApplyCh = true
	// Pre-vote off. In hashicorp/raft v1.7.3 a node grants a pre-vote for
	// a term in which it already voted for itself (requestPreVote does not
	// look at the persisted vote), so a won pre-vote often ends in a split
	// real vote; with two round trips per election, a loaded node (or one
	// that just came back from a partition) saw elections fail for tens of
	// seconds in testnet. Plain elections cost one round trip; the price is
	// one extra election when a member with a higher term returns from a
	// partition (or a starved follower times out).
	rc.PreVoteDisabled = true
	rc.Logger = hcl
	rc.NoLegacyTelemetry = true

	// restartGuard: this node may have answered a leader's quorum round
	// just before it stopped, and a restarted raft knows no leader, so it
	// would vote at once. Waiting out one read lease first keeps that
	// leader's lease sound (readLease).
	select {
	case <-time.After(g.reads.dur):
	case <-ctx.Done():
		return ctx.Err()
	}
	r, err := raft.NewRaft(rc, g.fsm, g.logs, g.stable, g.snaps, g.trans)
	if err != nil {
		return fmt.Errorf("new raft: %w", err)
	}
	g.r.Store(r)

	g.wg.Add(7)
	go g.packLoop(r)
	go g.scaleLoop(r)
	go g.catchUpLoop(r)
	go g.hintLoop(r)
	go g.leaderReads.loop(g, func(ctx context.Context) (Committed, error) { return g.confirmLeader(ctx, r) })
	go g.followerReads.loop(g, g.remoteReadIndex)
	go g.leaders.loop(g, r)

	if !existing && cfg.Bootstrap {
		servers := []raft.Server{{
			Suffrage: raft.Voter,
			ID:       raft.ServerID(cfg.NodeID),
			Address:  g.trans.LocalAddr(),
		}}
		if len(cfg.BootstrapServers) > 0 {
			servers = servers[:0]
			for _, sv := range cfg.BootstrapServers {
				suffrage := raft.Voter
				if sv.Suffrage == raft.Nonvoter.String() {
					suffrage = raft.Nonvoter
				}
				servers = append(servers, raft.Server{Suffrage: suffrage, ID: raft.ServerID(sv.ID), Address: raft.ServerAddress(sv.Address)})
			}
		}
		f := r.BootstrapCluster(raft.Configuration{Servers: servers})
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	return nil
}

// Close stops raft and releases the stores. It is idempotent and safe
// after a failed Start. Blocked calls return ErrClosed.
func (g *Group) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	return g.teardown()
}

// teardown releases whatever start acquired, in reverse order. Called with
// mu held.
func (g *Group) teardown() error {
	if g.down {
		return nil
	}
	g.down = true
	g.closing.Store(true)
	var errs []error
	if r := g.r.Load(); r != nil {
		// Shutdown also closes the transport.
		errs = append(errs, r.Shutdown().Error())
	} else if c, ok := g.trans.(raft.WithClose); ok {
		errs = append(errs, c.Close())
	}
	close(g.done)
	g.wg.Wait()
	if g.store != nil {
		if err := g.stable.close(g.store.Close); err != nil {
			errs = append(errs, fmt.Errorf("close log store: %w", err))
		}
	}
	return errors.Join(errs...)
}

// raft returns the running raft instance or ErrClosed.
func (g *Group) raft() (*raft.Raft, error) {
	r := g.r.Load()
	if r == nil || g.closing.Load() {
		return nil, ErrClosed
	}
	return r, nil
}

// await waits for f while honouring ctx and Close. Raft futures have no
// channel, so a helper goroutine waits on the future; it ends when raft
// answers the future, which it does for every future except one queued
// in the instant raft shuts down (raft then drops it and that helper stays
// blocked: a bounded leak that only shutdown can cause).
func (g *Group) await(ctx context.Context, f raft.Future) error {
	ch := make(chan error, 1)
	go func() { ch <- f.Error() }()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctxError(ctx)
	case <-g.done:
		return ErrClosed
	}
}

// timeoutOf is the raft enqueue timeout for ctx: its remaining time, or 0
// (no limit) without a deadline.
func timeoutOf(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, ctxError(ctx)
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return 0, nil
	}
	d := time.Until(dl)
	if d <= 0 {
		return 0, fmt.Errorf("%w: %w", ErrTimeout, context.DeadlineExceeded)
	}
	return d, nil
}

// Propose replicates cmd through the leader and returns the FSM's result
// once the entry was applied on this node. The result is whatever
// FSM.Apply returned, including error values.
//
// On a follower with a Forwarder the command goes to the leader (waiting,
// bounded by ctx, while no leader is known; retrying against the next
// leader while the refusing one appended nothing), and Propose returns
// once this node applied it. Without a Forwarder a follower returns a
// *NotLeaderError (ErrNotLeader).
//
// Errors: ErrTimeout when ctx's deadline passes first (the command may
// still apply), ErrLeadershipLost when the outcome is unknown,
// ErrNotApplied when it definitely did not apply, ErrClosed after Close.
func (g *Group) Propose(ctx context.Context, cmd []byte) (any, error) {
	r, err := g.raft()
	if err != nil {
		return nil, err
	}
	if g.fwd == nil || r.State() == raft.Leader {
		res, err := g.proposeLocal(ctx, r, cmd)
		if g.fwd == nil || !errors.Is(err, ErrNotLeader) {
			return res, err
		}
		// Raft refused before appending: forward it instead.
	}
	return g.proposeForwarded(ctx, cmd)
}

// proposeLocal is the leader's path: no header, the packer's entry
// carries the FSM's result.
func (g *Group) proposeLocal(ctx context.Context, r *raft.Raft, cmd []byte) (any, error) {
	if r.State() != raft.Leader {
		return nil, notLeader(r)
	}
	it, err := g.packPropose(ctx, nil, cmd)
	if err != nil {
		return nil, err
	}
	if it.notLeader != nil {
		return nil, it.notLeader
	}
	if it.err != nil {
		return nil, raftError(r, it.err)
	}
	return it.res, nil
}

// AppliedIndex is the index through which this node's FSM state is
// complete.
func (g *Group) AppliedIndex() uint64 { return g.applied.load() }

// CommitIndex is the highest index this node knows to be committed.
func (g *Group) CommitIndex() uint64 {
	if r := g.r.Load(); r != nil {
		return r.CommitIndex()
	}
	return 0
}

// IsLeader reports whether this node is the group leader now.
func (g *Group) IsLeader() bool {
	r, err := g.raft()
	return err == nil && r.State() == raft.Leader
}

// Leader returns the leader's server ID and transport address as this node
// knows them; both are empty when no leader is known.
func (g *Group) Leader() (id, addr string) {
	r, err := g.raft()
	if err != nil {
		return "", ""
	}
	a, i := r.LeaderWithID()
	return string(i), string(a)
}

// Snapshot forces a snapshot now. It returns nil when nothing was applied
// since the last one.
func (g *Group) Snapshot() error {
	r, err := g.raft()
	if err != nil {
		return err
	}
	err = g.await(context.Background(), r.Snapshot())
	if errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil
	}
	return raftError(r, err)
}

// Server is one member of the group's configuration.
type Server struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	// Suffrage is "Voter", "Nonvoter" or "Staging".
	Suffrage string `json:"suffrage"`
}

// Servers returns the latest configuration, committed or not.
func (g *Group) Servers() ([]Server, error) {
	r, err := g.raft()
	if err != nil {
		return nil, err
	}
	f := r.GetConfiguration()
	if err := g.await(context.Background(), f); err != nil {
		return nil, raftError(r, err)
	}
	cfg := f.Configuration()
	out := make([]Server, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		out = append(out, Server{ID: string(s.ID), Address: string(s.Address), Suffrage: s.Suffrage.String()})
	}
	return out, nil
}

// AddVoter adds (or promotes) a voting member; leader only.
func (g *Group) AddVoter(ctx context.Context, id, addr string) error {
	return g.membership(ctx, func(r *raft.Raft, timeout time.Duration) raft.Future {
		return r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout)
	})
}

// AddNonvoter adds a member that replicates the log without voting;
// leader only.
func (g *Group) AddNonvoter(ctx context.Context, id, addr string) error {
	return g.membership(ctx, func(r *raft.Raft, timeout time.Duration) raft.Future {
		return r.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout)
	})
}

// RemoveServer removes a member; leader only.
func (g *Group) RemoveServer(ctx context.Context, id string) error {
	return g.membership(ctx, func(r *raft.Raft, timeout time.Duration) raft.Future {
		return r.RemoveServer(raft.ServerID(id), 0, timeout)
	})
}

func (g *Group) membership(ctx context.Context, change func(*raft.Raft, time.Duration) raft.Future) error {
	r, err := g.raft()
	if err != nil {
		return err
	}
	timeout, err := timeoutOf(ctx)
	if err != nil {
		return err
	}
	return raftError(r, g.await(ctx, change(r, timeout)))
}

// Status is a point-in-time view of a group for health and ops endpoints.
type Status struct {
	Name              string    `json:"name"`
	NodeID            string    `json:"nodeID"`
	State             string    `json:"state"` // Follower, Candidate, Leader, Shutdown
	Term              uint64    `json:"term"`
	LeaderID          string    `json:"leaderID"`
	LeaderAddr        string    `json:"leaderAddr"`
	CommitIndex       uint64    `json:"commitIndex"`
	AppliedIndex      uint64    `json:"appliedIndex"`
	LastLogIndex      uint64    `json:"lastLogIndex"`
	LastSnapshotIndex uint64    `json:"lastSnapshotIndex"`
	NumPeers          int       `json:"numPeers"` // voters other than this node
	LastContact       time.Time `json:"lastContact"`
}

// Status reports the group's state; before Start or after Close, State is
// "Shutdown".
func (g *Group) Status() Status {
	st := Status{Name: g.cfg.Name, NodeID: g.cfg.NodeID, State: raft.Shutdown.String(), AppliedIndex: g.applied.load()}
	r, err := g.raft()
	if err != nil {
		return st
	}
	st.State = r.State().String()
	st.Term = r.CurrentTerm()
	addr, id := r.LeaderWithID()
	st.LeaderID, st.LeaderAddr = string(id), string(addr)
	st.CommitIndex = r.CommitIndex()
	st.LastLogIndex = r.LastIndex()
	st.LastContact = r.LastContact()
	stats := r.Stats()
	st.LastSnapshotIndex, _ = strconv.ParseUint(stats["last_snapshot_index"], 10, 64)
	st.NumPeers, _ = strconv.Atoi(stats["num_peers"])
	return st
}

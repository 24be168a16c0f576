package consensus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// ReadBarrier makes a linearizable read possible: it returns once this
// node's FSM has applied at least a read index, the leader's commit index
// seen after the call started and confirmed by a quorum round; state read
// afterwards reflects every write acknowledged before the call, on any
// node.
//
// On the leader, concurrent callers share one leadership check: a check in
// flight serves every caller that arrived before it started, and callers
// arriving during it share the next one. On a follower with a Forwarder,
// concurrent callers share one ReadIndex round trip to the leader (which
// joins its own shared check) and then wait for the index locally; a
// leader change retries. On a follower without a Forwarder it returns a
// *NotLeaderError (ErrNotLeader) without contacting anyone.
func (g *Group) ReadBarrier(ctx context.Context) error {
	if ctx.Err() != nil {
		return ctxError(ctx)
	}
	var pause retryPause
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := g.pause(ctx, &pause); err != nil {
				return err
			}
		}
		r, err := g.raft()
		if err != nil {
			return err
		}
		var c Committed
		switch {
		case r.State() == raft.Leader:
			var ok bool
			if c, ok = g.leaseReadIndex(r); !ok {
				c, err = g.leaderReads.wait(ctx, g)
			}
		case g.fwd == nil:
			return notLeader(r)
		default:
			if _, _, err := g.knownLeader(ctx); err != nil {
				return err
			}
			c, err = g.followerReads.wait(ctx, g)
		}
		if err == nil {
			return g.WaitApplied(ctx, c.Index)
		}
		if g.fwd == nil || g.closing.Load() || !retryableRead(err) {
			return err
		}
	}
}

// LeaderReadIndex is the leader's side of a follower's ReadBarrier: it
// joins the shared confirm round and returns the read index, without
// waiting for this node's FSM. A node that does not lead returns a
// *NotLeaderError. The read index is a committed entry of this leader's
// term: the follower may take it as a commit hint (commithint.go).
func (g *Group) LeaderReadIndex(ctx context.Context) (Committed, error) {
	r, err := g.raft()
	if err != nil {
		return Committed{}, err
	}
	if r.State() != raft.Leader {
		return Committed{}, notLeader(r)
	}
	if c, ok := g.leaseReadIndex(r); ok {
		return c, nil
	}
	return g.leaderReads.wait(ctx, g)
}

// leaseReadIndex is the read index of a leader whose read lease runs: its
// commit index, taken before the lease is checked, so no other leader can
// have committed anything by the time it is taken. ok is false when no
// lease runs (or this node no longer leads); then a quorum round decides.
func (g *Group) leaseReadIndex(r *raft.Raft) (Committed, bool) {
	term := r.CurrentTerm()
	if g.readyTerm.Load() != term {
		return Committed{}, false
	}
	index := r.CommitIndex()
	if !g.reads.valid(term) || r.State() != raft.Leader || r.CurrentTerm() != term {
		return Committed{}, false
	}
	return Committed{Index: index, Term: term}, true
}

// errLeaderChanged ends a follower's read round whose leader went away.
var errLeaderChanged = errors.New("leader changed during the read round")

// retryableRead reports whether a follower's read may try again: reads
// change nothing, so any refusal or a leader change is safe to retry.
func retryableRead(err error) bool {
	return errors.Is(err, ErrNotApplied) || errors.Is(err, errLeaderChanged) || errors.Is(err, ErrClosed)
}

// WaitApplied blocks until this node's FSM has applied index, ctx ends
// (ErrTimeout on a deadline) or the group closes (ErrClosed). A follower
// serving a linearizable read passes the leader's read index here.
func (g *Group) WaitApplied(ctx context.Context, index uint64) error {
	if g.applied.load() >= index {
		return nil
	}
	if _, err := g.raft(); err != nil {
		return err
	}
	// Kick the catch-up loop only once the waiter is registered: the loop
	// runs while waiters are pending, and a kick before registration could
	// find none and go back to sleep.
	return g.applied.wait(ctx, g.done, index, func() {
		select {
		case g.catchUpKick <- struct{}{}:
		default:
		}
	})
}

// readRound is one shared read-index round.
type readRound struct {
	done chan struct{} // closed when c and err are set
	c    Committed
	err  error
}

// readBatcher groups callers into rounds run by its loop, one at a time.
type readBatcher struct {
	kick chan struct{}

	mu   sync.Mutex
	next *readRound // round that has not started yet
}

func (b *readBatcher) init() { b.kick = make(chan struct{}, 1) }

// join returns the round that has not started yet, creating it.
func (b *readBatcher) join() *readRound {
	b.mu.Lock()
	rd := b.next
	if rd == nil {
		rd = &readRound{done: make(chan struct{})}
		b.next = rd
	}
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
	return rd
}

// wait joins the next round and returns its read index.
func (b *readBatcher) wait(ctx context.Context, g *Group) (Committed, error) {
	rd := b.join()
	select {
	case <-rd.done:
		return rd.c, rd.err
	case <-ctx.Done():
		return Committed{}, ctxError(ctx)
	case <-g.done:
		return Committed{}, ErrClosed
	}
}

// loop runs rounds with confirm until the group closes.
func (b *readBatcher) loop(g *Group, confirm func(context.Context) (Committed, error)) {
	defer g.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for {
		select {
		case <-g.done:
			return
		case <-b.kick:
		}
		b.mu.Lock()
		rd := b.next
		b.next = nil
		b.mu.Unlock()
		if rd == nil {
			continue
		}
		rd.c, rd.err = confirm(ctx)
		close(rd.done)
	}
}

// confirmLeader returns a read index: the commit index observed before
// this node proved, through a quorum round, that it still leads. Its
// entry has this leader's term: an entry of the term committed before
// (readyTerm), and every entry after a leader's first one is its own.
func (g *Group) confirmLeader(ctx context.Context, r *raft.Raft) (Committed, error) {
	for range 3 {
		term := r.CurrentTerm()
		if g.readyTerm.Load() != term {
			// Commit an entry of this term: a new leader's commit index is
			// only current once one is.
			if err := g.await(ctx, r.Barrier(0)); err != nil {
				return Committed{}, raftError(r, err)
			}
			g.readyTerm.Store(term)
		}
		if c, ok := g.leaseReadIndex(r); ok {
			return c, nil
		}
		index := r.CommitIndex()
		epoch := g.reads.epoch.Load()
		start := time.Now()
		if err := g.await(ctx, r.VerifyLeader()); err != nil {
			return Committed{}, raftError(r, err)
		}
		if r.CurrentTerm() == term {
			g.reads.extend(start, term, epoch)
			return Committed{Index: index, Term: term}, nil
		}
		// Leadership changed hands and came back while we looked; the
		// index may predate this term's first commit. Look again.
	}
	return Committed{}, notLeader(r)
}

// readLease lets a leader answer reads without a quorum round for a while
// after one succeeded.
//
// A quorum round that started at time t proves that a majority heard from
// this leader at or after t. Each of them then refuses to vote for anyone
// else while it knows a leader, and only gives up its leader after a full
// heartbeat timeout without contact (hashicorp/raft's follower loop; pre-vote
// is off). So no other leader can be elected before t plus a heartbeat
// timeout, by the followers' clocks. The lease lasts half of that on this
// node's monotonic clock, which leaves the other half for clock rate
// differences and scheduling. Three more things end it early: a new term, a
// change of the voter set (the majority that answered may not be one of
// the new configuration), and, on the other side, a member that restarts
// and so forgot its leader: Group.start waits out a lease before raft runs
// (restartGuard).
type readLease struct {
	dur time.Duration
	// epoch counts configuration changes this node's raft observed; a
	// lease is only good in the epoch its round started in.
	epoch atomic.Uint64

	mu    sync.Mutex
	until time.Time // monotonic
	term  uint64
	at    uint64 // epoch of the round
}

// valid reports whether a lease of term is running.
func (l *readLease) valid(term uint64) bool {
	if l.dur <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.term == term && l.at == l.epoch.Load() && time.Now().Before(l.until)
}

// extend records a successful quorum round of term that started at start
// in configuration epoch.
func (l *readLease) extend(start time.Time, term, epoch uint64) {
	if l.dur <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if until := start.Add(l.dur); term > l.term || term == l.term && until.After(l.until) {
		l.until, l.term, l.at = until, term, epoch
	}
}

// remoteReadTimeout bounds one follower read round; a leader change ends
// it sooner.
const remoteReadTimeout = 5 * time.Second

// remoteReadIndex is a follower's read round: one round trip to the
// leader it knows, cancelled when raft reports a leader change. With a
// ReadIndexer it learns the read index's entry and hands it to raft as a
// commit hint, so the wait for the index ends without waiting for the
// leader's next append.
func (g *Group) remoteReadIndex(ctx context.Context) (Committed, error) {
	ctx, cancel := context.WithTimeout(ctx, remoteReadTimeout)
	defer cancel()
	// Register before looking up the leader so no change slips between.
	defer g.leaderSeen.onChange(cancel)()
	id, addr := g.Leader()
	if id == "" || id == g.cfg.NodeID {
		return Committed{}, errLeaderChanged
	}
	var c Committed
	var err error
	if ri, ok := g.fwd.(ReadIndexer); ok {
		var cs []Committed
		if cs, err = ri.ReadIndexes(ctx, id, addr, []string{g.cfg.Name}); err == nil {
			c = cs[0]
			g.learnCommit(id, addr, c)
		}
	} else {
		c.Index, err = g.fwd.ReadIndex(ctx, g.cfg.Name, id, addr)
	}
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		return Committed{}, fmt.Errorf("%w: %w", errLeaderChanged, err)
	}
	return c, err
}

// catchUpPoll is how often the catch-up loop looks at the log while
// WaitApplied callers wait.
const catchUpPoll = 2 * time.Millisecond

// catchUpLoop advances the applied index over entries the FSM never sees.
//
// Raft hands the FSM command and configuration entries only; its no-op
// (the first entry of every leader term) and barrier entries change no
// state. When such entries end the committed log, the FSM has nothing to
// apply and the applied index would stop below the commit index. While
// anyone waits, this loop reads the committed entries above the applied
// index and skips over those that carry no state change.
func (g *Group) catchUpLoop(r *raft.Raft) {
	defer g.wg.Done()
	t := time.NewTimer(catchUpPoll)
	t.Stop()
	for {
		select {
		case <-g.done:
			return
		case <-g.catchUpKick:
		}
		for g.applied.pending() {
			g.catchUp(r)
			if !g.applied.pending() {
				break
			}
			t.Reset(catchUpPoll)
			select {
			case <-g.done:
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// catchUp advances the applied index to the end of the run of committed,
// stateless entries that directly follows it.
func (g *Group) catchUp(r *raft.Raft) {
	from := g.applied.load()
	// Entries up to raft's applied index are committed and were handed to
	// the FSM goroutine, so their content is final.
	top := r.AppliedIndex()
	h := from
	var l raft.Log
	for i := from + 1; i <= top; i++ {
		if err := g.logs.GetLog(i, &l); err != nil {
			if !errors.Is(err, raft.ErrLogNotFound) {
				break
			}
			// Compacted away: covered by a snapshot this node took or
			// restored, which includes everything up to its index.
			s := g.lastSnapshotIndex()
			if s < i {
				break
			}
			h = min(s, top)
			i = h
			continue
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			break // the FSM will report it
		}
		h = i
	}
	g.applied.advance(h)
}

func (g *Group) lastSnapshotIndex() uint64 {
	metas, err := g.snaps.List()
	if err != nil || len(metas) == 0 {
		return 0
	}
	return metas[0].Index
}

package consensus

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// ReadBarrier makes a linearizable read possible on the leader: it returns
// once this node is confirmed leader and its FSM has applied at least the
// commit index seen when the call started; state read afterwards reflects
// every write acknowledged before the call. On a follower it returns a
// *NotLeaderError (ErrNotLeader) without contacting anyone.
//
// Concurrent callers share one leadership check: a check in flight serves
// every caller that arrived before it started, and callers arriving during
// it share the next one.
func (g *Group) ReadBarrier(ctx context.Context) error {
	r, err := g.raft()
	if err != nil {
		return err
	}
	if r.State() != raft.Leader {
		return notLeader(r)
	}
	rd := g.reads.join()
	select {
	case <-rd.done:
	case <-ctx.Done():
		return ctxError(ctx)
	case <-g.done:
		return ErrClosed
	}
	if rd.err != nil {
		return rd.err
	}
	return g.WaitApplied(ctx, rd.index)
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

// readRound is one shared leadership check.
type readRound struct {
	done  chan struct{} // closed when index and err are set
	index uint64
	err   error
}

// readBatcher groups ReadBarrier callers into rounds run by its loop.
type readBatcher struct {
	kick chan struct{}

	mu   sync.Mutex
	next *readRound // round that has not started yet

	// readyTerm is the last term in which this node, as leader, saw an
	// entry of its own term committed; until then its commit index may
	// trail the previous leader's.
	readyTerm atomic.Uint64
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

func (b *readBatcher) loop(g *Group, r *raft.Raft) {
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
		rd.index, rd.err = b.confirm(ctx, g, r)
		close(rd.done)
	}
}

// confirm returns a read index: the commit index observed before this node
// proved, through a quorum round, that it still leads.
func (b *readBatcher) confirm(ctx context.Context, g *Group, r *raft.Raft) (uint64, error) {
	for range 3 {
		term := r.CurrentTerm()
		if b.readyTerm.Load() != term {
			// Commit an entry of this term: a new leader's commit index is
			// only current once one is.
			if err := g.await(ctx, r.Barrier(0)); err != nil {
				return 0, raftError(r, err)
			}
			b.readyTerm.Store(term)
		}
		index := r.CommitIndex()
		if err := g.await(ctx, r.VerifyLeader()); err != nil {
			return 0, raftError(r, err)
		}
		if r.CurrentTerm() == term {
			return index, nil
		}
		// Leadership changed hands and came back while we looked; the
		// index may predate this term's first commit. Look again.
	}
	return 0, notLeader(r)
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

package consensus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Forwarder carries proposals and read-index requests from a follower to the
// group's leader (node implements it over libp2p streams; tests use an in-memory one).
//
// Errors: the serving side's errors cross the wire as ErrorCode and
// ErrorFromCode. A Forward that could not reach the leader at all (dial
// refused, no stream opened) must return an error matching ErrNotApplied
// so the follower retries; any other transport failure after the command
// was sent is an unknown outcome.
type Forwarder interface {
	// Forward hands cmd (opaque bytes produced by the follower's Group) to
	// the leader's Group.AcceptForwarded and returns its result. The
	// Committed it returned may be dropped (zero): the follower then
	// learns of the commit from raft, later.
	Forward(ctx context.Context, group, leaderID, leaderAddr string, cmd []byte) (Committed, error)
	// ReadIndex asks the leader's Group.LeaderReadIndex for a read index.
	ReadIndex(ctx context.Context, group, leaderID, leaderAddr string) (uint64, error)
}

// maxPendingForwards bounds the forwarded proposals of one group that wait
// for their local apply; more callers queue (bounded by their ctx).
const maxPendingForwards = 4096

// AcceptForwarded appends a command forwarded by a follower's Group and
// returns once it is committed and applied on this node (the leader). The
// result stays with the follower, which reads it from its own FSM; the
// returned entry lets the follower apply it without waiting for this
// leader's next append (commithint.go).
//
// Errors tell the follower whether it may retry: a *NotLeaderError
// (ErrNotLeader, ErrNotApplied) or ErrNotApplied mean nothing was appended;
// ErrLeadershipLost, ErrTimeout and ErrClosed mean the outcome is unknown;
// ErrMalformed means cmd was not produced by a Group.
func (g *Group) AcceptForwarded(ctx context.Context, cmd []byte) (Committed, error) {
	_, _, n, ok := parseHeader(cmd)
	if !ok {
		return Committed{}, fmt.Errorf("%w: no valid header", ErrMalformed)
	}
	r, err := g.raft()
	if err != nil {
		return Committed{}, fmt.Errorf("%w: %w", ErrNotApplied, err)
	}
	return g.appendLocal(ctx, r, cmd[:n], cmd[n:])
}

// appendLocal appends cmd with header hdr through this node's raft, which
// must lead, and waits until the entry applied here. It returns the entry,
// or a zero Committed when its term is not certain (leadership changed
// hands while it was in flight).
func (g *Group) appendLocal(ctx context.Context, r *raft.Raft, hdr, cmd []byte) (Committed, error) {
	if r.State() != raft.Leader {
		return Committed{}, notLeader(r)
	}
	it, err := g.packPropose(ctx, hdr, cmd)
	if err != nil {
		return Committed{}, err
	}
	err = it.err
	switch {
	case err == nil:
		return it.committed, nil
	case it.notLeader != nil:
		// Raft refuses these before the entry reaches the log.
		return Committed{}, it.notLeader
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return Committed{}, fmt.Errorf("%w: %w", ErrNotApplied, ErrTimeout)
	case errors.Is(err, ErrClosed), errors.Is(err, raft.ErrRaftShutdown):
		return Committed{}, fmt.Errorf("%w: group closed with the command in flight", ErrLeadershipLost)
	}
	return Committed{}, raftError(r, err)
}

// proposeForwarded proposes cmd from a follower: it tags cmd with this
// node's origin header and a fresh sequence number, registers the waiter,
// hands the entry to the leader and waits until the local FSM applied it.
func (g *Group) proposeForwarded(ctx context.Context, cmd []byte) (any, error) {
	seq, err := g.nextSeq()
	if err != nil {
		return nil, fmt.Errorf("%w: reserve proposal sequence: %w", ErrNotApplied, err)
	}
	hl := headerLen(g.cfg.NodeID)
	msg := appendHeader(make([]byte, 0, hl+len(cmd)), g.cfg.NodeID, seq)
	msg = append(msg, cmd...)
	// Register before the entry leaves: the local apply may come before
	// Forward returns.
	pr, err := g.pending.add(ctx, g.done, seq)
	if err != nil {
		return nil, err
	}
	defer g.pending.remove(seq)
	var pause retryPause
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := g.pause(ctx, &pause); err != nil {
				return nil, err
			}
		}
		id, addr, err := g.knownLeader(ctx)
		if err != nil {
			return nil, err
		}
		if id == g.cfg.NodeID {
			r, rerr := g.raft()
			if rerr != nil {
				return nil, rerr
			}
			_, err = g.appendLocal(ctx, r, msg[:hl], msg[hl:])
		} else {
			var c Committed
			c, err = g.fwd.Forward(ctx, g.cfg.Name, id, addr, msg)
			if err == nil {
				g.learnCommit(id, addr, c)
			}
		}
		if err == nil {
			break
		}
		if errors.Is(err, ErrNotApplied) && ctx.Err() == nil && !g.closing.Load() {
			continue // nothing appended: try the leader we learn of next
		}
		return nil, forwardError(ctx, id, err)
	}
	select {
	case <-pr.done:
		return pr.res, pr.err
	case <-ctx.Done():
		// Committed: it applies here later, the caller just stops waiting.
		return nil, ctxError(ctx)
	case <-g.done:
		return nil, ErrClosed
	}
}

// forwardError maps a failed forward that may have appended the command
// to an unknown-outcome error.
func forwardError(ctx context.Context, leaderID string, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctxError(ctx)
	case errors.Is(err, ErrNotApplied), errors.Is(err, ErrMalformed),
		errors.Is(err, ErrLeadershipLost), errors.Is(err, ErrTimeout):
		return err
	}
	return fmt.Errorf("%w: forward to %s: %v", ErrLeadershipLost, leaderID, err)
}

// knownLeader returns the leader this node knows of, waiting (bounded by
// ctx) while it knows none.
func (g *Group) knownLeader(ctx context.Context) (id, addr string, err error) {
	var t *time.Timer
	for {
		changed := g.leaderSeen.changed()
		if id, addr := g.Leader(); id != "" {
			if t != nil {
				t.Stop()
			}
			return id, addr, nil
		}
		if _, err := g.raft(); err != nil {
			return "", "", err
		}
		// The observer wakes us; the timer covers a dropped observation.
		if t == nil {
			t = time.NewTimer(g.cfg.HeartbeatTimeout)
		} else {
			t.Reset(g.cfg.HeartbeatTimeout)
		}
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return "", "", ctxError(ctx)
		case <-g.done:
			t.Stop()
			return "", "", ErrClosed
		}
	}
}

// retryPause is the wait between attempts against a leader that refused:
// until the known leader changes or a growing backoff passes.
type retryPause struct{ d time.Duration }

const (
	minRetryPause = 2 * time.Millisecond
)

func (g *Group) pause(ctx context.Context, p *retryPause) error {
	changed := g.leaderSeen.changed()
	p.d = min(max(2*p.d, minRetryPause), g.cfg.HeartbeatTimeout)
	t := time.NewTimer(p.d)
	defer t.Stop()
	select {
	case <-changed:
		return nil
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctxError(ctx)
	case <-g.done:
		return ErrClosed
	}
}

// seqBlock is how many proposal sequence numbers one persisted
// reservation covers. Every Start reserves a fresh block, so a restarted
// node never reuses a sequence number its previous run may have sent.
const seqBlock = 1 << 32

var keySeqCeiling = []byte("dittonode.forward.seq")

// reserveSeq starts this run's sequence numbers above every number a
// previous run could have used.
func (g *Group) reserveSeq() error {
	ceil, err := g.store.GetUint64(keySeqCeiling)
	if err != nil && !errors.Is(err, raftboltdb.ErrKeyNotFound) {
		return fmt.Errorf("read proposal sequence: %w", err)
	}
	next := ceil + seqBlock
	if err := g.store.SetUint64(keySeqCeiling, next); err != nil {
		return fmt.Errorf("reserve proposal sequence: %w", err)
	}
	g.seq.Store(ceil)
	g.seqCeil.Store(next)
	return nil
}

func (g *Group) nextSeq() (uint64, error) {
	s := g.seq.Add(1)
	if s <= g.seqCeil.Load() {
		return s, nil
	}
	g.seqMu.Lock()
	defer g.seqMu.Unlock()
	for s > g.seqCeil.Load() {
		next := g.seqCeil.Load() + seqBlock
		if err := g.store.SetUint64(keySeqCeiling, next); err != nil {
			return 0, err
		}
		g.seqCeil.Store(next)
	}
	return s, nil
}

// proposals are this node's forwarded proposals waiting for their local
// apply, by sequence number. slots bounds them.
type proposals struct {
	slots chan struct{}

	mu sync.Mutex
	m  map[uint64]*proposal
}

type proposal struct {
	done chan struct{} // closed once res and err are set
	res  any
	err  error
}

func (p *proposals) init(n int) {
	p.slots = make(chan struct{}, n)
	p.m = make(map[uint64]*proposal)
}

// add registers seq, waiting for a free slot.
func (p *proposals) add(ctx context.Context, closed <-chan struct{}, seq uint64) (*proposal, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctxError(ctx)
	case <-closed:
		return nil, ErrClosed
	}
	pr := &proposal{done: make(chan struct{})}
	p.mu.Lock()
	p.m[seq] = pr
	p.mu.Unlock()
	return pr, nil
}

// remove unregisters seq (resolved or not) and frees its slot.
func (p *proposals) remove(seq uint64) {
	p.mu.Lock()
	delete(p.m, seq)
	p.mu.Unlock()
	<-p.slots
}

// resolve hands seq its outcome, once.
func (p *proposals) resolve(seq uint64, res any, err error) {
	p.mu.Lock()
	pr := p.m[seq]
	delete(p.m, seq)
	p.mu.Unlock()
	if pr != nil {
		pr.res, pr.err = res, err
		close(pr.done)
	}
}

// settle resolves every proposal for which decide returns true.
func (p *proposals) settle(decide func(seq uint64) (bool, error)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for seq, pr := range p.m {
		if ok, err := decide(seq); ok {
			delete(p.m, seq)
			pr.err = err
			close(pr.done)
		}
	}
}

// leaderWatch wakes waiters whenever raft reports a leader change, and
// runs registered callbacks (a follower read round's cancel).
type leaderWatch struct {
	mu    sync.Mutex
	ch    chan struct{}
	next  uint64
	funcs map[uint64]func()
}

func (w *leaderWatch) init() {
	w.ch = make(chan struct{})
	w.funcs = make(map[uint64]func())
}

// changed returns a channel closed at the next change.
func (w *leaderWatch) changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

// onChange runs f (once) at the next change; the returned func
// unregisters it.
func (w *leaderWatch) onChange(f func()) (stop func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id := w.next
	w.next++
	w.funcs[id] = f
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.funcs, id)
	}
}

func (w *leaderWatch) notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.ch)
	w.ch = make(chan struct{})
	for id, f := range w.funcs {
		delete(w.funcs, id)
		f()
	}
}

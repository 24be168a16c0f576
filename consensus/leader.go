package consensus

import (
	"context"
	"sync"

	"github.com/hashicorp/raft"
)

// LeaderCh returns a channel that holds whether this node leads the group:
// it first receives the current state, then every change. A slow reader
// sees only the latest state. The channel is closed when ctx ends or the
// group closes.
func (g *Group) LeaderCh(ctx context.Context) <-chan bool {
	ch := make(chan bool, 1)
	if !g.leaders.add(ch, g.IsLeader) {
		close(ch)
		return ch
	}
	// After Close the fan-out already closed ch and remove is a no-op.
	context.AfterFunc(ctx, func() { g.leaders.remove(ch) })
	return ch
}

// leaderFanout forwards raft's leadership signal to every LeaderCh.
type leaderFanout struct {
	mu     sync.Mutex
	subs   map[chan bool]struct{}
	closed bool
}

func (f *leaderFanout) init() { f.subs = make(map[chan bool]struct{}) }

// add registers ch and primes it with current(), under the lock so that no
// change published meanwhile is lost.
func (f *leaderFanout) add(ch chan bool, current func() bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	ch <- current()
	f.subs[ch] = struct{}{}
	return true
}

func (f *leaderFanout) remove(ch chan bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.subs[ch]; ok {
		delete(f.subs, ch)
		close(ch)
	}
}

func (f *leaderFanout) publish(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		// Replace a value the reader has not taken yet. Only publish
		// sends, under mu, so the second send cannot block.
		select {
		case <-ch:
		default:
		}
		ch <- v
	}
}

func (f *leaderFanout) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for ch := range f.subs {
		delete(f.subs, ch)
		close(ch)
	}
}

// loop fans raft's leadership signal out to every LeaderCh, and wakes
// leaderSeen on every leader change raft observes (on followers too).
func (f *leaderFanout) loop(g *Group, r *raft.Raft) {
	defer g.wg.Done()
	defer f.closeAll()
	// A non-blocking observer drops observations while obs is full; one
	// pending wake-up is all leaderSeen needs.
	obs := make(chan raft.Observation, 4)
	o := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(o)
	defer r.DeregisterObserver(o)
	src := r.LeaderCh()
	for {
		select {
		case <-g.done:
			return
		case v := <-src:
			f.publish(v)
			g.leaderSeen.notify()
		case <-obs:
			g.leaderSeen.notify()
		}
	}
}

package consensus

import (
	"container/heap"
	"context"
	"sync"
	"sync/atomic"
)

// appliedTracker holds the index through which the local FSM state is
// complete and wakes the waiters whose index it reached. Waiters sit in a
// min-heap, so an advance wakes exactly the satisfied ones, and an advance
// without waiters costs two atomic operations.
type appliedTracker struct {
	index atomic.Uint64
	// nwait mirrors len(waiters) for the lock-free fast path of advance.
	nwait atomic.Int64

	mu      sync.Mutex
	waiters waiterHeap
}

type waiter struct {
	index uint64
	ch    chan struct{}
	pos   int // position in the heap; -1 once woken or removed
}

func (t *appliedTracker) load() uint64 { return t.index.Load() }

// advance raises the index to i if it is higher and wakes waiters.
func (t *appliedTracker) advance(i uint64) {
	for {
		cur := t.index.Load()
		if i <= cur {
			return
		}
		if t.index.CompareAndSwap(cur, i) {
			break
		}
	}
	t.wake()
}

// set replaces the index (after a snapshot restore) and wakes waiters.
func (t *appliedTracker) set(i uint64) {
	t.index.Store(i)
	t.wake()
}

func (t *appliedTracker) wake() {
	if t.nwait.Load() == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	i := t.index.Load()
	for len(t.waiters) > 0 && t.waiters[0].index <= i {
		w := heap.Pop(&t.waiters).(*waiter)
		close(w.ch)
	}
	t.nwait.Store(int64(len(t.waiters)))
}

// register adds a waiter for index i, or returns nil when i is already
// reached. The caller must wait on w.ch and call cancel if it gives up.
func (t *appliedTracker) register(i uint64) *waiter {
	if t.index.Load() >= i {
		return nil
	}
	w := &waiter{index: i, ch: make(chan struct{})}
	t.mu.Lock()
	defer t.mu.Unlock()
	heap.Push(&t.waiters, w)
	t.nwait.Store(int64(len(t.waiters)))
	// An advance that raced with the push may have seen nwait == 0; check
	// again now that the waiter is visible.
	if t.index.Load() >= i {
		t.removeLocked(w)
		return nil
	}
	return w
}

func (t *appliedTracker) cancel(w *waiter) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeLocked(w)
}

func (t *appliedTracker) removeLocked(w *waiter) {
	if w.pos < 0 {
		return
	}
	heap.Remove(&t.waiters, w.pos)
	t.nwait.Store(int64(len(t.waiters)))
}

// pending reports whether anyone waits.
func (t *appliedTracker) pending() bool { return t.nwait.Load() > 0 }

// wait blocks until index i is reached, ctx ends or done closes. When it
// has to block, it calls registered (if not nil) once the waiter is
// visible to pending.
func (t *appliedTracker) wait(ctx context.Context, done <-chan struct{}, i uint64, registered func()) error {
	w := t.register(i)
	if w == nil {
		return nil
	}
	if registered != nil {
		registered()
	}
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		t.cancel(w)
		return ctxError(ctx)
	case <-done:
		t.cancel(w)
		return ErrClosed
	}
}

// waiterHeap is a min-heap of waiters by index.
type waiterHeap []*waiter

func (h waiterHeap) Len() int           { return len(h) }
func (h waiterHeap) Less(i, j int) bool { return h[i].index < h[j].index }
func (h waiterHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos = i
	h[j].pos = j
}

func (h *waiterHeap) Push(x any) {
	w := x.(*waiter)
	w.pos = len(*h)
	*h = append(*h, w)
}

func (h *waiterHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	w.pos = -1
	return w
}

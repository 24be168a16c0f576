package ditto

import (
	"errors"
	"sync"
	"sync/atomic"
)

// ErrSlowSubscriber closes a subscription whose queue overflowed: the
// subscriber could not keep up and would otherwise silently miss signals.
var ErrSlowSubscriber = errors.New("signal subscriber too slow: queue overflowed")

// ErrSubscriptionClosed is the error of a subscription closed by its owner or
// by the bus.
var ErrSubscriptionClosed = errors.New("signal subscription closed")

// Bus is the node-local signal bus. State machines publish applied changes in
// log order; observers run synchronously inside Publish (for projections that
// must never lag, like the search index), subscribers get the signals through
// bounded queues and are cut off with ErrSlowSubscriber when they fall behind.
// A Bus never blocks a publisher on a subscriber.
type Bus struct {
	mu        sync.RWMutex
	observers []func(Signal)
	subs      map[*Subscription]struct{}
	dropped   atomic.Int64
	published atomic.Int64
}

// NewBus returns an empty bus.
func NewBus() *Bus {
	return &Bus{subs: map[*Subscription]struct{}{}}
}

// Observe registers fn to run synchronously for every published signal, in
// publish order. fn must be fast and must not call back into the bus.
func (b *Bus) Observe(fn func(Signal)) {
	b.mu.Lock()
	b.observers = append(b.observers, fn)
	b.mu.Unlock()
}

// Subscribe returns a subscription with a queue of the given size (at least 1).
func (b *Bus) Subscribe(queue int) *Subscription {
	if queue < 1 {
		queue = 1
	}
	s := &Subscription{bus: b, ch: make(chan Signal, queue), done: make(chan struct{})}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Publish hands s to every observer and subscriber.
func (b *Bus) Publish(s Signal) {
	b.published.Add(1)
	b.mu.RLock()
	for _, fn := range b.observers {
		fn(s)
	}
	var slow []*Subscription
	for sub := range b.subs {
		select {
		case sub.ch <- s:
		default:
			slow = append(slow, sub)
		}
	}
	b.mu.RUnlock()
	for _, sub := range slow {
		b.dropped.Add(1)
		sub.close(ErrSlowSubscriber)
	}
}

// Dropped counts the subscriptions cut off for being too slow.
func (b *Bus) Dropped() int64 { return b.dropped.Load() }

// Published counts the signals published.
func (b *Bus) Published() int64 { return b.published.Load() }

// Subscription is one subscriber's queue on a Bus.
type Subscription struct {
	bus  *Bus
	ch   chan Signal
	done chan struct{}
	once sync.Once
	err  atomic.Pointer[error]
}

// C delivers the signals. It is not closed; select on Done as well.
func (s *Subscription) C() <-chan Signal { return s.ch }

// Done is closed when the subscription ends; Err says why.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err returns why the subscription ended, or nil while it is open.
func (s *Subscription) Err() error {
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Close ends the subscription. It is idempotent.
func (s *Subscription) Close() { s.close(ErrSubscriptionClosed) }

func (s *Subscription) close(err error) {
	s.once.Do(func() {
		s.err.Store(&err)
		s.bus.mu.Lock()
		delete(s.bus.subs, s)
		s.bus.mu.Unlock()
		close(s.done)
	})
}

package search

import (
	"context"
	"sync"

	"github.com/dittonode/dittonode/ditto"
)

// maxFeed bounds the thing events waiting for the indexer. A full feed
// makes the state machine wait in push: the index falls behind by at most
// this many events.
const maxFeed = 1 << 16

// feed hands thing events from the state machine (the bus observer, inside
// Apply) to the indexer goroutine. Updating the index costs tens of
// microseconds per write; done in Apply, it delayed every acknowledgement
// of a batch by the whole batch's index work. The indexer takes everything
// queued at once and applies it under one lock, on the other core while
// raft writes the next batch.
//
// Reads stay read-your-writes: a query first waits until the indexer has
// applied every event pushed before the query started (await). A write
// is acknowledged only after its Apply, and so after its push.
type feed struct {
	mu      sync.Mutex
	q       []ditto.Signal
	spare   []ditto.Signal
	pushed  uint64 // events queued so far
	indexed uint64 // events applied to the index so far
	kick    chan struct{}
	// progress is closed (and replaced) whenever indexed advances.
	progress chan struct{}
}

func (f *feed) init() {
	f.kick = make(chan struct{}, 1)
	f.progress = make(chan struct{})
}

// push queues sig; it waits while the feed is full, unless stop is closed
// (then the event is dropped with the index).
func (f *feed) push(sig ditto.Signal, stop <-chan struct{}) {
	for {
		f.mu.Lock()
		if len(f.q) < maxFeed {
			f.q = append(f.q, sig)
			f.pushed++
			f.mu.Unlock()
			select {
			case f.kick <- struct{}{}:
			default:
			}
			return
		}
		wait := f.progress
		f.mu.Unlock()
		select {
		case <-wait:
		case <-stop:
			return
		}
	}
}

// take returns everything queued and the count of events pushed up to its
// last one.
func (f *feed) take() ([]ditto.Signal, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	batch := f.q
	f.q, f.spare = f.spare[:0], nil
	return batch, f.pushed
}

// done records that the events up to upTo are in the index and recycles
// the batch's backing array.
func (f *feed) done(batch []ditto.Signal, upTo uint64) {
	clear(batch) // the events hold thing JSON; do not keep it alive
	f.mu.Lock()
	f.spare = batch[:0]
	f.indexed = upTo
	close(f.progress)
	f.progress = make(chan struct{})
	f.mu.Unlock()
}

// await waits until every event pushed before the call is in the index.
func (f *feed) await(ctx context.Context, stop <-chan struct{}) error {
	f.mu.Lock()
	target := f.pushed
	for f.indexed < target {
		wait := f.progress
		f.mu.Unlock()
		select {
		case <-wait:
		case <-stop:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
		f.mu.Lock()
	}
	f.mu.Unlock()
	return nil
}

// indexLoop is the indexer goroutine, owned by the Service (Start to
// Close).
func (s *Service) indexLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.feed.kick:
		case <-s.stop:
			return
		}
		batch, upTo := s.feed.take()
		if len(batch) == 0 {
			continue
		}
		s.mu.Lock()
		for _, sig := range batch {
			s.indexLocked(sig)
		}
		s.mu.Unlock()
		s.feed.done(batch, upTo)
	}
}

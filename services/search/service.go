package search

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Log keys.
const (
	logKeyThings   = "things"
	logKeyDuration = "duration"
	logKeyError    = "error"
	logKeyThing    = "thingId"
	logKeyStats    = "indexBytes"
	logKeyRaw      = "rawJsonBytes"
	logKeyReplayed = "replayedSignals"
)

// restoredTopic is published by the things state machine after a snapshot
// restore replaced its whole state.
const restoredTopic = "_/_/things/twin/restored"

// ErrClosed is returned by Start, Subscribe and waiting queries after
// Close.
var ErrClosed = errors.New("search: service closed")

// Service is the things-search role: the index and the query engine.
//
// Lock order: mu, then a Subscription's mu. The bus observer takes mu for
// writing; queries take it for reading only while planning and collecting
// candidates. The bus holds its own lock while it calls the observer, so
// mu is never held while calling into the bus.
type Service struct {
	cfg    Config
	deps   Deps
	clock  func() time.Time
	logger *slog.Logger

	mu  sync.RWMutex
	idx *index
	// ready is closed once idx is complete; a restore replaces it with an
	// open one until the index is rebuilt. Queries wait for it.
	ready chan struct{}
	// building is set while the build goroutine runs; the observer then
	// records thing events in pending instead of applying them, and a
	// restore bumps gen so that the build reads the state again.
	building bool
	gen      uint64
	pending  []ditto.Signal
	started  bool
	closed   bool
	// stop is closed by Close; it cuts a running build short and releases
	// waiting queries.
	stop chan struct{}
	wg   sync.WaitGroup

	// feed carries thing events from the bus observer to the indexer
	// goroutine (feed.go), so that the state machine does not update the
	// index inside Apply; queries wait until the indexer caught up with
	// every event observed before they started.
	feed feed
}

// New returns a Service; it does nothing until Start.
func New(cfg Config, deps Deps) *Service {
	s := &Service{cfg: cfg.withDefaults(), deps: deps, clock: deps.Clock, logger: deps.Logger, idx: newIndex(),
		ready: make(chan struct{}), stop: make(chan struct{})}
	s.feed.init()
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	return s
}

// Start registers the bus observer and begins building the index from
// Source in the background; it does not wait for the build. Queries wait,
// bounded by their timeout, until the index is complete, and so does
// WaitReady. Signals that arrive during the build are replayed onto the
// built index in order, each applied only when newer than the thing's
// indexed revision, so the complete index is never behind an applied
// change.
func (s *Service) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.started {
		s.mu.Unlock()
		return errors.New("search: already started")
	}
	// Building from here on: signals observed from now are recorded.
	s.started, s.building = true, true
	s.gen++
	s.wg.Add(2)
	s.mu.Unlock()
	go s.indexLoop()
	// Observe before the build reads Source, so that no change falls
	// between the state read and the first recorded signal.
	if s.deps.Bus != nil {
		s.deps.Bus.Observe(s.observe)
	}
	go s.buildLoop()
	return nil
}

// WaitReady waits until the index is complete (after Start or a restore).
// It returns ctx's error when ctx ends first and ErrClosed after Close.
func (s *Service) WaitReady(ctx context.Context) error {
	if err := s.feed.await(ctx, s.stop); err != nil {
		return err
	}
	s.mu.RLock()
	ready := s.ready
	s.mu.RUnlock()
	select {
	case <-ready:
		return nil
	case <-s.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ready reports whether the index is complete.
func (s *Service) Ready() bool {
	s.mu.RLock()
	ready := s.ready
	s.mu.RUnlock()
	select {
	case <-ready:
		return true
	default:
		return false
	}
}

// waitReady is WaitReady for queries: a deadline that passes first is a
// search timeout.
func (s *Service) waitReady(ctx context.Context) error {
	return timeoutErr(s.WaitReady(ctx))
}

// Close stops using the index and waits for a running build to stop. It
// is idempotent. The bus has no way to remove an observer, so a closed
// Service keeps ignoring signals.
func (s *Service) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stop)
	}
	s.idx = newIndex()
	s.pending = nil
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// IndexStats reports the size of the index.
func (s *Service) IndexStats() Stats {
	_ = s.feed.await(context.Background(), s.stop)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.idx.stats()
}

// restartBuildLocked makes the index incomplete after a restore: it starts
// the build goroutine, or makes a running one read Source again. Called
// with mu held.
func (s *Service) restartBuildLocked() {
	s.gen++
	// The restored state supersedes every signal recorded before it.
	s.pending = nil
	if s.building {
		return
	}
	s.building = true
	s.ready = make(chan struct{})
	s.wg.Add(1)
	go s.buildLoop()
}

// buildLoop builds a fresh index from Source, replays the signals recorded
// meanwhile and swaps it in. When a restore replaced the state during the
// build, it builds again.
func (s *Service) buildLoop() {
	defer s.wg.Done()
	for {
		s.mu.RLock()
		gen := s.gen
		s.mu.RUnlock()
		start := time.Now()
		fresh, ok := s.build()
		s.mu.Lock()
		if !ok || s.closed {
			s.building, s.pending = false, nil
			s.mu.Unlock()
			return
		}
		if s.gen != gen {
			// The state was replaced while we read it: read it again.
			s.mu.Unlock()
			continue
		}
		replayed := len(s.pending)
		for _, sig := range s.pending {
			applySignal(fresh, sig, true)
		}
		s.idx, s.pending, s.building = fresh, nil, false
		close(s.ready)
		st := fresh.stats()
		s.mu.Unlock()
		s.logger.Info("search index rebuilt", logKeyThings, st.Things, logKeyDuration, time.Since(start),
			logKeyReplayed, replayed, logKeyStats, st.IndexBytes, logKeyRaw, st.RawJSONBytes)
		return
	}
}

// buildCheckEvery is how many things build indexes between two looks at
// Close.
const buildCheckEvery = 4096

// build reads every thing from Source into a new index; ok is false when
// Close cut it short. It runs without the lock. The index keeps each
// thing's JSON slice (shared with the things store) and walks it for keys
// without decoding a document.
//
// Source yields things in no particular order (the things store is a
// map). build indexes them in thingId order: every insert into the ID
// index, and into fields whose values follow the IDs, then lands on the
// B-tree's recently used right edge instead of a random cold leaf, which
// makes a build of 100k things several times cheaper.
func (s *Service) build() (x *index, ok bool) {
	x = newIndex()
	if s.deps.Source == nil {
		return x, true
	}
	var all []ThingState
	s.deps.Source.RangeThings(func(ts ThingState) bool {
		all = append(all, ts)
		return true
	})
	slices.SortFunc(all, func(a, b ThingState) int { return strings.Compare(a.ID, b.ID) })
	for i, ts := range all {
		if i%buildCheckEvery == 0 {
			select {
			case <-s.stop:
				return nil, false
			default:
			}
		}
		err := x.upsert(thing{id: ts.ID, policyID: ts.PolicyID, rev: ts.Revision, created: ts.Created,
			modified: ts.Modified, raw: ts.JSON})
		if err != nil {
			s.logger.Warn("search: skipping a thing whose JSON does not decode", logKeyThing, ts.ID, logKeyError, err)
		}
	}
	x.compactPostings()
	return x, true
}

// observe is the bus observer. It runs inside the things state machine's
// Apply, so it only queues the event for the indexer (feed.go); policy
// signals are ignored: authorization is evaluated at query time.
func (s *Service) observe(sig ditto.Signal) {
	if _, ok := eventAction(sig.Envelope.Topic); !ok && sig.Envelope.Topic != restoredTopic {
		return
	}
	s.feed.push(sig, s.stop)
}

// index applies queued thing events to the index in apply order, or
// records them while a build runs. A restore makes the index incomplete
// until the build goroutine has read the restored state: the indexer never
// builds itself. Called with mu held for writing.
func (s *Service) indexLocked(sig ditto.Signal) {
	switch {
	case s.closed:
	case sig.Envelope.Topic == restoredTopic:
		s.restartBuildLocked()
	case s.building:
		s.pending = append(s.pending, sig)
	default:
		applySignal(s.idx, sig, false)
	}
}

// eventAction returns the action of a twin thing event topic
// ("ns/name/things/twin/events/<action>").
// It runs twice per event on the indexer's path, so it does not allocate.
func eventAction(topic string) (string, bool) {
	var parts [6]string
	rest := topic
	for i := range parts {
		seg, tail, more := strings.Cut(rest, "/")
		if more == (i == len(parts)-1) {
			return "", false // fewer or more than six segments
		}
		parts[i], rest = seg, tail
	}
	if parts[2] != "things" || parts[3] != ditto.ChannelTwin || parts[4] != "events" {
		return "", false
	}
	return parts[5], true
}

// applySignal applies one thing event to x. With checkRev (replay after a
// rebuild) it is applied only when newer than what x holds.
func applySignal(x *index, sig ditto.Signal, checkRev bool) {
	action, _ := eventAction(sig.Envelope.Topic)
	old := x.byID(sig.EntityID)
	if checkRev && old != nil && old.rev >= sig.Revision {
		return
	}
	if sig.State == nil {
		// The thing was deleted. A "deleted" event of a sub-resource (an
		// attribute, a feature) carries the thing that remains.
		x.remove(sig.EntityID)
		return
	}
	created, modified := sig.Envelope.Timestamp, sig.Envelope.Timestamp
	if old != nil && action != "created" && old.created != "" {
		created = old.created
	}
	// An error leaves the old document: the things FSM only publishes JSON
	// it decoded.
	_ = x.replace(thing{id: sig.EntityID, policyID: sig.PolicyID, rev: sig.Revision, created: created,
		modified: modified, raw: sig.State}, old)
}

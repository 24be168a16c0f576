package search

import (
	"context"
	"errors"
	"log/slog"
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
)

// restoredTopic is published by the things state machine after a snapshot
// restore replaced its whole state.
const restoredTopic = "_/_/things/twin/restored"

// ErrClosed is returned by Start and Subscribe after Close.
var ErrClosed = errors.New("search: service closed")

// Service is the things-search role: the index and the query engine.
//
// Lock order: mu, then a Subscription's mu. The bus observer takes mu for
// writing; queries take it for reading only while planning and collecting
// candidates.
type Service struct {
	cfg    Config
	deps   Deps
	clock  func() time.Time
	logger *slog.Logger

	mu  sync.RWMutex
	idx *index
	// rebuilding is set while Start builds a fresh index; the observer then
	// also records signals in pending, and restored notes a restore.
	rebuilding bool
	pending    []ditto.Signal
	restored   bool
	started    bool
	closed     bool
}

// New returns a Service; it does nothing until Start.
func New(cfg Config, deps Deps) *Service {
	s := &Service{cfg: cfg.withDefaults(), deps: deps, clock: deps.Clock, logger: deps.Logger, idx: newIndex()}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	return s
}

// Start registers the bus observer, then rebuilds the index from Source.
// Signals that arrive during the rebuild are replayed onto the rebuilt index
// in order, each applied only when newer than the thing's indexed revision.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.started {
		s.mu.Unlock()
		return errors.New("search: already started")
	}
	s.started = true
	s.rebuilding = true
	s.mu.Unlock()
	if s.deps.Bus != nil {
		s.deps.Bus.Observe(s.observe)
	}
	for {
		if err := ctx.Err(); err != nil {
			s.mu.Lock()
			s.rebuilding, s.pending = false, nil
			s.mu.Unlock()
			return err
		}
		start := time.Now()
		fresh := s.build()
		s.mu.Lock()
		if s.restored {
			// The state was replaced while we read it: read it again.
			s.restored, s.pending = false, nil
			s.mu.Unlock()
			continue
		}
		for _, sig := range s.pending {
			applySignal(fresh, sig, true)
		}
		s.idx, s.pending, s.rebuilding = fresh, nil, false
		st := fresh.stats()
		s.mu.Unlock()
		s.logger.Info("search index rebuilt", logKeyThings, st.Things, logKeyDuration, time.Since(start),
			logKeyStats, st.IndexBytes, logKeyRaw, st.RawJSONBytes)
		return nil
	}
}

// Close stops using the index. It is idempotent. The bus has no way to
// remove an observer, so a closed Service keeps ignoring signals.
func (s *Service) Close() error {
	s.mu.Lock()
	s.closed = true
	s.idx = newIndex()
	s.pending = nil
	s.mu.Unlock()
	return nil
}

// IndexStats reports the size of the index.
func (s *Service) IndexStats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.idx.stats()
}

// Rebuild replaces the index with one built from Source (what a snapshot
// restore does). Signals published meanwhile wait for it.
func (s *Service) Rebuild() {
	fresh := s.build()
	s.mu.Lock()
	s.idx = fresh
	if s.rebuilding {
		s.restored = true
	}
	s.mu.Unlock()
}

// build reads every thing from Source into a new index. It runs without
// the lock. The index keeps each thing's JSON slice (shared with the
// things store) and walks it for keys without decoding a document.
func (s *Service) build() *index {
	x := newIndex()
	if s.deps.Source == nil {
		return x
	}
	s.deps.Source.RangeThings(func(ts ThingState) bool {
		err := x.upsert(thing{id: ts.ID, policyID: ts.PolicyID, rev: ts.Revision, created: ts.Created,
			modified: ts.Modified, raw: ts.JSON})
		if err != nil {
			s.logger.Warn("search: skipping a thing whose JSON does not decode", logKeyThing, ts.ID, logKeyError, err)
		}
		return true
	})
	x.compactPostings()
	return x
}

// observe is the bus observer: it applies thing events to the index in
// apply order. Policy signals are ignored: authorization is evaluated at
// query time.
func (s *Service) observe(sig ditto.Signal) {
	if sig.Envelope.Topic == restoredTopic {
		s.mu.RLock()
		closed := s.closed
		s.mu.RUnlock()
		if !closed {
			s.Rebuild()
		}
		return
	}
	if _, ok := eventAction(sig.Envelope.Topic); !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	applySignal(s.idx, sig, false)
	if s.rebuilding {
		s.pending = append(s.pending, sig)
	}
}

// eventAction returns the action of a twin thing event topic
// ("ns/name/things/twin/events/<action>").
func eventAction(topic string) (string, bool) {
	parts := strings.Split(topic, "/")
	if len(parts) != 6 || parts[2] != "things" || parts[3] != ditto.ChannelTwin || parts[4] != "events" {
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
	if action == "deleted" || sig.State == nil {
		x.remove(sig.EntityID)
		return
	}
	created, modified := sig.Envelope.Timestamp, sig.Envelope.Timestamp
	if old != nil && action != "created" && old.created != "" {
		created = old.created
	}
	// An error leaves the old document: the things FSM only publishes JSON
	// it decoded.
	_ = x.upsert(thing{id: sig.EntityID, policyID: sig.PolicyID, rev: sig.Revision, created: created,
		modified: modified, raw: sig.State})
}

package search

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Topics of the search protocol (ditto-spec.md section 6).
const (
	TopicSubscribe = "_/_/things/twin/search/subscribe"
	TopicRequest   = "_/_/things/twin/search/request"
	TopicCancel    = "_/_/things/twin/search/cancel"
	TopicCreated   = "_/_/things/twin/search/created"
	TopicNext      = "_/_/things/twin/search/next"
	TopicComplete  = "_/_/things/twin/search/complete"
	TopicFailed    = "_/_/things/twin/search/failed"
)

// Subscription is one search-protocol subscription: it produces created,
// then per requested page one next, then complete or failed, as Ditto
// Protocol envelopes. Pages are computed lazily in Next, one per unit of
// demand. Ditto never sends complete or failed before the first request,
// and neither does a Subscription.
type Subscription struct {
	s  *Service
	id string
	q  Query
	// err is a validation error of the query, reported as failed after the
	// first request.
	err error

	mu        sync.Mutex
	wake      chan struct{}
	sentFirst bool   // created was delivered
	demand    int    // pages requested and not yet produced
	requested bool   // a request arrived
	cursor    string // continuation; "" before the first page
	final     *ditto.Envelope
	done      bool // the final envelope was delivered, or cancelled
}

// Subscribe starts a search-protocol subscription for q. Options may hold
// size and sort but not cursor or limit. An invalid query still yields a
// subscription: its error is sent as failed after the first request, as
// Ditto does. Subscribe fails only when the service is closed.
func (s *Service) Subscribe(ctx context.Context, q Query) (*Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	sub := &Subscription{s: s, id: hex.EncodeToString(b[:]), q: q, wake: make(chan struct{}, 1)}
	o, err := parseOptions(q.Options, s.cfg.MaxPageSize)
	switch {
	case err != nil:
		sub.err = err
	case o.hasCursor || o.limitGiven:
		sub.err = optionErr("The options of a search subscription must not contain 'cursor' or 'limit'.")
	default:
		_, sub.err = s.prepare(q, false)
	}
	return sub, nil
}

// ID is the subscriptionId.
func (sub *Subscription) ID() string { return sub.id }

// Request asks for demand more pages. A demand below 1, or a request after
// the subscription ended, breaks the protocol: the subscription fails with
// thing-search:subscription.protocol.error (also returned).
func (sub *Subscription) Request(demand int) error {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.done || sub.final != nil {
		return ditto.ErrSearchProtocol.New("The subscription '%s' has ended.", sub.id)
	}
	sub.requested = true
	if demand < 1 {
		err := ditto.ErrSearchProtocol.New("The demand of a request must be positive, it was %d.", demand)
		sub.fail(err)
		sub.signal() // Next delivers the failure
		return err
	}
	sub.demand = addCapped(sub.demand, demand)
	sub.signal()
	return nil
}

func addCapped(a, b int) int {
	const maxDemand = 1 << 30
	if a+b > maxDemand || a+b < 0 {
		return maxDemand
	}
	return a + b
}

// Cancel ends the subscription; nothing more is sent.
func (sub *Subscription) Cancel() {
	sub.mu.Lock()
	sub.done = true
	sub.mu.Unlock()
	sub.signal()
}

func (sub *Subscription) signal() {
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

// fail sets the final envelope to failed with err. Called with mu held.
func (sub *Subscription) fail(err error) {
	var de *ditto.Error
	if !errors.As(err, &de) {
		de = ditto.ErrInternal.New("The search failed.")
	}
	sub.final = sub.envelope(TopicFailed, map[string]any{"subscriptionId": sub.id, "error": json.RawMessage(de.JSON())})
}

func (sub *Subscription) envelope(topic string, value any) *ditto.Envelope {
	return &ditto.Envelope{Topic: topic, Headers: ditto.Headers{}, Path: "/", Value: ditto.EncodeJSON(value)}
}

// Next returns the next envelope, waiting for demand when none is due. It
// returns io.EOF once complete or failed was delivered or after Cancel, and
// ctx's error when ctx ends first.
func (sub *Subscription) Next(ctx context.Context) (ditto.Envelope, error) {
	var idle *time.Timer // a wait for demand longer than IdleTimeout fails
	for {
		sub.mu.Lock()
		switch {
		case sub.done:
			sub.mu.Unlock()
			return ditto.Envelope{}, io.EOF
		case !sub.sentFirst:
			sub.sentFirst = true
			sub.mu.Unlock()
			return *sub.envelope(TopicCreated, map[string]any{"subscriptionId": sub.id}), nil
		case sub.final != nil:
			env := *sub.final
			sub.done = true
			sub.mu.Unlock()
			return env, nil
		case sub.requested && sub.err != nil:
			sub.fail(sub.err)
			sub.mu.Unlock()
			continue
		case sub.demand > 0:
			env, ok := sub.page(ctx)
			sub.mu.Unlock()
			if ok {
				return env, nil
			}
			continue
		}
		sub.mu.Unlock()
		if idle == nil {
			idle = time.NewTimer(sub.s.cfg.IdleTimeout)
			defer idle.Stop()
		} else {
			idle.Reset(sub.s.cfg.IdleTimeout)
		}
		select {
		case <-ctx.Done():
			return ditto.Envelope{}, ctx.Err()
		case <-sub.wake:
		case <-idle.C:
			sub.mu.Lock()
			if !sub.done && sub.final == nil && sub.demand == 0 {
				sub.fail(ditto.ErrSearchSubTimeout.New("The search subscription '%s' timed out: no request within %s.", sub.id, sub.s.cfg.IdleTimeout))
			}
			sub.mu.Unlock()
		}
	}
}

// page produces the next page as a next envelope, or sets the final
// envelope. Called with mu held.
func (sub *Subscription) page(ctx context.Context) (ditto.Envelope, bool) {
	q := sub.q
	if sub.cursor != "" {
		opts := []string{"cursor(" + sub.cursor + ")"}
		for _, part := range splitTop(q.Options) {
			if name := strings.TrimSpace(part); strings.HasPrefix(name, "size(") {
				opts = append(opts, name)
			}
		}
		q.Options = strings.Join(opts, ",")
	}
	p, err := sub.s.Search(ctx, q)
	if err != nil {
		sub.fail(err)
		return ditto.Envelope{}, false
	}
	sub.cursor = p.Cursor
	if len(p.Items) == 0 {
		sub.final = sub.envelope(TopicComplete, map[string]any{"subscriptionId": sub.id})
		return ditto.Envelope{}, false
	}
	sub.demand--
	if p.Cursor == "" {
		sub.final = sub.envelope(TopicComplete, map[string]any{"subscriptionId": sub.id})
	}
	return *sub.envelope(TopicNext, map[string]any{"subscriptionId": sub.id, "items": p.Items}), true
}

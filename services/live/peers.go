package live

import (
	"context"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Peers carries live signals between the routers of the cluster's members
// (node plugs in the libp2p mesh; nil on a node alone). A live signal is
// offered to every member; the member holding a matching subscriber
// delivers it; responses and acknowledgements go back to the origin node by
// correlation-id.
//
// Offer and Reply must not block: implementations queue with a bound per
// peer and drop (counted) what a peer cannot take; a dropped signal is a
// missing acknowledgement that times out at the origin (408), exactly like
// a subscriber that never answers.
type Peers interface {
	// Offer hands a live signal to the router of every other member.
	Offer(o Offer)
	// Reply sends a response or an acknowledgement to the router of node.
	Reply(node string, r Reply)
	// Expect tells every other member, before a twin command runs, the
	// custom acknowledgements its twin event requests, so their routers
	// stamp the event and route the acknowledgements back. It returns once
	// every reachable member confirmed, or when ctx ends.
	Expect(ctx context.Context, e Expectation)
}

// Offer is a live signal one router offers the others.
type Offer struct {
	// Envelope is the signal as receivers get it (forwarded headers with
	// the correlation-id and the pending custom labels in requested-acks).
	Envelope ditto.Envelope
	// Sender is the subscriber ID the signal came from; it never gets the
	// signal back.
	Sender string
	// Custom are the custom acknowledgement labels the origin waits for;
	// a receiving node acknowledges its subscribers' labels weakly when they
	// may not READ the signal.
	Custom []string
	// Await: the origin waits for answers until Timeout.
	Await   bool
	Timeout time.Duration
}

// Reply is a response or acknowledgement for a signal of another node.
type Reply struct {
	// Twin: an acknowledgement of a twin event (else a live signal's).
	Twin     bool
	Envelope ditto.Envelope
}

// Expectation announces the custom acknowledgements of a twin command.
type Expectation struct {
	ThingID       string
	CorrelationID string
	Labels        []string
	Timeout       time.Duration
}

// maxRemote bounds the signals of other nodes a router remembers in order
// to route answers back (per kind); beyond it, new ones are delivered but
// their answers are not routed (the origin reports them as timed out).
const maxRemote = 16384

// remoteEntry is a signal of another node whose answers this router routes
// back to it.
type remoteEntry struct {
	node    string
	thingID string
	sig     *signal  // live signals: the classified signal (responder checks)
	labels  []string // twin expectations: the requested custom labels
	// custom: the origin also waits for custom labels, so the entry stays
	// after the live response until it expires.
	custom  bool
	expires time.Time
	// answered: a live response was routed back already (the first wins).
	answered bool
}

// remember records e under cid in m, sweeping expired entries (at most
// once a second) when m is large. It reports false when m is full. The
// caller holds r.mu.
func (r *Router) remember(m map[string]*remoteEntry, cid string, e *remoteEntry, now time.Time) bool {
	if len(m) >= maxRemote/2 && now.Sub(r.swept) >= time.Second {
		r.swept = now
		for k, old := range m {
			if now.After(old.expires) {
				delete(m, k)
			}
		}
	}
	if len(m) >= maxRemote {
		return false
	}
	m[cid] = e
	return true
}

// lookupRemote returns the unexpired entry of cid for thingID. The caller
// holds r.mu.
func lookupRemote(m map[string]*remoteEntry, cid, thingID string, now time.Time) *remoteEntry {
	e := m[cid]
	if e == nil || e.thingID != thingID {
		return nil
	}
	if now.After(e.expires) {
		delete(m, cid)
		return nil
	}
	return e
}

// Offered takes a live signal that the router of node from offered: it
// delivers it to the local subscribers that may READ it, acknowledges the
// custom labels of those that may not weakly (back to from), and remembers
// the signal so that answers go back to from. The sender was authorized at
// the origin.
func (r *Router) Offered(from string, o Offer) {
	sig, err := r.classify(o.Envelope)
	if err != nil {
		// The thing may not have been replicated here yet, or was deleted:
		// nobody here may receive the signal.
		r.log.Debug("live: offered signal not routable here", "from", from, "topic", o.Envelope.Topic, "err", err)
		return
	}
	cid := o.Envelope.Headers.Get(ditto.HeaderCorrelationID)
	if o.Await && cid != "" {
		now := time.Now()
		r.mu.Lock()
		ok := r.remember(r.remote, cid, &remoteEntry{node: from, thingID: sig.thingID, sig: sig, custom: len(o.Custom) > 0, expires: now.Add(o.Timeout)}, now)
		r.mu.Unlock()
		if !ok {
			r.log.Warn("live: too many pending signals of other nodes; answers to this one are not routed", "from", from, "correlationId", cid)
		}
	}
	targets, weak := r.targets(sig, o.Envelope, o.Sender, o.Custom)
	if r.peers != nil {
		for _, l := range weak {
			r.peers.Reply(from, Reply{Envelope: weakAck(sig.topic, l, cid)})
		}
	}
	for _, t := range targets {
		t.sub.deliver(t.env)
	}
}

// Expected takes the custom acknowledgements a twin command on node from
// waits for: the twin event of that command gets them in requested-acks
// here too, and acknowledgements issued here go back to from.
func (r *Router) Expected(from string, e Expectation) {
	if e.CorrelationID == "" || e.ThingID == "" || len(e.Labels) == 0 {
		return
	}
	now := time.Now()
	r.mu.Lock()
	ok := r.remember(r.remoteTwin, e.CorrelationID, &remoteEntry{node: from, thingID: e.ThingID, labels: e.Labels, expires: now.Add(e.Timeout)}, now)
	r.mu.Unlock()
	if !ok {
		r.log.Warn("live: too many twin commands of other nodes waiting for acknowledgements", "from", from, "correlationId", e.CorrelationID)
	}
}

// Replied takes a response or an acknowledgement that a subscriber on node
// from sent for a signal of this node. The router there checked the
// responder (declared label, READ on the signal).
func (r *Router) Replied(from string, rep Reply) {
	env := rep.Envelope
	t, err := ditto.ParseTopic(env.Topic)
	if err != nil {
		return
	}
	cid := env.Headers.Get(ditto.HeaderCorrelationID)
	if t.Criterion == ditto.CriterionAcks {
		m := r.live
		if rep.Twin {
			m = r.twin
		}
		r.mu.Lock()
		if p := m[cid]; p != nil && p.thingID == t.Entity() {
			p.ack(t.Action, env)
		}
		r.mu.Unlock()
		return
	}
	r.mu.RLock()
	p := r.live[cid]
	r.mu.RUnlock()
	if p == nil || !p.answeredBy(t, env) {
		return
	}
	r.settle(p, t, env)
}

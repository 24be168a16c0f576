package live

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Respond takes a response or an acknowledgement from a subscriber:
//
//   - an acknowledgement (<ns>/<name>/things/<twin|live>/acks/<label>) is
//     accepted only from the subscriber that declared the label (internal
//     header ditto-origin = its subscriber ID), else 400
//     acknowledgement:label.not.declared;
//   - a live response (the signal's messages or commands topic, with a
//     status) or an error (<ns>/<name>/things/live/errors) answers the live
//     signal with the same correlation-id. The responder must be allowed to
//     receive the signal. Retrieve responses are reduced to the requester's
//     READ view.
//
// The first answer wins; answers nobody waits for any more are dropped
// without error (Ditto drops late responses too).
func (r *Router) Respond(env ditto.Envelope, auth ditto.Auth) error {
	t, err := ditto.ParseTopic(env.Topic)
	if err != nil {
		return err
	}
	if t.Group != ditto.GroupThings || t.HasPlaceholder() {
		return ditto.ErrTopicInvalid.New("The topic '%s' is not a response or acknowledgement of a thing.", env.Topic)
	}
	cid := env.Headers.Get(ditto.HeaderCorrelationID)
	if cid == "" {
		return ditto.ErrHeaderInvalid.New("A response or acknowledgement needs the header 'correlation-id'.")
	}
	switch t.Criterion {
	case ditto.CriterionAcks:
		return r.acknowledge(t, cid, env)
	case ditto.CriterionMessages, ditto.CriterionCommands, ditto.CriterionErrors:
		if t.Channel != ditto.ChannelLive {
			break
		}
		return r.liveResponse(t, cid, env, auth)
	}
	return ditto.ErrTopicInvalid.New("The topic '%s' is not a response or acknowledgement.", env.Topic)
}

// acknowledge records a custom acknowledgement.
func (r *Router) acknowledge(t ditto.Topic, cid string, env ditto.Envelope) error {
	label := t.Action
	if label == "" || builtinLabel(label) {
		return ditto.ErrAckLabelInvalid.New("The acknowledgement label '%s' cannot be issued by a subscriber.", label)
	}
	origin := env.Headers.Get(HeaderOrigin)
	ack := ditto.Envelope{Topic: env.Topic, Headers: ackHeaders(env.Headers, cid), Path: "/", Status: env.Status, Value: env.Value}
	if ack.Status == 0 {
		ack.Status = 200
	}
	if !validStatus(ack.Status) {
		return ditto.ErrJSONInvalid.New("The status %d of the acknowledgement is not an HTTP status.", ack.Status)
	}
	twin := t.Channel == ditto.ChannelTwin
	now := time.Now()
	r.mu.Lock()
	if o := r.labels[label]; o == nil || o.id != origin {
		r.mu.Unlock()
		return ditto.ErrAckLabelNotDeclared.New("The acknowledgement label '%s' was not declared by the issuing subscriber.", label)
	}
	m, remote := r.live, r.remote
	if twin {
		m, remote = r.twin, r.remoteTwin
	}
	if p := m[cid]; p != nil && p.thingID == t.Entity() {
		p.ack(label, ack)
		r.mu.Unlock()
		return nil
	}
	e := lookupRemote(remote, cid, t.Entity(), now)
	r.mu.Unlock()
	if e != nil && r.peers != nil {
		r.peers.Reply(e.node, Reply{Twin: twin, Envelope: ack})
	}
	return nil
}

// ackHeaders keeps the issuer's headers without internal ones except
// ditto-weak-ack, with the correlation-id.
func ackHeaders(h ditto.Headers, cid string) ditto.Headers {
	out := make(ditto.Headers, len(h))
	for k, v := range h {
		if internalHeader(k) && k != HeaderWeakAck {
			continue
		}
		out[k] = v
	}
	out[ditto.HeaderCorrelationID] = cid
	return out
}

// liveResponse records the answer to a live signal.
func (r *Router) liveResponse(t ditto.Topic, cid string, env ditto.Envelope, auth ditto.Auth) error {
	if env.Status == 0 {
		return ditto.ErrJSONFieldMissing.New("The JSON field 'status' is missing in the response.")
	}
	if !validStatus(env.Status) {
		return ditto.ErrJSONInvalid.New("The status %d of the response is not an HTTP status.", env.Status)
	}
	r.mu.Lock()
	p := r.live[cid]
	var e *remoteEntry
	if p == nil {
		if e = lookupRemote(r.remote, cid, t.Entity(), time.Now()); e != nil && e.answered {
			e = nil // the first answer went back already
		}
	}
	r.mu.Unlock()
	var sig *signal
	switch {
	case p != nil && p.sig != nil && p.answeredBy(t, env):
		sig = p.sig
	case e != nil && answers(e.sig, t, env):
		sig = e.sig
	default:
		return nil
	}
	if _, ok := sig.receivable(env, auth); !ok {
		if sig.kind == kMessages {
			return ditto.ErrMessageSendDenied.New("You are not allowed to answer messages with subject '%s' on the Thing with ID '%s'.", sig.topic.Action, sig.thingID)
		}
		return sig.notModifiable()
	}
	resp := ditto.Envelope{
		Topic: env.Topic, Headers: ackHeaders(env.Headers, cid), Path: env.Path,
		Status: env.Status, Value: env.Value, Fields: env.Fields,
	}
	if p != nil {
		r.settle(p, t, resp)
		return nil
	}
	r.mu.Lock()
	first := !e.answered
	e.answered = true
	if !e.custom && r.remote[cid] == e {
		// Nothing else is awaited for this signal: forget it now.
		delete(r.remote, cid)
	}
	r.mu.Unlock()
	if first && r.peers != nil {
		r.peers.Reply(e.node, Reply{Envelope: resp})
	}
	return nil
}

// answers reports whether a response with topic t answers sig: an error of
// the same thing, or a response on the signal's topic.
func answers(sig *signal, t ditto.Topic, env ditto.Envelope) bool {
	if sig == nil {
		return false
	}
	if t.Criterion == ditto.CriterionErrors {
		return sig.thingID == t.Entity()
	}
	return sig.topic.String() == env.Topic
}

// answeredBy reports whether a response with topic t answers the live
// signal p waits for.
func (p *pending) answeredBy(t ditto.Topic, env ditto.Envelope) bool {
	return answers(p.sig, t, env)
}

// settle records resp as the live-response of p, reduced to the
// requester's view for retrieves.
func (r *Router) settle(p *pending, t ditto.Topic, resp ditto.Envelope) {
	sig := p.sig
	if sig.kind == kCommands && sig.topic.Action == string(ditto.ActionRetrieve) && t.Criterion == ditto.CriterionCommands && len(resp.Value) > 0 {
		resp = filterRetrieve(sig, p.auth, resp)
	}
	r.mu.Lock()
	p.ack(LabelLiveResponse, resp)
	r.mu.Unlock()
}

// filterRetrieve reduces a live retrieve response to what the requester may
// READ; nothing readable is the resource's 404.
func filterRetrieve(sig *signal, requester ditto.Auth, resp ditto.Envelope) ditto.Envelope {
	v, err := ditto.DecodeJSON(resp.Value)
	if err == nil && sig.enf != nil {
		if sig.enf.Unrestricted(ditto.ResourceThing, sig.path, requester.Subjects, ditto.PermRead) {
			return resp
		}
		if view, ok := sig.enf.View(ditto.ResourceThing, sig.path, v, requester.Subjects); ok {
			keepThingFields(sig.path, v, view)
			resp.Value = ditto.EncodeJSON(view)
			return resp
		}
	}
	e := sig.notFound()
	return ditto.Envelope{
		Topic:   ditto.ErrorEnvelope(sig.topic, resp.Headers, e).Topic,
		Headers: resp.Headers, Path: "/", Status: e.Status, Value: e.JSON(),
	}
}

// thingFields are kept in whole-thing responses for partial readers.
var thingFields = []string{"thingId", "_namespace", "_revision", "_modified", "_created"}

// keepThingFields copies the identifying fields of a whole thing into its
// view, as twin retrieves do for partial readers.
func keepThingFields(path ditto.Pointer, full, view any) {
	if len(path) != 0 {
		return
	}
	src, ok1 := full.(map[string]any)
	dst, ok2 := view.(map[string]any)
	if !ok1 || !ok2 {
		return
	}
	for _, k := range thingFields {
		if v, ok := src[k]; ok {
			dst[k] = v
		}
	}
}

// ExpectAcks registers the custom acknowledgement labels of a twin command
// before it runs; built-in labels are ignored. The twin event of the
// command (same thing and correlation-id, seen through TwinEvent) carries
// them in requested-acks. wait blocks until all labels are acknowledged or
// ctx ends and returns one ack per label in order (408 for missing ones);
// cancel (idempotent, also done by wait) withdraws the expectation. In a
// cluster the other members learn the labels before ExpectAcks returns
// (bounded by ctx), so a subscriber on any node can acknowledge.
func (r *Router) ExpectAcks(ctx context.Context, thingID, correlationID string, labels []string) (wait func(ctx context.Context) []ditto.Envelope, cancel func(), err error) {
	if correlationID == "" {
		return nil, nil, errors.New("live: expecting acks needs a correlation-id")
	}
	var custom []string
	for _, l := range labels {
		if !builtinLabel(l) && !containsString(custom, l) {
			if !ditto.ValidAckLabel(l) {
				return nil, nil, ditto.ErrAckLabelInvalid.New("The acknowledgement label '%s' is invalid.", truncate(l, 120))
			}
			custom = append(custom, l)
		}
	}
	p := newPending(correlationID, nil, ditto.Auth{}, custom)
	p.channel, p.thingID = ditto.ChannelTwin, thingID
	r.mu.Lock()
	if r.twin[correlationID] != nil {
		r.mu.Unlock()
		return nil, nil, ditto.ErrHeaderInvalid.New("The correlation-id '%s' is already used by a command waiting for acknowledgements.", correlationID)
	}
	r.twin[correlationID] = p
	r.mu.Unlock()
	if r.peers != nil && len(custom) > 0 {
		r.peers.Expect(ctx, Expectation{ThingID: thingID, CorrelationID: correlationID, Labels: custom, Timeout: r.timeoutOf(ctx)})
	}
	cancel = func() {
		r.mu.Lock()
		if r.twin[correlationID] == p {
			delete(r.twin, correlationID)
		}
		r.mu.Unlock()
	}
	wait = func(ctx context.Context) []ditto.Envelope {
		rs := r.wait(ctx, r.timeoutOf(ctx), r.twin, p)
		out := make([]ditto.Envelope, len(rs))
		for i, res := range rs {
			out[i] = res.env
		}
		return out
	}
	return wait, cancel, nil
}

// TwinEvent is the router's synchronous observer of the signal bus (node
// registers it with Bus.Observe). For the twin event of a command that
// expects custom acknowledgements it sets the pending labels as the
// event's requested-acks header, before any bus subscriber gets the event,
// and weakly acknowledges the labels of "acks" subscribers that may not
// READ the event.
func (r *Router) TwinEvent(sig ditto.Signal) {
	h := sig.Envelope.Headers
	cid := h[ditto.HeaderCorrelationID]
	if cid == "" || !strings.Contains(sig.Envelope.Topic, "/things/twin/events/") {
		return
	}
	r.mu.Lock()
	var open []string
	var from string // the node waiting for the acks when not this one
	if p := r.twin[cid]; p != nil && p.thingID == sig.EntityID && !p.eventSeen {
		p.eventSeen = true
		open = p.open()
	} else if e := lookupRemote(r.remoteTwin, cid, sig.EntityID, time.Now()); e != nil && e.labels != nil {
		open, from = e.labels, e.node
		e.labels = nil // one event per command
	}
	if len(open) == 0 {
		r.mu.Unlock()
		return
	}
	// The bus hands every observer and subscriber the same header map; this
	// observer runs inside Publish before any subscriber receives the signal,
	// so the header is part of the event as everybody sees it.
	h[ditto.HeaderRequestedAcks] = joinLabels(open)
	var owners []*subscription
	for sub := range r.subs {
		if sub.kinds&kAcks == 0 {
			continue
		}
		for _, l := range open {
			if o := r.labels[l]; o != nil && o.id == sub.id {
				owners = append(owners, sub)
				break
			}
		}
	}
	r.mu.Unlock()
	if len(owners) == 0 {
		return
	}
	path, err := ditto.ParsePointer(sig.Envelope.Path)
	if err != nil {
		return
	}
	var enf ditto.Enforcer
	if r.enf != nil {
		ns, _, _ := strings.Cut(sig.EntityID, ":")
		enf, _ = r.enf.EnforcerFor(sig.PolicyID, ns)
	}
	topic, _ := ditto.ParseTopic(sig.Envelope.Topic)
	topic.Channel = ditto.ChannelTwin
	var weak []ditto.Envelope
	r.mu.Lock()
	for _, sub := range owners {
		if enf != nil && enf.Partial(ditto.ResourceThing, path, sub.auth.Subjects, ditto.PermRead) {
			continue
		}
		for _, l := range open {
			if o := r.labels[l]; o != nil && o.id == sub.id {
				if from == "" {
					if p := r.twin[cid]; p != nil {
						p.ack(l, weakAck(topic, l, cid))
					}
					continue
				}
				weak = append(weak, weakAck(topic, l, cid))
			}
		}
	}
	r.mu.Unlock()
	if r.peers != nil {
		for _, w := range weak {
			r.peers.Reply(from, Reply{Twin: true, Envelope: w})
		}
	}
}

func validStatus(s int) bool { return s >= 100 && s <= 599 }

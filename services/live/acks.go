package live

import (
	"context"
	"strings"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// ackRequest is what a live signal asks to wait for.
type ackRequest struct {
	liveResponse bool
	custom       []string
}

// labels lists the awaited labels, live-response first.
func (a ackRequest) labels() []string {
	if !a.liveResponse {
		return a.custom
	}
	return append([]string{LabelLiveResponse}, a.custom...)
}

// parseAckRequest applies Ditto's interplay of response-required,
// requested-acks and timeout (basic-acknowledgements, "Interaction between
// headers") to a live signal; answerable is false for live events, which
// have no response. Built-in twin labels are ignored on the live channel.
func parseAckRequest(h ditto.Headers, answerable bool) (ackRequest, error) {
	zero := isZeroTimeout(h.Get(ditto.HeaderTimeout))
	respond, explicitRespond := !zero, false
	if v, ok := h[ditto.HeaderResponseRequired]; ok {
		switch v {
		case "true":
			respond, explicitRespond = true, true
		case "false":
			respond = false
		default:
			return ackRequest{}, ditto.ErrHeaderInvalid.New("The value '%s' of the header 'response-required' is not a valid boolean.", v)
		}
	}
	raw, explicitAcks := h[ditto.HeaderRequestedAcks]
	labels, err := ParseLabels(raw)
	if err != nil {
		return ackRequest{}, err
	}
	if zero && (explicitRespond || len(labels) > 0) {
		return ackRequest{}, ditto.ErrHeaderInvalid.New("The timeout must not be zero when a response is required or acknowledgements are requested.")
	}
	var req ackRequest
	for _, l := range labels {
		switch l {
		case LabelLiveResponse:
			req.liveResponse = true
		case LabelTwinPersisted, LabelSearchPersisted:
		default:
			req.custom = append(req.custom, l)
		}
	}
	switch {
	case !answerable || !respond:
		req.liveResponse = false
	case !explicitAcks || len(labels) > 0:
		req.liveResponse = true
	}
	return req, nil
}

// ParseLabels parses a requested-acks value: a comma list (Ditto Protocol
// arrays arrive as comma lists) or a JSON array of labels. Duplicates are
// dropped; an invalid label is acknowledgement:label.invalid.
func ParseLabels(raw string) ([]string, error) {
	labels, derr := ditto.ParseAckLabels(raw)
	if derr != nil {
		return nil, derr
	}
	return labels, nil
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// isZeroTimeout reports whether a timeout header value is zero ("0", "0s",
// "0ms", "0m").
func isZeroTimeout(s string) bool {
	s = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s, "ms"), "s"), "m")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

// pending is a signal waiting for acknowledgements. Its fields after
// construction are guarded by Router.mu.
type pending struct {
	cid     string
	topic   string // the signal's topic; live responses must carry it
	channel string
	thingID string
	sig     *signal // live signals: to check responders and filter retrieves
	auth    ditto.Auth
	labels  []string
	acks    map[string]*ditto.Envelope
	missing int
	done    chan struct{}
	// eventSeen: the twin event of a twin command was stamped already.
	eventSeen bool
}

func newPending(cid string, sig *signal, auth ditto.Auth, labels []string) *pending {
	p := &pending{
		cid: cid, channel: ditto.ChannelLive, sig: sig, auth: auth, labels: labels,
		acks: make(map[string]*ditto.Envelope, len(labels)), missing: len(labels), done: make(chan struct{}),
	}
	if sig != nil {
		p.topic, p.thingID = sig.topic.String(), sig.thingID
	}
	for _, l := range labels {
		p.acks[l] = nil
	}
	return p
}

// ack records the first acknowledgement of a pending label; later ones and
// unrequested labels are dropped. The caller holds Router.mu.
func (p *pending) ack(label string, env ditto.Envelope) bool {
	cur, requested := p.acks[label]
	if !requested || cur != nil {
		return false
	}
	p.acks[label] = &env
	if p.missing--; p.missing == 0 {
		close(p.done)
	}
	return true
}

// open lists the labels still pending. The caller holds Router.mu.
func (p *pending) open() []string {
	var out []string
	for _, l := range p.labels {
		if p.acks[l] == nil {
			out = append(out, l)
		}
	}
	return out
}

// result is one requested acknowledgement after the wait.
type result struct {
	env      ditto.Envelope
	received bool
}

// wait blocks until every label of p is acknowledged or ctx ends (at most
// timeout), removes p from m and returns the acks in label order; missing
// ones are 408 acknowledgement:request.timeout.
func (r *Router) wait(ctx context.Context, timeout time.Duration, m map[string]*pending, p *pending) []result {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	select {
	case <-p.done:
	case <-ctx.Done():
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m[p.cid] == p {
		delete(m, p.cid)
	}
	out := make([]result, len(p.labels))
	for i, l := range p.labels {
		if a := p.acks[l]; a != nil {
			out[i] = result{env: *a, received: true}
			continue
		}
		e := ackTimeout(timeout)
		out[i].env = ditto.Envelope{
			Topic:   ackTopic(p.thingID, p.channel, l),
			Headers: ditto.Headers{ditto.HeaderCorrelationID: p.cid},
			Path:    "/", Status: e.Status, Value: e.JSON(),
		}
	}
	return out
}

func ackTimeout(d time.Duration) *ditto.Error {
	return ditto.ErrAckTimeout.New("The acknowledgement request reached the specified timeout of %dms.", d.Milliseconds())
}

// ackTopic is <ns>/<name>/things/<channel>/acks[/<label>].
func ackTopic(thingID, channel, label string) string {
	ns, name, _ := strings.Cut(thingID, ":")
	t := ditto.Topic{Namespace: ns, Name: name, Group: ditto.GroupThings, Channel: channel, Criterion: ditto.CriterionAcks, Action: label}
	return t.String()
}

func weakAck(t ditto.Topic, label, cid string) ditto.Envelope {
	return ditto.Envelope{
		Topic:   ackTopic(t.Entity(), t.Channel, label),
		Headers: ditto.Headers{ditto.HeaderCorrelationID: cid, HeaderWeakAck: "true"},
		Path:    "/", Status: 200,
	}
}

// Aggregate builds the aggregated acknowledgements message of a thing:
// value {label:{status,payload,headers}}, status = the single ack's status,
// or 200 if all are 2xx, else 424.
func Aggregate(thingID, channel, cid string, labels []string, acks []ditto.Envelope) ditto.Envelope {
	value := make(map[string]any, len(acks))
	status := 0
	for i, a := range acks {
		entry := map[string]any{"status": a.Status, "headers": a.Headers}
		if a.Headers == nil {
			entry["headers"] = map[string]string{}
		}
		if len(a.Value) > 0 {
			entry["payload"] = a.Value
		}
		value[labels[i]] = entry
		switch {
		case len(acks) == 1:
			status = a.Status
		case a.Status < 200 || a.Status > 299:
			status = 424
		case status == 0:
			status = 200
		}
	}
	return ditto.Envelope{
		Topic:   ackTopic(thingID, channel, ""),
		Headers: ditto.Headers{ditto.HeaderCorrelationID: cid},
		Path:    "/", Status: status, Value: ditto.EncodeJSON(value),
	}
}

func aggregate(t ditto.Topic, channel, cid string, labels []string, rs []result) ditto.Envelope {
	acks := make([]ditto.Envelope, len(rs))
	for i, r := range rs {
		acks[i] = r.env
	}
	return Aggregate(t.Entity(), channel, cid, labels, acks)
}

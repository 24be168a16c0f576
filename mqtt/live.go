package mqtt

import (
	"context"
	"errors"
	"slices"
	"strings"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/dittonode/dittonode/ditto"
)

// Live is the node's live-signal router (services/live.Router implements
// it): devices that subscribe to live topics receive messages, live
// commands and live events through it, and answer through Respond.
type Live interface {
	Subscribe(id string, auth ditto.Auth, kinds []string, declaredAcks []string, deliver func(ditto.Envelope)) (func(), error)
	Send(ctx context.Context, env ditto.Envelope, auth ditto.Auth) (ditto.Envelope, bool, error)
	Respond(env ditto.Envelope, auth ditto.Auth) error
}

// Kinds of live signals (services/live's subscription kinds).
const (
	liveKindMessages = "messages"
	liveKindCommands = "live-commands"
	liveKindEvents   = "live-events"
)

// liveSegment starts the topics of live commands and events under a thing:
// things/{thingId}/live/commands/{action}[/{path…}] and
// things/{thingId}/live/events/{action}[/{path…}]. Messages go out on the
// message path itself: things/{thingId}[/features/{f}]/inbox|outbox/messages/{subject}.
const liveSegment = "live"

// dittoContentType is the MQTT 5 content type of Ditto Protocol JSON.
const dittoContentType = "application/vnd.eclipse.ditto+json"

// liveID is the live router's subscriber ID of an MQTT client.
func liveID(clientID string) string { return "mqtt/" + clientID }

// livePatterns are the shapes of the live topics per kind: "+" is one
// segment, "**" any number (the subject or path).
var livePatterns = []struct {
	kind string
	segs []string
}{
	{liveKindMessages, []string{"things", "+", "inbox", "messages", "+", "**"}},
	{liveKindMessages, []string{"things", "+", "outbox", "messages", "+", "**"}},
	{liveKindMessages, []string{"things", "+", "inbox", "claim"}},
	{liveKindMessages, []string{"things", "+", "features", "+", "inbox", "messages", "+", "**"}},
	{liveKindMessages, []string{"things", "+", "features", "+", "outbox", "messages", "+", "**"}},
	{liveKindCommands, []string{"things", "+", liveSegment, "commands", "+", "**"}},
	{liveKindEvents, []string{"things", "+", liveSegment, "events", "+", "**"}},
}

// liveKinds are the kinds of live signals whose topics one of the filters
// may match.
func liveKinds(filters []string) []string {
	var kinds []string
	for _, f := range filters {
		if rest, ok := strings.CutPrefix(f, "$share/"); ok {
			_, f, _ = strings.Cut(rest, "/")
		}
		fs := strings.Split(f, "/")
		for _, p := range livePatterns {
			if !containsString(kinds, p.kind) && mayMatch(fs, p.segs) {
				kinds = append(kinds, p.kind)
			}
		}
	}
	return kinds
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// mayMatch reports whether the filter f matches some topic of the shape p.
func mayMatch(f, p []string) bool {
	switch {
	case len(f) == 0:
		return len(p) == 0 || (len(p) == 1 && p[0] == "**")
	case f[0] == "#":
		return true
	case len(p) == 0:
		return false
	case p[0] == "**":
		return mayMatch(f, p[1:]) || mayMatch(f[1:], p)
	case f[0] == "+" || p[0] == "+" || f[0] == p[0]:
		return mayMatch(f[1:], p[1:])
	}
	return false
}

// liveTopic is the topic a live signal goes out on; ok is false when the
// thing ID or a path segment cannot be part of an MQTT topic name.
func liveTopic(env ditto.Envelope) (string, bool) {
	t, err := ditto.ParseTopic(env.Topic)
	if err != nil || t.Group != ditto.GroupThings || t.Channel != ditto.ChannelLive {
		return "", false
	}
	id := t.Entity()
	if !topicSafe(id) || strings.Contains(id, "/") {
		return "", false
	}
	var b strings.Builder
	b.Grow(len(ThingsPrefix) + len(id) + len(env.Path) + 32)
	b.WriteString(ThingsPrefix)
	b.WriteString(id)
	switch t.Criterion {
	case ditto.CriterionMessages:
	case ditto.CriterionCommands, ditto.CriterionEvents:
		if !topicSafe(t.Action) {
			return "", false
		}
		b.WriteString("/" + liveSegment + "/")
		b.WriteString(string(t.Criterion))
		b.WriteByte('/')
		b.WriteString(t.Action)
	default:
		return "", false
	}
	path := strings.TrimPrefix(env.Path, "/")
	if path == "" {
		return b.String(), t.Criterion != ditto.CriterionMessages
	}
	for seg := range strings.SplitSeq(path, "/") {
		if !topicSafe(seg) {
			return "", false
		}
		b.WriteByte('/')
		b.WriteString(seg)
	}
	return b.String(), true
}

// liveReg is a client's registration with the live router.
type liveReg struct {
	cancel   func()
	subjects []string // the device's subjects when it registered
}

// syncLive registers a client with the live router for the kinds its
// subscriptions may match, with the device's current subjects, replacing
// its previous registration; a client without live subscriptions, or
// whose device is gone, is unregistered.
func (b *Broker) syncLive(cl *mochi.Client) {
	if b.deps.Live == nil || cl.Net.Inline {
		return
	}
	subs := cl.State.Subscriptions.GetAll()
	filters := make([]string, 0, len(subs))
	for f := range subs {
		filters = append(filters, f)
	}
	kinds := liveKinds(filters)
	auth, ok := b.auth(cl.ID)
	b.liveMu.Lock()
	defer b.liveMu.Unlock()
	if reg := b.liveSubs[cl]; reg != nil {
		reg.cancel()
		delete(b.liveSubs, cl)
	}
	if len(kinds) == 0 || !ok || cl.Closed() || b.ctx.Err() != nil {
		return
	}
	reg := &liveReg{subjects: auth.Subjects}
	cancel, err := b.deps.Live.Subscribe(liveID(cl.ID), auth, kinds, nil, func(env ditto.Envelope) { b.deliverLive(cl, reg, env) })
	if err != nil {
		b.log.Warn("mqtt: live subscription", logKeyClient, cl.ID, logKeyError, err)
		return
	}
	reg.cancel = cancel
	b.liveSubs[cl] = reg
}

// dropLive unregisters a client from the live router.
func (b *Broker) dropLive(cl *mochi.Client) {
	b.liveMu.Lock()
	defer b.liveMu.Unlock()
	if reg := b.liveSubs[cl]; reg != nil {
		reg.cancel()
		delete(b.liveSubs, cl)
	}
}

// dropAllLive unregisters every client (Close).
func (b *Broker) dropAllLive() {
	b.liveMu.Lock()
	defer b.liveMu.Unlock()
	for cl, reg := range b.liveSubs {
		reg.cancel()
		delete(b.liveSubs, cl)
	}
}

// deliverLive is the live router's callback for one client: the signal
// goes out as Ditto Protocol JSON on its live topic, to this client only.
// The router authorized it against the subjects the device had when it
// registered; if the device changed or is gone since, the signal is
// dropped and the client registered again with what the device is now, so
// a changed device takes effect with its next signal. It does not block:
// mochi drops a publish for a client whose write queue is full (counted
// in publishDropped).
func (b *Broker) deliverLive(cl *mochi.Client, reg *liveReg, env ditto.Envelope) {
	if cl.Closed() || b.ctx.Err() != nil || !b.conventionsOn() {
		return
	}
	if auth, ok := b.auth(cl.ID); !ok || !slices.Equal(auth.Subjects, reg.subjects) {
		b.stats.liveStale.Add(1)
		b.syncLive(cl)
		return
	}
	topic, ok := liveTopic(env)
	if !ok {
		b.stats.liveUnroutable.Add(1)
		return
	}
	b.stats.liveSent.Add(1)
	id := cl.ID
	props := packets.Properties{ContentType: dittoContentType}
	b.publish(topic, ditto.EncodeEnvelope(env), props, 1, func(c string) bool { return c == id })
}

// isLiveSignal reports whether a Ditto Protocol message a device sent is
// for the live router: a live message, command or event, a response to
// one, or an acknowledgement.
func isLiveSignal(t ditto.Topic) bool {
	return t.Group == ditto.GroupThings && (t.Channel == ditto.ChannelLive || t.Criterion == ditto.CriterionAcks)
}

// live hands a device's live signal to the router: responses, errors and
// acknowledgements to Respond, messages, live commands and live events to
// Send, whose answer (if one was required) goes to the reply topic.
func (h *hook) live(cl *mochi.Client, pk packets.Packet, auth ditto.Auth, t ditto.Topic, env ditto.Envelope) error {
	b := h.b
	if b.deps.Live == nil {
		return h.fail(cl, pk, ditto.ErrUnavailable.New("The live channel is not available on this node."), &t)
	}
	for k := range env.Headers {
		if strings.HasPrefix(k, "ditto-") {
			delete(env.Headers, k)
		}
	}
	if env.Headers == nil {
		env.Headers = ditto.Headers{}
	}
	env.Headers[ditto.HeaderOrigin] = liveID(cl.ID)
	if t.Criterion == ditto.CriterionAcks || env.Status != 0 || t.Criterion == ditto.CriterionErrors {
		if err := b.deps.Live.Respond(env, auth); err != nil {
			return h.fail(cl, pk, asError(err), &t)
		}
		return packets.CodeSuccessIgnore
	}
	timeout := ditto.MaxTimeout
	if v := env.Headers.Get(ditto.HeaderTimeout); v != "" {
		d, err := ditto.ParseTimeout(v)
		if err != nil {
			return h.fail(cl, pk, asError(err), &t)
		}
		if d > 0 {
			timeout = d
		}
	}
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	resp, has, err := b.deps.Live.Send(ctx, env, auth)
	switch {
	case err != nil:
		return h.fail(cl, pk, asError(err), &t)
	case has:
		delete(resp.Headers, ditto.HeaderOrigin)
		h.reply(cl, pk, resp, resp.Status >= 400)
	}
	return packets.CodeSuccessIgnore
}

// asError is err as a Ditto error (500 for anything else).
func asError(err error) *ditto.Error {
	var de *ditto.Error
	if errors.As(err, &de) {
		return de
	}
	return ditto.ErrInternal.New("%v", err)
}

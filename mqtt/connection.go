package mqtt

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/dittonode/dittonode/ditto"
)

// The broker is the endpoint of the node's "embedded" Ditto connection
// (services/connectivity, embedded.go there; node/embedded.go joins the
// two). The connection contributes two things here:
//
//   - Whether the default topic conventions (topics.go) are on: Embedded
//     answers from the applied definition. With them off (the connection
//     closed, or its conventions switched off) device publishes on the
//     command and value topics get a connectivity:connection.closed error
//     (503; an MQTT 5 PUBACK 0x89 at QoS > 0), and no twin events or live
//     signals go out on the convention topics. Devices stay connected, and
//     ordinary pub/sub between them goes on.
//   - Its own sources and targets. A source is a set of topic filters:
//     a device publish on an ordinary topic (not ditto/…, things/…, $…)
//     that one of them matches is consumed by it (AddSource) instead of
//     being forwarded to subscribers, with the device's identity; its QoS 1
//     PUBACK follows the source's command as for the convention topics. A
//     target publishes to the devices it chose (Deliver), never retained.

// Embedded is the embedded connection as the broker sees it.
type Embedded interface {
	// Conventions reports whether the default topic conventions are on.
	Conventions() bool
}

// Message is a device publish consumed by a source of the embedded
// connection.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	// ClientID, Username and Subjects identify the publishing device.
	ClientID string
	Username string
	Subjects []string
	// Properties of an MQTT 5 publish.
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	MessageExpiry   uint32 // seconds; 0: none
	User            []UserProperty
}

// UserProperty is an MQTT 5 user property.
type UserProperty struct{ Key, Value string }

// Subscriber is a device subscribed to a topic.
type Subscriber struct {
	ClientID string
	Subjects []string
}

// Publication is what Deliver sends.
type Publication struct {
	Topic           string
	QoS             byte
	Payload         []byte
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	MessageExpiry   uint32
	User            []UserProperty
}

// ErrReservedTopic is the error of a Deliver to a topic of the default
// conventions or to a topic filter.
var ErrReservedTopic = errors.New("mqtt: the topic is reserved for the default conventions or not a valid topic name")

type source struct {
	filters []string
	deliver func(ctx context.Context, m Message)
}

// sourceSet holds the sources of the embedded connection; readers load the
// slice without locking.
type sourceSet struct {
	mu  sync.Mutex
	all atomic.Pointer[[]*source]
}

// AddSource routes device publishes on ordinary topics that match one of
// filters to deliver; the returned func removes the source again. The
// first source added wins where filters of several match.
func (b *Broker) AddSource(filters []string, deliver func(ctx context.Context, m Message)) (remove func()) {
	s := &source{filters: slices.Clone(filters), deliver: deliver}
	set := &b.sources
	set.mu.Lock()
	var cur []*source
	if p := set.all.Load(); p != nil {
		cur = *p
	}
	next := append(slices.Clone(cur), s)
	set.all.Store(&next)
	set.mu.Unlock()
	return func() {
		set.mu.Lock()
		defer set.mu.Unlock()
		p := set.all.Load()
		if p == nil {
			return
		}
		next := slices.DeleteFunc(slices.Clone(*p), func(x *source) bool { return x == s })
		set.all.Store(&next)
	}
}

// sourceFor is the source that consumes a publish on topic, nil if none.
func (b *Broker) sourceFor(topic string) *source {
	p := b.sources.all.Load()
	if p == nil {
		return nil
	}
	for _, s := range *p {
		for _, f := range s.filters {
			if filterMatches(f, topic) {
				return s
			}
		}
	}
	return nil
}

// conventionsOn reports whether the default topic conventions are on.
func (b *Broker) conventionsOn() bool {
	return b.deps.Embedded == nil || b.deps.Embedded.Conventions()
}

// Subscribers lists the devices subscribed to topic with their current
// subjects (devices that no longer exist are left out).
func (b *Broker) Subscribers(topic string) []Subscriber {
	if b.srv == nil {
		return nil
	}
	subs := b.srv.Topics.Subscribers(topic)
	ids := make([]string, 0, len(subs.Subscriptions))
	for id := range subs.Subscriptions {
		ids = append(ids, id)
	}
	for _, group := range subs.Shared {
		for id := range group {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	out := make([]Subscriber, 0, len(ids))
	for _, id := range ids {
		if auth, ok := b.auth(id); ok {
			out = append(out, Subscriber{ClientID: id, Subjects: auth.Subjects})
		}
	}
	return out
}

// Deliver publishes p to those of the clients that are subscribed to its
// topic (QoS 2 is sent as QoS 1; nothing is retained). The topic must be
// an ordinary one: the convention topics belong to the broker.
func (b *Broker) Deliver(p Publication, clientIDs []string) error {
	if b.srv == nil || b.ctx == nil || b.ctx.Err() != nil {
		return errors.New("mqtt: the broker is not running")
	}
	if p.Topic == "" || !mochi.IsValidFilter(p.Topic, true) || parseInbound(p.Topic).kind != inboundPlain {
		return ErrReservedTopic
	}
	if len(clientIDs) == 0 {
		return nil
	}
	props := packets.Properties{ContentType: p.ContentType, ResponseTopic: p.ResponseTopic, CorrelationData: p.CorrelationData}
	if p.MessageExpiry > 0 {
		props.MessageExpiryInterval = p.MessageExpiry
	}
	for _, u := range p.User {
		props.User = append(props.User, packets.UserProperty{Key: u.Key, Val: u.Value})
	}
	qos := min(p.QoS, 1)
	to := make(map[string]bool, len(clientIDs))
	for _, id := range clientIDs {
		to[id] = true
	}
	b.publish(p.Topic, p.Payload, props, qos, func(id string) bool { return to[id] })
	if qos > 0 && b.store != nil {
		b.store.flush() // queued copies for persistent sessions are durable
	}
	return nil
}

// consume runs a device publish through the source that matched it.
func (h *hook) consume(cl *mochi.Client, pk packets.Packet, src *source, auth ditto.Auth) error {
	m := Message{
		Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos, Retain: pk.FixedHeader.Retain,
		ClientID: cl.ID, Subjects: auth.Subjects,
		ContentType: pk.Properties.ContentType, ResponseTopic: pk.Properties.ResponseTopic,
		CorrelationData: pk.Properties.CorrelationData, MessageExpiry: pk.Properties.MessageExpiryInterval,
	}
	m.Username, _ = h.b.ident(cl.ID)
	for _, u := range pk.Properties.User {
		m.User = append(m.User, UserProperty{Key: u.Key, Value: u.Val})
	}
	src.deliver(h.b.ctx, m)
	return packets.CodeSuccessIgnore
}

// closedError is the answer to a command or value publish while the
// default conventions are off.
func closedError() *ditto.Error {
	return ditto.ErrConnectionClosed.New("The embedded connection is closed or its default topic conventions are off; the publish was not turned into a command.")
}

// filterMatches reports whether topic matches the MQTT topic filter f
// ($share/{group}/ prefixes allowed; wildcards do not match $ topics).
func filterMatches(f, topic string) bool {
	if rest, ok := strings.CutPrefix(f, "$share/"); ok {
		_, f, ok = strings.Cut(rest, "/")
		if !ok {
			return false
		}
	}
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(f, "+") || strings.HasPrefix(f, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(f, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore || !tmore {
			// a/# also matches a itself
			return fmore == tmore || (!tmore && frest == "#")
		}
		f, topic = frest, trest
	}
}

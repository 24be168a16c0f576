package node

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/mqtt"
	"github.com/dittonode/dittonode/services/connectivity"
)

// The embedded connection (services/connectivity embedded.go) runs on
// every node with a broker; its client is the broker itself, joined here.
var (
	_ connectivity.AudienceClient = (*embeddedClient)(nil)
	_ mqtt.Embedded               = (*embeddedConventions)(nil)
)

// brokerSlot hands the started broker to the embedded connection's client:
// the connection runtime starts before the broker (which needs the
// gateway), so the client waits for it.
type brokerSlot struct {
	ready chan struct{}
	once  sync.Once
	b     atomic.Pointer[mqtt.Broker]
}

func newBrokerSlot() *brokerSlot { return &brokerSlot{ready: make(chan struct{})} }

func (s *brokerSlot) set(b *mqtt.Broker) {
	s.b.Store(b)
	s.once.Do(func() { close(s.ready) })
}

// wait returns the broker once it started, or ctx's error.
func (s *brokerSlot) wait(ctx context.Context) (*mqtt.Broker, error) {
	select {
	case <-s.ready:
		return s.b.Load(), nil
	case <-ctx.Done():
		return nil, errors.New("the embedded MQTT broker has not started")
	}
}

// embeddedConventions tells the broker whether the default topic
// conventions are on, from the applied embedded connection; the parsed
// answer is kept per revision.
type embeddedConventions struct {
	svc *connectivity.Service

	mu  sync.Mutex
	rev int64
	on  bool
}

func (e *embeddedConventions) Conventions() bool {
	rec, err := e.svc.Retrieve(context.Background(), connectivity.EmbeddedID, true)
	if err != nil {
		return true // not created yet: the defaults hold
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if rec.Revision != e.rev {
		e.rev, e.on = rec.Revision, connectivity.ConventionsOn(rec)
	}
	return e.on
}

// embeddedClient is the connectivity.Client of the embedded connection:
// its sources are filters on this node's broker, its publishes go to the
// devices the runtime chose (the authorized subscribers of a target, or
// the device a reply answers).
type embeddedClient struct {
	slot *brokerSlot
	up   atomic.Bool

	mu      sync.Mutex
	b       *mqtt.Broker
	removes []func()
}

func (n *Node) newEmbeddedClient(*connectivity.Connection, *slog.Logger) (connectivity.Client, error) {
	return &embeddedClient{slot: n.embedded}, nil
}

func (e *embeddedClient) Connect(ctx context.Context) error {
	b, err := e.slot.wait(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.b = b
	e.mu.Unlock()
	e.up.Store(true)
	return nil
}

func (e *embeddedClient) broker() (*mqtt.Broker, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.b == nil {
		return nil, errors.New("the embedded connection is not connected")
	}
	return e.b, nil
}

// Subscribe adds a source to the broker: device publishes on ordinary
// topics matching addresses are delivered with the device as sender.
func (e *embeddedClient) Subscribe(_ context.Context, addresses []string, _ int, deliver connectivity.Deliver) error {
	b, err := e.broker()
	if err != nil {
		return err
	}
	remove := b.AddSource(addresses, func(ctx context.Context, m mqtt.Message) {
		ctx = connectivity.WithSender(ctx, connectivity.Sender{ClientID: m.ClientID, Auth: ditto.Auth{Subjects: m.Subjects}})
		deliver(ctx, m.Topic, externalOf(m))
	})
	e.mu.Lock()
	e.removes = append(e.removes, remove)
	e.mu.Unlock()
	return nil
}

// externalOf is a device publish as a connectivity message: the headers
// of an MQTT 5 connection (mqtt.topic, mqtt.qos, mqtt.retain, user
// properties, correlation-id, reply-to, content-type,
// mqtt.message-expiry-interval) plus the device's mqtt.username and
// mqtt.client-id, which user properties cannot override.
func externalOf(m mqtt.Message) connectivity.External {
	h := make(map[string]string, len(m.User)+8)
	for _, u := range m.User {
		h[strings.ToLower(u.Key)] = u.Value
	}
	if len(m.CorrelationData) > 0 {
		h["correlation-id"] = string(m.CorrelationData)
	}
	if m.ResponseTopic != "" {
		h["reply-to"] = m.ResponseTopic
	}
	if m.ContentType != "" {
		h["content-type"] = m.ContentType
	}
	for k := range h {
		if strings.HasPrefix(k, "mqtt.") {
			delete(h, k)
		}
	}
	if m.MessageExpiry > 0 {
		h["mqtt.message-expiry-interval"] = strconv.FormatUint(uint64(m.MessageExpiry), 10)
	}
	h["mqtt.topic"] = m.Topic
	h["mqtt.qos"] = strconv.Itoa(int(m.QoS))
	h["mqtt.retain"] = strconv.FormatBool(m.Retain)
	h["mqtt.username"] = m.Username
	h["mqtt.client-id"] = m.ClientID
	return connectivity.External{Headers: h, Payload: m.Payload, ContentType: m.ContentType, Text: utf8.Valid(m.Payload)}
}

// Publish delivers msg to the devices ctx names (connectivity.RecipientsOf);
// a publish that names none reaches nobody and fails.
func (e *embeddedClient) Publish(ctx context.Context, address string, qos int, msg connectivity.External) error {
	b, err := e.broker()
	if err != nil {
		return err
	}
	ids, ok := connectivity.RecipientsOf(ctx)
	if !ok {
		return errors.New("the embedded connection publishes only to the devices a signal is authorized for")
	}
	p := mqtt.Publication{Topic: address, QoS: byte(qos), Payload: msg.Payload, ContentType: msg.ContentType}
	for k, v := range msg.Headers {
		switch {
		case k == "correlation-id":
			p.CorrelationData = []byte(v)
		case k == "reply-to":
			p.ResponseTopic = v
		case k == "content-type":
			p.ContentType = v
		case k == "mqtt.message-expiry-interval":
			if n, err := strconv.ParseUint(v, 10, 32); err == nil {
				p.MessageExpiry = uint32(n)
			}
		case strings.HasPrefix(k, "mqtt."):
		default:
			p.User = append(p.User, mqtt.UserProperty{Key: k, Value: v})
		}
	}
	return b.Deliver(p, ids)
}

// Audience lists the devices subscribed to address with their subjects.
func (e *embeddedClient) Audience(address string) []connectivity.Recipient {
	b, err := e.broker()
	if err != nil {
		return nil
	}
	subs := b.Subscribers(address)
	out := make([]connectivity.Recipient, len(subs))
	for i, s := range subs {
		out[i] = connectivity.Recipient{ClientID: s.ClientID, Auth: ditto.Auth{Subjects: s.Subjects}}
	}
	return out
}

func (e *embeddedClient) Connected() bool { return e.up.Load() }

// Close removes the sources from the broker; devices stay connected.
func (e *embeddedClient) Close() error {
	e.up.Store(false)
	e.mu.Lock()
	removes := e.removes
	e.removes = nil
	e.mu.Unlock()
	for _, r := range removes {
		r()
	}
	return nil
}

package connectivity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// mqtt5Client is an MQTT 5 connection to an external broker. MQTT 5 carries
// headers: correlation data is correlation-id, the response topic reply-to,
// the content type content-type, and user properties are the other headers.
type mqtt5Client struct {
	conn *Connection
	log  *slog.Logger
	set  mqttSettings

	life   context.Context
	cancel context.CancelFunc

	up atomic.Bool

	mu      sync.Mutex
	cm      *autopaho.ConnectionManager
	cmStop  context.CancelFunc
	subs    []mqtt5Sub
	lastErr error
	// redelivering is set while a reconnect for redelivery is under way;
	// closing ends when Close begins and stops it.
	redelivering bool
	closing      context.Context
	closeStart   context.CancelFunc
	wg           sync.WaitGroup
}

// mqtt5SessionExpiry keeps the broker's session of a client without
// cleanSession for a minute after the link drops (Ditto's default), so
// that unacknowledged messages are delivered again on reconnect.
const mqtt5SessionExpiry = 60

type mqtt5Sub struct {
	filters []string
	qos     byte
	deliver Deliver
}

func newMQTT5Client(c *Connection, log *slog.Logger) (Client, error) {
	set, err := parseMQTTSettings(c)
	if err != nil {
		return nil, err
	}
	if set.broker.Scheme == "ssl" {
		set.broker.Scheme = "tls"
	}
	mk := func(set mqttSettings) Client {
		life, cancel := context.WithCancel(context.Background())
		closing, closeStart := context.WithCancel(life)
		return &mqtt5Client{conn: c, log: log, set: set, life: life, cancel: cancel, closing: closing, closeStart: closeStart}
	}
	if set.separatePublisher {
		return &splitClient{sub: mk(set), pub: mk(set.publisherSettings())}, nil
	}
	return mk(set), nil
}

func (m *mqtt5Client) Connect(ctx context.Context) error {
	m.mu.Lock()
	if m.cm != nil {
		m.cmStop()
		m.cm = nil
	}
	m.lastErr = nil
	m.mu.Unlock()
	u := *m.set.broker
	// The first failed attempt ends Connect (the runner retries with its
	// own backoff; a connection test fails at once).
	actx, failed := context.WithCancel(ctx)
	defer failed()
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{&u},
		TlsCfg:                        m.set.tls,
		KeepAlive:                     uint16(min(m.set.keepAlive/time.Second, 65535)),
		CleanStartOnInitialConnection: m.set.cleanSession,
		ConnectRetryDelay:             2 * time.Second,
		ReconnectBackoff:              autopaho.NewExponentialBackoff(time.Second, 30*time.Second, 2*time.Second, 2),
		ConnectTimeout:                10 * time.Second,
		ConnectUsername:               m.set.username,
		ConnectPassword:               []byte(m.set.password),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			m.up.Store(true)
			m.mu.Lock()
			subs := append([]mqtt5Sub(nil), m.subs...)
			m.mu.Unlock()
			if len(subs) == 0 {
				return
			}
			// Resubscribe after a reconnect; the callback must not block.
			go func() {
				ctx, cancel := context.WithTimeout(m.life, 10*time.Second)
				defer cancel()
				for _, s := range subs {
					if _, err := cm.Subscribe(ctx, subscribePacket(s)); err != nil {
						m.log.Warn("connectivity: mqtt-5 resubscribe failed", "error", err)
					}
				}
			}()
		},
		OnConnectionDown: func() bool { m.up.Store(false); return true },
		OnConnectError: func(err error) {
			m.mu.Lock()
			m.lastErr = err
			m.mu.Unlock()
			failed()
		},
		ClientConfig: paho.ClientConfig{
			ClientID:                   m.set.clientID,
			OnPublishReceived:          []func(paho.PublishReceived) (bool, error){m.received},
			EnableManualAcknowledgment: true,
		},
	}
	if !m.set.cleanSession {
		cfg.SessionExpiryInterval = mqtt5SessionExpiry
	}
	if w := m.set.will; w != nil {
		cfg.WillMessage = &paho.WillMessage{Topic: w.topic, Payload: w.message, QoS: w.qos, Retain: w.retain}
	}
	if m.set.username == "" {
		cfg.ConnectPassword = nil
	}
	cmCtx, stop := context.WithCancel(m.life)
	cm, err := autopaho.NewConnection(cmCtx, cfg)
	if err != nil {
		stop()
		return err
	}
	if err := cm.AwaitConnection(actx); err != nil {
		stop()
		<-cm.Done()
		m.mu.Lock()
		last := m.lastErr
		m.mu.Unlock()
		if last != nil {
			return fmt.Errorf("mqtt-5: %w", last)
		}
		return fmt.Errorf("mqtt-5: %w", err)
	}
	m.mu.Lock()
	m.cm, m.cmStop = cm, stop
	m.mu.Unlock()
	return nil
}

func subscribePacket(s mqtt5Sub) *paho.Subscribe {
	p := &paho.Subscribe{}
	for _, f := range s.filters {
		p.Subscriptions = append(p.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: s.qos})
	}
	return p
}

// received routes an incoming publish to the subscriptions whose filters
// match its topic.
func (m *mqtt5Client) received(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	m.mu.Lock()
	subs := append([]mqtt5Sub(nil), m.subs...)
	m.mu.Unlock()
	h := map[string]string{
		"mqtt.topic":  p.Topic,
		"mqtt.qos":    strconv.Itoa(int(p.QoS)),
		"mqtt.retain": strconv.FormatBool(p.Retain),
	}
	ct := ""
	if props := p.Properties; props != nil {
		for _, up := range props.User {
			h[strings.ToLower(up.Key)] = up.Value
		}
		if len(props.CorrelationData) > 0 {
			h["correlation-id"] = string(props.CorrelationData)
		}
		if props.ResponseTopic != "" {
			h["reply-to"] = props.ResponseTopic
		}
		if props.ContentType != "" {
			ct = props.ContentType
			h["content-type"] = ct
		}
		if props.MessageExpiry != nil {
			h["mqtt.message-expiry-interval"] = strconv.FormatUint(uint64(*props.MessageExpiry), 10)
		}
	}
	msg := External{Headers: h, Payload: p.Payload, ContentType: ct, Text: utf8.Valid(p.Payload)}
	handled, redeliver := false, false
	for _, s := range subs {
		for _, f := range s.filters {
			if topicMatches(f, p.Topic) {
				redeliver = s.deliver(m.life, p.Topic, msg)
				handled = true
				break
			}
		}
		if handled {
			break
		}
	}
	if redeliver && p.QoS > 0 {
		m.redeliver()
		return handled, nil
	}
	if err := pr.Client.Ack(p); err != nil {
		m.log.Debug("connectivity: mqtt-5 ack failed", "error", err)
	}
	return handled, nil
}

// redeliver stops the link without acknowledging the messages in flight
// and reconnects after the redelivery delay with the session kept, so that
// the broker delivers them again. One reconnect covers every message that
// asked for it meanwhile.
func (m *mqtt5Client) redeliver() {
	m.mu.Lock()
	if m.redelivering || m.closing.Err() != nil {
		m.mu.Unlock()
		return
	}
	m.redelivering = true
	cm, stop := m.cm, m.cmStop
	m.cm = nil
	m.wg.Add(1)
	m.mu.Unlock()
	m.up.Store(false)
	go func() {
		defer m.wg.Done()
		defer func() {
			m.mu.Lock()
			m.redelivering = false
			m.mu.Unlock()
		}()
		if cm != nil {
			// A normal DISCONNECT keeps the session (its expiry is
			// set without cleanSession) and publishes no will.
			ctx, cancel := context.WithTimeout(m.closing, time.Second)
			_ = cm.Disconnect(ctx)
			cancel()
			stop()
			<-cm.Done()
		}
		for {
			select {
			case <-m.closing.Done():
				return
			case <-time.After(m.set.redeliveryDelay):
			}
			ctx, cancel := context.WithTimeout(m.closing, 30*time.Second)
			err := m.Connect(ctx)
			cancel()
			if err == nil || m.closing.Err() != nil {
				return
			}
			m.log.Warn("connectivity: mqtt-5 reconnect for redelivery failed", "error", err)
		}
	}()
}

// topicMatches reports whether topic matches the MQTT filter.
func topicMatches(filter, topic string) bool {
	if strings.HasPrefix(filter, "$share/") {
		parts := strings.SplitN(filter, "/", 3)
		if len(parts) < 3 {
			return false
		}
		filter = parts[2]
	}
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	if len(tl) > 0 && strings.HasPrefix(tl[0], "$") && len(fl) > 0 && (fl[0] == "+" || fl[0] == "#") {
		return false
	}
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) || f != "+" && f != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}

func (m *mqtt5Client) manager() (*autopaho.ConnectionManager, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cm == nil {
		return nil, errors.New("mqtt-5: not connected")
	}
	return m.cm, nil
}

func (m *mqtt5Client) Subscribe(ctx context.Context, addresses []string, qos int, deliver Deliver) error {
	cm, err := m.manager()
	if err != nil {
		return err
	}
	s := mqtt5Sub{filters: addresses, qos: byte(qos), deliver: deliver}
	m.mu.Lock()
	m.subs = append(m.subs, s)
	m.mu.Unlock()
	ack, err := cm.Subscribe(ctx, subscribePacket(s))
	if err != nil {
		return err
	}
	for i, rc := range ack.Reasons {
		if rc >= 0x80 {
			return fmt.Errorf("mqtt-5: the broker refused the subscription %q (reason code %d)", addresses[min(i, len(addresses)-1)], rc)
		}
	}
	return nil
}

// Publish sends msg; mqtt.* headers are options, correlation-id, reply-to
// and content-type become MQTT 5 properties and the other headers user
// properties.
func (m *mqtt5Client) Publish(ctx context.Context, address string, qos int, msg External) error {
	cm, err := m.manager()
	if err != nil {
		return err
	}
	if address == "" || strings.ContainsAny(address, "+#") {
		return fmt.Errorf("mqtt-5: invalid topic %q", address)
	}
	props := &paho.PublishProperties{ContentType: msg.ContentType}
	for k, v := range msg.Headers {
		switch {
		case k == "correlation-id":
			props.CorrelationData = []byte(v)
		case k == "reply-to":
			props.ResponseTopic = v
		case k == "content-type":
			props.ContentType = v
		case k == "mqtt.message-expiry-interval":
			if n, err := strconv.ParseUint(v, 10, 32); err == nil {
				e := uint32(n)
				props.MessageExpiry = &e
			}
		case strings.HasPrefix(k, "mqtt."):
		default:
			props.User = append(props.User, paho.UserProperty{Key: k, Value: v})
		}
	}
	_, err = cm.Publish(ctx, &paho.Publish{Topic: address, QoS: byte(qos), Retain: msg.Headers["mqtt.retain"] == "true",
		Payload: msg.Payload, Properties: props})
	return err
}

func (m *mqtt5Client) Connected() bool { return m.up.Load() }

func (m *mqtt5Client) Close() error {
	m.mu.Lock()
	m.closeStart()
	m.mu.Unlock()
	m.wg.Wait()
	m.mu.Lock()
	cm, stop := m.cm, m.cmStop
	m.cm = nil
	m.mu.Unlock()
	var err error
	if cm != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = cm.Disconnect(ctx)
		cancel()
		stop()
		<-cm.Done()
	}
	m.cancel()
	if errors.Is(err, context.Canceled) || errors.Is(err, autopaho.ConnectionDownError) {
		err = nil
	}
	return err
}

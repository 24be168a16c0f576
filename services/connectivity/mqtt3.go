package connectivity

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// mqtt3Client is an MQTT 3.1.1 connection to an external broker.
type mqtt3Client struct {
	conn *Connection
	log  *slog.Logger
	set  mqttSettings

	// life ends with Close; message handlers run under it.
	life   context.Context
	cancel context.CancelFunc

	mu   sync.Mutex
	cl   mqtt.Client
	subs []mqttSub
	// redelivering is set while a reconnect for redelivery is under way;
	// closing ends when Close begins and stops it.
	redelivering bool
	closing      context.Context
	closeStart   context.CancelFunc
	wg           sync.WaitGroup
}

type mqttSub struct {
	filters map[string]byte
	deliver Deliver
}

func newMQTT3Client(c *Connection, log *slog.Logger) (Client, error) {
	set, err := parseMQTTSettings(c)
	if err != nil {
		return nil, err
	}
	mk := func(set mqttSettings) Client {
		life, cancel := context.WithCancel(context.Background())
		closing, closeStart := context.WithCancel(life)
		return &mqtt3Client{conn: c, log: log, set: set, life: life, cancel: cancel, closing: closing, closeStart: closeStart}
	}
	if set.separatePublisher {
		return &splitClient{sub: mk(set), pub: mk(set.publisherSettings())}, nil
	}
	return mk(set), nil
}

func (m *mqtt3Client) Connect(ctx context.Context) error {
	opts := mqtt.NewClientOptions().AddBroker(m.set.broker.String()).SetClientID(m.set.clientID).
		SetCleanSession(m.set.cleanSession).SetKeepAlive(m.set.keepAlive).SetAutoReconnect(true).
		SetConnectRetry(false).SetOrderMatters(true).SetMaxReconnectInterval(30 * time.Second).
		SetWriteTimeout(10 * time.Second).SetAutoAckDisabled(true)
	if dl, ok := ctx.Deadline(); ok {
		opts.SetConnectTimeout(time.Until(dl))
	}
	if m.set.username != "" {
		opts.SetUsername(m.set.username).SetPassword(m.set.password)
	}
	if m.set.tls != nil {
		opts.SetTLSConfig(m.set.tls)
	}
	if w := m.set.will; w != nil {
		opts.SetBinaryWill(w.topic, w.message, w.qos, w.retain)
	}
	opts.SetOnConnectHandler(func(cl mqtt.Client) {
		// Resubscribe after a reconnect (the initial subscriptions are
		// made by Subscribe).
		m.mu.Lock()
		subs := append([]mqttSub(nil), m.subs...)
		m.mu.Unlock()
		for _, s := range subs {
			cl.SubscribeMultiple(s.filters, m.handler(s.deliver))
		}
	})
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		m.log.Warn("connectivity: mqtt connection lost", "error", err)
	})
	cl := mqtt.NewClient(opts)
	// Route the existing subscriptions before connecting: a persistent
	// session delivers its queued and unacknowledged messages at once.
	m.mu.Lock()
	for _, s := range m.subs {
		for f := range s.filters {
			cl.AddRoute(f, m.handler(s.deliver))
		}
	}
	m.mu.Unlock()
	tok := cl.Connect()
	if err := waitToken(ctx, tok); err != nil {
		cl.Disconnect(0)
		return err
	}
	m.mu.Lock()
	old := m.cl
	m.cl = cl
	m.mu.Unlock()
	if old != nil {
		old.Disconnect(0)
	}
	return nil
}

// redeliver drops the link without acknowledging the messages in flight
// and reconnects after the redelivery delay, so that the broker delivers
// them again (the session is kept unless cleanSession is set). One
// reconnect covers every message that asked for it meanwhile.
func (m *mqtt3Client) redeliver() {
	m.mu.Lock()
	if m.redelivering || m.closing.Err() != nil {
		m.mu.Unlock()
		return
	}
	m.redelivering = true
	cl := m.cl
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		defer func() {
			m.mu.Lock()
			m.redelivering = false
			m.mu.Unlock()
		}()
		if cl != nil {
			// A DISCONNECT keeps the session (without cleanSession) and
			// publishes no will.
			cl.Disconnect(0)
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
			m.log.Warn("connectivity: mqtt reconnect for redelivery failed", "error", err)
		}
	}()
}

func waitToken(ctx context.Context, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return fmt.Errorf("mqtt: %w", ctx.Err())
	}
}

func (m *mqtt3Client) handler(deliver Deliver) mqtt.MessageHandler {
	return func(_ mqtt.Client, msg mqtt.Message) {
		h := map[string]string{
			"mqtt.topic":  msg.Topic(),
			"mqtt.qos":    strconv.Itoa(int(msg.Qos())),
			"mqtt.retain": strconv.FormatBool(msg.Retained()),
		}
		p := msg.Payload()
		if deliver(m.life, msg.Topic(), External{Headers: h, Payload: p, Text: utf8.Valid(p)}) && msg.Qos() > 0 {
			m.redeliver()
			return
		}
		msg.Ack()
	}
}

func (m *mqtt3Client) client() (mqtt.Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cl == nil {
		return nil, errors.New("mqtt: not connected")
	}
	return m.cl, nil
}

func (m *mqtt3Client) Subscribe(ctx context.Context, addresses []string, qos int, deliver Deliver) error {
	cl, err := m.client()
	if err != nil {
		return err
	}
	filters := make(map[string]byte, len(addresses))
	for _, a := range addresses {
		filters[a] = byte(qos)
	}
	if err := waitToken(ctx, cl.SubscribeMultiple(filters, m.handler(deliver))); err != nil {
		return err
	}
	m.mu.Lock()
	m.subs = append(m.subs, mqttSub{filters: filters, deliver: deliver})
	m.mu.Unlock()
	return nil
}

func (m *mqtt3Client) Publish(ctx context.Context, address string, qos int, msg External) error {
	cl, err := m.client()
	if err != nil {
		return err
	}
	if address == "" || strings.ContainsAny(address, "+#") {
		return fmt.Errorf("mqtt: invalid topic %q", address)
	}
	retain := msg.Headers["mqtt.retain"] == "true"
	return waitToken(ctx, cl.Publish(address, byte(qos), retain, msg.Payload))
}

func (m *mqtt3Client) Connected() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cl != nil && m.cl.IsConnectionOpen()
}

func (m *mqtt3Client) Close() error {
	m.mu.Lock()
	m.closeStart()
	m.mu.Unlock()
	m.wg.Wait()
	m.cancel()
	m.mu.Lock()
	cl := m.cl
	m.cl = nil
	m.mu.Unlock()
	if cl != nil {
		cl.Disconnect(250)
	}
	return nil
}

// newCorrelationID returns a random version 4 UUID.
func newCorrelationID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/dittonode/dittonode/ditto"
)

// Protocol is what the broker needs of the gateway: running commands as a
// device's subjects and the authorized view of twin events
// (services/gateway.Server implements it).
type Protocol interface {
	ExecuteProtocol(ctx context.Context, env ditto.Envelope, auth ditto.Auth, origin string) (ditto.Envelope, bool)
	ExecuteThingCommand(ctx context.Context, cmd ditto.Command) (ditto.Result, *ditto.Error)
	EventView(sig ditto.Signal, auth ditto.Auth) (env ditto.Envelope, full, ok bool)
}

// Devices are the device identities (services/connectivity.Service
// implements it).
type Devices interface {
	AuthenticateDevice(username, password string) ([]string, bool)
	DeviceSubjects(username string) ([]string, bool)
}

// Deps are the broker's collaborators.
type Deps struct {
	Protocol Protocol
	Devices  Devices
	// Bus is the node's signal bus (nil: no events go out).
	Bus *ditto.Bus
	// Live is the live-signal router (nil: devices get no live signals).
	Live Live
	// Embedded is the node's embedded connection (nil: the default
	// conventions are always on; connection.go).
	Embedded Embedded
	Logger   *slog.Logger
	Clock    func() time.Time
}

// Log keys.
const (
	logKeyClient = "client"
	logKeyError  = "error"
	logKeyAddr   = "addr"
)

// Broker is the embedded MQTT broker.
type Broker struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	// setAside holds, per client ID, an outbound in-flight message set
	// aside during one SUBSCRIBE (packetid.go).
	setAside sync.Map

	srv    *mochi.Server
	inline *mochi.Client // the broker's own publisher (replies, events)
	store  *store        // nil without Dir
	limit  *authLimiter

	// pipes are the command pipelines of connected clients.
	pipeMu sync.Mutex
	pipes  map[*mochi.Client]*clientPipeline

	// idents maps client IDs to the device usernames that own them.
	identMu sync.RWMutex
	idents  map[string]string

	// pubMu serializes the broker's own publishes; cur restricts the
	// delivery of the publish in progress to the clients it is meant for.
	pubMu sync.Mutex
	cur   atomic.Pointer[delivery]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	started   bool
	closeOnce sync.Once
	closeErr  error
	addrs     map[string]net.Addr

	// liveSubs are the live-router registrations of clients with live
	// subscriptions.
	liveMu   sync.Mutex
	liveSubs map[*mochi.Client]*liveReg

	// sources are the sources of the embedded connection (connection.go).
	sources sourceSet

	stats stats
}

// delivery is one publish of the broker's own: only clients allow accepts
// get it.
type delivery struct {
	topic string
	allow func(clientID string) bool
}

type stats struct {
	authFailures   atomic.Int64
	authBlocked    atomic.Int64
	commands       atomic.Int64
	commandErrors  atomic.Int64
	eventsSent     atomic.Int64
	eventCutoffs   atomic.Int64
	publishDropped atomic.Int64
	qosDropped     atomic.Int64
	liveSent       atomic.Int64
	liveUnroutable atomic.Int64
	liveStale      atomic.Int64
	// journalReplayed counts journaled publishes published again at start.
	journalReplayed atomic.Int64
}

// New allocates a broker; Start listens.
func New(cfg Config, deps Deps) *Broker {
	cfg = cfg.withDefaults()
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	return &Broker{cfg: cfg, deps: deps, log: deps.Logger, idents: map[string]string{}, addrs: map[string]net.Addr{},
		pipes: map[*mochi.Client]*clientPipeline{}, liveSubs: map[*mochi.Client]*liveReg{},
		limit: newAuthLimiter(cfg.AuthFailures, cfg.AuthWindow, cfg.AuthBlock, deps.Clock)}
}

// Listener IDs.
const (
	ListenerTCP  = "tcp"
	ListenerWS   = "ws"
	ListenerTLS  = "tls"
	ListenerQUIC = "quic"
)

// Start restores the persisted state, opens the listeners and begins
// forwarding twin events. On error everything opened is closed again.
func (b *Broker) Start(ctx context.Context) (err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return errors.New("mqtt: already started")
	}
	b.started = true
	if b.deps.Protocol == nil || b.deps.Devices == nil {
		return errors.New("mqtt: the broker needs Protocol and Devices")
	}
	b.ctx, b.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			b.mu.Unlock()
			_ = b.Close()
			b.mu.Lock()
		}
	}()
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumInflight = uint16(b.cfg.MaxInflight)
	caps.MaximumClientWritesPending = int32(b.cfg.MaxPending)
	caps.MaximumSessionExpiryInterval = uint32(b.cfg.SessionExpiry / time.Second)
	caps.ReceiveMaximum = uint16(min(b.cfg.MaxInflight, 65535))
	b.srv = mochi.New(&mochi.Options{
		Capabilities:           caps,
		Logger:                 b.log.With("component", "mochi"),
		InlineClient:           true,
		SysTopicResendInterval: 60,
	})
	b.inline = b.srv.NewClient(nil, "local", "dittonode-broker", true)
	b.inline.Properties.ProtocolVersion = 5
	if err := b.srv.AddHook(&hook{b: b}, nil); err != nil {
		return fmt.Errorf("mqtt: add hook: %w", err)
	}
	if b.cfg.Dir != "" {
		if err := os.MkdirAll(b.cfg.Dir, 0o700); err != nil {
			return fmt.Errorf("mqtt: create %s: %w", b.cfg.Dir, err)
		}
		b.store = newStore(b.cfg.Dir, b.cfg.NoSync, b.log, b.rememberIdent)
		b.store.journal.srv = b.srv
		if err := b.srv.AddHook(b.store, nil); err != nil {
			return fmt.Errorf("mqtt: open store: %w", err)
		}
	}
	lns, err := b.listeners()
	if err != nil {
		return err
	}
	for _, l := range lns {
		if err := b.srv.AddListener(l); err != nil {
			return fmt.Errorf("mqtt: listen %s %s: %w", l.ID(), l.Address(), err)
		}
		b.addrs[l.ID()] = listenerAddr(l)
	}
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("mqtt: serve: %w", err)
	}
	b.replayJournal()
	if b.deps.Bus != nil {
		sub := b.deps.Bus.Subscribe(b.cfg.EventQueue)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.pumpEvents(sub)
		}()
	}
	for id, a := range b.addrs {
		b.log.Info("mqtt: listening", "listener", id, logKeyAddr, a.String())
	}
	return nil
}

// Addr is the address of a listener (ListenerTCP, …), nil when it is off.
func (b *Broker) Addr(listener string) net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addrs[listener]
}

// Close stops the listeners and clients, then flushes and closes the
// store. It is idempotent and safe after a failed Start.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		if b.cancel != nil {
			b.cancel()
		}
		b.dropAllLive()
		var errs []error
		if b.srv != nil {
			// mochi stops the listeners, disconnects the clients and then
			// stops the hooks (the store flushes there).
			errs = append(errs, b.srv.Close())
		}
		b.wg.Wait()
		if b.store != nil {
			errs = append(errs, b.store.close())
		}
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}

// Stats are the broker's counters for /health.
func (b *Broker) Stats() map[string]any {
	m := map[string]any{
		"authFailures":    b.stats.authFailures.Load(),
		"authBlocked":     b.stats.authBlocked.Load(),
		"commands":        b.stats.commands.Load(),
		"commandErrors":   b.stats.commandErrors.Load(),
		"eventsSent":      b.stats.eventsSent.Load(),
		"eventCutoffs":    b.stats.eventCutoffs.Load(),
		"publishDropped":  b.stats.publishDropped.Load(),
		"qosDropped":      b.stats.qosDropped.Load(),
		"liveSent":        b.stats.liveSent.Load(),
		"liveUnroutable":  b.stats.liveUnroutable.Load(),
		"liveStale":       b.stats.liveStale.Load(),
		"journalReplayed": b.stats.journalReplayed.Load(),
	}
	if b.srv != nil {
		info := b.srv.Info.Clone()
		m["clientsConnected"] = info.ClientsConnected
		m["clientsTotal"] = info.ClientsTotal
		m["inflight"] = info.Inflight
		m["inflightDropped"] = info.InflightDropped
		m["messagesDropped"] = info.MessagesDropped
		m["retained"] = info.Retained
	}
	if b.store != nil {
		m["storeErrors"] = b.store.errors.Load()
	}
	return m
}

// disconnectListener disconnects the connected clients of a listener
// (shutdown): a snapshot of all clients, then one disconnect each.
func (b *Broker) disconnectListener(id string) {
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Listener == id && !cl.Net.Inline && !cl.Closed() {
			_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// rememberIdent records which device owns a client ID.
func (b *Broker) rememberIdent(clientID, username string) {
	b.identMu.Lock()
	b.idents[clientID] = username
	b.identMu.Unlock()
}

func (b *Broker) forgetIdent(clientID string) {
	b.identMu.Lock()
	delete(b.idents, clientID)
	b.identMu.Unlock()
}

func (b *Broker) ident(clientID string) (string, bool) {
	b.identMu.RLock()
	defer b.identMu.RUnlock()
	u, ok := b.idents[clientID]
	return u, ok
}

// auth returns the current subjects of a client's device; ok is false when
// the device no longer exists.
func (b *Broker) auth(clientID string) (ditto.Auth, bool) {
	u, ok := b.ident(clientID)
	if !ok {
		return ditto.Auth{}, false
	}
	subs, ok := b.deps.Devices.DeviceSubjects(u)
	if !ok || len(subs) == 0 {
		return ditto.Auth{}, false
	}
	return ditto.Auth{Subjects: subs}, true
}

// publish sends one message of the broker's own to the subscribers of
// topic that allow accepts.
func (b *Broker) publish(topic string, payload []byte, props packets.Properties, qos byte, allow func(string) bool) {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic,
		Payload:     payload,
		Properties:  props,
		// mochi never tracks the broker's own QoS 1 publish, but its
		// validity check wants a packet ID.
		PacketID: uint16(qos),
	}
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	b.cur.Store(&delivery{topic: topic, allow: allow})
	defer b.cur.Store(nil)
	if err := b.srv.InjectPacket(b.inline, pk); err != nil {
		b.log.Warn("mqtt: publish", "topic", topic, logKeyError, err)
	}
}

// listenerAddr is the bound address of a listener (useful with port 0).
func listenerAddr(l listeners.Listener) net.Addr {
	if a, ok := l.(interface{ Addr() net.Addr }); ok {
		return a.Addr()
	}
	return addrString{l.Protocol(), l.Address()}
}

type addrString struct{ network, addr string }

func (a addrString) Network() string { return a.network }
func (a addrString) String() string  { return a.addr }

package connectivity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// RuntimeConfig tunes running connections.
type RuntimeConfig struct {
	// ReconcileInterval is how often the runtime compares the running
	// connections with the applied definitions and the cluster members
	// (it also reacts at once to applied changes).
	ReconcileInterval time.Duration `json:"reconcileInterval" yaml:"reconcile-interval"`
	// ConnectTimeout bounds one connection attempt and testConnection.
	ConnectTimeout time.Duration `json:"connectTimeout" yaml:"connect-timeout"`
	// MaxReconnectDelay caps the backoff between failed attempts.
	MaxReconnectDelay time.Duration `json:"maxReconnectDelay" yaml:"max-reconnect-delay"`
	// CommandTimeout bounds one consumed message's command.
	CommandTimeout time.Duration `json:"commandTimeout" yaml:"command-timeout"`
	// PublishTimeout bounds one publish to the external system.
	PublishTimeout time.Duration `json:"publishTimeout" yaml:"publish-timeout"`
	// SignalQueue is the queue of signals waiting for a connection's
	// targets; a connection that falls further behind loses signals (they
	// are counted as dropped and logged).
	SignalQueue int `json:"signalQueue" yaml:"signal-queue"`
	// LogDuration is how long connection logs stay enabled after
	// enableConnectionLogs or an open.
	LogDuration time.Duration `json:"logDuration" yaml:"log-duration"`
}

func defaultRuntimeConfig() RuntimeConfig {
	return RuntimeConfig{ReconcileInterval: time.Second, ConnectTimeout: 10 * time.Second, MaxReconnectDelay: 30 * time.Second,
		CommandTimeout: 10 * time.Second, PublishTimeout: 10 * time.Second, SignalQueue: 4096, LogDuration: 24 * time.Hour}
}

func (c RuntimeConfig) withDefaults() RuntimeConfig {
	d := defaultRuntimeConfig()
	if c.ReconcileInterval <= 0 {
		c.ReconcileInterval = d.ReconcileInterval
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = d.ConnectTimeout
	}
	if c.MaxReconnectDelay <= 0 {
		c.MaxReconnectDelay = d.MaxReconnectDelay
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = d.CommandTimeout
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = d.PublishTimeout
	}
	if c.SignalQueue <= 0 {
		c.SignalQueue = d.SignalQueue
	}
	if c.LogDuration <= 0 {
		c.LogDuration = d.LogDuration
	}
	return c
}

// Dispatcher executes a Ditto Protocol command (a twin command or a live
// signal) as the given subjects and returns the response envelope (an
// error envelope for a failed command; has is false when the signal has no
// response, like a live message without response-required).
type Dispatcher interface {
	Dispatch(ctx context.Context, env ditto.Envelope, auth ditto.Auth) (resp ditto.Envelope, has bool, err error)
}

// View authorizes one signal for the subjects of a target and applies the
// target topic's namespaces, filter and extraFields. ok is false when the
// target must not get the signal.
type View func(sig ditto.Signal, auth ditto.Auth) (env ditto.Envelope, ok bool)

// Views compiles target topic queries (namespaces, filter, extraFields)
// into views, with the same authorization and filtering as WebSocket
// subscribers get.
type Views interface {
	TwinEventView(q url.Values) (View, error)
	LiveSignalView(q url.Values) (func(env ditto.Envelope, auth ditto.Auth) (ditto.Envelope, bool), error)
}

// Remote reaches the runtime of another node: Ask runs Local(op, id) on
// node and returns its JSON answer.
type Remote interface {
	Ask(ctx context.Context, node, op, id string) (json.RawMessage, error)
}

// Operations a node answers for connections it runs (Runtime.Local).
const (
	OpStatus       = "status"
	OpMetrics      = "metrics"
	OpLogs         = "logs"
	OpResetMetrics = "resetMetrics"
	OpEnableLogs   = "enableLogs"
	OpResetLogs    = "resetLogs"
)

// Local answers op for connection id from this node's runtime.
func (r *Runtime) Local(op, id string) (any, error) {
	switch op {
	case OpStatus:
		rec, ok := r.deps.Service.fsm.lookup(id)
		if !ok {
			return nil, ditto.ErrConnectionNotFound.New("The connection with ID '%s' could not be found.", id)
		}
		return r.Status(rec), nil
	case OpMetrics:
		return r.Metrics(id), nil
	case OpLogs:
		return r.Logs(id), nil
	case OpResetMetrics:
		r.ResetMetrics(id)
		return map[string]any{}, nil
	case OpEnableLogs:
		r.EnableLogs(id)
		return map[string]any{}, nil
	case OpResetLogs:
		r.ResetLogs(id)
		return map[string]any{}, nil
	}
	return nil, ditto.ErrConnectionCommand.New("The operation '%s' is unknown.", clip(op))
}

// onOwner runs op on the node that runs connection id: here, or through
// Remote. An unreachable owner's status is answered here (liveStatus
// unknown); other operations fail with 503.
func (r *Runtime) onOwner(ctx context.Context, op, id string) (any, error) {
	owner, own := r.Owner(id)
	if own || r.deps.Remote == nil || owner == "" {
		return r.Local(op, id)
	}
	raw, err := r.deps.Remote.Ask(ctx, owner, op, id)
	if err == nil {
		v, derr := ditto.DecodeJSON(raw)
		if derr == nil {
			return v, nil
		}
		err = derr
	}
	var de *ditto.Error
	if errors.As(err, &de) {
		return nil, de
	}
	if op == OpStatus {
		return r.Local(op, id)
	}
	return nil, ditto.ErrUnavailable.New("The node %s that runs the connection '%s' did not answer: %v", owner, id, err)
}

// LiveSource delivers live signals (messages, live commands and events) a
// subscriber's subjects may read, and takes the acknowledgements targets
// issue (Respond) for labels they declared when subscribing.
type LiveSource interface {
	Subscribe(id string, auth ditto.Auth, kinds []string, declaredAcks []string, deliver func(ditto.Envelope)) (cancel func(), err error)
	Respond(env ditto.Envelope, auth ditto.Auth) error
}

// RuntimeDeps are the runtime's collaborators.
type RuntimeDeps struct {
	Service    *Service
	Dispatcher Dispatcher
	Views      Views
	// Live is the source of live signals for live targets (nil: live
	// targets get nothing).
	Live LiveSource
	// Acks collects the custom acknowledgements sources request for their
	// twin commands (nil: custom labels time out).
	Acks TwinAcks
	// Bus carries the applied twin events.
	Bus *ditto.Bus
	// Members returns this node's ID and the live members of the cluster;
	// nil means a single node that runs every connection. No members
	// means this node may run none (it is cut off from the majority).
	Members func() (self string, members []string)
	// Factories build the client of each connection type; default
	// DefaultClientFactories.
	Factories map[string]ClientFactory
	// Embedded builds the client of the embedded connection (the node's
	// MQTT broker); nil when this node runs no broker (embedded.go).
	Embedded ClientFactory
	// Remote asks the node that runs a connection for its status,
	// metrics and logs, or to reset them (nil: answer locally).
	Remote Remote
	Logger *slog.Logger
	Clock  func() time.Time
}

// Runtime runs the open connections this node owns: it connects their
// clients, consumes their sources into commands and publishes signals to
// their targets. It owns one goroutine for reconciling and a few per
// running connection.
type Runtime struct {
	cfg  RuntimeConfig
	mcfg MappingConfig
	deps RuntimeDeps
	log  *slog.Logger

	mu      sync.Mutex
	running map[string]*runner
	stats   map[string]*stats
	closed  bool

	// embeddedNext is when ensureEmbedded may try again (reconcile
	// goroutine only).
	embeddedNext time.Time

	wake   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewRuntime allocates a runtime; Start runs it.
func NewRuntime(cfg Config, deps RuntimeDeps) *Runtime {
	cfg = cfg.withDefaults()
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if deps.Factories == nil {
		deps.Factories = DefaultClientFactories()
	}
	return &Runtime{cfg: cfg.Runtime, mcfg: cfg.Mapping, deps: deps, log: deps.Logger,
		running: map[string]*runner{}, stats: map[string]*stats{}, wake: make(chan struct{}, 1)}
}

// Start begins reconciling.
func (r *Runtime) Start(ctx context.Context) error {
	if r.deps.Service == nil || r.deps.Dispatcher == nil {
		return errors.New("connectivity: runtime needs a service and a dispatcher")
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	r.deps.Service.fsm.watch(r.Wake)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(r.cfg.ReconcileInterval)
		defer t.Stop()
		for {
			r.reconcile(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-r.wake:
			}
		}
	}()
	return nil
}

// Wake asks for a reconcile soon (membership or definitions changed).
func (r *Runtime) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Close stops every running connection and waits for them.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	running := r.running
	r.running = map[string]*runner{}
	r.mu.Unlock()
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	var errs []error
	for _, rn := range running {
		errs = append(errs, rn.stop())
	}
	return errors.Join(errs...)
}

// Owner returns the node that runs connection id and whether it is this
// node.
func (r *Runtime) Owner(id string) (string, bool) {
	if r.deps.Members == nil {
		return "", true
	}
	self, members := r.deps.Members()
	if id == EmbeddedID {
		return self, true // every node runs it for its own devices
	}
	if len(members) == 0 {
		// Cut off from the majority (no connectivity leader): run
		// nothing, so a partition does not run a connection twice; a
		// status request is answered here (liveStatus unknown).
		return "", false
	}
	o := Owner(id, members)
	return o, o == self
}

func (r *Runtime) statsOf(id string) *stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats[id]
	if s == nil {
		s = newStats()
		r.stats[id] = s
	}
	return s
}

// reconcile starts the open connections this node owns and stops the rest.
func (r *Runtime) reconcile(ctx context.Context) {
	r.ensureEmbedded(ctx)
	want := map[string]*Record{}
	for _, rec := range r.deps.Service.List() {
		want[rec.ID] = rec
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	var stop []*runner
	var closing []*runner // closed by the user: they announce it
	for id, rn := range r.running {
		rec, ok := want[id]
		_, own := r.Owner(id)
		if !ok || !own || rec.Revision != rn.rev || rn.conn.ConnectionStatus != "open" {
			stop = append(stop, rn)
			delete(r.running, id)
			if ok && own && rec.Revision != rn.rev {
				if c, err := ParseConnection(rec.JSON, r.types()); err == nil && c.ConnectionStatus == "closed" {
					closing = append(closing, rn)
				}
			}
		}
	}
	for id := range r.stats {
		if _, ok := want[id]; !ok {
			delete(r.stats, id)
		}
	}
	r.mu.Unlock()
	for _, rn := range closing {
		actx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
		rn.announce(actx, "closed", "closedAt")
		cancel()
	}
	for _, rn := range stop {
		if err := rn.stop(); err != nil {
			r.log.Debug("connectivity: close client", "connection", rn.conn.ID, "error", err)
		}
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		rec := want[id]
		if _, own := r.Owner(id); !own || id == EmbeddedID && r.deps.Embedded == nil {
			continue
		}
		r.mu.Lock()
		_, running := r.running[id]
		r.mu.Unlock()
		if running {
			continue
		}
		c, err := ParseConnection(rec.JSON, r.types())
		if err != nil {
			r.log.Warn("connectivity: stored connection is not runnable", "connection", id, "error", err)
			continue
		}
		if c.ConnectionStatus != "open" {
			continue
		}
		rn, err := r.newRunner(c, rec.Revision)
		if err != nil {
			r.log.Warn("connectivity: connection misconfigured", "connection", id, "error", err)
			continue
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return
		}
		r.running[id] = rn
		r.mu.Unlock()
		rn.start(ctx)
	}
}

func (r *Runtime) types() []string {
	out := make([]string, 0, len(r.deps.Factories))
	for t := range r.deps.Factories {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Test connects a client for c and closes it again (testConnection and
// POST /connections?dry-run=true).
func (r *Runtime) Test(ctx context.Context, c *Connection) error {
	f := r.factory(c)
	if f == nil && c.IsEmbedded() {
		return ditto.ErrConnectionFailed.New("The connection '%s' cannot be tested here: %v.", c.ID, errNoBroker)
	}
	if f == nil {
		return ditto.ErrConnectionInvalid.New("The connectionType '%s' has no client on this node.", c.ConnectionType)
	}
	cl, err := f(c, r.log)
	if err != nil {
		return ditto.ErrConnectionFailed.New("The connection '%s' could not be set up: %v", c.ID, err)
	}
	defer func() { _ = cl.Close() }()
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ConnectTimeout)
	defer cancel()
	if err := cl.Connect(ctx); err != nil {
		return ditto.ErrConnectionFailed.New("Connecting '%s' to %s failed: %v", c.ID, redactURI(c.URI), err)
	}
	if c.IsEmbedded() {
		return nil // its sources are filters on this node's broker: nothing to subscribe
	}
	for _, s := range c.Sources {
		qos := 0
		if s.QoS != nil {
			qos = *s.QoS
		}
		if err := cl.Subscribe(ctx, s.Addresses, qos, func(context.Context, string, External) bool { return false }); err != nil {
			return ditto.ErrConnectionFailed.New("Subscribing the source addresses of '%s' failed: %v", c.ID, err)
		}
	}
	return nil
}

// Status is the live status of a connection (GET /connections/{id}/status).
func (r *Runtime) Status(rec *Record) map[string]any {
	c, err := ParseConnection(rec.JSON, r.types())
	out := map[string]any{"connectionId": rec.ID}
	if err != nil {
		out["connectionStatus"], out["liveStatus"] = "unknown", "misconfigured"
		out["clientStatus"] = []any{map[string]any{"type": "client", "client": r.selfName(), "status": "misconfigured", "statusDetails": err.Error()}}
		return out
	}
	out["connectionStatus"] = c.ConnectionStatus
	owner, own := r.Owner(rec.ID)
	if !own {
		out["liveStatus"] = "unknown"
		out["clientStatus"] = []any{map[string]any{"type": "client", "client": owner, "status": "unknown",
			"statusDetails": fmt.Sprintf("The connection runs on node %s; ask that node for its live status.", owner)}}
		return out
	}
	r.mu.Lock()
	rn := r.running[rec.ID]
	r.mu.Unlock()
	if rn == nil && c.IsEmbedded() && r.deps.Embedded == nil {
		for k, v := range embeddedOffStatus(r.selfName()) {
			out[k] = v
		}
		return out
	}
	if rn == nil {
		out["liveStatus"] = "closed"
		if c.ConnectionStatus == "open" {
			out["liveStatus"] = "unknown"
		}
		out["clientStatus"] = []any{}
		out["sourceStatus"] = []any{}
		out["targetStatus"] = []any{}
		return out
	}
	for k, v := range rn.status(r.selfName()) {
		out[k] = v
	}
	return out
}

func (r *Runtime) selfName() string {
	if r.deps.Members == nil {
		return "node"
	}
	self, _ := r.deps.Members()
	return self
}

// Metrics renders the connection's metrics on this node.
func (r *Runtime) Metrics(id string) map[string]any {
	now := r.deps.Clock()
	return map[string]any{"connectionId": id, "containsFailures": r.statsOf(id).hasFailures(now),
		"connectionMetrics": r.statsOf(id).metricsJSON(now)}
}

// Logs renders the connection's logs on this node.
func (r *Runtime) Logs(id string) map[string]any {
	entries, since, until := r.statsOf(id).logsJSON()
	out := map[string]any{"connectionId": id, "connectionLogs": entries}
	if !since.IsZero() {
		out["enabledSince"] = ditto.FormatTime(since)
		out["enabledUntil"] = ditto.FormatTime(until)
	}
	return out
}

// ResetMetrics clears the connection's metrics.
func (r *Runtime) ResetMetrics(id string) { r.statsOf(id).resetMetrics() }

// EnableLogs enables the connection's logs for LogDuration.
func (r *Runtime) EnableLogs(id string) { r.statsOf(id).enableLogs(r.deps.Clock(), r.cfg.LogDuration) }

// ResetLogs clears the connection's logs.
func (r *Runtime) ResetLogs(id string) { r.statsOf(id).resetLogs() }

func (s *stats) hasFailures(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.counters {
		if !c[1].last.IsZero() {
			return true
		}
	}
	return false
}

// Running lists the IDs of the connections running on this node.
func (r *Runtime) Running() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.running))
	for id := range r.running {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/dittonode/dittonode/ditto"
)

// streamKind is one START-SEND-* subscription of a session.
type streamKind uint8

const (
	kindEvents streamKind = iota
	kindMessages
	kindLiveCommands
	kindLiveEvents
	kindAnnouncements
	numKinds
)

// controlNames maps the suffix of START-SEND-/STOP-SEND- to a kind.
var controlNames = map[string]streamKind{
	"EVENTS":               kindEvents,
	"MESSAGES":             kindMessages,
	"LIVE-COMMANDS":        kindLiveCommands,
	"LIVE-EVENTS":          kindLiveEvents,
	"POLICY-ANNOUNCEMENTS": kindAnnouncements,
}

// liveKinds are the Live.Subscribe kinds of the live stream kinds.
var liveKinds = map[streamKind]string{
	kindMessages:     LiveKindMessages,
	kindLiveCommands: LiveKindLiveCommands,
	kindLiveEvents:   LiveKindLiveEvents,
}

// maxSearches bounds the concurrent search subscriptions of a session.
const maxSearches = 16

// reasonJWTExpired is the close reason of a session whose JWT expired.
const reasonJWTExpired = "gateway:websocket.session.expired: the JWT expired"

// wsSession is one WebSocket connection.
//
// Goroutines, all owned by the session and waited for in run: the read
// loop (the request goroutine), the writer, the pinger, the closer, the
// expirer, one pump for live signals, one per running command and one per
// search subscription. Twin events and announcements come from the
// server's fan-out (ws_fanout.go) straight into the events queue. Lock
// order: mu only; never held while sending.
type wsSession struct {
	id       string
	srv      *Server
	conn     *websocket.Conn
	cork     *corkedConn // nil when the connection was not hijacked through corkingWriter
	declared []string

	ctx    context.Context // ends when the session fails or closes
	cancel context.CancelFunc
	out    chan []byte
	// events is the bounded queue of encoded twin events and
	// announcements the fan-out fills; a session it overflows is cut off.
	events chan []byte
	// streams is what the fan-out reads of this session, replaced under mu.
	streams atomic.Pointer[streamView]
	cmdSem  chan struct{}
	// liveQ holds pointers: a channel's buffer is allocated whole, and
	// EventQueue envelopes per session would be most of a session's memory.
	liveQ chan *ditto.Envelope
	wg    sync.WaitGroup

	failOnce    sync.Once
	closing     chan struct{}
	closeCode   websocket.StatusCode
	closeReason string

	mu         sync.Mutex
	auth       ditto.Auth
	specs      [numKinds]*streamSpec
	fanned     bool // registered with the event fan-out
	liveCancel func()
	searches   map[string]SearchSubscription
	// searchCIDs is the correlation-id of each subscription's latest
	// subscribe, request or cancel, which its messages carry (as in Ditto).
	searchCIDs map[string]string
	// expiry is when the session's JWT expires (zero: never); expiryMoved
	// wakes the expirer when JWT-TOKEN changes it.
	expiry      time.Time
	expiryMoved chan struct{}
}

func newSession(s *Server, conn *websocket.Conn, auth ditto.Auth, expiry time.Time, declared []string) *wsSession {
	ctx, cancel := context.WithCancel(context.Background())
	cfg := s.cfg.Streams
	ss := &wsSession{
		id: "ws-" + s.deps.NewUUID(), srv: s, conn: conn, declared: declared,
		ctx: ctx, cancel: cancel,
		out:         make(chan []byte, cfg.OutQueue),
		events:      make(chan []byte, cfg.EventQueue),
		cmdSem:      make(chan struct{}, cfg.MaxInFlight),
		liveQ:       make(chan *ditto.Envelope, cfg.EventQueue),
		closing:     make(chan struct{}),
		auth:        auth,
		searches:    map[string]SearchSubscription{},
		searchCIDs:  map[string]string{},
		expiry:      expiry,
		expiryMoved: make(chan struct{}, 1),
	}
	ss.streams.Store(&streamView{auth: auth, authKey: authKey(auth)})
	return ss
}

// publishStreamsLocked replaces the fan-out's view of the session; the
// caller holds mu.
func (ss *wsSession) publishStreamsLocked() {
	ss.streams.Store(&streamView{auth: ss.auth, authKey: authKey(ss.auth), specs: ss.specs})
}

// go runs fn in a goroutine the session owns.
func (ss *wsSession) goFn(fn func()) {
	ss.wg.Add(1)
	go func() {
		defer ss.wg.Done()
		fn()
	}()
}

// run serves the session until the client or the server closes it.
func (ss *wsSession) run() {
	ss.goFn(ss.closer)
	ss.goFn(ss.writer)
	ss.goFn(ss.pinger)
	ss.goFn(ss.expirer)
	ss.goFn(ss.livePump)
	if len(ss.declared) > 0 {
		if err := ss.resubscribeLive(); err != nil {
			ss.failWith(err)
		}
	}
	for {
		_, data, err := ss.conn.Read(context.Background())
		if err != nil {
			switch {
			case websocket.CloseStatus(err) != -1:
				ss.fail(websocket.StatusNormalClosure, "")
			case errors.Is(err, context.Canceled):
				ss.fail(websocket.StatusNormalClosure, "")
			default:
				// coder/websocket already closed with 1009 for oversized frames.
				ss.fail(websocket.StatusPolicyViolation, "read failed")
			}
			break
		}
		if !ss.handleFrame(data) {
			break
		}
	}
	ss.srv.fanout.remove(ss)
	ss.mu.Lock()
	ss.fanned = false
	if ss.liveCancel != nil {
		ss.liveCancel()
		ss.liveCancel = nil
	}
	for _, sub := range ss.searches {
		sub.Cancel()
	}
	ss.mu.Unlock()
	ss.wg.Wait()
}

// fail ends the session with a close code and reason; the first call wins.
// It never blocks.
func (ss *wsSession) fail(code websocket.StatusCode, reason string) {
	ss.failOnce.Do(func() {
		ss.closeCode, ss.closeReason = code, reason
		ss.cancel()
		close(ss.closing)
	})
}

// failWith closes the session because of a Ditto error (e.g. a declared
// ack label that is not unique).
func (ss *wsSession) failWith(err error) {
	var de *ditto.Error
	reason := "internal error"
	if errors.As(err, &de) {
		reason = de.Code
	}
	ss.srv.log.Debug("gateway: websocket session failed", logKeySession, ss.id, logKeyError, err)
	ss.fail(websocket.StatusPolicyViolation, reason)
}

// closer performs the close handshake once the session fails.
func (ss *wsSession) closer() {
	<-ss.closing
	_ = ss.conn.Close(ss.closeCode, ss.closeReason) // the peer may be gone already
}

// maxWriteBatch bounds the frames the writer writes under one deadline.
const maxWriteBatch = 64

// writer writes the queued frames (command responses and live signals from
// out, twin events and announcements from events). Frames that are already
// queued are written as one batch: the connection is corked meanwhile, so
// the batch reaches the socket in one write, and one watchdog bounds the
// batch to FrameTimeout (a deadline per frame costs more than the frame
// under fan-out); a batch ends once half of FrameTimeout is used up. A
// batch that does not finish in time closes the connection.
func (ss *wsSession) writer() {
	timeout := ss.srv.cfg.Streams.FrameTimeout
	watchdog := time.AfterFunc(timeout, func() {
		ss.fail(websocket.StatusPolicyViolation, "write timed out: consumer too slow")
		_ = ss.conn.CloseNow()
	})
	watchdog.Stop()
	defer watchdog.Stop()
	for {
		var frame []byte
		select {
		case <-ss.ctx.Done():
			return
		case frame = <-ss.out:
		case frame = <-ss.events:
		}
		began := time.Now()
		watchdog.Reset(timeout)
		if ss.cork != nil {
			ss.cork.cork()
		}
		err := ss.conn.Write(context.Background(), websocket.MessageText, frame)
		for n := 1; err == nil && n < maxWriteBatch && time.Since(began) < timeout/2; n++ {
			select {
			case frame = <-ss.out:
			case frame = <-ss.events:
			default:
				frame = nil
			}
			if frame == nil {
				break
			}
			err = ss.conn.Write(context.Background(), websocket.MessageText, frame)
		}
		if ss.cork != nil {
			if uerr := ss.cork.uncork(); err == nil {
				err = uerr
			}
		}
		watchdog.Stop()
		if err != nil {
			ss.fail(websocket.StatusPolicyViolation, "write timed out: consumer too slow")
			return
		}
	}
}

// pinger pings the client every PingInterval and closes the session when a
// pong does not arrive within PongTimeout.
func (ss *wsSession) pinger() {
	cfg := ss.srv.cfg.Streams
	t := newTicker(cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ss.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(ss.ctx, cfg.PongTimeout)
			err := ss.conn.Ping(ctx)
			cancel()
			if err != nil && ss.ctx.Err() == nil {
				ss.fail(websocket.StatusPolicyViolation, "pong timeout")
				return
			}
		}
	}
}

// expirer ends the session (close 1008) when its JWT expires; setAuth
// moves the expiry.
func (ss *wsSession) expirer() {
	for {
		ss.mu.Lock()
		exp := ss.expiry
		ss.mu.Unlock()
		var fire <-chan time.Time
		var timer *time.Timer
		if !exp.IsZero() {
			d := exp.Sub(ss.srv.deps.Clock())
			if d <= 0 {
				ss.fail(websocket.StatusPolicyViolation, reasonJWTExpired)
				return
			}
			timer = time.NewTimer(d)
			fire = timer.C
		}
		select {
		case <-ss.ctx.Done():
		case <-ss.expiryMoved:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		if ss.ctx.Err() != nil {
			return
		}
	}
}

// setAuth replaces the session's authentication and JWT expiry.
func (ss *wsSession) setAuth(auth ditto.Auth, expiry time.Time) {
	ss.mu.Lock()
	ss.auth, ss.expiry = auth, expiry
	ss.publishStreamsLocked()
	ss.mu.Unlock()
	select {
	case ss.expiryMoved <- struct{}{}:
	default: // a wake-up is pending already; the expirer reads the latest expiry
	}
}

// send queues a frame, waiting while the writer is behind; false when the
// session ended.
func (ss *wsSession) send(frame []byte) bool {
	select {
	case ss.out <- frame:
		return true
	case <-ss.ctx.Done():
		return false
	}
}

func (ss *wsSession) sendEnvelope(env ditto.Envelope) bool {
	return ss.send(ditto.EncodeEnvelope(env))
}

func (ss *wsSession) sendError(t ditto.Topic, h ditto.Headers, err *ditto.Error) bool {
	return ss.sendEnvelope(ditto.ErrorEnvelope(t, h, err))
}

func (ss *wsSession) currentAuth() ditto.Auth {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.auth
}

func (ss *wsSession) spec(k streamKind) *streamSpec {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.specs[k]
}

// handleFrame dispatches one client frame: a text control frame or a Ditto
// Protocol message. It returns false when the session must end.
func (ss *wsSession) handleFrame(data []byte) bool {
	text := string(data)
	switch {
	case strings.HasPrefix(text, "START-SEND-"), strings.HasPrefix(text, "STOP-SEND-"), strings.HasPrefix(text, "JWT-TOKEN"):
		return ss.handleControl(text)
	}
	return ss.handleProtocol(data)
}

// control is a parsed text control frame.
type control struct {
	name   string // the frame without parameters, e.g. START-SEND-EVENTS
	start  bool
	kind   streamKind
	jwt    bool
	params url.Values
}

// parseControl parses START-SEND-*, STOP-SEND-* and JWT-TOKEN frames with
// their URL-encoded parameters.
func parseControl(text string) (control, *ditto.Error) {
	name, query, _ := strings.Cut(text, "?")
	name = strings.TrimSpace(name)
	params, err := url.ParseQuery(query)
	if err != nil {
		return control{}, ditto.ErrQueryParamInvalid.New("The parameters of the frame '%s' are not URL-encoded correctly.", name)
	}
	c := control{name: name, params: params}
	switch {
	case name == "JWT-TOKEN":
		c.jwt = true
		return c, nil
	case strings.HasPrefix(name, "START-SEND-"):
		c.start = true
		k, ok := controlNames[name[len("START-SEND-"):]]
		if ok {
			c.kind = k
			return c, nil
		}
	case strings.HasPrefix(name, "STOP-SEND-"):
		k, ok := controlNames[name[len("STOP-SEND-"):]]
		if ok {
			c.kind = k
			return c, nil
		}
	}
	return control{}, ditto.ErrJSONInvalid.New("The frame '%s' is neither a known control frame nor a Ditto Protocol message.", truncateText(name, 100))
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (ss *wsSession) handleControl(text string) bool {
	c, derr := parseControl(text)
	if derr != nil {
		return ss.sendError(ditto.Topic{}, nil, derr)
	}
	if c.jwt {
		return ss.refreshJWT(c.params.Get("jwtToken"))
	}
	if !c.start {
		ss.setSpec(c.kind, nil)
		return ss.send([]byte(c.name + ":ACK"))
	}
	spec, derr := parseStreamSpec(c.params)
	if derr != nil {
		return ss.sendError(ditto.Topic{}, nil, derr)
	}
	if err := ss.setSpec(c.kind, spec); err != nil {
		ss.failWith(err)
		return false
	}
	return ss.send([]byte(c.name + ":ACK"))
}

// setSpec starts (spec != nil) or stops a stream kind: events and
// announcements come from the server's event fan-out, the live kinds from
// one live subscription.
func (ss *wsSession) setSpec(k streamKind, spec *streamSpec) error {
	ss.mu.Lock()
	ss.specs[k] = spec
	ss.publishStreamsLocked()
	if k == kindEvents || k == kindAnnouncements {
		wantBus := ss.specs[kindEvents] != nil || ss.specs[kindAnnouncements] != nil
		switch {
		case wantBus && !ss.fanned && ss.ctx.Err() == nil:
			ss.fanned = ss.srv.fanout.add(ss)
		case !wantBus && ss.fanned:
			ss.srv.fanout.remove(ss)
			ss.fanned = false
		}
		ss.mu.Unlock()
		return nil
	}
	ss.mu.Unlock()
	return ss.resubscribeLive()
}

// resubscribeLive (re)registers the session with the live router for the
// live kinds it subscribed to, plus acks when it declared labels.
func (ss *wsSession) resubscribeLive() error {
	live := ss.srv.deps.Live
	if live == nil {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var kinds []string
	for k, name := range liveKinds {
		if ss.specs[k] != nil {
			kinds = append(kinds, name)
		}
	}
	if len(ss.declared) > 0 {
		kinds = append(kinds, LiveKindAcks)
	}
	if ss.liveCancel != nil {
		ss.liveCancel()
		ss.liveCancel = nil
	}
	if len(kinds) == 0 || ss.ctx.Err() != nil {
		return nil
	}
	cancel, err := live.Subscribe(ss.id, ss.auth, kinds, ss.declared, ss.deliverLive)
	if err != nil {
		return err
	}
	ss.liveCancel = cancel
	return nil
}

// deliverLive is the live router's callback: it never blocks; a session
// whose live queue overflows is closed.
func (ss *wsSession) deliverLive(env ditto.Envelope) {
	select {
	case ss.liveQ <- &env:
	case <-ss.ctx.Done():
	default:
		ss.fail(websocket.StatusPolicyViolation, "live signal queue overflowed: consumer too slow")
	}
}

// livePump filters and forwards live signals.
func (ss *wsSession) livePump() {
	for {
		select {
		case <-ss.ctx.Done():
			return
		case p := <-ss.liveQ:
			env := *p
			if env.Headers.Get(HeaderOrigin) == ss.id {
				continue
			}
			t, err := ditto.ParseTopic(env.Topic)
			if err != nil {
				continue
			}
			var kind streamKind
			switch {
			case t.Criterion == ditto.CriterionMessages:
				kind = kindMessages
			case t.Criterion == ditto.CriterionCommands:
				kind = kindLiveCommands
			case t.Criterion == ditto.CriterionEvents:
				kind = kindLiveEvents
			default:
				// acks and responses addressed to this session pass as they are.
				env.Headers = outboundHeaders(env.Headers)
				if !ss.sendEnvelope(env) {
					return
				}
				continue
			}
			spec := ss.spec(kind)
			if spec == nil {
				continue
			}
			out, ok := ss.srv.viewLiveSignal(env, t, ss.currentAuth(), spec)
			if ok && !ss.sendEnvelope(out) {
				return
			}
		}
	}
}

// weakAck acknowledges weakly (200, ditto-weak-ack: true) the labels the
// session declared that a twin event requests, when the session filters the
// event out (its own event, namespaces, RQL filter, no READ), so the command
// does not wait for an acknowledgement that cannot come. The live router
// keeps the first ack of a label, so a weak ack it issued itself for a
// subscriber without READ is not overwritten.
func (ss *wsSession) weakAck(sig ditto.Signal, t ditto.Topic) {
	live := ss.srv.deps.Live
	raw := sig.Envelope.Headers[ditto.HeaderRequestedAcks]
	if live == nil || raw == "" || len(ss.declared) == 0 {
		return
	}
	cid := sig.Envelope.Headers[ditto.HeaderCorrelationID]
	for label := range strings.SplitSeq(raw, ",") {
		label = strings.TrimSpace(label)
		if !slices.Contains(ss.declared, label) {
			continue
		}
		at := ditto.Topic{Namespace: t.Namespace, Name: t.Name, Group: ditto.GroupThings, Channel: ditto.ChannelTwin, Criterion: ditto.CriterionAcks, Action: label}
		ack := ditto.Envelope{
			Topic:   at.String(),
			Headers: ditto.Headers{ditto.HeaderCorrelationID: cid, headerWeakAck: "true", HeaderOrigin: ss.id},
			Path:    "/", Status: http.StatusOK,
		}
		if err := live.Respond(ack, ss.currentAuth()); err != nil {
			ss.srv.log.Debug("gateway: weak acknowledgement rejected", logKeySession, ss.id, logKeyError, err)
		}
	}
}

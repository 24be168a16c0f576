package gateway

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"

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

// maxSelfTracked bounds the correlation-ids a session remembers to skip
// the events of its own commands.
const maxSelfTracked = 4096

// wsSession is one WebSocket connection.
//
// Goroutines, all owned by the session and waited for in run: the read
// loop (the request goroutine), the writer, the pinger, the closer, one
// pump for bus signals while events or announcements are subscribed, one
// for live signals, one per running command and one per search
// subscription. Lock order: mu only; never held while sending.
type wsSession struct {
	id       string
	srv      *Server
	conn     *websocket.Conn
	declared []string

	ctx    context.Context // ends when the session fails or closes
	cancel context.CancelFunc
	out    chan []byte
	cmdSem chan struct{}
	liveQ  chan ditto.Envelope
	wg     sync.WaitGroup

	failOnce    sync.Once
	closing     chan struct{}
	closeCode   websocket.StatusCode
	closeReason string

	mu         sync.Mutex
	auth       ditto.Auth
	specs      [numKinds]*streamSpec
	busSub     *ditto.Subscription
	liveCancel func()
	searches   map[string]SearchSubscription
	self       map[string]int // correlation-ids of own commands in flight
}

func newSession(s *Server, conn *websocket.Conn, auth ditto.Auth, declared []string) *wsSession {
	ctx, cancel := context.WithCancel(context.Background())
	cfg := s.cfg.Streams
	return &wsSession{
		id: "ws-" + s.deps.NewUUID(), srv: s, conn: conn, declared: declared,
		ctx: ctx, cancel: cancel,
		out:      make(chan []byte, cfg.OutQueue),
		cmdSem:   make(chan struct{}, cfg.MaxInFlight),
		liveQ:    make(chan ditto.Envelope, cfg.EventQueue),
		closing:  make(chan struct{}),
		auth:     auth,
		searches: map[string]SearchSubscription{},
		self:     map[string]int{},
	}
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
	ss.mu.Lock()
	if ss.busSub != nil {
		ss.busSub.Close()
	}
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

// writer writes the queued frames, each within FrameTimeout.
func (ss *wsSession) writer() {
	timeout := ss.srv.cfg.Streams.FrameTimeout
	for {
		select {
		case <-ss.ctx.Done():
			return
		case frame := <-ss.out:
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			err := ss.conn.Write(ctx, websocket.MessageText, frame)
			cancel()
			if err != nil {
				ss.fail(websocket.StatusPolicyViolation, "write timed out: consumer too slow")
				return
			}
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
// announcements share one bus subscription, the live kinds one live
// subscription.
func (ss *wsSession) setSpec(k streamKind, spec *streamSpec) error {
	ss.mu.Lock()
	ss.specs[k] = spec
	if k == kindEvents || k == kindAnnouncements {
		wantBus := ss.specs[kindEvents] != nil || ss.specs[kindAnnouncements] != nil
		switch {
		case wantBus && ss.busSub == nil && ss.srv.deps.Bus != nil:
			sub := ss.srv.deps.Bus.Subscribe(ss.srv.cfg.Streams.EventQueue)
			ss.busSub = sub
			ss.goFn(func() { ss.busPump(sub) })
		case !wantBus && ss.busSub != nil:
			ss.busSub.Close()
			ss.busSub = nil
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
	case ss.liveQ <- env:
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
		case env := <-ss.liveQ:
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

// busPump turns bus signals into twin events and announcements for the
// client. A subscription the bus cut off for being too slow closes the
// session.
func (ss *wsSession) busPump(sub *ditto.Subscription) {
	for {
		select {
		case <-ss.ctx.Done():
			return
		case <-sub.Done():
			if errors.Is(sub.Err(), ditto.ErrSlowSubscriber) {
				ss.fail(websocket.StatusPolicyViolation, "event queue overflowed: consumer too slow")
			}
			return
		case sig := <-sub.C():
			if !ss.handleSignal(sig) {
				return
			}
		}
	}
}

func (ss *wsSession) handleSignal(sig ditto.Signal) bool {
	t, err := ditto.ParseTopic(sig.Envelope.Topic)
	if err != nil {
		return true
	}
	switch {
	case t.Group == ditto.GroupThings && t.Channel == ditto.ChannelTwin && t.Criterion == ditto.CriterionEvents:
		if ss.ownSignal(sig.Envelope.Headers) {
			return true
		}
		spec := ss.spec(kindEvents)
		if spec == nil {
			return true
		}
		ev, ok := ss.srv.viewTwinEvent(sig, t, ss.currentAuth(), spec, false)
		if !ok {
			return true
		}
		if !ev.filtered && ev.extra == nil {
			return ss.send(ss.srv.hub.encoded.frame(sig))
		}
		return ss.sendEnvelope(eventEnvelope(sig, ev))
	case t.Group == ditto.GroupPolicies && t.Criterion == ditto.CriterionAnnouncements:
		spec := ss.spec(kindAnnouncements)
		if spec == nil || !spec.inNamespaces(t.Namespace) || !announcementFor(sig.Envelope, ss.currentAuth()) {
			return true
		}
		env := sig.Envelope
		env.Headers = outboundHeaders(env.Headers)
		return ss.sendEnvelope(env)
	}
	// Policy events are never pushed to sessions (ditto-spec §4).
	return true
}

// ownSignal reports whether a twin event was caused by this session: it
// carries the session's origin header, or the correlation-id of a command
// the session sent whose event it has not seen yet (the things service does
// not copy the origin header into events; see trackSelf).
func (ss *wsSession) ownSignal(h ditto.Headers) bool {
	if h.Get(HeaderOrigin) == ss.id {
		return true
	}
	cid := h.Get(ditto.HeaderCorrelationID)
	if cid == "" {
		return false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	n, ok := ss.self[cid]
	if !ok {
		return false
	}
	if n <= 1 {
		delete(ss.self, cid)
	} else {
		ss.self[cid] = n - 1
	}
	return true
}

// trackSelf remembers the correlation-id of a modifying command the session
// sends while it receives events, so that its event is skipped; untrack
// forgets it when the command produced no event.
func (ss *wsSession) trackSelf(cid string) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.specs[kindEvents] == nil || len(ss.self) >= maxSelfTracked {
		return false
	}
	ss.self[cid]++
	return true
}

func (ss *wsSession) untrackSelf(cid string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if n := ss.self[cid]; n <= 1 {
		delete(ss.self, cid)
	} else {
		ss.self[cid] = n - 1
	}
}

package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/dittonode/dittonode/ditto"
)

// wsPath is the WebSocket endpoint of API 2.
const wsPath = "/ws/2"

// Defaults of StreamConfig.
const (
	DefaultPingInterval  = 30 * time.Second
	DefaultPongTimeout   = 20 * time.Second
	DefaultFrameTimeout  = 10 * time.Second
	DefaultMaxFrameBytes = 256 * 1024
	DefaultEventQueue    = 1024
	DefaultOutQueue      = 256
	DefaultMaxStreams    = 4096
	DefaultMaxInFlight   = 64
	DefaultSSEKeepAlive  = 15 * time.Second
	DefaultReplayWindow  = 1024
)

// logKeySession is the log key of a WebSocket session ID.
const logKeySession = "session"

// StreamConfig configures the long-lived streams: WebSocket sessions and SSE.
// Zero fields take their defaults.
type StreamConfig struct {
	// PingInterval is how often the server pings a WebSocket client.
	PingInterval time.Duration `json:"pingInterval" yaml:"pingInterval"`
	// PongTimeout closes a session whose client does not answer a ping in
	// time.
	PongTimeout time.Duration `json:"pongTimeout" yaml:"pongTimeout"`
	// FrameTimeout bounds writing one frame (WS) or one event (SSE); a
	// stalled client is disconnected instead of blocking the node.
	FrameTimeout time.Duration `json:"frameTimeout" yaml:"frameTimeout"`
	// MaxFrameBytes bounds an incoming WebSocket frame (close 1009).
	MaxFrameBytes int64 `json:"maxFrameBytes" yaml:"maxFrameBytes"`
	// EventQueue is the signal-bus queue of one stream; a stream that falls
	// this far behind is closed (WS close 1008).
	EventQueue int `json:"eventQueue" yaml:"eventQueue"`
	// OutQueue is the number of frames a session buffers for its writer.
	OutQueue int `json:"outQueue" yaml:"outQueue"`
	// MaxStreams bounds the open WebSocket sessions plus SSE streams (429).
	MaxStreams int `json:"maxStreams" yaml:"maxStreams"`
	// MaxInFlight bounds the commands one session runs concurrently; more
	// wait (back-pressure on the socket).
	MaxInFlight int `json:"maxInFlight" yaml:"maxInFlight"`
	// SSEKeepAlive is the interval of SSE keep-alive comments.
	SSEKeepAlive time.Duration `json:"sseKeepAlive" yaml:"sseKeepAlive"`
	// ReplayWindow is the number of recent twin events kept for SSE
	// Last-Event-ID resumption.
	ReplayWindow int `json:"replayWindow" yaml:"replayWindow"`
}

func (c StreamConfig) withDefaults() StreamConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	def(&c.PingInterval, DefaultPingInterval)
	def(&c.PongTimeout, DefaultPongTimeout)
	def(&c.FrameTimeout, DefaultFrameTimeout)
	def(&c.SSEKeepAlive, DefaultSSEKeepAlive)
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	defInt(&c.EventQueue, DefaultEventQueue)
	defInt(&c.OutQueue, DefaultOutQueue)
	defInt(&c.MaxStreams, DefaultMaxStreams)
	defInt(&c.MaxInFlight, DefaultMaxInFlight)
	defInt(&c.ReplayWindow, DefaultReplayWindow)
	return c
}

func (c StreamConfig) validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"pingInterval", c.PingInterval}, {"pongTimeout", c.PongTimeout}, {"frameTimeout", c.FrameTimeout}, {"sseKeepAlive", c.SSEKeepAlive}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("gateway: streams.%s must not be negative", d.name))
		}
	}
	for _, n := range []struct {
		name string
		v    int64
	}{{"maxFrameBytes", c.MaxFrameBytes}, {"eventQueue", int64(c.EventQueue)}, {"outQueue", int64(c.OutQueue)},
		{"maxStreams", int64(c.MaxStreams)}, {"maxInFlight", int64(c.MaxInFlight)}, {"replayWindow", int64(c.ReplayWindow)}} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("gateway: streams.%s must not be negative", n.name))
		}
	}
	return errors.Join(errs...)
}

// SearchSubscription is one search-protocol subscription
// (services/search.Subscription implements it).
type SearchSubscription interface {
	ID() string
	// Request asks for demand more pages.
	Request(demand int) error
	// Cancel ends the subscription; Next then returns io.EOF.
	Cancel()
	// Next returns the next created/next/complete/failed envelope, io.EOF
	// after the last one.
	Next(ctx context.Context) (ditto.Envelope, error)
}

// SearchProtocol serves the search protocol over WebSocket (node adapts
// services/search.Service to it).
type SearchProtocol interface {
	Subscribe(ctx context.Context, q SearchQuery) (SearchSubscription, error)
}

// streamHub tracks the open WebSocket sessions and SSE streams of a Server
// and the replay window. Close closes every session and waits for them.
type streamHub struct {
	cfg StreamConfig

	mu       sync.Mutex
	sessions map[*wsSession]struct{}
	open     int // sessions + SSE streams
	closed   bool
	wg       sync.WaitGroup

	ringOnce sync.Once
	ring     *replayRing
}

func newStreamHub(cfg StreamConfig) *streamHub {
	return &streamHub{cfg: cfg, sessions: map[*wsSession]struct{}{}, ring: newReplayRing(cfg.ReplayWindow)}
}

// acquire reserves a stream slot; false when the limit is reached or the
// hub is closed.
func (h *streamHub) acquire() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.open >= h.cfg.MaxStreams {
		return false
	}
	h.open++
	h.wg.Add(1)
	return true
}

func (h *streamHub) release() {
	h.mu.Lock()
	h.open--
	h.mu.Unlock()
	h.wg.Done()
}

func (h *streamHub) add(ss *wsSession) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.sessions[ss] = struct{}{}
	return true
}

func (h *streamHub) remove(ss *wsSession) {
	h.mu.Lock()
	delete(h.sessions, ss)
	h.mu.Unlock()
}

// close ends every session (close 1001) and waits for all streams.
func (h *streamHub) close() {
	h.mu.Lock()
	h.closed = true
	sessions := make([]*wsSession, 0, len(h.sessions))
	for ss := range h.sessions {
		sessions = append(sessions, ss)
	}
	h.mu.Unlock()
	for _, ss := range sessions {
		ss.fail(websocket.StatusGoingAway, "the node is shutting down")
	}
	h.wg.Wait()
}

// Sessions returns the number of open WebSocket sessions.
func (s *Server) Sessions() int {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return len(s.hub.sessions)
}

// serveWS authenticates the upgrade request exactly like an HTTP request
// (plus ?access_token= as a bearer token for browsers), upgrades it and
// runs the session in the request goroutine. A session authenticated with
// a JWT ends when the JWT expires (JWT-TOKEN extends it).
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, mGet)
		return
	}
	ar := r
	if tok := r.URL.Query().Get("access_token"); tok != "" && r.Header.Get("Authorization") == "" {
		ar = r.Clone(r.Context())
		ar.Header.Set("Authorization", "Bearer "+tok)
	}
	auth, expiry, aerr := s.authenticateUntil(ar)
	if aerr != nil {
		if aerr.Status == http.StatusUnauthorized {
			w.Header()[wwwAuthKey] = hdrBasicRealm
		}
		writeDittoError(w, aerr)
		return
	}
	var declared []string
	for part := range strings.SplitSeq(r.URL.Query().Get("declared-acks"), ",") {
		if part = strings.TrimSpace(part); part != "" {
			if !ditto.ValidAckLabel(part) {
				writeDittoError(w, ditto.ErrHeaderInvalid.New("The declared acknowledgement label '%s' is invalid.", part))
				return
			}
			declared = append(declared, part)
		}
	}
	if !s.hub.acquire() {
		writeDittoError(w, ditto.ErrTooManyRequests.New("Too many streams are open; try again later."))
		return
	}
	defer s.hub.release()
	// The server's read and write timeouts are for requests; a session
	// sets its own per-frame deadlines.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	cw := &corkingWriter{ResponseWriter: w}
	conn, err := websocket.Accept(cw, r, nil)
	if err != nil {
		s.log.Debug("gateway: websocket upgrade failed", logKeyError, err)
		return
	}
	conn.SetReadLimit(s.cfg.Streams.MaxFrameBytes)
	ss := newSession(s, conn, auth, expiry, declared)
	ss.cork = cw.conn
	if !s.hub.add(ss) {
		_ = conn.Close(websocket.StatusGoingAway, "the node is shutting down")
		return
	}
	defer s.hub.remove(ss)
	ss.run()
}

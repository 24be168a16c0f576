package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Things is what the gateway needs of the things service
// (services/things.Service implements it).
type Things interface {
	Handle(ctx context.Context, cmd ditto.Command) (ditto.Result, error)
	// RetrieveMany retrieves the things with the given IDs the requester may
	// read (others are omitted) with cmd's fields and headers.
	RetrieveMany(ctx context.Context, ids []string, cmd ditto.Command) ([]any, error)
}

// Policies is what the gateway needs of the policies service
// (services/policies.Service implements it).
type Policies interface {
	Handle(ctx context.Context, cmd ditto.Command) (ditto.Result, error)
}

// Deps are the gateway's collaborators.
type Deps struct {
	Things   Things
	Policies Policies
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Health reports the node's status for /health: details and whether the
	// node is up. Nil means always up.
	Health func(ctx context.Context) (map[string]any, bool)
	// NewUUID generates IDs for POST /things and correlation IDs; defaults
	// to a crypto/rand version 4 UUID.
	NewUUID func() string
	// Clock is the time for JWT expiry and JWKS caching; defaults to
	// time.Now.
	Clock func() time.Time
	// Enforcers gives policy enforcers: stream fan-out, and with ThingState
	// POST /checkPermissions (either nil: that answers 503).
	Enforcers Enforcers
	// Search answers /search/things and GET /things without ids (nil:
	// those requests answer 503).
	Search Search
	// Live routes messages, live commands and live events (nil: those
	// requests answer 503).
	Live Live
	// Acks collects custom acknowledgements of twin events for twin
	// commands with requested-acks (nil: custom labels time out).
	Acks TwinAcks
	// Bus is the node's signal bus: twin events for WebSocket and SSE
	// subscribers (nil: no events are pushed).
	Bus *ditto.Bus
	// ThingState returns the applied JSON and policy ID of a thing, to
	// enrich live signals with extraFields.
	ThingState func(id string) ([]byte, string, bool)
	// SearchProtocol serves the search protocol on /ws/2 (nil: search
	// frames get an error).
	SearchProtocol SearchProtocol
	// Cluster serves GET /cluster and DELETE /cluster/members/{id} (nil:
	// those answer 503).
	Cluster Cluster
	// Connections serves /api/2/connections (nil: 503).
	Connections Connections
	// Devices manages the device identities of the embedded MQTT broker
	// on /api/2/devices (nil: those answer 503).
	Devices Devices
}

// Log keys.
const (
	logKeyCorrelationID = "correlation-id"
	logKeyError         = "error"
	logKeyAddr          = "addr"
	logKeyPanic         = "panic"
)

const (
	apiPrefix     = "/api/2"
	healthPath    = "/health"
	healthTimeout = 5 * time.Second
)

// Server is the HTTP gateway.
type Server struct {
	cfg        Config
	deps       Deps
	log        *slog.Logger
	mechanisms []mechanism
	jwt        *jwtAuth // nil without OIDC issuers
	jwtErr     error    // issuers that failed to compile; Start reports it
	sem        chan struct{}
	handler    http.Handler
	hub        *streamHub // WebSocket sessions and SSE streams
	fanout     *eventFanout

	mu      sync.Mutex
	srv     *http.Server
	ln      net.Listener
	started bool
	closed  bool

	done      chan struct{} // closed by Close; stops the ctx watcher
	stopOnce  sync.Once
	closeErr  error
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// New builds a gateway; it allocates only (Start listens). Zero Config
// fields take their defaults.
func New(cfg Config, deps Deps) *Server {
	cfg = cfg.withDefaults()
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.NewUUID == nil {
		deps.NewUUID = newUUID
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	s := &Server{
		cfg:  cfg,
		deps: deps,
		log:  deps.Logger,
		sem:  make(chan struct{}, cfg.MaxConcurrentRequests),
		done: make(chan struct{}),
	}
	if cfg.PreAuthentication {
		s.mechanisms = append(s.mechanisms, preAuth{})
	}
	s.mechanisms = append(s.mechanisms, newBasicAuth(cfg.Users))
	if len(cfg.OIDC) > 0 {
		s.jwt, s.jwtErr = newJWTAuth(cfg.OIDC, deps.Clock, deps.Logger)
		s.mechanisms = append(s.mechanisms, s.jwt)
	}
	s.hub = newStreamHub(cfg.Streams)
	s.fanout = newEventFanout(s)
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s
}

// Handler returns the gateway's HTTP handler (for tests and for embedding
// into another server).
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on Config.Addr and serves in a goroutine the Server owns.
// Cancelling ctx shuts the server down like Close.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("gateway: start after close")
	}
	if s.started {
		return errors.New("gateway: already started")
	}
	if s.jwt != nil {
		if err := errors.Join(s.jwtErr, s.jwt.preload(ctx)); err != nil {
			return err
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("gateway: listen %s: %w", s.cfg.Addr, err)
	}
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		// Generous transport limit: the Ditto limit (431 with Ditto JSON) is
		// checked in the handler; this only stops abuse.
		MaxHeaderBytes: 4 * s.cfg.MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	s.ln = ln
	s.started = true
	srv := s.srv
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("gateway: serve", logKeyAddr, ln.Addr().String(), logKeyError, err)
		}
	}()
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
			s.stop()
		case <-s.done:
		}
	}()
	s.log.Info("gateway: listening", logKeyAddr, ln.Addr().String())
	return nil
}

// Addr returns the listening address, or nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close shuts the server down gracefully: it stops accepting, lets requests
// in flight finish for up to Config.ShutdownTimeout, then closes what is
// left. It is idempotent and safe without or after a failed Start.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.done)
		s.stop()
		s.hub.close()
		s.fanout.close()
		s.wg.Wait()
	})
	return s.closeErr
}

// stop shuts the http.Server down once (from Close or the ctx watcher).
func (s *Server) stop() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		srv := s.srv
		s.mu.Unlock()
		if srv == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			if cerr := srv.Close(); cerr != nil {
				s.closeErr = fmt.Errorf("gateway: close: %w", cerr)
			}
		}
	})
}

// serveHTTP is the whole request pipeline: correlation-id, header limit,
// routing of /health, /api/2 concurrency limit, authentication, then the
// resource.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	var q url.Values
	var qerr error
	if r.URL.RawQuery != "" {
		// Not URL.Query, which drops a parameter it cannot decode: a lost
		// filter or namespaces parameter would widen a search.
		q, qerr = url.ParseQuery(r.URL.RawQuery)
	}
	cid := q.Get(ditto.HeaderCorrelationID)
	if cid == "" {
		cid = r.Header.Get(correlationKey)
	}
	if cid == "" {
		cid = s.deps.NewUUID()
	}
	w.Header()[correlationKey] = []string{cid}
	defer s.recoverPanic(w, cid)

	if n := headerBytes(r.Header); n > s.cfg.MaxHeaderBytes {
		writeDittoError(w, ditto.ErrHeadersTooLarge.New("The headers of the request are %d bytes long, more than the allowed %d bytes.", n, s.cfg.MaxHeaderBytes))
		return
	}
	path := r.URL.Path
	switch {
	case path == healthPath:
		s.serveHealth(w, r)
		return
	case path == wsPath:
		s.serveWS(w, r)
		return
	case isClusterPath(path):
		s.serveCluster(w, r)
		return
	case path != apiPrefix && !strings.HasPrefix(path, apiPrefix+"/"):
		writeDittoError(w, ditto.ErrResourceNotFound.New("The resource '%s' does not exist.", path))
		return
	}
	if qerr != nil {
		writeDittoError(w, ditto.ErrQueryParamInvalid.New("The query of the request does not decode: %s.", truncateString(qerr.Error(), 100)))
		return
	}
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	default:
		writeDittoError(w, ditto.ErrTooManyRequests.New("Too many requests are in flight; try again later."))
		return
	}
	auth, aerr := s.authenticate(r)
	if aerr != nil {
		if aerr.Status == http.StatusUnauthorized {
			w.Header()[wwwAuthKey] = s.challenge(aerr)
		}
		writeDittoError(w, aerr)
		return
	}
	escaped := r.URL.EscapedPath()
	if !strings.HasPrefix(escaped, apiPrefix) {
		writeDittoError(w, ditto.ErrResourceNotFound.New("The resource '%s' does not exist.", escaped))
		return
	}
	escaped = escaped[len(apiPrefix):]
	if escaped == "/whoami" || escaped == "/whoami/" {
		s.serveWhoami(w, r, auth, cid)
		return
	}
	if escaped == "/checkPermissions" {
		s.serveCheckPermissions(w, r, auth, cid)
		return
	}
	if s.serveDevices(w, r, auth, escaped, cid) {
		return
	}
	if s.serveSearch(w, r, q, auth, escaped) {
		return
	}
	if s.serveConnections(w, r, q, auth, escaped, cid) {
		return
	}
	if mr, ok, derr := parseMessageRoute(escaped); ok {
		if derr != nil {
			writeDittoError(w, derr)
			return
		}
		if wantsEventStream(r) {
			s.serveMessageSSE(w, r, auth, mr)
			return
		}
		s.serveMessage(w, r, q, cid, auth, mr)
		return
	}
	rt, derr := parseRoute(escaped)
	if derr != nil {
		writeDittoError(w, derr)
		return
	}
	if rt.res == resThings && wantsEventStream(r) && rt.err == nil && isTwinResource(rt.path) {
		s.serveSSE(w, r, q, auth, rt)
		return
	}
	s.serveResource(w, r, q, cid, auth, rt)
}

// recoverPanic turns a panic below the handler into a logged 500 instead of
// a dropped connection. http.ErrAbortHandler keeps its meaning.
func (s *Server) recoverPanic(w http.ResponseWriter, cid string) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
		panic(v)
	}
	s.log.Error("gateway: panic in handler", logKeyCorrelationID, cid, logKeyPanic, fmt.Sprint(v))
	writeDittoError(w, ditto.ErrInternal.New("An unexpected error occurred while processing the request with correlation-id '%s'.", cid))
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allowed methods) {
	w.Header()[allowKey] = []string{allowed.allow()}
	writeDittoError(w, ditto.ErrMethodNotAllowed.New("The method '%s' is not allowed for the resource '%s'.", r.Method, r.URL.EscapedPath()))
}

func (s *Server) serveWhoami(w http.ResponseWriter, r *http.Request, auth ditto.Auth, cid string) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, mGet)
		return
	}
	subjects := auth.Subjects
	if subjects == nil {
		subjects = []string{}
	}
	s.writeValue(w, http.StatusOK, map[string]any{"defaultSubject": auth.Default(), "subjects": subjects}, cid)
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, mGet)
		return
	}
	body := map[string]any{}
	up := true
	if s.deps.Health != nil {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		details, ok := s.deps.Health(ctx)
		cancel()
		for k, v := range details {
			body[k] = v
		}
		up = ok
	}
	status := http.StatusOK
	body["status"] = "UP"
	if !up {
		status = http.StatusServiceUnavailable
		body["status"] = "DOWN"
	}
	s.writeValue(w, status, body, w.Header().Get(correlationKey))
}

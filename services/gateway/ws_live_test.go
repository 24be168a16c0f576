package gateway_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/services/gateway"
)

// fakeLive is a hand-written Live: it records subscribers and answers Send
// with a function field.
type fakeLive struct {
	send func(ctx context.Context, env ditto.Envelope, auth ditto.Auth) (ditto.Envelope, bool, error)

	mu        sync.Mutex
	subs      map[string]func(ditto.Envelope)
	kinds     map[string][]string
	declared  map[string]bool
	responses []ditto.Envelope
}

func newFakeLive() *fakeLive {
	return &fakeLive{subs: map[string]func(ditto.Envelope){}, kinds: map[string][]string{}, declared: map[string]bool{}}
}

func (f *fakeLive) Subscribe(id string, _ ditto.Auth, kinds, declaredAcks []string, deliver func(ditto.Envelope)) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range declaredAcks {
		if f.declared[l] {
			return nil, ditto.ErrAckLabelNotUnique.New("The acknowledgement label '%s' is already declared.", l)
		}
	}
	for _, l := range declaredAcks {
		f.declared[l] = true
	}
	f.subs[id], f.kinds[id] = deliver, slices.Clone(kinds)
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.subs, id)
		delete(f.kinds, id)
		for _, l := range declaredAcks {
			delete(f.declared, l)
		}
	}, nil
}

func (f *fakeLive) Send(ctx context.Context, env ditto.Envelope, auth ditto.Auth) (ditto.Envelope, bool, error) {
	return f.send(ctx, env, auth)
}

func (f *fakeLive) Respond(env ditto.Envelope, _ ditto.Auth) error {
	f.mu.Lock()
	f.responses = append(f.responses, env)
	f.mu.Unlock()
	return nil
}

// deliverAll hands env to every subscriber with kind.
func (f *fakeLive) deliverAll(kind string, env ditto.Envelope) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for id, d := range f.subs {
		if slices.Contains(f.kinds[id], kind) {
			d(env)
			n++
		}
	}
	return n
}

func startGateway(t *testing.T, deps gateway.Deps) string {
	t.Helper()
	cfg := gateway.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Users = map[string]string{"ditto": "ditto"}
	s := gateway.New(cfg, deps)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s.Addr().String()
}

func dialAddr(t *testing.T, addr, query string) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequest(http.MethodGet, "http://x", nil)
	req.SetBasicAuth("ditto", "ditto")
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws/2"+query, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {req.Header.Get("Authorization")}}})
	if err == nil {
		t.Cleanup(func() { _ = c.CloseNow() })
	}
	return c, err
}

// TestWSLive: live subscriptions, messages sent and answered through the
// router, responses handed back, declared acks unique per session.
func TestWSLive(t *testing.T) {
	live := newFakeLive()
	live.send = func(_ context.Context, env ditto.Envelope, _ ditto.Auth) (ditto.Envelope, bool, error) {
		if env.Headers.Get(gateway.HeaderOrigin) == "" {
			t.Errorf("live signal without origin header: %v", env.Headers)
		}
		resp := env
		resp.Status = 200
		resp.Value = []byte(`"pong"`)
		return resp, true, nil
	}
	addr := startGateway(t, gateway.Deps{Live: live})
	conn, err := dialAddr(t, addr, "?declared-acks=my-ack")
	if err != nil {
		t.Fatal(err)
	}
	ws := &twWS{t: t, conn: conn}
	ws.start("START-SEND-MESSAGES?namespaces=ns")
	ws.start("START-SEND-LIVE-COMMANDS")

	// A second session declaring the same label is closed.
	dup, err := dialAddr(t, addr, "?declared-acks=my-ack")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := dup.Read(ctx); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Errorf("duplicate declared ack: %v", err)
	}

	msg := ditto.Envelope{Topic: "ns/t/things/live/messages/ask", Headers: ditto.Headers{"correlation-id": "m1", "content-type": "text/plain"},
		Path: "/inbox/messages/ask", Value: []byte(`"hi"`)}
	if n := live.deliverAll(gateway.LiveKindMessages, msg); n != 1 {
		t.Fatalf("delivered to %d subscribers", n)
	}
	other := msg
	other.Topic = "other/t/things/live/messages/ask"
	live.deliverAll(gateway.LiveKindMessages, other) // namespaces=ns filters it
	live.deliverAll(gateway.LiveKindMessages, msg)
	for range 2 {
		if env := ws.envelope(); env.Topic != msg.Topic || string(env.Value) != `"hi"` {
			t.Errorf("delivered message %+v", env)
		}
	}

	ws.sendText(`{"topic":"ns/t/things/live/messages/ping","headers":{"correlation-id":"m2","content-type":"text/plain"},"path":"/inbox/messages/ping","value":"ping"}`)
	if env := ws.envelope(); env.Status != 200 || string(env.Value) != `"pong"` || env.Headers.Get(gateway.HeaderOrigin) != "" {
		t.Errorf("message answer %+v", env)
	}
	ws.sendText(`{"topic":"ns/t/things/twin/acks/my-ack","headers":{"correlation-id":"c9"},"path":"/","status":204}`)
	twWaitFor(t, 5*time.Second, func() error {
		live.mu.Lock()
		defer live.mu.Unlock()
		if len(live.responses) != 1 || live.responses[0].Headers.Get(gateway.HeaderOrigin) == "" {
			return errString("ack not handed to Respond with the session origin")
		}
		return nil
	})
	ws.start("STOP-SEND-MESSAGES")
	if n := live.deliverAll(gateway.LiveKindMessages, msg); n != 0 {
		t.Errorf("still subscribed to messages after STOP: %d", n)
	}
}

// TestWSLiveUnavailable: without a router live frames get an error.
func TestWSLiveUnavailable(t *testing.T) {
	addr := startGateway(t, gateway.Deps{})
	conn, err := dialAddr(t, addr, "")
	if err != nil {
		t.Fatal(err)
	}
	ws := &twWS{t: t, conn: conn}
	ws.sendText(`{"topic":"ns/t/things/live/messages/ping","headers":{"correlation-id":"m2"},"path":"/inbox/messages/ping","value":"x"}`)
	if env := ws.envelope(); env.Status != 503 || env.Topic != "ns/t/things/live/errors" {
		t.Errorf("live without router: %+v %s", env, env.Value)
	}
	ws.sendText(`JWT-TOKEN?jwtToken=abc`)
	if env := ws.envelope(); env.Status != 401 {
		t.Errorf("JWT-TOKEN without JWT: %+v %s", env, env.Value)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// fakeThings is a hand-written Things with function fields; it records the
// commands it received.
type fakeThings struct {
	handle func(ctx context.Context, cmd ditto.Command) (ditto.Result, error)
	many   func(ctx context.Context, ids []string, cmd ditto.Command) ([]any, error)

	mu   sync.Mutex
	cmds []ditto.Command
	ids  [][]string
}

func (f *fakeThings) Handle(ctx context.Context, cmd ditto.Command) (ditto.Result, error) {
	f.mu.Lock()
	f.cmds = append(f.cmds, cmd)
	f.mu.Unlock()
	if f.handle == nil {
		return ditto.Result{Status: http.StatusNoContent}, nil
	}
	return f.handle(ctx, cmd)
}

func (f *fakeThings) RetrieveMany(ctx context.Context, ids []string, cmd ditto.Command) ([]any, error) {
	f.mu.Lock()
	f.cmds = append(f.cmds, cmd)
	f.ids = append(f.ids, ids)
	f.mu.Unlock()
	if f.many == nil {
		return nil, nil
	}
	return f.many(ctx, ids, cmd)
}

// last returns the last recorded command, failing when there is none.
func (f *fakeThings) last(t *testing.T) ditto.Command {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.cmds) == 0 {
		t.Fatal("no command reached the things service")
	}
	return f.cmds[len(f.cmds)-1]
}

func (f *fakeThings) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.cmds)
}

type fakePolicies struct {
	handle func(ctx context.Context, cmd ditto.Command) (ditto.Result, error)

	mu   sync.Mutex
	cmds []ditto.Command
}

func (f *fakePolicies) Handle(ctx context.Context, cmd ditto.Command) (ditto.Result, error) {
	f.mu.Lock()
	f.cmds = append(f.cmds, cmd)
	f.mu.Unlock()
	if f.handle == nil {
		return ditto.Result{Status: http.StatusNoContent}, nil
	}
	return f.handle(ctx, cmd)
}

func (f *fakePolicies) last(t *testing.T) ditto.Command {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.cmds) == 0 {
		t.Fatal("no command reached the policies service")
	}
	return f.cmds[len(f.cmds)-1]
}

// testUser is the basic user every test server knows.
const (
	testUser = "ditto"
	testPass = "ditto"
)

// testEnv is a gateway listening on a real port with fake services.
type testEnv struct {
	srv      *Server
	base     string
	things   *fakeThings
	policies *fakePolicies
	client   *http.Client
}

// mustServer starts a gateway on 127.0.0.1:0; cb may adjust the config.
func mustServer(t *testing.T, cb func(*Config, *Deps)) *testEnv {
	t.Helper()
	env := &testEnv{things: &fakeThings{}, policies: &fakePolicies{}}
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Users = map[string]string{testUser: testPass}
	deps := Deps{Things: env.things, Policies: env.policies, NewUUID: func() string { return "11111111-2222-4333-8444-555555555555" }}
	if cb != nil {
		cb(&cfg, &deps)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	env.srv = New(cfg, deps)
	if err := env.srv.Start(t.Context()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		if err := env.srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	env.base = "http://" + env.srv.Addr().String()
	env.client = &http.Client{Timeout: 10 * time.Second}
	return env
}

// req describes one test request.
type req struct {
	method  string
	path    string // below the base URL, escaped as it goes on the wire
	body    string
	ctype   string
	headers map[string]string
	noAuth  bool
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (e *testEnv) do(t *testing.T, r req) resp {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequestWithContext(t.Context(), r.method, e.base+r.path, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if r.ctype != "" {
		hr.Header.Set("Content-Type", r.ctype)
	}
	if !r.noAuth {
		hr.SetBasicAuth(testUser, testPass)
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	hresp, err := e.client.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer hresp.Body.Close()
	b, err := io.ReadAll(hresp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp{status: hresp.StatusCode, header: hresp.Header, body: b}
}

// mustDittoError checks that the response is a Ditto error JSON with the
// status and code.
func mustDittoError(t *testing.T, r resp, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d (body %s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var e map[string]any
	d := json.NewDecoder(bytes.NewReader(r.body))
	d.UseNumber()
	if err := d.Decode(&e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	if got := e["status"]; got != json.Number(itoa(status)) {
		t.Errorf("error status = %v, want %d", got, status)
	}
	if got := e["error"]; got != code {
		t.Errorf("error code = %v, want %s (body %s)", got, code, r.body)
	}
	if m, _ := e["message"].(string); m == "" {
		t.Errorf("error message is empty: %s", r.body)
	}
	for k := range e {
		switch k {
		case "status", "error", "message", "description", "href":
		default:
			t.Errorf("unexpected error field %q", k)
		}
	}
	if r.header.Get("correlation-id") == "" {
		t.Error("error response has no correlation-id")
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func jsonNum(s string) json.Number { return json.Number(s) }

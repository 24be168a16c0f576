package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startNode runs a real node (real Raft on disk, real HTTP on a free
// loopback port) in dir and closes it when the test ends.
func startNode(t *testing.T, dir string, cb func(*Config)) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.Users = map[string]string{"ditto": "ditto", "bob": "bob"}
	if cb != nil {
		cb(&cfg)
	}
	n, err := New(cfg, Deps{Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

type client struct {
	t    *testing.T
	base string
	user string
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

func (c client) do(method, path, body string, headers ...string) response {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if method == http.MethodPatch {
		req.Header.Set("Content-Type", "application/merge-patch+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func newClient(t *testing.T, n *Node, user string) client {
	return client{t: t, base: "http://" + n.HTTPAddr().String(), user: user}
}

func expectStatus(t *testing.T, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body %s", r.status, want, r.body)
	}
}

// TestWalkthrough is the README's curl walkthrough against a real node.
func TestWalkthrough(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	ditto := newClient(t, n, "ditto")
	bob := newClient(t, n, "bob")

	r := ditto.do("PUT", "/api/2/things/org.acme:coffee-1",
		`{"attributes":{"manufacturer":"ACME","serialNo":"1"},"features":{"coffee-brewer":{"properties":{"brewed-coffees":0}}}}`)
	expectStatus(t, r, 201)
	if got := r.header.Get("Location"); !strings.HasSuffix(got, "/api/2/things/org.acme:coffee-1") {
		t.Errorf("Location %q", got)
	}
	if got := r.header.Get("ETag"); got != `"rev:1"` {
		t.Errorf("ETag %q", got)
	}
	if r.json(t)["thingId"] != "org.acme:coffee-1" {
		t.Errorf("created body %s", r.body)
	}

	r = ditto.do("GET", "/api/2/things/org.acme:coffee-1", "")
	expectStatus(t, r, 200)
	thing := r.json(t)
	if thing["policyId"] != "org.acme:coffee-1" {
		t.Errorf("default policy not set: %s", r.body)
	}

	r = ditto.do("PUT", "/api/2/things/org.acme:coffee-1/features/coffee-brewer/properties/brewed-coffees", "42")
	expectStatus(t, r, 204)
	r = ditto.do("GET", "/api/2/things/org.acme:coffee-1?fields=_revision,features/coffee-brewer/properties", "")
	expectStatus(t, r, 200)
	got := r.json(t)
	if got["_revision"] != float64(2) {
		t.Errorf("revision after one change: %s", r.body)
	}

	// A second user: no permission at all.
	expectStatus(t, bob.do("GET", "/api/2/things/org.acme:coffee-1", ""), 404)
	r = bob.do("PUT", "/api/2/things/org.acme:coffee-1/attributes/owner", `"bob"`)
	expectStatus(t, r, 403)
	if r.json(t)["error"] != "things:attribute.notmodifiable" {
		t.Errorf("denied write error %s", r.body)
	}

	// Conditional write with a stale ETag.
	r = ditto.do("PUT", "/api/2/things/org.acme:coffee-1/attributes/owner", `"ditto"`, "If-Match", `"rev:1"`)
	expectStatus(t, r, 412)

	// No credentials.
	expectStatus(t, client{t: t, base: ditto.base}.do("GET", "/api/2/things/org.acme:coffee-1", ""), 401)

	// Restart on the same data: same state, same revision.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n2 := startNode(t, dir, nil)
	ditto = newClient(t, n2, "ditto")
	r = ditto.do("GET", "/api/2/things/org.acme:coffee-1?fields=_revision,features", "")
	expectStatus(t, r, 200)
	got = r.json(t)
	if got["_revision"] != float64(2) {
		t.Errorf("revision after restart: %s", r.body)
	}
	if fmt.Sprint(got["features"]) != "map[coffee-brewer:map[properties:map[brewed-coffees:42]]]" {
		t.Errorf("features after restart: %s", r.body)
	}
}

func TestHealth(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	r := client{t: t, base: "http://" + n.HTTPAddr().String()}.do("GET", "/health", "")
	expectStatus(t, r, 200)
	if r.json(t)["status"] != "UP" {
		t.Errorf("health %s", r.body)
	}
}

// testWriter sends log output to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

package live_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/node"
)

// Subjects of the basic-auth users of the test node.
var (
	alice = ditto.Auth{Subjects: []string{"nginx:alice"}} // owner: everything
	bob   = ditto.Auth{Subjects: []string{"nginx:bob"}}   // READ attributes, READ+WRITE message:/inbox
	carol = ditto.Auth{Subjects: []string{"nginx:carol"}} // nothing
)

// thingPolicy: alice owns the thing, bob may read the attributes and
// exchange inbox messages, carol has no entry.
const thingWithPolicy = `{
 "_policy": {"entries": {
  "OWNER": {"subjects": {"nginx:alice": {"type": "test"}}, "resources": {
    "thing:/": {"grant": ["READ", "WRITE"], "revoke": []},
    "policy:/": {"grant": ["READ", "WRITE"], "revoke": []},
    "message:/": {"grant": ["READ", "WRITE"], "revoke": []}}},
  "DEVICE": {"subjects": {"nginx:bob": {"type": "test"}}, "resources": {
    "thing:/attributes": {"grant": ["READ"], "revoke": []},
    "message:/inbox": {"grant": ["READ", "WRITE"], "revoke": []}}}}},
 "attributes": {"a": 1},
 "features": {"f": {"properties": {"p": 2}}}
}`

// startNode runs a real node with the test thing "org.acme:t1".
func startNode(t *testing.T) *node.Node {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.Users = map[string]string{"alice": "alice", "bob": "bob", "carol": "carol"}
	cfg.Raft.NoSync = true
	n, err := node.New(cfg, node.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	if st, _, b := do(t, n, "alice", "PUT", "/api/2/things/org.acme:t1", thingWithPolicy); st != 201 {
		t.Fatalf("create thing: %d %s", st, b)
	}
	return n
}

// do sends an HTTP request to the node as user.
func do(t *testing.T, n *node.Node, user, method, path, body string, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+n.HTTPAddr().String()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	req.SetBasicAuth(user, user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// collector is a subscriber that records what it gets; answer, when set,
// runs inside deliver (as a fast in-process responder would).
type collector struct {
	ch     chan ditto.Envelope
	answer func(ditto.Envelope)
}

func newCollector() *collector { return &collector{ch: make(chan ditto.Envelope, 64)} }

func (c *collector) deliver(env ditto.Envelope) {
	if c.answer != nil {
		c.answer(env)
	}
	select {
	case c.ch <- env:
	default:
	}
}

// next waits for the next delivery.
func (c *collector) next(t *testing.T) ditto.Envelope {
	t.Helper()
	select {
	case env := <-c.ch:
		return env
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
	}
	return ditto.Envelope{}
}

// none checks that nothing was delivered so far.
func (c *collector) none(t *testing.T) {
	t.Helper()
	select {
	case env := <-c.ch:
		t.Fatalf("unexpected delivery %s", ditto.EncodeEnvelope(env))
	default:
	}
}

func mustSubscribe(t *testing.T, n *node.Node, id string, auth ditto.Auth, kinds, labels []string, deliver func(ditto.Envelope)) {
	t.Helper()
	cancel, err := n.Live().Subscribe(id, auth, kinds, labels, deliver)
	if err != nil {
		t.Fatalf("subscribe %s: %v", id, err)
	}
	t.Cleanup(cancel)
}

func message(subject, cid string, value string, headers ...string) ditto.Envelope {
	h := ditto.Headers{ditto.HeaderCorrelationID: cid, ditto.HeaderContentType: "application/json"}
	for i := 0; i+1 < len(headers); i += 2 {
		h[headers[i]] = headers[i+1]
	}
	env := ditto.Envelope{Topic: "org.acme/t1/things/live/messages/" + subject, Headers: h, Path: "/inbox/messages/" + subject}
	if value != "" {
		env.Value = json.RawMessage(value)
	}
	return env
}

// reply answers env with status and value from responder.
func reply(env ditto.Envelope, status int, value string) ditto.Envelope {
	out := ditto.Envelope{
		Topic: env.Topic, Path: env.Path, Status: status,
		Headers: ditto.Headers{ditto.HeaderCorrelationID: env.Headers[ditto.HeaderCorrelationID], ditto.HeaderContentType: "application/json"},
	}
	if value != "" {
		out.Value = json.RawMessage(value)
	}
	return out
}

// errCode returns the Ditto error code of err ("" if it is none).
func errCode(err error) string {
	if de, ok := err.(*ditto.Error); ok {
		return de.Code
	}
	return ""
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// ackValue decodes an aggregated acks value.
func ackValue(t *testing.T, env ditto.Envelope) map[string]struct {
	Status  int               `json:"status"`
	Payload json.RawMessage   `json:"payload"`
	Headers map[string]string `json:"headers"`
} {
	t.Helper()
	var v map[string]struct {
		Status  int               `json:"status"`
		Payload json.RawMessage   `json:"payload"`
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(env.Value, &v); err != nil {
		t.Fatalf("acks value %s: %v", env.Value, err)
	}
	return v
}

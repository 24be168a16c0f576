package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/node"
)

// startTwinNode runs a real node with basic users ditto, alice, bob and
// carol (password = name) on a loopback port.
func startTwinNode(t testing.TB, cb func(*node.Config)) *node.Node {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.Users = map[string]string{"ditto": "ditto", "alice": "alice", "bob": "bob", "carol": "carol"}
	cfg.Raft.NoSync = true
	if cb != nil {
		cb(&cfg)
	}
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
	return n
}

type twHTTP struct {
	t    testing.TB
	base string
	user string
}

func newTwHTTP(t testing.TB, n *node.Node, user string) twHTTP {
	return twHTTP{t: t, base: "http://" + n.HTTPAddr().String(), user: user}
}

// do sends a request and returns status and body.
func (c twHTTP) do(method, path, body string) (int, []byte) {
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
		if method == http.MethodPatch {
			req.Header.Set("Content-Type", "application/merge-patch+json")
		}
	}
	req.SetBasicAuth(c.user, c.user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (c twHTTP) must(method, path, body string, want ...int) []byte {
	c.t.Helper()
	status, b := c.do(method, path, body)
	for _, w := range want {
		if status == w {
			return b
		}
	}
	c.t.Fatalf("%s %s: status %d, want %v; body %s", method, path, status, want, b)
	return nil
}

// twWS is a real WebSocket client.
type twWS struct {
	t    testing.TB
	conn *websocket.Conn
}

func dialTwWS(t testing.TB, n *node.Node, user, query string) *twWS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{}
	req, _ := http.NewRequest(http.MethodGet, "http://x", nil)
	req.SetBasicAuth(user, user)
	h.Set("Authorization", req.Header.Get("Authorization"))
	conn, resp, err := websocket.Dial(ctx, "ws://"+n.HTTPAddr().String()+"/ws/2"+query, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial as %s: %v (status %d)", user, err, status)
	}
	conn.SetReadLimit(1 << 24)
	t.Cleanup(func() { _ = conn.CloseNow() })
	return &twWS{t: t, conn: conn}
}

func (c *twWS) sendText(s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// read returns the next frame, failing after 10 s.
func (c *twWS) read() string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.conn.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return string(b)
}

// start sends a control frame and expects its ACK.
func (c *twWS) start(frame string) {
	c.t.Helper()
	c.sendText(frame)
	name, _, _ := strings.Cut(frame, "?")
	if got := c.read(); got != name+":ACK" {
		c.t.Fatalf("reply to %q: %q", frame, got)
	}
}

// envelope reads the next frame as a Ditto Protocol message.
func (c *twWS) envelope() ditto.Envelope {
	c.t.Helper()
	f := c.read()
	env, err := ditto.DecodeEnvelope([]byte(f))
	if err != nil {
		c.t.Fatalf("frame %q: %v", f, err)
	}
	return env
}

func twDecode(t testing.TB, raw []byte) any {
	t.Helper()
	if len(raw) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("json %q: %v", raw, err)
	}
	return v
}

// twSSE reads an SSE stream event by event.
type twSSE struct {
	t     testing.TB
	resp  *http.Response
	lines chan string
}

func openTwSSE(t testing.TB, n *node.Node, user, path string, header ...string) *twSSE {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+n.HTTPAddr().String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, user)
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("SSE %s: status %d: %s", path, resp.StatusCode, b)
	}
	r := &twSSE{t: t, resp: resp, lines: make(chan string, 256)}
	go func() {
		defer close(r.lines)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
	}()
	t.Cleanup(r.close)
	return r
}

func (r *twSSE) close() { _ = r.resp.Body.Close() }

// twSSEEvent is one received event: its data and id.
type twSSEEvent struct {
	data string
	id   string
}

// next returns the next event (skipping comments), failing after 10 s.
func (r *twSSE) next() twSSEEvent {
	r.t.Helper()
	var ev twSSEEvent
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				r.t.Fatal("SSE stream ended")
			}
			switch {
			case line == "":
				if ev.data != "" {
					return ev
				}
			case strings.HasPrefix(line, "data:"):
				ev.data = strings.TrimPrefix(line, "data:")
			case strings.HasPrefix(line, "id:"):
				ev.id = strings.TrimPrefix(line, "id:")
			}
		case <-timeout:
			r.t.Fatal("no SSE event within 10s")
		}
	}
}

// twWaitFor polls fn until it returns nil or d passes.
func twWaitFor(t testing.TB, d time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", d, err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// setupTwinFixture creates the policy and things the live-twin tests share:
// ditto owns everything, alice reads everything, bob reads
// attributes/public only, carol reads features/lamp only.
func setupTwinFixture(t testing.TB, n *node.Node) {
	t.Helper()
	c := newTwHTTP(t, n, "ditto")
	c.must("PUT", "/api/2/policies/ns:pol", `{"entries":{
	 "owner":{"subjects":{"nginx:ditto":{"type":"basic"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]},"policy:/":{"grant":["READ","WRITE"],"revoke":[]}}},
	 "all":{"subjects":{"nginx:alice":{"type":"basic"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}},
	 "public":{"subjects":{"nginx:bob":{"type":"basic"}},"resources":{"thing:/attributes/public":{"grant":["READ"],"revoke":[]}}},
	 "lamp":{"subjects":{"nginx:carol":{"type":"basic"}},"resources":{"thing:/features/lamp":{"grant":["READ"],"revoke":[]}}}}}`, 201)
	c.must("PUT", "/api/2/things/ns:t1", `{"policyId":"ns:pol","attributes":{"public":1,"private":2},"features":{"lamp":{"properties":{"on":false}}}}`, 201)
	c.must("PUT", "/api/2/things/other:t2", `{"policyId":"ns:pol","attributes":{"public":1}}`, 201)
}

package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"

	"github.com/dittonode/dittonode/ditto"
)

// Live twins end to end on one real node: HTTP clients, WebSocket sessions
// (coder/websocket), the live router, the things service and the policies.
//
// The fixture policy ns:pol: ditto owns everything, device reads and writes
// things and messages (the device side of messages and live commands),
// alice reads everything, bob reads attributes/public, carol reads
// features/lamp; dave reads only ns:dave (policy ns:dpol).

func startLiveNode(t *testing.T, cb func(*Config)) (*Node, client) {
	t.Helper()
	n := startNode(t, t.TempDir(), func(c *Config) {
		c.Raft.NoSync = true
		c.HTTP.Users = map[string]string{}
		for _, u := range []string{"ditto", "device", "alice", "bob", "carol", "dave"} {
			c.HTTP.Users[u] = u
		}
		if cb != nil {
			cb(c)
		}
	})
	owner := newClient(t, n, "ditto")
	for _, s := range []struct{ path, body string }{
		{"/api/2/policies/ns:pol", `{"entries":{
		 "owner":{"subjects":{"nginx:ditto":{"type":"basic"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]},"policy:/":{"grant":["READ","WRITE"],"revoke":[]},"message:/":{"grant":["READ","WRITE"],"revoke":[]}}},
		 "device":{"subjects":{"nginx:device":{"type":"basic"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]},"message:/":{"grant":["READ","WRITE"],"revoke":[]}}},
		 "all":{"subjects":{"nginx:alice":{"type":"basic"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}},
		 "public":{"subjects":{"nginx:bob":{"type":"basic"}},"resources":{"thing:/attributes/public":{"grant":["READ"],"revoke":[]}}},
		 "lamp":{"subjects":{"nginx:carol":{"type":"basic"}},"resources":{"thing:/features/lamp":{"grant":["READ"],"revoke":[]}}}}}`},
		{"/api/2/things/ns:t1", `{"policyId":"ns:pol","attributes":{"public":1,"private":2},"features":{"lamp":{"properties":{"on":false}}}}`},
		{"/api/2/policies/ns:dpol", `{"entries":{
		 "owner":{"subjects":{"nginx:ditto":{"type":"basic"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]},"policy:/":{"grant":["READ","WRITE"],"revoke":[]}}},
		 "dave":{"subjects":{"nginx:dave":{"type":"basic"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}}}}`},
		{"/api/2/things/ns:dave", `{"policyId":"ns:dpol"}`},
	} {
		expectStatus(t, owner.do("PUT", s.path, s.body), http.StatusCreated)
	}
	return n, owner
}

// goDo sends a request in another goroutine (the test answers it over a
// WebSocket meanwhile); a transport failure arrives as status -1.
func goDo(c client, method, path, body string, headers ...string) <-chan response {
	out := make(chan response, 1)
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	req.SetBasicAuth(c.user, c.user)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- response{status: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		out <- response{status: resp.StatusCode, header: resp.Header, body: b}
	}()
	return out
}

func await(t *testing.T, c <-chan response) response {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("no HTTP response within 20s")
	}
	return response{}
}

// reply answers a received live signal with status, content type and value.
func reply(c *wsClient, got ditto.Envelope, path string, status int, contentType, value string) {
	h := ditto.Headers{ditto.HeaderCorrelationID: got.Headers[ditto.HeaderCorrelationID]}
	if contentType != "" {
		h[ditto.HeaderContentType] = contentType
	}
	env := ditto.Envelope{Topic: got.Topic, Headers: h, Path: path, Status: status}
	if value != "" {
		env.Value = json.RawMessage(value)
	}
	c.sendEnvelope(env)
}

// TestLiveE2EMessages: a message POSTed over HTTP reaches the WebSocket
// consumer, whose answer (status, body, content type) is the HTTP response;
// without an answer the caller gets 408.
func TestLiveE2EMessages(t *testing.T) {
	n, owner := startLiveNode(t, nil)
	dev := dialWS(t, n, "device", "")
	dev.start("START-SEND-MESSAGES")

	for _, c := range []struct {
		name, ct, value, wantBody string
		status                    int
	}{
		{"json answer", "application/json", `{"answer":42}`, `{"answer":42}`, http.StatusCreated},
		{"text answer", "text/plain", `"pong"`, "pong", http.StatusOK},
		{"error status", "application/json", `{"reason":"busy"}`, `{"reason":"busy"}`, http.StatusServiceUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := goDo(owner, "POST", "/api/2/things/ns:t1/inbox/messages/ask?timeout=10", "hello", "Content-Type", "text/plain")
			msg := dev.envelope()
			if msg.Topic != "ns/t1/things/live/messages/ask" || msg.Path != "/inbox/messages/ask" ||
				msg.Headers[ditto.HeaderContentType] != "text/plain" || string(msg.Value) != `"hello"` ||
				msg.Headers[ditto.HeaderOriginator] != "nginx:ditto" {
				t.Fatalf("message as received: %+v %s", msg, msg.Value)
			}
			reply(dev, msg, "/outbox/messages/ask", c.status, c.ct, c.value)
			r := await(t, res)
			if r.status != c.status || string(r.body) != c.wantBody || !strings.HasPrefix(r.header.Get("Content-Type"), c.ct) {
				t.Errorf("HTTP answer %d %q %q, want %d %q %q", r.status, r.header.Get("Content-Type"), r.body, c.status, c.ct, c.wantBody)
			}
		})
	}

	t.Run("no answer", func(t *testing.T) {
		began := time.Now()
		res := goDo(owner, "POST", "/api/2/things/ns:t1/inbox/messages/ask?timeout=1", "hello", "Content-Type", "text/plain")
		if msg := dev.envelope(); msg.Topic != "ns/t1/things/live/messages/ask" {
			t.Fatalf("message %+v", msg)
		}
		r := await(t, res)
		if r.status != http.StatusRequestTimeout || !strings.Contains(string(r.body), "timeout") {
			t.Errorf("unanswered message: %d %s", r.status, r.body)
		}
		if d := time.Since(began); d < 900*time.Millisecond {
			t.Errorf("timed out after %s, want about 1s", d)
		}
	})
}

// TestLiveE2ELiveCommands: HTTP channel=live commands are answered by the
// WebSocket session that receives live commands; nothing is persisted, and
// a live retrieve answer is reduced to the requester's READ view.
func TestLiveE2ELiveCommands(t *testing.T) {
	n, owner := startLiveNode(t, nil)
	dev := dialWS(t, n, "device", "")
	dev.start("START-SEND-LIVE-COMMANDS")

	res := goDo(owner, "PUT", "/api/2/things/ns:t1/attributes/x?channel=live&timeout=10", "5")
	cmd := dev.envelope()
	if cmd.Topic != "ns/t1/things/live/commands/modify" || cmd.Path != "/attributes/x" || string(cmd.Value) != "5" {
		t.Fatalf("live command as received: %+v %s", cmd, cmd.Value)
	}
	reply(dev, cmd, cmd.Path, http.StatusNoContent, "", "")
	if r := await(t, res); r.status != http.StatusNoContent {
		t.Errorf("live modify: %d %s", r.status, r.body)
	}
	expectStatus(t, owner.do("GET", "/api/2/things/ns:t1/attributes/x", ""), http.StatusNotFound)

	res = goDo(newClient(t, n, "bob"), "GET", "/api/2/things/ns:t1/attributes?channel=live&timeout=10", "")
	cmd = dev.envelope()
	if cmd.Topic != "ns/t1/things/live/commands/retrieve" || cmd.Path != "/attributes" {
		t.Fatalf("live retrieve as received: %+v", cmd)
	}
	reply(dev, cmd, cmd.Path, http.StatusOK, "", `{"public":10,"private":20}`)
	r := await(t, res)
	if r.status != http.StatusOK || !cmp.Equal(decodeJSON(t, r.body), map[string]any{"public": 10.0}) {
		t.Errorf("bob's live retrieve: %d %s, want only the public attribute", r.status, r.body)
	}
}

// TestLiveE2ELiveEvents: a live event one session sends reaches another
// session with READ, not the sender and not a session without READ.
func TestLiveE2ELiveEvents(t *testing.T) {
	n, _ := startLiveNode(t, nil)
	sender := dialWS(t, n, "ditto", "")
	sender.start("START-SEND-LIVE-EVENTS")
	alice := dialWS(t, n, "alice", "")
	alice.start("START-SEND-LIVE-EVENTS")
	dave := dialWS(t, n, "dave", "")
	dave.start("START-SEND-LIVE-EVENTS")

	sender.send(`{"topic":"ns/t1/things/live/events/modified","headers":{"correlation-id":"le-1"},"path":"/attributes/temp","value":21.5}`)
	// A barrier dave may read: his first live event must be this one.
	sender.send(`{"topic":"ns/dave/things/live/events/modified","headers":{"correlation-id":"le-2"},"path":"/attributes/m","value":1}`)

	ev := alice.envelope()
	if ev.Topic != "ns/t1/things/live/events/modified" || ev.Path != "/attributes/temp" || string(ev.Value) != "21.5" ||
		ev.Headers[ditto.HeaderCorrelationID] != "le-1" || ev.Headers[ditto.HeaderOriginator] != "nginx:ditto" {
		t.Errorf("alice's live event: %+v %s", ev, ev.Value)
	}
	if _, leaked := ev.Headers[ditto.HeaderOrigin]; leaked {
		t.Errorf("internal origin header delivered: %v", ev.Headers)
	}
	if ev := dave.envelope(); ev.Topic != "ns/dave/things/live/events/modified" {
		t.Errorf("dave's first live event %s, want only the one on ns:dave", ev.Topic)
	}
	// The sender gets neither of its own live events; its next frame is
	// the reply to a control frame.
	sender.start("STOP-SEND-LIVE-EVENTS")
}

// ackEntry is one acknowledgement in an aggregation.
type ackEntry struct {
	Status  int               `json:"status"`
	Payload json.RawMessage   `json:"payload"`
	Headers map[string]string `json:"headers"`
}

func decodeAcks(t *testing.T, raw []byte) map[string]ackEntry {
	t.Helper()
	var m map[string]ackEntry
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("aggregated acks %s: %v", raw, err)
	}
	return m
}

// TestLiveE2ETwinAcks: custom acknowledgements of twin commands, requested
// over HTTP and over WebSocket, issued by the session that declared the
// label; sessions that filter the event out acknowledge weakly.
func TestLiveE2ETwinAcks(t *testing.T) {
	n, owner := startLiveNode(t, nil)
	acker := dialWS(t, n, "alice", "?declared-acks=my-ack")
	acker.start("START-SEND-EVENTS")

	for _, c := range []struct {
		name      string
		ackStatus int
		want      int
	}{
		{"all acks 2xx", http.StatusOK, http.StatusOK},
		{"custom ack fails", http.StatusConflict, http.StatusFailedDependency},
	} {
		t.Run("http "+c.name, func(t *testing.T) {
			path := "/attributes/" + strings.ReplaceAll(c.name, " ", "-")
			res := goDo(owner, "PUT", "/api/2/things/ns:t1"+path+"?timeout=10", "1", "requested-acks", "twin-persisted,my-ack")
			ev := acker.envelope()
			if ev.Topic != "ns/t1/things/twin/events/created" || ev.Path != path || ev.Headers[ditto.HeaderRequestedAcks] != "my-ack" {
				t.Fatalf("event as received: %+v", ev)
			}
			acker.sendEnvelope(ditto.Envelope{Topic: "ns/t1/things/twin/acks/my-ack", Path: "/", Status: c.ackStatus,
				Headers: ditto.Headers{ditto.HeaderCorrelationID: ev.Headers[ditto.HeaderCorrelationID]}, Value: json.RawMessage(`"done"`)})
			r := await(t, res)
			if r.status != c.want {
				t.Fatalf("status %d, want %d: %s", r.status, c.want, r.body)
			}
			acks := decodeAcks(t, r.body)
			if tp := acks["twin-persisted"]; tp.Status != http.StatusCreated || tp.Headers["etag"] == "" {
				t.Errorf("twin-persisted %+v", tp)
			}
			if my := acks["my-ack"]; my.Status != c.ackStatus || string(my.Payload) != `"done"` || len(acks) != 2 {
				t.Errorf("acks %s", r.body)
			}
		})
	}

	t.Run("websocket command", func(t *testing.T) {
		cmdr := dialWS(t, n, "ditto", "")
		cmdr.start("START-SEND-EVENTS")
		cmdr.send(`{"topic":"ns/t1/things/twin/commands/modify","headers":{"correlation-id":"ws-acks-1","requested-acks":["twin-persisted","my-ack"]},"path":"/attributes/ws","value":2}`)
		ev := acker.envelope()
		if ev.Path != "/attributes/ws" || ev.Headers[ditto.HeaderRequestedAcks] != "my-ack" || ev.Headers[ditto.HeaderCorrelationID] != "ws-acks-1" {
			t.Fatalf("event as received: %+v", ev)
		}
		acker.send(`{"topic":"ns/t1/things/twin/acks/my-ack","headers":{"correlation-id":"ws-acks-1"},"path":"/","status":200}`)
		resp := cmdr.envelope()
		if resp.Topic != "ns/t1/things/twin/acks" || resp.Status != http.StatusOK || resp.Headers[ditto.HeaderCorrelationID] != "ws-acks-1" {
			t.Fatalf("aggregated acks: %+v %s", resp, resp.Value)
		}
		acks := decodeAcks(t, resp.Value)
		if acks["twin-persisted"].Status != http.StatusCreated || acks["my-ack"].Status != http.StatusOK || len(acks) != 2 {
			t.Errorf("acks %s", resp.Value)
		}
		// twin-persisted alone: the normal response.
		cmdr.send(`{"topic":"ns/t1/things/twin/commands/modify","headers":{"correlation-id":"ws-acks-2","requested-acks":["twin-persisted"]},"path":"/attributes/ws","value":3}`)
		if resp := cmdr.envelope(); resp.Topic != "ns/t1/things/twin/commands/modify" || resp.Status != http.StatusNoContent {
			t.Errorf("twin-persisted only: %+v", resp)
		}
		if ev := acker.envelope(); ev.Path != "/attributes/ws" || ev.Headers[ditto.HeaderRequestedAcks] != "" {
			t.Errorf("event without custom acks: %+v", ev)
		}
		// Several built-in labels: the aggregation, as in Ditto.
		cmdr.send(`{"topic":"ns/t1/things/twin/commands/modify","headers":{"correlation-id":"ws-acks-3","requested-acks":["twin-persisted","search-persisted"]},"path":"/attributes/ws","value":4}`)
		if resp := cmdr.envelope(); resp.Topic != "ns/t1/things/twin/acks" || resp.Status != http.StatusOK || len(decodeAcks(t, resp.Value)) != 2 {
			t.Errorf("built-in acks: %+v %s", resp, resp.Value)
		}
		if ev := acker.envelope(); ev.Path != "/attributes/ws" {
			t.Errorf("acker: %s", ev.Path)
		}
		// Acks nobody may wait for: refused, not run.
		cmdr.send(`{"topic":"ns/t1/things/twin/commands/modify","headers":{"correlation-id":"ws-acks-4","response-required":false,"requested-acks":["twin-persisted"]},"path":"/attributes/ws","value":5}`)
		if resp := cmdr.envelope(); resp.Status != http.StatusBadRequest || !strings.Contains(string(resp.Value), "header.invalid") {
			t.Errorf("acks without a response: %+v %s", resp, resp.Value)
		}
		// The session never got its own events: the next one is another
		// client's change.
		expectStatus(t, owner.do("PUT", "/api/2/things/ns:t1/attributes/barrier", "1"), http.StatusCreated)
		if ev := cmdr.envelope(); ev.Path != "/attributes/barrier" {
			t.Errorf("first event of the commanding session: %s %s (its own event leaked)", ev.Topic, ev.Path)
		}
		if ev := acker.envelope(); ev.Path != "/attributes/barrier" {
			t.Errorf("acker: %s", ev.Path)
		}
	})

	t.Run("weak acks", func(t *testing.T) {
		rql := dialWS(t, n, "alice", "?declared-acks=rql-ack")
		rql.start("START-SEND-EVENTS?filter=" + url.QueryEscape("eq(attributes/public,999)"))
		ns := dialWS(t, n, "alice", "?declared-acks=ns-ack")
		ns.start("START-SEND-EVENTS?namespaces=other")
		noRead := dialWS(t, n, "dave", "?declared-acks=dave-ack")
		noRead.start("START-SEND-EVENTS")
		began := time.Now()
		r := owner.do("PUT", "/api/2/things/ns:t1/attributes/weak", "1", "requested-acks", "rql-ack,ns-ack,dave-ack", "timeout", "10")
		if r.status != http.StatusOK {
			t.Fatalf("weak acks: %d %s", r.status, r.body)
		}
		acks := decodeAcks(t, r.body)
		for _, l := range []string{"rql-ack", "ns-ack", "dave-ack"} {
			if a := acks[l]; a.Status != http.StatusOK || a.Headers["ditto-weak-ack"] != "true" {
				t.Errorf("%s: %+v", l, a)
			}
		}
		if d := time.Since(began); d > 5*time.Second {
			t.Errorf("weak acks took %s", d)
		}
		if ev := acker.envelope(); ev.Path != "/attributes/weak" || ev.Headers[ditto.HeaderRequestedAcks] != "rql-ack,ns-ack,dave-ack" {
			t.Errorf("event with pending labels: %+v", ev)
		}
	})
}

// eventView is what a test compares of a twin event.
type eventView struct {
	Topic string
	Path  string
	Value any
}

// TestLiveE2EPolicyViews: users with different policies see exactly the
// events each may see: everything, partial views, or none.
func TestLiveE2EPolicyViews(t *testing.T) {
	n, owner := startLiveNode(t, nil)
	users := []string{"alice", "bob", "carol", "dave"}
	sessions := map[string]*wsClient{}
	for _, u := range users {
		sessions[u] = dialWS(t, n, u, "")
		sessions[u].start("START-SEND-EVENTS")
	}
	for _, w := range []struct{ path, body string }{
		{"/api/2/things/ns:t1/attributes/private", "3"},
		{"/api/2/things/ns:t1/attributes/public", "7"},
		{"/api/2/things/ns:t1/features/lamp/properties/on", "true"},
		{"/api/2/things/ns:t1", `{"policyId":"ns:pol","attributes":{"public":8,"private":9},"features":{"lamp":{"properties":{"on":false}}}}`},
		{"/api/2/things/ns:dave/attributes/m", "1"},
	} {
		r := owner.do("PUT", w.path, w.body)
		if r.status != http.StatusNoContent && r.status != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", w.path, r.status, r.body)
		}
	}
	modified := "ns/t1/things/twin/events/modified"
	want := map[string][]eventView{
		"alice": {
			{modified, "/attributes/private", 3.0},
			{modified, "/attributes/public", 7.0},
			{modified, "/features/lamp/properties/on", true},
			{modified, "/", map[string]any{"thingId": "ns:t1", "policyId": "ns:pol", "attributes": map[string]any{"public": 8.0, "private": 9.0},
				"features": map[string]any{"lamp": map[string]any{"properties": map[string]any{"on": false}}}}},
		},
		"bob": {
			{modified, "/attributes/public", 7.0},
			{modified, "/", map[string]any{"attributes": map[string]any{"public": 8.0}}},
		},
		"carol": {
			{modified, "/features/lamp/properties/on", true},
			{modified, "/", map[string]any{"features": map[string]any{"lamp": map[string]any{"properties": map[string]any{"on": false}}}}},
		},
		"dave": {
			{"ns/dave/things/twin/events/created", "/attributes/m", 1.0},
		},
	}
	for _, u := range users {
		var got []eventView
		for range want[u] {
			ev := sessions[u].envelope()
			got = append(got, eventView{ev.Topic, ev.Path, decodeJSON(t, ev.Value)})
		}
		if d := cmp.Diff(want[u], got); d != "" {
			t.Errorf("%s's events (-want +got):\n%s", u, d)
		}
	}
}

// TestLiveE2ESlowConsumer: a session that stops reading is disconnected
// once its buffers fill, the others keep receiving every event, and the
// node's memory stays flat.
func TestLiveE2ESlowConsumer(t *testing.T) {
	n, owner := startLiveNode(t, func(c *Config) {
		c.HTTP.Streams.EventQueue = 16
		c.HTTP.Streams.OutQueue = 4
		c.HTTP.Streams.FrameTimeout = 2 * time.Second
	})
	const writes = 600
	payload := `"` + strings.Repeat("x", 16*1024) + `"`
	write := func() {
		t.Helper()
		r := owner.do("PUT", "/api/2/things/ns:t1/attributes/big", payload)
		if r.status != http.StatusCreated && r.status != http.StatusNoContent {
			t.Fatalf("write: %d %s", r.status, r.body)
		}
	}
	// Warm up: the Raft log cache keeps the latest 2×MaxAppendEntries (512)
	// entries; fill it with entries of this size so that the measurement
	// below sees only what the sessions buffer.
	for range 520 {
		write()
	}
	heapBefore := heapInUse()

	fast := dialWS(t, n, "alice", "")
	fast.start("START-SEND-EVENTS")
	slow := dialRawWS(t, n, "ditto", "")
	if err := slow.Write(t.Context(), websocket.MessageText, []byte("START-SEND-EVENTS")); err != nil {
		t.Fatal(err)
	}
	if _, b, err := slow.Read(t.Context()); err != nil || string(b) != "START-SEND-EVENTS:ACK" {
		t.Fatalf("slow session start: %q %v", b, err)
	}
	// From here on the slow client never reads again.

	received := make(chan error, 1)
	go func() {
		for i := range writes {
			select {
			case b := <-fast.frames:
				env, err := ditto.DecodeEnvelope(b)
				if err != nil || env.Path != "/attributes/big" {
					received <- fmt.Errorf("fast event %d: %v %s", i, err, env.Path)
					return
				}
			case err := <-fast.end:
				received <- fmt.Errorf("fast session ended after %d events: %w", i, err)
				return
			case <-time.After(20 * time.Second):
				received <- fmt.Errorf("fast session: event %d missing", i)
				return
			}
		}
		received <- nil
	}()
	began := time.Now()
	for range writes {
		write()
	}
	t.Logf("%d writes in %s", writes, time.Since(began))
	if err := <-received; err != nil {
		t.Fatal(err)
	}
	wsWaitFor(t, 15*time.Second, func() error {
		if s := n.gateway.Sessions(); s != 1 {
			return fmt.Errorf("%d sessions open, want only the fast one", s)
		}
		return nil
	})
	growth := heapInUse() - heapBefore
	written := int64(writes * len(payload))
	t.Logf("heap growth %d KiB for %d KiB written; bus dropped %d", growth/1024, written/1024, n.SlowSubscribers())
	if growth > written/2 {
		t.Errorf("heap grew by %d KiB while %d KiB were written: buffers are not bounded", growth/1024, written/1024)
	}
	if n.SlowSubscribers() < 1 {
		t.Error("the slow session was not cut off")
	}
	// The slow client finds its session ended after whatever the socket
	// buffered: a close 1008 if the close frame still fitted into the
	// socket, else the connection was dropped after the close timeout.
	for {
		_, _, err := slow.Read(t.Context())
		if err != nil {
			if code := websocket.CloseStatus(err); code != -1 && code != websocket.StatusPolicyViolation {
				t.Errorf("slow session ended with %v, want close 1008 or a dropped connection", err)
			}
			t.Logf("slow session ended: %v", err)
			break
		}
	}
	expectStatus(t, owner.do("GET", "/api/2/things/ns:t1/attributes/public", ""), http.StatusOK)
}

// heapInUse is the live heap after a full collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

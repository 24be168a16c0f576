package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/node"
)

// TestWSAuthorizedFanout: three users with different policies see exactly
// the events each may see: full, partial (filtered) or none.
func TestWSAuthorizedFanout(t *testing.T) {
	n := startTwinNode(t, nil)
	setupTwinFixture(t, n)
	alice := dialTwWS(t, n, "alice", "")
	bob := dialTwWS(t, n, "bob", "")
	carol := dialTwWS(t, n, "carol", "")
	for _, c := range []*twWS{alice, bob, carol} {
		c.start("START-SEND-EVENTS")
	}
	owner := newTwHTTP(t, n, "ditto")

	owner.must("PUT", "/api/2/things/ns:t1/attributes/private", `3`, 204)
	owner.must("PUT", "/api/2/things/ns:t1/attributes", `{"public":7,"private":8}`, 204)
	owner.must("PUT", "/api/2/things/ns:t1/features/lamp/properties/on", `true`, 204)

	type seen struct {
		Topic string
		Path  string
		Value any
	}
	got := func(c *twWS, k int) []seen {
		var out []seen
		for range k {
			env := c.envelope()
			out = append(out, seen{env.Topic, env.Path, twDecode(t, env.Value)})
		}
		return out
	}
	modified := "ns/t1/things/twin/events/modified"
	if diff := cmp.Diff([]seen{
		{modified, "/attributes/private", 3.0},
		{modified, "/attributes", map[string]any{"public": 7.0, "private": 8.0}},
		{modified, "/features/lamp/properties/on", true},
	}, got(alice, 3)); diff != "" {
		t.Errorf("alice (reads all) (-want +got):\n%s", diff)
	}
	// bob reads attributes/public only: no event for private, a filtered
	// one for the attributes, none for the lamp.
	if diff := cmp.Diff([]seen{{modified, "/attributes", map[string]any{"public": 7.0}}}, got(bob, 1)); diff != "" {
		t.Errorf("bob (partial) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]seen{{modified, "/features/lamp/properties/on", true}}, got(carol, 1)); diff != "" {
		t.Errorf("carol (lamp only) (-want +got):\n%s", diff)
	}
	// Nothing else is pending for bob and carol: the next change each may
	// see is the next frame they get.
	owner.must("PUT", "/api/2/things/ns:t1/features/lamp/properties/on", `false`, 204)
	owner.must("PUT", "/api/2/things/ns:t1/attributes/public", `9`, 204)
	if diff := cmp.Diff([]seen{{modified, "/attributes/public", 9.0}}, got(bob, 1)); diff != "" {
		t.Errorf("bob after lamp change (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]seen{{modified, "/features/lamp/properties/on", false}}, got(carol, 1)); diff != "" {
		t.Errorf("carol (-want +got):\n%s", diff)
	}
}

// TestWSFilters covers namespaces, RQL filters with topic:action, and
// extraFields enrichment filtered by the subscriber's READ view.
func TestWSFilters(t *testing.T) {
	n := startTwinNode(t, nil)
	setupTwinFixture(t, n)
	nsOther := dialTwWS(t, n, "alice", "")
	nsOther.start("START-SEND-EVENTS?namespaces=other")
	deleted := dialTwWS(t, n, "alice", "")
	deleted.start("START-SEND-EVENTS?filter=" + url.QueryEscape("in(topic:action,'deleted')"))
	enriched := dialTwWS(t, n, "alice", "")
	enriched.start("START-SEND-EVENTS?extraFields=attributes/public&filter=" + url.QueryEscape("gt(attributes/public,10)"))
	bobExtra := dialTwWS(t, n, "bob", "")
	bobExtra.start("START-SEND-EVENTS?extraFields=attributes")

	owner := newTwHTTP(t, n, "ditto")
	owner.must("PUT", "/api/2/things/ns:t1/attributes/private", `5`, 204)          // public=1: filtered out
	owner.must("PUT", "/api/2/things/ns:t1/attributes/public", `11`, 204)          // passes gt(…,10)
	owner.must("PUT", "/api/2/things/other:t2/attributes/x", `1`, 201)             // namespace other
	owner.must("PUT", "/api/2/things/ns:t1/features/lamp/properties/on", `1`, 204) // enriched: public=11
	owner.must("DELETE", "/api/2/things/other:t2", "", 204)

	env := nsOther.envelope()
	if env.Topic != "other/t2/things/twin/events/created" || env.Path != "/attributes/x" {
		t.Errorf("namespaces=other got %s %s", env.Topic, env.Path)
	}
	if env = nsOther.envelope(); env.Topic != "other/t2/things/twin/events/deleted" {
		t.Errorf("namespaces=other second event %s", env.Topic)
	}
	if env = deleted.envelope(); env.Topic != "other/t2/things/twin/events/deleted" || len(env.Value) != 0 {
		t.Errorf("topic:action filter got %s value %s", env.Topic, env.Value)
	}

	env = enriched.envelope()
	if env.Path != "/attributes/public" || string(env.Extra) != `{"attributes":{"public":11}}` {
		t.Errorf("enriched first event %s extra %s", env.Path, env.Extra)
	}
	env = enriched.envelope()
	if env.Path != "/features/lamp/properties/on" || string(env.Extra) != `{"attributes":{"public":11}}` {
		t.Errorf("enriched second event %s extra %s", env.Path, env.Extra)
	}

	// bob's enrichment holds only what he may read.
	env = bobExtra.envelope()
	if env.Path != "/attributes/public" || string(env.Extra) != `{"attributes":{"public":11}}` {
		t.Errorf("bob extra: %s %s", env.Path, env.Extra)
	}

	// An invalid filter is answered with an error, not an ACK.
	deleted.sendText("START-SEND-EVENTS?filter=" + url.QueryEscape("eq(attributes/x"))
	env = deleted.envelope()
	if env.Status != 400 || !strings.Contains(string(env.Value), "rql.expression.invalid") {
		t.Errorf("invalid filter answer %s %d %s", env.Topic, env.Status, env.Value)
	}
}

// TestWSCommands: twin commands over the socket get correlated responses;
// the session never receives the events of its own commands; protocol
// errors come back as error envelopes.
func TestWSCommands(t *testing.T) {
	n := startTwinNode(t, nil)
	setupTwinFixture(t, n)
	ws := dialTwWS(t, n, "ditto", "")
	ws.start("START-SEND-EVENTS")

	ws.sendText(`{"topic":"ns/t1/things/twin/commands/modify","headers":{"correlation-id":"c-1"},"path":"/attributes/new","value":{"a":1}}`)
	env := ws.envelope()
	want := ditto.Envelope{Topic: "ns/t1/things/twin/commands/modify", Path: "/attributes/new", Status: 201,
		Headers: ditto.Headers{"correlation-id": "c-1", "etag": env.Headers["etag"], "content-type": "application/json"}, Value: []byte(`{"a":1}`)}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Errorf("modify response (-want +got):\n%s", diff)
	}
	ws.sendText(`{"topic":"ns/t1/things/twin/commands/retrieve","headers":{"correlation-id":"c-2","x-client":"k","condition":"exists(thingId)"},"path":"/attributes/new/a"}`)
	// The client's own header comes back, as in Ditto; a Ditto one does not.
	if env = ws.envelope(); env.Status != 200 || env.Headers["correlation-id"] != "c-2" || string(env.Value) != "1" ||
		env.Headers["x-client"] != "k" || env.Headers["condition"] != "" {
		t.Errorf("retrieve response %+v", env)
	}
	ws.sendText(`{"topic":"_/_/things/twin/commands/retrieve","headers":{"correlation-id":"c-3"},"path":"/","value":{"thingIds":["ns:t1","ns:missing"]},"fields":"thingId"}`)
	if env = ws.envelope(); env.Status != 200 || string(env.Value) != `[{"thingId":"ns:t1"}]` {
		t.Errorf("multi-retrieve response %d %s", env.Status, env.Value)
	}
	for ids, code := range map[string]string{`[]`: "things:things.ids.missing", `["ns:t1","bad id"]`: "things:id.invalid"} {
		ws.sendText(`{"topic":"_/_/things/twin/commands/retrieve","headers":{"correlation-id":"c-3b"},"path":"/","value":{"thingIds":` + ids + `}}`)
		if env = ws.envelope(); env.Status != 400 || !strings.Contains(string(env.Value), code) {
			t.Errorf("multi-retrieve of %s: %d %s", ids, env.Status, env.Value)
		}
	}
	ws.sendText(`{"topic":"1ns/t1/things/twin/commands/retrieve","headers":{"correlation-id":"c-3c"},"path":"/"}`)
	if env = ws.envelope(); env.Topic != "unknown/unknown/things/twin/errors" || env.Status != 400 || !strings.Contains(string(env.Value), "things:id.invalid") {
		t.Errorf("invalid thing ID: %+v %s", env, env.Value)
	}
	ws.sendText(`{"topic":"ns/nope/things/twin/commands/retrieve","headers":{"correlation-id":"c-4"},"path":"/"}`)
	if env = ws.envelope(); env.Topic != "ns/nope/things/twin/errors" || env.Status != 404 || env.Headers["correlation-id"] != "c-4" {
		t.Errorf("not found %+v %s", env, env.Value)
	}
	ws.sendText(`{not json`)
	if env = ws.envelope(); env.Status != 400 || !strings.Contains(string(env.Value), "json.format.invalid") {
		t.Errorf("invalid json %d %s", env.Status, env.Value)
	}
	ws.sendText(`{"topic":"ns/t1/things/twin/bogus/x","headers":{"correlation-id":"c-5"},"path":"/"}`)
	if env = ws.envelope(); env.Status != 400 || !strings.Contains(string(env.Value), "protocoladapter:unknown.topicpath") || env.Headers["correlation-id"] != "c-5" {
		t.Errorf("unknown topic %d %s", env.Status, env.Value)
	}
	ws.sendText(`{"topic":"ns/pol/policies/commands/retrieve","headers":{"correlation-id":"c-6"},"path":"/entries/public/subjects"}`)
	if env = ws.envelope(); env.Status != 200 || env.Headers["correlation-id"] != "c-6" {
		t.Errorf("policy retrieve %d %s", env.Status, env.Value)
	}

	// Another client's change arrives; the session's own change did not.
	newTwHTTP(t, n, "ditto").must("PUT", "/api/2/things/ns:t1/attributes/other", `2`, 201)
	if env = ws.envelope(); env.Path != "/attributes/other" || env.Topic != "ns/t1/things/twin/events/created" {
		t.Errorf("first event after own command: %s %s (own event leaked?)", env.Topic, env.Path)
	}
	if _, ok := env.Headers["ditto-origin"]; ok {
		t.Errorf("internal header leaked: %v", env.Headers)
	}
}

// TestWSAuthAndLimits: upgrade without credentials is 401, oversized frames
// close with 1009, unknown control frames get an error.
func TestWSAuthAndLimits(t *testing.T) {
	n := startTwinNode(t, func(c *node.Config) { c.HTTP.Streams.MaxFrameBytes = 1024 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws://"+n.HTTPAddr().String()+"/ws/2", nil)
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("dial without credentials: %v %v", err, resp)
	}
	ws := dialTwWS(t, n, "ditto", "")
	ws.sendText("START-SEND-NOTHING")
	if env := ws.envelope(); env.Status != 400 {
		t.Errorf("unknown control frame: %+v", env)
	}
	ws.sendText(`{"topic":"ns/t1/things/twin/commands/modify","headers":{},"path":"/attributes/x","value":"` + strings.Repeat("x", 2048) + `"}`)
	_, _, err = ws.conn.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Errorf("oversized frame: %v", err)
	}
}

// TestWSSlowConsumer: a client that stops reading is cut off (the bus drops
// its subscription) while a fast client keeps receiving every event and the
// node keeps serving.
func TestWSSlowConsumer(t *testing.T) {
	// The queues are small next to the 400 events the slow client never
	// reads, and large enough that the fast client, on a loaded machine,
	// does not overflow them between two reads.
	n := startTwinNode(t, func(c *node.Config) {
		c.HTTP.Streams.EventQueue = 64
		c.HTTP.Streams.OutQueue = 2
		c.HTTP.Streams.FrameTimeout = 2 * time.Second
	})
	owner := newTwHTTP(t, n, "ditto")
	owner.must("PUT", "/api/2/things/ns:big", `{}`, 201)
	slow := dialTwWS(t, n, "ditto", "")
	slow.start("START-SEND-EVENTS")
	fast := dialTwWS(t, n, "ditto", "")
	fast.start("START-SEND-EVENTS")

	payload := `"` + strings.Repeat("x", 16*1024) + `"`
	const writes = 400
	received := make(chan error, 1)
	go func() {
		for i := range writes {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, b, err := fast.conn.Read(ctx)
			cancel()
			if err != nil {
				received <- fmt.Errorf("fast client event %d: %w", i, err)
				return
			}
			env, err := ditto.DecodeEnvelope(b)
			if err != nil || env.Path != "/attributes/a" {
				received <- fmt.Errorf("fast client frame %d: %v %s", i, err, env.Path)
				return
			}
		}
		received <- nil
	}()
	began := time.Now()
	for i := range writes {
		owner.must("PUT", "/api/2/things/ns:big/attributes/a", payload, 201, 204)
		if i%50 == 0 {
			owner.must("GET", "/api/2/things/ns:big/attributes/a", "", 200)
		}
	}
	if err := <-received; err != nil {
		t.Fatal(err)
	}
	t.Logf("writes done after %s", time.Since(began))
	if n.SlowSubscribers() < 1 {
		t.Errorf("the slow subscriber was not cut off (dropped %d)", n.SlowSubscribers())
	}
	// The slow client finds its session closed after the buffered frames.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		_, _, err := slow.conn.Read(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatal("slow session still open")
			}
			break
		}
	}
	t.Logf("slow client closed after %s", time.Since(began))
	owner.must("GET", "/api/2/things/ns:big/attributes/a", "", 200)
}

// TestWSSearchProtocol: subscribe, request, next pages, complete.
func TestWSSearchProtocol(t *testing.T) {
	n := startTwinNode(t, nil)
	setupTwinFixture(t, n)
	ws := dialTwWS(t, n, "bob", "")
	ws.sendText(`{"topic":"_/_/things/twin/search/subscribe","headers":{"correlation-id":"s1"},"path":"/","fields":"thingId","value":{"options":"size(1),sort(+thingId)"}}`)
	env := ws.envelope()
	created, _ := twDecode(t, env.Value).(map[string]any)
	id, _ := created["subscriptionId"].(string)
	if env.Topic != "_/_/things/twin/search/created" || id == "" || env.Headers["correlation-id"] != "s1" {
		t.Fatalf("created: %s %s", env.Topic, env.Value)
	}
	ws.sendText(`{"topic":"_/_/things/twin/search/request","headers":{"correlation-id":"s1"},"path":"/","value":{"subscriptionId":"` + id + `","demand":5}}`)
	var topics []string
	var items []any
	for {
		env = ws.envelope()
		topics = append(topics, env.Topic)
		if env.Topic != "_/_/things/twin/search/next" {
			break
		}
		items = append(items, twDecode(t, env.Value).(map[string]any)["items"].([]any)...)
	}
	want := []any{map[string]any{"thingId": "ns:t1"}, map[string]any{"thingId": "other:t2"}}
	if diff := cmp.Diff(want, items); diff != "" || topics[len(topics)-1] != "_/_/things/twin/search/complete" {
		t.Errorf("search pages %v (-want +got):\n%s", topics, diff)
	}
	ws.sendText(`{"topic":"_/_/things/twin/search/request","headers":{"correlation-id":"r9"},"path":"/","value":{"subscriptionId":"nope","demand":1}}`)
	if env = ws.envelope(); env.Topic != "_/_/things/twin/search/failed" || !strings.Contains(string(env.Value), "thing-search:subscription.not.found") ||
		env.Headers["correlation-id"] != "r9" {
		t.Errorf("unknown subscription: %s %s", env.Topic, env.Value)
	}

	// A demand below 1 fails the subscription (it used to hang), with the
	// request's correlation-id.
	ws.sendText(`{"topic":"_/_/things/twin/search/subscribe","headers":{"correlation-id":"s2"},"path":"/","value":{}}`)
	created, _ = twDecode(t, ws.envelope().Value).(map[string]any)
	id, _ = created["subscriptionId"].(string)
	ws.sendText(`{"topic":"_/_/things/twin/search/request","headers":{"correlation-id":"r2"},"path":"/","value":{"subscriptionId":"` + id + `","demand":0}}`)
	if env = ws.envelope(); env.Topic != "_/_/things/twin/search/failed" || !strings.Contains(string(env.Value), "subscription.protocol.error") ||
		env.Headers["correlation-id"] != "r2" {
		t.Errorf("demand 0: %s %v %s", env.Topic, env.Headers, env.Value)
	}
}

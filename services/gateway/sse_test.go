package gateway_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSSEThings: GET /api/2/things with Accept: text/event-stream streams
// the changes as partial things with ids, restricted by ids, fields,
// filter and the requester's READ view.
func TestSSEThings(t *testing.T) {
	n := startTwinNode(t, nil)
	setupTwinFixture(t, n)
	owner := newTwHTTP(t, n, "ditto")

	all := openTwSSE(t, n, "alice", "/api/2/things?ids=ns:t1&fields="+url.QueryEscape("thingId,attributes,_revision"))
	partial := openTwSSE(t, n, "bob", "/api/2/things")
	filtered := openTwSSE(t, n, "alice", "/api/2/things?filter="+url.QueryEscape("eq(attributes/public,42)"))
	withContext := openTwSSE(t, n, "alice", "/api/2/things?namespaces=ns&fields="+url.QueryEscape("thingId,_context/topic,_context/path"))
	path := openTwSSE(t, n, "alice", "/api/2/things/ns:t1/attributes/public")

	owner.must("PUT", "/api/2/things/other:t2/attributes/public", `5`, 204)
	owner.must("PUT", "/api/2/things/ns:t1/attributes", `{"public":42,"private":8}`, 204)
	owner.must("PUT", "/api/2/things/ns:t1/features/lamp/properties/on", `true`, 204)

	ev := all.next()
	if diff := cmp.Diff(map[string]any{"thingId": "ns:t1", "attributes": map[string]any{"public": 42.0, "private": 8.0}, "_revision": 2.0}, twDecode(t, []byte(ev.data))); diff != "" {
		t.Errorf("alice ids+fields (-want +got):\n%s", diff)
	}
	if ev.id == "" {
		t.Error("event without id")
	}
	if ev = all.next(); ev.data != `{"_revision":3,"thingId":"ns:t1"}` {
		t.Errorf("alice lamp change with fields: %s", ev.data)
	}

	// bob reads attributes/public only: other:t2's change, then the
	// filtered attributes, nothing of the lamp.
	if ev = partial.next(); ev.data != `{"attributes":{"public":5},"thingId":"other:t2"}` {
		t.Errorf("bob first: %s", ev.data)
	}
	if ev = partial.next(); ev.data != `{"attributes":{"public":42},"thingId":"ns:t1"}` {
		t.Errorf("bob second: %s", ev.data)
	}

	if ev = filtered.next(); ev.data != `{"attributes":{"private":8,"public":42},"thingId":"ns:t1"}` {
		t.Errorf("filter: %s", ev.data)
	}
	if ev = withContext.next(); ev.data != `{"_context":{"path":"/attributes","topic":"ns/t1/things/twin/events/modified"},"thingId":"ns:t1"}` {
		t.Errorf("_context: %s", ev.data)
	}
	if ev = path.next(); ev.data != `42` {
		t.Errorf("path stream: %s", ev.data)
	}
	owner.must("PUT", "/api/2/things/ns:t1/attributes/public", `43`, 204)
	if ev = path.next(); ev.data != `43` {
		t.Errorf("path stream after the lamp change: %s (lamp change leaked?)", ev.data)
	}
}

// TestSSEResume: a stream reopened with Last-Event-ID gets the events it
// missed from the replay window, then the live ones.
func TestSSEResume(t *testing.T) {
	n := startTwinNode(t, nil)
	setupTwinFixture(t, n)
	owner := newTwHTTP(t, n, "ditto")
	first := openTwSSE(t, n, "alice", "/api/2/things/ns:t1")
	owner.must("PUT", "/api/2/things/ns:t1/attributes/public", `1`, 204)
	last := first.next()
	first.close()

	owner.must("PUT", "/api/2/things/ns:t1/attributes/public", `2`, 204)
	owner.must("PUT", "/api/2/things/ns:t1/attributes/public", `3`, 204)
	resumed := openTwSSE(t, n, "alice", "/api/2/things/ns:t1", "Last-Event-ID", last.id)
	owner.must("PUT", "/api/2/things/ns:t1/attributes/public", `4`, 204)
	var got []string
	for range 3 {
		got = append(got, resumed.next().data)
	}
	want := []string{
		`{"attributes":{"public":2},"thingId":"ns:t1"}`,
		`{"attributes":{"public":3},"thingId":"ns:t1"}`,
		`{"attributes":{"public":4},"thingId":"ns:t1"}`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resumed stream (-want +got):\n%s", diff)
	}
}

// TestSSEDittoShapes: what Ditto's SSE route does with selections that
// leave nothing, merges, deletes and a foreign Last-Event-ID.
func TestSSEDittoShapes(t *testing.T) {
	n := startTwinNode(t, nil)
	setupTwinFixture(t, n)
	owner := newTwHTTP(t, n, "ditto")
	onlyAttrs := openTwSSE(t, n, "alice", "/api/2/things?ids=ns:t1&fields=attributes", "Last-Event-ID", "ns:t5")
	ctx := openTwSSE(t, n, "alice", "/api/2/things?ids=ns:t1&fields="+url.QueryEscape("_context/path,_context/value"))
	all := openTwSSE(t, n, "alice", "/api/2/things?ids=ns:t1")

	owner.must("PUT", "/api/2/things/ns:t1/features/lamp/properties/on", `true`, 204)
	owner.must("PATCH", "/api/2/things/ns:t1", `{"attributes":{"public":null,"x":1}}`, 204)
	owner.must("DELETE", "/api/2/things/ns:t1/attributes/x", "", 204)

	// The lamp change selects nothing of attributes: no event for it.
	if ev := onlyAttrs.next(); ev.data != `{"attributes":{"x":1}}` {
		t.Errorf("fields=attributes: %s (the lamp change, or a null of the merge, leaked)", ev.data)
	}
	for _, want := range []string{
		`{"features":{"lamp":{"properties":{"on":true}}},"thingId":"ns:t1"}`,
		`{"attributes":{"x":1},"thingId":"ns:t1"}`, // the merge without its null
	} {
		if ev := all.next(); ev.data != want {
			t.Errorf("got %s, want %s", ev.data, want)
		}
	}
	ctx.next()
	ctx.next()
	if ev := ctx.next(); ev.data != `{"_context":{"path":"/attributes/x","value":null}}` {
		t.Errorf("_context of a delete: %s", ev.data)
	}
}

// TestSSEHistory: a stream of persisted events cannot be served by a node
// that keeps only the current revision: 404, not a silent live stream.
func TestSSEHistory(t *testing.T) {
	n := startTwinNode(t, nil)
	setupTwinFixture(t, n)
	c := newTwHTTP(t, n, "alice")
	for q, want := range map[string]int{
		"?from-historical-revision=1&to-historical-revision=3": 404,
		"?from-historical-timestamp=2026-01-01T00:00:00Z":      404,
		"?from-historical-revision=abc":                        400,
	} {
		req, _ := http.NewRequest("GET", c.base+"/api/2/things/ns:t1"+q, nil)
		req.SetBasicAuth("alice", "alice")
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", q, resp.StatusCode, want)
		}
	}
}

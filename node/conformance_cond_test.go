package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// containsBody asserts that the body contains s.
func containsBody(s string) func(t *testing.T, r response) {
	return func(t *testing.T, r response) {
		t.Helper()
		if !strings.Contains(string(r.body), s) {
			t.Errorf("body %s does not contain %q", r.body, s)
		}
	}
}

// TestConformanceConditional covers ditto-spec §9 and Ditto's
// ConditionalHeaders*IT: If-Match / If-None-Match with rev and hash ETags,
// "*", 304 on retrieves, 412 with the current ETag on writes, if-equal and
// condition.
func TestConformanceConditional(t *testing.T) {
	c := newConformance(t, nil)
	const th = "/things/org.acme:c1"
	var attrTag string
	c.run([]row{
		{name: "create with If-None-Match *", method: "PUT", path: th, body: `{"attributes":{"a":"valueForRev1"}}`, hdr: []string{"If-None-Match", "*"}, status: 201, etag: `"rev:1"`},
		{name: "create-only again", method: "PUT", path: th, body: `{}`, hdr: []string{"If-None-Match", "*"}, status: 412, code: "things:precondition.failed", etag: `"rev:1"`, check: containsBody("if-none-match")},
		{name: "GET If-Match matches", method: "GET", path: th, hdr: []string{"If-Match", `"rev:1"`}, status: 200, etag: `"rev:1"`},
		{name: "GET If-Match mismatch", method: "GET", path: th, hdr: []string{"If-Match", `"rev:2"`}, status: 412, code: "things:precondition.failed", etag: `"rev:1"`},
		{name: "GET If-Match * missing", method: "GET", path: "/things/org.acme:none", hdr: []string{"If-Match", "*"}, status: 404},
		{name: "GET If-Match * existing", method: "GET", path: th, hdr: []string{"If-Match", "*"}, status: 200, etag: `"rev:1"`},
		{name: "GET If-None-Match mismatch", method: "GET", path: th, hdr: []string{"If-None-Match", `"rev:2"`}, status: 200, etag: `"rev:1"`},
		{name: "GET If-None-Match match", method: "GET", path: th, hdr: []string{"If-None-Match", `"rev:1"`}, status: 304, etag: `"rev:1"`, check: emptyBody},
		{name: "GET If-None-Match * existing", method: "GET", path: th, hdr: []string{"If-None-Match", "*"}, status: 304, etag: `"rev:1"`, check: emptyBody},
		{name: "GET If-None-Match * missing", method: "GET", path: "/things/org.acme:none", hdr: []string{"If-None-Match", "*"}, status: 404},
		{name: "PUT If-Match mismatch", method: "PUT", path: th, body: `{}`, hdr: []string{"If-Match", `"rev:2"`}, status: 412, etag: `"rev:1"`, check: containsBody("if-match")},
		{name: "PUT If-Match * missing", method: "PUT", path: "/things/org.acme:none", body: `{}`, hdr: []string{"If-Match", "*"}, status: 412, etag: "-", check: containsBody("if-match")},
		{name: "no thing after If-Match * missing", method: "GET", path: "/things/org.acme:none", status: 404},
		{name: "no policy after If-Match * missing", method: "GET", path: "/policies/org.acme:none", status: 404},
		{name: "DELETE If-Match mismatch", method: "DELETE", path: th, hdr: []string{"If-Match", `"rev:9"`}, status: 412, etag: `"rev:1"`},
		{name: "PUT sub-resource If-Match rev", method: "PUT", path: th + "/attributes/a", body: `"valueForRev2"`, hdr: []string{"If-Match", `"rev:1"`}, status: 412,
			check: func(t *testing.T, r response) {
				// A sub-resource compares against its own hash ETag, never the revision.
				if !strings.HasPrefix(r.header.Get("ETag"), `"hash:`) {
					t.Errorf("ETag %q", r.header.Get("ETag"))
				}
				attrTag = r.header.Get("ETag")
			}},
		{name: "GET sub-resource ETag", method: "GET", path: th + "/attributes/a", status: 200, etag: "hash",
			check: func(t *testing.T, r response) {
				if r.header.Get("ETag") != attrTag {
					t.Errorf("GET ETag %q, 412 ETag %q", r.header.Get("ETag"), attrTag)
				}
			}},
	})
	// The hash rows need the tag learned above.
	c.run([]row{
		{name: "GET sub-resource If-None-Match hash", method: "GET", path: th + "/attributes/a", hdr: []string{"If-None-Match", attrTag}, status: 304, etag: attrTag, check: emptyBody},
		{name: "PUT sub-resource If-Match hash", method: "PUT", path: th + "/attributes/a", body: `"valueForRev2"`, hdr: []string{"If-Match", attrTag}, status: 204, etag: "hash"},
		{name: "PUT sub-resource If-Match stale hash", method: "PUT", path: th + "/attributes/a", body: `"valueForRev3"`, hdr: []string{"If-Match", attrTag}, status: 412, etag: "hash"},
		{name: "GET sub-resource stale If-None-Match", method: "GET", path: th + "/attributes/a", hdr: []string{"If-None-Match", attrTag}, status: 200, want: `"valueForRev2"`},
		{name: "PUT sub-resource If-Match * missing", method: "PUT", path: th + "/attributes/none", body: `1`, hdr: []string{"If-Match", "*"}, status: 412, etag: "-"},
		{name: "PATCH sub-resource If-None-Match * missing", method: "PATCH", path: th + "/attributes/none", body: `1`, hdr: []string{"If-None-Match", "*"}, status: 204},
		{name: "PUT sub-resource If-None-Match * existing", method: "PUT", path: th + "/attributes/none", body: `2`, hdr: []string{"If-None-Match", "*"}, status: 412, etag: "hash"},
		{name: "if-equal skip no-op", method: "PUT", path: th + "/attributes/none", body: `1`, hdr: []string{"if-equal", "skip"}, status: 412, code: "things:precondition.failed"},
		{name: "if-equal skip change", method: "PUT", path: th + "/attributes/none", body: `2`, hdr: []string{"if-equal", "skip"}, status: 204},
		{name: "if-equal update no-op bumps", method: "PUT", path: th + "/attributes/none", body: `2`, status: 204},
		{name: "if-equal invalid", method: "PUT", path: th + "/attributes/none", body: `2`, hdr: []string{"if-equal", "sometimes"}, status: 400},
		{name: "condition true", method: "PUT", path: th + "/attributes/none?condition=eq(attributes/none,2)", body: `3`, status: 204},
		{name: "condition false", method: "PUT", path: th + "/attributes/none?condition=eq(attributes/none,2)", body: `4`, status: 412, code: "things:condition.failed"},
		{name: "condition header", method: "PUT", path: th + "/attributes/none", body: `4`, hdr: []string{"condition", "gt(_revision,1)"}, status: 204},
		{name: "condition invalid", method: "PUT", path: th + "/attributes/none", body: `5`, hdr: []string{"condition", "eq(attributes/none"}, status: 400, code: "things:condition.invalid"},
		{name: "condition on retrieve false", method: "GET", path: th + "?condition=eq(attributes/none,99)", status: 412, code: "things:condition.failed"},
		{name: "condition on retrieve true", method: "GET", path: th + "?condition=eq(attributes/none,4)&fields=thingId", status: 200, want: `{"thingId":"org.acme:c1"}`},
		{name: "policy If-None-Match", method: "GET", path: "/policies/org.acme:c1", hdr: []string{"If-None-Match", `"rev:1"`}, status: 304, etag: `"rev:1"`},
		{name: "policy If-Match mismatch", method: "PUT", path: "/policies/org.acme:c1/entries/DEFAULT/subjects/nginx:x", body: `{"type":"t"}`, hdr: []string{"If-Match", `"rev:7"`}, status: 412, code: "policies:precondition.failed"},
		{name: "policy create-only", method: "PUT", path: "/policies/org.acme:c1", body: `{}`, hdr: []string{"If-None-Match", "*"}, status: 412, etag: `"rev:1"`},
	})
}

// TestConformanceHTTP covers ditto-spec §3 general rules and §3.5: media
// types, limits, error shape, timeout and response-required, header/query
// equivalence, correlation-id, authentication and whoami.
func TestConformanceHTTP(t *testing.T) {
	c := newConformance(t, nil)
	big := `{"attributes":{"a":"` + strings.Repeat("x", 101*1024) + `"}}`
	c.run([]row{
		{name: "setup", method: "PUT", path: "/things/org.acme:h1", body: `{}`, status: 201},
		{name: "415 on text/plain", method: "PUT", path: "/things/org.acme:h1", body: `{}`, hdr: []string{"Content-Type", "text/plain"}, status: 415, code: "mediatype.unsupported"},
		{name: "octet-stream accepted", method: "PUT", path: "/things/org.acme:h1/attributes/x", body: `1`, hdr: []string{"Content-Type", "application/octet-stream"}, status: 201},
		{name: "413 thing", method: "PUT", path: "/things/org.acme:h2", body: big, status: 413, code: "things:thing.toolarge"},
		{name: "413 growing via feature", method: "PUT", path: "/things/org.acme:h1/attributes/big", body: `"` + strings.Repeat("x", 100*1024-20) + `"`, status: 413, code: "things:thing.toolarge"},
		{name: "431 headers", method: "POST", path: "/things", body: `{}`, hdr: []string{"correlation-id", strings.Repeat("x", 6000)}, status: 431},
		{name: "json.format.invalid", method: "PUT", path: "/things/org.acme:h1/attributes/y", body: `"bar":"baz"`, status: 400, code: "json.format.invalid"},
		{name: "json.key.invalid control char", method: "PUT", path: "/things/org.acme:h1/attributes", body: `{"a\u0001":1}`, status: 400, code: "json.key.invalid"},
		{name: "things:id.invalid", method: "GET", path: "/things/no-namespace", status: 400, code: "things:id.invalid"},
		{name: "policies:id.invalid", method: "GET", path: "/policies/no-namespace", status: 400, code: "policies:id.invalid"},
		{name: "timeout invalid", method: "GET", path: "/things/org.acme:h1?timeout=abc", status: 400, code: "timeout.invalid"},
		{name: "timeout too large", method: "GET", path: "/things/org.acme:h1", hdr: []string{"timeout", "61s"}, status: 400, code: "timeout.invalid"},
		{name: "timeout forms", method: "GET", path: "/things/org.acme:h1?timeout=250ms", hdr: []string{"timeout", "1m"}, status: 200},
		{name: "timeout seconds", method: "GET", path: "/things/org.acme:h1?timeout=42", status: 200},
		{name: "timeout 0 is 202", method: "PUT", path: "/things/org.acme:h1/attributes/z", body: `1`, hdr: []string{"timeout", "0"}, status: 202, check: emptyBody},
		{name: "response-required=false is 202", method: "PUT", path: "/things/org.acme:h1/attributes/z?response-required=false", body: `2`, status: 202, check: emptyBody},
		{name: "response-required=false applied", method: "GET", path: "/things/org.acme:h1/attributes/z", status: 200, want: `2`},
		{name: "timeout 0 with response-required", method: "GET", path: "/things/org.acme:h1?timeout=0&response-required=true", status: 400},
		{name: "correlation-id echo", method: "GET", path: "/things/org.acme:h1", hdr: []string{"correlation-id", "my-cid"}, status: 200,
			check: func(t *testing.T, r response) {
				if r.header.Get("correlation-id") != "my-cid" {
					t.Errorf("correlation-id %q", r.header.Get("correlation-id"))
				}
			}},
		{name: "correlation-id query param", method: "GET", path: "/things/org.acme:h1?correlation-id=q-cid", status: 200,
			check: func(t *testing.T, r response) {
				if r.header.Get("correlation-id") != "q-cid" {
					t.Errorf("correlation-id %q", r.header.Get("correlation-id"))
				}
			}},
		{name: "correlation-id on errors", method: "GET", path: "/things/org.acme:none", hdr: []string{"correlation-id", "err-cid"}, status: 404,
			check: func(t *testing.T, r response) {
				if r.header.Get("correlation-id") != "err-cid" {
					t.Errorf("correlation-id %q", r.header.Get("correlation-id"))
				}
			}},
		{name: "no credentials", user: "-", method: "GET", path: "/things/org.acme:h1", status: 401, code: "gateway:authentication.failed"},
		{name: "wrong password", user: "-", method: "GET", path: "/things/org.acme:h1", hdr: []string{"Authorization", "Basic ZGl0dG86d3Jvbmc="}, status: 401, code: "gateway:authentication.failed"},
		{name: "pre-auth header ignored when disabled", user: "-", method: "GET", path: "/things/org.acme:h1", hdr: []string{"x-ditto-pre-authenticated", "nginx:ditto"}, status: 401},
		{name: "whoami", method: "GET", path: "/whoami", status: 200, want: `{"defaultSubject":"nginx:ditto","subjects":["nginx:ditto"]}`},
		{name: "ditto- headers are not accepted", method: "GET", path: "/things/org.acme:h1?fields=thingId", hdr: []string{"ditto-originator", "evil"}, status: 200},
	})

	pre := newConformance(t, func(cfg *Config) { cfg.HTTP.PreAuthentication = true })
	pre.run([]row{
		{name: "pre-auth accepted when enabled", user: "-", method: "PUT", path: "/things/org.acme:pre", body: `{}`, hdr: []string{"x-ditto-pre-authenticated", "nginx:proxy"}, status: 201},
		{name: "pre-auth subject owns the default policy", user: "-", method: "GET", path: "/policies/org.acme:pre/entries/DEFAULT/subjects", hdr: []string{"x-ditto-pre-authenticated", "nginx:proxy"}, status: 200, want: `{"nginx:proxy":{"type":"generated"}}`},
		{name: "pre-auth whoami", user: "-", method: "GET", path: "/whoami", hdr: []string{"x-ditto-pre-authenticated", "nginx:proxy"}, status: 200, want: `{"defaultSubject":"nginx:proxy","subjects":["nginx:proxy"]}`},
		{name: "malformed pre-auth subject", user: "-", method: "GET", path: "/whoami", hdr: []string{"x-ditto-pre-authenticated", "nocolon"}, status: 401},
	})
}

// TestConformanceConcurrentConditionalWrites runs 20 writers with If-Match
// against one thing for several revisions: exactly one wins each revision,
// the revision grows by exactly 1 per change and the bus carries exactly one
// event per change.
func TestConformanceConcurrentConditionalWrites(t *testing.T) {
	c := newConformance(t, nil)
	cl := c.clients["ditto"]
	sub := c.n.Bus().Subscribe(1024)
	defer sub.Close()
	expectStatus(t, cl.do("PUT", "/api/2/things/org.acme:race", `{"attributes":{"n":0}}`), 201)

	const writers, rounds = 20, 5
	for round := 1; round <= rounds; round++ {
		etag := fmt.Sprintf(`"rev:%d"`, round)
		statuses := make([]int, writers)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, err := http.NewRequest("PUT", cl.base+"/api/2/things/org.acme:race", strings.NewReader(fmt.Sprintf(`{"attributes":{"n":%d}}`, w)))
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("If-Match", etag)
				req.SetBasicAuth("ditto", "ditto")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				statuses[w] = resp.StatusCode
			}()
		}
		wg.Wait()
		won, lost := 0, 0
		for _, s := range statuses {
			switch s {
			case 204:
				won++
			case 412:
				lost++
			}
		}
		if won != 1 || lost != writers-1 {
			t.Fatalf("round %d: statuses %v, want one 204 and %d 412", round, statuses, writers-1)
		}
		r := cl.do("GET", "/api/2/things/org.acme:race?fields=_revision", "")
		var got struct {
			Revision int64 `json:"_revision"`
		}
		if err := json.Unmarshal(r.body, &got); err != nil || got.Revision != int64(round+1) {
			t.Fatalf("round %d: revision %s, want %d", round, r.body, round+1)
		}
	}

	// One created event and one modified event per round, revisions +1.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var revs []int64
	for len(revs) < rounds+1 {
		select {
		case sig := <-sub.C():
			if sig.EntityID == "org.acme:race" && strings.Contains(sig.Envelope.Topic, "/things/twin/events/") {
				revs = append(revs, sig.Revision)
			}
		case <-ctx.Done():
			t.Fatalf("events: got revisions %v, want %d events", revs, rounds+1)
		}
	}
	for i, rev := range revs {
		if rev != int64(i+1) {
			t.Fatalf("event revisions %v, want 1..%d", revs, rounds+1)
		}
	}
	select {
	case sig := <-sub.C():
		if sig.EntityID == "org.acme:race" {
			t.Errorf("extra event %s rev %d", sig.Envelope.Topic, sig.Revision)
		}
	default:
	}
	if err := sub.Err(); err != nil && err != ditto.ErrSubscriptionClosed {
		t.Errorf("subscription: %v", err)
	}
}

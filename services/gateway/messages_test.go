package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/node"
	"github.com/dittonode/dittonode/services/live"
)

// These tests run the HTTP message, live command and acknowledgement
// endpoints against a real node; Go subscribers registered on the node's
// live router play the devices.

const msgThing = `{
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

var msgAlice = ditto.Auth{Subjects: []string{"nginx:alice"}}

type msgNode struct {
	t    testing.TB
	n    *node.Node
	base string
}

func startMsgNode(t testing.TB) *msgNode {
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
	ln := &msgNode{t: t, n: n, base: "http://" + n.HTTPAddr().String()}
	if r := ln.do("alice", "PUT", "/api/2/things/org.acme:t1", "application/json", msgThing); r.status != 201 {
		t.Fatalf("create thing: %d %s", r.status, r.body)
	}
	return ln
}

type msgResult struct {
	status int
	header http.Header
	body   []byte
}

func (r msgResult) errorCode() string {
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error
}

func (ln *msgNode) do(user, method, path, ct, body string, headers ...string) msgResult {
	ln.t.Helper()
	req, err := http.NewRequest(method, ln.base+path, strings.NewReader(body))
	if err != nil {
		ln.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	req.SetBasicAuth(user, user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ln.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ln.t.Fatal(err)
	}
	return msgResult{status: resp.StatusCode, header: resp.Header, body: b}
}

// responder subscribes a Go device that answers every signal with answer's
// result (nil: no answer) and records what it got.
func (ln *msgNode) responder(id string, auth ditto.Auth, kinds []string, labels []string, answer func(ditto.Envelope) []ditto.Envelope) chan ditto.Envelope {
	ln.t.Helper()
	got := make(chan ditto.Envelope, 64)
	r := ln.n.Live()
	cancel, err := r.Subscribe(id, auth, kinds, labels, func(env ditto.Envelope) {
		select {
		case got <- env:
		default:
		}
		for _, out := range answer(env) {
			if out.Headers == nil {
				out.Headers = ditto.Headers{}
			}
			out.Headers[ditto.HeaderCorrelationID] = env.Headers[ditto.HeaderCorrelationID]
			out.Headers[live.HeaderOrigin] = id
			if err := r.Respond(out, auth); err != nil {
				ln.t.Errorf("respond: %v", err)
			}
		}
	})
	if err != nil {
		ln.t.Fatal(err)
	}
	ln.t.Cleanup(cancel)
	return got
}

func msgAnswer(env ditto.Envelope, status int, ct string, value string) []ditto.Envelope {
	out := ditto.Envelope{Topic: env.Topic, Path: strings.Replace(env.Path, "inbox", "outbox", 1), Status: status, Headers: ditto.Headers{}}
	if ct != "" {
		out.Headers[ditto.HeaderContentType] = ct
	}
	if value != "" {
		out.Value = json.RawMessage(value)
	}
	return []ditto.Envelope{out}
}

func msgReceive(t *testing.T, ch chan ditto.Envelope) ditto.Envelope {
	t.Helper()
	select {
	case env := <-ch:
		return env
	case <-time.After(10 * time.Second):
		t.Fatal("nothing delivered within 10s")
	}
	return ditto.Envelope{}
}

func TestHTTPMessages(t *testing.T) {
	ln := startMsgNode(t)
	got := ln.responder("device", msgAlice, []string{live.KindMessages}, nil, func(env ditto.Envelope) []ditto.Envelope {
		switch env.Topic {
		case "org.acme/t1/things/live/messages/text":
			return msgAnswer(env, 200, "text/plain", `"pong"`)
		case "org.acme/t1/things/live/messages/binary":
			return msgAnswer(env, 201, "application/octet-stream", `"`+base64.StdEncoding.EncodeToString([]byte{0, 1, 2})+`"`)
		case "org.acme/t1/things/live/messages/a/b":
			return msgAnswer(env, 200, "application/json", `{"ok":true}`)
		case "org.acme/t1/things/live/messages/empty":
			return msgAnswer(env, 204, "", "")
		}
		return nil
	})

	cases := []struct {
		name, path, ct, body string
		wantValue            string
		wantStatus           int
		wantCT, wantBody     string
	}{
		{"text", "/inbox/messages/text", "text/plain", "ping", `"ping"`, 200, "text/plain", "pong"},
		{"binary", "/outbox/messages/binary", "application/octet-stream", "\x00\xff", `"AP8="`, 201, "application/octet-stream", "\x00\x01\x02"},
		{"json subject with slash on a feature", "/features/f/inbox/messages/a/b", "application/json", `{"x":1}`, `{"x":1}`, 200, "application/json", `{"ok":true}`},
		{"no body, no content-type", "/inbox/messages/empty", "", "", ``, 204, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ln.do("alice", "POST", "/api/2/things/org.acme:t1"+tc.path, tc.ct, tc.body, "x-app", "1")
			if r.status != tc.wantStatus || r.header.Get("Content-Type") != tc.wantCT || string(r.body) != tc.wantBody {
				t.Errorf("response %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
			}
			env := msgReceive(t, got)
			if string(env.Value) != tc.wantValue || env.Headers["x-app"] != "1" || env.Path != tc.path {
				t.Errorf("delivered %s", ditto.EncodeEnvelope(env))
			}
			wantCT := tc.ct
			if wantCT == "" {
				wantCT = "application/octet-stream"
			}
			if env.Headers[ditto.HeaderContentType] != wantCT {
				t.Errorf("delivered content-type %q", env.Headers[ditto.HeaderContentType])
			}
		})
	}
}

func TestHTTPMessageErrors(t *testing.T) {
	ln := startMsgNode(t)
	big := strings.Repeat("x", gatewayMaxMessage+1)
	cases := []struct {
		name, user, method, path, ct, body string
		headers                            []string
		status                             int
		code                               string
	}{
		{"no responder", "alice", "POST", "/inbox/messages/ask", "text/plain", "hi", []string{"timeout", "200ms"}, 408, "command.timeout"},
		{"timeout 0", "alice", "POST", "/inbox/messages/ask", "text/plain", "hi", []string{"timeout", "0"}, 202, ""},
		{"no response required", "alice", "POST", "/inbox/messages/ask", "text/plain", "hi", []string{"response-required", "false"}, 202, ""},
		{"too large", "alice", "POST", "/inbox/messages/ask", "text/plain", big, nil, 413, "messages:message.toolarge"},
		{"timeout above 60s", "alice", "POST", "/inbox/messages/ask", "text/plain", "hi", []string{"timeout", "61"}, 400, "timeout.invalid"},
		{"claim allows 600s", "alice", "POST", "/inbox/claim", "", "", []string{"timeout", "600", "response-required", "false"}, 202, ""},
		{"claim above 600s", "alice", "POST", "/inbox/claim", "", "", []string{"timeout", "601"}, 400, "timeout.invalid"},
		{"invalid json", "alice", "POST", "/inbox/messages/ask", "application/json", "{", nil, 400, "json.format.invalid"},
		{"not allowed", "carol", "POST", "/inbox/messages/ask", "text/plain", "hi", nil, 403, "messages:send.notallowed"},
		{"unknown thing", "alice", "POST", "/../things/org.acme:nope/inbox/messages/ask", "text/plain", "hi", nil, 404, "things:thing.notfound"},
		{"GET", "alice", "GET", "/inbox/messages/ask", "", "", nil, 405, "gateway:method.notallowed"},
		{"zero timeout and acks", "alice", "POST", "/inbox/messages/ask", "text/plain", "hi", []string{"timeout", "0", "requested-acks", "some-ack"}, 400, "header.invalid"},
		{"condition holds", "alice", "POST", "/inbox/messages/ask", "text/plain", "hi", []string{"timeout", "0", "condition", `eq(thingId,"org.acme:t1")`}, 202, ""},
		{"condition fails", "alice", "POST", "/inbox/messages/ask", "text/plain", "hi", []string{"timeout", "0", "condition", `eq(thingId,"org.acme:x")`}, 412, "things:condition.failed"},
		{"condition invalid", "alice", "POST", "/inbox/messages/ask", "text/plain", "hi", []string{"timeout", "0", "condition", `eq(thingId`}, 400, "things:condition.invalid"},
		{"empty subject", "alice", "POST", "/inbox/messages/", "text/plain", "hi", nil, 400, "messages:subject.invalid"},
		{"empty subject part", "alice", "POST", "/inbox/messages/a//b", "text/plain", "hi", nil, 400, "messages:subject.invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := "/api/2/things/org.acme:t1" + tc.path
			if strings.HasPrefix(tc.path, "/../") {
				path = "/api/2" + strings.TrimPrefix(tc.path, "/..")
			}
			r := ln.do(tc.user, tc.method, path, tc.ct, tc.body, tc.headers...)
			if r.status != tc.status || r.errorCode() != tc.code {
				t.Errorf("got %d %s", r.status, r.body)
			}
		})
	}
}

// gatewayMaxMessage mirrors gateway.MaxMessageBytes for the external test.
const gatewayMaxMessage = 250 * 1024

func TestHTTPClaim(t *testing.T) {
	ln := startMsgNode(t)
	got := ln.responder("owner", msgAlice, []string{live.KindMessages}, nil, func(env ditto.Envelope) []ditto.Envelope {
		return msgAnswer(env, 200, "application/json", `{"granted":true}`)
	})
	r := ln.do("carol", "POST", "/api/2/things/org.acme:t1/inbox/claim", "application/json", `{"who":"carol"}`)
	if r.status != 200 || string(r.body) != `{"granted":true}` {
		t.Fatalf("claim %d %s", r.status, r.body)
	}
	if env := msgReceive(t, got); env.Topic != "org.acme/t1/things/live/messages/claim" || env.Headers[ditto.HeaderOriginator] != "nginx:carol" {
		t.Errorf("delivered claim %s", ditto.EncodeEnvelope(env))
	}
}

func TestHTTPLiveCommands(t *testing.T) {
	ln := startMsgNode(t)
	ln.responder("device", msgAlice, []string{live.KindLiveCommands}, nil, func(env ditto.Envelope) []ditto.Envelope {
		switch {
		case env.Path == "/features/f/properties/slow", env.Headers["x-slow"] != "":
			return nil // never answers
		case strings.HasSuffix(env.Topic, "/retrieve"):
			return msgAnswer(env, 200, "", `{"thingId":"org.acme:t1","attributes":{"a":99},"features":{"f":{"properties":{"p":7}}}}`)
		default:
			out := msgAnswer(env, 204, "", "")
			out[0].Headers[ditto.HeaderETag] = `"hash:1"`
			return out
		}
	})
	r := ln.do("bob", "GET", "/api/2/things/org.acme:t1?channel=live", "", "")
	if r.status != 200 || string(r.body) != `{"attributes":{"a":99},"thingId":"org.acme:t1"}` || r.header.Get("channel") != "live" {
		t.Errorf("live retrieve as bob: %d %s %v", r.status, r.body, r.header)
	}
	r = ln.do("alice", "PUT", "/api/2/things/org.acme:t1/attributes/a", "application/json", `5`, "channel", "live")
	if r.status != 204 || r.header.Get("ETag") != `"hash:1"` {
		t.Errorf("live modify: %d %s", r.status, r.body)
	}
	if r := ln.do("alice", "GET", "/api/2/things/org.acme:t1/attributes/a", "", ""); string(r.body) != "1" {
		t.Errorf("the live modify changed the twin: %s", r.body)
	}
	r = ln.do("bob", "PUT", "/api/2/things/org.acme:t1/attributes/a", "application/json", `5`, "channel", "live")
	if r.status != 403 || r.errorCode() != "things:attribute.notmodifiable" {
		t.Errorf("live modify as bob: %d %s", r.status, r.body)
	}
	r = ln.do("alice", "GET", "/api/2/things/org.acme:t1/features/f/properties/slow?channel=live&timeout=200ms", "", "")
	if r.status != 408 || r.errorCode() != "command.timeout" {
		t.Errorf("live timeout: %d %s", r.status, r.body)
	}
	r = ln.do("alice", "GET", "/api/2/things/org.acme:t1/features/f/properties/slow?channel=live&timeout=200ms&live-channel-timeout-strategy=use-twin", "", "")
	if r.status != 404 || r.errorCode() != "things:feature.property.notfound" {
		t.Errorf("use-twin fallback on a missing property: %d %s", r.status, r.body)
	}
	r = ln.do("alice", "GET", "/api/2/things/org.acme:t1/features/f/properties/p?channel=live&timeout=200ms&live-channel-timeout-strategy=use-twin", "", "", "x-slow", "1")
	if r.status != 200 || string(r.body) != "2" || r.header.Get("channel") != "twin" {
		t.Errorf("use-twin fallback: %d %s %v", r.status, r.body, r.header)
	}
	r = ln.do("alice", "PUT", "/api/2/things/org.acme:t1/attributes/a?channel=live&timeout=200ms&live-channel-timeout-strategy=use-twin", "application/json", "6", "x-slow", "1")
	if r.status != 408 {
		t.Errorf("use-twin applies to retrieves only: %d %s", r.status, r.body)
	}
	r = ln.do("alice", "PUT", "/api/2/things/org.acme:t1/attributes/a?channel=live&response-required=false", "application/json", "6", "x-slow", "1")
	if r.status != 202 {
		t.Errorf("live modify without response: %d %s", r.status, r.body)
	}
}

func TestHTTPTwinAcks(t *testing.T) {
	ln := startMsgNode(t)
	sub := ln.n.Bus().Subscribe(64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // an application that acks every twin event asking for "app-ack"
		defer wg.Done()
		for {
			select {
			case sig := <-sub.C():
				h := sig.Envelope.Headers
				if !strings.Contains(h[ditto.HeaderRequestedAcks], "app-ack") {
					continue
				}
				ack := ditto.Envelope{Topic: "org.acme/t1/things/twin/acks/app-ack", Path: "/", Status: 200, Value: json.RawMessage(`{"seen":true}`),
					Headers: ditto.Headers{"correlation-id": h["correlation-id"], live.HeaderOrigin: "app"}}
				if err := ln.n.Live().Respond(ack, msgAlice); err != nil {
					t.Errorf("ack: %v", err)
				}
			case <-sub.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		sub.Close()
		wg.Wait()
	})
	ln.responder("app", msgAlice, []string{live.KindAcks}, []string{"app-ack"}, func(ditto.Envelope) []ditto.Envelope { return nil })

	r := ln.do("alice", "PUT", "/api/2/things/org.acme:t1/attributes/n", "application/json", `1`, "requested-acks", "twin-persisted,app-ack")
	var body map[string]struct {
		Status  int               `json:"status"`
		Payload json.RawMessage   `json:"payload"`
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if tp := body["twin-persisted"]; tp.Status != 201 || string(tp.Payload) != "1" || tp.Headers["etag"] == "" || !strings.HasSuffix(tp.Headers["location"], "/attributes/n") {
		t.Errorf("twin-persisted %+v", tp)
	}
	if a := body["app-ack"]; a.Status != 200 || string(a.Payload) != `{"seen":true}` {
		t.Errorf("app-ack %+v", a)
	}

	r = ln.do("alice", "PUT", "/api/2/things/org.acme:t1/attributes/n", "application/json", `2`, "requested-acks", "twin-persisted,search-persisted,missing-ack", "timeout", "300ms")
	if r.status != 424 || !bytes.Contains(r.body, []byte(`"missing-ack":{"headers"`)) || !bytes.Contains(r.body, []byte("acknowledgement:request.timeout")) {
		t.Errorf("missing ack: %d %s", r.status, r.body)
	}
	if r := ln.do("alice", "PUT", "/api/2/things/org.acme:t1/attributes/n", "application/json", `3`, "requested-acks", "twin-persisted"); r.status != 204 || len(r.body) != 0 {
		t.Errorf("built-in only: %d %s", r.status, r.body)
	}
	if r := ln.do("alice", "PUT", "/api/2/things/org.acme:t1/attributes/n", "application/json", `4`, "requested-acks", "app-ack", "timeout", "0"); r.status != 400 {
		t.Errorf("timeout 0 with acks: %d %s", r.status, r.body)
	}
	if r := ln.do("alice", "PUT", "/api/2/things/org.acme:t1/attributes/n", "application/json", `5`, "requested-acks", "app-ack", "response-required", "false"); r.status != 202 {
		t.Errorf("no response required: %d %s", r.status, r.body)
	}
}

// BenchmarkHTTPMessageRoundTrip measures HTTP message round trips through a
// subscriber that answers at once (reports msgs/s).
func BenchmarkHTTPMessageRoundTrip(b *testing.B) {
	ln := startMsgNode(b)
	ln.responder("device", msgAlice, []string{live.KindMessages}, nil, func(env ditto.Envelope) []ditto.Envelope {
		return msgAnswer(env, 200, "text/plain", `"pong"`)
	})
	url := ln.base + "/api/2/things/org.acme:t1/inbox/messages/ping"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.SetParallelism(8)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", url, strings.NewReader("ping"))
			req.Header.Set("Content-Type", "text/plain")
			req.SetBasicAuth("alice", "alice")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

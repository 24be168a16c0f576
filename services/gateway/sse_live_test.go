package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/node"
	"github.com/dittonode/dittonode/services/live"
)

// lvEvent is one server-sent event.
type lvEvent struct {
	Event, Data, ID string
}

// lvStream reads a real SSE response event by event.
type lvStream struct {
	t      testing.TB
	resp   *http.Response
	events chan lvEvent
}

// openLvStream opens an SSE request as user and fails unless it is 200.
func openLvStream(t testing.TB, base, user, path string, header ...string) *lvStream {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
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
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("SSE %s: %d %s", path, resp.StatusCode, b)
	}
	s := &lvStream{t: t, resp: resp, events: make(chan lvEvent, 256)}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		var ev lvEvent
		var data []string
		for sc.Scan() {
			line := sc.Text()
			name, value, _ := strings.Cut(line, ":")
			switch {
			case line == "":
				if data != nil {
					ev.Data = strings.Join(data, "\n")
					s.events <- ev
				}
				ev, data = lvEvent{}, nil
			case name == "event":
				ev.Event = value
			case name == "data":
				data = append(data, value)
			case name == "id":
				ev.ID = value
			}
		}
	}()
	t.Cleanup(func() { _ = resp.Body.Close() })
	return s
}

// next returns the next event, failing after 10 s or at the end.
func (s *lvStream) next() lvEvent {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.t.Fatal("SSE stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		s.t.Fatal("no SSE event within 10s")
	}
	return lvEvent{}
}

// rest returns the events up to the end of the stream.
func (s *lvStream) rest() []lvEvent {
	s.t.Helper()
	var out []lvEvent
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				return out
			}
			out = append(out, ev)
		case <-timeout:
			s.t.Fatalf("SSE stream did not end; got %v", out)
		}
	}
}

func TestSSEMessages(t *testing.T) {
	ln := startMsgNode(t)
	// bob may read only the "public" subject of this thing's inbox.
	if r := ln.do("alice", "PUT", "/api/2/things/org.acme:t2", "application/json", `{"_policy":{"entries":{
		"OWNER":{"subjects":{"nginx:alice":{"type":"t"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]},
			"policy:/":{"grant":["READ","WRITE"],"revoke":[]},"message:/":{"grant":["READ","WRITE"],"revoke":[]}}},
		"PUBLIC":{"subjects":{"nginx:bob":{"type":"t"}},"resources":{"message:/inbox/messages/public":{"grant":["READ"],"revoke":[]}}}}}}`); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	send := func(thing, path, ct, body string) {
		t.Helper()
		if r := ln.do("alice", "POST", "/api/2/things/"+thing+path+"?timeout=0", ct, body); r.status != 202 {
			t.Fatalf("send %s: %d %s", path, r.status, r.body)
		}
	}
	thingInbox := openLvStream(t, ln.base, "alice", "/api/2/things/org.acme:t1/inbox/messages")
	subject := openLvStream(t, ln.base, "alice", "/api/2/things/org.acme:t1/inbox/messages/a")
	feature := openLvStream(t, ln.base, "alice", "/api/2/things/org.acme:t1/features/f/outbox/messages")
	bob := openLvStream(t, ln.base, "bob", "/api/2/things/org.acme:t2/inbox/messages")

	send("org.acme:t1", "/outbox/messages/a", "text/plain", "not in the inbox")
	send("org.acme:t1", "/features/f/inbox/messages/a", "text/plain", "feature inbox")
	send("org.acme:t1", "/inbox/messages/b", "text/plain", "two\nlines")
	send("org.acme:t1", "/inbox/messages/a/deep", "application/json", `{"x":1}`)
	send("org.acme:t1", "/inbox/messages/a", "text/plain", "exact")
	send("org.acme:t1", "/features/f/outbox/messages/c", "application/octet-stream", "\x00\x01")
	send("org.acme:t2", "/inbox/messages/secret", "text/plain", "hidden")
	send("org.acme:t2", "/inbox/messages/public", "text/plain", "hello bob")

	for _, tc := range []struct {
		name   string
		stream *lvStream
		want   []lvEvent
	}{
		{"thing inbox", thingInbox, []lvEvent{{Event: "b", Data: "two\nlines"}, {Event: "a/deep", Data: `{"x":1}`}, {Event: "a", Data: "exact"}}},
		// Only the subject itself, not a/deep (Ditto filters the exact path).
		{"subject", subject, []lvEvent{{Event: "a", Data: "exact"}}},
		{"feature outbox, binary as base64", feature, []lvEvent{{Event: "c", Data: "AAE="}}},
		{"only readable subjects", bob, []lvEvent{{Event: "public", Data: "hello bob"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []lvEvent
			for range tc.want {
				got = append(got, tc.stream.next())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("unknown thing", func(t *testing.T) {
		// 200 as for any thing: a 404 would tell which things exist.
		openLvStream(t, ln.base, "alice", "/api/2/things/org.acme:missing/inbox/messages")
	})
	t.Run("POST without subject", func(t *testing.T) {
		r := ln.do("alice", "POST", "/api/2/things/org.acme:t1/inbox/messages", "text/plain", "x")
		if r.status != 404 {
			t.Errorf("%d %s", r.status, r.body)
		}
	})
}

func TestSSESearch(t *testing.T) {
	ln := startMsgNode(t)
	var ids []string
	for i := range 5 {
		id := fmt.Sprintf("org.sse:t%d", i)
		ids = append(ids, id)
		body := fmt.Sprintf(`{"policyId":"org.acme:t1","attributes":{"k":"v","n":%d}}`, i)
		if r := ln.do("alice", "PUT", "/api/2/things/"+id, "application/json", body); r.status != 201 {
			t.Fatalf("create %s: %d %s", id, r.status, r.body)
		}
	}
	// A thing outside the filter, between t2 and t3 in attributes/n.
	if r := ln.do("alice", "PUT", "/api/2/things/org.sse:other", "application/json", `{"policyId":"org.acme:t1","attributes":{"k":"w","n":2.5}}`); r.status != 201 {
		t.Fatalf("create other: %d %s", r.status, r.body)
	}
	const filter = `filter=eq(attributes/k,"v")`
	twWaitFor(t, 10*time.Second, func() error {
		r := ln.do("alice", "GET", "/api/2/search/things/count?"+filter, "", "")
		if string(r.body) != "5" {
			return fmt.Errorf("count %d %s", r.status, r.body)
		}
		return nil
	})
	idsOf := func(evs []lvEvent) []string {
		var out []string
		for _, ev := range evs {
			var m map[string]any
			if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
				t.Fatalf("data %q: %v", ev.Data, err)
			}
			if m["thingId"] != nil && m["thingId"] != ev.ID {
				t.Errorf("data thingId %v, id %s", m["thingId"], ev.ID)
			}
			out = append(out, ev.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name, query, lastID string
		want                []string
	}{
		{"all pages", filter + "&option=size(2)", "", ids},
		{"resume after", filter + "&option=size(2)", ids[1], ids[2:]},
		{"sorted descending", filter + "&option=size(2),sort(-thingId)", "", []string{ids[4], ids[3], ids[2], ids[1], ids[0]}},
		{"sorted, resume after", filter + "&option=sort(-attributes/n),size(2)", ids[3], []string{ids[2], ids[1], ids[0]}},
		// Resumed after a thing that does not match: after its sort values.
		{"sorted, resume after a thing outside the filter", filter + "&option=sort(-attributes/n)", "org.sse:other", []string{ids[2], ids[1], ids[0]}},
		{"resume after a thing that is gone", filter, "org.sse:t2x", ids[3:]},
		{"namespaces", "namespaces=org.other&" + filter, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.lastID != "" {
				hdr = []string{"Last-Event-ID", tc.lastID}
			}
			evs := openLvStream(t, ln.base, "alice", "/api/2/search/things?"+tc.query, hdr...).rest()
			if diff := cmp.Diff(tc.want, idsOf(evs)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("fields without thingId", func(t *testing.T) {
		evs := openLvStream(t, ln.base, "alice", "/api/2/search/things?"+filter+"&fields=attributes/n&option=size(3)").rest()
		if len(evs) != 5 || evs[0].ID != ids[0] || evs[0].Data != `{"attributes":{"n":0}}` {
			t.Errorf("events %v", evs)
		}
	})
	t.Run("carol reads nothing", func(t *testing.T) {
		evs := openLvStream(t, ln.base, "carol", "/api/2/search/things?"+filter).rest()
		if len(evs) != 0 {
			t.Errorf("carol got %v", evs)
		}
	})
	// As in Ditto: limit and cursor are refused at this endpoint, size is
	// accepted and ignored (the stream holds every match).
	for _, opt := range []string{"limit(0,2)", "cursor(abc)"} {
		t.Run("option "+opt, func(t *testing.T) {
			r := ln.do("alice", "GET", "/api/2/search/things?option="+opt, "", "", "Accept", "text/event-stream")
			if r.status != 400 || r.errorCode() != "thing-search:search.option.invalid" {
				t.Errorf("%d %s", r.status, r.body)
			}
		})
	}
	t.Run("size is ignored", func(t *testing.T) {
		evs := openLvStream(t, ln.base, "alice", "/api/2/search/things?"+filter+"&option=size(1000)").rest()
		if diff := cmp.Diff(ids, idsOf(evs)); diff != "" {
			t.Errorf("ids (-want +got):\n%s", diff)
		}
	})
}

func TestLiveChannelCondition(t *testing.T) {
	ln := startMsgNode(t)
	var mu sync.Mutex
	var received []ditto.Envelope
	ln.responder("device", msgAlice, []string{live.KindLiveCommands}, nil, func(env ditto.Envelope) []ditto.Envelope {
		mu.Lock()
		received = append(received, env)
		mu.Unlock()
		if env.Headers["x-slow"] != "" {
			return nil
		}
		return msgAnswer(env, 200, "", `{"a":99}`) // all matched retrieves address /attributes
	})
	const thing = "/api/2/things/org.acme:t1"
	for _, tc := range []struct {
		name, user, method, path, body string
		headers                        []string
		status                         int
		wantBody, matched, channel     string
		code                           string
	}{
		{name: "matched: live", user: "alice", method: "GET", path: thing + "/attributes?live-channel-condition=" + `eq(attributes/a,1)`,
			status: 200, wantBody: `{"a":99}`, matched: "true", channel: "live"},
		{name: "matched as header", user: "alice", method: "GET", path: thing + "/attributes",
			headers: []string{"live-channel-condition", "exists(features/f)"}, status: 200, wantBody: `{"a":99}`, matched: "true", channel: "live"},
		{name: "not matched: twin", user: "alice", method: "GET", path: thing + "/attributes?live-channel-condition=" + `eq(attributes/a,2)`,
			status: 200, wantBody: `{"a":1}`, matched: "false", channel: "twin"},
		{name: "unreadable field: twin", user: "bob", method: "GET", path: thing + "?live-channel-condition=" + `eq(features/f/properties/p,2)`,
			status: 200, wantBody: `{"attributes":{"a":1},"thingId":"org.acme:t1"}`, matched: "false", channel: "twin"},
		{name: "timeout, use-twin", user: "alice", method: "GET",
			path:    thing + "/attributes/a?timeout=300ms&live-channel-timeout-strategy=use-twin&live-channel-condition=" + `eq(attributes/a,1)`,
			headers: []string{"x-slow", "1"}, status: 200, wantBody: `1`, matched: "true", channel: "twin"},
		{name: "timeout, fail", user: "alice", method: "GET", path: thing + "/attributes/a?timeout=300ms&live-channel-condition=" + `eq(attributes/a,1)`,
			headers: []string{"x-slow", "1"}, status: 408, code: "command.timeout", matched: "true"},
		{name: "modify", user: "alice", method: "PUT", path: thing + "/attributes/a?live-channel-condition=" + `eq(attributes/a,1)`, body: "5",
			status: 405, code: "things:live.channel.condition.notallowed"},
		{name: "invalid RQL", user: "alice", method: "GET", path: thing + "?live-channel-condition=" + `eq(attributes/a`,
			status: 400, code: "things:condition.invalid"},
		{name: "unknown thing", user: "alice", method: "GET", path: "/api/2/things/org.acme:nope?live-channel-condition=" + `exists(thingId)`,
			status: 404, code: "things:thing.notfound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := ""
			if tc.body != "" {
				ct = "application/json"
			}
			r := ln.do(tc.user, tc.method, strings.ReplaceAll(tc.path, " ", "%20"), ct, tc.body, tc.headers...)
			if r.status != tc.status || (tc.wantBody != "" && string(r.body) != tc.wantBody) || r.errorCode() != tc.code {
				t.Errorf("response %d %s", r.status, r.body)
			}
			if got := r.header.Get("live-channel-condition-matched"); got != tc.matched {
				t.Errorf("live-channel-condition-matched = %q, want %q", got, tc.matched)
			}
			if got := r.header.Get("channel"); got != tc.channel {
				t.Errorf("channel = %q, want %q", got, tc.channel)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	for _, env := range received {
		if _, has := env.Headers["live-channel-condition"]; has {
			t.Errorf("the device got the live-channel-condition header: %v", env.Headers)
		}
		if !strings.HasSuffix(env.Topic, "/things/live/commands/retrieve") {
			t.Errorf("the device got %s", env.Topic)
		}
	}
	if len(received) != 4 {
		t.Errorf("the device got %d live commands, want 4", len(received))
	}
}

// lvClock is the node's injected clock for the announcement test.
type lvClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *lvClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *lvClock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func TestPolicyAnnouncementsOverWebSocket(t *testing.T) {
	start := time.Date(2031, 5, 6, 7, 0, 0, 0, time.UTC)
	clock := &lvClock{now: start}
	cfg := node.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.Users = map[string]string{"alice": "alice", "bob": "bob", "carol": "carol"}
	cfg.Raft.NoSync = true
	cfg.Policies.SweepInterval = 10 * time.Millisecond
	n, err := node.New(cfg, node.Deps{Logger: slog.New(slog.DiscardHandler), Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })

	expiry := start.Add(3 * time.Hour)
	newTwHTTP(t, n, "alice").must("PUT", "/api/2/policies/org.acme:p", `{"entries":{
		"owner":{"subjects":{"nginx:alice":{"type":"t"}},"resources":{"policy:/":{"grant":["READ","WRITE"],"revoke":[]}}},
		"temp":{"subjects":{"nginx:bob":{"type":"t","expiry":"`+expiry.Format(time.RFC3339)+`","announcement":{"beforeExpiry":"1h","whenDeleted":true}}},
			"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}}}}`, 201)

	bob := dialTwWS(t, n, "bob", "")
	bob.start("START-SEND-POLICY-ANNOUNCEMENTS?namespaces=org.acme")
	carol := dialTwWS(t, n, "carol", "")
	carol.start("START-SEND-POLICY-ANNOUNCEMENTS")
	carol.start("START-SEND-EVENTS")

	clock.set(expiry.Add(-time.Hour))
	env := bob.envelope()
	want := map[string]any{"deleteAt": expiry.Format(time.RFC3339), "subjectIds": []any{"nginx:bob"}}
	var got map[string]any
	if err := json.Unmarshal(env.Value, &got); err != nil {
		t.Fatal(err)
	}
	if env.Topic != "org.acme/p/policies/announcements/subjectDeletion" || env.Path != "/" || !cmp.Equal(want, got) {
		t.Errorf("announcement %s", ditto.EncodeEnvelope(env))
	}

	clock.set(expiry)
	env = bob.envelope()
	if err := json.Unmarshal(env.Value, &got); err != nil {
		t.Fatal(err)
	}
	if env.Topic != "org.acme/p/policies/announcements/subjectDeletion" || !cmp.Equal(want, got) {
		t.Errorf("deletion announcement %s", ditto.EncodeEnvelope(env))
	}

	// carol is not affected: the first frame she gets is the event of a
	// thing she can read, created after both announcements.
	newTwHTTP(t, n, "carol").must("PUT", "/api/2/things/org.acme:carol", `{}`, 201)
	if env := carol.envelope(); !strings.HasSuffix(env.Topic, "/things/twin/events/created") {
		t.Errorf("carol got %s", ditto.EncodeEnvelope(env))
	}
}

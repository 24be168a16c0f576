package live_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/services/live"
	"github.com/google/go-cmp/cmp"
)

func TestMessageRoundTrip(t *testing.T) {
	n := startNode(t)
	r := n.Live()
	device := newCollector()
	device.answer = func(env ditto.Envelope) {
		if err := r.Respond(reply(env, 200, `{"answer":42}`), bob); err != nil {
			t.Errorf("respond: %v", err)
		}
	}
	mustSubscribe(t, n, "device", bob, []string{live.KindMessages}, nil, device.deliver)
	outsider := newCollector()
	mustSubscribe(t, n, "outsider", carol, []string{live.KindMessages, live.KindLiveCommands}, nil, outsider.deliver)

	resp, ok, err := r.Send(ctxTimeout(t, 5*time.Second), message("ask", "c1", `{"q":1}`, "x-custom", "kept", "ditto-secret", "dropped"), alice)
	if err != nil || !ok {
		t.Fatalf("send: ok=%v err=%v", ok, err)
	}
	if resp.Status != 200 || string(resp.Value) != `{"answer":42}` {
		t.Errorf("response %s", ditto.EncodeEnvelope(resp))
	}
	got := device.next(t)
	want := ditto.Headers{
		"correlation-id": "c1", "content-type": "application/json", "x-custom": "kept", "ditto-originator": "nginx:alice",
	}
	if diff := cmp.Diff(want, got.Headers); diff != "" {
		t.Errorf("delivered headers (-want +got):\n%s", diff)
	}
	outsider.none(t)
}

func TestSendAuthorization(t *testing.T) {
	n := startNode(t)
	r := n.Live()
	cases := []struct {
		name string
		env  ditto.Envelope
		auth ditto.Auth
		code string
	}{
		{"message without WRITE", message("ask", "a1", `1`), carol, "messages:send.notallowed"},
		{"outbox message of inbox-only writer", ditto.Envelope{Topic: "org.acme/t1/things/live/messages/x", Headers: ditto.Headers{}, Path: "/outbox/messages/x"}, bob, "messages:send.notallowed"},
		{"live event without WRITE", ditto.Envelope{Topic: "org.acme/t1/things/live/events/modified", Headers: ditto.Headers{}, Path: "/attributes/a", Value: json.RawMessage(`2`)}, bob, "things:event.notallowed"},
		{"live modify without WRITE", ditto.Envelope{Topic: "org.acme/t1/things/live/commands/modify", Headers: ditto.Headers{}, Path: "/attributes/a", Value: json.RawMessage(`2`)}, bob, "things:attribute.notmodifiable"},
		{"live delete thing without WRITE", ditto.Envelope{Topic: "org.acme/t1/things/live/commands/delete", Headers: ditto.Headers{}, Path: "/"}, bob, "things:thing.notdeletable"},
		{"live retrieve without READ", ditto.Envelope{Topic: "org.acme/t1/things/live/commands/retrieve", Headers: ditto.Headers{}, Path: "/features"}, bob, "things:features.notfound"},
		{"live create", ditto.Envelope{Topic: "org.acme/t1/things/live/commands/create", Headers: ditto.Headers{}, Path: "/", Value: json.RawMessage(`{}`)}, alice, "things:thing.notcreatable"},
		{"unknown thing", ditto.Envelope{Topic: "org.acme/nope/things/live/messages/x", Headers: ditto.Headers{}, Path: "/inbox/messages/x"}, alice, "things:thing.notfound"},
		{"twin topic", ditto.Envelope{Topic: "org.acme/t1/things/twin/commands/retrieve", Headers: ditto.Headers{}, Path: "/"}, alice, "protocoladapter:unknown.topicpath"},
		{"subject differs from path", ditto.Envelope{Topic: "org.acme/t1/things/live/messages/x", Headers: ditto.Headers{}, Path: "/inbox/messages/y"}, alice, "protocoladapter:unknown.path"},
		{"zero timeout with acks", message("ask", "a2", `1`, "timeout", "0", "requested-acks", "my-ack"), alice, "header.invalid"},
		{"invalid label", message("ask", "a3", `1`, "requested-acks", "x"), alice, "acknowledgement:label.invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := r.Send(ctxTimeout(t, time.Second), tc.env, tc.auth)
			if got := errCode(err); got != tc.code {
				t.Fatalf("error %v, want code %s", err, tc.code)
			}
			if tc.code == "things:thing.notcreatable" && err.(*ditto.Error).Status != 405 {
				t.Errorf("live create status %d, want 405", err.(*ditto.Error).Status)
			}
		})
	}
}

func TestClaimNeedsNoWrite(t *testing.T) {
	n := startNode(t)
	r := n.Live()
	owner := newCollector()
	owner.answer = func(env ditto.Envelope) { _ = r.Respond(reply(env, 204, ""), alice) }
	mustSubscribe(t, n, "owner", alice, []string{live.KindMessages}, nil, owner.deliver)
	claim := ditto.Envelope{Topic: "org.acme/t1/things/live/messages/claim", Headers: ditto.Headers{"correlation-id": "cl"}, Path: "/inbox/claim"}
	resp, ok, err := r.Send(ctxTimeout(t, 5*time.Second), claim, carol)
	if err != nil || !ok || resp.Status != 204 {
		t.Fatalf("claim: %v %v %s", ok, err, ditto.EncodeEnvelope(resp))
	}
}

func TestTimeoutAndNoResponse(t *testing.T) {
	n := startNode(t)
	r := n.Live()
	start := time.Now()
	_, _, err := r.Send(ctxTimeout(t, 150*time.Millisecond), message("ask", "t1", `1`), alice)
	if errCode(err) != "command.timeout" || err.(*ditto.Error).Status != 408 {
		t.Fatalf("no responder: %v", err)
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Errorf("returned before the timeout")
	}
	for _, h := range [][]string{{"response-required", "false"}, {"timeout", "0"}} {
		_, ok, err := r.Send(ctxTimeout(t, 5*time.Second), message("ask", "t2", `1`, h...), alice)
		if err != nil || ok {
			t.Errorf("%v: ok=%v err=%v, want no wait", h, ok, err)
		}
	}
}

func TestFirstResponseWins(t *testing.T) {
	n := startNode(t)
	r := n.Live()
	for i, status := range []int{201, 202} {
		c := newCollector()
		c.answer = func(env ditto.Envelope) { _ = r.Respond(reply(env, status, ""), alice) }
		mustSubscribe(t, n, "responder-"+string(rune('a'+i)), alice, []string{live.KindMessages}, nil, c.deliver)
	}
	resp, ok, err := r.Send(ctxTimeout(t, 5*time.Second), message("ask", "f1", `1`), alice)
	if err != nil || !ok || (resp.Status != 201 && resp.Status != 202) {
		t.Fatalf("%v %v %s", ok, err, ditto.EncodeEnvelope(resp))
	}
	// A late answer for a finished request is dropped silently.
	if err := r.Respond(reply(message("ask", "f1", ""), 500, ""), alice); err != nil {
		t.Errorf("late response: %v", err)
	}
}

func TestCustomAcks(t *testing.T) {
	n := startNode(t)
	r := n.Live()
	good := newCollector()
	good.answer = func(env ditto.Envelope) {
		if env.Headers["correlation-id"] == "k1" && env.Headers[ditto.HeaderRequestedAcks] != "ack-good" {
			t.Errorf("delivered requested-acks %q", env.Headers[ditto.HeaderRequestedAcks])
		}
		ack := ditto.Envelope{Topic: "org.acme/t1/things/live/acks/ack-good", Path: "/", Status: 200, Value: json.RawMessage(`"fine"`),
			Headers: ditto.Headers{"correlation-id": env.Headers["correlation-id"], live.HeaderOrigin: "good"}}
		if err := r.Respond(ack, alice); err != nil {
			t.Errorf("ack: %v", err)
		}
		_ = r.Respond(reply(env, 200, `"resp"`), alice)
	}
	mustSubscribe(t, n, "good", alice, []string{live.KindMessages}, []string{"ack-good"}, good.deliver)
	bad := newCollector()
	bad.answer = func(env ditto.Envelope) {
		ack := ditto.Envelope{Topic: "org.acme/t1/things/live/acks/ack-bad", Path: "/", Status: 400,
			Headers: ditto.Headers{"correlation-id": env.Headers["correlation-id"], live.HeaderOrigin: "bad"}}
		_ = r.Respond(ack, alice)
	}
	mustSubscribe(t, n, "bad", alice, []string{live.KindMessages}, []string{"ack-bad"}, bad.deliver)

	t.Run("all 2xx", func(t *testing.T) {
		resp, ok, err := r.Send(ctxTimeout(t, 5*time.Second), message("ask", "k1", `1`, "requested-acks", "live-response,ack-good"), alice)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		v := ackValue(t, resp)
		if resp.Status != 200 || resp.Topic != "org.acme/t1/things/live/acks" || v["ack-good"].Status != 200 ||
			string(v["ack-good"].Payload) != `"fine"` || v["live-response"].Status != 200 || string(v["live-response"].Payload) != `"resp"` {
			t.Errorf("aggregated %s", ditto.EncodeEnvelope(resp))
		}
	})
	t.Run("mixed is 424", func(t *testing.T) {
		resp, _, err := r.Send(ctxTimeout(t, 5*time.Second), message("ask", "k2", `1`, "requested-acks", "ack-good,ack-bad"), alice)
		if err != nil || resp.Status != 424 || ackValue(t, resp)["ack-bad"].Status != 400 {
			t.Errorf("%v %s", err, ditto.EncodeEnvelope(resp))
		}
	})
	t.Run("single custom ack gives its status", func(t *testing.T) {
		resp, _, err := r.Send(ctxTimeout(t, 5*time.Second), message("ask", "k3", `1`, "requested-acks", "ack-bad", "response-required", "false"), alice)
		if err != nil || resp.Status != 400 {
			t.Errorf("%v %s", err, ditto.EncodeEnvelope(resp))
		}
	})
	t.Run("missing ack times out", func(t *testing.T) {
		resp, _, err := r.Send(ctxTimeout(t, 200*time.Millisecond), message("ask", "k4", `1`, "requested-acks", "ack-good,nobody-declared"), alice)
		v := ackValue(t, resp)
		if err != nil || resp.Status != 424 || v["nobody-declared"].Status != 408 || !strings.Contains(string(v["nobody-declared"].Payload), "acknowledgement:request.timeout") {
			t.Errorf("%v %s", err, ditto.EncodeEnvelope(resp))
		}
	})
}

func TestWeakAckForFilteredReceiver(t *testing.T) {
	n := startNode(t)
	r := n.Live()
	// carol declared the label but may not read the message: weak ack.
	filtered := newCollector()
	mustSubscribe(t, n, "carol-session", carol, []string{live.KindMessages}, []string{"carol-ack"}, filtered.deliver)
	resp, _, err := r.Send(ctxTimeout(t, 5*time.Second), message("ask", "w1", `1`, "requested-acks", "carol-ack", "response-required", "false"), alice)
	if err != nil || resp.Status != 200 {
		t.Fatalf("%v %s", err, ditto.EncodeEnvelope(resp))
	}
	if h := ackValue(t, resp)["carol-ack"].Headers; h[live.HeaderWeakAck] != "true" {
		t.Errorf("weak ack headers %v", h)
	}
	filtered.none(t)
}

func TestDeclaredLabels(t *testing.T) {
	n := startNode(t)
	r := n.Live()
	noop := func(ditto.Envelope) {}
	cancel, err := r.Subscribe("s1", alice, []string{live.KindMessages}, []string{"label-x"}, noop)
	if err != nil {
		t.Fatal(err)
	}
	// The same subscriber may subscribe again (another kind).
	cancel2, err := r.Subscribe("s1", alice, []string{live.KindLiveCommands}, []string{"label-x"}, noop)
	if err != nil {
		t.Fatalf("same ID again: %v", err)
	}
	if _, err := r.Subscribe("s2", alice, nil, []string{"label-x"}, noop); errCode(err) != "acknowledgement:label.not.unique" {
		t.Fatalf("other ID: %v", err)
	}
	for _, bad := range []string{"live-response", "no"} {
		if _, err := r.Subscribe("s3", alice, nil, []string{bad}, noop); errCode(err) != "acknowledgement:label.invalid" {
			t.Errorf("declare %q: %v", bad, err)
		}
	}
	if _, err := r.Subscribe("s3", alice, []string{"twin-events"}, nil, noop); err == nil {
		t.Error("unknown kind accepted")
	}
	// Acks must come from the declaring subscriber.
	ack := ditto.Envelope{Topic: "org.acme/t1/things/live/acks/label-x", Path: "/", Headers: ditto.Headers{"correlation-id": "x", live.HeaderOrigin: "s2"}}
	if err := r.Respond(ack, alice); errCode(err) != "acknowledgement:label.not.declared" {
		t.Errorf("foreign ack: %v", err)
	}
	cancel()
	if _, err := r.Subscribe("s2", alice, nil, []string{"label-x"}, noop); err == nil {
		t.Fatal("label released while s1 still subscribed")
	}
	cancel2()
	cancel3, err := r.Subscribe("s2", alice, nil, []string{"label-x"}, noop)
	if err != nil {
		t.Fatalf("label not released: %v", err)
	}
	cancel3()
}

func TestLiveRetrieveFilteredAndEventsViewed(t *testing.T) {
	n := startNode(t)
	r := n.Live()
	device := newCollector()
	device.answer = func(env ditto.Envelope) {
		if strings.Contains(env.Topic, "/commands/") {
			_ = r.Respond(reply(env, 200, `{"thingId":"org.acme:t1","attributes":{"a":5},"features":{"f":{"properties":{"p":9}}}}`), alice)
		}
	}
	mustSubscribe(t, n, "device", alice, []string{live.KindLiveCommands}, nil, device.deliver)
	retrieve := ditto.Envelope{Topic: "org.acme/t1/things/live/commands/retrieve", Headers: ditto.Headers{"correlation-id": "r1"}, Path: "/"}
	resp, ok, err := r.Send(ctxTimeout(t, 5*time.Second), retrieve, bob)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if got := string(resp.Value); got != `{"attributes":{"a":5},"thingId":"org.acme:t1"}` {
		t.Errorf("bob's view of the live retrieve: %s", got)
	}

	// Live events: bob (partial reader) sees only the attributes.
	watcher := newCollector()
	mustSubscribe(t, n, "bob-events", bob, []string{live.KindLiveEvents}, nil, watcher.deliver)
	event := ditto.Envelope{Topic: "org.acme/t1/things/live/events/modified", Headers: ditto.Headers{"correlation-id": "e1"}, Path: "/",
		Value: json.RawMessage(`{"attributes":{"a":7},"features":{"f":{}}}`)}
	if _, ok, err := r.Send(ctxTimeout(t, 5*time.Second), event, alice); err != nil || ok {
		t.Fatalf("live event: %v %v", ok, err)
	}
	if got := string(watcher.next(t).Value); got != `{"attributes":{"a":7}}` {
		t.Errorf("bob's view of the live event: %s", got)
	}
}

func TestTwinEventAcks(t *testing.T) {
	n := startNode(t)
	r := n.Live()
	sub := n.Bus().Subscribe(16)
	defer sub.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the "session": acks the event it sees on the bus
		defer wg.Done()
		for {
			select {
			case sig := <-sub.C():
				h := sig.Envelope.Headers
				if h["correlation-id"] != "tw1" {
					continue
				}
				if h[ditto.HeaderRequestedAcks] != "persisted-ack,carol-ack" {
					t.Errorf("event requested-acks %q", h[ditto.HeaderRequestedAcks])
				}
				ack := ditto.Envelope{Topic: "org.acme/t1/things/twin/acks/persisted-ack", Path: "/", Status: 201,
					Headers: ditto.Headers{"correlation-id": h["correlation-id"], live.HeaderOrigin: "app"}}
				if err := r.Respond(ack, alice); err != nil {
					t.Errorf("ack: %v", err)
				}
				return
			case <-sub.Done():
				return
			}
		}
	}()
	mustSubscribe(t, n, "app", alice, []string{live.KindAcks}, []string{"persisted-ack", "filtered-ack"}, func(ditto.Envelope) {})
	mustSubscribe(t, n, "carol-app", carol, []string{live.KindAcks}, []string{"carol-ack"}, func(ditto.Envelope) {})
	wait, cancel, err := r.ExpectAcks(context.Background(), "org.acme:t1", "tw1", []string{"twin-persisted", "persisted-ack", "carol-ack"})
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	if st, _, b := do(t, n, "alice", "PUT", "/api/2/things/org.acme:t1/attributes/b", `3`, "correlation-id", "tw1"); st != 201 {
		t.Fatalf("twin modify: %d %s", st, b)
	}
	acks := wait(ctxTimeout(t, 5*time.Second))
	wg.Wait()
	if len(acks) != 2 || acks[0].Status != 201 || acks[1].Status != 200 || acks[1].Headers[live.HeaderWeakAck] != "true" {
		t.Errorf("acks %v", acks)
	}
}

func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{"", "a-b,c:d", `["abc","x"]`, "[", " , ,abc", strings.Repeat("a", 101)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		labels, err := live.ParseLabels(s)
		if err != nil {
			return
		}
		for _, l := range labels {
			if !ditto.ValidAckLabel(l) {
				t.Fatalf("invalid label %q accepted from %q", l, s)
			}
		}
	})
}

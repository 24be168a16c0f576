package live

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Routers of several nodes wired together in memory (node/live.go carries
// the same calls over libp2p; node/live_test.go runs them on real nodes).

// openEnforcer grants everything to everybody except the subject "nobody".
type openEnforcer struct{}

func (openEnforcer) Unrestricted(_ string, _ ditto.Pointer, subjects []string, _ ...string) bool {
	return !slices.Contains(subjects, "nobody")
}
func (e openEnforcer) Partial(t string, p ditto.Pointer, subjects []string, perms ...string) bool {
	return e.Unrestricted(t, p, subjects, perms...)
}
func (openEnforcer) View(_ string, _ ditto.Pointer, v any, _ []string) (any, bool) { return v, true }

type fakeEnforcers struct{}

func (fakeEnforcers) EnforcerFor(string, string) (ditto.Enforcer, bool) { return openEnforcer{}, true }

type fakeThings struct{}

func (fakeThings) ThingPolicy(string) (string, bool) { return "ns:pol", true }

// memPeers connects the routers of a memPeers cluster by name.
type memPeers struct {
	self    string
	routers map[string]*Router
	replies int // replies sent by this node
}

func (m *memPeers) Offer(o Offer) {
	for name, r := range m.routers {
		if name != m.self {
			r.Offered(m.self, o)
		}
	}
}

func (m *memPeers) Reply(node string, rep Reply) {
	m.replies++
	if r := m.routers[node]; r != nil {
		r.Replied(m.self, rep)
	}
}

func (m *memPeers) Expect(_ context.Context, e Expectation) {
	for name, r := range m.routers {
		if name != m.self {
			r.Expected(m.self, e)
		}
	}
}

func memCluster(names ...string) (map[string]*Router, map[string]*memPeers) {
	routers := map[string]*Router{}
	peers := map[string]*memPeers{}
	for _, n := range names {
		peers[n] = &memPeers{self: n, routers: routers}
		routers[n] = New(Config{}, Deps{Enforcers: fakeEnforcers{}, Things: fakeThings{}, Peers: peers[n]})
	}
	return routers, peers
}

var sender = ditto.Auth{Subjects: []string{"nginx:sender"}}

func message(cid, timeout string) ditto.Envelope {
	return ditto.Envelope{Topic: "ns/t1/things/live/messages/ask", Path: "/inbox/messages/ask", Value: []byte(`"hi"`),
		Headers: ditto.Headers{ditto.HeaderCorrelationID: cid, ditto.HeaderTimeout: timeout}}
}

func answer(got ditto.Envelope, origin string, status int) ditto.Envelope {
	return ditto.Envelope{Topic: got.Topic, Path: "/outbox/messages/ask", Status: status, Value: []byte(`"` + origin + `"`),
		Headers: ditto.Headers{ditto.HeaderCorrelationID: got.Headers[ditto.HeaderCorrelationID], HeaderOrigin: origin}}
}

func TestPeersFirstAnswerWinsAndIsForgotten(t *testing.T) {
	routers, _ := memCluster("a", "b", "c")
	// b and c answer at once, in the order they get the message; whichever
	// node the origin offers to first wins.
	for _, n := range []string{"b", "c"} {
		r, id := routers[n], "dev-"+n
		if _, err := r.Subscribe(id, sender, []string{KindMessages}, nil, func(env ditto.Envelope) {
			if err := r.Respond(answer(env, id, 200), sender); err != nil {
				t.Errorf("respond on %s: %v", id, err)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, ok, err := routers["a"].Send(ctx, message("m1", "5s"), sender)
	if err != nil || !ok || resp.Status != 200 {
		t.Fatalf("send: %+v %v %v", resp, ok, err)
	}
	if v := string(resp.Value); v != `"dev-b"` && v != `"dev-c"` {
		t.Errorf("answer %s", v)
	}
	for _, n := range []string{"b", "c"} {
		r := routers[n]
		r.mu.Lock()
		left := len(r.remote)
		r.mu.Unlock()
		if left != 0 {
			t.Errorf("%s still remembers %d answered signals", n, left)
		}
	}
}

func TestPeersExpiredSignalIsNotAnswered(t *testing.T) {
	routers, peers := memCluster("a", "b")
	var got []ditto.Envelope
	if _, err := routers["b"].Subscribe("dev", sender, []string{KindMessages}, nil, func(env ditto.Envelope) { got = append(got, env) }); err != nil {
		t.Fatal(err)
	}
	// The origin stopped waiting a millisecond ago.
	routers["b"].Offered("a", Offer{Envelope: message("m2", "1ms"), Await: true, Timeout: -time.Millisecond})
	if len(got) != 1 {
		t.Fatalf("b got %d messages", len(got))
	}
	if err := routers["b"].Respond(answer(got[0], "dev", 200), sender); err != nil {
		t.Fatal(err)
	}
	if peers["b"].replies != 0 {
		t.Errorf("an answer to an expired signal was sent back")
	}
	// Within its time the answer goes back.
	routers["b"].Offered("a", Offer{Envelope: message("m3", "5s"), Await: true, Timeout: 5 * time.Second})
	if err := routers["b"].Respond(answer(got[1], "dev", 200), sender); err != nil {
		t.Fatal(err)
	}
	if peers["b"].replies != 1 {
		t.Errorf("%d answers sent back, want 1", peers["b"].replies)
	}
}

func TestPeersTwinAcks(t *testing.T) {
	routers, _ := memCluster("a", "b")
	b := routers["b"]
	if _, err := b.Subscribe("acker", sender, []string{KindAcks}, []string{"my-ack"}, func(ditto.Envelope) {}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wait, release, err := routers["a"].ExpectAcks(ctx, "ns:t1", "tw1", []string{"twin-persisted", "my-ack"})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	// Every node applies the twin event; b's router stamps it.
	ev := ditto.Signal{EntityID: "ns:t1", PolicyID: "ns:pol", Envelope: ditto.Envelope{Topic: "ns/t1/things/twin/events/modified", Path: "/attributes/a",
		Headers: ditto.Headers{ditto.HeaderCorrelationID: "tw1"}}}
	b.TwinEvent(ev)
	if ev.Envelope.Headers[ditto.HeaderRequestedAcks] != "my-ack" {
		t.Fatalf("event on b: %v", ev.Envelope.Headers)
	}
	ack := ditto.Envelope{Topic: "ns/t1/things/twin/acks/my-ack", Path: "/", Status: 202,
		Headers: ditto.Headers{ditto.HeaderCorrelationID: "tw1", HeaderOrigin: "acker"}}
	if err := b.Respond(ack, sender); err != nil {
		t.Fatal(err)
	}
	acks := wait(ctx)
	if len(acks) != 1 || acks[0].Status != 202 {
		t.Errorf("acks on a: %+v", acks)
	}
}

package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dittonode/dittonode/ditto"
)

// liveCluster starts three real nodes (real Raft on disk, real libp2p on
// loopback) with the users of the live fixtures, creates the fixture
// policy and thing through node 1 and waits until every node applied them.
func liveCluster(t *testing.T) []*Node {
	t.Helper()
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	users := func(c *Config) {
		c.HTTP.Users = map[string]string{}
		for _, u := range []string{"ditto", "device", "alice", "bob", "carol"} {
			c.HTTP.Users[u] = u
		}
	}
	n1 := mustMeshNode(t, t.TempDir(), testSecret, users)
	join := n1.P2PAddrs()
	nodes := []*Node{n1, nil, nil}
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := 1; i < 3; i++ {
		wg.Go(func() {
			nodes[i], errs[i] = meshNode(t, t.TempDir(), testSecret, nil, func(c *Config) { users(c); c.Mesh.Join = join[:1] })
		})
	}
	wg.Wait()
	for _, err := range errs[1:] {
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, func() error { return converged(nodes, 3) })
	owner := newClient(t, n1, "ditto")
	expectStatus(t, owner.do("PUT", "/api/2/policies/ns:pol", `{"entries":{
	 "owner":{"subjects":{"nginx:ditto":{"type":"basic"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]},"policy:/":{"grant":["READ","WRITE"],"revoke":[]},"message:/":{"grant":["READ","WRITE"],"revoke":[]}}},
	 "device":{"subjects":{"nginx:device":{"type":"basic"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]},"message:/":{"grant":["READ","WRITE"],"revoke":[]}}},
	 "all":{"subjects":{"nginx:alice":{"type":"basic"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}},
	 "public":{"subjects":{"nginx:bob":{"type":"basic"}},"resources":{"thing:/attributes/public":{"grant":["READ"],"revoke":[]}}}}}`), http.StatusCreated)
	expectStatus(t, owner.do("PUT", "/api/2/things/ns:t1", `{"policyId":"ns:pol","attributes":{"public":1,"private":2}}`), http.StatusCreated)
	for _, n := range nodes {
		waitFor(t, 5*time.Second, func() error {
			if r := newClient(t, n, "ditto").do("GET", "/api/2/things/ns:t1?consistency=local", ""); r.status != http.StatusOK {
				return fmt.Errorf("thing on %s: %d", n.ID(), r.status)
			}
			return nil
		})
	}
	return nodes
}

// TestLiveAcrossNodes: messages, live commands, live events and the
// acknowledgements of live signals and twin commands cross a three-node
// cluster: the signal enters on node 1, the subscriber sits on node 3 (or
// node 2), and its answer comes back to the caller on node 1.
func TestLiveAcrossNodes(t *testing.T) {
	nodes := liveCluster(t)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	owner := newClient(t, n1, "ditto")
	dev := dialWS(t, n3, "device", "")
	dev.start("START-SEND-MESSAGES")
	dev.start("START-SEND-LIVE-COMMANDS")

	t.Run("message round trip", func(t *testing.T) {
		for _, c := range []struct {
			name, ct, value, wantBody string
			status                    int
		}{
			{"json answer", "application/json", `{"answer":42}`, `{"answer":42}`, http.StatusCreated},
			{"text answer", "text/plain", `"pong"`, "pong", http.StatusOK},
			{"error status", "application/json", `{"reason":"busy"}`, `{"reason":"busy"}`, http.StatusServiceUnavailable},
		} {
			t.Run(c.name, func(t *testing.T) {
				res := goDo(owner, "POST", "/api/2/things/ns:t1/inbox/messages/ask?timeout=10", "hello", "Content-Type", "text/plain", "x-trace", "t-1")
				msg := dev.envelope()
				if msg.Topic != "ns/t1/things/live/messages/ask" || msg.Path != "/inbox/messages/ask" ||
					msg.Headers[ditto.HeaderContentType] != "text/plain" || string(msg.Value) != `"hello"` ||
					msg.Headers[ditto.HeaderOriginator] != "nginx:ditto" || msg.Headers["x-trace"] != "t-1" {
					t.Fatalf("message as received on node 3: %+v %s", msg, msg.Value)
				}
				reply(dev, msg, "/outbox/messages/ask", c.status, c.ct, c.value)
				r := await(t, res)
				if r.status != c.status || string(r.body) != c.wantBody || !strings.HasPrefix(r.header.Get("Content-Type"), c.ct) {
					t.Errorf("HTTP answer on node 1: %d %q %q, want %d %q %q", r.status, r.header.Get("Content-Type"), r.body, c.status, c.ct, c.wantBody)
				}
			})
		}
	})

	t.Run("feature outbox message and claim", func(t *testing.T) {
		res := goDo(owner, "POST", "/api/2/things/ns:t1/features/lamp/outbox/messages/on?timeout=10", `{"level":3}`)
		msg := dev.envelope()
		if msg.Path != "/features/lamp/outbox/messages/on" || string(msg.Value) != `{"level":3}` {
			t.Fatalf("feature message on node 3: %+v %s", msg, msg.Value)
		}
		reply(dev, msg, msg.Path, http.StatusAccepted, "application/json", `"ok"`)
		if r := await(t, res); r.status != http.StatusAccepted || string(r.body) != `"ok"` {
			t.Errorf("feature message answer: %d %s", r.status, r.body)
		}
		// Claim needs no permission to send; carol has none at all.
		res = goDo(newClient(t, n1, "carol"), "POST", "/api/2/things/ns:t1/inbox/claim?timeout=10", `{"token":"x"}`)
		msg = dev.envelope()
		if msg.Topic != "ns/t1/things/live/messages/claim" {
			t.Fatalf("claim on node 3: %+v", msg)
		}
		reply(dev, msg, "/inbox/claim", http.StatusOK, "application/json", `{"granted":true}`)
		if r := await(t, res); r.status != http.StatusOK || string(r.body) != `{"granted":true}` {
			t.Errorf("claim answer: %d %s", r.status, r.body)
		}
	})

	t.Run("live commands", func(t *testing.T) {
		res := goDo(owner, "PUT", "/api/2/things/ns:t1/attributes/x?channel=live&timeout=10", "5")
		cmd := dev.envelope()
		if cmd.Topic != "ns/t1/things/live/commands/modify" || cmd.Path != "/attributes/x" || string(cmd.Value) != "5" {
			t.Fatalf("live command on node 3: %+v %s", cmd, cmd.Value)
		}
		dev.sendEnvelope(ditto.Envelope{Topic: cmd.Topic, Path: cmd.Path, Status: http.StatusNoContent,
			Headers: ditto.Headers{ditto.HeaderCorrelationID: cmd.Headers[ditto.HeaderCorrelationID], ditto.HeaderETag: `"rev:7"`}})
		r := await(t, res)
		if r.status != http.StatusNoContent || r.header.Get("ETag") != `"rev:7"` {
			t.Errorf("live modify through node 1: %d %v %s", r.status, r.header, r.body)
		}
		expectStatus(t, owner.do("GET", "/api/2/things/ns:t1/attributes/x", ""), http.StatusNotFound)

		// A live retrieve answer is reduced to the requester's view on the
		// requester's node.
		res = goDo(newClient(t, n1, "bob"), "GET", "/api/2/things/ns:t1/attributes?channel=live&timeout=10", "")
		cmd = dev.envelope()
		if cmd.Topic != "ns/t1/things/live/commands/retrieve" {
			t.Fatalf("live retrieve on node 3: %+v", cmd)
		}
		reply(dev, cmd, cmd.Path, http.StatusOK, "", `{"public":10,"private":20}`)
		if r := await(t, res); r.status != http.StatusOK || !cmp.Equal(decodeJSON(t, r.body), map[string]any{"public": 10.0}) {
			t.Errorf("bob's live retrieve: %d %s, want only the public attribute", r.status, r.body)
		}
	})

	t.Run("live events reach readers on other nodes only", func(t *testing.T) {
		sender := dialWS(t, n1, "ditto", "")
		alice := dialWS(t, n2, "alice", "")
		alice.start("START-SEND-LIVE-EVENTS")
		carol := dialWS(t, n3, "carol", "")
		carol.start("START-SEND-LIVE-EVENTS")
		sender.send(`{"topic":"ns/t1/things/live/events/modified","headers":{"correlation-id":"xle-1"},"path":"/attributes/temp","value":21.5}`)
		ev := alice.envelope()
		if ev.Topic != "ns/t1/things/live/events/modified" || string(ev.Value) != "21.5" || ev.Headers[ditto.HeaderOriginator] != "nginx:ditto" {
			t.Errorf("alice's live event on node 2: %+v %s", ev, ev.Value)
		}
		if _, leaked := ev.Headers[ditto.HeaderOrigin]; leaked {
			t.Errorf("internal origin header delivered: %v", ev.Headers)
		}
		// carol may not read the thing: her next frame is the reply to a
		// control frame, not the event.
		carol.start("STOP-SEND-LIVE-EVENTS")
	})

	t.Run("SSE message stream on another node", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+n2.HTTPAddr().String()+"/api/2/things/ns:t1/inbox/messages/note", nil)
		req.SetBasicAuth("device", "device")
		req.Header.Set("Accept", "text/event-stream")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("SSE on node 2: %v %v", resp, err)
		}
		defer resp.Body.Close()
		lines := bufio.NewScanner(resp.Body)
		// The stream is registered once its first comment arrived.
		if !lines.Scan() {
			t.Fatal("SSE stream ended")
		}
		r := owner.do("POST", "/api/2/things/ns:t1/inbox/messages/note?timeout=0", "hello", "Content-Type", "text/plain")
		expectStatus(t, r, http.StatusAccepted)
		var got []string
		for lines.Scan() {
			if l := lines.Text(); strings.HasPrefix(l, "event:") || strings.HasPrefix(l, "data:") {
				got = append(got, l)
			}
			if len(got) == 2 {
				break
			}
		}
		if !cmp.Equal(got, []string{"event:note", "data:hello"}) {
			t.Errorf("SSE on node 2 got %q", got)
		}
		// The device session on node 3 got it too.
		if msg := dev.envelope(); msg.Topic != "ns/t1/things/live/messages/note" {
			t.Errorf("device on node 3 got %+v", msg)
		}
	})

	t.Run("custom acks of a message", func(t *testing.T) {
		// audit-ack is declared on node 2, the live-response comes from node 3.
		auditor := dialWS(t, n2, "device", "?declared-acks=audit-ack")
		auditor.start("START-SEND-MESSAGES")
		// carol-ack is declared on node 2 by a session that may not read
		// the messages: it is acknowledged weakly.
		dialWS(t, n2, "carol", "?declared-acks=carol-ack").start("START-SEND-MESSAGES")
		for _, c := range []struct {
			name        string
			auditStatus int
			want        int
		}{
			{"all 2xx", http.StatusOK, http.StatusOK},
			{"one fails", http.StatusInternalServerError, http.StatusFailedDependency},
		} {
			t.Run(c.name, func(t *testing.T) {
				res := goDo(owner, "POST", "/api/2/things/ns:t1/inbox/messages/audit?timeout=10", "hi", "Content-Type", "text/plain",
					"requested-acks", "live-response,audit-ack,carol-ack")
				msg := dev.envelope()
				if msg.Headers[ditto.HeaderRequestedAcks] != "audit-ack,carol-ack" {
					t.Errorf("requested-acks as received on node 3: %q", msg.Headers[ditto.HeaderRequestedAcks])
				}
				reply(dev, msg, "/outbox/messages/audit", http.StatusOK, "text/plain", `"pong"`)
				am := auditor.envelope()
				if am.Topic != "ns/t1/things/live/messages/audit" {
					t.Fatalf("message on node 2: %+v", am)
				}
				auditor.sendEnvelope(ditto.Envelope{Topic: "ns/t1/things/live/acks/audit-ack", Path: "/", Status: c.auditStatus,
					Headers: ditto.Headers{ditto.HeaderCorrelationID: am.Headers[ditto.HeaderCorrelationID]}, Value: json.RawMessage(`"seen"`)})
				r := await(t, res)
				if r.status != c.want {
					t.Fatalf("aggregated status %d, want %d: %s", r.status, c.want, r.body)
				}
				acks := decodeAcks(t, r.body)
				if lr := acks["live-response"]; lr.Status != http.StatusOK || string(lr.Payload) != `"pong"` {
					t.Errorf("live-response %+v", lr)
				}
				if a := acks["audit-ack"]; a.Status != c.auditStatus || string(a.Payload) != `"seen"` {
					t.Errorf("audit-ack %+v", a)
				}
				if w := acks["carol-ack"]; w.Status != http.StatusOK || w.Headers["ditto-weak-ack"] != "true" {
					t.Errorf("carol-ack %+v, want a weak 200", w)
				}
			})
		}
		t.Run("missing ack is 408 in the aggregation", func(t *testing.T) {
			res := goDo(owner, "POST", "/api/2/things/ns:t1/inbox/messages/audit?timeout=1", "hi", "Content-Type", "text/plain",
				"requested-acks", "live-response,audit-ack")
			msg := dev.envelope()
			reply(dev, msg, "/outbox/messages/audit", http.StatusOK, "text/plain", `"pong"`)
			_ = auditor.envelope() // the auditor stays silent
			r := await(t, res)
			acks := decodeAcks(t, r.body)
			if r.status != http.StatusFailedDependency || acks["audit-ack"].Status != http.StatusRequestTimeout || acks["live-response"].Status != http.StatusOK {
				t.Errorf("%d %s", r.status, r.body)
			}
		})
	})

	t.Run("custom acks of twin commands", func(t *testing.T) {
		acker := dialWS(t, n3, "alice", "?declared-acks=my-ack")
		acker.start("START-SEND-EVENTS")
		for _, c := range []struct {
			name      string
			ackStatus int
			want      int
		}{
			{"all acks 2xx", http.StatusOK, http.StatusOK},
			{"custom ack fails", http.StatusConflict, http.StatusFailedDependency},
		} {
			t.Run(c.name, func(t *testing.T) {
				path := "/attributes/" + strings.ReplaceAll(c.name, " ", "-")
				res := goDo(owner, "PUT", "/api/2/things/ns:t1"+path+"?timeout=10", "1", "requested-acks", "twin-persisted,my-ack")
				ev := acker.envelope()
				if ev.Topic != "ns/t1/things/twin/events/created" || ev.Path != path || ev.Headers[ditto.HeaderRequestedAcks] != "my-ack" {
					t.Fatalf("event as received on node 3: %+v", ev)
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
		t.Run("websocket command on node 2", func(t *testing.T) {
			cmdr := dialWS(t, n2, "ditto", "")
			cmdr.send(`{"topic":"ns/t1/things/twin/commands/modify","headers":{"correlation-id":"x-ws-acks-1","requested-acks":["my-ack"]},"path":"/attributes/ws","value":2}`)
			ev := acker.envelope()
			if ev.Path != "/attributes/ws" || ev.Headers[ditto.HeaderRequestedAcks] != "my-ack" {
				t.Fatalf("event on node 3: %+v", ev)
			}
			acker.send(`{"topic":"ns/t1/things/twin/acks/my-ack","headers":{"correlation-id":"x-ws-acks-1"},"path":"/","status":200}`)
			resp := cmdr.envelope()
			if resp.Topic != "ns/t1/things/twin/acks" || resp.Status != http.StatusOK {
				t.Fatalf("aggregated acks on node 2: %+v %s", resp, resp.Value)
			}
		})
		t.Run("a session filtering the event out acknowledges weakly", func(t *testing.T) {
			acker.start("STOP-SEND-EVENTS")
			acker.start("START-SEND-EVENTS?namespaces=other")
			r := owner.do("PUT", "/api/2/things/ns:t1/attributes/filtered?timeout=10", "1", "requested-acks", "my-ack")
			acks := decodeAcks(t, r.body)
			if r.status != http.StatusOK || acks["my-ack"].Headers["ditto-weak-ack"] != "true" {
				t.Errorf("weak ack from node 3: %d %s", r.status, r.body)
			}
		})
	})

	t.Run("no subscriber: 408 after the timeout", func(t *testing.T) {
		began := time.Now()
		r := owner.do("POST", "/api/2/things/ns:t1/outbox/messages/nobody-listens?timeout=1", "x", "Content-Type", "text/plain")
		if r.status != http.StatusAccepted && r.status != http.StatusRequestTimeout {
			t.Errorf("%d %s", r.status, r.body)
		}
		if d := time.Since(began); r.status == http.StatusRequestTimeout && (d < 900*time.Millisecond || d > 5*time.Second) {
			t.Errorf("timed out after %s, want about 1s", d)
		}
	})

	t.Run("a dead peer", func(t *testing.T) {
		if err := n3.Close(); err != nil {
			t.Fatal(err)
		}
		dev2 := dialWS(t, n2, "device", "")
		dev2.start("START-SEND-MESSAGES")
		// Node 1 keeps routing to node 2 while node 3 is gone; messages to
		// node 3 are dropped and counted, never queued without bound.
		for i := range 5 {
			res := goDo(owner, "POST", "/api/2/things/ns:t1/inbox/messages/still-there?timeout=5", "x", "Content-Type", "text/plain")
			msg := dev2.envelope()
			reply(dev2, msg, "/outbox/messages/still-there", http.StatusOK, "text/plain", fmt.Sprintf(`"%d"`, i))
			if r := await(t, res); r.status != http.StatusOK || string(r.body) != fmt.Sprint(i) {
				t.Fatalf("round trip %d through node 2 with node 3 dead: %d %s", i, r.status, r.body)
			}
		}
		// What node 3 could not take was dropped and counted.
		if n1.LiveFramesDropped() == 0 {
			t.Error("no live frame for the dead node 3 was counted as dropped")
		}
		// No link goroutine to the dead peer outlives its failure.
		waitFor(t, 10*time.Second, func() error {
			if n := n1.livePeers.linkTo(n3.ID()); n {
				return fmt.Errorf("node 1 still holds a live link to the dead node 3")
			}
			return nil
		})
	})
}

// TestLiveFrames: frames of /dittonode/live/1 decode to what was encoded;
// truncated and oversized frames are errors.
func TestLiveFrames(t *testing.T) {
	env := ditto.Envelope{Topic: "ns/t1/things/live/messages/ask", Path: "/inbox/messages/ask",
		Headers: ditto.Headers{ditto.HeaderCorrelationID: "c1", ditto.HeaderContentType: "text/plain"}, Value: json.RawMessage(`"hi"`)}
	in := liveWire{Envelope: &env, Sender: "ws-1", Custom: []string{"a"}, Await: true, TimeoutMS: 1500}
	f, err := encodeLiveFrame(liveOffer, in)
	if err != nil {
		t.Fatal(err)
	}
	typ, out, err := readLiveFrame(bufio.NewReader(bytes.NewReader(f)))
	if err != nil || typ != liveOffer {
		t.Fatalf("decode: %v %v", typ, err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip (-in +out):\n%s", diff)
	}
	if _, _, err := readLiveFrame(bufio.NewReader(bytes.NewReader(f[:len(f)-1]))); err == nil {
		t.Error("a truncated frame decoded")
	}
	big := binary.BigEndian.AppendUint32(nil, maxLiveFrame+1)
	if _, _, err := readLiveFrame(bufio.NewReader(bytes.NewReader(append(big, byte(liveOffer))))); err == nil {
		t.Error("an oversized frame was accepted")
	}
}

// TestLiveQueueBounds: a peer that does not take frames fills its queue
// up to the frame and byte bounds; what does not fit is dropped and
// counted, and the sender never waits.
func TestLiveQueueBounds(t *testing.T) {
	p, err := peer.Decode("12D3KooWFjccBUPghgA3zfbfWjfbqNEyru6E5qxX4aM7P7eKfLmM")
	if err != nil {
		t.Fatal(err)
	}
	lp := &livePeers{links: map[peer.ID]*liveLink{}, down: map[peer.ID]time.Time{}}
	// A link whose writer is stuck: nothing drains its queue.
	lp.links[p] = &liveLink{p: p, q: make(chan []byte, 2)}
	for i, want := range []bool{true, true, false} {
		if got := lp.send(p, []byte("frame")); got != want {
			t.Errorf("send %d: queued %v, want %v", i, got, want)
		}
	}
	lp.links[p] = &liveLink{p: p, q: make(chan []byte, liveQueueFrames), bytes: liveQueueBytes - 3}
	if lp.send(p, []byte("frame")) {
		t.Error("a frame beyond the byte bound was queued")
	}
	// A peer marked down is skipped until its backoff ends.
	delete(lp.links, p)
	lp.down[p] = time.Now().Add(time.Hour)
	if lp.send(p, []byte("frame")) {
		t.Error("a frame for a peer that is down was queued")
	}
	if n := lp.Dropped(); n != 3 {
		t.Errorf("dropped %d, want 3", n)
	}
}

// FuzzLiveFrame: any bytes from a peer decode to a frame or an error, and a
// decoded frame encodes and decodes to itself.
func FuzzLiveFrame(f *testing.F) {
	env := ditto.Envelope{Topic: "ns/t1/things/live/messages/ask", Path: "/inbox/messages/ask", Headers: ditto.Headers{"correlation-id": "c"}, Value: json.RawMessage(`1`)}
	for _, fr := range []struct {
		t liveFrameType
		w liveWire
	}{
		{liveOffer, liveWire{Envelope: &env, Await: true, TimeoutMS: 10}},
		{liveReply, liveWire{Envelope: &env, Twin: true}},
		{liveExpect, liveWire{ThingID: "ns:t1", CID: "c", Labels: []string{"a"}, ID: 3}},
		{liveExpectOK, liveWire{ID: 3}},
	} {
		b, err := encodeLiveFrame(fr.t, fr.w)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0, 0, 0, 1, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, w, err := readLiveFrame(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return
		}
		again, err := encodeLiveFrame(typ, w)
		if err != nil {
			return // e.g. an envelope value that is not valid JSON any more
		}
		// Encoding normalises (compact JSON values), so compare from the
		// first re-encoding on.
		typ2, w2, err := readLiveFrame(bufio.NewReader(bytes.NewReader(again)))
		if err != nil || typ2 != typ {
			t.Fatalf("re-encoded frame does not decode: %v %v %v", typ, typ2, err)
		}
		third, err := encodeLiveFrame(typ2, w2)
		if err != nil || !bytes.Equal(third, again) {
			t.Fatalf("frame does not round-trip: %q %q %v", again, third, err)
		}
	})
}

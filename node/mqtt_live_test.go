package node

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/mqtt"
)

// Live signals to and from devices on the embedded broker, with real
// nodes and real MQTT 5 clients (paho.golang over TCP).

// mqttLivePolicy: ditto owns everything; the device dev1 reads and writes
// the thing and its messages; dev2 reads the thing but no messages.
const mqttLivePolicy = `{"entries":{
 "owner":{"subjects":{"nginx:ditto":{"type":"u"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]},"policy:/":{"grant":["READ","WRITE"],"revoke":[]},"message:/":{"grant":["READ","WRITE"],"revoke":[]}}},
 "dev1":{"subjects":{"mqtt:dev1":{"type":"device"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]},"message:/":{"grant":["READ","WRITE"],"revoke":[]}}},
 "dev2":{"subjects":{"mqtt:dev2":{"type":"device"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}}}}`

// mqttDevice connects an MQTT 5 device to a broker listener, retrying
// while its identity has not reached that node yet.
func mqttDevice(t *testing.T, addr, id, user, pw string) (*paho.Client, *inbox) {
	t.Helper()
	var lastErr error
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c, in, err := pahoClient(t, conn, id, user, pw)
		if err == nil {
			return c, in
		}
		lastErr = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("device %s cannot connect to %s: %v", user, addr, lastErr)
	return nil, nil
}

// publishJSON publishes a Ditto Protocol message to ditto/command (QoS 1).
func publishJSON(t *testing.T, c *paho.Client, env ditto.Envelope) {
	t.Helper()
	if err := pahoPublish(c, &paho.Publish{Topic: mqtt.CommandTopic, QoS: 1, Payload: ditto.EncodeEnvelope(env)}); err != nil {
		t.Fatal(err)
	}
}

func decodeEnvelope(t *testing.T, p *paho.Publish) ditto.Envelope {
	t.Helper()
	env, err := ditto.DecodeEnvelope(p.Payload)
	if err != nil {
		t.Fatalf("payload on %s: %v %s", p.Topic, err, p.Payload)
	}
	return env
}

// answer is a device's response to a live signal it received.
func answer(got ditto.Envelope, path string, status int, value string) ditto.Envelope {
	env := ditto.Envelope{Topic: got.Topic, Path: path, Status: status,
		Headers: ditto.Headers{ditto.HeaderCorrelationID: got.Headers[ditto.HeaderCorrelationID], ditto.HeaderContentType: "application/json"}}
	if value != "" {
		env.Value = json.RawMessage(value)
	}
	return env
}

// TestMQTTLiveSingleNode: a message POSTed over HTTP reaches the device
// that subscribed to its inbox topic and may READ it, and the device's
// answer is the HTTP response; a device without READ on messages gets
// nothing; live commands and their responses, live events devices
// publish, and unsubscribing.
func TestMQTTLiveSingleNode(t *testing.T) {
	n, owner := startMQTTNode(t, t.TempDir(), nil)
	expectStatus(t, owner.do("PUT", "/api/2/devices/dev1", `{"password":"secret-1"}`), http.StatusCreated)
	expectStatus(t, owner.do("PUT", "/api/2/devices/dev2", `{"password":"secret-2"}`), http.StatusCreated)
	expectStatus(t, owner.do("PUT", "/api/2/policies/ml:pol", mqttLivePolicy), http.StatusCreated)
	expectStatus(t, owner.do("PUT", "/api/2/things/ml:t1", `{"policyId":"ml:pol","features":{"lamp":{}}}`), http.StatusCreated)
	addr := n.MQTTAddr(mqtt.ListenerTCP)
	dev1, in1 := mqttDevice(t, addr, "dev1-live", "dev1", "secret-1")
	pahoSubscribe(t, dev1, "things/ml:t1/inbox/messages/#", "things/ml:t1/features/+/inbox/messages/#", "things/ml:t1/live/commands/#", mqtt.ReplyPrefix+"dev1-live")
	dev2, in2 := mqttDevice(t, addr, "dev2-live", "dev2", "secret-2")
	pahoSubscribe(t, dev2, "things/+/inbox/#", "things/+/live/#")

	t.Run("message round trip", func(t *testing.T) {
		res := goDo(owner, "POST", "/api/2/things/ml:t1/inbox/messages/ask?timeout=10", "hello", "Content-Type", "text/plain", "x-trace", "t-1")
		p := receive(t, in1, "things/ml:t1/inbox/messages/ask")
		if p.Topic != "things/ml:t1/inbox/messages/ask" {
			t.Fatalf("topic %s", p.Topic)
		}
		msg := decodeEnvelope(t, p)
		if msg.Topic != "ml/t1/things/live/messages/ask" || msg.Path != "/inbox/messages/ask" || string(msg.Value) != `"hello"` ||
			msg.Headers[ditto.HeaderOriginator] != "nginx:ditto" || msg.Headers["x-trace"] != "t-1" || msg.Headers[ditto.HeaderCorrelationID] == "" {
			t.Fatalf("message as the device got it: %+v %s", msg, msg.Value)
		}
		if _, leaked := msg.Headers[ditto.HeaderOrigin]; leaked {
			t.Errorf("internal origin header delivered: %v", msg.Headers)
		}
		publishJSON(t, dev1, answer(msg, "/outbox/messages/ask", http.StatusCreated, `{"answer":42}`))
		if r := await(t, res); r.status != http.StatusCreated || string(r.body) != `{"answer":42}` {
			t.Errorf("HTTP answer: %d %s", r.status, r.body)
		}
	})

	t.Run("feature inbox message", func(t *testing.T) {
		res := goDo(owner, "POST", "/api/2/things/ml:t1/features/lamp/inbox/messages/switch/on?timeout=10", `{"level":3}`)
		msg := decodeEnvelope(t, receive(t, in1, "things/ml:t1/features/lamp/inbox/messages/switch/on"))
		if msg.Path != "/features/lamp/inbox/messages/switch/on" || string(msg.Value) != `{"level":3}` {
			t.Fatalf("feature message: %+v %s", msg, msg.Value)
		}
		publishJSON(t, dev1, answer(msg, "/features/lamp/outbox/messages/switch/on", http.StatusAccepted, `"ok"`))
		if r := await(t, res); r.status != http.StatusAccepted || string(r.body) != `"ok"` {
			t.Errorf("HTTP answer: %d %s", r.status, r.body)
		}
	})

	t.Run("live command round trip", func(t *testing.T) {
		res := goDo(owner, "PUT", "/api/2/things/ml:t1/attributes/x?channel=live&timeout=10", "5")
		cmd := decodeEnvelope(t, receive(t, in1, "things/ml:t1/live/commands/modify/attributes/x"))
		if cmd.Topic != "ml/t1/things/live/commands/modify" || cmd.Path != "/attributes/x" || string(cmd.Value) != "5" {
			t.Fatalf("live command: %+v %s", cmd, cmd.Value)
		}
		publishJSON(t, dev1, answer(cmd, cmd.Path, http.StatusNoContent, ""))
		if r := await(t, res); r.status != http.StatusNoContent {
			t.Errorf("live modify: %d %s", r.status, r.body)
		}
		expectStatus(t, owner.do("GET", "/api/2/things/ml:t1/attributes/x", ""), http.StatusNotFound)
		// dev2 may READ the thing: it got the live command too, but none
		// of the messages before it (no READ on message:/).
		p := receive(t, in2, "things/ml:t1/live/commands/modify")
		if env := decodeEnvelope(t, p); env.Path != "/attributes/x" {
			t.Errorf("dev2's live command %+v", env)
		}
		for _, q := range in2.backlog {
			t.Errorf("dev2 without READ on messages got %s %s", q.Topic, q.Payload)
		}
	})

	t.Run("unanswered message times out", func(t *testing.T) {
		r := owner.do("POST", "/api/2/things/ml:t1/inbox/messages/unheard?timeout=1", "x", "Content-Type", "text/plain")
		// dev1 receives it but does not answer.
		receive(t, in1, "things/ml:t1/inbox/messages/unheard")
		if r.status != http.StatusRequestTimeout {
			t.Errorf("unanswered message: %d %s", r.status, r.body)
		}
	})

	t.Run("response from a device that may not receive the message", func(t *testing.T) {
		res := goDo(owner, "POST", "/api/2/things/ml:t1/inbox/messages/forge?timeout=5", "x", "Content-Type", "text/plain")
		msg := decodeEnvelope(t, receive(t, in1, "things/ml:t1/inbox/messages/forge"))
		// The router refuses it: the MQTT 5 PUBACK says not authorized.
		if err := pahoPublish(dev2, &paho.Publish{Topic: mqtt.CommandTopic, QoS: 1,
			Payload: ditto.EncodeEnvelope(answer(msg, "/outbox/messages/forge", http.StatusOK, `"forged"`))}); err == nil {
			t.Error("dev2's forged answer was acknowledged")
		}
		publishJSON(t, dev1, answer(msg, "/outbox/messages/forge", http.StatusOK, `"real"`))
		if r := await(t, res); r.status != http.StatusOK || string(r.body) != `"real"` {
			t.Errorf("answer %d %s, want dev1's", r.status, r.body)
		}
	})

	t.Run("live event from a device", func(t *testing.T) {
		ws := dialWS(t, n, "ditto", "")
		ws.start("START-SEND-LIVE-EVENTS")
		publishJSON(t, dev1, ditto.Envelope{Topic: "ml/t1/things/live/events/modified", Path: "/attributes/temp", Value: json.RawMessage("21.5"),
			Headers: ditto.Headers{ditto.HeaderCorrelationID: "ev-1"}})
		ev := ws.envelope()
		if ev.Topic != "ml/t1/things/live/events/modified" || ev.Path != "/attributes/temp" || string(ev.Value) != "21.5" ||
			ev.Headers[ditto.HeaderOriginator] != "mqtt:dev1" {
			t.Errorf("live event at the WebSocket: %+v %s", ev, ev.Value)
		}
		// dev2 subscribed to things/+/live/#: it gets the event too.
		if env := decodeEnvelope(t, receive(t, in2, "things/ml:t1/live/events/modified/attributes/temp")); env.Headers[ditto.HeaderCorrelationID] != "ev-1" {
			t.Errorf("dev2's live event %+v", env)
		}
		// dev2 may not send live events (no WRITE): the error goes to its
		// reply topic.
		pahoSubscribe(t, dev2, mqtt.ReplyPrefix+"dev2-live")
		if err := pahoPublish(dev2, &paho.Publish{Topic: mqtt.CommandTopic, QoS: 1, Payload: ditto.EncodeEnvelope(ditto.Envelope{
			Topic: "ml/t1/things/live/events/modified", Path: "/attributes/temp", Value: json.RawMessage("1"),
			Headers: ditto.Headers{ditto.HeaderCorrelationID: "ev-2"}})}); err == nil {
			t.Error("dev2's live event was acknowledged")
		}
		if e := decodeEnvelope(t, receive(t, in2, mqtt.ReplyPrefix+"dev2-live")); e.Status != http.StatusForbidden {
			t.Errorf("dev2's live event: %+v %s", e, e.Value)
		}
	})

	t.Run("a device's own message answered over the WebSocket", func(t *testing.T) {
		ws := dialWS(t, n, "ditto", "")
		ws.start("START-SEND-MESSAGES")
		// The PUBACK of a live signal that waits for its answer follows the
		// answer (as Ditto acknowledges a source message once its requested
		// acknowledgements arrived), so publish from another goroutine.
		acked := make(chan error, 1)
		go func() {
			acked <- pahoPublish(dev1, &paho.Publish{Topic: mqtt.CommandTopic, QoS: 1, Payload: ditto.EncodeEnvelope(ditto.Envelope{
				Topic: "ml/t1/things/live/messages/hello", Path: "/outbox/messages/hello", Value: json.RawMessage(`"hi"`),
				Headers: ditto.Headers{ditto.HeaderCorrelationID: "dm-1", ditto.HeaderContentType: "application/json", "timeout": "10"}})})
		}()
		msg := ws.envelope()
		if msg.Topic != "ml/t1/things/live/messages/hello" || msg.Headers[ditto.HeaderOriginator] != "mqtt:dev1" || string(msg.Value) != `"hi"` {
			t.Fatalf("device message at the WebSocket: %+v %s", msg, msg.Value)
		}
		reply(ws, msg, "/inbox/messages/hello", http.StatusOK, "application/json", `{"back":1}`)
		resp := decodeEnvelope(t, receive(t, in1, mqtt.ReplyPrefix+"dev1-live"))
		if resp.Status != http.StatusOK || string(resp.Value) != `{"back":1}` || resp.Headers[ditto.HeaderCorrelationID] != "dm-1" {
			t.Errorf("answer on the device's reply topic: %+v %s", resp, resp.Value)
		}
		if _, leaked := resp.Headers[ditto.HeaderOrigin]; leaked {
			t.Errorf("internal origin header in the reply: %v", resp.Headers)
		}
		select {
		case err := <-acked:
			if err != nil {
				t.Errorf("PUBACK: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("no PUBACK after the answer")
		}
		ws.start("STOP-SEND-MESSAGES")
	})

	t.Run("requested live-response", func(t *testing.T) {
		res := goDo(owner, "POST", "/api/2/things/ml:t1/inbox/messages/ack?timeout=10", `{"q":1}`, "requested-acks", "live-response", "response-required", "true")
		msg := decodeEnvelope(t, receive(t, in1, "things/ml:t1/inbox/messages/ack"))
		if msg.Headers[ditto.HeaderRequestedAcks] != "" {
			t.Errorf("requested-acks forwarded for the built-in label: %v", msg.Headers)
		}
		publishJSON(t, dev1, answer(msg, "/outbox/messages/ack", http.StatusOK, `{"acked":true}`))
		if r := await(t, res); r.status != http.StatusOK || string(r.body) != `{"acked":true}` {
			t.Errorf("live-response: %d %s", r.status, r.body)
		}
	})

	t.Run("unsubscribed devices get nothing", func(t *testing.T) {
		ctx := t.Context()
		if _, err := dev1.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"things/ml:t1/inbox/messages/#"}}); err != nil {
			t.Fatal(err)
		}
		r := owner.do("POST", "/api/2/things/ml:t1/inbox/messages/gone?timeout=1", "x", "Content-Type", "text/plain")
		if r.status != http.StatusRequestTimeout {
			t.Errorf("message without subscriber: %d %s", r.status, r.body)
		}
		// The live command subscription stays.
		res := goDo(owner, "DELETE", "/api/2/things/ml:t1/attributes/x?channel=live&timeout=10", "")
		cmd := decodeEnvelope(t, receive(t, in1, "things/ml:t1/live/commands/delete"))
		publishJSON(t, dev1, answer(cmd, cmd.Path, http.StatusNoContent, ""))
		if r := await(t, res); r.status != http.StatusNoContent {
			t.Errorf("live delete: %d %s", r.status, r.body)
		}
		for _, q := range in1.backlog {
			if strings.Contains(q.Topic, "/inbox/") {
				t.Errorf("unsubscribed device got %s", q.Topic)
			}
		}
	})

	t.Run("a device whose subjects change loses what it may no longer read", func(t *testing.T) {
		expectStatus(t, owner.do("PUT", "/api/2/devices/dev1", `{"password":"secret-1","subjects":["mqtt:nobody"]}`), http.StatusNoContent)
		r := owner.do("PUT", "/api/2/things/ml:t1/attributes/y?channel=live&timeout=1", "1")
		if r.status != http.StatusRequestTimeout {
			t.Errorf("live command for a device that lost READ: %d %s", r.status, r.body)
		}
		// dev2 still reads the thing: the barrier.
		receive(t, in2, "things/ml:t1/live/commands/modify/attributes/y")
		for _, q := range in1.backlog {
			if strings.Contains(q.Topic, "/attributes/y") {
				t.Errorf("device without READ got %s", q.Topic)
			}
		}
		if st := n.mqtt.Stats(); st["liveStale"].(int64) < 1 {
			t.Errorf("the stale registration was not noticed: %v", st)
		}
		select {
		case q := <-in1.ch:
			t.Errorf("device without READ got %s %s", q.Topic, q.Payload)
		default:
		}
	})
}

// TestMQTTLiveAcrossNodes: a message posted over HTTP on node 1 is
// answered by an MQTT device connected to node 2's broker; a live command
// on node 3 too.
func TestMQTTLiveAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	withMQTT := func(c *Config) {
		c.MQTT.Addr = "127.0.0.1:0"
		c.MQTT.AuthFailures = 1000
		c.HTTP.DeviceAdmins = []string{"nginx:ditto"}
		c.Connectivity.DeviceHashCost = 4
	}
	n1 := mustMeshNode(t, t.TempDir(), testSecret, withMQTT)
	join := n1.P2PAddrs()
	nodes := []*Node{n1, nil, nil}
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := 1; i < 3; i++ {
		wg.Go(func() {
			nodes[i], errs[i] = meshNode(t, t.TempDir(), testSecret, nil, func(c *Config) { withMQTT(c); c.Mesh.Join = join[:1] })
		})
	}
	wg.Wait()
	for _, err := range errs[1:] {
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, func() error { return converged(nodes, 3) })
	n2, n3 := nodes[1], nodes[2]
	owner := newClient(t, n1, "ditto")
	expectStatus(t, owner.do("PUT", "/api/2/devices/dev1", `{"password":"secret-1"}`), http.StatusCreated)
	expectStatus(t, owner.do("PUT", "/api/2/devices/dev2", `{"password":"secret-2"}`), http.StatusCreated)
	expectStatus(t, owner.do("PUT", "/api/2/policies/ml:pol", mqttLivePolicy), http.StatusCreated)
	expectStatus(t, owner.do("PUT", "/api/2/things/ml:t1", `{"policyId":"ml:pol"}`), http.StatusCreated)
	for _, n := range nodes {
		waitFor(t, 5*time.Second, func() error {
			if r := newClient(t, n, "ditto").do("GET", "/api/2/things/ml:t1?consistency=local", ""); r.status != http.StatusOK {
				return fmt.Errorf("thing on %s: %d", n.ID(), r.status)
			}
			return nil
		})
	}
	dev1, in1 := mqttDevice(t, n2.MQTTAddr(mqtt.ListenerTCP), "dev1-n2", "dev1", "secret-1")
	pahoSubscribe(t, dev1, "things/ml:t1/inbox/#", "things/ml:t1/live/commands/#")
	dev2, in2 := mqttDevice(t, n3.MQTTAddr(mqtt.ListenerTCP), "dev2-n3", "dev2", "secret-2")
	pahoSubscribe(t, dev2, "things/#")

	t.Run("an MQTT device on node 2 answers a message posted on node 1", func(t *testing.T) {
		res := goDo(owner, "POST", "/api/2/things/ml:t1/inbox/messages/ask?timeout=10", "hello", "Content-Type", "text/plain")
		msg := decodeEnvelope(t, receive(t, in1, "things/ml:t1/inbox/messages/ask"))
		if msg.Topic != "ml/t1/things/live/messages/ask" || string(msg.Value) != `"hello"` || msg.Headers[ditto.HeaderOriginator] != "nginx:ditto" {
			t.Fatalf("message on node 2: %+v %s", msg, msg.Value)
		}
		publishJSON(t, dev1, answer(msg, "/outbox/messages/ask", http.StatusCreated, `{"answer":42}`))
		if r := await(t, res); r.status != http.StatusCreated || string(r.body) != `{"answer":42}` {
			t.Errorf("HTTP answer on node 1: %d %s", r.status, r.body)
		}
	})

	t.Run("live command on node 3 answered on node 2", func(t *testing.T) {
		res := goDo(newClient(t, n3, "ditto"), "PUT", "/api/2/things/ml:t1/attributes/x?channel=live&timeout=10", "5")
		cmd := decodeEnvelope(t, receive(t, in1, "things/ml:t1/live/commands/modify/attributes/x"))
		publishJSON(t, dev1, answer(cmd, cmd.Path, http.StatusNoContent, ""))
		if r := await(t, res); r.status != http.StatusNoContent {
			t.Errorf("live modify on node 3: %d %s", r.status, r.body)
		}
		// dev2 on node 3 (thing READ, no message READ) got the command
		// but not the message before it.
		receive(t, in2, "things/ml:t1/live/commands/modify/attributes/x")
		for _, q := range in2.backlog {
			if strings.Contains(q.Topic, "/inbox/") {
				t.Errorf("dev2 without READ on messages got %s", q.Topic)
			}
		}
		_ = dev2
	})
}

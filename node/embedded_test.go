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

	"github.com/eclipse/paho.golang/paho"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/mqtt"
	"github.com/dittonode/dittonode/services/connectivity"
)

// The embedded broker as the Ditto connection "embedded", with a real node
// and real MQTT 5 devices (paho.golang): its default definition, a source
// with a JavaScript mapper, a filtered target, closing and opening, and the
// definition surviving a restart.

// embeddedPolicy: the device dev1 reads and writes the thing, dev2 reads
// only the lamp feature, and the embedded target's integration subject
// reads everything.
const embeddedPolicy = `{"entries":{
 "owner":{"subjects":{"nginx:ditto":{"type":"u"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]},"policy:/":{"grant":["READ","WRITE"],"revoke":[]}}},
 "dev1":{"subjects":{"mqtt:dev1":{"type":"device"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]}}},
 "dev2":{"subjects":{"mqtt:dev2":{"type":"device"}},"resources":{"thing:/features/lamp":{"grant":["READ"],"revoke":[]}}},
 "targets":{"subjects":{"integration:embedded":{"type":"connection"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}}}}`

// embeddedScript turns {"temp":n} published to devices/{name}/telemetry
// into a modify of the attribute temp of thing emb:{name}.
const embeddedScript = `function mapToDittoProtocolMsg(headers, textPayload, bytePayload, contentType) {
  var name = headers['mqtt.topic'].split('/')[1];
  var data = JSON.parse(textPayload);
  return Ditto.buildDittoProtocolMsg('emb', name, 'things', 'twin', 'commands', 'modify',
    '/attributes/temp', {'correlation-id': headers['correlation-id']}, data.temp);
}`

// embeddedDef is the embedded connection with one source and one target of
// the user's.
func embeddedDef() string {
	def := map[string]any{
		"id": "embedded", "connectionType": "mqtt-5", "connectionStatus": "open", "uri": connectivity.EmbeddedURI,
		"mappingDefinitions": map[string]any{"telemetry": map[string]any{"mappingEngine": "JavaScript", "options": map[string]any{"incomingScript": embeddedScript}}},
		"sources": []any{map[string]any{
			"addresses": []any{"devices/+/telemetry"}, "qos": 1,
			"authorizationContext": []any{"mqtt:{{ header:mqtt.username }}"},
			"payloadMapping":       []any{"telemetry"},
			"replyTarget":          map[string]any{"enabled": true, "address": "{{ header:reply-to }}"},
		}},
		"targets": []any{map[string]any{
			"address": "devices/{{ thing:name }}/events", "qos": 1,
			"topics":               []any{"_/_/things/twin/events?filter=gt(attributes/temp,20)"},
			"authorizationContext": []any{"integration:embedded"},
			"headerMapping":        map[string]any{"thing-id": "{{ thing:id }}"},
		}},
	}
	b, _ := json.Marshal(def)
	return string(b)
}

func embeddedNode(t *testing.T, dir string) (*Node, client) {
	t.Helper()
	return startMQTTNode(t, dir, func(c *Config) {
		c.Connectivity.Admins = []string{"nginx:ditto"}
		c.Connectivity.Runtime.ReconcileInterval = 100 * time.Millisecond
	})
}

// publishProps publishes at QoS 1 and returns the PUBACK's reason code.
func publishProps(t *testing.T, c *paho.Client, p *paho.Publish) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p.QoS = 1
	resp, err := c.Publish(ctx, p)
	if resp != nil {
		return resp.ReasonCode
	}
	if err != nil {
		t.Fatalf("publish %s: %v", p.Topic, err)
	}
	return 0
}

func waitStatus(t *testing.T, c client, want string) {
	t.Helper()
	waitFor(t, 15*time.Second, func() error {
		r := c.do("GET", "/api/2/connections/embedded/status", "")
		if r.status != 200 || r.json(t)["liveStatus"] != want {
			return fmt.Errorf("status %d %s", r.status, r.body)
		}
		return nil
	})
}

func TestEmbeddedConnection(t *testing.T) {
	dir := t.TempDir()
	n, c := embeddedNode(t, dir)

	t.Run("default definition", func(t *testing.T) {
		r := c.do("GET", "/api/2/connections/embedded", "")
		expectStatus(t, r, 200)
		m := r.json(t)
		if m["connectionType"] != "mqtt-5" || m["connectionStatus"] != "open" || m["uri"] != connectivity.EmbeddedURI {
			t.Fatalf("default embedded connection: %s", r.body)
		}
		if r := c.do("GET", "/api/2/connections?ids-only=true", ""); string(r.body) != `["embedded"]` {
			t.Errorf("ids-only %s", r.body)
		}
		waitStatus(t, c, "open")
		r = c.do("DELETE", "/api/2/connections/embedded", "")
		expectStatus(t, r, http.StatusConflict)
		if r.json(t)["error"] != "connectivity:connection.notdeletable" {
			t.Errorf("delete: %s", r.body)
		}
	})

	t.Run("invalid definitions", func(t *testing.T) {
		cases := []struct{ name, method, path, def string }{
			{"embedded scheme elsewhere", "POST", "/api/2/connections", `{"id":"x","connectionType":"mqtt-5","connectionStatus":"open","uri":"embedded://localhost:1883"}`},
			{"reserved id other type", "PUT", "/api/2/connections/embedded", `{"connectionType":"mqtt","connectionStatus":"open","uri":"tcp://h:1"}`},
			{"source on convention topics", "PUT", "/api/2/connections/embedded", `{"connectionType":"mqtt-5","connectionStatus":"open","uri":"embedded://localhost:1883","sources":[{"addresses":["things/#"],"qos":1,"authorizationContext":["mqtt:x"]}]}`},
			{"target on convention topics", "PUT", "/api/2/connections/embedded", `{"connectionType":"mqtt-5","connectionStatus":"open","uri":"embedded://localhost:1883","targets":[{"address":"ditto/x","topics":["_/_/things/twin/events"],"authorizationContext":["mqtt:x"]}]}`},
			{"live target", "PUT", "/api/2/connections/embedded", `{"connectionType":"mqtt-5","connectionStatus":"open","uri":"embedded://localhost:1883","targets":[{"address":"x","topics":["_/_/things/live/messages"],"authorizationContext":["mqtt:x"]}]}`},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c.t = t
				r := c.do(tc.method, tc.path, tc.def)
				expectStatus(t, r, 400)
				if r.json(t)["error"] != "connectivity:connection.configuration.invalid" {
					t.Errorf("%s", r.body)
				}
			})
		}
		c.t = t
	})

	expectStatus(t, c.do("PUT", "/api/2/devices/dev1", `{"password":"secret-1"}`), 201)
	expectStatus(t, c.do("PUT", "/api/2/devices/dev2", `{"password":"secret-2"}`), 201)
	expectStatus(t, c.do("PUT", "/api/2/policies/emb:pol", embeddedPolicy), 201)
	expectStatus(t, c.do("PUT", "/api/2/things/emb:dev1", `{"policyId":"emb:pol","attributes":{"temp":0},"features":{"lamp":{}}}`), 201)
	expectStatus(t, c.do("PUT", "/api/2/connections/embedded", embeddedDef()), 204)
	waitStatus(t, c, "open")
	waitFor(t, 15*time.Second, func() error { // the new definition's runner took over
		r := c.do("GET", "/api/2/connections/embedded/status", "")
		if !strings.Contains(string(r.body), "devices/+/telemetry") {
			return fmt.Errorf("%s", r.body)
		}
		return nil
	})

	addr := n.MQTTAddr(mqtt.ListenerTCP)
	dev1, in1 := mqttDevice(t, addr, "emb-dev1", "dev1", "secret-1")
	pahoSubscribe(t, dev1, "devices/dev1/events", "replies/dev1", mqtt.ReplyPrefix+"emb-dev1")
	dev2, in2 := mqttDevice(t, addr, "emb-dev2", "dev2", "secret-2")
	pahoSubscribe(t, dev2, "devices/#", "replies/dev2")

	temp := func() string {
		return string(c.do("GET", "/api/2/things/emb:dev1/attributes/temp", "").body)
	}

	t.Run("source with JavaScript mapper", func(t *testing.T) {
		rc := publishProps(t, dev1, &paho.Publish{Topic: "devices/dev1/telemetry", Payload: []byte(`{"temp":21.5}`),
			Properties: &paho.PublishProperties{ResponseTopic: "replies/dev1", CorrelationData: []byte("c-21")}})
		if rc != 0 {
			t.Fatalf("PUBACK reason 0x%x", rc)
		}
		// The PUBACK followed the command: the change is there.
		if got := temp(); got != "21.5" {
			t.Fatalf("temp after PUBACK: %s", got)
		}
		reply := receive(t, in1, "replies/dev1")
		env := decodeEnvelope(t, reply)
		if env.Status != http.StatusNoContent || env.Topic != "emb/dev1/things/twin/commands/modify" || string(reply.Properties.CorrelationData) != "c-21" {
			t.Errorf("reply %+v correlation %q", env, reply.Properties.CorrelationData)
		}
	})

	t.Run("target delivers filtered events to readers", func(t *testing.T) {
		p := receive(t, in1, "devices/dev1/events")
		ev := decodeEnvelope(t, p)
		if ev.Topic != "emb/dev1/things/twin/events/modified" || ev.Path != "/attributes/temp" || string(ev.Value) != "21.5" {
			t.Fatalf("event %+v %s", ev, ev.Value)
		}
		if p.Properties == nil || p.Properties.User.Get("thing-id") != "emb:dev1" {
			t.Errorf("header mapping: user properties %+v", p.Properties)
		}
		// 5 does not pass the filter; 30 does and is the next event.
		publishProps(t, dev1, &paho.Publish{Topic: "devices/dev1/telemetry", Payload: []byte(`{"temp":5}`)})
		publishProps(t, dev1, &paho.Publish{Topic: "devices/dev1/telemetry", Payload: []byte(`{"temp":30}`)})
		ev = decodeEnvelope(t, receive(t, in1, "devices/dev1/events"))
		if string(ev.Value) != "30" {
			t.Fatalf("next event %+v %s", ev, ev.Value)
		}
		// dev2 subscribed to devices/# but may not read attributes: the
		// target published to dev1 after deciding on dev2, so anything for
		// dev2 would be there by now.
		select {
		case p := <-in2.ch:
			t.Fatalf("dev2 got %s: %s", p.Topic, p.Payload)
		default:
		}
	})

	t.Run("a device acts as itself", func(t *testing.T) {
		// dev2 may not write the thing: the command is denied with its
		// subjects and the error goes back to dev2 only.
		publishProps(t, dev2, &paho.Publish{Topic: "devices/dev1/telemetry", Payload: []byte(`{"temp":99}`),
			Properties: &paho.PublishProperties{ResponseTopic: "replies/dev2"}})
		env := decodeEnvelope(t, receive(t, in2, "replies/dev2"))
		if env.Status < 400 {
			t.Fatalf("dev2's write was not denied: %+v %s", env, env.Value)
		}
		if got := temp(); got != "30" {
			t.Errorf("temp %s after a denied write", got)
		}
	})

	t.Run("default conventions next to the sources", func(t *testing.T) {
		if rc := publishProps(t, dev1, &paho.Publish{Topic: "things/emb:dev1/attributes/temp", Payload: []byte("25")}); rc != 0 {
			t.Fatalf("PUBACK 0x%x", rc)
		}
		if got := temp(); got != "25" {
			t.Fatalf("temp %s", got)
		}
		if string(decodeEnvelope(t, receive(t, in1, "devices/dev1/events")).Value) != "25" {
			t.Error("no event for the value published on the convention topic")
		}
	})

	t.Run("metrics and logs", func(t *testing.T) {
		r := c.do("GET", "/api/2/connections/embedded/metrics", "")
		expectStatus(t, r, 200)
		if !strings.Contains(string(r.body), `"consumed":{"failure":{"PT1H":0,"PT1M":0,"PT24H":0},"success":{"PT1H":4`) {
			t.Errorf("metrics %s", r.body)
		}
		r = c.do("GET", "/api/2/connections/embedded/logs", "")
		expectStatus(t, r, 200)
		if !strings.Contains(string(r.body), "devices/dev1/telemetry") {
			t.Errorf("logs %s", r.body)
		}
	})

	t.Run("closed", func(t *testing.T) {
		expectStatus(t, c.doText("POST", "/api/2/connections/embedded/command", "connectivity.commands:closeConnection"), 200)
		waitStatus(t, c, "closed")
		// The convention topics refuse commands: an error on the reply
		// topic and reason code 0x89 (server busy) in the PUBACK.
		rc := publishProps(t, dev1, &paho.Publish{Topic: mqtt.CommandTopic, Payload: ditto.EncodeEnvelope(ditto.Envelope{
			Topic: "emb/dev1/things/twin/commands/modify", Path: "/attributes/temp", Value: json.RawMessage("1")})})
		if rc != 0x89 {
			t.Errorf("PUBACK 0x%x for a command while closed", rc)
		}
		env := decodeEnvelope(t, receive(t, in1, mqtt.ReplyPrefix+"emb-dev1"))
		if env.Status != http.StatusServiceUnavailable || !strings.Contains(string(env.Value), "connectivity:connection.closed") {
			t.Errorf("error while closed: %+v %s", env, env.Value)
		}
		publishProps(t, dev1, &paho.Publish{Topic: "things/emb:dev1/attributes/temp", Payload: []byte("2")})
		// The source is gone: the publish is ordinary pub/sub, which dev2
		// (subscribed to devices/#) receives as is.
		publishProps(t, dev1, &paho.Publish{Topic: "devices/dev1/telemetry", Payload: []byte(`{"temp":77}`)})
		if p := receive(t, in2, "devices/dev1/telemetry"); string(p.Payload) != `{"temp":77}` {
			t.Errorf("plain publish while closed: %s", p.Payload)
		}
		if got := temp(); got != "25" {
			t.Errorf("temp %s changed while the connection was closed", got)
		}
		expectStatus(t, c.doText("POST", "/api/2/connections/embedded/command", "connectivity.commands:openConnection"), 200)
		waitStatus(t, c, "open")
		waitFor(t, 10*time.Second, func() error {
			publishProps(t, dev1, &paho.Publish{Topic: "devices/dev1/telemetry", Payload: []byte(`{"temp":40}`)})
			if got := temp(); got != "40" {
				return fmt.Errorf("temp %s", got)
			}
			return nil
		})
	})

	// Restart: the edited definition is persisted, and both the default
	// conventions and the user's source work again.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n, c = embeddedNode(t, dir)
	t.Run("after restart", func(t *testing.T) {
		r := c.do("GET", "/api/2/connections/embedded", "")
		expectStatus(t, r, 200)
		if !strings.Contains(string(r.body), "devices/+/telemetry") {
			t.Fatalf("definition after restart: %s", r.body)
		}
		waitStatus(t, c, "open")
		dev1, in1 := mqttDevice(t, n.MQTTAddr(mqtt.ListenerTCP), "emb-dev1b", "dev1", "secret-1")
		pahoSubscribe(t, dev1, "things/emb:dev1/events/#", "devices/dev1/events")
		if rc := publishProps(t, dev1, &paho.Publish{Topic: "things/emb:dev1/attributes/temp", Payload: []byte("50")}); rc != 0 {
			t.Fatalf("PUBACK 0x%x", rc)
		}
		if got := temp(); got != "50" {
			t.Fatalf("temp %s", got)
		}
		if ev := decodeEnvelope(t, receive(t, in1, "things/emb:dev1/events/attributes/temp")); string(ev.Value) != "50" {
			t.Errorf("convention event %s", ev.Value)
		}
		waitFor(t, 10*time.Second, func() error {
			publishProps(t, dev1, &paho.Publish{Topic: "devices/dev1/telemetry", Payload: []byte(`{"temp":60}`)})
			if got := temp(); got != "60" {
				return fmt.Errorf("temp %s", got)
			}
			return nil
		})
		if ev := decodeEnvelope(t, receive(t, in1, "devices/dev1/events")); string(ev.Value) != "50" && string(ev.Value) != "60" {
			t.Errorf("target event %s", ev.Value)
		}
	})
}

// TestEmbeddedConnectionCluster: the embedded connection runs on every
// node for the devices connected there: a device on node 3 changes the
// twin through the user's source, a device on node 2 gets the target's
// event, and each node reports its own status and metrics.
func TestEmbeddedConnectionCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	withMQTT := func(c *Config) {
		c.MQTT.Addr = "127.0.0.1:0"
		c.MQTT.AuthFailures = 1000
		c.HTTP.DeviceAdmins = []string{"nginx:ditto"}
		c.Connectivity.DeviceHashCost = 4
		c.Connectivity.Admins = []string{"nginx:ditto"}
		c.Connectivity.Runtime.ReconcileInterval = 100 * time.Millisecond
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
	c := newClient(t, n1, "ditto")
	expectStatus(t, c.do("PUT", "/api/2/devices/dev1", `{"password":"secret-1"}`), http.StatusCreated)
	expectStatus(t, c.do("PUT", "/api/2/policies/emb:pol", embeddedPolicy), http.StatusCreated)
	expectStatus(t, c.do("PUT", "/api/2/things/emb:dev1", `{"policyId":"emb:pol","attributes":{"temp":0}}`), http.StatusCreated)
	expectStatus(t, c.do("PUT", "/api/2/connections/embedded", embeddedDef()), http.StatusNoContent)
	for _, n := range nodes {
		nc := newClient(t, n, "ditto")
		waitFor(t, 15*time.Second, func() error {
			r := nc.do("GET", "/api/2/connections/embedded/status", "")
			m := r.json(t)
			if r.status != 200 || m["liveStatus"] != "open" || !strings.Contains(string(r.body), `"client":"`+n.ID()+`"`) ||
				!strings.Contains(string(r.body), "devices/+/telemetry") {
				return fmt.Errorf("status on %s: %d %s", n.ID(), r.status, r.body)
			}
			return nil
		})
	}
	n2, n3 := nodes[1], nodes[2]
	watcher, inW := mqttDevice(t, n2.MQTTAddr(mqtt.ListenerTCP), "emb-watch-n2", "dev1", "secret-1")
	pahoSubscribe(t, watcher, "devices/dev1/events")
	writer, _ := mqttDevice(t, n3.MQTTAddr(mqtt.ListenerTCP), "emb-write-n3", "dev1", "secret-1")
	if rc := publishProps(t, writer, &paho.Publish{Topic: "devices/dev1/telemetry", Payload: []byte(`{"temp":42}`)}); rc != 0 {
		t.Fatalf("PUBACK 0x%x", rc)
	}
	if r := c.do("GET", "/api/2/things/emb:dev1/attributes/temp", ""); string(r.body) != "42" {
		t.Fatalf("temp %d %s", r.status, r.body)
	}
	if ev := decodeEnvelope(t, receive(t, inW, "devices/dev1/events")); string(ev.Value) != "42" {
		t.Errorf("event on node 2: %+v %s", ev, ev.Value)
	}
	consumed := func(n *Node) string {
		r := newClient(t, n, "ditto").do("GET", "/api/2/connections/embedded/metrics", "")
		var m struct {
			Metrics struct {
				Inbound struct {
					Consumed struct {
						Success map[string]any `json:"success"`
					} `json:"consumed"`
				} `json:"inbound"`
			} `json:"connectionMetrics"`
		}
		_ = json.Unmarshal(r.body, &m)
		return fmt.Sprint(m.Metrics.Inbound.Consumed.Success["PT1H"])
	}
	if got2, got3 := consumed(n2), consumed(n3); got2 != "0" || got3 != "1" {
		t.Errorf("consumed on node 2: %s, on node 3: %s (each node counts its own devices)", got2, got3)
	}
}

package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// startMosquitto runs a real mosquitto broker on a free loopback port and
// returns its address. Without mosquitto the test is skipped, unless
// DITTONODE_REQUIRE_MOSQUITTO=1 (CI), where that is a failure.
func startMosquitto(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr == nil {
			bin = "/usr/sbin/mosquitto"
		} else {
			if os.Getenv("DITTONODE_REQUIRE_MOSQUITTO") == "1" {
				t.Fatal("mosquitto is required (DITTONODE_REQUIRE_MOSQUITTO=1) but not installed")
			}
			t.Skip("mosquitto is not installed")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\npersistence false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto does not listen: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// device is an MQTT client on the external broker, as a device or a
// backend system would use it.
type device struct {
	t  testing.TB
	cl mqtt.Client
	mu sync.Mutex
	// got collects messages by topic.
	got map[string][][]byte
}

func newDevice(t testing.TB, broker, id string) *device {
	t.Helper()
	d := &device{t: t, got: map[string][][]byte{}}
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + broker).SetClientID(id).SetCleanSession(true)
	d.cl = mqtt.NewClient(opts)
	if tok := d.cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	t.Cleanup(func() { d.cl.Disconnect(100) })
	return d
}

func (d *device) subscribe(filter string) {
	d.t.Helper()
	tok := d.cl.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		d.mu.Lock()
		d.got[m.Topic()] = append(d.got[m.Topic()], append([]byte(nil), m.Payload()...))
		d.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		d.t.Fatalf("subscribe: %v", tok.Error())
	}
}

func (d *device) publish(topic, payload string) {
	d.t.Helper()
	tok := d.cl.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		d.t.Fatalf("publish: %v", tok.Error())
	}
}

func (d *device) messages(topic string) [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([][]byte(nil), d.got[topic]...)
}

// connNode starts a node whose user ditto manages connections.
func connNode(t *testing.T) (*Node, client) {
	n := startNode(t, t.TempDir(), func(c *Config) {
		c.Raft.NoSync = true
		c.Connectivity.Admins = []string{"nginx:ditto"}
		c.Connectivity.Runtime.ReconcileInterval = 100 * time.Millisecond
	})
	return n, newClient(t, n, "ditto")
}

// thingPolicy lets the HTTP user and the device integration subject read
// and write; the subject integration:nobody is granted nothing.
const thingWithPolicy = `{"_policy":{"entries":{
  "owner":{"subjects":{"nginx:ditto":{"type":"basic"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]},"policy:/":{"grant":["READ","WRITE"],"revoke":[]},"message:/":{"grant":["READ","WRITE"],"revoke":[]}}},
  "devices":{"subjects":{"integration:devices":{"type":"connection"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]},"message:/":{"grant":["READ","WRITE"],"revoke":[]}}},
  "partial":{"subjects":{"integration:partial":{"type":"connection"}},"resources":{"thing:/attributes/public":{"grant":["READ"],"revoke":[]}}}
}},"attributes":{"counter":0,"public":"p","secret":"s"}}`

func waitLive(t *testing.T, c client, id string) {
	t.Helper()
	waitFor(t, 15*time.Second, func() error {
		r := c.do("GET", "/api/2/connections/"+id+"/status", "")
		if r.status != 200 {
			return fmt.Errorf("status %d %s", r.status, r.body)
		}
		if ls := r.json(t)["liveStatus"]; ls != "open" {
			return fmt.Errorf("liveStatus %v: %s", ls, r.body)
		}
		return nil
	})
}

func attr(t *testing.T, c client, thing, name string) any {
	r := c.do("GET", "/api/2/things/"+thing+"/attributes/"+name, "")
	if r.status != 200 {
		return nil
	}
	var v any
	_ = json.Unmarshal(r.body, &v)
	return v
}

// TestConnectionsMQTT: messages on an external mosquitto become twin
// changes through an mqtt and an mqtt-5 connection (with enforcement), and
// twin events reach the broker through filtered, authorized targets.
func TestConnectionsMQTT(t *testing.T) {
	broker := startMosquitto(t)
	_, c := connNode(t)
	for _, typ := range []string{"mqtt", "mqtt-5"} {
		t.Run(typ, func(t *testing.T) {
			c.t = t
			id := "c-" + strings.ReplaceAll(typ, "-", "")
			thing := "org.test:" + id
			expectStatus(t, c.do("PUT", "/api/2/things/"+thing, thingWithPolicy), 201)
			def := fmt.Sprintf(`{"id":%q,"connectionType":%q,"connectionStatus":"open","uri":"tcp://%s",
  "sources":[{"addresses":["%s/devices/+/twin"],"qos":1,"authorizationContext":["integration:devices"],
     "enforcement":{"input":"{{ source:address }}","filters":["%s/devices/{{ thing:id }}/twin"]},
     "replyTarget":{"enabled":true,"address":"%s/replies/{{ header:correlation-id }}","expectedResponseTypes":["response","error"]}}],
  "targets":[
    {"address":"%s/announce","topics":["_/_/connections/announcements"],"authorizationContext":["integration:devices"],"qos":1},
    {"address":"%s/nobody/{{ thing:id }}","topics":["_/_/things/twin/events"],"authorizationContext":["integration:nobody"],"qos":1},
    {"address":"%s/partial/{{ thing:id }}","topics":["_/_/things/twin/events"],"authorizationContext":["integration:partial"],"qos":1},
    {"address":"%s/events/{{ thing:id }}/{{ topic:action | fn:upper() }}","topics":["_/_/things/twin/events?namespaces=org.test&filter=gt(attributes/counter,42)&extraFields=attributes/public"],
     "authorizationContext":["integration:devices"],"qos":1}]}`, id, typ, broker, id, id, id, id, id, id, id)
			r := c.do("POST", "/api/2/connections", def)
			expectStatus(t, r, 201)
			if loc := r.header.Get("Location"); !strings.HasPrefix(loc, "http://127.0.0.1:") || !strings.HasSuffix(loc, "/api/2/connections/"+id) {
				t.Errorf("Location %q", loc)
			}
			waitLive(t, c, id)

			app := newDevice(t, broker, id+"-app")
			app.subscribe(id + "/#")
			dev := newDevice(t, broker, id+"-dev")
			cmd := func(v int, cid string) string {
				return fmt.Sprintf(`{"topic":"org.test/%s/things/twin/commands/modify","headers":{"correlation-id":%q},"path":"/attributes/counter","value":%d}`, id, cid, v)
			}
			// Below the filter: a twin change, no event on the target.
			dev.publish(id+"/devices/"+thing+"/twin", cmd(10, "cid-10"))
			waitFor(t, 10*time.Second, func() error {
				if v := attr(t, c, thing, "counter"); fmt.Sprint(v) != "10" {
					return fmt.Errorf("counter %v", v)
				}
				return nil
			})
			// The reply target gets the response.
			waitFor(t, 10*time.Second, func() error {
				if len(app.messages(id+"/replies/cid-10")) == 0 {
					return fmt.Errorf("no reply yet")
				}
				return nil
			})
			var reply map[string]any
			_ = json.Unmarshal(app.messages(id + "/replies/cid-10")[0], &reply)
			if reply["status"] != float64(204) {
				t.Errorf("reply %v", reply)
			}
			// Enforcement: a device may not change another device's thing.
			dev.publish(id+"/devices/org.test:other/twin", cmd(99, "cid-99"))
			waitFor(t, 10*time.Second, func() error {
				if len(app.messages(id+"/replies/cid-99")) == 0 {
					return fmt.Errorf("no error reply yet")
				}
				return nil
			})
			var rej map[string]any
			_ = json.Unmarshal(app.messages(id + "/replies/cid-99")[0], &rej)
			if rej["status"] != float64(400) || !strings.Contains(string(app.messages(id + "/replies/cid-99")[0]), "enforcement") {
				t.Errorf("enforcement reply %s", app.messages(id + "/replies/cid-99")[0])
			}
			// Above the filter: the event arrives, with the extra field.
			dev.publish(id+"/devices/"+thing+"/twin", cmd(50, "cid-50"))
			evTopic := id + "/events/" + thing + "/MODIFIED"
			waitFor(t, 10*time.Second, func() error {
				if len(app.messages(evTopic)) == 0 {
					return fmt.Errorf("no event yet")
				}
				return nil
			})
			evs := app.messages(evTopic)
			var ev map[string]any
			if err := json.Unmarshal(evs[0], &ev); err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || ev["value"] != float64(50) || ev["path"] != "/attributes/counter" {
				t.Errorf("events %s", evs)
			}
			if extra, _ := ev["extra"].(map[string]any); fmt.Sprint(extra) != "map[attributes:map[public:p]]" {
				t.Errorf("extra %v", ev["extra"])
			}
			// The target whose subjects may not read got nothing; the
			// partial reader got no event of attributes/counter either.
			if got := app.messages(id + "/nobody/" + thing); len(got) != 0 {
				t.Errorf("unauthorized target got %s", got)
			}
			if got := app.messages(id + "/partial/" + thing); len(got) != 0 {
				t.Errorf("partial reader got counter events %s", got)
			}
			expectStatus(t, c.do("PUT", "/api/2/things/"+thing+"/attributes/public", `"q"`), 204)
			waitFor(t, 10*time.Second, func() error {
				if len(app.messages(id+"/partial/"+thing)) == 0 {
					return fmt.Errorf("partial reader did not get its event")
				}
				return nil
			})
			// Metrics and logs saw it all.
			m := c.do("GET", "/api/2/connections/"+id+"/metrics", "")
			expectStatus(t, m, 200)
			if !strings.Contains(string(m.body), `"consumed"`) || !strings.Contains(string(m.body), `"published"`) {
				t.Errorf("metrics %s", m.body)
			}
			l := c.do("GET", "/api/2/connections/"+id+"/logs", "")
			expectStatus(t, l, 200)
			if !strings.Contains(string(l.body), "does not match the filters") {
				t.Errorf("logs %s", l.body)
			}
			// Closing stops consumption.
			expectStatus(t, c.doText("POST", "/api/2/connections/"+id+"/command", "connectivity.commands:closeConnection"), 200)
			waitFor(t, 10*time.Second, func() error {
				if ls := c.do("GET", "/api/2/connections/"+id+"/status", "").json(t)["liveStatus"]; ls != "closed" {
					return fmt.Errorf("liveStatus %v", ls)
				}
				return nil
			})
			dev.publish(id+"/devices/"+thing+"/twin", cmd(7, "cid-7"))
			expectStatus(t, c.doText("POST", "/api/2/connections/"+id+"/command", "connectivity.commands:openConnection"), 200)
			waitLive(t, c, id)
			// The announcements target saw closed and opened again (the
			// first opened went out before the app subscribed).
			waitFor(t, 10*time.Second, func() error {
				var got []string
				for _, m := range app.messages(id + "/announce") {
					var env map[string]any
					_ = json.Unmarshal(m, &env)
					got = append(got, fmt.Sprint(env["topic"]))
				}
				want := "_/" + id + "/connections/announcements/"
				if strings.Join(got, ",") != want+"closed,"+want+"opened" {
					return fmt.Errorf("announcements %v", got)
				}
				return nil
			})
			expectStatus(t, c.do("DELETE", "/api/2/connections/"+id, ""), 204)
		})
	}
}

func (c client) doText(method, path, body string) response {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain")
	req.SetBasicAuth(c.user, c.user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// TestConnectionsJavaScript: a JavaScript mapper turns a device's own
// payload into a twin change.
func TestConnectionsJavaScript(t *testing.T) {
	broker := startMosquitto(t)
	_, c := connNode(t)
	thing := "org.test:sensor-1"
	expectStatus(t, c.do("PUT", "/api/2/things/"+thing, thingWithPolicy), 201)
	script := `function mapToDittoProtocolMsg(headers, textPayload, bytePayload, contentType) {
  var name = headers['mqtt.topic'].split('/')[1];
  var data = JSON.parse(textPayload);
  if (data.temp === undefined) { return null; }
  return Ditto.buildDittoProtocolMsg('org.test', name, 'things', 'twin', 'commands', 'modify',
    '/features/env', {'response-required': false}, {properties: {temperature: data.temp, unit: 'C'}});
}`
	def := map[string]any{"id": "js", "connectionType": "mqtt", "connectionStatus": "open", "uri": "tcp://" + broker,
		"mappingDefinitions": map[string]any{"sensor": map[string]any{"mappingEngine": "JavaScript", "options": map[string]any{"incomingScript": script}}},
		"sources":            []any{map[string]any{"addresses": []any{"sensors/+"}, "qos": 1, "authorizationContext": []any{"integration:devices"}, "payloadMapping": []any{"sensor"}}}}
	b, _ := json.Marshal(def)
	expectStatus(t, c.do("POST", "/api/2/connections", string(b)), 201)
	waitLive(t, c, "js")
	dev := newDevice(t, broker, "js-dev")
	dev.publish("sensors/sensor-1", `{"temp":21.5}`)
	waitFor(t, 10*time.Second, func() error {
		r := c.do("GET", "/api/2/things/"+thing+"/features/env/properties", "")
		if r.status != 200 || !strings.Contains(string(r.body), `"temperature":21.5`) {
			return fmt.Errorf("%d %s; logs %s", r.status, r.body, c.do("GET", "/api/2/connections/js/logs", "").body)
		}
		return nil
	})
	// A script failure is a logged mapping error; the connection goes on.
	dev.publish("sensors/sensor-1", `not json`)
	dev.publish("sensors/sensor-1", `{"temp":22}`)
	waitFor(t, 10*time.Second, func() error {
		r := c.do("GET", "/api/2/things/"+thing+"/features/env/properties/temperature", "")
		if string(r.body) != "22" {
			return fmt.Errorf("%d %s", r.status, r.body)
		}
		return nil
	})
	l := c.do("GET", "/api/2/connections/js/logs", "")
	if !strings.Contains(string(l.body), "failure") || !strings.Contains(string(l.body), "JavaScript") {
		t.Errorf("logs %s", l.body)
	}
}

// TestConnectionsHTTPPush: an http-push target delivers filtered events to
// a real local HTTP server.
func TestConnectionsHTTPPush(t *testing.T) {
	type req struct {
		method, path, ct, auth string
		body                   []byte
	}
	got := make(chan req, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- req{r.Method, r.URL.RequestURI(), r.Header.Get("Content-Type"), r.Header.Get("X-Thing"), b}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	_, c := connNode(t)
	thing := "org.test:pushed"
	expectStatus(t, c.do("PUT", "/api/2/things/"+thing, thingWithPolicy), 201)
	def := fmt.Sprintf(`{"id":"push","connectionType":"http-push","connectionStatus":"open","uri":%q,
  "targets":[{"address":"POST:/hook/{{ thing:name }}?rev={{ header:ditto-originator | fn:default('none') | fn:url-encode() }}",
    "topics":["_/_/things/twin/events?filter=eq(attributes/alarm,true)"],"authorizationContext":["integration:devices"],
    "headerMapping":{"x-thing":"{{ thing:id }}"},"issuedAcknowledgementLabel":"{{ connection:id }}:delivered"},
   {"address":"PUT:/messages/{{ topic:subject }}","topics":["_/_/things/live/messages?namespaces=org.test"],"authorizationContext":["integration:devices"]}]}`, srv.URL)
	expectStatus(t, c.do("POST", "/api/2/connections", def), 201)
	waitLive(t, c, "push")
	// The target acknowledges with its issued label: weakly for a filtered
	// event, after the push for a delivered one.
	r := c.do("PUT", "/api/2/things/"+thing+"/attributes/alarm", `false`, "requested-acks", "twin-persisted,push:delivered")
	expectStatus(t, r, 200)
	if !strings.Contains(string(r.body), `"push:delivered":{"headers":`) || !strings.Contains(string(r.body), `"ditto-weak-ack":"true"},"status":200`) {
		t.Errorf("weak ack %s", r.body)
	}
	r = c.do("PUT", "/api/2/things/"+thing+"/attributes/alarm", `true`, "requested-acks", "push:delivered")
	expectStatus(t, r, 200)
	if strings.Contains(string(r.body), "weak") {
		t.Errorf("ack %s", r.body)
	}
	select {
	case r := <-got:
		if r.method != "POST" || !strings.HasPrefix(r.path, "/hook/pushed?rev=") || r.auth != thing || r.ct != "application/vnd.eclipse.ditto+json" {
			t.Errorf("request %+v", r)
		}
		if !strings.Contains(string(r.body), `"value":true`) {
			t.Errorf("body %s", r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no push")
	}
	// A live message reaches the live-messages target.
	r = c.do("POST", "/api/2/things/"+thing+"/inbox/messages/beep?timeout=0", `{"loud":true}`)
	expectStatus(t, r, 202)
	select {
	case r := <-got:
		if r.method != "PUT" || r.path != "/messages/beep" || !strings.Contains(string(r.body), `"loud":true`) {
			t.Errorf("message push %+v %s", r, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no message push")
	}
	select {
	case r := <-got:
		t.Errorf("unexpected push: %s %s", r.path, r.body)
	default:
	}
}

// TestConnectionsAPI covers the HTTP API's checks and errors.
func TestConnectionsAPI(t *testing.T) {
	n, c := connNode(t)
	bob := newClient(t, n, "bob")
	r := bob.do("GET", "/api/2/connections", "")
	expectStatus(t, r, 403)
	if r.json(t)["error"] != "connectivity:connection.notallowed" {
		t.Errorf("%s", r.body)
	}
	expectStatus(t, c.do("GET", "/api/2/connections/nope", ""), 404)
	cases := []struct {
		name, def, code string
	}{
		{"unknown type", `{"id":"x","connectionType":"smtp","connectionStatus":"open","uri":"tcp://h:1"}`, "connectivity:connection.configuration.invalid"},
		{"unsupported type", `{"id":"x","connectionType":"kafka","connectionStatus":"open","uri":"tcp://h:1"}`, "connectivity:connection.configuration.invalid"},
		{"bad id", `{"id":"a b","connectionType":"mqtt","connectionStatus":"open","uri":"tcp://h:1"}`, "connectivity:connection.id.invalid"},
		{"source without qos", `{"id":"x","connectionType":"mqtt","connectionStatus":"open","uri":"tcp://h:1","sources":[{"addresses":["a"],"authorizationContext":["s:x"]}]}`, "connectivity:connection.configuration.invalid"},
		{"bad placeholder", `{"id":"x","connectionType":"mqtt","connectionStatus":"open","uri":"tcp://h:1","targets":[{"address":"a/{{ thing:color }}","topics":["_/_/things/twin/events"],"authorizationContext":["s:x"]}]}`, "placeholder:placeholder.notfound"},
		{"bad function", `{"id":"x","connectionType":"mqtt","connectionStatus":"open","uri":"tcp://h:1","targets":[{"address":"a/{{ thing:id | fn:explode() }}","topics":["_/_/things/twin/events"],"authorizationContext":["s:x"]}]}`, "placeholder:function.invalid"},
		{"bad filter", `{"id":"x","connectionType":"mqtt","connectionStatus":"open","uri":"tcp://h:1","targets":[{"address":"a","topics":["_/_/things/twin/events?filter=gt(a"],"authorizationContext":["s:x"]}]}`, "rql.expression.invalid"},
		{"bad script", `{"id":"x","connectionType":"mqtt","connectionStatus":"open","uri":"tcp://h:1","mappingDefinitions":{"js":{"mappingEngine":"JavaScript","options":{"incomingScript":"function ("}}}}`, "connectivity:connection.configuration.invalid"},
		{"wildcard target", `{"id":"x","connectionType":"mqtt","connectionStatus":"open","uri":"tcp://h:1","targets":[{"address":"a/#","topics":["_/_/things/twin/events"],"authorizationContext":["s:x"]}]}`, "connectivity:connection.configuration.invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			r := c.do("POST", "/api/2/connections", tc.def)
			expectStatus(t, r, 400)
			if got := r.json(t)["error"]; got != tc.code {
				t.Errorf("error %v, want %s: %s", got, tc.code, r.body)
			}
		})
	}
	c.t = t
	// Dry run against a port nobody listens on fails; nothing is stored.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	_ = ln.Close()
	r = c.do("POST", "/api/2/connections?dry-run=true", `{"id":"dry","connectionType":"mqtt","connectionStatus":"open","uri":"tcp://`+dead+`"}`)
	expectStatus(t, r, 400)
	if r.json(t)["error"] != "connectivity:connection.failed" {
		t.Errorf("%s", r.body)
	}
	expectStatus(t, c.do("GET", "/api/2/connections/dry", ""), 404)
	// CRUD of a closed connection.
	expectStatus(t, c.do("POST", "/api/2/connections", `{"id":"crud","connectionType":"mqtt","connectionStatus":"closed","uri":"tcp://`+dead+`"}`), 201)
	expectStatus(t, c.do("POST", "/api/2/connections", `{"id":"crud","connectionType":"mqtt","connectionStatus":"closed","uri":"tcp://`+dead+`"}`), 409)
	expectStatus(t, c.do("PUT", "/api/2/connections/crud", `{"connectionType":"mqtt","connectionStatus":"closed","uri":"tcp://`+dead+`","tags":["x"]}`), 204)
	expectStatus(t, c.do("PUT", "/api/2/connections/other", `{"connectionType":"mqtt","connectionStatus":"closed","uri":"tcp://h:1"}`), 404)
	r = c.do("GET", "/api/2/connections/crud", "")
	expectStatus(t, r, 200)
	if r.header.Get("ETag") != `"rev:2"` || fmt.Sprint(r.json(t)["tags"]) != "[x]" {
		t.Errorf("%v %s", r.header, r.body)
	}
	r = c.do("GET", "/api/2/connections?ids-only=true", "")
	if string(r.body) != `["crud"]` {
		t.Errorf("ids-only %s", r.body)
	}
	r = c.do("GET", "/api/2/connections/crud/status", "")
	if m := r.json(t); m["liveStatus"] != "closed" || m["connectionStatus"] != "closed" {
		t.Errorf("status %s", r.body)
	}
	r = c.doText("POST", "/api/2/connections/crud/command", "connectivity.commands:explode")
	expectStatus(t, r, 400)
	r = c.doText("POST", "/api/2/connections/crud/command", "connectivity.commands:testConnection")
	expectStatus(t, r, 400)
	expectStatus(t, c.doText("POST", "/api/2/connections/crud/command", "connectivity.commands:resetConnectionMetrics"), 200)
	expectStatus(t, c.do("DELETE", "/api/2/connections/crud", ""), 204)
	expectStatus(t, c.do("DELETE", "/api/2/connections/crud", ""), 404)
}

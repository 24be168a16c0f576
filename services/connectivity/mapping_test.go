package connectivity

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

func testMappingConfig() MappingConfig {
	c := defaultMappingConfig()
	c.CallTimeout = time.Second // generous: the suite runs on loaded machines
	return c
}

func mustJS(t testing.TB, in, out string) *jsMapper {
	t.Helper()
	m, err := newJSMapper("test", map[string]any{"incomingScript": in, "outgoingScript": out}, testMappingConfig())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const incomingDevice = `function mapToDittoProtocolMsg(headers, textPayload, bytePayload, contentType) {
  var v = JSON.parse(textPayload);
  var id = headers['device_id'].split(':');
  return Ditto.buildDittoProtocolMsg(id[0], id[1], 'things', 'twin', 'commands', 'modify',
    '/features/temp/properties/value', {'correlation-id': headers['correlation-id']}, v.t);
}`

const outgoingText = `function mapFromDittoProtocolMsg(namespace, name, group, channel, criterion, action, path, dittoHeaders, value, status, extra) {
  return Ditto.buildExternalMsg({'x-topic': Ditto.buildTopic(namespace, name, group, channel, criterion, action)},
    name + '=' + JSON.stringify(value), null, 'text/plain');
}`

func TestJavaScriptMapper(t *testing.T) {
	m := mustJS(t, incomingDevice, outgoingText)
	envs, err := m.Inbound(External{Headers: map[string]string{"device_id": "org.x:dev", "correlation-id": "c1"}, Payload: []byte(`{"t":21.5}`), Text: true})
	if err != nil || len(envs) != 1 {
		t.Fatalf("%v %v", envs, err)
	}
	e := envs[0]
	if e.Topic != "org.x/dev/things/twin/commands/modify" || e.Path != "/features/temp/properties/value" || string(e.Value) != "21.5" || e.Headers["correlation-id"] != "c1" {
		t.Errorf("%+v", e)
	}
	out, err := m.Outbound(ditto.Envelope{Topic: "org.x/dev/things/twin/events/modified", Path: "/attributes/a", Value: json.RawMessage(`{"b":1}`), Headers: ditto.Headers{}})
	if err != nil || len(out) != 1 {
		t.Fatalf("%v %v", out, err)
	}
	if string(out[0].Payload) != `dev={"b":1}` || out[0].ContentType != "text/plain" || out[0].Headers["x-topic"] != "org.x/dev/things/twin/events/modified" {
		t.Errorf("%+v", out[0])
	}
	// null drops; an array yields several signals.
	m2 := mustJS(t, `function mapToDittoProtocolMsg(h, text) {
  if (text === 'drop') { return null; }
  return [1,2].map(function(i) { return Ditto.buildDittoProtocolMsg('a','b','things','twin','commands','modify','/attributes/n'+i, {}, i); });
}`, "")
	if envs, err := m2.Inbound(External{Payload: []byte("drop"), Text: true}); err != nil || len(envs) != 0 {
		t.Errorf("drop: %v %v", envs, err)
	}
	if envs, err := m2.Inbound(External{Payload: []byte("x"), Text: true}); err != nil || len(envs) != 2 || envs[1].Path != "/attributes/n2" {
		t.Errorf("array: %v %v", envs, err)
	}
	// Binary payloads arrive as ArrayBuffer.
	m3 := mustJS(t, `function mapToDittoProtocolMsg(h, text, bytes) {
  var b = new Uint8Array(bytes);
  return Ditto.buildDittoProtocolMsg('a','b','things','twin','commands','modify','/attributes/first', {}, b[0] + b[1]);
}`, "")
	if envs, err := m3.Inbound(External{Payload: []byte{0xff, 0x01}}); err != nil || len(envs) != 1 || string(envs[0].Value) != "256" {
		t.Errorf("bytes: %v %v", envs, err)
	}
}

// TestJavaScriptSandbox: loops, huge allocations, deep recursion and
// exceptions are mapping errors, and the mapper keeps working after them.
func TestJavaScriptSandbox(t *testing.T) {
	bad := map[string]string{
		"infinite loop":   `while (true) {}`,
		"busy recursion":  `function f(n) { return f(n+1) + 1; } return f(0);`,
		"huge string":     `return 'x'.repeat(1 << 30);`,
		"huge array":      `return new Array(1e9).fill(1);`,
		"huge pad":        `return ''.padStart(1e9, 'x');`,
		"huge buffer":     `return new ArrayBuffer(1 << 30);`,
		"growing array":   `var a = []; while (true) { a.push({k: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' + a.length}); }`,
		"growing string":  `var s = 'x'; while (true) { s = s + s; }`,
		"exception":       `throw new Error('boom');`,
		"type error":      `return undefined.x;`,
		"not a signal":    `return {topic: 'nope'};`,
		"wrong type":      `return 42;`,
		"json in result":  `return {topic: 'a/b/things/twin/commands/modify', path: '/x', value: NaN, headers: {}};`,
		"require":         `return require('fs');`,
		"no global fetch": `return fetch('http://example.com');`,
	}
	for name, body := range bad {
		t.Run(name, func(t *testing.T) {
			m := mustJS(t, "function mapToDittoProtocolMsg(headers, text) { if (text === 'ok') { return Ditto.buildDittoProtocolMsg('a','b','things','twin','commands','modify','/attributes/ok', {}, 1); } "+body+" }", "")
			start := time.Now()
			envs, err := m.Inbound(External{Payload: []byte("bad"), Text: true})
			if name == "json in result" {
				// NaN is not JSON: it becomes null, which is a valid value.
				if err != nil || len(envs) != 1 {
					t.Fatalf("%v %v", envs, err)
				}
				return
			}
			var de *ditto.Error
			if !errors.As(err, &de) || de.Code != "connectivity:message.mapping.failed" {
				t.Fatalf("got %v %v, want a mapping error", envs, err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
			if envs, err := m.Inbound(External{Payload: []byte("ok"), Text: true}); err != nil || len(envs) != 1 {
				t.Fatalf("mapper broken after %s: %v %v", name, envs, err)
			}
		})
	}
}

func TestJavaScriptLoadErrors(t *testing.T) {
	for name, script := range map[string]string{
		"syntax":       "function (",
		"throws":       "throw new Error('at load');",
		"loops":        "while(true){}",
		"empty":        "",
		"allocates":    "var x = 'y'.repeat(1<<30);",
		"stack bomb":   "function f(){f()} f();",
		"oversized":    strings.Repeat("//", 40<<10),
		"no functions": "var a = 1;",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := newJSMapper("x", map[string]any{"incomingScript": script}, testMappingConfig())
			if name == "no functions" {
				// Valid but without the contract's functions: the Ditto
				// mapper is used in that direction.
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var de *ditto.Error
			if !errors.As(err, &de) || de.Status != 400 {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestBuiltinMappers(t *testing.T) {
	// Normalized: the changed part of the thing plus _context.
	n, _ := newNormalizedMapper(nil)
	out, err := n.Outbound(ditto.Envelope{Topic: "a/b/things/twin/events/modified", Path: "/features/f/properties/p", Value: json.RawMessage(`3`), Revision: 4, Headers: ditto.Headers{}})
	if err != nil || len(out) != 1 {
		t.Fatal(out, err)
	}
	var doc map[string]any
	_ = json.Unmarshal(out[0].Payload, &doc)
	if doc["thingId"] != "a:b" || doc["_revision"] != float64(4) || doc["features"].(map[string]any)["f"] == nil || doc["_context"] == nil {
		t.Errorf("%s", out[0].Payload)
	}
	// RawMessage: headers name the message.
	envs, err := rawMessageMapper{}.Inbound(External{Headers: map[string]string{hdrMsgSubject: "beep", hdrMsgThingID: "a:b", hdrMsgFeatureID: "horn"}, Payload: []byte("hello"), ContentType: "text/plain", Text: true})
	if err != nil || len(envs) != 1 || envs[0].Topic != "a/b/things/live/messages/beep" || envs[0].Path != "/features/horn/inbox/messages/beep" || string(envs[0].Value) != `"hello"` {
		t.Errorf("%+v %v", envs, err)
	}
	// ImplicitThingCreation: the template is filled from headers.
	it, err := newImplicitThingMapper("itc", map[string]any{"thing": map[string]any{"thingId": "{{ header:device_id }}", "attributes": map[string]any{"gw": "{{ header:gateway | fn:default('none') }}"}}})
	if err != nil {
		t.Fatal(err)
	}
	envs, err = it.Inbound(External{Headers: map[string]string{"device_id": "org.x:d1"}})
	if err != nil || len(envs) != 1 || envs[0].Topic != "org.x/d1/things/twin/commands/create" || envs[0].Headers["if-none-match"] != "*" || !strings.Contains(string(envs[0].Value), `"gw":"none"`) {
		t.Errorf("%+v %v", envs, err)
	}
	if _, err := it.Inbound(External{Headers: map[string]string{}}); err == nil {
		t.Error("unresolvable thing ID accepted")
	}
	// ConnectionStatus: ttd and creation-time.
	cs, err := newConnectionStatusMapper("cs", map[string]any{"thingId": "{{ header:device_id }}"})
	if err != nil {
		t.Fatal(err)
	}
	envs, err = cs.Inbound(External{Headers: map[string]string{"device_id": "org.x:d1", "ttd": "60", "creation-time": "1700000000000"}})
	if err != nil || len(envs) != 1 || envs[0].Path != "/features/ConnectionStatus" || !strings.Contains(string(envs[0].Value), `"readyUntil":"2023-11-14T22:14:20.000Z"`) {
		t.Errorf("%+v %v", envs, err)
	}
}

// FuzzJavaScriptMapper runs arbitrary script bodies and payloads: whatever
// they do, the result is signals or a mapping error within the bounds, and
// the process survives.
func FuzzJavaScriptMapper(f *testing.F) {
	seeds := []string{
		`return Ditto.buildDittoProtocolMsg('a','b','things','twin','commands','modify','/attributes/x', {}, text);`,
		`while(true){}`, `return 'x'.repeat(1e9);`, `throw 1;`, `return [null, {}, 'x'];`, `return JSON.parse(text);`,
		`var a=[]; for(;;){a.push(a.length)}`, `return new Array(1e8);`, `return {topic:text, headers:{}, path:'/'};`,
	}
	for _, s := range seeds {
		f.Add(s, "{\"a\":1}")
	}
	cfg := testMappingConfig()
	cfg.CallTimeout = 50 * time.Millisecond
	f.Fuzz(func(t *testing.T, body, payload string) {
		m, err := newJSMapper("fuzz", map[string]any{"incomingScript": "function mapToDittoProtocolMsg(headers, text, bytes, ct) {\n" + body + "\n}"}, cfg)
		if err != nil {
			var de *ditto.Error
			if !errors.As(err, &de) || de.Status != 400 {
				t.Fatalf("load error %v is not a 400", err)
			}
			return
		}
		start := time.Now()
		envs, err := m.Inbound(External{Headers: map[string]string{"a": "b"}, Payload: []byte(payload), Text: true})
		if err != nil {
			var de *ditto.Error
			if !errors.As(err, &de) || de.Code != "connectivity:message.mapping.failed" {
				t.Fatalf("error %v is not a mapping error", err)
			}
		}
		for _, e := range envs {
			if len(ditto.EncodeEnvelope(e)) > 2*cfg.MaxAllocBytes {
				t.Fatal("result exceeds the bound")
			}
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("call took %s", d)
		}
	})
}

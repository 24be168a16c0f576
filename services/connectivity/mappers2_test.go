package connectivity

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

// dittoModify is the Ditto Protocol command of Ditto's CloudEvents example.
const dittoModify = `{"topic":"my.sensors/sensor01/things/twin/commands/modify","path":"/","value":{"thingId":"my.sensors:sensor01",
 "policyId":"my.test:policy","attributes":{"manufacturer":"Well known sensors producer","serial number":"100","location":"Ground floor"},
 "features":{"measurements":{"properties":{"temperature":100,"humidity":0}}}}}`

func TestCloudEventsMapperInbound(t *testing.T) {
	m, err := newCloudEventsMapper("ce", nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, envs []ditto.Envelope, err error, cid string) {
		t.Helper()
		if err != nil || len(envs) != 1 {
			t.Fatalf("%s: %v %v", name, envs, err)
		}
		e := envs[0]
		if e.Topic != "my.sensors/sensor01/things/twin/commands/modify" || e.Path != "/" || e.Headers.Get(ditto.HeaderCorrelationID) != cid ||
			!strings.Contains(string(e.Value), `"temperature":100`) {
			t.Fatalf("%s: %+v", name, e)
		}
	}
	binary := External{Payload: []byte(dittoModify), ContentType: contentTypeDitto, Headers: map[string]string{
		"ce-specversion": "1.0", "ce-id": "some-id", "ce-type": "some-type", "ce-source": "generic-producer", "content-type": contentTypeDitto}}
	envs, err := m.Inbound(binary)
	check("binary", envs, err, "some-id")

	structured := `{"specversion":"1.0","id":"3212e","source":"http:somesite.com","type":"com.site.com","data":` + dittoModify + `}`
	envs, err = m.Inbound(External{Payload: []byte(structured), Headers: map[string]string{"content-type": "application/cloudevents+json; charset=utf-8"}})
	check("structured", envs, err, "3212e")
	// MQTT 3.1.1 has no content type: a structured event is recognised
	// by its specversion.
	envs, err = m.Inbound(External{Payload: []byte(structured), Headers: map[string]string{}})
	check("structured without content type", envs, err, "3212e")
	b64 := `{"specversion":"1.0","id":"b64","source":"s","type":"t","data_base64":"` + base64.StdEncoding.EncodeToString([]byte(dittoModify)) + `"}`
	envs, err = m.Inbound(External{Payload: []byte(b64), ContentType: contentTypeCloudEvents})
	check("data_base64", envs, err, "b64")

	for name, msg := range map[string]External{
		"binary without ce-id":      {Payload: []byte(dittoModify), ContentType: contentTypeDitto, Headers: map[string]string{"ce-specversion": "1.0", "ce-type": "t", "ce-source": "s"}},
		"structured without source": {Payload: []byte(`{"specversion":"1.0","id":"x","type":"t","data":` + dittoModify + `}`), ContentType: contentTypeCloudEvents},
		"structured without data":   {Payload: []byte(`{"specversion":"1.0","id":"x","type":"t","source":"s"}`), ContentType: contentTypeCloudEvents},
		"specversion 0.3":           {Payload: []byte(`{"specversion":"0.3","id":"x","type":"t","source":"s","data":` + dittoModify + `}`), ContentType: contentTypeCloudEvents},
		"data not ditto":            {Payload: []byte(`{"specversion":"1.0","id":"x","type":"t","source":"s","data":{"temp":3}}`), ContentType: contentTypeCloudEvents},
	} {
		_, err := m.Inbound(msg)
		var de *ditto.Error
		if !errors.As(err, &de) || de.Code != ditto.ErrMappingFailed.Code {
			t.Errorf("%s: got %v, want a mapping error", name, err)
		}
	}
	if envs, err := m.Inbound(External{Payload: []byte("21.5"), ContentType: "text/plain"}); err != nil || len(envs) != 0 {
		t.Errorf("other content types map to nothing: %v %v", envs, err)
	}
}

func TestCloudEventsMapperOutbound(t *testing.T) {
	ev := ditto.Envelope{Topic: "org.x/t1/things/twin/events/modified", Path: "/attributes/a", Value: json.RawMessage(`42`), Revision: 3,
		Timestamp: "2026-11-27T10:00:00Z", Headers: ditto.Headers{ditto.HeaderCorrelationID: "cid-1"}}
	m, _ := newCloudEventsMapper("ce", nil)
	out, err := m.Outbound(ev)
	if err != nil || len(out) != 1 {
		t.Fatal(out, err)
	}
	var got map[string]any
	if err := json.Unmarshal(out[0].Payload, &got); err != nil {
		t.Fatal(err)
	}
	if out[0].ContentType != contentTypeCloudEvents || got["specversion"] != "1.0" || got["id"] != "cid-1" || got["source"] != "dittonode" ||
		got["type"] != "org.eclipse.ditto.outbound:things/twin/events/modified" || got["subject"] != "org.x:t1" ||
		got["time"] != "2026-11-27T10:00:00Z" || got["datacontenttype"] != contentTypeDitto {
		t.Fatalf("structured event %v", got)
	}
	data, _ := json.Marshal(got["data"])
	back, err := ditto.DecodeEnvelope(data)
	if err != nil || back.Topic != ev.Topic || string(back.Value) != "42" {
		t.Fatalf("data %s: %v", data, err)
	}
	// What goes out comes back in.
	in, err := m.Inbound(out[0])
	if err != nil || len(in) != 1 || in[0].Topic != ev.Topic || in[0].Headers.Get(ditto.HeaderCorrelationID) != "cid-1" {
		t.Fatalf("round trip: %v %v", in, err)
	}

	bm, err := newCloudEventsMapper("ce", map[string]any{"outboundMode": "binary", "source": "/factory/gw1"})
	if err != nil {
		t.Fatal(err)
	}
	out, err = bm.Outbound(ev)
	if err != nil || len(out) != 1 {
		t.Fatal(out, err)
	}
	h := out[0].Headers
	if h["ce-id"] != "cid-1" || h["ce-source"] != "/factory/gw1" || h["ce-type"] != "org.eclipse.ditto.outbound:things/twin/events/modified" ||
		h["ce-specversion"] != "1.0" || h["content-type"] != contentTypeDitto {
		t.Fatalf("binary headers %v", h)
	}
	in, err = bm.Inbound(out[0])
	if err != nil || len(in) != 1 || in[0].Path != "/attributes/a" {
		t.Fatalf("binary round trip: %v %v", in, err)
	}
}

func TestUpdateTwinWithLiveResponseMapper(t *testing.T) {
	resp := `{"topic":"org.x/t1/things/live/commands/retrieve","path":"/features/temp/properties","status":200,
	  "headers":{"correlation-id":"q-1"},"value":{"value":21.5}}`
	m, err := newLiveResponseMapper("u", nil)
	if err != nil {
		t.Fatal(err)
	}
	envs, err := m.Inbound(External{Payload: []byte(resp), Headers: map[string]string{}})
	if err != nil || len(envs) != 1 {
		t.Fatal(envs, err)
	}
	e := envs[0]
	if e.Topic != "org.x/t1/things/twin/commands/merge" || e.Path != "/features/temp/properties" || string(e.Value) != `{"value":21.5}` ||
		e.Headers.Get(ditto.HeaderCorrelationID) != "q-1-merge-into-twin" || e.Headers.Get("if-match") != "*" || e.Headers.Get("response-required") != "false" {
		t.Fatalf("merge %+v", e)
	}
	for name, p := range map[string]string{
		"twin response":    `{"topic":"org.x/t1/things/twin/commands/retrieve","path":"/","status":200,"value":{}}`,
		"live modify":      `{"topic":"org.x/t1/things/live/commands/modify","path":"/attributes/a","status":204}`,
		"failed retrieve":  `{"topic":"org.x/t1/things/live/commands/retrieve","path":"/","status":404,"value":{"error":"x"}}`,
		"live command":     `{"topic":"org.x/t1/things/live/commands/retrieve","path":"/","headers":{}}`,
		"not ditto at all": `21.5`,
	} {
		if envs, err := m.Inbound(External{Payload: []byte(p)}); err != nil || len(envs) != 0 {
			t.Errorf("%s: %v %v, want nothing", name, envs, err)
		}
	}
	cm, err := newLiveResponseMapper("u", map[string]any{"dittoHeadersForMerge": map[string]any{
		"if-match": "*", "response-required": false, "x-by": "{{ request:subjectId }}", "x-hint": "{{ header:hint }}",
		"put-metadata": []any{map[string]any{"key": "*/updated-by", "value": "{{ request:subjectId }}"}}}})
	if err != nil {
		t.Fatal(err)
	}
	envs, err = cm.Inbound(External{Payload: []byte(resp), Headers: map[string]string{"hint": "h1"}, subjects: []string{"integration:devices"}})
	if err != nil || len(envs) != 1 {
		t.Fatal(envs, err)
	}
	h := envs[0].Headers
	if h.Get("x-by") != "integration:devices" || h.Get("x-hint") != "h1" || h.Get("response-required") != "false" ||
		h.Get("put-metadata") != `[{"key":"*/updated-by","value":"integration:devices"}]` {
		t.Fatalf("headers %v", h)
	}
}

// FuzzCloudEventsAndLiveResponse: arbitrary payloads, content types and
// ce-* headers yield signals or a mapping error, never a panic; what the
// CloudEvents mapper maps is a valid signal again on the way out.
func FuzzCloudEventsAndLiveResponse(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","data":`+dittoModify+`}`), contentTypeCloudEvents, "x")
	f.Add([]byte(dittoModify), contentTypeDitto, "id-1")
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","data_base64":"e30="}`), "", "")
	f.Add([]byte(`{"topic":"a/b/things/live/commands/retrieve","path":"/","status":200,"headers":{},"value":{"a":1}}`), "", "")
	ce, _ := newCloudEventsMapper("ce", nil)
	live, _ := newLiveResponseMapper("u", nil)
	f.Fuzz(func(t *testing.T, payload []byte, contentType, ceID string) {
		msg := External{Payload: payload, ContentType: contentType, Headers: map[string]string{
			"ce-specversion": "1.0", "ce-id": ceID, "ce-source": "s", "ce-type": "t"}}
		envs, err := ce.Inbound(msg)
		var de *ditto.Error
		if err != nil && !errors.As(err, &de) {
			t.Fatalf("not a Ditto error: %v", err)
		}
		for _, e := range envs {
			if _, err := ce.Outbound(e); err != nil && !errors.As(err, &de) {
				t.Fatalf("outbound: %v", err)
			}
		}
		envs, err = live.Inbound(msg)
		if err != nil {
			t.Fatalf("the live response mapper fails only by mapping nothing: %v", err)
		}
		for _, e := range envs {
			if !strings.HasSuffix(e.Topic, "/things/twin/commands/merge") {
				t.Fatalf("mapped %q", e.Topic)
			}
		}
	})
}

func BenchmarkCloudEventsInbound(b *testing.B) {
	m, _ := newCloudEventsMapper("ce", nil)
	msg := External{Payload: []byte(`{"specversion":"1.0","id":"3212e","source":"s","type":"t","data":` + dittoModify + `}`), ContentType: contentTypeCloudEvents}
	b.ReportAllocs()
	for b.Loop() {
		if envs, err := m.Inbound(msg); err != nil || len(envs) != 1 {
			b.Fatal(envs, err)
		}
	}
}

func BenchmarkCloudEventsOutbound(b *testing.B) {
	m, _ := newCloudEventsMapper("ce", nil)
	ev := ditto.Envelope{Topic: "org.x/t1/things/twin/events/modified", Path: "/attributes/a", Value: json.RawMessage(`42`), Revision: 3,
		Timestamp: "2026-11-27T10:00:00Z", Headers: ditto.Headers{ditto.HeaderCorrelationID: "cid-1"}}
	b.ReportAllocs()
	for b.Loop() {
		if out, err := m.Outbound(ev); err != nil || len(out) != 1 {
			b.Fatal(out, err)
		}
	}
}

package connectivity

import (
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

func BenchmarkTemplateResolve(b *testing.B) {
	tpl, err := ParseTemplate("devices/{{ thing:namespace }}/{{ thing:name | fn:upper() }}/{{ header:nope | fn:default(topic:action) }}", scopeOutbound)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, _ := tpl.Resolve(testResolver); !ok {
			b.Fatal("unresolved")
		}
	}
}

func BenchmarkJavaScriptInbound(b *testing.B) {
	m := mustJS(b, incomingDevice, "")
	msg := External{Headers: map[string]string{"device_id": "org.x:dev", "correlation-id": "c1"}, Payload: []byte(`{"t":21.5}`), Text: true}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Inbound(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDittoOutbound(b *testing.B) {
	env := ditto.Envelope{Topic: "org.x/dev/things/twin/events/modified", Path: "/attributes/counter", Value: []byte("42"), Headers: ditto.Headers{"correlation-id": "c"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (dittoMapper{}).Outbound(env); err != nil {
			b.Fatal(err)
		}
	}
}

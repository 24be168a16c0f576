package mqtt

import (
	"strings"
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

func TestParseInbound(t *testing.T) {
	for _, tt := range []struct {
		name, topic string
		kind        inboundKind
		thing, path string
	}{
		{"command", "ditto/command", inboundCommand, "", ""},
		{"reply is reserved", "ditto/reply/x", inboundReserved, "", ""},
		{"sys", "$SYS/broker", inboundReserved, "", ""},
		{"plain", "factory/line1/temp", inboundPlain, "", ""},
		{"attribute", "things/ns:t1/attributes/a/b", inboundValue, "ns:t1", "/attributes/a/b"},
		{"property", "things/ns:t1/features/lamp/properties/on", inboundValue, "ns:t1", "/features/lamp/properties/on"},
		{"all properties", "things/ns:t1/features/lamp/properties", inboundValue, "ns:t1", "/features/lamp/properties"},
		{"desired", "things/ns:t1/features/lamp/desiredProperties/on", inboundValue, "ns:t1", "/features/lamp/desiredProperties/on"},
		{"escaped segment", "things/ns:t1/attributes/a~0b", inboundValue, "ns:t1", "/attributes/a~0b"},
		{"events are reserved", "things/ns:t1/events/attributes/a", inboundReserved, "", ""},
		{"whole attributes", "things/ns:t1/attributes", inboundReserved, "", ""},
		{"feature definition", "things/ns:t1/features/lamp/definition", inboundReserved, "", ""},
		{"empty segment", "things/ns:t1/attributes//a", inboundReserved, "", ""},
		{"bad thing id", "things/nocolon/attributes/a", inboundReserved, "", ""},
		{"no path", "things/ns:t1", inboundReserved, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := parseInbound(tt.topic)
			if got.kind != tt.kind || got.thingID != tt.thing || (tt.kind == inboundValue && got.path.String() != tt.path) {
				t.Errorf("parseInbound(%q) = %+v (path %s), want kind %d %s %s", tt.topic, got, got.path, tt.kind, tt.thing, tt.path)
			}
		})
	}
}

func TestEventTopic(t *testing.T) {
	for _, tt := range []struct{ id, path, want string }{
		{"ns:t1", "/", "things/ns:t1/events"},
		{"ns:t1", "", "things/ns:t1/events"},
		{"ns:t1", "/features/lamp/desiredProperties/on", "things/ns:t1/events/features/lamp/desiredProperties/on"},
		{"ns:t1", "/attributes/a+b/c", "things/ns:t1/events/attributes"},
		{"ns:t1", "/attributes/#", "things/ns:t1/events/attributes"},
	} {
		got, ok := eventTopic(tt.id, tt.path)
		if !ok || got != tt.want {
			t.Errorf("eventTopic(%q, %q) = %q %v, want %q", tt.id, tt.path, got, ok, tt.want)
		}
		if !isEventTopic(got) {
			t.Errorf("%q is not recognised as an event topic", got)
		}
	}
	if _, ok := eventTopic("ns:a+b", "/"); ok {
		t.Error("a thing ID with a wildcard made a topic")
	}
}

func TestPlainValue(t *testing.T) {
	for in, want := range map[string]string{"21.5": "21.5", "true": "true", `"x"`: `"x"`, "on": `"on"`, `{"a":1}`: `{"a":1}`} {
		v, ok := plainValue([]byte(in))
		if !ok || string(ditto.EncodeJSON(v)) != want {
			t.Errorf("plainValue(%q) = %s %v, want %s", in, ditto.EncodeJSON(v), ok, want)
		}
	}
	if _, ok := plainValue(nil); ok {
		t.Error("empty payload accepted")
	}
	if _, ok := plainValue([]byte{0xff, 0xfe}); ok {
		t.Error("binary payload accepted")
	}
}

// FuzzTopicMapping: parsing never panics, value topics address a valid
// thing and a pointer below a value resource, and event topics are valid
// MQTT topic names under things/{id}/events.
func FuzzTopicMapping(f *testing.F) {
	for _, s := range []string{"ditto/command", "things/ns:t/attributes/a", "things/ns:t/features/f/properties/p/q",
		"things/ns:t/events", "x/y", "things//", "things/ns:t/features/f/desiredProperties"} {
		f.Add(s, "/attributes/a")
	}
	f.Fuzz(func(t *testing.T, topic, path string) {
		in := parseInbound(topic)
		if in.kind == inboundValue {
			if _, err := ditto.ParseThingID(in.thingID); err != nil {
				t.Fatalf("value topic %q has thing %q: %v", topic, in.thingID, err)
			}
			if len(in.path) < 2 || (in.path[0] != "attributes" && in.path[0] != "features") {
				t.Fatalf("value topic %q maps to %v", topic, in.path)
			}
			if isEventTopic(topic) {
				t.Fatalf("%q is both a value and an event topic", topic)
			}
		}
		if _, err := ditto.ParseThingID(topic); err != nil {
			return
		}
		et, ok := eventTopic(topic, path)
		if !ok {
			return
		}
		if strings.ContainsAny(et, "+#\x00") || strings.Contains(et, "//") || !isEventTopic(et) {
			t.Fatalf("eventTopic(%q, %q) = %q", topic, path, et)
		}
		if parseInbound(et).kind != inboundReserved {
			t.Fatalf("devices may publish to the event topic %q", et)
		}
	})
}

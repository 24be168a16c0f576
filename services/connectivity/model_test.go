package connectivity

import (
	"errors"
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

var allTypes = []string{TypeMQTT, TypeMQTT5, TypeHTTPPush}

// specExample is the connection of ditto-spec.md section 10, with the
// mapping it names defined.
const specExample = `{"id":"mqtt-1","connectionType":"mqtt","connectionStatus":"open","uri":"tcp://user:pw@broker:1883","failoverEnabled":true,
 "mappingDefinitions":{"status":{"mappingEngine":"ConnectionStatus","options":{"thingId":"{{ header:device_id }}"}}},
 "sources":[{"addresses":["devices/+/telemetry"],"qos":1,"authorizationContext":["ditto:inbound"],
   "enforcement":{"input":"{{ header:device_id }}","filters":["{{ thing:id }}"]},
   "acknowledgementRequests":{"includes":["twin-persisted"],"filter":"fn:filter(header:mqtt.qos,'ne','0')"},
   "headerMapping":{"correlation-id":"{{ header:correlation-id }}"},"payloadMapping":["Ditto","status"],
   "replyTarget":{"enabled":true,"address":"{{ header:reply-to }}","expectedResponseTypes":["response","error","nack"]}}],
 "targets":[{"address":"devices/{{ thing:id }}/events","qos":0,"authorizationContext":["ditto:outbound"],
   "topics":["_/_/things/twin/events?namespaces=org.eclipse.ditto&filter=gt(attributes/counter,42)&extraFields=attributes","_/_/things/live/messages"],
   "issuedAcknowledgementLabel":"{{connection:id}}:delivered","headerMapping":{"mqtt.retain":"true"}}]}`

func TestParseConnection(t *testing.T) {
	if _, err := ParseConnection([]byte(specExample), allTypes); err != nil {
		t.Fatalf("spec example: %v", err)
	}
	base := `"id":"c","connectionStatus":"open",`
	bad := map[string]string{
		"http-push with source":   `{` + base + `"connectionType":"http-push","uri":"http://h","sources":[{"addresses":["a"],"authorizationContext":["s:x"]}]}`,
		"http-push bad address":   `{` + base + `"connectionType":"http-push","uri":"http://h","targets":[{"address":"SEND:/x","topics":["_/_/things/twin/events"],"authorizationContext":["s:x"]}]}`,
		"mqtt-5 over ws":          `{` + base + `"connectionType":"mqtt-5","uri":"ws://h:1"}`,
		"http-push over tcp":      `{` + base + `"connectionType":"http-push","uri":"tcp://h:1"}`,
		"no host":                 `{` + base + `"connectionType":"mqtt","uri":"tcp://"}`,
		"qos 3":                   `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","sources":[{"addresses":["a"],"qos":3,"authorizationContext":["s:x"]}]}`,
		"bad filter level":        `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","sources":[{"addresses":["a/b#"],"qos":1,"authorizationContext":["s:x"]}]}`,
		"no auth context":         `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","sources":[{"addresses":["a"],"qos":1}]}`,
		"bad reply type":          `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","sources":[{"addresses":["a"],"qos":1,"authorizationContext":["s:x"],"replyTarget":{"address":"r","expectedResponseTypes":["maybe"]}}]}`,
		"enforcement no filters":  `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","sources":[{"addresses":["a"],"qos":1,"authorizationContext":["s:x"],"enforcement":{"input":"{{ header:x }}"}}]}`,
		"unknown mapping":         `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","sources":[{"addresses":["a"],"qos":1,"authorizationContext":["s:x"],"payloadMapping":["nope"]}]}`,
		"unknown engine":          `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","mappingDefinitions":{"m":{"mappingEngine":"XSLT"}}}`,
		"itc without thing":       `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","mappingDefinitions":{"m":{"mappingEngine":"ImplicitThingCreation","options":{}}}}`,
		"unknown topic":           `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","targets":[{"address":"a","topics":["_/_/things/twin/commands"],"authorizationContext":["s:x"]}]}`,
		"filter on announcements": `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","targets":[{"address":"a","topics":["_/_/policies/announcements?filter=exists(x)"],"authorizationContext":["s:x"]}]}`,
		"unknown topic parameter": `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","targets":[{"address":"a","topics":["_/_/things/twin/events?color=red"],"authorizationContext":["s:x"]}]}`,
		"two clients":             `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","clientCount":2}`,
		"status half":             `{"id":"c","connectionStatus":"half","connectionType":"mqtt","uri":"tcp://h:1"}`,
		"not json":                `{"id":`,
		"wrong field type":        `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","sources":"all"}`,
	}
	for name, def := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := ParseConnection([]byte(def), allTypes)
			var de *ditto.Error
			if !errors.As(err, &de) || de.Status != 400 {
				t.Fatalf("got %v, want a 400", err)
			}
		})
	}
}

package connectivity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

func TestEmbeddedDefinition(t *testing.T) {
	def, _ := json.Marshal(DefaultEmbedded())
	c, err := ParseConnection(def, allTypes)
	if err != nil {
		t.Fatalf("default embedded connection: %v", err)
	}
	if !c.IsEmbedded() || !ConventionsOn(&Record{ID: EmbeddedID, JSON: def}) {
		t.Fatalf("default: %+v", c)
	}
	head := `{"id":"embedded","connectionType":"mqtt-5","uri":"embedded://localhost:1883",`
	good := map[string]string{
		"source and target": head + `"connectionStatus":"open","sources":[{"addresses":["devices/+/telemetry","#"],"qos":1,"authorizationContext":["mqtt:{{ header:mqtt.username }}"]}],
			"targets":[{"address":"devices/{{ thing:name }}/events","topics":["_/_/things/twin/events?filter=gt(attributes/t,1)"],"authorizationContext":["integration:x"]}]}`,
		"closed": head + `"connectionStatus":"closed"}`,
	}
	for name, d := range good {
		if _, err := ParseConnection([]byte(d), allTypes); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := map[string]string{
		"scheme on another id":   `{"id":"x","connectionType":"mqtt-5","connectionStatus":"open","uri":"embedded://localhost:1883"}`,
		"reserved id, tcp":       `{"id":"embedded","connectionType":"mqtt-5","connectionStatus":"open","uri":"tcp://h:1883"}`,
		"reserved id, mqtt 3":    `{"id":"embedded","connectionType":"mqtt","connectionStatus":"open","uri":"embedded://localhost:1883"}`,
		"source on ditto/":       head + `"connectionStatus":"open","sources":[{"addresses":["ditto/#"],"qos":1,"authorizationContext":["s:x"]}]}`,
		"source on things/":      head + `"connectionStatus":"open","sources":[{"addresses":["things/+/x"],"qos":1,"authorizationContext":["s:x"]}]}`,
		"source on $SYS":         head + `"connectionStatus":"open","sources":[{"addresses":["$SYS/#"],"qos":1,"authorizationContext":["s:x"]}]}`,
		"target on things/":      head + `"connectionStatus":"open","targets":[{"address":"things/{{ thing:id }}/x","topics":["_/_/things/twin/events"],"authorizationContext":["s:x"]}]}`,
		"live target":            head + `"connectionStatus":"open","targets":[{"address":"x","topics":["_/_/things/live/events"],"authorizationContext":["s:x"]}]}`,
		"target acknowledgement": head + `"connectionStatus":"open","targets":[{"address":"x","topics":["_/_/things/twin/events"],"authorizationContext":["s:x"],"issuedAcknowledgementLabel":"{{connection:id}}:x"}]}`,
		"conventions maybe":      head + `"connectionStatus":"open","specificConfig":{"conventions":"maybe"}}`,
	}
	for name, d := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := ParseConnection([]byte(d), allTypes)
			var de *ditto.Error
			if !errors.As(err, &de) || de.Status != 400 {
				t.Fatalf("got %v, want a 400", err)
			}
		})
	}
	for name, tc := range map[string]struct {
		def  string
		want bool
	}{
		"open":            {head + `"connectionStatus":"open"}`, true},
		"closed":          {head + `"connectionStatus":"closed"}`, false},
		"conventions off": {head + `"connectionStatus":"open","specificConfig":{"conventions":"false"}}`, false},
	} {
		if got := ConventionsOn(&Record{ID: EmbeddedID, JSON: json.RawMessage(tc.def)}); got != tc.want {
			t.Errorf("%s: conventions %v, want %v", name, got, tc.want)
		}
	}
}

func TestEmbeddedSenderAndRecipients(t *testing.T) {
	ctx := context.Background()
	if _, ok := RecipientsOf(ctx); ok {
		t.Fatal("a plain context names recipients")
	}
	if got := senderAuth(ctx, ditto.Auth{Subjects: []string{"s:x"}}); len(got.Subjects) != 1 {
		t.Fatalf("no sender: %v", got)
	}
	dev := WithSender(ctx, Sender{ClientID: "c1", Auth: ditto.Auth{Subjects: []string{"mqtt:d1", "s:x"}}})
	if ids, ok := RecipientsOf(dev); !ok || len(ids) != 1 || ids[0] != "c1" {
		t.Errorf("a reply goes to the sender only: %v %v", ids, ok)
	}
	if got := senderAuth(dev, ditto.Auth{Subjects: []string{"s:x", "s:y"}}); len(got.Subjects) != 3 || got.Subjects[0] != "mqtt:d1" {
		t.Errorf("device subjects plus the source's: %v", got.Subjects)
	}
	if ids, _ := RecipientsOf(withRecipients(dev, []string{"a", "b"})); len(ids) != 2 {
		t.Errorf("explicit recipients win: %v", ids)
	}
}

func TestEmbeddedNotDeletable(t *testing.T) {
	s := New(Config{}, Deps{})
	var de *ditto.Error
	if err := s.Delete(context.Background(), EmbeddedID); !errors.As(err, &de) || de.Code != ditto.ErrConnectionNotDeletable.Code {
		t.Fatalf("delete embedded: %v", err)
	}
}

func TestEnsureEmbeddedAndPlacement(t *testing.T) {
	s := newTestService()
	ctx := context.Background()
	for range 2 {
		if err := s.EnsureEmbedded(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := s.Retrieve(ctx, EmbeddedID, true)
	if err != nil || rec.Revision != 1 {
		t.Fatalf("embedded after two ensures: %+v %v", rec, err)
	}
	members := []string{"node-a", "node-b", "node-c"}
	for _, self := range members {
		rt := NewRuntime(DefaultConfig(), RuntimeDeps{Service: s, Dispatcher: nil,
			Members: func() (string, []string) { return self, members }})
		if owner, own := rt.Owner(EmbeddedID); !own || owner != self {
			t.Errorf("embedded on %s: owner %s", self, owner)
		}
		// No broker on this node (RuntimeDeps.Embedded nil): the status says so.
		st := rt.Status(rec)
		if st["liveStatus"] != "closed" || !strings.Contains(fmt.Sprint(st["clientStatus"]), "no MQTT broker") {
			t.Errorf("status without a broker: %v", st)
		}
	}
}

// TestOwnerCutOff: a node without members (its connectivity group has no
// leader: it is cut off from the majority) runs no external connection,
// while the embedded one keeps serving its own devices.
func TestOwnerCutOff(t *testing.T) {
	rt := NewRuntime(DefaultConfig(), RuntimeDeps{Service: newTestService(),
		Members: func() (string, []string) { return "node-a", nil }})
	if owner, own := rt.Owner("mqtt-1"); own || owner != "" {
		t.Errorf("cut-off node owns mqtt-1 (owner %q)", owner)
	}
	if _, own := rt.Owner(EmbeddedID); !own {
		t.Error("cut-off node stopped the embedded connection")
	}
	single := NewRuntime(DefaultConfig(), RuntimeDeps{Service: newTestService()})
	if _, own := single.Owner("mqtt-1"); !own {
		t.Error("a single node without a member list must run every connection")
	}
}

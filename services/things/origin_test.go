package things

import (
	"reflect"
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

// TestEventOrigin checks that the sending session's ID (ditto-origin)
// travels from the command through the log entry into the event headers,
// and that events of commands without it carry no such header.
func TestEventOrigin(t *testing.T) {
	env := newEnv(t, DefaultConfig())
	steps := []struct {
		name    string
		action  ditto.Action
		path    string
		value   string
		headers []string
		want    string // ditto-origin of the event; "" = absent
	}{
		{"create from a session", ditto.ActionModify, "/", `{"attributes":{"a":1}}`, []string{"correlation-id", "c1", ditto.HeaderOrigin, "ws-1"}, "ws-1"},
		{"modify from another session", ditto.ActionModify, "/attributes/a", `2`, []string{ditto.HeaderOrigin, "ws-2"}, "ws-2"},
		{"merge without session", ditto.ActionMerge, "/attributes", `{"b":3}`, nil, ""},
		{"delete from a session", ditto.ActionDelete, "/attributes/b", "", []string{ditto.HeaderOrigin, "ws-1"}, "ws-1"},
	}
	for _, st := range steps {
		var v any
		if st.value != "" {
			v = mustJSON(t, st.value)
		}
		if _, err := env.do(st.action, tid, st.path, v, owner, st.headers...); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		ev := env.takeEvents()
		if len(ev) != 1 {
			t.Fatalf("%s: %d events, want 1", st.name, len(ev))
		}
		got, has := ev[0].Envelope.Headers[ditto.HeaderOrigin]
		if got != st.want || has != (st.want != "") {
			t.Errorf("%s: ditto-origin %q (present %v), want %q", st.name, got, has, st.want)
		}
		if ev[0].Envelope.Headers[ditto.HeaderOriginator] != owner {
			t.Errorf("%s: originator %q", st.name, ev[0].Envelope.Headers[ditto.HeaderOriginator])
		}
	}
}

// TestEntrySessionCodec checks the optional session field: it round-trips,
// and an entry without it encodes exactly as entries did before the field
// existed (so older logs replay unchanged).
func TestEntrySessionCodec(t *testing.T) {
	e := &entry{op: opModify, id: "ns:a", path: ditto.MustPointer("/attributes/x"), value: []byte(`1`),
		time: 7, corrID: "c", origin: "nginx:x", session: "ws-42"}
	got, err := decodeEntry(e.encode())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("got %+v\nwant %+v", got, e)
	}
	plain := *e
	plain.session = ""
	withSession, without := e.encode(), plain.encode()
	if without[3]&flagHasSession != 0 || withSession[3]&flagHasSession == 0 {
		t.Fatalf("session flag: with %08b, without %08b", withSession[3], without[3])
	}
	// The session is a trailing field: everything before it is the old format.
	if string(withSession[4:len(without)]) != string(without[4:]) {
		t.Fatal("an entry with a session differs from the old format before the trailing field")
	}
	truncated := withSession[:len(withSession)-2]
	if _, err := decodeEntry(truncated); err == nil {
		t.Fatal("a truncated session decoded")
	}
}

package mqtt

import (
	"slices"
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

func TestLiveKinds(t *testing.T) {
	for _, c := range []struct {
		filter string
		want   []string
	}{
		{"#", []string{liveKindMessages, liveKindCommands, liveKindEvents}},
		{"things/#", []string{liveKindMessages, liveKindCommands, liveKindEvents}},
		{"things/+/inbox/messages/#", []string{liveKindMessages}},
		{"things/ns:t/inbox/messages/ask", []string{liveKindMessages}},
		{"things/ns:t/inbox/claim", []string{liveKindMessages}},
		{"things/ns:t/features/+/outbox/#", []string{liveKindMessages}},
		{"things/+/+/+/+/+/+", []string{liveKindMessages, liveKindCommands, liveKindEvents}},
		{"things/ns:t/live/commands/#", []string{liveKindCommands}},
		{"things/ns:t/live/#", []string{liveKindCommands, liveKindEvents}},
		{"things/ns:t/live/events/modified/attributes/a", []string{liveKindEvents}},
		{"$share/g/things/+/live/events/#", []string{liveKindEvents}},
		{"things/ns:t/events/#", nil},
		{"things/ns:t/attributes/#", nil},
		{"things/ns:t/live/commands", nil},
		{"ditto/reply/c", nil},
		{"things/+", nil},
	} {
		got := liveKinds([]string{c.filter})
		slices.Sort(got)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("liveKinds(%q) = %v, want %v", c.filter, got, want)
		}
	}
}

func TestLiveTopic(t *testing.T) {
	for _, c := range []struct {
		topic, path, want string
	}{
		{"ns/t/things/live/messages/ask", "/inbox/messages/ask", "things/ns:t/inbox/messages/ask"},
		{"ns/t/things/live/messages/a/b", "/features/f/outbox/messages/a/b", "things/ns:t/features/f/outbox/messages/a/b"},
		{"ns/t/things/live/messages/claim", "/inbox/claim", "things/ns:t/inbox/claim"},
		{"ns/t/things/live/commands/modify", "/attributes/x", "things/ns:t/live/commands/modify/attributes/x"},
		{"ns/t/things/live/commands/delete", "/", "things/ns:t/live/commands/delete"},
		{"ns/t/things/live/events/modified", "/features/f/properties/p", "things/ns:t/live/events/modified/features/f/properties/p"},
		{"ns/t/things/live/messages/a+b", "/inbox/messages/a+b", ""},
		{"ns/t/things/live/events/modified", "/attributes/a#", ""},
		{"ns/t/things/twin/events/modified", "/attributes/a", ""},
	} {
		got, ok := liveTopic(ditto.Envelope{Topic: c.topic, Path: c.path})
		if got != c.want || ok != (c.want != "") {
			t.Errorf("liveTopic(%s %s) = %q %v, want %q", c.topic, c.path, got, ok, c.want)
		}
	}
}

package ditto

import (
	"strings"
	"testing"
)

func TestParseTopic(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Topic
		err  bool
	}{
		{"twin modify", "org.eclipse.ditto/fancy-thing/things/twin/commands/modify",
			Topic{"org.eclipse.ditto", "fancy-thing", "things", "twin", "commands", "modify"}, false},
		{"live retrieve", "ns/t/things/live/commands/retrieve", Topic{"ns", "t", "things", "live", "commands", "retrieve"}, false},
		{"merge", "ns/t/things/twin/commands/merge", Topic{"ns", "t", "things", "twin", "commands", "merge"}, false},
		{"migrate", "ns/t/things/twin/commands/migrate", Topic{"ns", "t", "things", "twin", "commands", "migrate"}, false},
		{"event merged", "ns/t/things/twin/events/merged", Topic{"ns", "t", "things", "twin", "events", "merged"}, false},
		{"live event", "ns/t/things/live/events/created", Topic{"ns", "t", "things", "live", "events", "created"}, false},
		{"multi retrieve", "_/_/things/twin/commands/retrieve", Topic{"_", "_", "things", "twin", "commands", "retrieve"}, false},
		{"empty namespace", "/t/things/twin/commands/retrieve", Topic{"", "t", "things", "twin", "commands", "retrieve"}, false},
		{"search", "_/_/things/twin/search/subscribe", Topic{"_", "_", "things", "twin", "search", "subscribe"}, false},
		{"message", "ns/t/things/live/messages/ask", Topic{"ns", "t", "things", "live", "messages", "ask"}, false},
		{"message subject with slash", "ns/t/things/live/messages/a/b/c", Topic{"ns", "t", "things", "live", "messages", "a/b/c"}, false},
		{"errors", "ns/t/things/twin/errors", Topic{"ns", "t", "things", "twin", "errors", ""}, false},
		{"acks aggregated", "ns/t/things/twin/acks", Topic{"ns", "t", "things", "twin", "acks", ""}, false},
		{"ack label", "ns/t/things/twin/acks/custom-ack", Topic{"ns", "t", "things", "twin", "acks", "custom-ack"}, false},
		{"streaming", "ns/t/things/twin/streaming/subscribeForPersistedEvents", Topic{"ns", "t", "things", "twin", "streaming", "subscribeForPersistedEvents"}, false},
		{"policy modify", "org.eclipse.ditto/the_policy_id/policies/commands/modify", Topic{"org.eclipse.ditto", "the_policy_id", "policies", "", "commands", "modify"}, false},
		{"policy errors", "ns/p/policies/errors", Topic{"ns", "p", "policies", "", "errors", ""}, false},
		{"policy event", "ns/p/policies/events/deleted", Topic{"ns", "p", "policies", "", "events", "deleted"}, false},
		{"policy announcement", "ns/p/policies/announcements/subjectDeletion", Topic{"ns", "p", "policies", "", "announcements", "subjectDeletion"}, false},
		{"policy streaming", "ns/p/policies/streaming/request", Topic{"ns", "p", "policies", "", "streaming", "request"}, false},
		{"connection announcement", "_/mqtt-1/connections/announcements/opened", Topic{"_", "mqtt-1", "connections", "", "announcements", "opened"}, false},

		{"too short", "ns/t/things", Topic{}, true},
		{"empty", "", Topic{}, true},
		{"bad group", "ns/t/devices/twin/commands/modify", Topic{}, true},
		{"bad channel", "ns/t/things/shadow/commands/modify", Topic{}, true},
		{"missing channel", "ns/t/things/commands/modify", Topic{}, true},
		{"policy with channel", "ns/p/policies/twin/commands/modify", Topic{}, true},
		{"bad command", "ns/t/things/twin/commands/update", Topic{}, true},
		{"command action missing", "ns/t/things/twin/commands", Topic{}, true},
		{"command extra segment", "ns/t/things/twin/commands/modify/x", Topic{}, true},
		{"event as command", "ns/t/things/twin/events/modify", Topic{}, true},
		{"policy merge", "ns/p/policies/commands/merge", Topic{}, true},
		{"policy merged event", "ns/p/policies/events/merged", Topic{}, true},
		{"live search", "_/_/things/live/search/subscribe", Topic{}, true},
		{"bad search action", "_/_/things/twin/search/foo", Topic{}, true},
		{"twin message", "ns/t/things/twin/messages/ask", Topic{}, true},
		{"message without subject", "ns/t/things/live/messages", Topic{}, true},
		{"message empty subject", "ns/t/things/live/messages/", Topic{}, true},
		{"errors with action", "ns/t/things/twin/errors/x", Topic{}, true},
		{"bad ack label", "ns/t/things/twin/acks/ab", Topic{}, true},
		{"ack label slash", "ns/t/things/twin/acks/abc/def", Topic{}, true},
		{"things announcement", "ns/t/things/twin/announcements/x", Topic{}, true},
		{"bad namespace and bad topic", "1ns/t/things/twin/commands/update", Topic{}, true},
		{"bad name of a connection", "_/grün/connections/commands/modify", Topic{}, true},
		{"unknown criterion", "ns/t/things/twin/foo/bar", Topic{}, true},
		{"connection command", "_/c/connections/commands/modify", Topic{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTopic(tt.in)
			if tt.err {
				wantCode(t, err, "protocoladapter:unknown.topicpath")
				return
			}
			wantCode(t, err, "")
			if got != tt.want {
				t.Fatalf("ParseTopic(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.String() != tt.in {
				t.Fatalf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

// TestParseTopicInvalidID: a topic that is right but for its entity gets
// the ID's error and keeps the rest, for the error's topic.
func TestParseTopicInvalidID(t *testing.T) {
	for in, want := range map[string]struct {
		code string
		t    Topic
	}{
		"1ns/t/things/twin/commands/modify": {"things:id.invalid", Topic{Group: GroupThings, Channel: ChannelTwin, Criterion: CriterionCommands, Action: "modify"}},
		"ns//things/live/commands/retrieve": {"things:id.invalid", Topic{Group: GroupThings, Channel: ChannelLive, Criterion: CriterionCommands, Action: "retrieve"}},
		"ns/grün/policies/commands/modify":  {"policies:id.invalid", Topic{Group: GroupPolicies, Criterion: CriterionCommands, Action: "modify"}},
	} {
		got, err := ParseTopic(in)
		wantCode(t, err, want.code)
		if got != want.t {
			t.Errorf("%s: topic %+v, want %+v", in, got, want.t)
		}
		if e := ErrorEnvelope(got, nil, err.(*Error)); !strings.HasPrefix(e.Topic, "unknown/unknown/") {
			t.Errorf("%s: error topic %s", in, e.Topic)
		}
	}
}

func TestTopicHelpers(t *testing.T) {
	tp := Topic{Namespace: "ns", Name: "t", Group: GroupThings, Channel: ChannelTwin, Criterion: CriterionCommands, Action: "modify"}
	if tp.Entity() != "ns:t" || tp.HasPlaceholder() {
		t.Fatal("Entity/HasPlaceholder")
	}
	tp.Name = TopicPlaceholder
	if !tp.HasPlaceholder() {
		t.Fatal("HasPlaceholder")
	}
}

func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{
		"ns/t/things/twin/commands/modify", "_/_/things/twin/search/subscribe", "ns/t/things/live/messages/a/b",
		"ns/p/policies/errors", "ns/t/things/twin/acks", "//", strings.Repeat("a/", 10),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := ParseTopic(s)
		if err != nil {
			switch errCode(err) {
			case "protocoladapter:unknown.topicpath", "things:id.invalid", "policies:id.invalid":
			default:
				t.Fatalf("%q: unexpected error %v", s, err)
			}
			return
		}
		if tp.String() != s {
			t.Fatalf("round trip %q -> %q", s, tp.String())
		}
		again, err := ParseTopic(tp.String())
		if err != nil || again != tp {
			t.Fatalf("reparse of %q: %+v %v", s, again, err)
		}
	})
}

func BenchmarkParseTopic(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTopic("org.eclipse.ditto/fancy-thing/things/twin/commands/modify"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTopicString(b *testing.B) {
	tp := Topic{"org.eclipse.ditto", "fancy-thing", "things", "twin", "events", "modified"}
	b.ReportAllocs()
	for b.Loop() {
		_ = tp.String()
	}
}

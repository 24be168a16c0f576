package gateway

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseControl feeds untrusted text frames to the control-frame and
// stream-spec parsers: they must never panic, and an accepted frame names a
// known kind.
func FuzzParseControl(f *testing.F) {
	for _, s := range []string{
		"START-SEND-EVENTS", "STOP-SEND-MESSAGES", "JWT-TOKEN?jwtToken=a.b.c",
		"START-SEND-EVENTS?namespaces=a,b&filter=" + url.QueryEscape("and(eq(attributes/x,1),in(topic:action,'created'))") + "&extraFields=attributes",
		"START-SEND-LIVE-EVENTS?filter=%zz", "START-SEND-POLICY-ANNOUNCEMENTS?extraFields=features/*/properties",
		"START-SEND-", "START-SEND-EVENTS?extraFields=nope",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, derr := parseControl(s)
		if derr != nil {
			return
		}
		if !c.jwt && c.kind >= numKinds {
			t.Fatalf("kind %d out of range for %q", c.kind, s)
		}
		if !c.jwt && !strings.HasSuffix(c.name, "EVENTS") && !strings.HasSuffix(c.name, "MESSAGES") &&
			!strings.HasSuffix(c.name, "COMMANDS") && !strings.HasSuffix(c.name, "ANNOUNCEMENTS") {
			t.Fatalf("accepted unknown frame %q", c.name)
		}
		_, _ = parseStreamSpec(c.params)
	})
}

func TestParseControl(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame string
		ok    bool
		start bool
		kind  streamKind
	}{
		{"events", "START-SEND-EVENTS", true, true, kindEvents},
		{"stop live events", "STOP-SEND-LIVE-EVENTS", true, false, kindLiveEvents},
		{"announcements with params", "START-SEND-POLICY-ANNOUNCEMENTS?namespaces=a", true, true, kindAnnouncements},
		{"unknown", "START-SEND-FOO", false, false, 0},
		{"bad escape", "START-SEND-EVENTS?filter=%zz", false, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseControl(tc.frame)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (c.start != tc.start || c.kind != tc.kind) {
				t.Errorf("got start=%v kind=%d", c.start, c.kind)
			}
		})
	}
}

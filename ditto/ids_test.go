package ditto

import (
	"strings"
	"testing"
)

func TestParseEntityID(t *testing.T) {
	long := "ns:" + strings.Repeat("a", MaxIDLength-3)
	tests := []struct {
		name   string
		in     string
		ok     bool
		ns, nm string
	}{
		{"simple", "org.eclipse.ditto:fancy-thing", true, "org.eclipse.ditto", "fancy-thing"},
		{"dash namespace", "com-acme.x_y:thing", true, "com-acme.x_y", "thing"},
		{"empty namespace", ":thing", true, "", "thing"},
		{"split at first colon", "ns:a:b:c", true, "ns", "a:b:c"},
		{"name with spaces and symbols", "ns:foo bar@#$%", true, "ns", "foo bar@#$%"},
		{"name with high unicode", "ns:日本", true, "ns", "日本"},
		{"max length", long, true, "ns", long[3:]},
		{"too long", long + "a", false, "", ""},
		// Ditto counts UTF-16 code units: 日 is 3 bytes but one unit, 𝄞
		// (outside the BMP) 4 bytes and two units.
		{"max length in 3-byte characters", "ns:" + strings.Repeat("日", MaxIDLength-3), true, "ns", strings.Repeat("日", MaxIDLength-3)},
		{"too long in 3-byte characters", "ns:" + strings.Repeat("日", MaxIDLength-2), false, "", ""},
		{"max length in surrogate pairs", "ns:a" + strings.Repeat("𝄞", (MaxIDLength-4)/2), true, "ns", "a" + strings.Repeat("𝄞", (MaxIDLength-4)/2)},
		{"too long in surrogate pairs", "ns:" + strings.Repeat("𝄞", (MaxIDLength-2)/2), false, "", ""},
		{"no colon", "nscolon", false, "", ""},
		{"empty name", "ns:", false, "", ""},
		{"slash in name", "ns:a/b", false, "", ""},
		{"control char in name", "ns:a\x01", false, "", ""},
		{"DEL in name", "ns:a\x7f", false, "", ""},
		{"umlaut rejected", "ns:grün", false, "", ""},
		{"latin-1 rejected", "ns:ÿ", false, "", ""},
		{"invalid utf8", "ns:\xff", false, "", ""},
		{"namespace starts with digit", "1ns:thing", false, "", ""},
		{"namespace double dot", "a..b:thing", false, "", ""},
		{"namespace trailing dot", "a.:thing", false, "", ""},
		{"namespace umlaut", "grün:thing", false, "", ""},
		{"empty", "", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := ParseEntityID(tt.in)
			if ok != tt.ok {
				t.Fatalf("ParseEntityID(%q) ok = %v, want %v", tt.in, ok, tt.ok)
			}
			if !ok {
				if !id.IsZero() {
					t.Fatalf("invalid ID returned non-zero %v", id)
				}
				return
			}
			if id.Namespace != tt.ns || id.Name != tt.nm {
				t.Fatalf("got %q/%q, want %q/%q", id.Namespace, id.Name, tt.ns, tt.nm)
			}
			if id.String() != tt.in {
				t.Fatalf("String() = %q, want %q", id.String(), tt.in)
			}
		})
	}
}

func TestParseThingAndPolicyID(t *testing.T) {
	_, err := ParseThingID("bad")
	wantCode(t, err, "things:id.invalid")
	_, err = ParsePolicyID("bad")
	wantCode(t, err, "policies:id.invalid")
	id, err := ParseThingID("ns:x")
	wantCode(t, err, "")
	if id != (EntityID{"ns", "x"}) {
		t.Fatalf("got %v", id)
	}
}

func TestValidKey(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"plain", "temperature", true},
		{"unicode", "grün", true},
		{"star", "*", true},
		{"max", strings.Repeat("k", MaxKeyLength), true},
		{"too long", strings.Repeat("k", MaxKeyLength+1), false},
		{"max in 2-byte characters", strings.Repeat("ü", MaxKeyLength), true},
		{"too long in 2-byte characters", strings.Repeat("ü", MaxKeyLength+1), false},
		{"too long in surrogate pairs", strings.Repeat("𝄞", MaxKeyLength/2) + "k", false},
		{"empty", "", false},
		{"slash", "a/b", false},
		{"newline", "a\nb", false},
		{"DEL", "a\x7f", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidKey(tt.in); got != tt.ok {
				t.Fatalf("ValidKey(%q) = %v", tt.in, got)
			}
			err := CheckKey(tt.in)
			if tt.ok {
				wantCode(t, err, "")
			} else {
				wantCode(t, err, "json.key.invalid")
			}
		})
	}
	if ValidFeatureID("*") || !ValidFeatureID("lamp") {
		t.Fatal("ValidFeatureID: '*' must be rejected and 'lamp' accepted")
	}
}

func TestValidDefinitionAndLabels(t *testing.T) {
	tests := []struct {
		name string
		fn   func(string) bool
		in   string
		ok   bool
	}{
		{"definition triple", ValidDefinition, "org.eclipse.ditto:HeatingDevice:2.1.0", true},
		{"definition url", ValidDefinition, "https://models.example.com/lamp-1.0.0.tm.jsonld", true},
		{"definition two parts", ValidDefinition, "a:b", false},
		{"definition bad char", ValidDefinition, "a:b c:1", false},
		{"definition bare scheme", ValidDefinition, "https://", false},
		{"connection id", ValidConnectionID, "mqtt-1:edge_x", true},
		{"connection id slash", ValidConnectionID, "a/b", false},
		{"connection id too long", ValidConnectionID, strings.Repeat("c", 101), false},
		{"ack label", ValidAckLabel, "twin-persisted", true},
		{"ack label too short", ValidAckLabel, "ab", false},
		{"ack label placeholder", ValidAckLabel, "{{connection:id}}:x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.fn(tt.in); got != tt.ok {
				t.Fatalf("(%q) = %v, want %v", tt.in, got, tt.ok)
			}
		})
	}
}

func FuzzParseEntityID(f *testing.F) {
	for _, s := range []string{"ns:name", ":x", "a.b-c:d:e", "ns:grün", "", "ns:a/b", strings.Repeat("a", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := ParseEntityID(s)
		if !ok {
			return
		}
		if id.String() != s {
			t.Fatalf("round trip %q -> %q", s, id.String())
		}
		if longerThan(s, MaxIDLength) || !ValidNamespace(id.Namespace) || strings.ContainsAny(id.Name, "/\x00") {
			t.Fatalf("accepted invalid ID %q", s)
		}
		again, ok := ParseEntityID(id.String())
		if !ok || again != id {
			t.Fatalf("reparse of %q failed", s)
		}
	})
}

package policies

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

func TestRoundExpiry(t *testing.T) {
	tests := []struct{ in, want string }{
		{"2030-01-01T10:00:00Z", "2030-01-01T10:00:00Z"},
		{"2030-01-01T10:00:00.001Z", "2030-01-01T11:00:00Z"},
		{"2030-01-01T10:59:59Z", "2030-01-01T11:00:00Z"},
		{"2030-01-01T23:30:00+01:00", "2030-01-01T23:00:00Z"},
		{"2030-12-31T23:00:01Z", "2031-01-01T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := roundExpiry(tt.in)
			if !ok || got.Format("2006-01-02T15:04:05Z07:00") != tt.want {
				t.Errorf("roundExpiry(%s) = %v %v, want %s", tt.in, got, ok, tt.want)
			}
		})
	}
}

func TestNormalizeResourceKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"thing:/", "thing:/"},
		{"thing:", "thing:/"},
		{"thing:/features/x/", "thing:/features/x"},
		{"policy:entries/a", "policy:/entries/a"},
		{"message:/inbox", "message:/inbox"},
		{"device:/", ""},
		{"thing:/a//b", ""},
		{"/thing", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := normalizeResourceKey(tt.in)
			if (err != nil) != (tt.want == "") || got != tt.want {
				t.Errorf("normalizeResourceKey(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParsePath(t *testing.T) {
	tests := []struct {
		path []string
		want kind
		ok   bool
	}{
		{nil, kRoot, true},
		{[]string{"entries"}, kEntries, true},
		{[]string{"entries", "l"}, kEntry, true},
		{[]string{"entries", "l", "subjects"}, kSubjects, true},
		{[]string{"entries", "l", "subjects", "a:b"}, kSubject, true},
		{[]string{"entries", "l", "resources"}, kResources, true},
		{[]string{"entries", "l", "resources", "thing:/a/b"}, kResource, true},
		{[]string{"entries", "l", "resources", "bad"}, 0, false},
		// A protocol path splits the key at its slashes.
		{[]string{"entries", "l", "resources", "thing:", "features", "f"}, kResource, true},
		{[]string{"entries", "l", "resources", "thing:"}, kResource, true},
		{[]string{"entries", "l", "subjects", "jwt:https:", "issuer", "x"}, kSubject, true},
		{[]string{"entries", "l", "other", "x", "y"}, 0, false},
		{[]string{"entries", "l", "namespaces"}, kEntryField, true},
		{[]string{"entries", "l", "importable"}, kEntryField, true},
		{[]string{"entries", "l", "other"}, 0, false},
		{[]string{"imports"}, kImports, true},
		{[]string{"imports", "ns:x"}, kImport, true},
		{[]string{"imports", "ns:x", "transitiveImports"}, kImportField, true},
		{[]string{"imports", "ns:x", "other"}, 0, false},
		{[]string{"policyId"}, 0, false},
	}
	for _, tt := range tests {
		t.Run(ditto.Pointer(tt.path).String(), func(t *testing.T) {
			q, k, err := parsePath(tt.path)
			if (err == nil) != tt.ok || (tt.ok && k != tt.want) {
				t.Errorf("parsePath = %v, %v; want %v ok=%v", k, err, tt.want, tt.ok)
			}
			if (k == kResource || k == kSubject) && len(q) != 4 {
				t.Errorf("key path %q", q)
			}
		})
	}
}

// TestParsePathKeys: a subject ID or resource key split over protocol
// path segments is the same key as HTTP's one escaped segment.
func TestParsePathKeys(t *testing.T) {
	for path, want := range map[string]string{
		"/entries/l/resources/thing:/features/f":       "thing:/features/f",
		"/entries/l/resources/thing:":                  "thing:/",
		"/entries/l/subjects/jwt:https:/issuer.io/sub": "jwt:https:/issuer.io/sub",
	} {
		q, _, err := parsePath(ditto.MustPointer(path))
		if err != nil || len(q) != 4 || q[3] != want {
			t.Errorf("%s: %q, %v; want key %q", path, q, err, want)
		}
	}
}

// FuzzPolicyJSON decodes and validates arbitrary bytes as a policy and
// compiles what validates: nothing may panic, and a valid policy must
// validate again unchanged.
func FuzzPolicyJSON(f *testing.F) {
	for _, s := range []string{
		ownerPolicy,
		`{}`, `[]`, `null`, `{"entries":null}`, `{"entries":{"a":{"subjects":{"a:b":{"type":1}},"resources":{}}}}`,
		`{"policyId":"ns:pol","imports":{"ns:x":{"entries":["a"],"transitiveImports":["ns:y"]}},"entries":{}}`,
		`{"entries":{"a":{"subjects":{"a:b":{"type":"t","expiry":"2030-01-01T00:00:00Z"}},"resources":{"thing:/x":{"grant":["READ"]}},"namespaces":["a.*"],"importable":"never"}}}`,
		`{"entries":{"a":{"subjects":{},"resources":{"thing:/":{"grant":["READ","READ"],"revoke":[null]}}}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePolicyJSON(testPolicyID, b)
		if err != nil {
			if _, ok := err.(*ditto.Error); !ok {
				t.Fatalf("non-Ditto error %T: %v", err, err)
			}
			return
		}
		again, err := normPolicy(testPolicyID, ditto.DeepCopy(p))
		if err != nil {
			t.Fatalf("normalized policy does not validate: %v", err)
		}
		if !ditto.JSONEqual(p, again) {
			t.Fatalf("normalization not idempotent: %s vs %s", ditto.EncodeJSON(p), ditto.EncodeJSON(again))
		}
		entries, _ := p["entries"].(map[string]any)
		var list []map[string]any
		for _, l := range sortedKeys(entries) {
			list = append(list, entries[l].(map[string]any))
		}
		e := compile(list, "ns", testNow)
		e.Partial(ditto.ResourceThing, ditto.Pointer{"x"}, a, ditto.PermRead)
		e.View(ditto.ResourcePolicy, nil, map[string]any(p), a)
		lockoutSafe(p)
	})
}

// TestDocAndImports enforces doc.go and the allowed imports of this package.
func TestDocAndImports(t *testing.T) {
	if _, err := os.Stat("doc.go"); err != nil {
		t.Fatal("doc.go missing")
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case path == "github.com/dittonode/dittonode/ditto", path == "github.com/dittonode/dittonode/consensus":
			case !strings.Contains(path, "."):
				if path == "testing" {
					t.Errorf("%s imports testing", name)
				}
			default:
				t.Errorf("%s imports %s: only ditto, consensus and the standard library are allowed", name, path)
			}
		}
	}
}

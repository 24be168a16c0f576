package policies

import (
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

const (
	subA = "nginx:a"
	subB = "nginx:b"
)

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func mustJSON(t testing.TB, s string) any {
	t.Helper()
	v, err := ditto.DecodeJSON([]byte(s))
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return v
}

// mustEnforcer compiles the entries object given as JSON.
func mustEnforcer(t testing.TB, entries, ns string) *Enforcer {
	t.Helper()
	m, err := normEntries(mustJSON(t, entries))
	if err != nil {
		t.Fatalf("entries %s: %v", entries, err)
	}
	var list []map[string]any
	for _, l := range sortedKeys(m) {
		list = append(list, m[l].(map[string]any))
	}
	return compile(list, ns, testNow)
}

// entry builds one entry JSON with the subjects and resources given.
func entry(subjects []string, resources string) string {
	s := `{"subjects":{`
	for i, sub := range subjects {
		if i > 0 {
			s += ","
		}
		s += `"` + sub + `":{"type":"t"}`
	}
	return s + `},"resources":` + resources + `}`
}

type check struct {
	name     string
	op       string // "u" unrestricted, "p" partial
	resType  string
	path     string
	subjects []string
	perms    []string
	want     bool
}

func runChecks(t *testing.T, e *Enforcer, checks []check) {
	t.Helper()
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			rt := c.resType
			if rt == "" {
				rt = ditto.ResourceThing
			}
			var got bool
			if c.op == "u" {
				got = e.Unrestricted(rt, ditto.MustPointer(c.path), c.subjects, c.perms...)
			} else {
				got = e.Partial(rt, ditto.MustPointer(c.path), c.subjects, c.perms...)
			}
			if got != c.want {
				t.Errorf("%s(%s:%s, %v, %v) = %v, want %v", c.op, rt, c.path, c.subjects, c.perms, got, c.want)
			}
		})
	}
}

var (
	a     = []string{subA}
	b     = []string{subB}
	ab    = []string{subA, subB}
	read  = []string{ditto.PermRead}
	write = []string{ditto.PermWrite}
	rw    = []string{ditto.PermRead, ditto.PermWrite}
)

func TestEnforcerInheritanceAndDepth(t *testing.T) {
	e := mustEnforcer(t, `{"e":`+entry(a, `{
		"thing:/":{"grant":["READ","WRITE"],"revoke":[]},
		"thing:/features":{"grant":[],"revoke":["READ"]},
		"thing:/features/f/properties":{"grant":["READ"],"revoke":[]},
		"thing:/attributes/same":{"grant":["READ"],"revoke":["READ"]},
		"policy:/":{"grant":["READ"],"revoke":[]}}`)+`}`, "ns")
	runChecks(t, e, []check{
		{"root read is restricted by a revoke below", "u", "", "/", a, read, false},
		{"root write unrestricted", "u", "", "/", a, write, true},
		{"root read partial", "p", "", "/", a, read, true},
		{"inherited grant below root", "u", "", "/attributes/x/y", a, read, true},
		{"missing node uses nearest ancestor", "u", "", "/definition", a, rw, true},
		{"revoke at features", "u", "", "/features", a, read, false},
		{"revoke inherited by feature", "u", "", "/features/g/properties/x", a, read, false},
		{"deeper grant wins over revoke", "u", "", "/features/f/properties", a, read, true},
		{"deeper grant inherited", "u", "", "/features/f/properties/x/y", a, read, true},
		{"feature partially readable", "p", "", "/features/f", a, read, true},
		{"features partially readable", "p", "", "/features", a, read, true},
		{"other feature not even partially", "p", "", "/features/g", a, read, false},
		{"feature not unrestricted", "u", "", "/features/f", a, read, false},
		{"revoke beats grant at one node", "u", "", "/attributes/same", a, read, false},
		{"revoke beats grant below", "p", "", "/attributes/same/x", a, read, false},
		{"read and write need both", "u", "", "/features/f/properties", a, rw, true},
		{"read and write where read revoked", "u", "", "/features/g", a, rw, false},
		{"write without grant", "u", "policy", "/", a, write, false},
		{"read on policy", "u", "policy", "/entries/x", a, read, true},
		{"unknown subject", "p", "", "/", b, read, false},
		{"no subjects", "p", "", "/", nil, read, false},
		{"unknown permission", "u", "", "/", a, []string{"DELETE"}, false},
		{"no permission asked", "u", "", "/", a, nil, false},
		{"unknown resource type", "p", "device", "/", a, read, false},
		{"type without statements", "p", "message", "/", a, read, false},
	})
}

func TestEnforcerAcrossSubjects(t *testing.T) {
	e := mustEnforcer(t, `{
		"users":`+entry(a, `{"thing:/":{"grant":["READ","WRITE"],"revoke":[]},"thing:/a/b":{"grant":["READ"],"revoke":[]},
			"thing:/x/y/z":{"grant":["READ"],"revoke":[]}}`)+`,
		"group":`+entry(b, `{"thing:/":{"grant":[],"revoke":["WRITE"]},"thing:/a":{"grant":[],"revoke":["READ"]},
			"thing:/x/y/z":{"grant":[],"revoke":["READ"]},"thing:/m":{"grant":["READ"],"revoke":[]}}`)+`}`, "ns")
	runChecks(t, e, []check{
		{"A alone reads root", "u", "", "/c", a, read, true},
		{"same-depth revoke of B denies A+B", "u", "", "/", ab, write, false},
		{"A alone writes", "u", "", "/", a, write, true},
		{"revoke of B at /a denies A+B", "u", "", "/a", ab, read, false},
		{"deeper grant of A beats B's revoke", "u", "", "/a/b", ab, read, true},
		{"deeper grant inherited", "u", "", "/a/b/c", ab, read, true},
		{"revoke ties with grant across subjects", "u", "", "/x/y/z", ab, read, false},
		{"B's grant alone", "u", "", "/m/n", b, read, true},
		{"B alone cannot write", "p", "", "/", b, write, false},
		{"A+B partial read at /a", "p", "", "/a", ab, read, true},
		{"A+B read at /c", "u", "", "/c", ab, read, true},
	})
}

func TestEnforcerNamespaces(t *testing.T) {
	entries := `{"exact":` + `{"subjects":{"nginx:a":{"type":"t"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}},"namespaces":["com.acme"]},
		"subs":{"subjects":{"nginx:b":{"type":"t"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}},"namespaces":["com.acme.*"]}}`
	tests := []struct {
		ns       string
		subjects []string
		want     bool
	}{
		{"com.acme", a, true},
		{"com.acme", b, false},
		{"com.acme.x", a, false},
		{"com.acme.x", b, true},
		{"com.acme.x.y", b, true},
		{"com.acmex", b, false},
		{"org", a, false},
	}
	for _, tt := range tests {
		t.Run(tt.ns+"/"+tt.subjects[0], func(t *testing.T) {
			e := mustEnforcer(t, entries, tt.ns)
			if got := e.Unrestricted(ditto.ResourceThing, nil, tt.subjects, ditto.PermRead); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEnforcerExpiry(t *testing.T) {
	past := testNow.Add(-time.Hour).Truncate(time.Hour).Format(time.RFC3339)
	future := testNow.Add(2 * time.Hour).Truncate(time.Hour).Format(time.RFC3339)
	e := mustEnforcer(t, `{"e":{"subjects":{"nginx:a":{"type":"t","expiry":"`+past+`"},"nginx:b":{"type":"t","expiry":"`+future+`"}},
		"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}}}`, "ns")
	if e.Unrestricted(ditto.ResourceThing, nil, a, ditto.PermRead) {
		t.Error("expired subject still granted")
	}
	if !e.Unrestricted(ditto.ResourceThing, nil, b, ditto.PermRead) {
		t.Error("subject that expires later denied")
	}
	if got := e.validUntil.Format(time.RFC3339); got != future {
		t.Errorf("validUntil = %s, want %s", got, future)
	}
	if got := e.validFrom.Format(time.RFC3339); got != past {
		t.Errorf("validFrom = %s, want %s", got, past)
	}
}

func TestEnforcerView(t *testing.T) {
	thing := `{"thingId":"ns:t","attributes":{"a":1,"empty":{},"arr":[1,2],"o":{"x":1,"y":{"z":2}}},
		"features":{"featureY":{"properties":{"location":{"city":"X","zip":"1"},"on":true}},"other":{"properties":{"p":1}}}}`
	tests := []struct {
		name      string
		resources string
		path      string
		value     string // defaults to thing
		want      string // "" = nothing readable
	}{
		{"spec example", `{"thing:/features/featureY":{"grant":["READ"],"revoke":[]},
			"thing:/features/featureY/properties/location/city":{"grant":[],"revoke":["READ"]}}`, "/", "",
			`{"features":{"featureY":{"properties":{"location":{"zip":"1"},"on":true}}}}`},
		{"full read", `{"thing:/":{"grant":["READ"],"revoke":[]}}`, "/", "", thing},
		{"nothing", `{"thing:/":{"grant":["WRITE"],"revoke":[]}}`, "/", "", ""},
		{"empty object kept when READ at the object", `{"thing:/attributes/empty":{"grant":["READ"],"revoke":[]}}`, "/", "",
			`{"attributes":{"empty":{}}}`},
		{"object emptied by revokes kept when READ at it", `{"thing:/attributes/o":{"grant":["READ"],"revoke":[]},
			"thing:/attributes/o/x":{"grant":[],"revoke":["READ"]},"thing:/attributes/o/y":{"grant":[],"revoke":["READ"]}}`, "/", "",
			`{"attributes":{"o":{}}}`},
		{"object without READ and no readable child dropped", `{"thing:/attributes/o/x":{"grant":[],"revoke":["READ"]},
			"thing:/features/other":{"grant":["READ"],"revoke":[]}}`, "/", "",
			`{"features":{"other":{"properties":{"p":1}}}}`},
		{"array judged at its node", `{"thing:/":{"grant":["READ"],"revoke":[]},"thing:/attributes/arr/0":{"grant":[],"revoke":["READ"]}}`,
			"/attributes", "", `{"a":1,"empty":{},"arr":[1,2],"o":{"x":1,"y":{"z":2}}}`},
		{"array revoked", `{"thing:/":{"grant":["READ"],"revoke":[]},"thing:/attributes/arr":{"grant":[],"revoke":["READ"]}}`,
			"/attributes", "", `{"a":1,"empty":{},"o":{"x":1,"y":{"z":2}}}`},
		{"value located at a sub path", `{"thing:/attributes/o/y":{"grant":["READ"],"revoke":[]}}`, "/attributes/o",
			`{"x":1,"y":{"z":2}}`, `{"y":{"z":2}}`},
		{"scalar at a readable path", `{"thing:/attributes":{"grant":["READ"],"revoke":[]}}`, "/attributes/a", `1`, `1`},
		{"scalar below the deepest node", `{"thing:/attributes":{"grant":["READ"],"revoke":[]}}`, "/attributes/q/r/s", `"v"`, `"v"`},
		{"scalar not readable", `{"thing:/features":{"grant":["READ"],"revoke":[]}}`, "/attributes/a", `1`, ""},
		{"deeper grant under revoke", `{"thing:/":{"grant":["READ"],"revoke":[]},"thing:/features":{"grant":[],"revoke":["READ"]},
			"thing:/features/other/properties/p":{"grant":["READ"],"revoke":[]}}`, "/features", "",
			`{"other":{"properties":{"p":1}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustEnforcer(t, `{"e":`+entry(a, tt.resources)+`}`, "ns")
			src := tt.value
			if src == "" {
				src = thing
			}
			if tt.path == "/features" {
				src = `{"featureY":{"properties":{"location":{"city":"X","zip":"1"},"on":true}},"other":{"properties":{"p":1}}}`
			}
			if tt.path == "/attributes" {
				src = `{"a":1,"empty":{},"arr":[1,2],"o":{"x":1,"y":{"z":2}}}`
			}
			v := mustJSON(t, src)
			before := string(ditto.EncodeJSON(v))
			got, ok := e.View(ditto.ResourceThing, ditto.MustPointer(tt.path), v, a)
			if after := string(ditto.EncodeJSON(v)); after != before {
				t.Fatalf("View modified its input: %s", after)
			}
			if tt.want == "" {
				if ok {
					t.Fatalf("View = %s, want nothing", ditto.EncodeJSON(got))
				}
				return
			}
			if !ok {
				t.Fatalf("View returned nothing, want %s", tt.want)
			}
			if !ditto.JSONEqual(mustJSON(t, tt.want), got) {
				t.Errorf("View = %s, want %s", ditto.EncodeJSON(got), tt.want)
			}
		})
	}
}

func TestEnforcerManySubjects(t *testing.T) {
	e := mustEnforcer(t, `{"e":`+entry(a, `{"thing:/":{"grant":["READ"],"revoke":[]}}`)+`}`, "ns")
	subjects := make([]string, 40)
	for i := range subjects {
		subjects[i] = "x:" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	subjects[39] = subA
	if !e.Unrestricted(ditto.ResourceThing, nil, subjects, ditto.PermRead) || !e.Partial(ditto.ResourceThing, nil, subjects, ditto.PermRead) {
		t.Error("the last of many subjects is not granted")
	}
	if _, ok := e.View(ditto.ResourceThing, nil, map[string]any{"a": "b"}, subjects); !ok {
		t.Error("view with many subjects is empty")
	}
}

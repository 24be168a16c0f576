package ditto

import (
	"reflect"
	"strings"
	"testing"
)

const sampleThing = `{"thingId":"ns:t","policyId":"ns:p","definition":"a:b:1",
 "attributes":{"manufacturer":"ACME","location":{"floor":3,"room":"a"},"nil":null},
 "features":{
  "lamp":{"definition":["x:lamp:1"],"properties":{"on":true,"color":"red"},"desiredProperties":{"on":false}},
  "fan":{"properties":{"on":false,"speed":3}},
  "bare":{}},
 "_revision":7}`

func TestParseFieldSelector(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // pointers, "" for none
		err  bool
	}{
		{"empty", "", nil, false},
		{"blank", "  ", nil, false},
		{"single", "thingId", []string{"/thingId"}, false},
		{"leading slash", "/attributes/location", []string{"/attributes/location"}, false},
		{"list", "thingId,policyId,_revision", []string{"/thingId", "/policyId", "/_revision"}, false},
		{"spaces", "thingId, attributes", []string{"/thingId", "/attributes"}, false},
		{"group", "attributes(location,manufacturer)", []string{"/attributes/location", "/attributes/manufacturer"}, false},
		{"group with path", "attributes/location(floor,room/x)", []string{"/attributes/location/floor", "/attributes/location/room/x"}, false},
		{"nested groups", "features(lamp(properties(on,color),definition),fan)",
			[]string{"/features/lamp/properties/on", "/features/lamp/properties/color", "/features/lamp/definition", "/features/fan"}, false},
		{"group then more", "attributes(a),thingId", []string{"/attributes/a", "/thingId"}, false},
		{"wildcard", "features/*/properties/on", []string{"/features/*/properties/on"}, false},
		{"duplicates dropped", "thingId,thingId,attributes(a),attributes/a", []string{"/thingId", "/attributes/a"}, false},
		{"metadata subpath", "_metadata/features/lamp", []string{"/_metadata/features/lamp"}, false},
		{"context", "_context/topic", []string{"/_context/topic"}, false},
		{"tilde", "attributes/a~0b", []string{"/attributes/a~0b"}, false},
		{"unknown root", "foo", nil, true},
		{"unknown root in list", "thingId,entries", nil, true},
		{"root via group", "features(x),bar(y)", nil, true},
		{"unbalanced open", "attributes(a", nil, true},
		{"unbalanced close", "attributes)a", nil, true},
		{"extra close", "attributes(a))", nil, true},
		{"empty group", "attributes()", nil, true},
		{"empty item", "thingId,,policyId", nil, true},
		{"trailing comma", "thingId,", nil, true},
		{"leading comma", ",thingId", nil, true},
		{"empty segment", "attributes//a", nil, true},
		{"only slash", "/", nil, true},
		{"group without path", "(thingId)", nil, true},
		{"text after group", "attributes(a)b", nil, true},
		{"control char", "attributes/a\x01", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := ParseFieldSelector(tt.in)
			if tt.err {
				wantCode(t, err, "things:field.selection.invalid")
				return
			}
			wantCode(t, err, "")
			var got []string
			for _, p := range fs.Pointers() {
				got = append(got, p.String())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Pointers = %q, want %q", got, tt.want)
			}
			if fs.IsEmpty() != (len(tt.want) == 0) {
				t.Fatalf("IsEmpty = %v", fs.IsEmpty())
			}
			// String re-parses to the same selector.
			again, err := ParseFieldSelector(fs.String())
			if err != nil || !reflect.DeepEqual(again.Pointers(), fs.Pointers()) {
				t.Fatalf("String %q does not round-trip: %v", fs.String(), err)
			}
		})
	}
}

func TestParsePolicyFieldSelector(t *testing.T) {
	fs, err := ParsePolicyFieldSelector("policyId,entries/owner(subjects),_revision")
	wantCode(t, err, "")
	if !fs.Has("entries") || !fs.Has("_revision") || fs.Has("imports") {
		t.Fatalf("Has wrong for %v", fs.Pointers())
	}
	_, err = ParsePolicyFieldSelector("attributes")
	wantCode(t, err, "things:field.selection.invalid")
	if d := err.(*Error).Description; !strings.Contains(d, "entries") || strings.Contains(d, "features") {
		t.Errorf("description %q does not name the policy roots", d)
	}
	_, err = ParseFieldSelectorFor("a,b(c)", []string{"a", "b"})
	wantCode(t, err, "")
	if len(ThingFieldRoots()) != 12 || len(PolicyFieldRoots()) == 0 {
		t.Fatal("roots")
	}
}

func TestFieldSelectorApply(t *testing.T) {
	thing := mustJSON(t, sampleThing)
	tests := []struct {
		name string
		sel  string
		want string
	}{
		{"spec example", "thingId,attributes(location)", `{"thingId":"ns:t","attributes":{"location":{"floor":3,"room":"a"}}}`},
		{"nested leaf", "attributes/location/floor", `{"attributes":{"location":{"floor":3}}}`},
		{"null value kept", "attributes/nil", `{"attributes":{"nil":null}}`},
		{"missing omitted", "attributes/nope,definition", `{"definition":"a:b:1"}`},
		{"missing parent omitted", "attributes/location/floor/deeper", `{}`},
		{"wildcard", "features/*/properties/on", `{"features":{"lamp":{"properties":{"on":true}},"fan":{"properties":{"on":false}}}}`},
		{"wildcard whole feature", "features/*", `{"features":{"lamp":{"definition":["x:lamp:1"],"properties":{"on":true,"color":"red"},"desiredProperties":{"on":false}},"fan":{"properties":{"on":false,"speed":3}},"bare":{}}}`},
		{"wildcard plus explicit", "features/*/properties/on,features/lamp/definition",
			`{"features":{"lamp":{"definition":["x:lamp:1"],"properties":{"on":true}},"fan":{"properties":{"on":false}}}}`},
		{"wildcard plus explicit whole", "features/*/properties/speed,features/lamp",
			`{"features":{"lamp":{"definition":["x:lamp:1"],"properties":{"on":true,"color":"red"},"desiredProperties":{"on":false}},"fan":{"properties":{"speed":3}}}}`},
		{"ancestor wins", "attributes/location/floor,attributes", `{"attributes":{"manufacturer":"ACME","location":{"floor":3,"room":"a"},"nil":null}}`},
		{"special field", "_revision,thingId", `{"_revision":7,"thingId":"ns:t"}`},
		{"star is literal outside features", "attributes/*", `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := ParseFieldSelector(tt.sel)
			wantCode(t, err, "")
			got := fs.Apply(thing)
			if !JSONEqual(got, mustJSON(t, tt.want)) {
				t.Fatalf("Apply(%s) = %s, want %s", tt.sel, EncodeJSON(got), tt.want)
			}
		})
	}
	// Apply copies: changing the result leaves the source alone.
	fs, _ := ParseFieldSelector("attributes")
	out := fs.Apply(thing).(map[string]any)
	out["attributes"].(map[string]any)["manufacturer"] = "changed"
	if v, _ := GetAt(thing, MustPointer("/attributes/manufacturer")); v != "ACME" {
		t.Fatal("Apply shares values with its input")
	}
	if got := fs.Apply("scalar"); !JSONEqual(got, map[string]any{}) {
		t.Fatalf("Apply on scalar = %v", got)
	}
	if got := (FieldSelector{}).Apply(thing); !JSONEqual(got, map[string]any{}) {
		t.Fatalf("zero selector Apply = %v", got)
	}
}

func FuzzParseFieldSelector(f *testing.F) {
	for _, s := range []string{"thingId,attributes(location)", "features/*/properties/on", "a(b(c,d),e)", "attributes((", "features(lamp(properties(on)))", ",", "/"} {
		f.Add(s)
	}
	thing := mustJSON(f, sampleThing)
	f.Fuzz(func(t *testing.T, s string) {
		fs, err := ParseFieldSelector(s)
		if err != nil {
			if errCode(err) != "things:field.selection.invalid" {
				t.Fatalf("%q: unexpected error %v", s, err)
			}
			return
		}
		for _, p := range fs.Pointers() {
			if len(p) == 0 || !strings.Contains(strings.Join(thingFieldRoots, ","), p[0]) {
				t.Fatalf("%q: bad pointer %v", s, p)
			}
		}
		if _, err := DecodeJSON(EncodeJSON(fs.Apply(thing))); err != nil {
			t.Fatalf("%q: Apply produced invalid JSON", s)
		}
	})
}

func BenchmarkFieldSelectorParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseFieldSelector("thingId,attributes(location,manufacturer),features/*/properties/on,_revision"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFieldSelectorApply(b *testing.B) {
	thing := mustJSON(b, sampleThing)
	fs, err := ParseFieldSelector("thingId,attributes(location,manufacturer),features/*/properties/on,_revision")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		fs.Apply(thing)
	}
}

// TestFieldSelectorMetadataWildcard: _metadata mirrors the thing, so its
// features take the wildcard feature ID too; elsewhere below _metadata
// "*" stays a key.
func TestFieldSelectorMetadataWildcard(t *testing.T) {
	thing := mustJSON(t, `{"_metadata":{"features":{"a":{"properties":{"t":{"unit":"C"},"h":1}},"b":{"properties":{"t":{"unit":"F"}}}},"attributes":{"x":{"k":1}}}}`)
	for sel, want := range map[string]string{
		"_metadata/features/*/properties/t":  `{"_metadata":{"features":{"a":{"properties":{"t":{"unit":"C"}}},"b":{"properties":{"t":{"unit":"F"}}}}}}`,
		"_metadata/attributes/*":             `{}`,
		"_metadata(features/*/properties/h)": `{"_metadata":{"features":{"a":{"properties":{"h":1}}}}}`,
	} {
		fs, err := ParseFieldSelector(sel)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(EncodeJSON(fs.Apply(thing))); got != string(EncodeJSON(mustJSON(t, want))) {
			t.Errorf("%s: %s, want %s", sel, got, want)
		}
	}
}

package ditto

import (
	"bytes"
	"testing"
)

func TestRawValueAt(t *testing.T) {
	doc := []byte(`{"attributes":{"a":[1,{"x":"}"}],"b":"q\"s"},"features":{"f":{"properties":{"p":12,"q":{"r":null}}}},"policyId":"ns:p"}`)
	tests := []struct {
		ptr  string
		want string
		ok   bool
	}{
		{"/features/f/properties/p", `12`, true},
		{"/features/f/properties/q/r", `null`, true},
		{"/features/f/properties/q", `{"r":null}`, true},
		{"/attributes/a", `[1,{"x":"}"}]`, true},
		{"/attributes/b", `"q\"s"`, true},
		{"/policyId", `"ns:p"`, true},
		{"/", string(doc), true},
		{"/features/f/properties/missing", "", false},
		{"/features/g", "", false},
		{"/attributes/a/0", "", false}, // arrays are not addressed by index
		{"/policyId/x", "", false},
	}
	for _, tt := range tests {
		p, err := ParsePointer(tt.ptr)
		if err != nil {
			t.Fatal(err)
		}
		s, e, ok := RawValueAt(doc, p)
		if ok != tt.ok || ok && string(doc[s:e]) != tt.want {
			t.Errorf("RawValueAt(%s) = %q %v, want %q %v", tt.ptr, doc[s:e], ok, tt.want, tt.ok)
		}
	}
	for _, bad := range []string{`{"a":1,"a":2}`, `{"\u0061":1}`, `{"a":1`, `{"a":1}x`, `{"a":01}`, `{"a" 1}`, `[{"a":1}]`} {
		if _, _, ok := RawValueAt([]byte(bad), Pointer{"a"}); ok {
			t.Errorf("RawValueAt(%s, /a) found a value", bad)
		}
	}
}

// FuzzRawValueAt checks RawValueAt against a full decode: on EncodeJSON's
// encoding it finds exactly the values GetAt finds, and splicing a new value
// in gives EncodeJSON of the document with SetAt applied. On other JSON
// that decodes, what it finds is what GetAt finds; malformed input must not
// make it panic.
func FuzzRawValueAt(f *testing.F) {
	f.Add([]byte(`{"features":{"f":{"properties":{"p":1}}}}`), "/features/f/properties/p")
	f.Add([]byte(`{"a":{"b\u00e9":[1,2],"c":{}}}`), "/a/b\u00e9")
	f.Add([]byte(` { "a" : { "b" : "x" } } `), "/a/b")
	f.Fuzz(func(t *testing.T, b []byte, ptr string) {
		p, err := ParsePointer(ptr)
		if err != nil {
			return
		}
		if s, e, ok := RawValueAt(b, p); ok {
			doc, err := DecodeJSON(b)
			if err != nil {
				return // malformed input: no panic is all that is promised
			}
			want, found := GetAt(doc, p)
			got, err := DecodeJSON(b[s:e])
			if !found || err != nil || !JSONEqual(got, want) {
				t.Fatalf("found %q (%v), GetAt says %v %v", b[s:e], err, want, found)
			}
		}
		doc, err := DecodeJSON(b)
		if err != nil {
			return
		}
		canon := EncodeJSON(doc)
		want, found := GetAt(doc, p)
		s, e, ok := RawValueAt(canon, p)
		if !ok && found && bytes.IndexByte(canon, '\\') >= 0 {
			return // escaped keys are left to a full decode
		}
		if ok != found {
			t.Fatalf("RawValueAt(%s, %s) ok %v, GetAt found %v", canon, p, ok, found)
		}
		if !ok {
			return
		}
		if got := string(canon[s:e]); got != string(EncodeJSON(want)) {
			t.Fatalf("RawValueAt(%s, %s) = %s, want %s", canon, p, got, EncodeJSON(want))
		}
		nv := map[string]any{"new": []any{true, "v"}}
		spliced := string(canon[:s]) + string(EncodeJSON(nv)) + string(canon[e:])
		if wantDoc := string(EncodeJSON(SetAt(doc, p, nv))); spliced != wantDoc {
			t.Fatalf("splice gave %s, want %s", spliced, wantDoc)
		}
	})
}

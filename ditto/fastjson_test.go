package things

import (
	"reflect"
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

func TestDecodeTrusted(t *testing.T) {
	for _, s := range []string{
		`{}`, `[]`, `null`, `true`, `-0.5e+10`, `"a\"b\\c\/d\n\u00e9\ud83d\ude00"`, `{"a":[1,{"b":null}],"c":"ü"}`,
		`{"a":1,"a":2}`, ` {"a":1}`, `{"a":01}`, `"\ud800"`, `[1,]`, `{"a":1}x`,
	} {
		t.Run(s, func(t *testing.T) {
			want, werr := ditto.DecodeJSON([]byte(s))
			got, gerr := decodeTrusted([]byte(s))
			if (werr == nil) != (gerr == nil) || !reflect.DeepEqual(got, want) {
				t.Fatalf("got %#v %v, want %#v %v", got, gerr, want, werr)
			}
		})
	}
}

// FuzzDecodeTrusted checks that the fast decoder accepts nothing
// encoding/json rejects and decodes everything to the same tree.
func FuzzDecodeTrusted(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e3,"x\u0001"],"b":{"c":null,"d":true}}`, `"\ud83d\ude00"`, `[-0]`, `{"k":"\\\/"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := fastDecoder{b: b}
		fast, ferr := d.value(0)
		if ferr != nil || d.i != len(b) {
			return
		}
		want, err := ditto.DecodeJSON(b)
		if err != nil {
			t.Fatalf("fast decoder accepted invalid JSON %q", b)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("%q: got %#v, want %#v", b, fast, want)
		}
	})
}

func TestEncodeTree(t *testing.T) {
	for _, s := range []string{`{"b":[1,{"z":null,"a":false}],"a":"x\u0001\b\f\n\r\t\"\\/<>&\u2028\u2029\u007f é"}`, `"\ud83d\ude00"`, `-1.5e-7`} {
		v, err := ditto.DecodeJSON([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(encodeTree(v)), string(ditto.EncodeJSON(v)); got != want {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	}
	odd := map[string]any{"bad": "\xff", "int": 3, "f": 1.5}
	if got, want := string(encodeTree(odd)), string(ditto.EncodeJSON(odd)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// FuzzEncodeTree checks that encodeTree and ditto.EncodeJSON agree byte
// for byte.
func FuzzEncodeTree(f *testing.F) {
	f.Add([]byte(`{"a":["\u2028",1e5,{"":true}],"\u00ff":"\\x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ditto.DecodeJSON(b)
		if err != nil {
			return
		}
		if got, want := string(encodeTree(v)), string(ditto.EncodeJSON(v)); got != want {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	})
}

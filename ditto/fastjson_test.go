package ditto

import (
	"reflect"
	"testing"
)

func TestDecodeJSONFast(t *testing.T) {
	for _, s := range []string{
		`{}`, `[]`, `null`, `true`, `-0.5e+10`, `"a\"b\\c\/d\n\u00e9\ud83d\ude00"`, `{"a":[1,{"b":null}],"c":"ü"}`,
		`{"a":1,"a":2}`, ` {"a":1}`, `{"a":01}`, `"\ud800"`, `[1,]`, `{"a":1}x`,
		" {\n\t\"a\" : [ 1 , 2 ] ,\r\"b\":{ } } ", "[ ]", "\"\xff\"", "\ufeff{}", `{"a" 1}`, `[1 2]`,
	} {
		t.Run(s, func(t *testing.T) {
			want, werr := decodeStd([]byte(s))
			got, gerr := DecodeJSON([]byte(s))
			if (werr == nil) != (gerr == nil) || !reflect.DeepEqual(got, want) {
				t.Fatalf("got %#v %v, want %#v %v", got, gerr, want, werr)
			}
		})
	}
}

// FuzzDecodeJSONFast checks that the fast decoder accepts nothing
// encoding/json rejects and decodes everything to the same tree.
func FuzzDecodeJSONFast(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e3,"x\u0001"],"b":{"c":null,"d":true}}`, `"\ud83d\ude00"`, `[-0]`, `{"k":"\\\/"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := fastDecoder{b: b}
		fast, ferr := d.value(0)
		d.skipSpace()
		if ferr != nil || d.i != len(b) {
			return
		}
		want, err := decodeStd(b)
		if err != nil {
			t.Fatalf("fast decoder accepted invalid JSON %q", b)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("%q: got %#v, want %#v", b, fast, want)
		}
	})
}

func TestEncodeJSONFast(t *testing.T) {
	for _, s := range []string{`{"b":[1,{"z":null,"a":false}],"a":"x\u0001\b\f\n\r\t\"\\/<>&\u2028\u2029\u007f é"}`, `"\ud83d\ude00"`, `-1.5e-7`} {
		v, err := DecodeJSON([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(EncodeJSON(v)), string(encodeReflect(v)); got != want {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	}
	odd := map[string]any{"bad": "\xff", "int": 3, "f": 1.5}
	if got, want := string(EncodeJSON(odd)), string(encodeReflect(odd)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// FuzzEncodeJSONFast checks that EncodeJSON and encoding/json agree byte
// for byte.
func FuzzEncodeJSONFast(f *testing.F) {
	f.Add([]byte(`{"a":["\u2028",1e5,{"":true}],"\u00ff":"\\x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeJSON(b)
		if err != nil {
			return
		}
		if got, want := string(EncodeJSON(v)), string(encodeReflect(v)); got != want {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	})
}

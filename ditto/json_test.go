package ditto

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want any
		err  bool
	}{
		{"number kept", `{"a":1.50,"b":12345678901234567890}`, map[string]any{"a": json.Number("1.50"), "b": json.Number("12345678901234567890")}, false},
		{"array", `[1,"x",null,true]`, []any{json.Number("1"), "x", nil, true}, false},
		{"null", `null`, nil, false},
		{"whitespace", "  {}  \n", map[string]any{}, false},
		{"trailing value", `{} {}`, nil, true},
		{"trailing garbage", `1x`, nil, true},
		{"truncated", `{"a":`, nil, true},
		{"empty", ``, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeJSON([]byte(tt.in))
			if tt.err {
				wantCode(t, err, "json.format.invalid")
				return
			}
			wantCode(t, err, "")
			if !reflect.DeepEqual(tt.want, got) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestEncodeJSON(t *testing.T) {
	v := mustJSON(t, `{"b":1,"a":{"d":"<&>","c":[1.0,2]}}`)
	if got, want := string(EncodeJSON(v)), `{"a":{"c":[1.0,2],"d":"<&>"},"b":1}`; got != want {
		t.Fatalf("EncodeJSON = %s, want %s", got, want)
	}
}

func TestGetSetDeleteAt(t *testing.T) {
	v := mustJSON(t, `{"attributes":{"location":{"floor":3}},"x":5}`)
	got, ok := GetAt(v, MustPointer("/attributes/location/floor"))
	if !ok || got != json.Number("3") {
		t.Fatalf("GetAt = %v %v", got, ok)
	}
	if _, ok := GetAt(v, MustPointer("/x/y")); ok {
		t.Fatal("GetAt through a scalar must fail")
	}
	if got, ok := GetAt(v, Pointer{}); !ok || !JSONEqual(got, v) {
		t.Fatal("GetAt root")
	}
	v = SetAt(v, MustPointer("/attributes/new/deep"), "v")
	v = SetAt(v, MustPointer("/x/y"), true) // replaces the scalar
	want := mustJSON(t, `{"attributes":{"location":{"floor":3},"new":{"deep":"v"}},"x":{"y":true}}`)
	if !JSONEqual(v, want) {
		t.Fatalf("SetAt = %s", EncodeJSON(v))
	}
	if SetAt(v, Pointer{}, "root") != "root" {
		t.Fatal("SetAt root must return the value")
	}
	if !DeleteAt(v, MustPointer("/attributes/location")) || DeleteAt(v, MustPointer("/attributes/location")) {
		t.Fatal("DeleteAt existence")
	}
	if DeleteAt(v, Pointer{}) || DeleteAt(v, MustPointer("/x/y/z")) {
		t.Fatal("DeleteAt of root or through scalar must fail")
	}
	want = mustJSON(t, `{"attributes":{"new":{"deep":"v"}},"x":{"y":true}}`)
	if !JSONEqual(v, want) {
		t.Fatalf("after DeleteAt = %s", EncodeJSON(v))
	}
}

func TestDeepCopy(t *testing.T) {
	v := mustJSON(t, `{"a":{"b":[1,{"c":2}]}}`)
	c := DeepCopy(v)
	SetAt(c, MustPointer("/a/x"), 1)
	c.(map[string]any)["a"].(map[string]any)["b"].([]any)[1].(map[string]any)["c"] = "changed"
	if !JSONEqual(v, mustJSON(t, `{"a":{"b":[1,{"c":2}]}}`)) {
		t.Fatalf("DeepCopy shares state: %s", EncodeJSON(v))
	}
}

func TestCheckKeys(t *testing.T) {
	tests := []struct {
		name string
		in   any
		ok   bool
	}{
		{"fine", mustJSON(t, `{"a":{"b":[{"c":1}]}}`), true},
		{"slash nested", map[string]any{"a": map[string]any{"b/c": 1}}, false},
		// Objects in arrays are values: their keys are not checked (Ditto).
		{"slash in array", []any{map[string]any{"x/": 1}}, true},
		{"empty key", map[string]any{"": 1}, false},
		{"scalar", "x/y", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckKeys(tt.in)
			if tt.ok {
				wantCode(t, err, "")
			} else {
				wantCode(t, err, "json.key.invalid")
			}
		})
	}
}

func TestJSONEqual(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		eq   bool
	}{
		{"numbers by value", `1.0`, `1`, true},
		{"exp numbers", `1e2`, `100`, true},
		{"different numbers", `1`, `2`, false},
		{"objects any order", `{"a":1,"b":[1,2]}`, `{"b":[1,2],"a":1}`, true},
		{"array order matters", `[1,2]`, `[2,1]`, false},
		{"missing key", `{"a":1}`, `{"a":1,"b":null}`, false},
		{"types differ", `"1"`, `1`, false},
		{"null null", `null`, `null`, true},
		{"bool", `true`, `false`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := JSONEqual(mustJSON(t, tt.a), mustJSON(t, tt.b)); got != tt.eq {
				t.Fatalf("JSONEqual(%s,%s) = %v", tt.a, tt.b, got)
			}
		})
	}
}

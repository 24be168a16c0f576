package ditto

import (
	"testing"
)

func TestMergePatch(t *testing.T) {
	tests := []struct {
		name          string
		target, patch string
		want          string
	}{
		// RFC 7396 appendix A.
		{"rfc replace", `{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{"rfc add", `{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{"rfc delete", `{"a":"b"}`, `{"a":null}`, `{}`},
		{"rfc delete one", `{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{"rfc array replace", `{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{"rfc scalar to array", `{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{"rfc nested", `{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{"rfc array of objects", `{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{"rfc arrays replace", `["a","b"]`, `["c","d"]`, `["c","d"]`},
		{"rfc object to array", `{"a":"b"}`, `["c"]`, `["c"]`},
		{"rfc null patch", `{"a":"foo"}`, `null`, `null`},
		{"rfc string patch", `{"a":"foo"}`, `"bar"`, `"bar"`},
		{"rfc null inside existing", `{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{"rfc scalar target", `[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{"rfc nulls in new object", `{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		{"nil target", `null`, `{"a":{"b":null,"c":1}}`, `{"a":{"c":1}}`},
		{"thing merge", `{"thingId":"ns:t","attributes":{"a":1},"features":{"f":{"properties":{"x":1,"y":2}}}}`,
			`{"definition":"a:b:1","features":{"f":{"properties":{"x":3.141,"y":null,"unit":"g"}}}}`,
			`{"thingId":"ns:t","definition":"a:b:1","attributes":{"a":1},"features":{"f":{"properties":{"x":3.141,"unit":"g"}}}}`},
		// Ditto regex delete.
		{"regex spec example", `{"properties":{"2021-12":1,"2022-01":2,"2022-02":3,"other":4}}`,
			`{"properties":{"{{ ~2022-.*~ }}":null,"2023-03":105.21}}`,
			`{"properties":{"2021-12":1,"other":4,"2023-03":105.21}}`},
		{"regex full match only", `{"a2022-01":1,"2022-01":2}`, `{"{{ ~2022-.*~ }}":null}`, `{"a2022-01":1}`},
		{"regex no spaces", `{"ab":1,"ac":2,"b":3}`, `{"{{~a.~}}":null}`, `{"b":3}`},
		{"regex slash form", `{"ab":1,"ac":2,"b":3}`, `{"{{ /a./ }}":null}`, `{"b":3}`},
		{"regex explicit key survives", `{"2022-01":{"x":1},"2022-02":2}`, `{"{{ ~2022-.*~ }}":null,"2022-01":{"y":2}}`,
			`{"2022-01":{"x":1,"y":2}}`},
		{"regex explicit set", `{"2022-01":1,"2022-02":2}`, `{"{{ ~2022-.*~ }}":null,"2022-02":5}`, `{"2022-02":5}`},
		{"regex in new object dropped", `{}`, `{"a":{"{{ ~.*~ }}":null,"b":1}}`, `{"a":{"b":1}}`},
		{"regex nested", `{"a":{"x1":1,"x2":2,"y":3},"x1":0}`, `{"a":{"{{ ~x\\d~ }}":null}}`, `{"a":{"y":3},"x1":0}`},
		{"regex with non-null is literal", `{"a":1}`, `{"{{ ~a~ }}":1}`, `{"a":1,"{{ ~a~ }}":1}`},
		{"invalid RE2 regex is literal", `{"ab":1,"{{ ~(?=a)b~ }}":2}`, `{"{{ ~(?=a)b~ }}":null}`, `{"ab":1}`},
		{"not a regex key", `{"{{ x }}":1,"a":1}`, `{"{{ x }}":null}`, `{"a":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			patch := mustJSON(t, tt.patch)
			before := EncodeJSON(patch)
			got := MergePatch(mustJSON(t, tt.target), patch)
			if !JSONEqual(got, mustJSON(t, tt.want)) {
				t.Fatalf("MergePatch = %s, want %s", EncodeJSON(got), tt.want)
			}
			if string(EncodeJSON(patch)) != string(before) {
				t.Fatal("MergePatch modified the patch")
			}
			// The result shares nothing with the patch.
			if m, ok := got.(map[string]any); ok {
				scribble(m)
				if string(EncodeJSON(patch)) != string(before) {
					t.Fatal("result aliases the patch")
				}
			}
		})
	}
}

// scribble overwrites every leaf of v in place.
func scribble(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if _, ok := e.(map[string]any); ok {
				scribble(e)
			} else if a, ok := e.([]any); ok {
				for i := range a {
					a[i] = "x"
				}
			} else {
				t[k] = "x"
			}
		}
	}
}

func TestMergeMinimize(t *testing.T) {
	tests := []struct {
		name          string
		target, patch string
		want          string // "" = nil (no change)
	}{
		{"no change", `{"a":1,"b":{"c":2}}`, `{"a":1,"b":{"c":2.0}}`, ""},
		{"empty patch", `{"a":1}`, `{}`, ""},
		{"delete missing", `{"a":1}`, `{"b":null,"c":{"d":null}}`, `{"c":{"d":null}}`},
		{"delete missing nested", `{"a":1,"c":{}}`, `{"c":{"d":null}}`, ""},
		{"partial change", `{"a":1,"b":{"c":2,"d":3}}`, `{"a":1,"b":{"c":2,"d":4},"e":5}`, `{"b":{"d":4},"e":5}`},
		{"delete existing", `{"a":1}`, `{"a":null}`, `{"a":null}`},
		{"array same", `{"a":[1,2]}`, `{"a":[1,2]}`, ""},
		{"array differs", `{"a":[1,2]}`, `{"a":[2,1]}`, `{"a":[2,1]}`},
		{"object replaces scalar", `{"a":1}`, `{"a":{"b":null,"c":1}}`, `{"a":{"b":null,"c":1}}`},
		{"regex matches", `{"x1":1,"y":2}`, `{"{{ ~x.~ }}":null}`, `{"{{ ~x.~ }}":null}`},
		{"regex matches nothing", `{"y":2}`, `{"{{ ~x.~ }}":null}`, ""},
		{"regex only explicit", `{"x1":1}`, `{"{{ ~x.~ }}":null,"x1":1}`, ""},
		{"scalar same", `5`, `5`, ""},
		{"scalar differs", `5`, `6`, `6`},
		{"object onto scalar", `5`, `{}`, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, patch := mustJSON(t, tt.target), mustJSON(t, tt.patch)
			tb, pb := EncodeJSON(target), EncodeJSON(patch)
			got := MergeMinimize(target, patch)
			if string(EncodeJSON(target)) != string(tb) || string(EncodeJSON(patch)) != string(pb) {
				t.Fatal("MergeMinimize modified an argument")
			}
			if tt.want == "" {
				if got != nil {
					t.Fatalf("MergeMinimize = %s, want nil", EncodeJSON(got))
				}
				if !JSONEqual(MergePatch(DeepCopy(target), patch), target) {
					t.Fatal("nil result but the patch changes the target")
				}
				return
			}
			if !JSONEqual(got, mustJSON(t, tt.want)) {
				t.Fatalf("MergeMinimize = %s, want %s", EncodeJSON(got), tt.want)
			}
			full := MergePatch(DeepCopy(target), patch)
			min := MergePatch(DeepCopy(target), got)
			if !JSONEqual(full, min) {
				t.Fatalf("minimized patch gives %s, full gives %s", EncodeJSON(min), EncodeJSON(full))
			}
		})
	}
	if !IsMergeRegexKey("{{ ~a~ }}") || IsMergeRegexKey("a") {
		t.Fatal("IsMergeRegexKey")
	}
}

func FuzzMergePatch(f *testing.F) {
	f.Add(`{"a":{"b":1,"c":[1]}}`, `{"a":{"b":null,"d":{"e":null}}}`)
	f.Add(`{"2022-01":1,"x":2}`, `{"{{ ~2022-.*~ }}":null,"y":3}`)
	f.Add(`[1]`, `null`)
	f.Add(`{"a":1}`, `{"{{ ~(~ }}":null}`)
	f.Fuzz(func(t *testing.T, ts, ps string) {
		if len(ts) > 4096 || len(ps) > 4096 {
			return
		}
		target, err1 := DecodeJSON([]byte(ts))
		patch, err2 := DecodeJSON([]byte(ps))
		if err1 != nil || err2 != nil {
			return
		}
		pb := EncodeJSON(patch)
		if patch == nil {
			// A top-level null deletes the value; MergeMinimize cannot
			// express that change (documented).
			return
		}
		got := MergePatch(DeepCopy(target), patch)
		if _, err := DecodeJSON(EncodeJSON(got)); err != nil {
			t.Fatalf("invalid result JSON: %v", err)
		}
		if string(EncodeJSON(patch)) != string(pb) {
			t.Fatal("patch modified")
		}
		// Merging the same patch again changes nothing: a regex never
		// deletes keys the same patch sets, and the rest is RFC 7396.
		again := MergePatch(DeepCopy(got), patch)
		if !JSONEqual(got, again) {
			t.Fatalf("merge not idempotent: %s then %s", EncodeJSON(got), EncodeJSON(again))
		}
		if min := MergeMinimize(got, patch); min != nil {
			t.Fatalf("minimized patch against the result is not empty: %s", EncodeJSON(min))
		}
		if min := MergeMinimize(target, patch); min != nil {
			if !JSONEqual(MergePatch(DeepCopy(target), min), got) {
				t.Fatal("minimized patch gives another result")
			}
		} else if !JSONEqual(target, got) {
			t.Fatal("MergeMinimize says no change, but the merge changed the target")
		}
	})
}

func BenchmarkMergePatch(b *testing.B) {
	thing := mustJSON(b, sampleThing)
	patch := mustJSON(b, `{"attributes":{"location":{"floor":4},"nil":null},"features":{"lamp":{"properties":{"on":false,"{{ ~col.*~ }}":null}}}}`)
	b.ReportAllocs()
	for b.Loop() {
		MergePatch(DeepCopy(thing), patch)
	}
}

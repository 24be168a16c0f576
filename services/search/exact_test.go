package search

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/ditto/rql"
)

// TestExactPlansVerifyOddThings checks the shortcut of exact plans (a
// candidate of an exact posting matches without Match for a reader of the
// whole thing) against JSON whose index keys say more than its decoded
// document: duplicate keys, keys holding '/', nested arrays, objects in
// arrays, and thingId or policyId members that differ from the record.
// Count, pages and pre-encoded items must equal Match on the decoded
// document.
func TestExactPlansVerifyOddThings(t *testing.T) {
	bodies := []string{
		`{"attributes":{"a":"x","a":"y"}}`,
		`{"attributes":{"a/b":"x","c":"x"}}`,
		`{"attributes":{"a":{"b":"x"}}}`,
		`{"attributes":{"a":[["x"]],"c":["x"]}}`,
		`{"attributes":{"a":[{"b":"x"}],"c":[[{"b":"x"}]]}}`,
		`{"attributes":{"a":"x"},"attributes":{"c":"x"}}`,
		`{"thingId":"ns:other","attributes":{"a":"x"}}`,
		`{"policyId":"pol:hidden","attributes":{"a":"x"}}`,
		`{"attributes":{"a":"x","flag":true,"c":"x"},"features":{"f":{"properties":{"p":"x"}},"g":{"properties":{"p":"y"}}}}`,
		`{"attributes":{"a":"x\u00e9","c":null},"features":{"f":{"properties":{"p":["x","y"]}}},"_metadata":{"a":1}}`,
	}
	src := &fakeSource{things: map[string]ThingState{}}
	type ref struct {
		id  string
		doc map[string]any
	}
	var refs []ref
	for i, b := range bodies {
		id := fmt.Sprintf("ns:t%02d", i)
		src.things[id] = ThingState{ID: id, PolicyID: "pol:open", Revision: 1, JSON: []byte(b)}
		m, err := decodeBody([]byte(b))
		if err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		m["thingId"], m["policyId"], m["_namespace"], m["_revision"] = id, "pol:open", "ns", json.Number("1")
		refs = append(refs, ref{id, m})
	}
	s := startSearch(t, src, testPolicies())
	filters := []string{
		`eq(attributes/a,"x")`, `eq(attributes/a,"y")`, `eq(attributes/a/b,"x")`, `eq(attributes/c,"x")`,
		`eq(attributes/c/b,"x")`, `in(attributes/a,"x","y")`, `exists(attributes/a/b)`, `exists(attributes/c)`,
		`like(attributes/a,"x*")`, `like(attributes/a,"*x")`, `ge(attributes/a,"x")`, `le(attributes/a,"x")`,
		`eq(thingId,"ns:other")`, `eq(policyId,"pol:hidden")`, `eq(features/*/properties/p,"y")`,
		`and(eq(attributes/a,"x"),eq(attributes/c,"x"))`, `or(eq(attributes/a,"y"),exists(attributes/flag))`,
		`eq(attributes/flag,true)`, `eq(attributes/a,"x\u00e9")`, ``,
	}
	admin := ditto.Auth{Subjects: []string{subjAdmin}}
	for _, f := range filters {
		t.Run(f, func(t *testing.T) {
			var want []string
			var node rql.Node
			if f != "" {
				node = rql.MustParse(f)
			}
			for _, r := range refs {
				if rql.Match(node, r.doc, rql.Env{}) {
					want = append(want, r.id)
				}
			}
			n, err := s.Count(context.Background(), Query{Filter: f, Auth: admin})
			if err != nil || n != len(want) {
				t.Fatalf("count = %d, %v; want %d (%v)", n, err, len(want), want)
			}
			for _, raw := range []bool{false, true} {
				got := searchAll(t, s, Query{Filter: f, Auth: admin, RawItems: raw}, "size(3)")
				if !slices.Equal(ids(got), want) {
					t.Fatalf("raw %t: items %v, want %v", raw, ids(got), want)
				}
				for _, it := range got {
					m := it.(map[string]any)
					for _, r := range refs {
						if r.id != m["thingId"] {
							continue
						}
						exp := map[string]any{}
						for _, k := range []string{"thingId", "policyId", "definition", "attributes", "features"} {
							if v, ok := r.doc[k]; ok {
								exp[k] = v
							}
						}
						if !sameJSON([]any{exp}, []any{m}) {
							t.Fatalf("raw %t: item %s, want %s", raw, ditto.EncodeJSON(m), ditto.EncodeJSON(exp))
						}
					}
				}
			}
		})
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\s`, "\n\r\t\x01\x1f", "é\u2028\u2029😀", "bad\xffutf8", "<&>"} {
		got := ditto.AppendJSONString(nil, s)
		if want := ditto.EncodeJSON(s); string(got) != string(want) {
			t.Errorf("AppendJSONString(%q) = %s, want %s", s, got, want)
		}
	}
}

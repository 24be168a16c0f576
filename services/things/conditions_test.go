package things

import (
	"context"
	"strings"
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

func TestHandlePreconditions(t *testing.T) {
	env := newEnv(t, DefaultConfig())
	mustOK(t)(env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{"attributes":{"a":1,"secret":"s"}}`), owner))
	env.policies.put(tid, map[string]any{"entries": map[string]any{
		"owner":  ownerPolicy(tid, owner)["entries"].(map[string]any)["DEFAULT"],
		"writer": mustJSON(t, `{"subjects":{"nginx:writer":{"type":"t"}},"resources":{"thing:/":{"grant":["WRITE"],"revoke":[]},"thing:/attributes/a":{"grant":["READ"],"revoke":[]}}}`),
	}})
	aETag := ditto.HashETag(mustJSON(t, `1`))
	cases := []struct {
		name    string
		action  ditto.Action
		path    string
		value   string
		subject string
		headers []string
		want    string
		status  int
	}{
		{"if-match rev ok", ditto.ActionMerge, "/", `{"attributes":{"b":2}}`, owner, []string{"if-match", `"rev:1"`}, "", 204},
		{"if-match rev stale", ditto.ActionMerge, "/", `{"attributes":{"b":3}}`, owner, []string{"if-match", `"rev:1"`}, "things:precondition.failed", 0},
		{"if-match rev on sub-resource", ditto.ActionModify, "/attributes/b", `3`, owner, []string{"if-match", `"rev:2"`}, "things:precondition.failed", 0},
		{"if-match star on missing", ditto.ActionModify, "/attributes/c", `3`, owner, []string{"if-match", `*`}, "things:precondition.failed", 0},
		{"if-none-match star create only", ditto.ActionModify, "/attributes/b", `3`, owner, []string{"if-none-match", `*`}, "things:precondition.failed", 0},
		{"if-none-match star new", ditto.ActionModify, "/attributes/c", `3`, owner, []string{"if-none-match", `*`}, "", 201},
		{"if-match hash", ditto.ActionModify, "/attributes/a", `1`, owner, []string{"if-match", aETag}, "", 204},
		{"retrieve if-none-match", ditto.ActionRetrieve, "/attributes/a", ``, owner, []string{"if-none-match", aETag}, "things:precondition.notmodified", 0},
		{"retrieve root if-none-match", ditto.ActionRetrieve, "/", ``, owner, []string{"if-none-match", `"rev:4"`}, "things:precondition.notmodified", 0},
		{"retrieve if-match stale", ditto.ActionRetrieve, "/", ``, owner, []string{"if-match", `"rev:1"`}, "things:precondition.failed", 0},
		{"put thing if-none-match star", ditto.ActionModify, "/", `{}`, owner, []string{"if-none-match", `*`}, "things:precondition.failed", 0},
		{"if-equal skip no-op", ditto.ActionModify, "/attributes/a", `1.0`, owner, []string{"if-equal", "skip"}, "things:precondition.failed", 0},
		{"if-equal skip change", ditto.ActionModify, "/attributes/a", `2`, owner, []string{"if-equal", "skip"}, "", 204},
		{"if-equal update no-op bumps", ditto.ActionModify, "/attributes/a", `2`, owner, nil, "", 204},
		{"merge skip no-op", ditto.ActionMerge, "/attributes", `{"a":2}`, owner, []string{"if-equal", "skip"}, "things:precondition.failed", 0},
		{"condition true", ditto.ActionModify, "/attributes/d", `1`, owner, []string{"condition", "eq(attributes/a,2)"}, "", 201},
		{"condition false", ditto.ActionModify, "/attributes/d", `2`, owner, []string{"condition", "eq(attributes/a,3)"}, "things:condition.failed", 0},
		{"condition on special fields", ditto.ActionModify, "/attributes/d", `3`, owner, []string{"condition", `and(eq(_namespace,"ns"),gt(_revision,1),eq(thingId,"ns:t"),exists(_modified))`}, "", 204},
		{"condition invalid", ditto.ActionModify, "/attributes/d", `2`, owner, []string{"condition", "eq(attributes/a"}, "things:condition.invalid", 0},
		{"condition on unreadable field", ditto.ActionModify, "/attributes/d", `2`, "nginx:writer", []string{"condition", "eq(attributes/secret,\"s\")"}, "things:condition.failed", 0},
		{"retrieve condition true", ditto.ActionRetrieve, "/attributes/a", ``, owner, []string{"condition", "eq(attributes/a,2)"}, "", 200},
		{"retrieve condition false", ditto.ActionRetrieve, "/attributes/a", ``, owner, []string{"condition", "eq(attributes/a,1)"}, "things:condition.failed", 0},
		{"condition on readable field", ditto.ActionModify, "/attributes/d", `4`, "nginx:writer", []string{"condition", "eq(attributes/a,2)"}, "", 204},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env.takeEvents()
			var val any
			if tc.value != "" {
				val = mustJSON(t, tc.value)
			}
			res, err := env.do(tc.action, tid, tc.path, val, tc.subject, tc.headers...)
			if errCode(err) != tc.want {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			ev := env.takeEvents()
			if err != nil {
				if de, ok := err.(*ditto.Error); ok && tc.want == "things:precondition.notmodified" && de.Status != 304 {
					t.Fatalf("status %d", de.Status)
				}
				if len(ev) != 0 {
					t.Fatalf("failed precondition published %d events", len(ev))
				}
				return
			}
			if res.Status != tc.status {
				t.Fatalf("status %d, want %d", res.Status, tc.status)
			}
			if tc.action != ditto.ActionRetrieve && len(ev) != 1 {
				t.Fatalf("%d events", len(ev))
			}
		})
	}
}

func TestHandleMerge(t *testing.T) {
	t.Run("merge creates the thing", func(t *testing.T) {
		env := newEnv(t, DefaultConfig())
		res := mustOK(t)(env.do(ditto.ActionMerge, tid, "/", mustJSON(t, `{"attributes":{"a":1,"n":null}}`), owner))
		if res.Status != 201 || resultJSON(res) != canon(t, `{"thingId":"ns:t","policyId":"ns:t","attributes":{"a":1}}`) {
			t.Fatalf("merge create: %+v %s", res, resultJSON(res))
		}
	})
	env := newEnv(t, DefaultConfig())
	mustOK(t)(env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{"attributes":{"a":1,"b":{"c":2,"d":3}},"features":{"f":{"properties":{"2022-01":1,"2022-02":2,"2023-01":3}}}}`), owner))
	cases := []struct {
		name, path, patch, headers, want, event string
	}{
		{"root", "/", `{"definition":"ns:m:1","attributes":{"b":{"c":null,"e":[1]}}}`, "",
			`{"thingId":"ns:t","policyId":"ns:t","definition":"ns:m:1","attributes":{"a":1,"b":{"d":3,"e":[1]}},"features":{"f":{"properties":{"2022-01":1,"2022-02":2,"2023-01":3}}}}`, ""},
		{"regex delete", "/features/f/properties", `{"{{ ~2022-.*~ }}":null,"2022-02":5}`, "",
			`{"thingId":"ns:t","policyId":"ns:t","definition":"ns:m:1","attributes":{"a":1,"b":{"d":3,"e":[1]}},"features":{"f":{"properties":{"2022-02":5,"2023-01":3}}}}`, ""},
		{"null deletes at path", "/attributes/a", `null`, "",
			`{"thingId":"ns:t","policyId":"ns:t","definition":"ns:m:1","attributes":{"b":{"d":3,"e":[1]}},"features":{"f":{"properties":{"2022-02":5,"2023-01":3}}}}`, ""},
		{"merge creates missing parents", "/features/g/properties/x", `{"y":1}`, "",
			`{"thingId":"ns:t","policyId":"ns:t","definition":"ns:m:1","attributes":{"b":{"d":3,"e":[1]}},"features":{"f":{"properties":{"2022-02":5,"2023-01":3}},"g":{"properties":{"x":{"y":1}}}}}`, ""},
		{"skip-minimizing-merge", "/attributes", `{"b":{"d":3,"e":[2]}}`, "skip-minimizing-merge",
			`{"thingId":"ns:t","policyId":"ns:t","definition":"ns:m:1","attributes":{"b":{"d":3,"e":[2]}},"features":{"f":{"properties":{"2022-02":5,"2023-01":3}},"g":{"properties":{"x":{"y":1}}}}}`, `{"b":{"e":[2]}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env.takeEvents()
			var h []string
			if tc.headers != "" {
				h = []string{"if-equal", tc.headers}
			}
			res := mustOK(t)(env.do(ditto.ActionMerge, tid, tc.path, mustJSON(t, tc.patch), owner, h...))
			if res.Status != 204 {
				t.Fatalf("status %d", res.Status)
			}
			rec, _ := env.svc.Lookup(tid)
			if string(rec.JSON) != canon(t, tc.want) {
				t.Fatalf("thing %s\nwant %s", rec.JSON, canon(t, tc.want))
			}
			ev := env.takeEvents()
			wantEv := tc.event
			if wantEv == "" {
				wantEv = tc.patch
			}
			if len(ev) != 1 || ev[0].Envelope.Topic != "ns/t/things/twin/events/merged" || string(ev[0].Envelope.Value) != canon(t, wantEv) ||
				ev[0].Envelope.Headers[ditto.HeaderContentType] != "application/merge-patch+json" {
				t.Fatalf("events %+v", ev)
			}
		})
	}
}

func TestHandleMergePartialWrite(t *testing.T) {
	env := newEnv(t, DefaultConfig())
	mustOK(t)(env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{"attributes":{"open":1,"locked":2}}`), owner))
	env.policies.put(tid, map[string]any{"entries": map[string]any{
		"owner":   ownerPolicy(tid, owner)["entries"].(map[string]any)["DEFAULT"],
		"limited": mustJSON(t, `{"subjects":{"nginx:limited":{"type":"t"}},"resources":{"thing:/attributes":{"grant":["WRITE"],"revoke":[]},"thing:/attributes/locked":{"grant":[],"revoke":["WRITE"]}}}`),
	}})
	cases := []struct{ name, path, patch, want string }{
		{"leaf allowed", "/attributes", `{"open":5}`, ""},
		{"leaf revoked", "/attributes", `{"locked":5}`, "things:thing.notmodifiable"},
		{"root with allowed leaves", "/", `{"attributes":{"open":6}}`, ""},
		{"root with a revoked leaf", "/", `{"attributes":{"open":7,"locked":1}}`, "things:thing.notmodifiable"},
		{"regex needs the object", "/attributes", `{"{{ ~o.*~ }}":null}`, "things:thing.notmodifiable"},
		{"modify not allowed", "/attributes", ``, "things:attributes.notmodifiable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			action := ditto.ActionMerge
			val := any(nil)
			if tc.patch == "" {
				action, val = ditto.ActionModify, mustJSON(t, `{}`)
			} else {
				val = mustJSON(t, tc.patch)
			}
			_, err := env.do(action, tid, tc.path, val, "nginx:limited")
			if errCode(err) != tc.want {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestHandleRetrieveViews(t *testing.T) {
	env := newEnv(t, DefaultConfig())
	mustOK(t)(env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{"definition":"a:b:c","attributes":{"public":{"x":1},"secret":2},"features":{"f":{"properties":{"on":true,"hidden":1}},"g":{"properties":{"on":false}}}}`), owner))
	env.policies.put(tid, map[string]any{"entries": map[string]any{
		"owner":  ownerPolicy(tid, owner)["entries"].(map[string]any)["DEFAULT"],
		"reader": mustJSON(t, `{"subjects":{"nginx:reader":{"type":"t"}},"resources":{"thing:/attributes/public":{"grant":["READ"],"revoke":[]},"thing:/features":{"grant":["READ"],"revoke":[]},"thing:/features/f/properties/hidden":{"grant":[],"revoke":["READ"]}}}`),
	}})
	cases := []struct{ name, subject, path, fields, want, code string }{
		{"partial reader root", "nginx:reader", "/", "", `{"thingId":"ns:t","attributes":{"public":{"x":1}},"features":{"f":{"properties":{"on":true}},"g":{"properties":{"on":false}}}}`, ""},
		{"partial reader attributes", "nginx:reader", "/attributes", "", `{"public":{"x":1}}`, ""},
		{"unreadable attribute", "nginx:reader", "/attributes/secret", "", "", "things:attribute.notfound"},
		{"revoked property", "nginx:reader", "/features/f/properties/hidden", "", "", "things:feature.property.notfound"},
		{"fields with specials", owner, "/", "thingId,_revision,_namespace,_created,_modified,attributes/public", `{"thingId":"ns:t","_revision":1,"_namespace":"ns","_created":"2026-11-27T06:00:01.123Z","_modified":"2026-11-27T06:00:01.123Z","attributes":{"public":{"x":1}}}`, ""},
		{"fields wildcard", owner, "/", "features/*/properties/on", `{"features":{"f":{"properties":{"on":true}},"g":{"properties":{"on":false}}}}`, ""},
		{"fields group", owner, "/", "attributes(secret,public/x)", `{"attributes":{"secret":2,"public":{"x":1}}}`, ""},
		{"fields on sub-resource", owner, "/attributes", "public", `{"public":{"x":1}}`, ""},
		{"fields wildcard on features", owner, "/features", "*/properties/on", `{"f":{"properties":{"on":true}},"g":{"properties":{"on":false}}}`, ""},
		{"fields selecting nothing", owner, "/attributes", "nothing", `{}`, ""},
		{"fields on partial view", "nginx:reader", "/", "attributes,_revision", `{"attributes":{"public":{"x":1}},"_revision":1}`, ""},
		{"inline policy", owner, "/", "_policy/entries/reader/subjects", `{"_policy":{"entries":{"reader":{"subjects":{"nginx:reader":{"type":"t"}}}}}}`, ""},
		{"invalid fields", owner, "/", "nope", "", "things:field.selection.invalid"},
		{"stranger", stranger, "/", "", "", "things:thing.notfound"},
		{"definition", owner, "/definition", "", `"a:b:c"`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h []string
			if tc.fields != "" {
				h = []string{"fields", tc.fields}
			}
			res, err := env.do(ditto.ActionRetrieve, tid, tc.path, nil, tc.subject, h...)
			if errCode(err) != tc.code {
				t.Fatalf("got %v, want %q", err, tc.code)
			}
			if err == nil && resultJSON(res) != canon(t, tc.want) {
				t.Fatalf("got %s\nwant %s", resultJSON(res), canon(t, tc.want))
			}
		})
	}
}

func TestRetrieveMany(t *testing.T) {
	env := newEnv(t, DefaultConfig())
	for _, id := range []string{"ns:a", "ns:b", "ns:c"} {
		mustOK(t)(env.do(ditto.ActionModify, id, "/", mustJSON(t, `{"attributes":{"n":1}}`), owner))
	}
	mustOK(t)(env.do(ditto.ActionModify, "ns:s", "/", mustJSON(t, `{}`), stranger))
	cmd := ditto.Command{Action: ditto.ActionRetrieve, Fields: "thingId,_revision", Auth: ditto.Auth{Subjects: []string{owner}}}
	got, err := env.svc.RetrieveMany(context.Background(), []string{"ns:c", "ns:missing", "ns:s", "bad", "ns:a"}, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(ditto.EncodeJSON(got)); s != `[{"_revision":1,"thingId":"ns:c"},{"_revision":1,"thingId":"ns:a"}]` {
		t.Fatalf("got %s", s)
	}
	n := 0
	env.svc.Range(func(r Record) bool { n++; return true })
	if n != 4 || env.svc.Len() != 4 {
		t.Fatalf("range saw %d, len %d", n, env.svc.Len())
	}
	if _, err := env.svc.RetrieveMany(context.Background(), nil, ditto.Command{Fields: "bad"}); errCode(err) != "things:field.selection.invalid" {
		t.Fatalf("bad fields: %v", err)
	}
	if !strings.Contains(string(ditto.EncodeJSON(got)), "ns:c") {
		t.Fatal("order")
	}
}

package things

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

const (
	tid      = "ns:t"
	stranger = "nginx:stranger"
)

func TestHandleSubResources(t *testing.T) {
	cases := []struct {
		name, base, path, value, value2 string
		notFound, notModifiable         string
	}{
		{"definition", `{}`, "/definition", `"ns:model:1.0"`, `"ns:model:2.0"`, "things:definition.notfound", "things:definition.notmodifiable"},
		{"attributes", `{}`, "/attributes", `{"a":1}`, `{"b":{"c":[1,2]}}`, "things:attributes.notfound", "things:attributes.notmodifiable"},
		{"attribute", `{}`, "/attributes/loc/floor", `3`, `{"x":"y"}`, "things:attribute.notfound", "things:attribute.notmodifiable"},
		{"features", `{}`, "/features", `{"f":{}}`, `{"g":{"properties":{"p":1}}}`, "things:features.notfound", "things:features.notmodifiable"},
		{"feature", `{}`, "/features/lamp", `{"properties":{"on":true}}`, `{}`, "things:feature.notfound", "things:feature.notmodifiable"},
		{"featureDefinition", `{"features":{"f":{}}}`, "/features/f/definition", `["ns:lamp:1"]`, `["ns:lamp:1","https://x.org/tm.json"]`, "things:feature.definition.notfound", "things:feature.definition.notmodifiable"},
		{"properties", `{"features":{"f":{}}}`, "/features/f/properties", `{"on":true}`, `{"on":false}`, "things:feature.properties.notfound", "things:feature.properties.notmodifiable"},
		{"property", `{"features":{"f":{}}}`, "/features/f/properties/a/b", `1.5`, `"s"`, "things:feature.property.notfound", "things:feature.property.notmodifiable"},
		{"desiredProperties", `{"features":{"f":{}}}`, "/features/f/desiredProperties", `{"on":true}`, `{}`, "things:feature.desiredProperties.notfound", "things:feature.desiredProperties.notmodifiable"},
		{"desiredProperty", `{"features":{"f":{}}}`, "/features/f/desiredProperties/on", `true`, `"x"`, "things:feature.desiredProperty.notfound", "things:feature.desiredProperty.notmodifiable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, DefaultConfig())
			mustOK(t)(env.do(ditto.ActionModify, tid, "/", mustJSON(t, tc.base), owner))
			env.takeEvents()

			steps := []struct {
				name        string
				action      ditto.Action
				subject     string
				value       string
				wantStatus  int
				wantCode    string
				wantValue   string
				wantEvent   string
				wantEtagPfx string
			}{
				{"retrieve missing", ditto.ActionRetrieve, owner, "", 0, tc.notFound, "", "", ""},
				{"delete missing", ditto.ActionDelete, owner, "", 0, tc.notFound, "", "", ""},
				{"create", ditto.ActionModify, owner, tc.value, 201, "", tc.value, "created", `"hash:`},
				{"retrieve", ditto.ActionRetrieve, owner, "", 200, "", tc.value, "", `"hash:`},
				{"replace", ditto.ActionModify, owner, tc.value2, 204, "", "", "modified", `"hash:`},
				{"retrieve replaced", ditto.ActionRetrieve, owner, "", 200, "", tc.value2, "", `"hash:`},
				{"stranger retrieve", ditto.ActionRetrieve, stranger, "", 0, tc.notFound, "", "", ""},
				{"stranger modify", ditto.ActionModify, stranger, tc.value, 0, tc.notModifiable, "", "", ""},
				// Ditto reports a denied merge at any path as the thing's (MergeIT).
				{"stranger merge", ditto.ActionMerge, stranger, tc.value, 0, "things:thing.notmodifiable", "", "", ""},
				{"stranger delete", ditto.ActionDelete, stranger, "", 0, tc.notModifiable, "", "", ""},
				{"merge", ditto.ActionMerge, owner, tc.value, 204, "", "", "merged", `"hash:`},
				{"delete", ditto.ActionDelete, owner, "", 204, "", "", "deleted", ""},
				{"retrieve deleted", ditto.ActionRetrieve, owner, "", 0, tc.notFound, "", "", ""},
			}
			for _, st := range steps {
				var val any
				if st.value != "" {
					val = mustJSON(t, st.value)
				}
				res, err := env.do(st.action, tid, tc.path, val, st.subject)
				if got := errCode(err); got != st.wantCode {
					t.Fatalf("%s: error %q, want %q (%v)", st.name, got, st.wantCode, err)
				}
				if err != nil {
					if ev := env.takeEvents(); len(ev) != 0 {
						t.Fatalf("%s: failed command published %d events", st.name, len(ev))
					}
					continue
				}
				if res.Status != st.wantStatus {
					t.Fatalf("%s: status %d, want %d", st.name, res.Status, st.wantStatus)
				}
				if st.wantValue != "" && resultJSON(res) != canon(t, st.wantValue) {
					t.Fatalf("%s: value %s, want %s", st.name, resultJSON(res), st.wantValue)
				}
				if !strings.HasPrefix(res.ETag, st.wantEtagPfx) {
					t.Fatalf("%s: etag %q", st.name, res.ETag)
				}
				ev := env.takeEvents()
				if st.wantEvent == "" {
					if len(ev) != 0 {
						t.Fatalf("%s: unexpected events %v", st.name, ev)
					}
					continue
				}
				if len(ev) != 1 {
					t.Fatalf("%s: %d events, want 1", st.name, len(ev))
				}
				e := ev[0]
				if want := "ns/t/things/twin/events/" + st.wantEvent; e.Envelope.Topic != want {
					t.Fatalf("%s: topic %s, want %s", st.name, e.Envelope.Topic, want)
				}
				if e.Envelope.Path != tc.path || e.Revision != res.Revision || e.Envelope.Revision != res.Revision {
					t.Fatalf("%s: event path %s rev %d/%d, result rev %d", st.name, e.Envelope.Path, e.Revision, e.Envelope.Revision, res.Revision)
				}
				if e.Envelope.Headers[ditto.HeaderOriginator] != owner {
					t.Fatalf("%s: originator %q", st.name, e.Envelope.Headers[ditto.HeaderOriginator])
				}
				if st.wantEvent == "deleted" && e.Envelope.Value != nil {
					t.Fatalf("%s: delete event has a value", st.name)
				}
				if st.wantEvent == "merged" && e.Envelope.Headers[ditto.HeaderContentType] != contentTypeMergePatch {
					t.Fatalf("%s: merged event headers %v", st.name, e.Envelope.Headers)
				}
			}
		})
	}
}

func TestHandleThingLifecycle(t *testing.T) {
	env := newEnv(t, DefaultConfig())
	ctx := context.Background()
	body := `{"attributes":{"manufacturer":"ACME"},"features":{"coffee":{"properties":{"brewed":0}}}}`
	res := mustOK(t)(env.do(ditto.ActionModify, tid, "/", mustJSON(t, body), owner, "correlation-id", "c1"))
	want := canon(t, `{"thingId":"ns:t","policyId":"ns:t","attributes":{"manufacturer":"ACME"},"features":{"coffee":{"properties":{"brewed":0}}}}`)
	if res.Status != 201 || resultJSON(res) != want || res.ETag != `"rev:1"` || res.Revision != 1 {
		t.Fatalf("create: %+v %s", res, resultJSON(res))
	}
	ev := env.takeEvents()
	if len(ev) != 1 || ev[0].Envelope.Topic != "ns/t/things/twin/events/created" || ev[0].Envelope.Headers[ditto.HeaderCorrelationID] != "c1" ||
		string(ev[0].State) != want || ev[0].PolicyID != tid || ev[0].Envelope.Timestamp != "2026-11-27T06:00:01.123Z" {
		t.Fatalf("create events: %+v", ev)
	}
	// Default policy: DEFAULT entry for the first subject.
	p := env.policies.policies[tid]
	if got := string(ditto.EncodeJSON(p)); !strings.Contains(got, `"DEFAULT":{"resources":{"message:/"`) || !strings.Contains(got, `"subjects":{"nginx:owner":{"type":"generated"}}`) {
		t.Fatalf("default policy %s", got)
	}

	res = mustOK(t)(env.do(ditto.ActionRetrieve, tid, "/", nil, owner))
	if res.Raw == nil || string(res.Raw) != want || res.ETag != `"rev:1"` {
		t.Fatalf("fast path retrieve: %+v", res)
	}
	res = mustOK(t)(env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{"attributes":{"x":1}}`), owner))
	if res.Status != 204 || res.Revision != 2 || res.ETag != `"rev:2"` {
		t.Fatalf("replace: %+v", res)
	}
	rec, _ := env.svc.Lookup(tid)
	if string(rec.JSON) != canon(t, `{"thingId":"ns:t","policyId":"ns:t","attributes":{"x":1}}`) || rec.Created.Time().Second() != 1 || rec.Modified.Time().Second() != 2 {
		t.Fatalf("record after replace: %+v %s", rec, rec.JSON)
	}
	if _, err := env.do(ditto.ActionCreate, tid, "/", mustJSON(t, `{}`), owner); errCode(err) != "things:thing.conflict" {
		t.Fatalf("create existing: %v", err)
	}
	if _, err := env.do(ditto.ActionDelete, tid, "/", nil, stranger); errCode(err) != "things:thing.notdeletable" {
		t.Fatalf("stranger delete: %v", err)
	}
	if _, err := env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{}`), stranger); errCode(err) != "things:thing.notmodifiable" {
		t.Fatalf("stranger modify: %v", err)
	}
	if _, err := env.do(ditto.ActionRetrieve, tid, "/", nil, stranger); errCode(err) != "things:thing.notfound" {
		t.Fatalf("stranger retrieve: %v", err)
	}
	env.takeEvents()
	res = mustOK(t)(env.do(ditto.ActionDelete, tid, "/", nil, owner))
	if res.Status != 204 || res.Revision != 3 {
		t.Fatalf("delete: %+v", res)
	}
	if ev := env.takeEvents(); len(ev) != 1 || ev[0].Envelope.Topic != "ns/t/things/twin/events/deleted" || ev[0].State != nil {
		t.Fatalf("delete events %+v", ev)
	}
	if _, ok := env.svc.Lookup(tid); ok {
		t.Fatal("deleted thing still visible")
	}
	if _, ok := env.policies.policies[tid]; !ok {
		t.Fatal("deleting the thing deleted its policy")
	}
	if _, err := env.do(ditto.ActionRetrieve, tid, "/attributes", nil, owner); errCode(err) != "things:thing.notfound" {
		t.Fatalf("retrieve deleted: %v", err)
	}
	// Re-create under the existing policy continues the revision history.
	res = mustOK(t)(env.do(ditto.ActionCreate, tid, "/", mustJSON(t, `{"policyId":"ns:t"}`), owner))
	if res.Status != 201 || res.Revision != 4 {
		t.Fatalf("re-create: %+v", res)
	}
	_ = ctx
}

func TestHandleMissingParents(t *testing.T) {
	env := newEnv(t, DefaultConfig())
	cases := []struct{ name, path, want string }{
		{"attribute of missing thing", "/attributes/a", "things:thing.notfound"},
		{"feature of missing thing", "/features/f", "things:thing.notfound"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := env.do(ditto.ActionModify, tid, tc.path, mustJSON(t, `{}`), owner); errCode(err) != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
		})
	}
	mustOK(t)(env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{}`), owner))
	for _, path := range []string{"/features/f/properties/on", "/features/f/properties", "/features/f/definition", "/features/f/desiredProperties/x"} {
		t.Run("missing feature "+path, func(t *testing.T) {
			val := mustJSON(t, `{"a":1}`)
			if strings.HasSuffix(path, "definition") {
				val = mustJSON(t, `["a:b:c"]`)
			}
			if _, err := env.do(ditto.ActionModify, tid, path, val, owner); errCode(err) != "things:feature.notfound" {
				t.Fatalf("modify: %v", err)
			}
			if _, err := env.do(ditto.ActionRetrieve, tid, path, nil, owner); errCode(err) != "things:feature.notfound" {
				t.Fatalf("retrieve: %v", err)
			}
		})
	}
}

func TestHandleValidation(t *testing.T) {
	env := newEnv(t, Config{MaxThingBytes: 400})
	mustOK(t)(env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{"features":{"f":{}}}`), owner))
	big := `"` + strings.Repeat("x", 500) + `"`
	cases := []struct {
		name   string
		action ditto.Action
		id     string
		path   string
		value  string
		want   string
	}{
		{"bad thing id", ditto.ActionModify, "no-colon", "/", `{}`, "things:id.invalid"},
		{"unknown path", ditto.ActionRetrieve, tid, "/foo", ``, "protocoladapter:unknown.path"},
		{"thingId mismatch", ditto.ActionModify, tid, "/", `{"thingId":"ns:other"}`, "things:id.notsettable"},
		{"merge thingId mismatch", ditto.ActionMerge, tid, "/", `{"thingId":"ns:other"}`, "things:id.notsettable"},
		{"attributes not object", ditto.ActionModify, tid, "/attributes", `"x"`, "json.format.invalid"},
		{"thing not object", ditto.ActionModify, tid, "/", `[1]`, "json.format.invalid"},
		{"invalid key", ditto.ActionModify, tid, "/attributes", `{"a\u0001":1}`, "json.key.invalid"},
		{"invalid nested key", ditto.ActionModify, tid, "/features/f/properties/p", `{"ok":{"b\u0002":1}}`, "json.key.invalid"},
		{"star feature", ditto.ActionModify, tid, "/features/*", `{}`, "json.key.invalid"},
		{"bad definition", ditto.ActionModify, tid, "/definition", `"nope"`, "things:definition.identifier.invalid"},
		{"empty feature definition", ditto.ActionModify, tid, "/features/f/definition", `[]`, "things:feature.definition.empty"},
		{"duplicate feature definition", ditto.ActionModify, tid, "/features/f/definition", `["a:b:c","a:b:c"]`, "json.format.invalid"},
		{"bad policyId", ditto.ActionModify, tid, "/policyId", `"nope"`, "policies:id.invalid"},
		{"policyId not deletable", ditto.ActionDelete, tid, "/policyId", ``, "things:policyId.notdeletable"},
		{"merge makes attributes a string", ditto.ActionMerge, tid, "/", `{"attributes":"x"}`, "things:merge.invalid"},
		{"merge removes policyId", ditto.ActionMerge, tid, "/", `{"policyId":null}`, "things:policyId.notdeletable"},
		{"merge removes thingId", ditto.ActionMerge, tid, "/", `{"thingId":null}`, "things:id.notdeletable"},
		{"merge invalid policyId", ditto.ActionMerge, tid, "/policyId", `"invalid"`, "policies:id.invalid"},
		{"merge empty thing creates nothing", ditto.ActionMerge, "ns:new", "/", `{}`, "things:merge.invalid"},
		{"value too large", ditto.ActionModify, tid, "/attributes/big", big, "things:thing.toolarge"},
		{"result too large", ditto.ActionModify, tid, "/attributes/big", `"` + strings.Repeat("x", 350) + `"`, "things:thing.toolarge"},
		{"bad if-equal", ditto.ActionModify, tid, "/attributes/a", `1`, "header.invalid"},
		{"create sub-resource", ditto.ActionCreate, tid, "/attributes", `{}`, "gateway:method.notallowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var val any
			if tc.value != "" {
				val = mustJSON(t, tc.value)
			}
			h := []string{}
			if tc.name == "bad if-equal" {
				h = append(h, "if-equal", "sometimes")
			}
			_, err := env.do(tc.action, tc.id, tc.path, val, owner, h...)
			if errCode(err) != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
		})
	}
	if rec, _ := env.svc.Lookup(tid); rec.Revision != 1 {
		t.Fatalf("failed commands changed the revision to %d", rec.Revision)
	}
}

func TestHandlePolicyID(t *testing.T) {
	env := newEnv(t, DefaultConfig())
	mustOK(t)(env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{}`), owner))
	env.policies.put("ns:other", ownerPolicy("ns:other", owner))
	env.policies.put("ns:foreign", ownerPolicy("ns:foreign", stranger))
	res := mustOK(t)(env.do(ditto.ActionRetrieve, tid, "/policyId", nil, owner))
	if res.Value != tid {
		t.Fatalf("policyId %v", res.Value)
	}
	if _, err := env.do(ditto.ActionModify, tid, "/policyId", "ns:missing", owner); errCode(err) != "things:policyId.notmodifiable" {
		t.Fatalf("missing policy: %v", err)
	}
	if _, err := env.do(ditto.ActionModify, tid, "/policyId", "ns:foreign", owner); errCode(err) != "things:policyId.notmodifiable" {
		t.Fatalf("foreign policy: %v", err)
	}
	if _, err := env.do(ditto.ActionMerge, tid, "/", mustJSON(t, `{"policyId":"ns:foreign"}`), owner); errCode(err) != "things:policyId.notmodifiable" {
		t.Fatalf("merge foreign policy: %v", err)
	}
	res = mustOK(t)(env.do(ditto.ActionModify, tid, "/policyId", "ns:other", owner))
	if res.Status != 204 {
		t.Fatalf("modify policyId: %+v", res)
	}
	if rec, _ := env.svc.Lookup(tid); rec.PolicyID != "ns:other" {
		t.Fatalf("policy id %s", rec.PolicyID)
	}
}

func TestHandlePolicyOnCreate(t *testing.T) {
	t.Run("inline policy with placeholder", func(t *testing.T) {
		env := newEnv(t, DefaultConfig())
		body := `{"policyId":"ns:p","_policy":{"entries":{"owner":{"subjects":{"{{ request:subjectId }}":{"type":"x"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]}}}}}}`
		res := mustOK(t)(env.do(ditto.ActionModify, tid, "/", mustJSON(t, body), owner))
		if res.Status != 201 || !strings.Contains(resultJSON(res), `"policyId":"ns:p"`) || strings.Contains(resultJSON(res), "_policy") {
			t.Fatalf("create: %s", resultJSON(res))
		}
		if got := string(ditto.EncodeJSON(env.policies.policies["ns:p"])); !strings.Contains(got, `"nginx:owner":{"type":"x"}`) {
			t.Fatalf("inline policy %s", got)
		}
		if _, err := env.do(ditto.ActionModify, tid, "/", mustJSON(t, body), owner); errCode(err) != "things:policy.notallowed" {
			t.Fatalf("_policy on existing: %v", err)
		}
	})
	t.Run("inline policy without WRITE for requester", func(t *testing.T) {
		env := newEnv(t, DefaultConfig())
		body := `{"_policy":{"entries":{"o":{"subjects":{"nginx:x":{"type":"x"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]}}}}}}`
		if _, err := env.do(ditto.ActionModify, tid, "/", mustJSON(t, body), owner); errCode(err) != "things:thing.notmodifiable" {
			t.Fatalf("got %v", err)
		}
		if len(env.policies.compensated) != 1 || env.policies.policies[tid] != nil {
			t.Fatalf("policy not compensated: %v", env.policies.compensated)
		}
	})
	t.Run("invalid inline policy", func(t *testing.T) {
		env := newEnv(t, DefaultConfig())
		if _, err := env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{"_policy":{"nope":1}}`), owner); errCode(err) != "things:policy.invalid" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("both policy and copy", func(t *testing.T) {
		env := newEnv(t, DefaultConfig())
		if _, err := env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{"_policy":{},"_copyPolicyFrom":"ns:x"}`), owner); errCode(err) != "things:policy.conflicting" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("copy policy by reference", func(t *testing.T) {
		env := newEnv(t, DefaultConfig())
		mustOK(t)(env.do(ditto.ActionModify, "ns:src", "/", mustJSON(t, `{}`), owner))
		res := mustOK(t)(env.do(ditto.ActionCreate, tid, "/", mustJSON(t, `{"_copyPolicyFrom":"{{ ref:things/ns:src/policyId }}"}`), owner))
		if res.Status != 201 {
			t.Fatalf("create: %+v", res)
		}
		if got := env.policies.policies[tid]; got == nil || got["policyId"] != tid || got["entries"] == nil {
			t.Fatalf("copied policy %v", got)
		}
		if _, err := env.do(ditto.ActionCreate, "ns:t2", "/", mustJSON(t, `{"_copyPolicyFrom":"ns:missing"}`), owner); errCode(err) != "policies:policy.notfound" {
			t.Fatalf("copy missing: %v", err)
		}
		if _, err := env.do(ditto.ActionCreate, "ns:t2", "/", mustJSON(t, `{"_copyPolicyFrom":"{{ ref:things/ns:missing/policyId }}"}`), owner); errCode(err) != "things:thing.notfound" {
			t.Fatalf("copy from missing thing: %v", err)
		}
		if _, err := env.do(ditto.ActionCreate, "ns:t2", "/", mustJSON(t, `{"_copyPolicyFrom":"{{ ref:topologies/ns:x/policyId }}"}`), owner); errCode(err) != "placeholder:placeholder.reference.notsupported" {
			t.Fatalf("unsupported reference: %v", err)
		}
	})
	t.Run("given policyId", func(t *testing.T) {
		env := newEnv(t, DefaultConfig())
		if _, err := env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{"policyId":"ns:missing"}`), owner); errCode(err) != "things:thing.notcreatable" {
			t.Fatalf("missing policy: %v", err)
		}
		env.policies.put("ns:foreign", ownerPolicy("ns:foreign", stranger))
		if _, err := env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{"policyId":"ns:foreign"}`), owner); errCode(err) != "things:thing.notmodifiable" {
			t.Fatalf("foreign policy: %v", err)
		}
		if len(env.policies.created) != 0 {
			t.Fatalf("policies created: %v", env.policies.created)
		}
	})
	t.Run("default policy already exists", func(t *testing.T) {
		env := newEnv(t, DefaultConfig())
		env.policies.put(tid, ownerPolicy(tid, stranger))
		_, err := env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{}`), owner)
		if errCode(err) != "things:thing.notcreatable" || !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("compensation when the thing create fails", func(t *testing.T) {
		env := newEnv(t, DefaultConfig())
		env.log.before = func() [][]byte {
			env.log.before = nil
			return [][]byte{createEntry(tid, `{"thingId":"ns:t","policyId":"ns:elsewhere"}`).encode()}
		}
		_, err := env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{}`), owner)
		if errCode(err) != "things:thing.conflict" {
			t.Fatalf("got %v", err)
		}
		if len(env.policies.compensated) != 1 || env.policies.policies[tid] != nil {
			t.Fatalf("compensated %v", env.policies.compensated)
		}
	})
	t.Run("if-match on a missing thing creates no policy", func(t *testing.T) {
		env := newEnv(t, DefaultConfig())
		_, err := env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{}`), owner, "if-match", `"rev:3"`)
		if errCode(err) != "things:precondition.failed" || len(env.policies.created) != 0 {
			t.Fatalf("got %v, created %v", err, env.policies.created)
		}
	})
	t.Run("no compensation when the outcome is unknown", func(t *testing.T) {
		env := newEnv(t, DefaultConfig())
		env.log.fail = context.DeadlineExceeded
		_, err := env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{}`), owner)
		if !errors.Is(err, context.DeadlineExceeded) || len(env.policies.compensated) != 0 {
			t.Fatalf("got %v, compensated %v", err, env.policies.compensated)
		}
	})
}

// FuzzHandleWrite feeds arbitrary JSON bodies to PUT and PATCH on the thing
// and on attributes: no panic, and whatever is stored stays a valid thing.
func FuzzHandleWrite(f *testing.F) {
	for _, s := range []string{`{}`, `{"attributes":{"a":1}}`, `{"features":{"f":{"definition":["a:b:c"],"properties":{"x":null}}}}`,
		`{"thingId":"ns:t","policyId":"ns:t","definition":"x"}`, `[1,2]`, `"s"`, `{"{{ ~.*~ }}":null}`, `{"_policy":{"entries":{}}}`} {
		f.Add([]byte(s), "/")
		f.Add([]byte(s), "/attributes")
	}
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		v, err := ditto.DecodeJSON(body)
		if err != nil {
			return
		}
		p, err := ditto.ParsePointer(path)
		if err != nil {
			return
		}
		env := newEnv(t, DefaultConfig())
		mustOK(t)(env.do(ditto.ActionModify, tid, "/", map[string]any{"features": map[string]any{"f": map[string]any{}}}, owner))
		for _, a := range []ditto.Action{ditto.ActionModify, ditto.ActionMerge, ditto.ActionRetrieve, ditto.ActionDelete} {
			_, _ = env.svc.Handle(context.Background(), ditto.Command{Action: a, Entity: tid, Path: p, Value: ditto.DeepCopy(v), Auth: ditto.Auth{Subjects: []string{owner}}})
			rec, ok := env.svc.Lookup(tid)
			if !ok {
				return
			}
			doc, err := ditto.DecodeJSON(rec.JSON)
			if err != nil {
				t.Fatalf("stored JSON invalid: %v", err)
			}
			if _, verr := (validator{id: tid}).thing(doc); verr != nil {
				t.Fatalf("stored thing invalid: %v: %s", verr, rec.JSON)
			}
		}
	})
}

func TestHandleConcurrentCreate(t *testing.T) {
	env := newEnv(t, DefaultConfig())
	// Another node created the thing and its default policy while this
	// command was being prepared: the PUT becomes a modify.
	inner := env.policies
	env.policies.handle = func(ctx context.Context, cmd ditto.Command) (ditto.Result, error) {
		inner.handle = nil
		env.log.mu.Lock()
		env.log.index++
		env.log.fsm.Apply(env.log.index, createEntry(tid, `{"thingId":"ns:t","policyId":"ns:t"}`).encode())
		env.log.mu.Unlock()
		if _, err := inner.Handle(ctx, cmd); err != nil {
			return ditto.Result{}, err
		}
		return inner.Handle(ctx, cmd) // the conflict this command sees
	}
	res := mustOK(t)(env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{"attributes":{"a":1}}`), owner))
	if res.Status != 204 || res.Revision != 2 {
		t.Fatalf("got %+v", res)
	}
	if len(env.policies.compensated) != 0 {
		t.Fatalf("compensated %v", env.policies.compensated)
	}
}

package policies

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// step is one command of a scenario and what it must produce.
type step struct {
	name      string
	r         req
	status    int    // wanted Result.Status (0 with code set)
	code      string // wanted error code
	value     string // wanted Result.Value as JSON ("" = not checked)
	etag      string // wanted ETag ("" = not checked)
	revision  int64  // wanted revision (0 = not checked)
	errStatus int    // wanted error status (0 = not checked)
}

func runSteps(t *testing.T, h *harness, steps []step) {
	t.Helper()
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			res, err := h.do(t, st.r)
			code, status := errCode(err)
			if code != st.code {
				t.Fatalf("error code = %q, want %q (err %v)", code, st.code, err)
			}
			if st.errStatus != 0 && status != st.errStatus {
				t.Errorf("error status = %d, want %d", status, st.errStatus)
			}
			if err != nil {
				return
			}
			if res.Status != st.status {
				t.Errorf("status = %d, want %d", res.Status, st.status)
			}
			if st.value != "" && !ditto.JSONEqual(mustJSON(t, st.value), res.Value) {
				t.Errorf("value = %s, want %s", jsonString(res.Value), st.value)
			}
			if st.etag != "" && res.ETag != st.etag {
				t.Errorf("etag = %s, want %s", res.ETag, st.etag)
			}
			if st.revision != 0 && res.Revision != st.revision {
				t.Errorf("revision = %d, want %d", res.Revision, st.revision)
			}
		})
	}
}

// thingsPolicies is the interface services/things consumes.
var _ interface {
	Handle(ctx context.Context, cmd ditto.Command) (ditto.Result, error)
	EnforcerFor(policyID, entityNamespace string) (ditto.Enforcer, bool)
	Compensate(ctx context.Context, policyID string, revision int64) error
} = (*Service)(nil)

var (
	mod = ditto.ActionModify
	get = ditto.ActionRetrieve
	del = ditto.ActionDelete
)

func TestHandleCRUD(t *testing.T) {
	h := newHarness(t, Config{})
	subject := `{"type":"t"}`
	runSteps(t, h, []step{
		{name: "create", r: req{action: mod, value: ownerPolicy}, status: 201, etag: `"rev:1"`, revision: 1},
		{name: "replace", r: req{action: mod, value: ownerPolicy}, status: 204, etag: `"rev:2"`, revision: 2},
		{name: "protocol create on existing", r: req{action: ditto.ActionCreate, value: ownerPolicy}, code: "policies:policy.conflict", errStatus: 409},
		{name: "retrieve", r: req{action: get}, status: 200, etag: `"rev:2"`},
		{name: "retrieve fields", r: req{action: get, fields: "policyId,_revision,_created,_modified"}, status: 200,
			value: `{"policyId":"ns:pol","_revision":2,"_created":"2030-01-02T03:04:05.000Z","_modified":"2030-01-02T03:04:05.000Z"}`},
		{name: "retrieve bad fields", r: req{action: get, fields: "thingId"}, code: "things:field.selection.invalid"},
		{name: "put entry", r: req{action: mod, path: ptr("entries", "extra"), value: `{"subjects":{"nginx:c":{"type":"x"}},"resources":{"thing:/a/":{"grant":["READ"]}}}`},
			status: 201, value: `{"subjects":{"nginx:c":{"type":"x"}},"resources":{"thing:/a":{"grant":["READ"],"revoke":[]}}}`},
		{name: "put subject new", r: req{action: mod, path: ptr("entries", "extra", "subjects", "nginx:d"), value: subject}, status: 201, value: subject},
		{name: "put subject again", r: req{action: mod, path: ptr("entries", "extra", "subjects", "nginx:d"), value: subject}, status: 204},
		{name: "get subject", r: req{action: get, path: ptr("entries", "extra", "subjects", "nginx:d")}, status: 200, value: subject},
		{name: "put resource", r: req{action: mod, path: ptr("entries", "extra", "resources", "thing:/features/x"), value: `{"grant":["WRITE"],"revoke":["READ"]}`},
			status: 201, value: `{"grant":["WRITE"],"revoke":["READ"]}`},
		{name: "get resource", r: req{action: get, path: ptr("entries", "extra", "resources", "thing:/features/x/")}, status: 200,
			value: `{"grant":["WRITE"],"revoke":["READ"]}`},
		{name: "put subjects", r: req{action: mod, path: ptr("entries", "extra", "subjects"), value: `{"nginx:e":{"type":"t"}}`}, status: 204},
		{name: "get subjects", r: req{action: get, path: ptr("entries", "extra", "subjects")}, status: 200, value: `{"nginx:e":{"type":"t"}}`},
		{name: "delete subject", r: req{action: del, path: ptr("entries", "extra", "subjects", "nginx:e")}, status: 204},
		{name: "delete subject again", r: req{action: del, path: ptr("entries", "extra", "subjects", "nginx:e")}, code: "policies:subject.notfound", errStatus: 404},
		{name: "get missing entry", r: req{action: get, path: ptr("entries", "missing")}, code: "policies:entry.notfound"},
		{name: "put subject of missing entry", r: req{action: mod, path: ptr("entries", "missing", "subjects", "nginx:x"), value: subject}, code: "policies:entry.notfound"},
		{name: "default namespaces", r: req{action: get, path: ptr("entries", "extra", "namespaces")}, status: 200, value: `[]`},
		{name: "default importable", r: req{action: get, path: ptr("entries", "extra", "importable")}, status: 200, value: `"implicit"`},
		{name: "put namespaces", r: req{action: mod, path: ptr("entries", "extra", "namespaces"), value: `["com.acme","com.acme.*"]`}, status: 204},
		{name: "get namespaces", r: req{action: get, path: ptr("entries", "extra", "namespaces")}, status: 200, value: `["com.acme","com.acme.*"]`},
		{name: "delete namespaces", r: req{action: del, path: ptr("entries", "extra", "namespaces")}, code: "gateway:method.notallowed", errStatus: 405},
		{name: "delete entries", r: req{action: del, path: ptr("entries")}, code: "gateway:method.notallowed"},
		{name: "merge", r: req{action: ditto.ActionMerge, value: `{}`}, code: "gateway:method.notallowed"},
		{name: "create sub resource", r: req{action: ditto.ActionCreate, path: ptr("entries", "x"), value: `{}`}, code: "gateway:method.notallowed"},
		// The rest of the path is the subject ID, as in Ditto's protocol.
		{name: "subject ID with a slash", r: req{action: get, path: ptr("entries", "extra", "subjects", "nginx:d", "type")}, code: "policies:subject.notfound"},
		{name: "unknown path", r: req{action: get, path: ptr("entries", "extra", "other", "x")}, code: "gateway:resource.notfound"},
		{name: "delete entry", r: req{action: del, path: ptr("entries", "extra")}, status: 204},
		{name: "get entries", r: req{action: get, path: ptr("entries")}, status: 200},
		{name: "delete", r: req{action: del}, status: 204},
		{name: "get deleted", r: req{action: get}, code: "policies:policy.notfound", errStatus: 404},
		{name: "delete deleted", r: req{action: del}, code: "policies:policy.notfound"},
		{name: "modify entry of deleted", r: req{action: mod, path: ptr("entries", "x"), value: ownerEntry}, code: "policies:policy.notfound"},
		{name: "recreate continues revisions", r: req{action: ditto.ActionCreate, value: ownerPolicy}, status: 201, etag: `"rev:12"`},
	})
}

const ownerEntry = `{"subjects":{"nginx:a":{"type":"t"}},"resources":{"policy:/":{"grant":["READ","WRITE"],"revoke":[]}}}`

func TestHandleEnforcement(t *testing.T) {
	h := newHarness(t, Config{})
	h.create(t, testPolicyID, ownerPolicy)
	c := []string{"nginx:c"}
	runSteps(t, h, []step{
		{name: "partial reader sees its part", r: req{action: get, subjects: b}, status: 200,
			value: `{"policyId":"ns:pol","entries":{"reader":{"subjects":{"nginx:b":{"type":"t"}},"resources":{
				"thing:/":{"grant":["READ"],"revoke":[]},"policy:/entries/reader":{"grant":["READ"],"revoke":[]}}}}}`},
		{name: "partial reader reads its entry", r: req{action: get, path: ptr("entries", "reader", "subjects"), subjects: b}, status: 200},
		{name: "partial reader cannot read other entry", r: req{action: get, path: ptr("entries", "owner"), subjects: b}, code: "policies:entry.notfound", errStatus: 404},
		{name: "partial reader cannot modify", r: req{action: mod, value: ownerPolicy, subjects: b}, code: "policies:policy.notmodifiable", errStatus: 403},
		{name: "partial reader cannot modify subject", r: req{action: mod, path: ptr("entries", "reader", "subjects", "nginx:b"), value: `{"type":"t"}`, subjects: b},
			code: "policies:subject.notmodifiable", errStatus: 403},
		{name: "stranger cannot read", r: req{action: get, subjects: c}, code: "policies:policy.notfound", errStatus: 404},
		{name: "stranger gets 403 on write without READ", r: req{action: del, path: ptr("entries", "reader"), subjects: c}, code: "policies:entry.notmodifiable", errStatus: 403},
		{name: "stranger deleting missing policy", r: req{action: del, id: "ns:other", subjects: c}, code: "policies:policy.notfound", errStatus: 404},
		{name: "invalid id", r: req{action: get, id: "no-namespace-separator"}, code: "policies:id.invalid", errStatus: 400},
	})
}

func TestHandleCreateAndLockout(t *testing.T) {
	h := newHarness(t, Config{})
	lockout := ditto.Headers{ditto.HeaderAllowPolicyLockout: "true"}
	onlyB := `{"entries":{"x":{"subjects":{"nginx:b":{"type":"t"}},"resources":{"policy:/":{"grant":["READ","WRITE"],"revoke":[]}}}}}`
	expiring := `{"entries":{"x":{"subjects":{"nginx:a":{"type":"t","expiry":"2099-01-01T00:00:00Z"}},"resources":{"policy:/":{"grant":["READ","WRITE"],"revoke":[]}}}}}`
	runSteps(t, h, []step{
		{name: "create without own WRITE", r: req{action: mod, id: "ns:p1", value: onlyB}, code: "policies:policy.notcreatable", errStatus: 403},
		{name: "create without own WRITE allowed by header", r: req{action: mod, id: "ns:p1", value: onlyB, headers: lockout}, status: 201},
		{name: "create with only an expiring writer", r: req{action: mod, id: "ns:p2", value: expiring}, code: "policies:policy.modificationinvalid"},
		{name: "create", r: req{action: mod, id: "ns:p3", value: ownerPolicy}, status: 201},
		{name: "revoke own WRITE on policy", r: req{action: mod, id: "ns:p3", path: ptr("entries", "owner", "resources", "policy:/"), value: `{"grant":["READ"],"revoke":[]}`},
			code: "policies:entry.modificationinvalid", errStatus: 403},
		{name: "delete owner entry", r: req{action: del, id: "ns:p3", path: ptr("entries", "owner")}, code: "policies:entry.modificationinvalid"},
		{name: "replace entries without writer", r: req{action: mod, id: "ns:p3", path: ptr("entries"), value: `{}`}, code: "policies:policy.modificationinvalid"},
		{name: "make the owner expire", r: req{action: mod, id: "ns:p3", path: ptr("entries", "owner", "subjects", "nginx:a"), value: `{"type":"t","expiry":"2099-01-01T00:00:00Z"}`},
			code: "policies:entry.modificationinvalid"},
		{name: "revoke in another entry", r: req{action: mod, id: "ns:p3", path: ptr("entries", "deny"),
			value: `{"subjects":{"nginx:a":{"type":"t"}},"resources":{"policy:/":{"grant":[],"revoke":["WRITE"]}}}`}, code: "policies:entry.modificationinvalid"},
		{name: "second writer keeps the policy safe", r: req{action: mod, id: "ns:p3", path: ptr("entries", "second"),
			value: `{"subjects":{"nginx:z":{"type":"t"}},"resources":{"policy:/":{"grant":["WRITE"],"revoke":[]}}}`}, status: 201},
		{name: "now the owner may go", r: req{action: del, id: "ns:p3", path: ptr("entries", "owner")}, status: 204},
		// allow-policy-lockout only lifts the create check above (as in Ditto).
		{name: "the header does not lift lockout prevention", r: req{action: mod, id: "ns:p1", path: ptr("entries"), value: `{}`, subjects: b, headers: lockout},
			code: "policies:policy.modificationinvalid", errStatus: 403},
		{name: "nor on entry delete", r: req{action: del, id: "ns:p1", path: ptr("entries", "x"), subjects: b, headers: lockout},
			code: "policies:entry.modificationinvalid", errStatus: 403},
		{name: "nor on create", r: req{action: mod, id: "ns:p4", value: `{"entries":{}}`, headers: lockout}, code: "policies:policy.modificationinvalid", errStatus: 403},
		{name: "still readable", r: req{action: get, id: "ns:p1", subjects: b}, status: 200},
		{name: "expiry in the past", r: req{action: mod, id: "ns:p1", path: ptr("entries", "x", "subjects", "nginx:y"), value: `{"type":"t","expiry":"2020-01-01T00:00:00Z"}`, subjects: b},
			code: "policies:subjectexpiry.invalid", errStatus: 400},
		{name: "expiry in the past in a whole policy", r: req{action: mod, id: "ns:p5", value: `{"entries":{"o":{"subjects":{"nginx:a":{"type":"t"},"nginx:y":{"type":"t","expiry":"2000-01-01T00:00:00Z"}},"resources":{"policy:/":{"grant":["READ","WRITE"],"revoke":[]}}}}}`},
			code: "policies:subjectexpiry.invalid", errStatus: 400},
		{name: "unparsable expiry", r: req{action: mod, id: "ns:p1", path: ptr("entries", "x", "subjects", "nginx:y"), value: `{"type":"t","expiry":"notadate"}`, subjects: b},
			code: "policies:subjectexpiry.invalid", errStatus: 400},
		{name: "expiry in the future", r: req{action: mod, id: "ns:p1", path: ptr("entries", "x", "subjects", "nginx:y"), value: `{"type":"t","expiry":"2099-01-01T00:00:00Z"}`, subjects: b}, status: 201},
	})
}

func TestHandlePreconditions(t *testing.T) {
	h := newHarness(t, Config{})
	h.create(t, testPolicyID, ownerPolicy)
	subj := ptr("entries", "owner", "subjects", "nginx:a")
	sub := h.mustDo(t, req{action: get, path: subj})
	hdr := func(k, v string) ditto.Headers { return ditto.Headers{k: v} }
	runSteps(t, h, []step{
		{name: "if-match current", r: req{action: mod, value: ownerPolicy, headers: hdr("if-match", `"rev:1"`)}, status: 204, etag: `"rev:2"`},
		{name: "if-match stale", r: req{action: mod, value: ownerPolicy, headers: hdr("if-match", `"rev:1"`)}, code: "policies:precondition.failed", errStatus: 412},
		{name: "if-none-match star on existing", r: req{action: mod, value: ownerPolicy, headers: hdr("if-none-match", "*")}, code: "policies:precondition.failed"},
		{name: "if-none-match star creates", r: req{action: mod, id: "ns:new", value: ownerPolicy, headers: hdr("if-none-match", "*")}, status: 201},
		{name: "if-match star on missing", r: req{action: mod, id: "ns:new2", value: ownerPolicy, headers: hdr("if-match", "*")}, code: "policies:precondition.failed"},
		{name: "retrieve not modified", r: req{action: get, headers: hdr("if-none-match", `"rev:2"`)}, code: "policies:precondition.notmodified", errStatus: 304},
		{name: "retrieve modified since", r: req{action: get, headers: hdr("if-none-match", `"rev:1"`)}, status: 200},
		{name: "retrieve if-match fails", r: req{action: get, headers: hdr("if-match", `"rev:1"`)}, code: "policies:precondition.failed"},
		{name: "sub-resource hash etag", r: req{action: get, path: subj, headers: hdr("if-none-match", sub.ETag)}, code: "policies:precondition.notmodified"},
		{name: "sub-resource if-match", r: req{action: mod, path: subj, value: `{"type":"other"}`, headers: hdr("if-match", sub.ETag)}, status: 204},
		{name: "sub-resource if-match stale", r: req{action: mod, path: subj, value: `{"type":"t"}`, headers: hdr("if-match", sub.ETag)}, code: "policies:precondition.failed"},
		{name: "if-match star on missing subject", r: req{action: mod, path: ptr("entries", "owner", "subjects", "x:y"), value: `{"type":"t"}`, headers: hdr("if-match", "*")},
			code: "policies:precondition.failed"},
	})
	if !strings.HasPrefix(sub.ETag, `"hash:`) {
		t.Errorf("sub-resource etag = %s, want a hash tag", sub.ETag)
	}
}

func TestHandleValidation(t *testing.T) {
	h := newHarness(t, Config{MaxPolicyBytes: 2000})
	withEntry := func(label, e string) string {
		return `{"entries":{"owner":` + ownerEntry + `,"` + label + `":` + e + `}}`
	}
	imports := func(n int) string {
		var parts []string
		for i := range n {
			parts = append(parts, fmt.Sprintf(`"ns:i%d":{}`, i))
		}
		return `{"imports":{` + strings.Join(parts, ",") + `},"entries":{"owner":` + ownerEntry + `}}`
	}
	tests := []struct {
		name, id, body, code string
	}{
		{"not an object", "", `[]`, "policies:policy.invalid"},
		{"unknown field", "", `{"entries":{},"foo":1}`, "policies:policy.invalid"},
		{"id mismatch", "", `{"policyId":"ns:other","entries":{}}`, "policies:id.notsettable"},
		{"label with a slash", "", withEntry("a/b", ownerEntry), "json.key.invalid"},
		{"imported label", "", withEntry("imported-x", ownerEntry), "policies:label.invalid"},
		{"nsimported label", "", withEntry("nsimported-x", ownerEntry), "policies:label.invalid"},
		{"entry without resources", "", withEntry("x", `{"subjects":{}}`), "policies:entry.invalid"},
		{"subject without type", "", withEntry("x", `{"subjects":{"a:b":{}},"resources":{}}`), "policies:entry.invalid"},
		{"subject id without issuer", "", withEntry("x", `{"subjects":{"ab":{"type":"t"}},"resources":{}}`), "policies:subjectid.invalid"},
		{"bad expiry", "", withEntry("x", `{"subjects":{"a:b":{"type":"t","expiry":"tomorrow"}},"resources":{}}`), "policies:subjectexpiry.invalid"},
		{"bad resource type", "", withEntry("x", `{"subjects":{},"resources":{"foo:/":{"grant":[],"revoke":[]}}}`), "policies:resource.invalid"},
		{"bad permission", "", withEntry("x", `{"subjects":{},"resources":{"thing:/":{"grant":["DELETE"],"revoke":[]}}}`), "policies:resource.invalid"},
		{"duplicate resource key", "", withEntry("x", `{"subjects":{},"resources":{"thing:/":{},"thing:":{}}}`), "policies:resource.invalid"},
		{"bad namespaces", "", withEntry("x", `{"subjects":{},"resources":{},"namespaces":["1bad"]}`), "policies:entry.namespaces.invalid"},
		{"bad importable", "", withEntry("x", `{"subjects":{},"resources":{},"importable":"sometimes"}`), "policies:entry.importable.invalid"},
		{"too many imports", "", imports(11), "policies:imports.toolarge"},
		{"self import", "", `{"imports":{"ns:pol":{}},"entries":{}}`, "policies:import.invalid"},
		{"missing import", "", imports(1), "policies:policy.notfound"},
		{"too large", "", withEntry("x", `{"subjects":{"a:`+strings.Repeat("x", 2000)+`":{"type":"t"}},"resources":{}}`), "policies:policy.toolarge"},
		{"invalid id", "bad id", ownerPolicy, "policies:id.invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.do(t, req{action: mod, id: tt.id, value: tt.body})
			if code, _ := errCode(err); code != tt.code {
				t.Errorf("code = %q, want %q", code, tt.code)
			}
		})
	}
	t.Run("expiry rounded up", func(t *testing.T) {
		res := h.mustDo(t, req{action: mod, value: withEntry("x", `{"subjects":{"a:b":{"type":"t","expiry":"2099-05-01T10:00:01+02:00"}},"resources":{}}`)})
		got, _ := ditto.GetAt(res.Value, ptr("entries", "x", "subjects", "a:b", "expiry"))
		if got != "2099-05-01T09:00:00Z" {
			t.Errorf("expiry = %v", got)
		}
	})
}

func TestHandleReadBarrier(t *testing.T) {
	h := newHarness(t, Config{})
	h.create(t, testPolicyID, ownerPolicy)
	h.mustDo(t, req{action: get, headers: ditto.Headers{ditto.HeaderConsistency: "local"}})
	if _, barriers := h.log.counts(); barriers != 0 {
		t.Errorf("consistency=local used %d barriers", barriers)
	}
	h.mustDo(t, req{action: get})
	if _, barriers := h.log.counts(); barriers != 1 {
		t.Errorf("linearizable read used %d barriers", barriers)
	}
	boom := errors.New("no quorum")
	h.log.BarrierErr = func() error { return boom }
	if _, err := h.do(t, req{action: get}); !errors.Is(err, boom) {
		t.Errorf("barrier failure: %v", err)
	}
	h.log.ProposeErr = func([]byte) error { return boom }
	if _, err := h.do(t, req{action: mod, value: ownerPolicy}); !errors.Is(err, boom) {
		t.Errorf("propose failure: %v", err)
	}
}

func TestImports(t *testing.T) {
	h := newHarness(t, Config{})
	h.create(t, "ns:tmpl", `{"entries":{
		"owner":`+ownerEntry+`,
		"impl":{"subjects":{"x:impl":{"type":"t"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}},
		"expl":{"subjects":{"x:expl":{"type":"t"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}},"importable":"explicit"},
		"expl2":{"subjects":{"x:expl2":{"type":"t"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}},"importable":"explicit"},
		"never":{"subjects":{"x:never":{"type":"t"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}},"importable":"never"}}}`)
	h.create(t, testPolicyID, `{"imports":{"ns:tmpl":{"entries":["expl"]}},"entries":{"owner":`+ownerEntry+`}}`)
	tests := []struct {
		subject string
		want    bool
	}{{"x:impl", true}, {"x:expl", true}, {"x:expl2", false}, {"x:never", false}}
	for _, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			enf, ok := h.s.Enforcer(testPolicyID)
			if !ok {
				t.Fatal("no enforcer")
			}
			if got := enf.Unrestricted(ditto.ResourceThing, nil, []string{tt.subject}, ditto.PermRead); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("resolved view", func(t *testing.T) {
		view := ditto.Headers{ditto.HeaderPolicyView: "resolved", ditto.HeaderIfNoneMatch: "*"}
		res := h.mustDo(t, req{action: get, headers: view})
		if res.ETag != "" {
			t.Errorf("resolved view has the tag %s", res.ETag)
		}
		m := res.Value.(map[string]any)
		entries := m["entries"].(map[string]any)
		var labels []string
		for l := range entries {
			labels = append(labels, l)
		}
		sort.Strings(labels)
		if want := []string{"imported-ns:tmpl-expl", "imported-ns:tmpl-impl", "imported-ns:tmpl-owner", "owner"}; !slices.Equal(labels, want) {
			t.Errorf("resolved entries %v, want %v", labels, want)
		}
		if _, has := m["imports"]; has || m["policyId"] != testPolicyID {
			t.Errorf("resolved policy %v", m)
		}
		plain := h.mustDo(t, req{action: get, headers: ditto.Headers{ditto.HeaderPolicyView: "original"}})
		if plain.ETag == "" || len(plain.Value.(map[string]any)["entries"].(map[string]any)) != 1 {
			t.Errorf("original view %v %s", plain.Value, plain.ETag)
		}
	})
	t.Run("change of the imported policy is seen", func(t *testing.T) {
		h.mustDo(t, req{action: del, id: "ns:tmpl", path: ptr("entries", "impl")})
		enf, _ := h.s.Enforcer(testPolicyID)
		if enf.Unrestricted(ditto.ResourceThing, nil, []string{"x:impl"}, ditto.PermRead) {
			t.Error("deleted imported entry still grants")
		}
	})
	t.Run("import CRUD", func(t *testing.T) {
		runSteps(t, h, []step{
			{name: "get imports", r: req{action: get, path: ptr("imports")}, status: 200, value: `{"ns:tmpl":{"entries":["expl"]}}`},
			{name: "put import entries", r: req{action: mod, path: ptr("imports", "ns:tmpl", "entries"), value: `["expl","expl2"]`}, status: 204},
			{name: "get import", r: req{action: get, path: ptr("imports", "ns:tmpl")}, status: 200, value: `{"entries":["expl","expl2"]}`},
			{name: "import unreadable policy", r: req{action: mod, path: ptr("imports", "ns:secret"), value: `{}`}, code: "policies:policy.notfound"},
			{name: "delete import", r: req{action: del, path: ptr("imports", "ns:tmpl")}, status: 204},
			{name: "get missing import", r: req{action: get, path: ptr("imports", "ns:tmpl")}, code: "policies:import.notfound"},
			{name: "delete imports", r: req{action: del, path: ptr("imports")}, status: 204},
			{name: "no imports: none", r: req{action: get, path: ptr("imports")}, status: 200, value: `{}`},
			{name: "import without lists", r: req{action: mod, path: ptr("imports", "ns:tmpl"), value: `{}`}, status: 201},
			{name: "its entries: none named", r: req{action: get, path: ptr("imports", "ns:tmpl", "entries")}, status: 200, value: `[]`},
			{name: "its transitive imports: none", r: req{action: get, path: ptr("imports", "ns:tmpl", "transitiveImports")}, status: 200, value: `[]`},
			{name: "entries of a missing import", r: req{action: get, path: ptr("imports", "ns:other", "entries")}, code: "policies:import.notfound"},
		})
	})
}

func TestEnforcerForNamespace(t *testing.T) {
	h := newHarness(t, Config{})
	h.create(t, testPolicyID, `{"entries":{"owner":`+ownerEntry+`,
		"acme":{"subjects":{"x:acme":{"type":"t"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}},"namespaces":["com.acme"]}}}`)
	for ns, want := range map[string]bool{"com.acme": true, "ns": false, "com.acme.sub": false} {
		t.Run(ns, func(t *testing.T) {
			enf, ok := h.s.EnforcerFor(testPolicyID, ns)
			if !ok {
				t.Fatal("no enforcer")
			}
			if got := enf.Partial(ditto.ResourceThing, nil, []string{"x:acme"}, ditto.PermRead); got != want {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
	if _, ok := h.s.EnforcerFor("ns:missing", "ns"); ok {
		t.Error("enforcer of a missing policy")
	}
	first, _ := h.s.EnforcerFor(testPolicyID, "com.acme")
	again, _ := h.s.EnforcerFor(testPolicyID, "com.acme")
	if first != again {
		t.Error("enforcer not cached")
	}
}

func TestSubjectExpiry(t *testing.T) {
	h := newHarness(t, Config{SweepInterval: time.Millisecond})
	expiry := testNow.Add(time.Hour).Truncate(time.Hour)
	h.create(t, testPolicyID, `{"entries":{"owner":`+ownerEntry+`,
		"temp":{"subjects":{"x:temp":{"type":"t","expiry":"`+expiry.Format(time.RFC3339)+`"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}}}}`)
	granted := func() bool {
		enf, _ := h.s.Enforcer(testPolicyID)
		return enf.Unrestricted(ditto.ResourceThing, nil, []string{"x:temp"}, ditto.PermRead)
	}
	if !granted() {
		t.Fatal("subject not granted before expiry")
	}
	if n := h.s.Sweep(context.Background()); n != 0 {
		t.Errorf("swept %d before expiry", n)
	}
	h.clock.Advance(time.Hour)
	if granted() {
		t.Error("expired subject still granted")
	}
	h.log.Leader = func() bool { return false }
	if n := h.s.Sweep(context.Background()); n != 0 {
		t.Errorf("follower swept %d", n)
	}
	h.log.Leader = nil
	if err := h.s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		res, err := h.do(t, req{action: get, path: ptr("entries", "temp", "subjects"), headers: ditto.Headers{"consistency": "local"}})
		if err != nil {
			return err
		}
		if s := jsonString(res.Value); s != "{}" {
			return fmt.Errorf("subjects = %s", s)
		}
		return nil
	})
	if err := h.s.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
}

func TestCompensate(t *testing.T) {
	h := newHarness(t, Config{})
	res := h.create(t, testPolicyID, ownerPolicy)
	ctx := context.Background()
	if err := h.s.Compensate(ctx, testPolicyID, res.Revision+1); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.s.Enforcer(testPolicyID); !ok {
		t.Fatal("compensate at another revision deleted the policy")
	}
	if err := h.s.Compensate(ctx, testPolicyID, res.Revision); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.s.Enforcer(testPolicyID); ok {
		t.Fatal("policy still there after compensate")
	}
	if err := h.s.Compensate(ctx, "ns:none", 1); err != nil {
		t.Errorf("compensate of a missing policy: %v", err)
	}
}

func TestSignals(t *testing.T) {
	h := newHarness(t, Config{})
	var got []ditto.Signal
	h.bus.Observe(func(s ditto.Signal) { got = append(got, s) })
	cid := ditto.Headers{ditto.HeaderCorrelationID: "c-1"}
	h.mustDo(t, req{action: mod, value: ownerPolicy, headers: cid})
	h.mustDo(t, req{action: mod, path: ptr("entries", "owner", "subjects", "x:y"), value: `{"type":"t"}`})
	h.mustDo(t, req{action: mod, path: ptr("entries", "owner", "subjects", "x:y"), value: `{"type":"u"}`})
	h.mustDo(t, req{action: del, path: ptr("entries", "owner", "subjects", "x:y")})
	h.mustDo(t, req{action: del})
	want := []struct{ topic, path string }{
		{"ns/pol/policies/events/created", "/"},
		{"ns/pol/policies/events/created", "/entries/owner/subjects/x:y"},
		{"ns/pol/policies/events/modified", "/entries/owner/subjects/x:y"},
		{"ns/pol/policies/events/deleted", "/entries/owner/subjects/x:y"},
		{"ns/pol/policies/events/deleted", "/"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d signals, want %d", len(got), len(want))
	}
	for i, w := range want {
		s := got[i]
		if s.Envelope.Topic != w.topic || s.Envelope.Path != w.path || s.Revision != int64(i+1) || s.EntityID != testPolicyID {
			t.Errorf("signal %d = %s %s rev %d, want %s %s rev %d", i, s.Envelope.Topic, s.Envelope.Path, s.Revision, w.topic, w.path, i+1)
		}
	}
	if got[0].Envelope.Headers[ditto.HeaderCorrelationID] != "c-1" || got[0].State == nil || got[0].Envelope.Timestamp == "" {
		t.Errorf("created signal lacks correlation-id, state or timestamp: %+v", got[0].Envelope)
	}
	if got[4].State != nil || got[4].Envelope.Value != nil {
		t.Error("deleted signal carries state or value")
	}
}

// TestImportNeedsReadOfWhatItTakes: as in Ditto, importing needs
// unrestricted READ on every entry the import takes from the imported
// policy (implicit ones and listed ones), on every write of the import;
// and the resolved view shows an imported entry only to who may read it
// at its source.
func TestImportNeedsReadOfWhatItTakes(t *testing.T) {
	h := newHarness(t, Config{})
	bob := []string{"nginx:bob"}
	h.create(t, "ns:tmpl", `{"entries":{
		"owner":{"subjects":{"nginx:a":{"type":"t"}},"resources":{"policy:/":{"grant":["READ","WRITE"],"revoke":[]}},"importable":"never"},
		"pub":{"subjects":{"nginx:bob":{"type":"t"}},"resources":{"policy:/entries/pub":{"grant":["READ"],"revoke":[]}},"importable":"explicit"},
		"secret":{"subjects":{"nginx:carol":{"type":"t"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]}},"importable":"explicit"}}}`)
	bobOwn := `"bo":{"subjects":{"nginx:bob":{"type":"t"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]},"policy:/":{"grant":["READ","WRITE"],"revoke":[]}}}`
	runSteps(t, h, []step{
		{name: "an entry bob may not read", r: req{action: mod, id: "ns:bob1", subjects: bob, value: `{"imports":{"ns:tmpl":{"entries":["secret"]}},"entries":{` + bobOwn + `}}`}, code: "policies:policy.notfound"},
		{name: "an entry bob may read", r: req{action: mod, id: "ns:bob2", subjects: bob, value: `{"imports":{"ns:tmpl":{"entries":["pub"]}},"entries":{` + bobOwn + `}}`}, status: 201},
		{name: "listing one he may not read later", r: req{action: mod, id: "ns:bob2", subjects: bob, path: ptr("imports", "ns:tmpl", "entries"), value: `["pub","secret"]`}, code: "policies:policy.notfound"},
		{name: "a missing policy", r: req{action: mod, id: "ns:bob2", subjects: bob, path: ptr("imports", "ns:nope"), value: `{}`}, code: "policies:policy.notfound"},
	})
	// a imports both; carol may read the importer but not the template.
	h.create(t, "ns:imp", `{"imports":{"ns:tmpl":{"entries":["pub","secret"]}},"entries":{"owner":`+ownerEntry+`,
		"carol":{"subjects":{"nginx:carol":{"type":"t"}},"resources":{"policy:/":{"grant":["READ"],"revoke":[]}}}}}`)
	view := ditto.Headers{ditto.HeaderPolicyView: "resolved"}
	for who, want := range map[string][]string{"nginx:a": {"carol", "imported-ns:tmpl-pub", "imported-ns:tmpl-secret", "owner"}, "nginx:carol": {"carol", "owner"}} {
		res := h.mustDo(t, req{action: get, id: "ns:imp", subjects: []string{who}, headers: view})
		var labels []string
		for l := range res.Value.(map[string]any)["entries"].(map[string]any) {
			labels = append(labels, l)
		}
		sort.Strings(labels)
		if !slices.Equal(labels, want) {
			t.Errorf("%s sees %v, want %v", who, labels, want)
		}
	}
}

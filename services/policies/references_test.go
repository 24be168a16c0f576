package policies

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

// TestReferences replays the cases of Ditto's PolicyImporterTest on entry
// references: a referencing entry gains the referenced entry's subjects,
// resources and namespaces, and allowedAdditions limits its own.
func TestReferences(t *testing.T) {
	read := func(h *harness, id, subject, path string) bool {
		t.Helper()
		enf, ok := h.s.Enforcer(id)
		return ok && enf.Unrestricted(ditto.ResourceThing, ditto.MustPointer(path), []string{subject}, ditto.PermRead)
	}
	write := func(h *harness, id, subject, path string) bool {
		t.Helper()
		enf, ok := h.s.Enforcer(id)
		return ok && enf.Unrestricted(ditto.ResourceThing, ditto.MustPointer(path), []string{subject}, ditto.PermWrite)
	}
	owner := `"owner":` + ownerEntry

	t.Run("local reference", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.create(t, "ns:loc", `{"entries":{`+owner+`,
			"tmpl":{"subjects":{},"resources":{"thing:/features":{"grant":["READ"],"revoke":[]},"thing:/features/secret":{"grant":[],"revoke":["READ"]}}},
			"user":{"subjects":{"x:dave":{"type":"t"}},"resources":{},"references":[{"entry":"tmpl"}]}}}`)
		if !read(h, "ns:loc", "x:dave", "/features/f") {
			t.Error("dave does not read what the referenced entry grants")
		}
		if read(h, "ns:loc", "x:dave", "/features/secret") {
			t.Error("the referenced entry's revoke did not survive")
		}
	})
	t.Run("allowedAdditions keeps only the allowed own content", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.create(t, "ns:aa", `{"entries":{`+owner+`,
			"tmpl":{"subjects":{},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}},"allowedAdditions":["subjects"]},
			"user":{"subjects":{"x:s2":{"type":"t"}},"resources":{"thing:/":{"grant":["WRITE"],"revoke":[]}},"references":[{"entry":"tmpl"}]}}}`)
		if !read(h, "ns:aa", "x:s2", "/") || write(h, "ns:aa", "x:s2", "/") {
			t.Error("want READ from the template and no own WRITE (resources are no allowed addition)")
		}
		h.create(t, "ns:aa2", `{"entries":{`+owner+`,
			"tmpl":{"subjects":{"x:t":{"type":"t"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}},"allowedAdditions":["resources"]},
			"user":{"subjects":{"x:own":{"type":"t"}},"resources":{"thing:/a":{"grant":["WRITE"],"revoke":[]}},"references":[{"entry":"tmpl"}]}}}`)
		if read(h, "ns:aa2", "x:own", "/") || !write(h, "ns:aa2", "x:t", "/a") {
			t.Error("want the own subject dropped and the own resource kept for the template's subject")
		}
	})
	t.Run("import reference", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.create(t, "ns:tpl", `{"entries":{`+owner+`,
			"driver":{"subjects":{},"resources":{"thing:/features/location":{"grant":["READ"],"revoke":[]}},"importable":"explicit","allowedAdditions":["subjects"]}}}`)
		h.create(t, "ns:car", `{"imports":{"ns:tpl":{"entries":["driver"]}},"entries":{`+owner+`,
			"driver":{"subjects":{"x:alice":{"type":"t"}},"resources":{},"references":[{"import":"ns:tpl","entry":"driver"}]}}}`)
		if !read(h, "ns:car", "x:alice", "/features/location") || read(h, "ns:car", "x:alice", "/attributes") {
			t.Error("alice should read exactly the imported template's resources")
		}
		res := h.mustDo(t, req{action: get, id: "ns:car", headers: ditto.Headers{ditto.HeaderPolicyView: "resolved"}})
		driver := res.Value.(map[string]any)["entries"].(map[string]any)["driver"].(map[string]any)
		if _, ok := driver["resources"].(map[string]any)["thing:/features/location"]; !ok {
			t.Errorf("resolved view of the referencing entry: %v", driver)
		}
	})
	t.Run("lockout counts references", func(t *testing.T) {
		h := newHarness(t, Config{})
		// The only WRITE on policy:/ comes through a reference.
		h.create(t, "ns:lk", `{"entries":{
			"admin":{"subjects":{},"resources":{"policy:/":{"grant":["READ","WRITE"],"revoke":[]}}},
			"me":{"subjects":{"nginx:a":{"type":"t"}},"resources":{},"references":[{"entry":"admin"}]}}}`)
		runSteps(t, h, []step{
			{name: "drop the reference", r: req{action: mod, id: "ns:lk", path: ptr("entries", "me", "references"), value: `[]`}, code: "policies:entry.modificationinvalid"},
		})
	})
	t.Run("validation", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.create(t, "ns:v", `{"entries":{`+owner+`,"never":{"subjects":{},"resources":{},"importable":"never"}}}`)
		for name, refs := range map[string]string{
			"missing target":   `[{"entry":"nope"}]`,
			"self":             `[{"entry":"e"}]`,
			"never importable": `[{"entry":"never"}]`,
			"twice":            `[{"entry":"owner"},{"entry":"owner"}]`,
			"not imported":     `[{"import":"ns:x","entry":"owner"}]`,
			"not an object":    `["owner"]`,
			"unknown field":    `[{"entry":"owner","x":1}]`,
		} {
			_, err := h.do(t, req{action: mod, id: "ns:v", path: ptr("entries", "e"), value: `{"subjects":{},"resources":{},"references":` + refs + `}`})
			if code, _ := errCode(err); code != "policies:entry.invalid" {
				t.Errorf("%s: %v", name, err)
			}
		}
		h.create(t, "ns:x", `{"entries":{`+owner+`}}`)
		_, err := h.do(t, req{action: mod, id: "ns:v", path: ptr("imports", "ns:x"), value: `{"transitiveImports":["ns:v"]}`})
		if code, _ := errCode(err); code != "policies:import.invalid" {
			t.Errorf("self in transitiveImports: %v", err)
		}
	})
}

// TestTransitiveImports: A imports B with transitiveImports [C], and B
// imports C: C's entries reach A as imported-B-imported-C-<label>, a
// change of C reaches A's enforcer, and without the list nothing of C does.
func TestTransitiveImports(t *testing.T) {
	h := newHarness(t, Config{})
	owner := `"owner":` + ownerEntry
	h.create(t, "ns:C", `{"entries":{`+owner+`,"c":{"subjects":{"x:dave":{"type":"t"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}}}}`)
	h.create(t, "ns:B", `{"imports":{"ns:C":{}},"entries":{`+owner+`}}`)
	h.create(t, "ns:A", `{"imports":{"ns:B":{"transitiveImports":["ns:C"]}},"entries":{`+owner+`}}`)
	h.create(t, "ns:N", `{"imports":{"ns:B":{}},"entries":{`+owner+`}}`)
	reads := func(id string) bool {
		enf, ok := h.s.Enforcer(id)
		return ok && enf.Unrestricted(ditto.ResourceThing, nil, []string{"x:dave"}, ditto.PermRead)
	}
	if !reads("ns:A") {
		t.Fatal("dave does not read through the transitive import")
	}
	if reads("ns:N") {
		t.Fatal("dave reads through an import without transitiveImports")
	}
	res := h.mustDo(t, req{action: get, id: "ns:A", headers: ditto.Headers{ditto.HeaderPolicyView: "resolved"}})
	if _, ok := res.Value.(map[string]any)["entries"].(map[string]any)["imported-ns:B-imported-ns:C-c"]; !ok {
		t.Errorf("resolved view: %v", res.Value)
	}
	h.mustDo(t, req{action: mod, id: "ns:C", path: ptr("entries", "c", "resources", "thing:/"), value: `{"grant":[],"revoke":["READ"]}`})
	if reads("ns:A") {
		t.Fatal("a change of C did not reach A")
	}
}

// TestTransitiveBoundsAndOrigins: policies that all import each other with
// transitiveImports evaluate in bounded time; the resolved view asks READ
// where a transitively imported entry comes from; equal policies decide
// alike whatever was evaluated first.
func TestTransitiveBoundsAndOrigins(t *testing.T) {
	owner := `"owner":` + ownerEntry
	t.Run("a dense import graph", func(t *testing.T) {
		h := newHarness(t, Config{})
		const k = 8
		ids := make([]string, k)
		for i := range ids {
			ids[i] = fmt.Sprintf("ns:g%d", i)
			h.create(t, ids[i], `{"entries":{`+owner+`,"e":{"subjects":{"x:u`+fmt.Sprint(i)+`":{"type":"t"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}}}}`)
		}
		for i, id := range ids {
			imps := map[string]any{}
			for j, other := range ids {
				if j == i {
					continue
				}
				var rest []any
				for l, o := range ids {
					if l != i && l != j {
						rest = append(rest, o)
					}
				}
				imps[other] = map[string]any{"transitiveImports": rest}
			}
			h.mustDo(t, req{action: mod, id: id, path: ptr("imports"), value: string(ditto.EncodeJSON(imps))})
		}
		enf, ok := h.s.Enforcer(ids[0])
		if !ok || !enf.Unrestricted(ditto.ResourceThing, nil, []string{"x:u5"}, ditto.PermRead) {
			t.Error("an entry of the graph is not imported")
		}
	})
	t.Run("resolved view asks the origin", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.create(t, "ns:b", `{"entries":{`+owner+`,"secret":{"subjects":{"x:s":{"type":"t"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}}}}`)
		h.create(t, "ns:a", `{"imports":{"ns:b":{}},"entries":{`+owner+`,"evil":{"subjects":{"nginx:evil":{"type":"t"}},"resources":{"policy:/":{"grant":["READ"],"revoke":[]}}}}}`)
		evil := []string{"nginx:evil"}
		h.mustDo(t, req{action: mod, id: "ns:x", subjects: evil, value: `{"imports":{"ns:a":{"transitiveImports":["ns:b"]}},"entries":{"me":{"subjects":{"nginx:evil":{"type":"t"}},"resources":{"policy:/":{"grant":["READ","WRITE"],"revoke":[]}}}}}`})
		res := h.mustDo(t, req{action: get, id: "ns:x", subjects: evil, headers: ditto.Headers{ditto.HeaderPolicyView: "resolved"}})
		for l := range res.Value.(map[string]any)["entries"].(map[string]any) {
			if strings.Contains(l, "secret") {
				t.Errorf("evil sees %s, an entry of ns:b it may not read", l)
			}
		}
	})
	t.Run("equal policies decide alike", func(t *testing.T) {
		body := func(id string) string {
			return `{"imports":{"ns:a":{"transitiveImports":["ns:b"]}},"entries":{` + owner + `}}`
		}
		decide := func(first, second string) [2]bool {
			h := newHarness(t, Config{})
			h.create(t, "ns:x", `{"entries":{`+owner+`,"t":{"subjects":{"nginx:t":{"type":"t"}},"resources":{"policy:/":{"grant":["READ","WRITE"],"revoke":[]}}}}}`)
			h.create(t, "ns:b", `{"imports":{"ns:x":{}},"entries":{`+owner+`}}`)
			h.create(t, "ns:a", `{"imports":{"ns:b":{"transitiveImports":["ns:x"]}},"entries":{`+owner+`}}`)
			h.create(t, "ns:p", body("ns:p"))
			h.create(t, "ns:q", body("ns:q"))
			var out [2]bool
			for i, id := range []string{first, second} {
				enf, _ := h.s.Enforcer(id)
				out[i] = enf.Unrestricted(ditto.ResourcePolicy, nil, []string{"nginx:t"}, ditto.PermWrite)
			}
			if first == "ns:q" {
				out[0], out[1] = out[1], out[0]
			}
			return out
		}
		if a, b := decide("ns:p", "ns:q"), decide("ns:q", "ns:p"); a != b || !a[0] {
			t.Errorf("p then q: %v; q then p: %v; want the same, granted", a, b)
		}
	})
}

// TestReferenceConflicts: a write on one part of a policy that would leave
// an entry reference without its target is refused with Ditto's 409s
// (policies:entry.referenceconflict, policies:import.referenceconflict);
// once the reference is gone the same writes pass.
func TestReferenceConflicts(t *testing.T) {
	h := newHarness(t, Config{})
	h.create(t, "ns:tpl", `{"entries":{"owner":`+ownerEntry+`,
		"driver":{"subjects":{},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}},"importable":"explicit"},
		"other":{"subjects":{},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}},"importable":"explicit"}}}`)
	h.create(t, "ns:car", `{"imports":{"ns:tpl":{"entries":["driver","other"]}},"entries":{"owner":`+ownerEntry+`,
		"tmpl":{"subjects":{},"resources":{"thing:/features":{"grant":["READ"],"revoke":[]}}},
		"user":{"subjects":{"x:dave":{"type":"t"}},"resources":{},"references":[{"entry":"tmpl"},{"import":"ns:tpl","entry":"driver"}]}}}`)
	const entryConflict, importConflict = "policies:entry.referenceconflict", "policies:import.referenceconflict"
	runSteps(t, h, []step{
		{name: "delete a locally referenced entry", r: req{action: del, id: "ns:car", path: ptr("entries", "tmpl")}, code: entryConflict, errStatus: 409},
		{name: "mark it importable never", r: req{action: mod, id: "ns:car", path: ptr("entries", "tmpl", "importable"), value: `"never"`}, code: entryConflict, errStatus: 409},
		{name: "mark it importable explicit", r: req{action: mod, id: "ns:car", path: ptr("entries", "tmpl", "importable"), value: `"explicit"`}, status: 204},
		{name: "delete a referenced import", r: req{action: del, id: "ns:car", path: ptr("imports", "ns:tpl")}, code: importConflict, errStatus: 409},
		{name: "delete all imports", r: req{action: del, id: "ns:car", path: ptr("imports")}, code: importConflict, errStatus: 409},
		{name: "replace the imports without it", r: req{action: mod, id: "ns:car", path: ptr("imports"), value: `{}`}, code: importConflict, errStatus: 409},
		{name: "narrow the import", r: req{action: mod, id: "ns:car", path: ptr("imports", "ns:tpl"), value: `{"entries":["other"]}`}, code: importConflict, errStatus: 409},
		{name: "narrow the import's entries", r: req{action: mod, id: "ns:car", path: ptr("imports", "ns:tpl", "entries"), value: `["other"]`}, code: importConflict, errStatus: 409},
		{name: "narrow it by an unreferenced label", r: req{action: mod, id: "ns:car", path: ptr("imports", "ns:tpl", "entries"), value: `["driver"]`}, status: 204},
		{name: "the whole policy is validated as a whole", r: req{action: mod, id: "ns:car", path: ptr("entries"), value: `{"owner":` + ownerEntry + `,"user":{"subjects":{},"resources":{},"references":[{"entry":"tmpl"}]}}`}, code: "policies:entry.invalid", errStatus: 400},
		{name: "drop the references", r: req{action: mod, id: "ns:car", path: ptr("entries", "user", "references"), value: `[]`}, status: 204},
		{name: "then the entry goes", r: req{action: del, id: "ns:car", path: ptr("entries", "tmpl")}, status: 204},
		{name: "then the import goes", r: req{action: del, id: "ns:car", path: ptr("imports", "ns:tpl")}, status: 204},
		{name: "deleting no imports succeeds, as in Ditto", r: req{action: del, id: "ns:car", path: ptr("imports")}, status: 204},
		{name: "and again", r: req{action: del, id: "ns:car", path: ptr("imports")}, status: 204},
	})
}

// TestRulesReplayReferenceConflicts: commands proposed before rules 4
// deleted a referenced entry or import (the reference then added nothing),
// and replay so.
func TestRulesReplayReferenceConflicts(t *testing.T) {
	const other = "ns:other"
	policy := mustJSON(t, `{"imports":{"`+other+`":{"entries":["e"]}},"entries":{"owner":`+ownerEntry+`,
		"tmpl":{"subjects":{},"resources":{}},
		"user":{"subjects":{},"resources":{},"references":[{"entry":"tmpl"},{"import":"`+other+`","entry":"e"}]}}}`)
	for _, path := range [][]string{{"entries", "tmpl"}, {"imports", other}} {
		for rules, want := range map[uint8]string{3: "204", policyRules: "409"} {
			s := newFSMService()
			f := s.FSM()
			f.Apply(1, policyCommand(t, policyCmd{Action: ditto.ActionCreate, ID: other, Value: mustJSON(t, `{"entries":{"owner":`+ownerEntry+`,"e":{"subjects":{},"resources":{}}}}`), Subjects: a, Rules: policyRules}))
			f.Apply(2, policyCommand(t, policyCmd{Action: ditto.ActionCreate, ID: testPolicyID, Value: policy, Subjects: a, Rules: policyRules}))
			res := f.Apply(3, policyCommand(t, policyCmd{Action: ditto.ActionDelete, ID: testPolicyID,
				Path: path, Subjects: a, Rules: rules}))
			got := applyOutcome(res)
			if e, ok := res.(*ditto.Error); ok {
				got = fmt.Sprint(e.Status)
			}
			if got != want {
				t.Errorf("rules %d: deleting the referenced %v = %s (%v), want %s", rules, path, got, res, want)
			}
		}
	}
}

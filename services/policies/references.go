package policies

import (
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Entry references (ditto-spec section 2.4, Ditto's PolicyImporter): an
// entry's "references" name other entries, {"entry":L} in the same policy
// or {"import":P,"entry":L} among the entries imported from P. The
// referencing entry gains the subjects, resources and namespaces of every
// entry it references (one level: a referenced entry's own references are
// not followed), resources merged per key as the union of grants and of
// revokes, so a referenced revoke survives. A referenced entry may limit,
// with "allowedAdditions" (subjects, resources, namespaces), which of the
// referencing entry's own subjects, resources and namespaces count: the
// intersection over the referenced entries that declare it; without any
// declaration all of them count. A reference to an entry that is missing
// or never importable adds nothing. Evaluation uses the resolved entries;
// the stored policy keeps its references as written.

// resolveEntry returns entry e with its references resolved against the
// entries of its own policy (local) and the imported entries by their
// "imported-<P>-<label>" label (imported, nil for none). An entry without
// references is returned as is; otherwise the result is fresh.
func resolveEntry(e map[string]any, local map[string]any, imported map[string]map[string]any) map[string]any {
	refs, _ := e["references"].([]any)
	if len(refs) == 0 {
		return e
	}
	var m refMerge
	var allowed map[string]bool // nil: no referenced entry declared allowedAdditions
	for _, r := range refs {
		rm, _ := r.(map[string]any)
		label, _ := rm["entry"].(string)
		var target map[string]any
		if imp, _ := rm["import"].(string); imp != "" {
			target = imported["imported-"+imp+"-"+label]
		} else {
			target, _ = local[label].(map[string]any)
		}
		if target == nil || target["importable"] == importableNever {
			continue
		}
		m.add(target)
		if aa, ok := target["allowedAdditions"].([]any); ok {
			set := map[string]bool{}
			for _, a := range aa {
				if s, ok := a.(string); ok && (allowed == nil || allowed[s]) {
					set[s] = true
				}
			}
			allowed = set
		}
	}
	own := map[string]any{}
	for _, kind := range [...]string{"subjects", "resources", "namespaces"} {
		if allowed == nil || allowed[kind] {
			own[kind] = e[kind]
		}
	}
	m.add(own)
	out := make(map[string]any, len(e)+1)
	for k, v := range e {
		out[k] = v
	}
	out["subjects"], out["resources"] = m.subjects, m.resources
	delete(out, "namespaces")
	if len(m.namespaces) > 0 {
		out["namespaces"] = m.namespaces
	}
	delete(out, "allowedAdditions")
	if allowed != nil {
		aa := make([]any, 0, len(allowed))
		for _, k := range [...]string{"subjects", "resources", "namespaces"} {
			if allowed[k] {
				aa = append(aa, k)
			}
		}
		out["allowedAdditions"] = aa
	}
	return out
}

// refMerge accumulates the subjects (the first of an ID wins), resources
// (grants and revokes united per key) and namespaces of entries.
type refMerge struct {
	subjects   map[string]any
	resources  map[string]any
	namespaces []any
	seenNS     map[string]bool
}

func (m *refMerge) add(e map[string]any) {
	if m.subjects == nil {
		m.subjects, m.resources, m.seenNS = map[string]any{}, map[string]any{}, map[string]bool{}
	}
	subjects, _ := e["subjects"].(map[string]any)
	for sid, s := range subjects {
		if _, ok := m.subjects[sid]; !ok {
			m.subjects[sid] = s
		}
	}
	resources, _ := e["resources"].(map[string]any)
	for key, r := range resources {
		rm, _ := r.(map[string]any)
		cur, _ := m.resources[key].(map[string]any)
		if cur == nil {
			cur = map[string]any{"grant": []any{}, "revoke": []any{}}
			m.resources[key] = cur
		}
		for _, field := range [...]string{"grant", "revoke"} {
			cur[field] = unionPerms(cur[field], rm[field])
		}
	}
	nss, _ := e["namespaces"].([]any)
	for _, ns := range nss {
		if s, ok := ns.(string); ok && !m.seenNS[s] {
			m.seenNS[s] = true
			m.namespaces = append(m.namespaces, s)
		}
	}
}

// unionPerms is the union of two permission lists, in order.
func unionPerms(a, b any) []any {
	al, _ := a.([]any)
	bl, _ := b.([]any)
	out := make([]any, 0, len(al)+len(bl))
	seen := map[any]bool{}
	for _, l := range [2][]any{al, bl} {
		for _, p := range l {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// resolvedOwnEntries returns the entries of policy with their references
// resolved (imported as for resolveEntry), by label.
func resolvedOwnEntries(policy map[string]any, imported map[string]map[string]any) map[string]any {
	entries, _ := policy["entries"].(map[string]any)
	out := make(map[string]any, len(entries))
	for l, e := range entries {
		em, _ := e.(map[string]any)
		out[l] = resolveEntry(em, entries, imported)
	}
	return out
}

// checkReferences validates the references of every entry of policy, as
// Ditto does on a write: each is {"entry":L} or {"import":P,"entry":L},
// none twice, no entry references itself, a local target exists and is
// not "never" importable, and an import reference names a policy the
// policy imports. Failures are policies:entry.invalid.
func checkReferences(policy map[string]any) error {
	entries, _ := policy["entries"].(map[string]any)
	imps, _ := policy["imports"].(map[string]any)
	for _, label := range sortedKeys(entries) {
		em, _ := entries[label].(map[string]any)
		refs, ok := em["references"].([]any)
		if !ok {
			continue
		}
		bad := func(format string, args ...any) error {
			return ditto.ErrPolicyEntryInvalid.New("The references of the Policy Entry with Label '"+label+"' are invalid: "+format, args...)
		}
		seen := map[string]bool{}
		for _, r := range refs {
			rm, ok := r.(map[string]any)
			target, _ := rm["entry"].(string)
			if !ok || target == "" {
				return bad("each reference must be an object with an 'entry' label.")
			}
			imp, hasImport := rm["import"]
			impID, _ := imp.(string)
			if hasImport && impID == "" {
				return bad("the 'import' of a reference must be a policy ID.")
			}
			for k := range rm {
				if k != "entry" && k != "import" {
					return bad("a reference has the unknown field '%s'.", k)
				}
			}
			key := impID + "\x00" + target
			if seen[key] {
				return bad("the entry '%s' is referenced twice.", target)
			}
			seen[key] = true
			if impID != "" {
				if _, ok := imps[impID]; !ok {
					return bad("the policy '%s' is not imported.", impID)
				}
				continue
			}
			if target == label {
				return bad("an entry cannot reference itself.")
			}
			te, ok := entries[target].(map[string]any)
			if !ok {
				return bad("the entry '%s' does not exist.", target)
			}
			if te["importable"] == importableNever {
				return bad("the entry '%s' may not be referenced (importable: never).", target)
			}
		}
	}
	return nil
}

// referenceConflict returns Ditto's 409 for a write (rules 4) on one part
// of a policy that would leave an entry reference without its target
// (Ditto's PolicyEntryReferenceConflictException and
// PolicyImportReferenceConflictException): deleting an entry another entry
// references locally or marking it importable "never"; deleting an import,
// or all imports, that entries reference; or replacing an import, the
// imports or an import's entries so that a referenced label is no longer
// imported. A write of the whole policy or of all its entries is validated
// as a whole instead (checkReferences: 400). tree is the policy before the
// write, value the written value (nil for a delete).
func referenceConflict(id string, tree map[string]any, p ditto.Pointer, k kind, del bool, value any) error {
	entries, _ := tree["entries"].(map[string]any)
	imps, _ := tree["imports"].(map[string]any)
	// refs calls f with each reference of each entry, labels in order,
	// until f returns true; it returns the label of that entry.
	refs := func(f func(label, imp, target string) bool) (string, bool) {
		for _, label := range sortedKeys(entries) {
			em, _ := entries[label].(map[string]any)
			rs, _ := em["references"].([]any)
			for _, r := range rs {
				rm, _ := r.(map[string]any)
				imp, _ := rm["import"].(string)
				target, _ := rm["entry"].(string)
				if f(label, imp, target) {
					return label, true
				}
			}
		}
		return "", false
	}
	// localRefTo finds an entry referencing target locally; with others,
	// target's own reference to itself (possible in policies written
	// before rules 3) does not count, as in Ditto's importable check.
	localRefTo := func(target string, others bool) (string, bool) {
		return refs(func(label, imp, t string) bool { return imp == "" && t == target && !(others && label == target) })
	}
	// narrowed: the import imp is replaced by next; a label its entries no
	// longer list must not be the target of a reference through it.
	narrowed := func(imp string, next any) error {
		old, ok := imps[imp]
		if !ok {
			return nil
		}
		keep := map[string]bool{}
		for _, l := range importLabels(next) {
			keep[l] = true
		}
		dropped := map[string]bool{}
		for _, l := range importLabels(old) {
			if !keep[l] {
				dropped[l] = true
			}
		}
		var target string
		if label, found := refs(func(_, i, t string) bool { target = t; return i == imp && dropped[t] }); found {
			return ditto.ErrPolicyImportRefConflict.New("The import '%s' of Policy '%s' cannot be removed because entry references still point to it.", imp, id).
				WithDescription("Removing label '" + target + "' from this import's filter would orphan the reference from entry '" + label + "'.")
		}
		return nil
	}
	importGone := func(imp string) error {
		if _, found := refs(func(_, i, _ string) bool { return i == imp }); found {
			return ditto.ErrPolicyImportRefConflict.New("The import '%s' of Policy '%s' cannot be removed because entry references still point to it.", imp, id)
		}
		return nil
	}
	switch {
	case del && k == kEntry:
		if from, found := localRefTo(p[1], false); found {
			return ditto.ErrPolicyEntryRefConflict.New("The entry '%s' of Policy '%s' cannot be removed because a local reference from entry '%s' still points to it.", p[1], id, from)
		}
	case !del && k == kEntryField && p[2] == "importable" && value == importableNever:
		if from, found := localRefTo(p[1], true); found {
			return ditto.ErrPolicyEntryRefConflict.New("The entry '%s' of Policy '%s' cannot be marked importable=never because a local reference from entry '%s' still points to it.", p[1], id, from).
				WithDescription("Remove the local reference first before marking the entry importable=never.")
		}
	case del && k == kImport:
		return importGone(p[1])
	case del && k == kImports:
		if _, found := refs(func(_, i, _ string) bool { return i != "" }); found {
			return ditto.ErrPolicyImportRefConflict.New("The imports of Policy '%s' cannot be removed because entry references still point to them.", id)
		}
	case !del && k == kImports:
		next, _ := value.(map[string]any)
		for _, imp := range sortedKeys(imps) {
			nv, kept := next[imp]
			if !kept {
				if err := importGone(imp); err != nil {
					return err
				}
				continue
			}
			if err := narrowed(imp, nv); err != nil {
				return err
			}
		}
	case !del && k == kImport:
		return narrowed(p[1], value)
	case !del && k == kImportField && p[2] == "entries":
		return narrowed(p[1], map[string]any{"entries": value})
	}
	return nil
}

// importLabels returns the labels an import lists in its "entries".
func importLabels(imp any) []string {
	m, _ := imp.(map[string]any)
	es, _ := m["entries"].([]any)
	out := make([]string, 0, len(es))
	for _, e := range es {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// applyEnforcer is the enforcer Apply decides a command of rules with.
// Before rules 3 entry references and transitiveImports were stored but not
// evaluated; a command of those rules is decided as it was then, so a log
// written by an earlier release replays as it applied. The legacy enforcer
// is compiled only for a policy that holds references or transitive
// imports (itself or an imported policy), and not cached.
func (s *Service) applyEnforcer(rules uint8, rec *record, ns string, now time.Time) *Enforcer {
	if rules >= 3 || !rec.live() {
		return s.enforcerAt(rec, ns, now)
	}
	tree := rec.policy()
	deps := s.importDeps(tree)
	legacy := rec.contains(`"references"`) || rec.contains(`"transitiveImports"`)
	for _, d := range deps {
		legacy = legacy || (!d.transitive && d.rec.contains(`"references"`))
	}
	if !legacy {
		return s.enforcerAt(rec, ns, now)
	}
	return compile(legacyEntriesOf(tree, deps), ns, now)
}

// legacyEntriesOf is entriesOf before rules 3: the policy's entries as
// stored and the entries of its direct imports as stored, references and
// transitiveImports ignored.
func legacyEntriesOf(policy map[string]any, deps []depRef) []map[string]any {
	entries, _ := policy["entries"].(map[string]any)
	out := make([]map[string]any, 0, len(entries))
	for _, l := range sortedKeys(entries) {
		em, _ := entries[l].(map[string]any)
		out = append(out, em)
	}
	imps, _ := policy["imports"].(map[string]any)
	for _, d := range deps {
		if d.transitive || !d.rec.live() {
			continue
		}
		takes := importTakes(imps[d.id])
		ientries, _ := d.rec.policy()["entries"].(map[string]any)
		for _, label := range sortedKeys(ientries) {
			if em, _ := ientries[label].(map[string]any); takes(label, em) {
				out = append(out, em)
			}
		}
	}
	return out
}

// checkTransitive refuses a policy that lists its own ID among the
// transitiveImports of an import (policies:import.invalid, as Ditto).
func checkTransitive(id string, policy map[string]any) error {
	imps, _ := policy["imports"].(map[string]any)
	for _, impID := range sortedKeys(imps) {
		im, _ := imps[impID].(map[string]any)
		ts, _ := im["transitiveImports"].([]any)
		for _, t := range ts {
			if t == id {
				return ditto.ErrPolicyImportInvalid.New("The Policy with ID '%s' cannot import itself transitively through '%s'.", id, impID)
			}
		}
	}
	return nil
}

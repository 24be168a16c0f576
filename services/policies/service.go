package policies

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dittonode/dittonode/consensus"
	"github.com/dittonode/dittonode/ditto"
)

// Service is the policies role: it owns the state machine of the "policies"
// group, the compiled enforcers and the policy commands.
type Service struct {
	cfg  Config
	deps Deps

	// mu guards state; records are immutable.
	mu    sync.RWMutex
	state map[string]*record

	// enforcers are the compiled enforcers, interned by content. Its lock
	// is never held together with mu.
	enforcers *enforcerCache
	// facts interns the facts of records (facts.go).
	facts factsTable

	// Lifecycle of the sweeper.
	lifeMu sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// depRef is an imported policy and its record when it was looked at (nil
// when there was none). transitive marks a policy reached only through
// the transitiveImports of an import.
type depRef struct {
	id         string
	rec        *record
	transitive bool
}

// maxTransitiveDepth bounds how far transitiveImports are followed (Ditto:
// 10); beyond it the entries resolved so far count.
const maxTransitiveDepth = 10

// maxImportGraph bounds the policies one evaluation reaches through
// transitiveImports (and importDeps tracks), however the imports are
// wired: each policy costs a decode, and a graph of policies importing
// each other must not make Apply exponential.
const maxImportGraph = 64

// importKey is the enforcer content key of a policy with imports and the
// imported records it was computed from.
type importKey struct {
	deps   []depRef
	sum    [sha256.Size]byte
	usesNS bool
}

// New returns a service; it only allocates.
func New(cfg Config, deps Deps) *Service {
	def := DefaultConfig()
	if cfg.MaxPolicyBytes == 0 {
		cfg.MaxPolicyBytes = def.MaxPolicyBytes
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = def.SweepInterval
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, deps: deps, state: map[string]*record{}, enforcers: newEnforcerCache(enforcerCacheSize)}
}

// FSM is the state machine of the "policies" group; it implements
// consensus.BatchFSM.
func (s *Service) FSM() consensus.FSM { return fsm{s} }

func namespaceOf(id string) string {
	ns, _, _ := strings.Cut(id, ":")
	return ns
}

// resourcePath is the policy: resource path of a command path. A resource
// key segment ("thing:/a/b") expands to its own segments, so statements on
// "policy:/entries/L/resources/thing:/a" apply to it.
func resourcePath(p ditto.Pointer) ditto.Pointer {
	for _, seg := range p {
		if strings.Contains(seg, "/") {
			q := make(ditto.Pointer, 0, len(p)+2)
			for _, s := range p {
				for _, part := range strings.Split(s, "/") {
					if part != "" {
						q = append(q, part)
					}
				}
			}
			return q
		}
	}
	return p
}

// importDeps returns the policies that policy imports with their current
// records, sorted by ID, then, when an import has transitiveImports, the
// policies reachable from those along imports (at most maxImportGraph in
// all, breadth first, each once, sorted by ID): a superset of what the
// entries come from, so a change of any of them changes the enforcer key.
// It depends on the policy's content and the state only, not on its ID:
// policies of equal content share their memoised key.
func (s *Service) importDeps(policy map[string]any) []depRef {
	imps, _ := policy["imports"].(map[string]any)
	if len(imps) == 0 {
		return nil
	}
	deps := make([]depRef, 0, len(imps))
	s.mu.RLock()
	defer s.mu.RUnlock()
	seen := map[string]bool{}
	transitive := false
	for _, id := range sortedKeys(imps) {
		deps = append(deps, depRef{id: id, rec: s.state[id]})
		seen[id] = true
		im, _ := imps[id].(map[string]any)
		if ts, _ := im["transitiveImports"].([]any); len(ts) > 0 {
			transitive = true
		}
	}
	if !transitive {
		return deps
	}
	var more []depRef
	frontier := sortedKeys(imps)
	for depth := 1; len(frontier) > 0 && depth < maxTransitiveDepth; depth++ {
		var next []string
		for _, id := range frontier {
			rec := s.state[id]
			if !rec.live() {
				continue
			}
			own, _ := rec.policy()["imports"].(map[string]any)
			for _, cid := range sortedKeys(own) {
				if seen[cid] || len(seen) >= maxImportGraph {
					continue
				}
				seen[cid] = true
				more = append(more, depRef{id: cid, rec: s.state[cid], transitive: true})
				next = append(next, cid)
			}
		}
		frontier = next
	}
	slices.SortFunc(more, func(a, b depRef) int { return strings.Compare(a.id, b.id) })
	return append(deps, more...)
}

// transitiveOf returns the policies that the import imp of rec follows
// further: those of its transitiveImports that rec itself imports, while
// depth allows.
func transitiveOf(rec *record, imp any, depth int) []string {
	if depth >= maxTransitiveDepth || !rec.live() {
		return nil
	}
	m, _ := imp.(map[string]any)
	list, _ := m["transitiveImports"].([]any)
	if len(list) == 0 {
		return nil
	}
	own, _ := rec.policy()["imports"].(map[string]any)
	var out []string
	for _, t := range list {
		if id, ok := t.(string); ok {
			if _, imported := own[id]; imported && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out
}

// entriesOf returns what compile gets for policy: its entries sorted by
// label, then the entries it imports from the records deps (see
// importDeps), those of each import sorted by label.
func entriesOf(policy map[string]any, deps []depRef) []map[string]any {
	entries, _ := policy["entries"].(map[string]any)
	var imported []map[string]any
	var byLabel map[string]map[string]any
	eachImported(policy, deps, func(id, label string, em map[string]any, _ importOrigin) {
		imported = append(imported, em)
		if byLabel == nil {
			byLabel = map[string]map[string]any{}
		}
		byLabel["imported-"+id+"-"+label] = em
	})
	out := make([]map[string]any, 0, len(entries)+len(imported))
	for _, l := range sortedKeys(entries) {
		em, _ := entries[l].(map[string]any)
		out = append(out, resolveEntry(em, entries, byLabel))
	}
	return append(out, imported...)
}

// importOrigin is the policy and label an imported entry comes from.
type importOrigin struct{ id, label string }

// eachImported calls fn with every entry policy imports from the records
// deps (see importDeps): per direct import, sorted by label, the entries
// its importable setting and the import's entries list let through, with
// the policy and label each comes from. The entries of an imported policy
// include, as "imported-<C>-<label>", those it imports from the policies C
// its import's transitiveImports name, and have their references resolved
// in that policy (and dropped). Following transitiveImports visits at most
// maxImportGraph policies per call, in a fixed order, so it is bounded and
// deterministic.
func eachImported(policy map[string]any, deps []depRef, fn func(id, label string, em map[string]any, from importOrigin)) {
	imps, _ := policy["imports"].(map[string]any)
	recs := make(map[string]*record, len(deps))
	for _, d := range deps {
		recs[d.id] = d.rec
	}
	budget := maxImportGraph
	for _, d := range deps {
		if d.transitive || !d.rec.live() {
			continue
		}
		labels, entries, origins := importedEntries(d.rec, imps[d.id], recs, 1, map[string]bool{}, &budget)
		for _, label := range labels {
			fn(d.id, label, entries[label], origins[label])
		}
	}
}

// importedEntries returns the entries rec gives an importer whose import
// object is imp, by label (sorted), and where each comes from: rec's own
// entries, and those it imports from the policies imp's transitiveImports
// name, as "imported-<C>-<label>", with rec's references resolved among
// them and dropped, filtered by importable and imp's entries list. visited
// holds the policies of the chain that led here; budget counts the
// policies expanded so far for the whole evaluation.
func importedEntries(rec *record, imp any, recs map[string]*record, depth int, visited map[string]bool, budget *int) ([]string, map[string]map[string]any, map[string]importOrigin) {
	tree := rec.policy()
	raw, _ := tree["entries"].(map[string]any)
	working := make(map[string]map[string]any, len(raw))
	origins := make(map[string]importOrigin, len(raw))
	var byLabel map[string]map[string]any
	if ids := transitiveOf(rec, imp, depth); len(ids) > 0 {
		own, _ := tree["imports"].(map[string]any)
		for _, cid := range ids {
			crec := recs[cid]
			if visited[cid] || !crec.live() || *budget <= 0 {
				continue
			}
			*budget--
			visited[cid] = true
			cl, ce, co := importedEntries(crec, own[cid], recs, depth+1, visited, budget)
			delete(visited, cid)
			for _, l := range cl {
				if byLabel == nil {
					byLabel = map[string]map[string]any{}
				}
				key := "imported-" + cid + "-" + l
				byLabel[key], working[key], origins[key] = ce[l], ce[l], co[l]
			}
		}
	}
	for l, e := range raw {
		em, _ := e.(map[string]any)
		if _, ok := em["references"]; ok {
			r := resolveEntry(em, raw, byLabel)
			em = make(map[string]any, len(r))
			for k, v := range r {
				if k != "references" {
					em[k] = v
				}
			}
		}
		working[l], origins[l] = em, importOrigin{rec.ID, l}
	}
	takes := importTakes(imp)
	labels := make([]string, 0, len(working))
	for l, em := range working {
		if takes(l, em) {
			labels = append(labels, l)
		}
	}
	slices.Sort(labels)
	return labels, working, origins
}

// importTakes returns whether an import (its object imp) takes the entry
// em labelled label: implicit entries always, explicit ones when the
// import's entries list names them, never importable ones not at all.
func importTakes(imp any) func(label string, em map[string]any) bool {
	m, _ := imp.(map[string]any)
	explicit := map[string]bool{}
	if labels, ok := m["entries"].([]any); ok {
		for _, l := range labels {
			if ls, ok := l.(string); ok {
				explicit[ls] = true
			}
		}
	}
	return func(label string, em map[string]any) bool {
		switch im, _ := em["importable"].(string); im {
		case importableNever:
			return false
		case importableExplicit:
			return explicit[label]
		}
		return true
	}
}

// resolvedPolicy is policy as it is evaluated (policy-view=resolved): its
// own entries and, under "imported-<policy ID>-<label>", the entries it
// imports now that keep lets through (asked with the policy and label the
// entry comes from); without imports, which the merge stands for.
func resolvedPolicy(policy map[string]any, deps []depRef, keep func(id, label string) bool) map[string]any {
	out := make(map[string]any, len(policy))
	for k, v := range policy {
		if k != "imports" {
			out[k] = v
		}
	}
	byLabel := map[string]map[string]any{}
	visible := map[string]bool{}
	eachImported(policy, deps, func(id, label string, em map[string]any, from importOrigin) {
		l := "imported-" + id + "-" + label
		byLabel[l], visible[l] = em, keep(from.id, from.label)
	})
	// Own entries with their references resolved, as evaluated.
	entries := resolvedOwnEntries(policy, byLabel)
	for l, em := range byLabel {
		if visible[l] {
			entries[l] = em
		}
	}
	out["entries"] = entries
	return out
}

// enforcerKey returns the content key of rec's enforcer for namespace ns
// and, for a policy with imports, the imported records the key stands for.
// Without imports it reads only memoised facts and does not allocate.
func (s *Service) enforcerKey(rec *record, ns string) (enforcerKey, []depRef) {
	f := rec.facts(&s.facts)
	if !f.imports {
		k := enforcerKey{sum: f.sum}
		if f.usesNS {
			k.ns = ns
		}
		return k, nil
	}
	ik := f.importKey.Load()
	if ik == nil || !s.depsCurrent(ik.deps) {
		ik = s.deriveImportKey(rec, f)
		f.importKey.Store(ik)
	}
	k := enforcerKey{sum: ik.sum}
	if ik.usesNS {
		k.ns = ns
	}
	return k, ik.deps
}

// deriveImportKey hashes the policy's own content key with the content
// keys of the records it imports now.
func (s *Service) deriveImportKey(rec *record, f *facts) *importKey {
	ik := &importKey{deps: s.importDeps(rec.policy()), usesNS: f.usesNS}
	h := sha256.New()
	h.Write([]byte("imports\x00")) // hash writes never fail
	h.Write(f.sum[:])
	for _, d := range ik.deps {
		h.Write([]byte(d.id))
		if !d.rec.live() {
			h.Write([]byte{0})
			continue
		}
		df := d.rec.facts(&s.facts)
		h.Write([]byte{1})
		h.Write(df.sum[:])
		ik.usesNS = ik.usesNS || df.usesNS
	}
	h.Sum(ik.sum[:0])
	return ik
}

// enforcerAt returns the enforcer of rec for namespace ns, exact at now,
// from the cache or freshly compiled. It is deterministic in (state, now),
// so Apply uses it too.
func (s *Service) enforcerAt(rec *record, ns string, now time.Time) *Enforcer {
	key, deps := s.enforcerKey(rec, ns)
	if e := s.enforcers.get(key, now); e != nil {
		return e
	}
	// Compiled from exactly the records the key stands for.
	enf := compile(entriesOf(rec.policy(), deps), ns, now)
	s.enforcers.put(key, enf)
	return enf
}

func (s *Service) depsCurrent(deps []depRef) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, d := range deps {
		if s.state[d.id] != d.rec {
			return false
		}
	}
	return true
}

// EnforcerFor returns the compiled enforcer of the applied policy for an
// entity in namespace entityNamespace (entry namespaces are applied against
// it), and false if there is no such policy.
func (s *Service) EnforcerFor(policyID, entityNamespace string) (ditto.Enforcer, bool) {
	rec := s.current(policyID)
	if !rec.live() {
		return nil, false
	}
	return s.enforcerAt(rec, entityNamespace, s.deps.Clock()), true
}

// Enforcer returns the compiled enforcer of the applied policy for entities
// in the policy's own namespace, and false if there is no such policy.
func (s *Service) Enforcer(policyID string) (ditto.Enforcer, bool) {
	return s.EnforcerFor(policyID, namespaceOf(policyID))
}

// Compensate deletes the policy if it is still at revision (a thing create
// failed after its policy was created). It does no enforcement.
func (s *Service) Compensate(ctx context.Context, policyID string, revision int64) error {
	cmd := encodeCommand(cmdCompensate, compensateCmd{ID: policyID, Revision: revision, Time: ditto.FormatTime(s.deps.Clock())})
	if _, err := s.deps.Log.Propose(ctx, cmd); err != nil {
		return fmt.Errorf("compensate policy %s: %w", policyID, err)
	}
	return nil
}

func isTrue(v string) bool { return strings.EqualFold(v, "true") }

// Handle executes one policy command for the requester cmd.Auth.
func (s *Service) Handle(ctx context.Context, cmd ditto.Command) (ditto.Result, error) {
	if _, err := ditto.ParsePolicyID(cmd.Entity); err != nil {
		return ditto.Result{}, err
	}
	p, k, err := parsePath(cmd.Path)
	if err != nil {
		return ditto.Result{}, err
	}
	if cmd.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cmd.Timeout)
		defer cancel()
	}
	switch cmd.Action {
	case ditto.ActionRetrieve:
		return s.retrieve(ctx, cmd, p, k)
	case ditto.ActionModify, ditto.ActionDelete:
	case ditto.ActionCreate:
		if k != kRoot {
			return ditto.Result{}, ditto.ErrMethodNotAllowed.New("Only a whole policy can be created.")
		}
	case ditto.ActionMerge:
		return ditto.Result{}, ditto.ErrMethodNotAllowed.New("Policies cannot be merged (no PATCH on policies).")
	default:
		return ditto.Result{}, ditto.ErrMethodNotAllowed.New("Unknown action '%s' on a policy.", cmd.Action)
	}
	if cmd.Action == ditto.ActionDelete && !deletable(p, k) {
		return ditto.Result{}, ditto.ErrMethodNotAllowed.New("The resource '%s' of a policy cannot be deleted.", p.String())
	}
	now := s.deps.Clock()
	if cmd.Action != ditto.ActionDelete {
		// Early validation gives 400 before permission checks, as Ditto
		// parses the body first; Apply validates again.
		if _, err := normFragment(cmd.Entity, p, k, cmd.Value); err != nil {
			return ditto.Result{}, err
		}
	}
	// Fast rejection against the local copy; Apply decides authoritatively.
	if rec := s.current(cmd.Entity); rec.live() {
		if cmd.Action == ditto.ActionCreate {
			return ditto.Result{}, ditto.ErrPolicyConflict.New("The Policy with ID '%s' already exists.", cmd.Entity)
		}
		if !s.enforcerAt(rec, namespaceOf(cmd.Entity), now).Unrestricted(ditto.ResourcePolicy, resourcePath(p), cmd.Auth.Subjects, ditto.PermWrite) {
			return ditto.Result{}, notModifiable(k, cmd.Entity, p)
		}
	} else if k != kRoot || cmd.Action == ditto.ActionDelete {
		return ditto.Result{}, policyNotFound(cmd.Entity)
	}
	pc := policyCmd{
		Action:       cmd.Action,
		ID:           cmd.Entity,
		Path:         p,
		Subjects:     cmd.Auth.Subjects,
		IfMatch:      ditto.StrongIfMatch(cmd.Headers.Get(ditto.HeaderIfMatch)),
		IfNoneMatch:  cmd.Headers.Get(ditto.HeaderIfNoneMatch),
		AllowLockout: isTrue(cmd.Headers.Get(ditto.HeaderAllowPolicyLockout)),
		Correlation:  cmd.Headers.Get(ditto.HeaderCorrelationID),
		Time:         ditto.FormatTime(now),
		Rules:        policyRules,
	}
	if cmd.Action != ditto.ActionDelete {
		pc.Value = cmd.Value
	}
	return s.propose(ctx, encodeCommand(cmdPolicy, pc))
}

func (s *Service) propose(ctx context.Context, cmd []byte) (ditto.Result, error) {
	out, err := s.deps.Log.Propose(ctx, cmd)
	if err != nil {
		return ditto.Result{}, fmt.Errorf("propose policy command: %w", err)
	}
	switch r := out.(type) {
	case ditto.Result:
		return r, nil
	case *ditto.Error:
		return ditto.Result{}, r
	case error:
		return ditto.Result{}, r
	}
	return ditto.Result{}, errors.New("policies: unexpected apply result")
}

// retrieve answers a read from the local state after a read barrier (unless
// consistency=local).
func (s *Service) retrieve(ctx context.Context, cmd ditto.Command, p ditto.Pointer, k kind) (ditto.Result, error) {
	var fields ditto.FieldSelector
	if k == kRoot && cmd.Fields != "" {
		fs, err := ditto.ParsePolicyFieldSelector(cmd.Fields)
		if err != nil {
			return ditto.Result{}, err
		}
		fields = fs
	}
	if !strings.EqualFold(cmd.Headers.Get(ditto.HeaderConsistency), "local") {
		if err := s.deps.Log.ReadBarrier(ctx); err != nil {
			return ditto.Result{}, fmt.Errorf("policy read barrier: %w", err)
		}
	}
	id := cmd.Entity
	rec := s.current(id)
	if !rec.live() {
		return ditto.Result{}, policyNotFound(id)
	}
	enf := s.enforcerAt(rec, namespaceOf(id), s.deps.Clock())
	subjects := cmd.Auth.Subjects
	rp := resourcePath(p)
	if !enf.Partial(ditto.ResourcePolicy, rp, subjects, ditto.PermRead) {
		if k == kRoot {
			return ditto.Result{}, policyNotFound(id)
		}
		return ditto.Result{}, notFound(k, id, p)
	}
	// A node keeps the current revision only (ditto.AtCurrentRevision).
	if what, v, ok := ditto.AtCurrentRevision(cmd.Headers, rec.Revision, rec.Modified); !ok {
		return ditto.Result{}, ditto.ErrPolicyHistoryNotFound.New("The Policy with ID '%s' at %s '%s' could not be found or requester had insufficient permissions to access it.", id, what, v)
	}
	// A fresh tree, owned by this read: the view may share it.
	tree := rec.policy()
	resolved := k == kRoot && cmd.Headers.Get(ditto.HeaderPolicyView) == "resolved"
	if resolved {
		// An imported entry shows only to a requester who may read it in
		// the policy it comes from (as in Ditto).
		now := s.deps.Clock()
		tree = resolvedPolicy(tree, s.importDeps(tree), func(src, label string) bool {
			srec := s.current(src)
			return srec.live() && s.enforcerAt(srec, namespaceOf(src), now).
				Unrestricted(ditto.ResourcePolicy, ditto.Pointer{"entries", label}, subjects, ditto.PermRead)
		})
	}
	v, ok := ditto.GetAt(tree, p)
	if !ok {
		v, ok = defaultAt(tree, p, k)
	}
	if !ok {
		if pp, pk, has := parent(p, k); has {
			if _, found := ditto.GetAt(tree, pp); !found {
				return ditto.Result{}, notFound(pk, id, p)
			}
		}
		return ditto.Result{}, notFound(k, id, p)
	}
	cur, _ := etagOf(rec, tree, p, k)
	if k != kRoot && cur == "" {
		cur = ditto.HashETag(v)
	}
	if resolved {
		// No tag and no conditional headers (ditto-spec sections 2.4, 9):
		// the view changes with the imported policies, which the tag does
		// not follow.
		cur = ""
	} else {
		if h := cmd.Headers.Get(ditto.HeaderIfMatch); h != "" && !ditto.MatchETag(ditto.StrongIfMatch(h), cur, true) {
			return ditto.Result{}, withETag(ditto.ErrPolicyPreconditionFailed.New("The comparison of precondition header 'if-match' for the requested Policy resource evaluated to false. Expected: '%s' to match actual: '%s'.", h, cur), cur)
		}
		if h := cmd.Headers.Get(ditto.HeaderIfNoneMatch); h != "" && ditto.MatchETag(h, cur, true) {
			return ditto.Result{}, withETag(ditto.ErrPolicyPreconditionNotMod.New("The comparison of precondition header 'if-none-match' for the requested Policy resource evaluated to false. Expected: '%s' not to match actual: '%s'.", h, cur), cur)
		}
	}
	view, ok := enf.View(ditto.ResourcePolicy, rp, v, subjects)
	if k == kRoot {
		m, _ := view.(map[string]any)
		out := make(map[string]any, len(m)+4)
		for key, e := range m {
			out[key] = e
		}
		out["policyId"] = id // kept for partial readers, like thingId
		if !fields.IsEmpty() {
			out["_revision"] = jsonInt(rec.Revision)
			out["_created"] = rec.Created.String()
			out["_modified"] = rec.Modified.String()
			out["_namespace"] = namespaceOf(id)
			view = fields.Apply(out)
		} else {
			view = out
		}
		ok = true
	}
	if !ok {
		return ditto.Result{}, notFound(k, id, p)
	}
	return ditto.Result{Status: 200, Value: view, ETag: cur, Revision: rec.Revision, Entity: id}, nil
}

// defaultAt gives the implicit value of an absent entry or import field.
func defaultAt(policy map[string]any, p ditto.Pointer, k kind) (any, bool) {
	if k == kImports {
		// A policy without imports imports nothing (Ditto: 200 {}).
		return map[string]any{}, true
	}
	if k != kEntryField && k != kImportField {
		return nil, false
	}
	if _, ok := ditto.GetAt(policy, p[:2]); !ok {
		return nil, false
	}
	switch {
	case k == kImportField:
		// An import without an entries (or transitiveImports) list names
		// none: it takes the implicitly importable entries only.
		return []any{}, true
	case p[2] == "namespaces", p[2] == "allowedAdditions", p[2] == "references":
		return []any{}, true
	case p[2] == "importable":
		return importableImplicit, true
	}
	return nil, false
}

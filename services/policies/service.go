package policies

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

	// cacheMu guards cache. mu and cacheMu are never held together.
	cacheMu sync.Mutex
	cache   map[cacheKey]*cached

	// Lifecycle of the sweeper.
	lifeMu sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type cacheKey struct{ id, ns string }

// cached is a compiled enforcer and the records it was compiled from; it is
// valid while they are still current and the time is inside its window.
type cached struct {
	rec  *record
	deps []depRef
	enf  *Enforcer
}

type depRef struct {
	id  string
	rec *record
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
	return &Service{cfg: cfg, deps: deps, state: map[string]*record{}, cache: map[cacheKey]*cached{}}
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

// importedEntries returns the entries policy imports, labelled
// "imported-<id>-<label>", and the records they came from (sorted by ID).
func (s *Service) importedEntries(policy map[string]any) ([]map[string]any, []depRef) {
	imps, _ := policy["imports"].(map[string]any)
	if len(imps) == 0 {
		return nil, nil
	}
	var out []map[string]any
	deps := make([]depRef, 0, len(imps))
	for _, id := range sortedKeys(imps) {
		irec := s.current(id)
		deps = append(deps, depRef{id: id, rec: irec})
		if !irec.live() {
			continue
		}
		imp, _ := imps[id].(map[string]any)
		explicit := map[string]bool{}
		if labels, ok := imp["entries"].([]any); ok {
			for _, l := range labels {
				if ls, ok := l.(string); ok {
					explicit[ls] = true
				}
			}
		}
		entries, _ := irec.Policy["entries"].(map[string]any)
		for _, label := range sortedKeys(entries) {
			em, _ := entries[label].(map[string]any)
			switch imp, _ := em["importable"].(string); imp {
			case importableNever:
				continue
			case importableExplicit:
				if !explicit[label] {
					continue
				}
			}
			out = append(out, em)
		}
	}
	return out, deps
}

// entriesOf returns the entries of policy plus the imported ones.
func (s *Service) entriesOf(policy map[string]any) []map[string]any {
	entries, _ := policy["entries"].(map[string]any)
	out := make([]map[string]any, 0, len(entries))
	for _, l := range sortedKeys(entries) {
		em, _ := entries[l].(map[string]any)
		out = append(out, em)
	}
	imported, _ := s.importedEntries(policy)
	return append(out, imported...)
}

// enforcerAt returns the enforcer of rec for namespace ns, exact at now,
// from the cache or freshly compiled. It is deterministic in (state, now),
// so Apply uses it too.
func (s *Service) enforcerAt(rec *record, ns string, now time.Time) *Enforcer {
	key := cacheKey{rec.ID, ns}
	s.cacheMu.Lock()
	c := s.cache[key]
	s.cacheMu.Unlock()
	if c != nil && c.rec == rec && s.depsCurrent(c.deps) && !now.Before(c.enf.validFrom) &&
		(c.enf.validUntil.IsZero() || now.Before(c.enf.validUntil)) {
		return c.enf
	}
	entries, _ := rec.Policy["entries"].(map[string]any)
	list := make([]map[string]any, 0, len(entries))
	for _, l := range sortedKeys(entries) {
		em, _ := entries[l].(map[string]any)
		list = append(list, em)
	}
	imported, deps := s.importedEntries(rec.Policy)
	enf := compile(append(list, imported...), ns, now)
	s.cacheMu.Lock()
	s.cache[key] = &cached{rec: rec, deps: deps, enf: enf}
	s.cacheMu.Unlock()
	return enf
}

func (s *Service) depsCurrent(deps []depRef) bool {
	if len(deps) == 0 {
		return true
	}
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
		IfMatch:      cmd.Headers.Get(ditto.HeaderIfMatch),
		IfNoneMatch:  cmd.Headers.Get(ditto.HeaderIfNoneMatch),
		AllowLockout: isTrue(cmd.Headers.Get(ditto.HeaderAllowPolicyLockout)),
		Correlation:  cmd.Headers.Get(ditto.HeaderCorrelationID),
		Time:         ditto.FormatTime(now),
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
	v, ok := ditto.GetAt(rec.Policy, p)
	if !ok {
		v, ok = defaultAt(rec.Policy, p, k)
	}
	if !ok {
		if pp, pk, has := parent(p, k); has {
			if _, found := ditto.GetAt(rec.Policy, pp); !found {
				return ditto.Result{}, notFound(pk, id, p)
			}
		}
		return ditto.Result{}, notFound(k, id, p)
	}
	cur, _ := etagOf(rec, p, k)
	if k != kRoot && cur == "" {
		cur = ditto.HashETag(v)
	}
	if h := cmd.Headers.Get(ditto.HeaderIfMatch); h != "" && !ditto.MatchETag(h, cur, true) {
		return ditto.Result{}, withETag(ditto.ErrPolicyPreconditionFailed.New("The comparison of precondition header 'if-match' for the requested Policy resource evaluated to false. Expected: '%s' to match actual: '%s'.", h, cur), cur)
	}
	if h := cmd.Headers.Get(ditto.HeaderIfNoneMatch); h != "" && ditto.MatchETag(h, cur, true) {
		return ditto.Result{}, withETag(ditto.ErrPolicyPreconditionNotMod.New("The comparison of precondition header 'if-none-match' for the requested Policy resource evaluated to false. Expected: '%s' not to match actual: '%s'.", h, cur), cur)
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
			out["_created"] = rec.Created
			out["_modified"] = rec.Modified
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
	return ditto.Result{Status: 200, Value: ditto.DeepCopy(view), ETag: cur, Revision: rec.Revision, Entity: id}, nil
}

// defaultAt gives the implicit value of an absent entry field.
func defaultAt(policy map[string]any, p ditto.Pointer, k kind) (any, bool) {
	if k != kEntryField {
		return nil, false
	}
	if _, ok := ditto.GetAt(policy, p[:2]); !ok {
		return nil, false
	}
	switch p[2] {
	case "namespaces":
		return []any{}, true
	case "importable":
		return importableImplicit, true
	}
	return nil, false
}

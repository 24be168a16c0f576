package policies

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unique"

	"github.com/dittonode/dittonode/consensus"
	"github.com/dittonode/dittonode/ditto"
)

// Command envelope: type byte, version byte, JSON payload. A type with
// cmdIgnore set may be skipped by nodes that do not know it.
const (
	cmdPolicy     byte = 1
	cmdCompensate byte = 2
	cmdExpire     byte = 3
	cmdAnnounce   byte = 4
	cmdIgnore     byte = 0x80
	cmdVersion    byte = 1
)

// policyCmd is a policy command as proposed: the leader stamped Time.
type policyCmd struct {
	Action       ditto.Action `json:"a"`
	ID           string       `json:"id"`
	Path         []string     `json:"p,omitempty"`
	Value        any          `json:"v,omitempty"`
	Subjects     []string     `json:"s,omitempty"`
	IfMatch      string       `json:"im,omitempty"`
	IfNoneMatch  string       `json:"inm,omitempty"`
	AllowLockout bool         `json:"lo,omitempty"`
	Correlation  string       `json:"cid,omitempty"`
	Time         string       `json:"t"`
	// Rules is the revision of the write rules the command was proposed
	// under, so a log replays as it applied first: 0 (absent) for commands
	// of earlier releases, where allow-policy-lockout also lifted lockout
	// prevention and a subject expiry in the past was accepted.
	Rules uint8 `json:"r,omitempty"`
}

// policyRules is the Rules of new commands: lockout prevention on every
// write, subject expiries in the past refused (1); an import needs READ on
// every entry it takes from the imported policy, checked on every write of
// the imports (2); entry references are validated, count for lockout
// prevention, and a policy may not list itself in transitiveImports (3);
// a write on one part of a policy that would leave a reference without its
// target is refused with 409 (4, referenceConflict).
const policyRules = 4

// compensateCmd deletes policy ID if it is still at Revision.
type compensateCmd struct {
	ID       string `json:"id"`
	Revision int64  `json:"rev"`
	Time     string `json:"t"`
}

// expireCmd removes the subjects of policy ID that expired at Time.
type expireCmd struct {
	ID   string `json:"id"`
	Time string `json:"t"`
}

func encodeCommand(typ byte, payload any) []byte {
	b, err := json.Marshal(payload)
	if err != nil {
		panic("policies: encode command: " + err.Error())
	}
	return append([]byte{typ, cmdVersion}, b...)
}

func decodePayload(b []byte, dst any) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(dst); err != nil {
		panic(fmt.Sprintf("policies: undecodable command: %v", err))
	}
}

// parseStamp parses the time the leader stamped into a command with
// ditto.FormatTime. Every member parses the same bytes the same way. A
// stamp that does not parse (a damaged or foreign log entry: the leader
// never writes one) makes every member skip the command alike: a policy
// write fails with an internal error, a sweeper command does nothing.
func (s *Service) parseStamp(index uint64, stamp string) (ditto.Millis, bool) {
	m, err := ditto.ParseMillis(stamp)
	if err != nil {
		s.deps.Logger.Warn("policies: skipping a command with a bad time", "index", index, "time", stamp)
		return 0, false
	}
	return m, true
}

// badStamp is the result of a policy write whose time does not parse.
func badStamp(stamp string) *ditto.Error {
	return ditto.ErrInternal.New("The policy command has the time %q, which is not a timestamp.", stamp)
}

// record is one stored policy. Records are immutable once stored: a change
// stores a new record (copy-on-write), so snapshots and readers share them.
//
// A record keeps only the canonical JSON of its normalized policy (Raw):
// a decoded tree costs about ten times its bytes. policy() decodes a fresh
// tree for the caller to own (Apply on a change, retrievals, enforcer
// compilation); what the hot paths need is derived once and memoised
// (facts, model.go).
type record struct {
	ID string
	// body is the canonical JSON of the policy (the zero handle once
	// deleted: a tombstone keeps the revision), interned: the records of
	// policies equal but for their ID (100k default policies of one
	// creator) share one copy. raw() rebuilds the JSON.
	body     unique.Handle[policyBody]
	Revision int64
	// Created and Modified are the leader's stamps of the commands that
	// created and last modified the policy; they are formatted only where
	// they are shown (_created, _modified).
	Created  ditto.Millis
	Modified ditto.Millis
	// Announced marks the subjects whose coming expiry was announced:
	// label+"\x00"+subject ID -> the announced expiry (announce.go).
	Announced map[string]string
	// memo caches the facts derived from the body (facts.go), nil until
	// first used. The record holds it rather than pointing to a holder: 16
	// bytes less per record, and 64 bytes in all (one size class).
	memo atomic.Pointer[facts]
}

// withAnnounced returns a copy of r, the same policy with its memo, with
// the announced marks a.
func (r *record) withAnnounced(a map[string]string) *record {
	c := &record{ID: r.ID, body: r.body, Revision: r.Revision, Created: r.Created, Modified: r.Modified, Announced: a}
	c.memo.Store(r.memo.Load())
	return c
}

// policyBody is a policy's canonical JSON, without its last member
// `,"policyId":"<ID>"}` when cut is set.
type policyBody struct {
	json string
	cut  bool
}

func (r *record) live() bool { return r != nil && r.body != unique.Handle[policyBody]{} }

// cut reports whether the record's body lacks the policyId member.
func (r *record) cut() bool { return r.body.Value().cut }

// newRecord returns a live record of the policy encoded as raw (which it
// does not keep).
func newRecord(id string, raw []byte, rev int64, created, modified ditto.Millis) *record {
	r := &record{ID: id, Revision: rev, Created: created, Modified: modified}
	r.setRaw(raw)
	return r
}

// setRaw stores raw, the canonical JSON of the policy with ID r.ID, as the
// record's interned body.
func (r *record) setRaw(raw []byte) {
	body, cut := withoutPolicyID(raw, r.ID)
	if !cut {
		body = raw
	}
	r.body = unique.Make(policyBody{json: string(body), cut: cut})
}

// rawLen returns the length of the policy's canonical JSON (0 for a
// tombstone).
func (r *record) rawLen() int {
	if !r.live() {
		return 0
	}
	n := len(r.body.Value().json)
	if r.cut() {
		n += len(markPolicyID) + len(r.ID) + len(`"}`)
	}
	return n
}

// appendRaw appends the policy's canonical JSON to b.
func (r *record) appendRaw(b []byte) []byte {
	if !r.live() {
		return b
	}
	b = append(b, r.body.Value().json...)
	if r.cut() {
		b = append(append(append(b, markPolicyID...), r.ID...), `"}`...)
	}
	return b
}

// raw returns the policy's canonical JSON in a fresh slice; nil for a
// tombstone.
func (r *record) raw() []byte {
	if !r.live() {
		return nil
	}
	return r.appendRaw(make([]byte, 0, r.rawLen()))
}

// contains reports whether the live policy's JSON holds marker, a quoted
// key other than "policyId" (the markers of facts.go): a cheap test before
// decoding. The cut member holds no other key, and a policy ID no quote.
func (r *record) contains(marker string) bool {
	return r.live() && strings.Contains(r.body.Value().json, marker)
}

// tombstone returns the record of a deleted policy.
func tombstone(id string, rev int64, created, modified ditto.Millis) *record {
	return &record{ID: id, Revision: rev, Created: created, Modified: modified}
}

// policy decodes the stored policy into a fresh tree owned by the caller;
// nil for a tombstone.
func (r *record) policy() map[string]any {
	if !r.live() {
		return nil
	}
	v, err := ditto.DecodeJSON(r.raw())
	m, ok := v.(map[string]any)
	if err != nil || !ok {
		panic(fmt.Sprintf("policies: stored policy %s is not a JSON object", r.ID))
	}
	return m
}

// fsm is the state machine of the "policies" group.
type fsm struct{ s *Service }

var _ consensus.BatchFSM = fsm{}

// Apply applies one committed command.
func (f fsm) Apply(index uint64, cmd []byte) any {
	return f.s.apply(index, cmd)
}

// ApplyBatch applies several committed commands in order.
func (f fsm) ApplyBatch(cmds []consensus.Command) []any {
	out := make([]any, len(cmds))
	for i, c := range cmds {
		out[i] = f.s.apply(c.Index, c.Data)
	}
	return out
}

func (s *Service) apply(index uint64, cmd []byte) any {
	if len(cmd) < 2 {
		panic("policies: short command")
	}
	typ, ver := cmd[0], cmd[1]
	if ver != cmdVersion {
		if typ&cmdIgnore != 0 {
			return nil
		}
		panic(fmt.Sprintf("policies: command version %d unknown", ver))
	}
	switch typ &^ cmdIgnore {
	case cmdPolicy:
		var c policyCmd
		decodePayload(cmd[2:], &c)
		return s.applyPolicy(index, &c)
	case cmdCompensate:
		var c compensateCmd
		decodePayload(cmd[2:], &c)
		return s.applyCompensate(index, &c)
	case cmdExpire:
		var c expireCmd
		decodePayload(cmd[2:], &c)
		return s.applyExpire(index, &c)
	case cmdAnnounce:
		var c announceCmd
		decodePayload(cmd[2:], &c)
		return s.applyAnnounce(index, &c)
	}
	if typ&cmdIgnore != 0 {
		return nil
	}
	panic(fmt.Sprintf("policies: unknown command type %d", typ))
}

func (s *Service) current(id string) *record {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.state[id]
}

func (s *Service) store(r *record) {
	s.mu.Lock()
	s.state[r.ID] = r
	s.mu.Unlock()
}

// etagOf returns the ETag of the resource at p (kind k) in rec, whose
// decoded policy is tree, and whether it exists.
func etagOf(rec *record, tree map[string]any, p ditto.Pointer, k kind) (string, bool) {
	if !rec.live() {
		return "", false
	}
	if k == kRoot {
		return ditto.RevisionETag(rec.Revision), true
	}
	v, ok := ditto.GetAt(tree, p)
	if !ok {
		return "", false
	}
	return ditto.HashETag(v), true
}

// etagError is a precondition failure (412, 304) that carries the current
// entity tag of the resource: Ditto sends it as the ETag of the error
// response. errors.As finds the *ditto.Error inside.
type etagError struct {
	err  *ditto.Error
	etag string
}

func (e *etagError) Error() string { return e.err.Error() }
func (e *etagError) Unwrap() error { return e.err }

// ETag returns the current entity tag of the addressed resource.
func (e *etagError) ETag() string { return e.etag }

// withETag attaches the current entity tag to err; without a tag err is
// returned as is.
func withETag(err *ditto.Error, etag string) error {
	if etag == "" {
		return err
	}
	return &etagError{err: err, etag: etag}
}

// notFound is the 404 error of a missing or unreadable resource of kind k.
func notFound(k kind, id string, p ditto.Pointer) *ditto.Error {
	switch k {
	case kEntries:
		return ditto.ErrPolicyEntriesNotFound.New("The entries of the Policy with ID '%s' could not be found or requester had insufficient permissions to access it.", id)
	case kEntry, kEntryField:
		return ditto.ErrPolicyEntryNotFound.New("The Policy Entry with Label '%s' on the Policy with ID '%s' could not be found or requester had insufficient permissions to access it.", p[1], id)
	case kSubjects:
		return ditto.ErrPolicySubjectsNotFound.New("The Subjects of the PolicyEntry with Label '%s' on the Policy with ID '%s' could not be found or requester had insufficient permissions to access it.", p[1], id)
	case kSubject:
		return ditto.ErrPolicySubjectNotFound.New("The Subject with ID '%s' on the PolicyEntry with Label '%s' on the Policy with ID '%s' could not be found or requester had insufficient permissions to access it.", p[3], p[1], id)
	case kResources:
		return ditto.ErrPolicyResourcesNotFound.New("The Resources of the PolicyEntry with Label '%s' on the Policy with ID '%s' could not be found or requester had insufficient permissions to access it.", p[1], id)
	case kResource:
		return ditto.ErrPolicyResourceNotFound.New("The Resource with path '%s' on the PolicyEntry with Label '%s' on the Policy with ID '%s' could not be found or requester had insufficient permissions to access it.", p[3], p[1], id)
	case kImports:
		return ditto.ErrPolicyImportsNotFound.New("The Policy Imports of the Policy with ID '%s' could not be found or requester had insufficient permissions to access it.", id)
	case kImport, kImportField:
		return ditto.ErrPolicyImportNotFound.New("The Policy Import with ID '%s' on the Policy with ID '%s' could not be found or requester had insufficient permissions to access it.", p[1], id)
	}
	return policyNotFound(id)
}

func policyNotFound(id string) *ditto.Error {
	return ditto.ErrPolicyNotFound.New("The Policy with ID '%s' could not be found or requester had insufficient permissions to access it.", id)
}

// notModifiable is the 403 error of a denied write of kind k, as Ditto's
// PolicyCommandToModifyExceptionRegistry maps it (the entries as a whole:
// the policy's error).
func notModifiable(k kind, id string, p ditto.Pointer) *ditto.Error {
	switch k {
	case kEntry, kEntryField:
		return ditto.ErrPolicyEntryNotModifiable.New("The Policy Entry with Label '%s' on the Policy with ID '%s' could not be modified as the requester had insufficient permissions.", p[1], id)
	case kSubjects:
		return ditto.ErrPolicySubjectsNotMod.New("The Subjects of the PolicyEntry with Label '%s' on the Policy with ID '%s' could not be modified as the requester had insufficient permissions.", p[1], id)
	case kSubject:
		return ditto.ErrPolicySubjectNotMod.New("The Subject with ID '%s' on the PolicyEntry with Label '%s' on the Policy with ID '%s' could not be modified as the requester had insufficient permissions.", p[3], p[1], id)
	case kResources:
		return ditto.ErrPolicyResourcesNotMod.New("The Resources of the PolicyEntry with Label '%s' on the Policy with ID '%s' could not be modified as the requester had insufficient permissions.", p[1], id)
	case kResource:
		return ditto.ErrPolicyResourceNotMod.New("The Resource with path '%s' on the PolicyEntry with Label '%s' on the Policy with ID '%s' could not be modified as the requester had insufficient permissions.", p[3], p[1], id)
	case kImports:
		return ditto.ErrPolicyImportsNotMod.New("The Policy Imports of the Policy with ID '%s' could not be modified as the requester had insufficient permissions.", id)
	case kImport, kImportField:
		return ditto.ErrPolicyImportNotMod.New("The Policy Import with ID '%s' on the Policy with ID '%s' could not be modified as the requester had insufficient permissions.", p[1], id)
	}
	return ditto.ErrPolicyNotModifiable.New("The Policy with ID '%s' could not be modified as the requester had insufficient permissions to modify it.", id)
}

// parent returns the path whose existence a change at p (kind k) needs, and
// the kind of it; ok=false when the policy itself suffices.
func parent(p ditto.Pointer, k kind) (ditto.Pointer, kind, bool) {
	switch k {
	case kSubjects, kSubject, kResources, kResource, kEntryField:
		return p[:2], kEntry, true
	case kImportField:
		return p[:2], kImport, true
	}
	return nil, 0, false
}

// createReturnsValue reports whether a modify of kind k answers 201 with a
// value when the resource was missing (else always 204).
func createReturnsValue(k kind) bool {
	switch k {
	case kRoot, kEntry, kSubject, kResource, kImport:
		return true
	}
	return false
}

func deletable(p ditto.Pointer, k kind) bool {
	switch k {
	case kRoot, kEntry, kSubject, kResource, kImports, kImport:
		return true
	case kEntryField:
		return p[2] == "references"
	}
	return false
}

// applyPolicy executes a policy write deterministically.
func (s *Service) applyPolicy(index uint64, c *policyCmd) any {
	ts, ok := s.parseStamp(index, c.Time)
	if !ok {
		return badStamp(c.Time)
	}
	now := ts.Time()
	p, k, err := parsePath(c.Path)
	if err != nil {
		return err
	}
	rec := s.current(c.ID)
	exists := rec.live()
	ns := namespaceOf(c.ID)

	// Existence and permission on the current policy.
	if !exists && !(k == kRoot && c.Action != ditto.ActionDelete) {
		return policyNotFound(c.ID)
	}
	if exists {
		if c.Action == ditto.ActionCreate {
			return ditto.ErrPolicyConflict.New("The Policy with ID '%s' already exists.", c.ID)
		}
		enf := s.applyEnforcer(c.Rules, rec, ns, now)
		if !enf.Unrestricted(ditto.ResourcePolicy, resourcePath(p), c.Subjects, ditto.PermWrite) {
			return notModifiable(k, c.ID, p)
		}
	}

	// Conditional headers decide on the addressed resource.
	tree := rec.policy()
	cur, has := etagOf(rec, tree, p, k)
	if c.IfMatch != "" && !ditto.MatchETag(c.IfMatch, cur, has) {
		return withETag(ditto.ErrPolicyPreconditionFailed.New("The comparison of precondition header 'if-match' for the requested Policy resource evaluated to false. Expected: '%s' to match actual: '%s'.", c.IfMatch, cur), cur)
	}
	if c.IfNoneMatch != "" && ditto.MatchETag(c.IfNoneMatch, cur, has) {
		return withETag(ditto.ErrPolicyPreconditionFailed.New("The comparison of precondition header 'if-none-match' for the requested Policy resource evaluated to false. Expected: '%s' not to match actual: '%s'.", c.IfNoneMatch, cur), cur)
	}

	if c.Action == ditto.ActionDelete {
		return s.applyDelete(index, c, rec, tree, p, k, ts)
	}
	return s.applyModify(index, c, rec, tree, p, k, ts)
}

// applyDelete deletes at p; tree is rec's decoded policy, owned by the call.
func (s *Service) applyDelete(index uint64, c *policyCmd, rec *record, tree map[string]any, p ditto.Pointer, k kind, ts ditto.Millis) any {
	if k == kRoot {
		s.store(tombstone(c.ID, rec.Revision+1, rec.Created, ts))
		s.publish(index, c.ID, "deleted", p, nil, rec.Revision+1, c.Time, c.Correlation, nil)
		s.announceDeleted(index, c.ID, tree, nil, ts)
		return ditto.Result{Status: 204, Revision: rec.Revision + 1, Entity: c.ID}
	}
	if !deletable(p, k) {
		return ditto.ErrMethodNotAllowed.New("The resource '%s' of a policy cannot be deleted.", p.String())
	}
	if pp, pk, ok := parent(p, k); ok {
		if _, found := ditto.GetAt(tree, pp); !found {
			return notFound(pk, c.ID, p)
		}
	}
	if _, found := ditto.GetAt(tree, p); !found && (k != kImports || c.Rules < 4) {
		// Deleting the imports of a policy that has none succeeds, as
		// Ditto's DeletePolicyImports does (rules 4).
		return notFound(k, c.ID, p)
	}
	if c.Rules >= 4 {
		if err := referenceConflict(c.ID, tree, p, k, true, nil); err != nil {
			return err
		}
	}
	next := ditto.DeepCopy(tree).(map[string]any)
	ditto.DeleteAt(next, p)
	if err := s.checkLockout(c, next, k); err != nil {
		return err
	}
	return s.commit(index, c, ts, rec, tree, next, nil, p, nil, 204, nil)
}

// applyModify modifies at p; tree is rec's decoded policy (nil when there
// is none), owned by the call.
func (s *Service) applyModify(index uint64, c *policyCmd, rec *record, tree map[string]any, p ditto.Pointer, k kind, ts ditto.Millis) any {
	now := ts.Time()
	frag, err := normFragment(c.ID, p, k, c.Value)
	if err != nil {
		return err
	}
	exists := rec.live()
	var next map[string]any
	created := false
	if k == kRoot {
		next = frag.(map[string]any)
		created = !exists
	} else {
		if pp, pk, ok := parent(p, k); ok {
			if _, found := ditto.GetAt(tree, pp); !found {
				return notFound(pk, c.ID, p)
			}
		}
		_, had := ditto.GetAt(tree, p)
		created = !had && createReturnsValue(k)
		next = ditto.DeepCopy(tree).(map[string]any)
		next = ditto.SetAt(next, p, frag).(map[string]any)
	}
	if imps, _ := next["imports"].(map[string]any); len(imps) > MaxImports {
		return ditto.ErrPolicyImportsTooLarge.New("The Policy '%s' would have %d imports, more than the allowed %d.", c.ID, len(imps), MaxImports)
	}
	if err := s.checkImports(c, tree, next, now, k, p); err != nil {
		return err
	}
	var early *record // the new policy encoded before commit, if it was
	if k == kRoot && !exists && !c.AllowLockout {
		// Through the content-keyed cache: the creates of equal policies
		// (a default policy per thing) compile once.
		early = newRecord(c.ID, ditto.EncodeJSON(next), 0, 0, 0)
		enf := s.applyEnforcer(c.Rules, early, namespaceOf(c.ID), now)
		if !enf.Unrestricted(ditto.ResourcePolicy, nil, c.Subjects, ditto.PermWrite) {
			return ditto.ErrPolicyNotCreatable.New("The Policy with ID '%s' could not be created as the requester would have no WRITE permission on 'policy:/' in it. Set 'allow-policy-lockout' to create it anyway.", c.ID)
		}
	}
	if c.Rules >= 1 {
		if err := expiredSubject(tree, next, now); err != nil {
			return err
		}
	}
	if c.Rules >= 4 && exists {
		if err := referenceConflict(c.ID, tree, p, k, false, frag); err != nil {
			return err
		}
	}
	if c.Rules >= 3 {
		if err := checkReferences(next); err != nil {
			return err
		}
		if err := checkTransitive(c.ID, next); err != nil {
			return err
		}
	}
	if err := s.checkLockout(c, next, k); err != nil {
		return err
	}
	status := 204
	var value any
	if created {
		status, value = 201, frag
	}
	return s.commit(index, c, ts, rec, tree, next, early, p, frag, status, value)
}

// checkImports checks that the requester may import what next imports.
// Under rules 2, as Ditto's PolicyImportsPreEnforcer: every write of the
// whole policy, its imports or one import (k at p) needs, for each import
// it writes, unrestricted READ on every entry that import takes from the
// imported policy (its implicit entries and the labels it lists), and the
// imported policy must exist; else 404 policies:policy.notfound. Earlier
// rules asked partial READ on the entries of newly imported policies only.
func (s *Service) checkImports(c *policyCmd, tree, next map[string]any, now time.Time, k kind, p ditto.Pointer) error {
	imps, _ := next["imports"].(map[string]any)
	if c.Rules >= 2 {
		var ids []string
		switch k {
		case kRoot, kImports:
			ids = sortedKeys(imps)
		case kImport, kImportField:
			if _, ok := imps[p[1]]; ok {
				ids = []string{p[1]}
			}
		}
		for _, id := range ids {
			if !s.mayImport(c.Rules, id, imps[id], c.Subjects, now) {
				return ditto.ErrPolicyNotFound.New("The Policy with ID '%s' could not be found or requester had insufficient permissions to access it.", id).
					WithDescription("Check if the ID of the imported Policy was correct and you have sufficient permissions on all imported policy entries.")
			}
		}
		return nil
	}
	old, _ := tree["imports"].(map[string]any)
	for _, id := range sortedKeys(imps) {
		if _, had := old[id]; had {
			continue
		}
		irec := s.current(id)
		if !irec.live() || !s.applyEnforcer(c.Rules, irec, namespaceOf(id), now).Partial(ditto.ResourcePolicy, ditto.Pointer{"entries"}, c.Subjects, ditto.PermRead) {
			return ditto.ErrPolicyImportInvalid.New("The imported Policy with ID '%s' could not be found or requester had insufficient permissions to read its entries.", id)
		}
	}
	return nil
}

// mayImport reports whether subjects may import policy id as imp (its
// import object) describes: it exists, and they have unrestricted READ on
// every entry the import takes, its implicit entries and the ones it lists.
func (s *Service) mayImport(rules uint8, id string, imp any, subjects []string, now time.Time) bool {
	irec := s.current(id)
	if !irec.live() {
		return false
	}
	enf := s.applyEnforcer(rules, irec, namespaceOf(id), now)
	readable := func(label string) bool {
		return enf.Unrestricted(ditto.ResourcePolicy, ditto.Pointer{"entries", label}, subjects, ditto.PermRead)
	}
	entries, _ := irec.policy()["entries"].(map[string]any)
	for _, label := range sortedKeys(entries) {
		em, _ := entries[label].(map[string]any)
		if im, _ := em["importable"].(string); (im == "" || im == importableImplicit) && !readable(label) {
			return false
		}
	}
	m, _ := imp.(map[string]any)
	listed, _ := m["entries"].([]any)
	for _, l := range listed {
		if label, ok := l.(string); ok && !readable(label) {
			return false
		}
	}
	return true
}

// expiredSubject refuses a write that sets a subject expiry (rounded up
// already) that lies before now, as Ditto does: such a subject would be
// deleted at once. Subjects next keeps unchanged from tree are not the
// write's: one that expired but was not removed yet does not block other
// changes.
func expiredSubject(tree, next map[string]any, now time.Time) error {
	var had map[string]string
	for _, ref := range subjectsOf(next) {
		exp, _ := ref.value["expiry"].(string)
		t, err := time.Parse(time.RFC3339, exp)
		if err != nil || !t.Before(now) {
			continue
		}
		if had == nil {
			had = map[string]string{}
			for _, o := range subjectsOf(tree) {
				had[o.key()], _ = o.value["expiry"].(string)
			}
		}
		if old, ok := had[ref.key()]; ok && old == exp {
			continue
		}
		return ditto.ErrPolicySubjectExpiryBad.New("Subject expiry timestamp '%s' is not valid.", exp).
			WithDescription("It must not be in the past, please adjust to a timestamp in the future.")
	}
	return nil
}

// checkLockout enforces lockout prevention on next. allow-policy-lockout
// does not lift it: the header only lets a requester create a policy that
// does not grant the requester itself WRITE (applyModify), as in Ditto.
func (s *Service) checkLockout(c *policyCmd, next map[string]any, k kind) error {
	if c.AllowLockout && c.Rules == 0 {
		return nil
	}
	if imps, ok := next["imports"].(map[string]any); ok && len(imps) > 0 {
		return nil
	}
	safe := next
	if c.Rules >= 3 {
		// An entry's references count: a subject may hold WRITE on
		// policy:/ through a referenced entry.
		safe = map[string]any{"entries": resolvedOwnEntries(next, nil)}
	}
	if lockoutSafe(safe) {
		return nil
	}
	switch k {
	case kRoot, kEntries, kImports, kImport, kImportField:
		return ditto.ErrPolicyModInvalid.New("The Policy with ID '%s' could not be modified: at least one subject without expiry must keep WRITE permission on 'policy:/'.", c.ID)
	}
	return ditto.ErrPolicyEntryModInvalid.New("The Policy Entry could not be modified on the Policy with ID '%s': at least one subject without expiry must keep WRITE permission on 'policy:/'.", c.ID)
}

// commit stores next as the new revision of rec (whose decoded policy is
// tree) at time ts (c.Time parsed), publishes the event and returns the
// result; value is the 201 response value (nil for none). early, if not
// nil, is next already encoded (with its memo).
func (s *Service) commit(index uint64, c *policyCmd, ts ditto.Millis, rec *record, tree, next map[string]any, early *record, p ditto.Pointer, frag any, status int, value any) any {
	nr := early
	if nr == nil {
		nr = newRecord(c.ID, ditto.EncodeJSON(next), 0, 0, 0)
	}
	raw := nr.raw()
	if len(raw) > s.cfg.MaxPolicyBytes {
		return ditto.ErrPolicyTooLarge.New("The size of '%d' bytes exceeds the maximal allowed Policy size of '%d' bytes.", len(raw), s.cfg.MaxPolicyBytes)
	}
	nr.Revision, nr.Created, nr.Modified = 1, ts, ts
	if rec != nil {
		nr.Revision = rec.Revision + 1
		if rec.live() {
			nr.Created = rec.Created
			nr.Announced = keptAnnounced(rec, next)
		}
	}
	action := "modified"
	switch {
	case c.Action == ditto.ActionDelete:
		action = "deleted"
	case status == 201:
		action = "created"
	}
	s.store(nr)
	s.publish(index, c.ID, action, p, frag, nr.Revision, c.Time, c.Correlation, raw)
	if rec.live() {
		s.announceDeleted(index, c.ID, tree, next, ts)
	}
	res := ditto.Result{Status: status, Revision: nr.Revision, Entity: c.ID}
	if value != nil {
		res.Value = ditto.DeepCopy(value)
	}
	if c.Action != ditto.ActionDelete {
		if cur, ok := etagOf(nr, next, p, kindOf(p)); ok {
			res.ETag = cur
		}
	}
	return res
}

func kindOf(p ditto.Pointer) kind {
	_, k, _ := parsePath(p)
	return k
}

func (s *Service) applyCompensate(index uint64, c *compensateCmd) any {
	rec := s.current(c.ID)
	if !rec.live() || rec.Revision != c.Revision {
		return nil
	}
	ts, ok := s.parseStamp(index, c.Time)
	if !ok {
		return nil
	}
	s.store(tombstone(c.ID, rec.Revision+1, rec.Created, ts))
	s.publish(index, c.ID, "deleted", nil, nil, rec.Revision+1, c.Time, "", nil)
	return nil
}

// applyExpire deletes the subjects of a policy whose expiry passed at the
// command's time (no lockout check: Ditto deletes them regardless).
func (s *Service) applyExpire(index uint64, c *expireCmd) any {
	ts, ok := s.parseStamp(index, c.Time)
	if !ok {
		return nil
	}
	now := ts.Time()
	rec := s.current(c.ID)
	if !rec.expiredAt(now) {
		return nil
	}
	tree := rec.policy()
	next := ditto.DeepCopy(tree).(map[string]any)
	entries, _ := next["entries"].(map[string]any)
	for _, e := range entries {
		subjects, _ := e.(map[string]any)["subjects"].(map[string]any)
		for sid, sv := range subjects {
			if subjectExpired(sv, now) {
				delete(subjects, sid)
			}
		}
	}
	raw := ditto.EncodeJSON(next)
	nr := newRecord(c.ID, raw, rec.Revision+1, rec.Created, ts)
	nr.Announced = keptAnnounced(rec, next)
	s.store(nr)
	s.publish(index, c.ID, "modified", nil, next, nr.Revision, c.Time, "", raw)
	s.announceDeleted(index, c.ID, tree, next, ts)
	return nil
}

func subjectExpired(sv any, now time.Time) bool {
	sm, _ := sv.(map[string]any)
	exp, ok := sm["expiry"].(string)
	if !ok {
		return false
	}
	t, err := time.Parse(time.RFC3339, exp)
	return err == nil && !t.After(now)
}

// publish sends the event of an applied change to the bus.
func (s *Service) publish(index uint64, id, action string, p ditto.Pointer, value any, rev int64, ts, correlation string, state []byte) {
	if s.deps.Bus == nil {
		return
	}
	ns, name, _ := strings.Cut(id, ":")
	env := ditto.Envelope{
		Topic:     ns + "/" + name + "/policies/events/" + action,
		Headers:   ditto.Headers{ditto.HeaderContentType: ditto.ContentTypeJSON},
		Path:      ditto.Pointer(p).String(),
		Revision:  rev,
		Timestamp: ts,
	}
	if correlation != "" {
		env.Headers[ditto.HeaderCorrelationID] = correlation
	}
	if value != nil && action != "deleted" {
		env.Value = ditto.EncodeJSON(value)
	}
	s.deps.Bus.Publish(ditto.Signal{Envelope: env, EntityID: id, PolicyID: id, Revision: rev, State: state, Index: index})
}

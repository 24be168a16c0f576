package policies

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/dittonode/dittonode/consensus"
	"github.com/dittonode/dittonode/ditto"
)

// Command envelope: type byte, version byte, JSON payload. A type with
// cmdIgnore set may be skipped by nodes that do not know it.
const (
	cmdPolicy     byte = 1
	cmdCompensate byte = 2
	cmdExpire     byte = 3
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
}

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

func parseStamp(s string) time.Time {
	t, err := time.Parse(ditto.TimeFormat, s)
	if err != nil {
		panic(fmt.Sprintf("policies: command with bad time %q", s))
	}
	return t
}

// record is one stored policy. Records are immutable once stored: a change
// stores a new record (copy-on-write), so snapshots and readers share them.
type record struct {
	ID       string
	Policy   map[string]any // nil once deleted (a tombstone keeps the revision)
	Raw      []byte         // Policy encoded
	Revision int64
	Created  string
	Modified string
}

func (r *record) live() bool { return r != nil && r.Policy != nil }

// fsm is the state machine of the "policies" group.
type fsm struct{ s *Service }

var _ consensus.BatchFSM = fsm{}

// Apply applies one committed command.
func (f fsm) Apply(index uint64, cmd []byte) any {
	return f.s.apply(index, cmd)
}

// ApplyBatch applies several committed commands in order.
func (f fsm) ApplyBatch(first uint64, cmds [][]byte) []any {
	out := make([]any, len(cmds))
	for i, c := range cmds {
		out[i] = f.s.apply(first+uint64(i), c)
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

// etagOf returns the ETag of the resource at p (kind k) in rec and whether
// it exists.
func etagOf(rec *record, p ditto.Pointer, k kind) (string, bool) {
	if !rec.live() {
		return "", false
	}
	if k == kRoot {
		return ditto.RevisionETag(rec.Revision), true
	}
	v, ok := ditto.GetAt(rec.Policy, p)
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

// notModifiable is the 403 error of a denied write of kind k.
func notModifiable(k kind, id string, p ditto.Pointer) *ditto.Error {
	switch k {
	case kEntries:
		return ditto.ErrPolicyEntriesNotMod.New("The entries of the Policy with ID '%s' could not be modified as the requester had insufficient permissions to modify them.", id)
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
	now := parseStamp(c.Time)
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
		enf := s.enforcerAt(rec, ns, now)
		if !enf.Unrestricted(ditto.ResourcePolicy, resourcePath(p), c.Subjects, ditto.PermWrite) {
			return notModifiable(k, c.ID, p)
		}
	}

	// Conditional headers decide on the addressed resource.
	cur, has := etagOf(rec, p, k)
	if c.IfMatch != "" && !ditto.MatchETag(c.IfMatch, cur, has) {
		return withETag(ditto.ErrPolicyPreconditionFailed.New("The comparison of precondition header 'if-match' for the requested Policy resource evaluated to false. Expected: '%s' to match actual: '%s'.", c.IfMatch, cur), cur)
	}
	if c.IfNoneMatch != "" && ditto.MatchETag(c.IfNoneMatch, cur, has) {
		return withETag(ditto.ErrPolicyPreconditionFailed.New("The comparison of precondition header 'if-none-match' for the requested Policy resource evaluated to false. Expected: '%s' not to match actual: '%s'.", c.IfNoneMatch, cur), cur)
	}

	if c.Action == ditto.ActionDelete {
		return s.applyDelete(index, c, rec, p, k, now)
	}
	return s.applyModify(index, c, rec, p, k, now)
}

func (s *Service) applyDelete(index uint64, c *policyCmd, rec *record, p ditto.Pointer, k kind, now time.Time) any {
	if k == kRoot {
		s.store(&record{ID: c.ID, Revision: rec.Revision + 1, Created: rec.Created, Modified: c.Time})
		s.publish(index, c.ID, "deleted", p, nil, rec.Revision+1, c.Time, c.Correlation, nil)
		return ditto.Result{Status: 204, Revision: rec.Revision + 1, Entity: c.ID}
	}
	if !deletable(p, k) {
		return ditto.ErrMethodNotAllowed.New("The resource '%s' of a policy cannot be deleted.", p.String())
	}
	if pp, pk, ok := parent(p, k); ok {
		if _, found := ditto.GetAt(rec.Policy, pp); !found {
			return notFound(pk, c.ID, p)
		}
	}
	if _, found := ditto.GetAt(rec.Policy, p); !found {
		return notFound(k, c.ID, p)
	}
	next := ditto.DeepCopy(rec.Policy).(map[string]any)
	ditto.DeleteAt(next, p)
	if err := s.checkLockout(c, next, k); err != nil {
		return err
	}
	return s.commit(index, c, rec, next, p, nil, 204, nil)
}

func (s *Service) applyModify(index uint64, c *policyCmd, rec *record, p ditto.Pointer, k kind, now time.Time) any {
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
			if _, found := ditto.GetAt(rec.Policy, pp); !found {
				return notFound(pk, c.ID, p)
			}
		}
		_, had := ditto.GetAt(rec.Policy, p)
		created = !had && createReturnsValue(k)
		next = ditto.DeepCopy(rec.Policy).(map[string]any)
		next = ditto.SetAt(next, p, frag).(map[string]any)
	}
	if imps, _ := next["imports"].(map[string]any); len(imps) > MaxImports {
		return ditto.ErrPolicyImportsTooLarge.New("The Policy '%s' would have %d imports, more than the allowed %d.", c.ID, len(imps), MaxImports)
	}
	if err := s.checkImports(c, rec, next, now); err != nil {
		return err
	}
	if k == kRoot && !exists && !c.AllowLockout {
		enf := compile(s.entriesOf(next), namespaceOf(c.ID), now)
		if !enf.Unrestricted(ditto.ResourcePolicy, nil, c.Subjects, ditto.PermWrite) {
			return ditto.ErrPolicyNotCreatable.New("The Policy with ID '%s' could not be created as the requester would have no WRITE permission on 'policy:/' in it. Set 'allow-policy-lockout' to create it anyway.", c.ID)
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
	return s.commit(index, c, rec, next, p, frag, status, value)
}

// checkImports requires READ on the entries of every newly imported policy
// and that it exists.
func (s *Service) checkImports(c *policyCmd, rec *record, next map[string]any, now time.Time) error {
	imps, _ := next["imports"].(map[string]any)
	var old map[string]any
	if rec.live() {
		old, _ = rec.Policy["imports"].(map[string]any)
	}
	for _, id := range sortedKeys(imps) {
		if _, had := old[id]; had {
			continue
		}
		irec := s.current(id)
		if !irec.live() || !s.enforcerAt(irec, namespaceOf(id), now).Partial(ditto.ResourcePolicy, ditto.Pointer{"entries"}, c.Subjects, ditto.PermRead) {
			return ditto.ErrPolicyImportInvalid.New("The imported Policy with ID '%s' could not be found or requester had insufficient permissions to read its entries.", id)
		}
	}
	return nil
}

// checkLockout enforces lockout prevention on next.
func (s *Service) checkLockout(c *policyCmd, next map[string]any, k kind) error {
	if c.AllowLockout {
		return nil
	}
	if imps, ok := next["imports"].(map[string]any); ok && len(imps) > 0 {
		return nil
	}
	if lockoutSafe(next) {
		return nil
	}
	switch k {
	case kRoot, kEntries, kImports, kImport, kImportField:
		return ditto.ErrPolicyModInvalid.New("The Policy with ID '%s' could not be modified: at least one subject without expiry must keep WRITE permission on 'policy:/'.", c.ID)
	}
	return ditto.ErrPolicyEntryModInvalid.New("The Policy Entry could not be modified on the Policy with ID '%s': at least one subject without expiry must keep WRITE permission on 'policy:/'.", c.ID)
}

// commit stores next as the new revision, publishes the event and returns
// the result; value is the 201 response value (nil for none).
func (s *Service) commit(index uint64, c *policyCmd, rec *record, next map[string]any, p ditto.Pointer, frag any, status int, value any) any {
	raw := ditto.EncodeJSON(next)
	if len(raw) > s.cfg.MaxPolicyBytes {
		return ditto.ErrPolicyTooLarge.New("The size of '%d' bytes exceeds the maximal allowed Policy size of '%d' bytes.", len(raw), s.cfg.MaxPolicyBytes)
	}
	nr := &record{ID: c.ID, Policy: next, Raw: raw, Revision: 1, Created: c.Time, Modified: c.Time}
	if rec != nil {
		nr.Revision = rec.Revision + 1
		if rec.live() {
			nr.Created = rec.Created
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
	res := ditto.Result{Status: status, Revision: nr.Revision, Entity: c.ID}
	if value != nil {
		res.Value = ditto.DeepCopy(value)
	}
	if c.Action != ditto.ActionDelete {
		if cur, ok := etagOf(nr, p, kindOf(p)); ok {
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
	s.store(&record{ID: c.ID, Revision: rec.Revision + 1, Created: rec.Created, Modified: c.Time})
	s.publish(index, c.ID, "deleted", nil, nil, rec.Revision+1, c.Time, "", nil)
	return nil
}

// applyExpire deletes the subjects of a policy whose expiry passed at the
// command's time (no lockout check: Ditto deletes them regardless).
func (s *Service) applyExpire(index uint64, c *expireCmd) any {
	now := parseStamp(c.Time)
	rec := s.current(c.ID)
	if !rec.live() || !hasExpired(rec.Policy, now) {
		return nil
	}
	next := ditto.DeepCopy(rec.Policy).(map[string]any)
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
	nr := &record{ID: c.ID, Policy: next, Raw: raw, Revision: rec.Revision + 1, Created: rec.Created, Modified: c.Time}
	s.store(nr)
	s.publish(index, c.ID, "modified", nil, next, nr.Revision, c.Time, "", raw)
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

// hasExpired reports whether some subject of policy expired at now.
func hasExpired(policy map[string]any, now time.Time) bool {
	entries, _ := policy["entries"].(map[string]any)
	for _, e := range entries {
		subjects, _ := e.(map[string]any)["subjects"].(map[string]any)
		for _, sv := range subjects {
			if subjectExpired(sv, now) {
				return true
			}
		}
	}
	return false
}

// publish sends the event of an applied change to the bus.
func (s *Service) publish(index uint64, id, action string, p ditto.Pointer, value any, rev int64, ts, correlation string, state []byte) {
	if s.deps.Bus == nil {
		return
	}
	ns, name, _ := strings.Cut(id, ":")
	env := ditto.Envelope{
		Topic:     ns + "/" + name + "/policies/events/" + action,
		Headers:   ditto.Headers{},
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

// Snapshot captures the state: a copy of the map of immutable records.
func (f fsm) Snapshot() (consensus.Snapshot, error) {
	f.s.mu.RLock()
	defer f.s.mu.RUnlock()
	recs := make([]*record, 0, len(f.s.state))
	for _, r := range f.s.state {
		recs = append(recs, r)
	}
	return &snapshot{recs: recs}, nil
}

type snapshot struct{ recs []*record }

const snapshotMagic = "dnpol1\n"

// Persist writes the records sorted by ID, each as a 4-byte big-endian
// length and its JSON.
func (sn *snapshot) Persist(w io.Writer) error {
	sort.Slice(sn.recs, func(i, j int) bool { return sn.recs[i].ID < sn.recs[j].ID })
	bw := bufio.NewWriter(w)
	if _, err := bw.WriteString(snapshotMagic); err != nil {
		return fmt.Errorf("persist policies: %w", err)
	}
	var hdr [4]byte
	for _, r := range sn.recs {
		b, err := json.Marshal(snapRecord{ID: r.ID, Policy: r.Raw, Revision: r.Revision, Created: r.Created, Modified: r.Modified})
		if err != nil {
			return fmt.Errorf("persist policies: %w", err)
		}
		binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
		if _, err := bw.Write(hdr[:]); err != nil {
			return fmt.Errorf("persist policies: %w", err)
		}
		if _, err := bw.Write(b); err != nil {
			return fmt.Errorf("persist policies: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("persist policies: %w", err)
	}
	return nil
}

// Release frees nothing: records are shared and immutable.
func (sn *snapshot) Release() {}

type snapRecord struct {
	ID       string          `json:"id"`
	Policy   json.RawMessage `json:"policy,omitempty"`
	Revision int64           `json:"rev"`
	Created  string          `json:"created,omitempty"`
	Modified string          `json:"modified,omitempty"`
}

// ErrBadSnapshot is returned by Restore for data that is not a policies
// snapshot.
var ErrBadSnapshot = errors.New("policies: corrupt snapshot")

// Restore replaces the state with the snapshot from r, atomically, and
// drops every compiled enforcer.
func (f fsm) Restore(r io.Reader) error {
	br := bufio.NewReader(r)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapshotMagic {
		return ErrBadSnapshot
	}
	state := map[string]*record{}
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
		}
		b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(br, b); err != nil {
			return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
		}
		var sr snapRecord
		if err := json.Unmarshal(b, &sr); err != nil {
			return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
		}
		rec := &record{ID: sr.ID, Revision: sr.Revision, Created: sr.Created, Modified: sr.Modified}
		if len(sr.Policy) > 0 {
			v, err := ditto.DecodeJSON(sr.Policy)
			m, ok := v.(map[string]any)
			if err != nil || !ok {
				return fmt.Errorf("%w: policy %s", ErrBadSnapshot, sr.ID)
			}
			rec.Policy, rec.Raw = m, []byte(sr.Policy)
		}
		state[rec.ID] = rec
	}
	f.s.mu.Lock()
	f.s.state = state
	f.s.mu.Unlock()
	f.s.cacheMu.Lock()
	clear(f.s.cache)
	f.s.cacheMu.Unlock()
	return nil
}

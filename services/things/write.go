package things

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// errThingAppeared reports that the thing was created concurrently while
// this command prepared its default policy.
var errThingAppeared = errors.New("thing created concurrently")

// compensateTimeout bounds the deletion of a policy after a failed create.
const compensateTimeout = 10 * time.Second

// newEntry builds the log entry of a write; the time is stamped here, on the
// proposing node, never inside Apply.
func (s *Service) newEntry(cmd ditto.Command, o op, value any, hasValue bool) *entry {
	e := &entry{
		op:        o,
		id:        cmd.Entity,
		path:      cmd.Path,
		time:      s.clock().UnixMilli(),
		corrID:    cmd.Headers.Get(ditto.HeaderCorrelationID),
		origin:    cmd.Auth.Default(),
		session:   cmd.Headers.Get(ditto.HeaderOrigin),
		ifMatch:   ditto.StrongIfMatch(cmd.Headers.Get(ditto.HeaderIfMatch)),
		ifNone:    cmd.Headers.Get(ditto.HeaderIfNoneMatch),
		ifEqual:   cmd.Headers.Get(ditto.HeaderIfEqual),
		condition: cmd.Headers.Get(ditto.HeaderCondition),
	}
	if e.path == nil {
		e.path = ditto.Pointer{}
	}
	if hasValue {
		e.value = ditto.EncodeJSON(value)
	}
	if o != opDelete {
		// Checked by Handle; Apply parses them again. A delete removes
		// the metadata of what it deletes and ignores both.
		if put := cmd.Headers[ditto.HeaderPutMetadata]; put != "" {
			if items, err := parsePutMetadata(put); err == nil && len(items) > 0 {
				e.putMeta = canonicalJSON(put)
			}
		}
		e.delMeta = cmd.Headers[ditto.HeaderDeleteMetadata]
	}
	return e
}

// canonicalJSON re-encodes valid JSON canonically.
func canonicalJSON(s string) string {
	v, err := ditto.DecodeJSON([]byte(s))
	if err != nil {
		return s
	}
	return string(ditto.EncodeJSON(v))
}

func opOf(a ditto.Action) op {
	switch a {
	case ditto.ActionCreate:
		return opCreate
	case ditto.ActionMerge:
		return opMerge
	case ditto.ActionDelete:
		return opDelete
	}
	return opModify
}

// write handles create, modify, merge and delete.
func (s *Service) write(ctx context.Context, cmd ditto.Command, id ditto.EntityID, r resource) (ditto.Result, error) {
	tid := cmd.Entity
	if cmd.Action == ditto.ActionDelete && r.kind == kindPolicyID {
		return ditto.Result{}, policyIDNotDeletable(tid)
	}
	if cmd.Action == ditto.ActionCreate && r.kind != kindThing {
		return ditto.Result{}, ditto.ErrMethodNotAllowed.New("Only a whole Thing can be created; use modify for '%s'.", r.path.String())
	}
	if ifEqual := cmd.Headers.Get(ditto.HeaderIfEqual); ifEqual != "" && ifEqual != ifEqualUpdate && ifEqual != ifEqualSkip && ifEqual != ifEqualSkipMinimize {
		return ditto.Result{}, ditto.ErrHeaderInvalid.New("The value '%s' of the header 'if-equal' is invalid: use update, skip or skip-minimizing-merge.", ifEqual)
	}
	var (
		value any                  // canonical value of a modify / patch of a merge
		body  map[string]any       // the raw body of a root write (for _policy, _copyPolicyFrom)
		thing map[string]any       // canonical thing of a root modify / create
		v     = validator{id: tid} //
	)
	switch cmd.Action {
	case ditto.ActionCreate, ditto.ActionModify:
		if n := len(ditto.EncodeJSON(cmd.Value)); n > s.cfg.MaxThingBytes {
			return ditto.Result{}, tooLarge(tid, n, s.cfg.MaxThingBytes)
		}
		c, err := v.resourceValue(r, cmd.Value)
		if err != nil {
			return ditto.Result{}, err
		}
		value = c
		if r.kind == kindThing {
			body, thing = cmd.Value.(map[string]any), c.(map[string]any)
		}
	case ditto.ActionMerge:
		if n := len(ditto.EncodeJSON(cmd.Value)); n > s.cfg.MaxThingBytes {
			return ditto.Result{}, tooLarge(tid, n, s.cfg.MaxThingBytes)
		}
		if err := checkPatch(tid, r, cmd.Value); err != nil {
			return ditto.Result{}, err
		}
		value = cmd.Value
		if r.kind == kindThing {
			body, _ = cmd.Value.(map[string]any)
		}
	}

	rec, exists := s.lookup(tid)
	fenced := !exists // passed the read barrier
	if !exists {
		// A follower may lag: make sure the thing is really missing before
		// creating a policy for it or answering 404.
		if err := s.log.ReadBarrier(ctx); err != nil {
			return ditto.Result{}, err
		}
		rec, exists = s.lookup(tid)
	}
	if !exists {
		if r.kind != kindThing || cmd.Action == ditto.ActionDelete {
			return ditto.Result{}, thingNotFound(tid)
		}
		if cmd.Action == ditto.ActionMerge {
			if len(body) == 0 {
				return ditto.Result{}, ditto.ErrThingMergeInvalid.New("The Thing with ID '%s' must be created with a non-empty JSON object.", tid)
			}
			t, err := validator{id: tid, merge: true}.thing(ditto.MergePatch(map[string]any{}, body))
			if err != nil {
				return ditto.Result{}, err
			}
			thing = t
		}
		res, err := s.create(ctx, cmd, id, body, thing)
		if !errors.Is(err, errThingAppeared) {
			return res, err
		}
		// A concurrent create won the race for the default policy: this
		// command now addresses an existing thing.
		if rec, exists = s.lookup(tid); !exists {
			return ditto.Result{}, ditto.ErrThingNotCreatable.New("The Thing with ID '%s' could not be created because the Policy with ID '%s' already exists.", tid, tid)
		}
		if cmd.Action != ditto.ActionMerge {
			if _, given := body[keyPolicyID]; !given {
				delete(thing, keyPolicyID) // set by create for the policy it tried
			}
			value = thing
		}
	}

	if cmd.Action == ditto.ActionCreate {
		return ditto.Result{}, ditto.ErrThingConflict.New("The Thing with ID '%s' already exists", tid)
	}
	if body != nil && (body[keyInlinePolicy] != nil || body[keyCopyPolicyFrom] != nil) {
		return ditto.Result{}, ditto.ErrThingPolicyNotAllowed.New("The Thing with ID '%s' already exists: a policy can only be given when creating it.", tid)
	}
	subjects := cmd.Auth.Subjects
	permitted := func(enf ditto.Enforcer, ok bool) bool {
		allowed := ok && enf.Unrestricted(ditto.ResourceThing, r.path, subjects, ditto.PermWrite)
		if ok && !allowed && cmd.Action == ditto.ActionMerge {
			allowed = enf.Partial(ditto.ResourceThing, r.path, subjects, ditto.PermWrite) &&
				patchLeavesAllowed(enf, r.path, value, subjects)
		}
		return allowed
	}
	enf, ok := s.enforcer(rec, id.Namespace)
	allowed := permitted(enf, ok)
	if !allowed && !fenced {
		// The policy lives in another Raft group, which this node may have
		// applied less far than the thing (a policy created or changed
		// through another node just now): pass the read barrier, which
		// covers the policies group, and decide again.
		if err := s.log.ReadBarrier(ctx); err != nil {
			return ditto.Result{}, err
		}
		if rec, exists = s.lookup(tid); !exists {
			return ditto.Result{}, thingNotFound(tid)
		}
		enf, ok = s.enforcer(rec, id.Namespace)
		allowed = permitted(enf, ok)
	}
	if allowed && cmd.Action != ditto.ActionDelete && writesMetadata(cmd.Headers) {
		// put-metadata and delete-metadata reach anywhere below the
		// resource, whatever the value touches: they need WRITE on all of it.
		allowed = enf.Unrestricted(ditto.ResourceThing, r.path, subjects, ditto.PermWrite)
	}
	if !allowed {
		if cmd.Action == ditto.ActionMerge {
			// Ditto reports every denied merge, at any path, as the thing's.
			return ditto.Result{}, resource{}.notModifiable(tid, cmd.Action)
		}
		return ditto.Result{}, r.notModifiable(tid, cmd.Action)
	}
	if newPID, ok := newPolicyID(r, cmd.Action, value); ok && newPID != rec.PolicyID {
		if err := s.checkNewPolicy(tid, newPID, id.Namespace, subjects); err != nil {
			return ditto.Result{}, err
		}
	}
	if cond := cmd.Headers.Get(ditto.HeaderCondition); cond != "" {
		if err := checkCondition(cond, tid, enf, subjects); err != nil {
			return ditto.Result{}, err
		}
	}
	e := s.newEntry(cmd, opOf(cmd.Action), value, cmd.Action != ditto.ActionDelete)
	return s.propose(ctx, e)
}

// checkPatch validates a merge patch before it is proposed: keys, a thingId
// that must equal the entity, a valid policyId, and that the thing root is
// patched with an object. The merged result is validated again in Apply.
func checkPatch(tid string, r resource, patch any) error {
	if pid, ok := newPolicyID(r, ditto.ActionMerge, patch); ok {
		if _, err := ditto.ParsePolicyID(pid); err != nil {
			return err
		}
	}
	if r.kind == kindThing {
		m, ok := patch.(map[string]any)
		if !ok {
			return ditto.ErrThingMergeInvalid.New("The Thing with ID '%s' must be merged with a JSON object.", tid)
		}
		if t, ok := m[keyThingID]; ok && t == nil {
			return ditto.ErrThingIDNotDeletable.New("The thingId of the Thing with ID '%s' cannot be deleted.", tid)
		}
		if t, ok := m[keyThingID]; ok && t != tid {
			return ditto.ErrThingIDNotSettable.New("The Thing ID in the request body is not equal to the Thing ID '%s' in the request URL.", tid)
		}
		// An inline policy is no part of the thing: its resource keys
		// ("thing:/") are checked as a policy's when it is created.
		if m[keyInlinePolicy] != nil || m[keyCopyPolicyFrom] != nil {
			rest := make(map[string]any, len(m))
			for k, v := range m {
				if k != keyInlinePolicy && k != keyCopyPolicyFrom {
					rest[k] = v
				}
			}
			patch = rest
		}
	}
	return checkPatchKeys(patch)
}

// checkPatchKeys is ditto.CheckKeys that lets regex-delete keys pass.
func checkPatchKeys(v any) error {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if e == nil && ditto.IsMergeRegexKey(k) {
				continue
			}
			if err := ditto.CheckKey(k); err != nil {
				return err
			}
			if err := checkPatchKeys(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// patchLeavesAllowed reports whether the requester has unrestricted WRITE on
// every leaf the patch touches; a regex-delete key needs its object.
func patchLeavesAllowed(enf ditto.Enforcer, p ditto.Pointer, patch any, subjects []string) bool {
	m, ok := patch.(map[string]any)
	if !ok {
		return enf.Unrestricted(ditto.ResourceThing, p, subjects, ditto.PermWrite)
	}
	// An empty object has no leaves: nothing to check (Ditto's
	// calculateLeaves gives none, and all of none are allowed).
	for k, c := range m {
		if c == nil && ditto.IsMergeRegexKey(k) {
			if !enf.Unrestricted(ditto.ResourceThing, p, subjects, ditto.PermWrite) {
				return false
			}
			continue
		}
		if !patchLeavesAllowed(enf, p.Append(k), c, subjects) {
			return false
		}
	}
	return true
}

// newPolicyID returns the policy ID a write sets, if it sets one.
func newPolicyID(r resource, a ditto.Action, value any) (string, bool) {
	switch r.kind {
	case kindPolicyID:
		s, ok := value.(string)
		return s, ok
	case kindThing:
		if m, ok := value.(map[string]any); ok && a != ditto.ActionDelete {
			s, ok := m[keyPolicyID].(string)
			return s, ok
		}
	}
	return "", false
}

// checkNewPolicy checks that a thing may move to policy pid: it must exist
// and grant the requester unrestricted WRITE on thing:/.
func (s *Service) checkNewPolicy(tid, pid, ns string, subjects []string) error {
	enf, ok := s.policies.EnforcerFor(pid, ns)
	if !ok || !enf.Unrestricted(ditto.ResourceThing, rootPointer, subjects, ditto.PermWrite) {
		return ditto.ErrThingPolicyIDNotMod.New("The Policy ID of the Thing with ID '%s' could not be set to '%s': the Policy does not exist or the requester had insufficient permissions on it.", tid, pid)
	}
	return nil
}

var (
	requestSubjectRE = regexp.MustCompile(`\{\{\s*request:subjectId\s*\}\}`)
	refPolicyRE      = regexp.MustCompile(`^\{\{\s*ref:things/([^/\s]+)/policyId\s*\}\}$`)
)

// create creates a missing thing: it prepares its policy (copied, inline,
// referenced or default, ditto-spec §2.3), proposes the thing and deletes
// a policy it created when the thing create fails.
func (s *Service) create(ctx context.Context, cmd ditto.Command, id ditto.EntityID, body, thing map[string]any) (ditto.Result, error) {
	tid := cmd.Entity
	inline, hasInline := body[keyInlinePolicy]
	copyFrom, hasCopy := body[keyCopyPolicyFrom]
	hasInline = hasInline && inline != nil
	hasCopy = hasCopy && copyFrom != nil
	if hasInline && hasCopy {
		return ditto.Result{}, ditto.ErrThingPolicyConflicting.New("The Thing with ID '%s' gives both '_policy' and '_copyPolicyFrom'.", tid)
	}
	var inlineMeta string
	if meta, ok := body[keyMetadata]; ok && meta != nil {
		if items, _ := parsePutMetadata(cmd.Headers[ditto.HeaderPutMetadata]); len(items) > 0 {
			return ditto.Result{}, ditto.ErrThingMetadataNotMod.New("Metadata of the Thing could not be modified")
		}
		m, err := inlineMetaPut(tid, meta)
		if err != nil {
			return ditto.Result{}, err
		}
		inlineMeta = m
	}
	if s.policies == nil {
		return ditto.Result{}, ditto.ErrThingNotCreatable.New("The Thing with ID '%s' could not be created: no policy service.", tid)
	}
	// Nothing exists to match: fail before a policy is created for nothing.
	if m := cmd.Headers.Get(ditto.HeaderIfMatch); m != "" {
		return ditto.Result{}, preconditionFailed(ditto.HeaderIfMatch, m, "")
	}
	if cmd.Headers.Get(ditto.HeaderCondition) != "" {
		return ditto.Result{}, conditionFailed(tid)
	}
	subjects := cmd.Auth.Subjects
	pid, _ := thing[keyPolicyID].(string)
	target := pid
	if target == "" {
		target = tid
	}
	var policy map[string]any
	switch {
	case hasCopy:
		p, err := s.copiedPolicy(ctx, cmd, tid, copyFrom)
		if err != nil {
			return ditto.Result{}, err
		}
		policy = p
	case hasInline:
		p, ok := inline.(map[string]any)
		if !ok {
			return ditto.Result{}, ditto.ErrThingPolicyInvalid.New("The inline policy of the Thing with ID '%s' must be a JSON object.", tid)
		}
		policy = substituteSubject(ditto.DeepCopy(p), cmd.Auth.Default()).(map[string]any)
	case pid != "":
		enf, ok := s.policies.EnforcerFor(pid, id.Namespace)
		if !ok {
			return ditto.Result{}, ditto.ErrThingNotCreatable.New("The Thing with ID '%s' could not be created as the Policy with ID '%s' is not existing.", tid, pid)
		}
		if !enf.Unrestricted(ditto.ResourceThing, rootPointer, subjects, ditto.PermWrite) {
			return ditto.Result{}, ditto.ErrThingNotModifiable.New("The Thing with ID '%s' could not be created as the requester had insufficient permissions on the Policy with ID '%s'.", tid, pid)
		}
	default:
		if cmd.Auth.Default() == "" {
			return ditto.Result{}, ditto.ErrThingNotCreatable.New("The Thing with ID '%s' could not be created: a default policy needs an authenticated subject.", tid)
		}
		policy = defaultPolicy(target, cmd.Auth.Default())
	}
	var policyRev int64
	if policy != nil {
		policy[keyPolicyID] = target
		rev, err := s.createPolicy(ctx, cmd, tid, target, policy, hasInline, hasCopy)
		if err != nil {
			var de *ditto.Error
			if !hasInline && !hasCopy && errors.As(err, &de) && de.Code == ditto.ErrThingNotCreatable.Code {
				if berr := s.log.ReadBarrier(ctx); berr == nil {
					if _, ok := s.lookup(tid); ok {
						return ditto.Result{}, errThingAppeared
					}
				}
			}
			return ditto.Result{}, err
		}
		policyRev = rev
		if hasInline || hasCopy {
			enf, ok := s.policies.EnforcerFor(target, id.Namespace)
			if !ok || !enf.Unrestricted(ditto.ResourceThing, rootPointer, subjects, ditto.PermWrite) {
				s.compensate(ctx, tid, target, policyRev)
				return ditto.Result{}, ditto.ErrThingNotModifiable.New("The Thing with ID '%s' could not be created as its policy does not grant the requester WRITE on 'thing:/'.", tid)
			}
		}
	}
	thing[keyPolicyID] = target
	e := s.newEntry(cmd, opOf(cmd.Action), thing, true)
	e.mayCreate = true
	if inlineMeta != "" {
		e.putMeta = inlineMeta
	}
	res, err := s.propose(ctx, e)
	if err != nil && policy != nil {
		var de *ditto.Error
		if errors.As(err, &de) {
			s.compensate(ctx, tid, target, policyRev)
		} else {
			// The outcome is unknown (timeout, lost leadership): the thing
			// may still be created, so its policy must stay.
			s.logger.Warn("thing create outcome unknown; policy kept", logKeyThing, tid, logKeyPolicy, target, logKeyError, err)
		}
	}
	return res, err
}

// createPolicy creates the policy of a new thing through the policies
// service and returns its revision.
func (s *Service) createPolicy(ctx context.Context, cmd ditto.Command, tid, pid string, policy map[string]any, inline, copied bool) (int64, error) {
	h := ditto.Headers{}
	for _, k := range []string{ditto.HeaderCorrelationID, ditto.HeaderAllowPolicyLockout} {
		if v := cmd.Headers.Get(k); v != "" {
			h[k] = v
		}
	}
	res, err := s.policies.Handle(ctx, ditto.Command{Action: ditto.ActionCreate, Entity: pid, Path: ditto.Pointer{}, Value: policy, Headers: h, Auth: cmd.Auth, Timeout: cmd.Timeout})
	if err == nil {
		return res.Revision, nil
	}
	var de *ditto.Error
	if !errors.As(err, &de) {
		return 0, err
	}
	switch {
	case de.Code == ditto.ErrPolicyConflict.Code:
		return 0, ditto.ErrThingNotCreatable.New("The Thing with ID '%s' could not be created because the Policy with ID '%s' already exists.", tid, pid)
	case (inline || copied) && de.Status == 400, inline && de.Status == 403:
		// An inline policy that would lock the requester out is invalid
		// (Ditto: 400), not forbidden.
		return 0, ditto.ErrThingPolicyInvalid.New("The policy of the Thing with ID '%s' is invalid: %s", tid, de.Message)
	case copied && de.Status == 403:
		return 0, ditto.ErrThingNotModifiable.New("The Thing with ID '%s' could not be created as the copied policy does not grant the requester WRITE on it.", tid)
	}
	return 0, err
}

// compensate deletes a policy created for a thing whose create failed.
func (s *Service) compensate(ctx context.Context, tid, pid string, rev int64) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), compensateTimeout)
	defer cancel()
	if err := s.policies.Compensate(cctx, pid, rev); err != nil {
		s.logger.Error("delete policy of failed thing create", logKeyThing, tid, logKeyPolicy, pid, logKeyError, err)
	}
}

// copiedPolicy reads the policy named by _copyPolicyFrom with the
// requester's rights.
func (s *Service) copiedPolicy(ctx context.Context, cmd ditto.Command, tid string, from any) (map[string]any, error) {
	src, ok := from.(string)
	if !ok {
		return nil, ditto.ErrThingPolicyInvalid.New("'_copyPolicyFrom' of the Thing with ID '%s' must be a policy ID or a reference.", tid)
	}
	if m := refPolicyRE.FindStringSubmatch(src); m != nil {
		ref, ok := s.lookup(m[1])
		var enf ditto.Enforcer
		if ok {
			refID, _ := ditto.ParseEntityID(m[1])
			enf, ok = s.enforcer(ref, refID.Namespace)
		}
		if !ok || !enf.Partial(ditto.ResourceThing, ditto.Pointer{keyPolicyID}, cmd.Auth.Subjects, ditto.PermRead) {
			return nil, thingNotFound(m[1])
		}
		src = ref.PolicyID
	} else if strings.HasPrefix(strings.TrimSpace(src), "{{") {
		return nil, ditto.ErrPlaceholderRefUnsup.New("The reference '%s' in '_copyPolicyFrom' is not supported: use '{{ ref:things/<thingId>/policyId }}'.", src)
	}
	if _, err := ditto.ParsePolicyID(src); err != nil {
		return nil, err
	}
	res, err := s.policies.Handle(ctx, ditto.Command{Action: ditto.ActionRetrieve, Entity: src, Path: ditto.Pointer{},
		Headers: ditto.Headers{ditto.HeaderCorrelationID: cmd.Headers.Get(ditto.HeaderCorrelationID)}, Auth: cmd.Auth})
	if err != nil {
		// A missing or unreadable source policy is the policy's 404
		// (policies:policy.notfound), as in Ditto.
		return nil, err
	}
	v, ok := resultValue(res)
	m, isObj := v.(map[string]any)
	if !ok || !isObj {
		return nil, ditto.ErrThingNotCreatable.New("The Thing with ID '%s' could not be created: the Policy with ID '%s' could not be read.", tid, src)
	}
	m = ditto.DeepCopy(m).(map[string]any)
	for k := range m {
		if len(k) > 0 && k[0] == '_' {
			delete(m, k)
		}
	}
	return m, nil
}

// substituteSubject replaces {{ request:subjectId }} in keys and strings.
func substituteSubject(v any, subject string) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[requestSubjectRE.ReplaceAllLiteralString(k, subject)] = substituteSubject(e, subject)
		}
		return out
	case []any:
		for i, e := range t {
			t[i] = substituteSubject(e, subject)
		}
		return t
	case string:
		return requestSubjectRE.ReplaceAllLiteralString(t, subject)
	}
	return v
}

// defaultPolicy is the policy Ditto creates for a thing without one.
func defaultPolicy(pid, subject string) map[string]any {
	rw := func() map[string]any {
		return map[string]any{"grant": []any{ditto.PermRead, ditto.PermWrite}, "revoke": []any{}}
	}
	return map[string]any{
		keyPolicyID: pid,
		"entries": map[string]any{
			"DEFAULT": map[string]any{
				"subjects": map[string]any{subject: map[string]any{"type": "generated"}},
				"resources": map[string]any{
					"thing:/":   rw(),
					"policy:/":  rw(),
					"message:/": rw(),
				},
			},
		},
	}
}

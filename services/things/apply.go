package things

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/ditto/rql"
)

// if-equal header values.
const (
	ifEqualUpdate       = "update"
	ifEqualSkip         = "skip"
	ifEqualSkipMinimize = "skip-minimizing-merge"
)

const contentTypeMergePatch = "application/merge-patch+json"

func jsonInt(n int64) json.Number { return json.Number(strconv.FormatInt(n, 10)) }

// change is the outcome of one applied entry before it is published.
type change struct {
	rec     *Record // the new record (a tombstone after a delete)
	action  string  // event action: created, modified, merged, deleted
	value   any     // event value (none for deleted)
	status  int
	resVal  any // response value (201 only)
	resPath ditto.Pointer
	etag    string
}

// applyLocked applies one entry to the state; s.mu is held. It returns the
// command result (ditto.Result or *ditto.Error) and the event to publish.
// It is deterministic: everything comes from the entry and the state.
func (s *Service) applyLocked(index uint64, e *entry) (any, *ditto.Signal) {
	r, cerr := classify(e.path)
	if cerr != nil {
		return cerr, nil
	}
	var val any
	if e.value != nil {
		v, err := ditto.DecodeJSON(e.value)
		if err != nil {
			panic(fmt.Sprintf("things: entry value at index %d does not decode: %v", index, err))
		}
		val = v
	}
	ts := Millis(e.time)
	rec := s.things[e.id]
	var tomb *Record
	if rec != nil && rec.deleted() {
		rec, tomb = nil, rec
	}
	var c *change
	var err error
	if rec == nil {
		c, err = s.applyCreate(e, r, val, ts, tomb)
	} else {
		c, err = s.applyExisting(e, r, val, ts, rec)
	}
	if err != nil {
		return err, nil
	}
	// Keyed by the record's own ID string: storing to a string key also
	// replaces the key, and the entry's freshly decoded ID would be a
	// second copy of every modified thing's ID.
	s.things[c.rec.ID] = c.rec
	res := ditto.Result{Status: c.status, Value: c.resVal, ETag: c.etag, Revision: c.rec.Revision, Entity: e.id}
	if c.status == 201 && c.resVal == nil {
		// A created JSON null is still the created value: Ditto answers 201
		// with the body null (a nil Value would read as "no body").
		res.Raw = []byte("null")
	}
	return res, s.event(index, e, c)
}

// applyCreate handles an entry for a thing that does not exist.
func (s *Service) applyCreate(e *entry, r resource, val any, ts Millis, tomb *Record) (*change, error) {
	creates := e.op == opCreate || (e.mayCreate && r.kind == kindThing && (e.op == opModify || e.op == opMerge))
	if !creates {
		return nil, thingNotFound(e.id)
	}
	if err := checkETags(e, "", false); err != nil {
		return nil, err
	}
	if e.condition != "" {
		return nil, conditionFailed(e.id)
	}
	v := validator{id: e.id, merge: e.op == opMerge}
	if e.op == opMerge {
		val = ditto.MergePatch(map[string]any{}, val)
	}
	thing, verr := v.thing(val)
	if verr != nil {
		return nil, verr
	}
	pid, _ := thing[keyPolicyID].(string)
	if pid == "" {
		return nil, ditto.ErrThingNotCreatable.New("The Thing with ID '%s' could not be created because it has no policyId.", e.id)
	}
	meta, merr := nextMeta("", nil, e, r, thing, s.cfg.MaxThingBytes)
	if merr != nil {
		return nil, merr
	}
	b := ditto.EncodeJSON(thing)
	if n := len(b) + len(meta); n > s.cfg.MaxThingBytes {
		return nil, tooLarge(e.id, n, s.cfg.MaxThingBytes)
	}
	rev := int64(1)
	if tomb != nil {
		rev = tomb.Revision + 1
	}
	rec := &Record{ID: e.id, PolicyID: sharedPolicyID(e.id, pid), Revision: rev, Created: ts, Modified: ts, JSON: b, Meta: meta}
	return &change{rec: rec, action: "created", value: thing, status: 201, resVal: thing, etag: ditto.RevisionETag(rev)}, nil
}

// applyExisting handles an entry for an existing thing.
func (s *Service) applyExisting(e *entry, r resource, val any, ts Millis, rec *Record) (*change, error) {
	if e.op == opCreate || (e.mayCreate && r.kind == kindThing) {
		if err := checkETags(e, ditto.RevisionETag(rec.Revision), true); err != nil {
			return nil, err
		}
		return nil, ditto.ErrThingConflict.New("The Thing with ID '%s' already exists", e.id)
	}
	if c, ok, err := s.modifyLeaf(e, r, val, ts, rec); ok {
		return c, err
	}
	doc, _ := ditto.DecodeJSON(rec.JSON)
	thing := doc.(map[string]any)
	if r.inFeature() && (e.op != opMerge) {
		if _, ok := ditto.GetAt(thing, r.featurePath()); !ok {
			return nil, featureNotFound(r.feature, e.id)
		}
	}
	cur, exists := ditto.GetAt(thing, r.path)
	if r.kind == kindThing {
		exists = true
	}
	etag := currentETag(r, rec, cur, exists)
	if err := checkETags(e, etag, exists); err != nil {
		return nil, err
	}
	if e.condition != "" {
		if err := evalCondition(e, rec); err != nil {
			return nil, err
		}
	}
	c := &change{status: 204}
	switch e.op {
	case opDelete:
		if r.kind == kindPolicyID {
			return nil, policyIDNotDeletable(e.id)
		}
		if r.kind == kindThing {
			tomb := &Record{ID: rec.ID, PolicyID: rec.PolicyID, Revision: rec.Revision + 1, Created: rec.Created, Modified: ts}
			return &change{rec: tomb, action: "deleted", status: 204}, nil
		}
		if !exists {
			return nil, r.notFound(e.id)
		}
		ditto.DeleteAt(thing, r.path)
		c.action = "deleted"
	case opModify:
		if r.kind == kindThing {
			nt := val.(map[string]any)
			if _, ok := nt[keyPolicyID]; !ok {
				nt[keyPolicyID] = rec.PolicyID
			}
			if e.ifEqual == ifEqualSkip && ditto.JSONEqual(thing, nt) {
				return nil, withETag(skipped(e.id), etag)
			}
			thing = nt
		} else {
			if e.ifEqual == ifEqualSkip && exists && ditto.JSONEqual(cur, val) {
				return nil, withETag(skipped(e.id), etag)
			}
			ditto.SetAt(thing, r.path, val)
		}
		c.value = val
		if r.kind == kindThing {
			c.value = thing
		}
		c.action = "modified"
		if !exists {
			c.action, c.status, c.resVal = "created", 201, val
		}
	case opMerge:
		patch := val
		if e.ifEqual == ifEqualSkip || e.ifEqual == ifEqualSkipMinimize {
			min := ditto.MergeMinimize(cur, patch)
			if min == nil {
				return nil, withETag(skipped(e.id), etag)
			}
			if e.ifEqual == ifEqualSkipMinimize {
				patch = min
			}
		}
		if patch == nil {
			if r.kind == kindThing {
				return nil, ditto.ErrThingMergeInvalid.New("The Thing with ID '%s' cannot be merged with null.", e.id)
			}
			ditto.DeleteAt(thing, r.path)
		} else {
			merged := ditto.MergePatch(cur, patch)
			if r.kind == kindThing {
				m, ok := merged.(map[string]any)
				if !ok {
					return nil, ditto.ErrThingMergeInvalid.New("The Thing with ID '%s' must be merged with a JSON object.", e.id)
				}
				thing = m
			} else {
				ditto.SetAt(thing, r.path, merged)
			}
		}
		canon, verr := validator{id: e.id, merge: true}.thing(thing)
		if verr != nil {
			return nil, verr
		}
		if _, ok := canon[keyPolicyID]; !ok {
			// A merge that would delete the policyId is a bad request (the
			// DELETE method on /policyId is not allowed at all: 405).
			err := policyIDNotDeletable(e.id)
			err.Status = 400
			return nil, err
		}
		thing = canon
		c.action, c.value = "merged", patch
	}
	meta, merr := nextMeta(rec.Meta, rec.JSON, e, r, c.value, s.cfg.MaxThingBytes)
	if merr != nil {
		return nil, merr
	}
	b := ditto.EncodeJSON(thing)
	if n := len(b) + len(meta); n > s.cfg.MaxThingBytes {
		return nil, tooLarge(e.id, n, s.cfg.MaxThingBytes)
	}
	pid, _ := thing[keyPolicyID].(string)
	c.rec = &Record{ID: rec.ID, PolicyID: sharedPolicyID(rec.ID, pid), Revision: rec.Revision + 1, Created: rec.Created, Modified: ts, JSON: b, Meta: meta}
	if r.kind == kindThing {
		c.etag = ditto.RevisionETag(c.rec.Revision)
	} else if after, ok := ditto.GetAt(thing, r.path); ok {
		c.etag = ditto.HashETag(after)
	}
	return c, nil
}

// modifyLeaf is applyExisting for the commonest write: a modify of an
// existing attribute or (desired) property. It replaces the value's bytes
// in the stored JSON instead of decoding and re-encoding the whole thing,
// which gives the same bytes (ditto.RawValueAt). ok is false when the entry
// needs the general path; then nothing was checked yet.
func (s *Service) modifyLeaf(e *entry, r resource, val any, ts Millis, rec *Record) (c *change, ok bool, err error) {
	if e.op != opModify || e.putMeta != "" || e.delMeta != "" || (rec.Meta != "" && isEmptyObject(val)) {
		return nil, false, nil // metadata changes take the general path
	}
	switch r.kind {
	case kindAttribute, kindProperty, kindDesiredProperty:
	default:
		return nil, false, nil
	}
	start, end, found := ditto.RawValueAt(rec.JSON, r.path)
	if !found {
		return nil, false, nil
	}
	cur, derr := ditto.DecodeJSON(rec.JSON[start:end])
	if derr != nil {
		return nil, false, nil
	}
	etag := ditto.HashETag(cur)
	if err := checkETags(e, etag, true); err != nil {
		return nil, true, err
	}
	if e.condition != "" {
		if err := evalCondition(e, rec); err != nil {
			return nil, true, err
		}
	}
	if e.ifEqual == ifEqualSkip && ditto.JSONEqual(cur, val) {
		return nil, true, withETag(skipped(e.id), etag)
	}
	s.scratch = ditto.AppendJSON(s.scratch[:0], val)
	n := len(rec.JSON) - (end - start) + len(s.scratch)
	if n+len(rec.Meta) > s.cfg.MaxThingBytes {
		n += len(rec.Meta)
		return nil, true, tooLarge(e.id, n, s.cfg.MaxThingBytes)
	}
	b := make([]byte, 0, n)
	b = append(append(append(b, rec.JSON[:start]...), s.scratch...), rec.JSON[end:]...)
	if cap(s.scratch) > 64<<10 {
		s.scratch = nil // do not keep a buffer grown by one huge value
	}
	return &change{
		rec:    &Record{ID: rec.ID, PolicyID: rec.PolicyID, Revision: rec.Revision + 1, Created: rec.Created, Modified: ts, JSON: b, Meta: rec.Meta},
		action: "modified",
		value:  val,
		status: 204,
		etag:   ditto.HashETag(val),
	}, true, nil
}

// currentETag is the entity tag of the addressed resource: the revision for
// the thing, a hash of the value for sub-resources.
func currentETag(r resource, rec *Record, cur any, exists bool) string {
	if r.kind == kindThing {
		return ditto.RevisionETag(rec.Revision)
	}
	if !exists {
		return ""
	}
	return ditto.HashETag(cur)
}

// checkETags evaluates If-Match and If-None-Match of a write. A failure
// carries the current entity tag (none if the resource is missing).
func checkETags(e *entry, etag string, exists bool) error {
	if e.ifMatch != "" && !ditto.MatchETag(e.ifMatch, etag, exists) {
		return withETag(preconditionFailed(ditto.HeaderIfMatch, e.ifMatch, etag), etag)
	}
	if e.ifNone != "" && ditto.MatchETag(e.ifNone, etag, exists) {
		return withETag(preconditionFailed(ditto.HeaderIfNoneMatch, e.ifNone, etag), etag)
	}
	return nil
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

func preconditionFailed(header, want, actual string) *ditto.Error {
	return ditto.ErrThingPreconditionFailed.New("The comparison of precondition header '%s' for the requested Thing resource evaluated to false. Header value: '%s', actual ETag: '%s'.", header, want, actual)
}

func skipped(id string) *ditto.Error {
	return ditto.ErrThingPreconditionFailed.New("The previous value was equal to the new value and the 'if-equal' header was set to 'skip' for the Thing with ID '%s'.", id)
}

func conditionFailed(id string) *ditto.Error {
	return ditto.ErrThingConditionFailed.New("The specified condition does not match the state of the requested Thing with ID '%s'.", id)
}

func tooLarge(id string, n, max int) *ditto.Error {
	return ditto.ErrThingTooLarge.New("The size of '%d' bytes of the Thing with ID '%s' exceeds the limit of '%d' bytes.", n, id, max)
}

func policyIDNotDeletable(id string) *ditto.Error {
	return ditto.ErrThingPolicyIDNotDeletable.New("The policyId of the Thing with ID '%s' cannot be deleted.", id)
}

// evalCondition evaluates the RQL condition of e on the current thing.
func evalCondition(e *entry, rec *Record) *ditto.Error {
	n, err := rql.Parse(e.condition)
	if err != nil {
		return asDittoError(err)
	}
	if !rql.Match(n, rec.specialDoc(), rql.Env{Now: time.UnixMilli(e.time).UTC()}) {
		return conditionFailed(e.id)
	}
	return nil
}

// asDittoError returns err as a *ditto.Error (a 400 condition.invalid for
// anything else).
func asDittoError(err error) *ditto.Error {
	if de, ok := err.(*ditto.Error); ok {
		return de
	}
	return ditto.ErrThingConditionInvalid.New("The condition is invalid: %v", err)
}

// event builds the Ditto event of an applied change.
// formatStamp returns the event timestamp of m. Called with mu held.
func (s *Service) formatStamp(m Millis) string {
	if s.stamp.s == "" || s.stamp.at != m {
		s.stamp.at, s.stamp.s = m, ditto.FormatTime(m.Time())
	}
	return s.stamp.s
}

func (s *Service) event(index uint64, e *entry, c *change) *ditto.Signal {
	id, _ := ditto.ParseEntityID(e.id)
	env := ditto.Envelope{
		Topic:     id.Namespace + "/" + id.Name + "/things/twin/events/" + c.action,
		Headers:   ditto.Headers{},
		Path:      e.path.String(),
		Revision:  c.rec.Revision,
		Timestamp: s.formatStamp(c.rec.Modified),
	}
	if e.corrID != "" {
		env.Headers[ditto.HeaderCorrelationID] = e.corrID
	}
	if e.origin != "" {
		env.Headers[ditto.HeaderOriginator] = e.origin
	}
	if e.session != "" {
		// Internal: lets the sending WebSocket session skip its own event;
		// the gateway strips it from everything it sends.
		env.Headers[ditto.HeaderOrigin] = e.session
	}
	env.Headers[ditto.HeaderContentType] = ditto.ContentTypeJSON
	if c.action == "merged" {
		env.Headers[ditto.HeaderContentType] = contentTypeMergePatch
	}
	if c.action != "deleted" {
		env.Value = ditto.EncodeJSON(c.value)
	}
	return &ditto.Signal{
		Envelope: env,
		EntityID: c.rec.ID, // the record's string: subscribers that keep it share it
		PolicyID: c.rec.PolicyID,
		Revision: c.rec.Revision,
		State:    c.rec.FullJSON(),
		Index:    index,
	}
}

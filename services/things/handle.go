package things

import (
	"context"
	"slices"
	"strings"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/ditto/rql"
)

const consistencyLocal = "local"

var rootPointer = ditto.Pointer{}

// Handle executes one thing command: cmd.Entity is the thing ID, cmd.Path
// the resource inside it. Failures are *ditto.Error values (or a wrapped
// consensus/context error for infrastructure failures).
func (s *Service) Handle(ctx context.Context, cmd ditto.Command) (ditto.Result, error) {
	id, err := ditto.ParseThingID(cmd.Entity)
	if err != nil {
		return ditto.Result{}, err
	}
	r, err := classify(cmd.Path)
	if err != nil {
		return ditto.Result{}, err
	}
	switch cmd.Action {
	case ditto.ActionRetrieve, ditto.ActionCreate, ditto.ActionModify, ditto.ActionMerge, ditto.ActionDelete:
	default:
		return ditto.Result{}, ditto.ErrMethodNotAllowed.New("The action '%s' is not supported on things.", cmd.Action)
	}
	mq, err := parseMetaHeaders(cmd.Headers, r, cmd.Action == ditto.ActionRetrieve)
	if err != nil {
		return ditto.Result{}, err
	}
	if cmd.Action == ditto.ActionRetrieve {
		return s.retrieve(ctx, cmd, id, r, mq)
	}
	return s.write(ctx, cmd, id, r)
}

// barrier waits for a linearizable read unless the command asks for a
// local one.
func (s *Service) barrier(ctx context.Context, h ditto.Headers) error {
	if h.Get(ditto.HeaderConsistency) == consistencyLocal {
		return nil
	}
	return s.log.ReadBarrier(ctx)
}

// fieldSelector parses cmd.Fields relative to the addressed resource.
// Ditto's routes take fields on the thing, attributes, features, a
// feature and its (desired) properties only; elsewhere (a single value,
// a definition, the policyId) it is ignored.
func fieldSelector(fields string, r resource) (ditto.FieldSelector, error) {
	switch r.kind {
	case kindThing, kindAttributes, kindFeatures, kindFeature, kindProperties, kindDesiredProperties:
	default:
		return ditto.FieldSelector{}, nil
	}
	if len(r.path) == 0 || strings.TrimSpace(fields) == "" {
		return ditto.ParseFieldSelector(fields)
	}
	// A sub-resource selector is relative to the resource: nest it below
	// the resource's path so one parser validates both.
	p := r.path.String()[1:]
	fs, err := ditto.ParseFieldSelector(p + "(" + fields + ")")
	if err != nil {
		return fs, ditto.ErrFieldSelectionInvalid.New("The field selector <%s> is invalid.", fields)
	}
	return fs, nil
}

func (s *Service) enforcer(rec *Record, ns string) (ditto.Enforcer, bool) {
	if s.policies == nil {
		return nil, false
	}
	return s.policies.EnforcerFor(rec.PolicyID, ns)
}

// retrieve answers a retrieve of any thing resource.
func (s *Service) retrieve(ctx context.Context, cmd ditto.Command, id ditto.EntityID, r resource, mq metaReq) (ditto.Result, error) {
	fs, err := fieldSelector(cmd.Fields, r)
	if err != nil {
		return ditto.Result{}, err
	}
	if err := s.barrier(ctx, cmd.Headers); err != nil {
		return ditto.Result{}, err
	}
	tid := cmd.Entity
	rec, ok := s.lookup(tid)
	if !ok {
		return ditto.Result{}, thingNotFound(tid)
	}
	enf, ok := s.enforcer(rec, id.Namespace)
	subjects := cmd.Auth.Subjects
	if !ok || !enf.Partial(ditto.ResourceThing, r.path, subjects, ditto.PermRead) {
		if r.kind == kindThing {
			return ditto.Result{}, thingNotFound(tid)
		}
		return ditto.Result{}, r.notFound(tid)
	}
	// A node keeps the current revision only (ditto.AtCurrentRevision).
	if what, v, ok := ditto.AtCurrentRevision(cmd.Headers, rec.Revision, rec.Modified); !ok {
		return ditto.Result{}, ditto.ErrThingHistoryNotFound.New("The Thing with ID '%s' at %s '%s' could not be found or requester had insufficient permissions to access it.", tid, what, v)
	}
	if cond := cmd.Headers.Get(ditto.HeaderCondition); cond != "" {
		if err := checkCondition(cond, tid, enf, subjects); err != nil {
			return ditto.Result{}, err
		}
		if err := evalCondition(&entry{id: tid, condition: cond, time: s.clock().UnixMilli()}, rec); err != nil {
			return ditto.Result{}, err
		}
	}
	unrestricted := enf.Unrestricted(ditto.ResourceThing, r.path, subjects, ditto.PermRead)
	if r.kind == kindThing && fs.IsEmpty() && unrestricted {
		// Fast path: the stored bytes are the answer.
		etag := ditto.RevisionETag(rec.Revision)
		if err := checkRetrieveETags(cmd.Headers, etag, true); err != nil {
			return ditto.Result{}, err
		}
		res := ditto.Result{Status: 200, Raw: rec.JSON, ETag: etag, Revision: rec.Revision, Entity: tid}
		if mq.wantGet() {
			if res.Metadata, err = s.metaHeader(mq, rec, r, nil, enf, subjects); err != nil {
				return ditto.Result{}, err
			}
		}
		return res, nil
	}
	doc, _ := ditto.DecodeJSON(rec.JSON)
	if r.inFeature() {
		if _, ok := ditto.GetAt(doc, r.featurePath()); !ok {
			return ditto.Result{}, featureNotFound(r.feature, tid)
		}
	}
	val, ok := ditto.GetAt(doc, r.path)
	if !ok {
		return ditto.Result{}, r.notFound(tid)
	}
	etag := ditto.RevisionETag(rec.Revision)
	if r.kind != kindThing {
		etag = ditto.HashETag(val)
	}
	// Conditional headers do not apply to a selection of the inlined
	// policy (ditto-spec section 9): the thing's tag says nothing of it.
	if r.kind != kindThing || !fs.Has(keyInlinePolicy) {
		if err := checkRetrieveETags(cmd.Headers, etag, true); err != nil {
			return ditto.Result{}, err
		}
	}
	var metaHdr []byte
	if mq.wantGet() {
		// Before the views below: they may share values with doc.
		if metaHdr, err = s.metaHeader(mq, rec, r, doc, enf, subjects); err != nil {
			return ditto.Result{}, err
		}
	}
	if r.kind == kindThing {
		v, _ := s.thingView(ctx, cmd, rec, val.(map[string]any), enf, unrestricted, fs)
		return ditto.Result{Status: 200, Value: v, ETag: etag, Revision: rec.Revision, Entity: tid, Metadata: metaHdr}, nil
	}
	if !unrestricted {
		v, ok := enf.View(ditto.ResourceThing, r.path, val, subjects)
		if !ok {
			return ditto.Result{}, r.notFound(tid)
		}
		val = v
	}
	if !fs.IsEmpty() {
		sel, ok := ditto.GetAt(fs.Apply(ditto.SetAt(map[string]any{}, r.path, val)), r.path)
		if !ok {
			sel = map[string]any{}
		}
		val = sel
	}
	return ditto.Result{Status: 200, Value: val, ETag: etag, Revision: rec.Revision, Entity: tid, Metadata: metaHdr}, nil
}

// wantGet reports a get-metadata header to answer.
func (q metaReq) wantGet() bool { return q.getAll || len(q.get) > 0 }

// metaHeader is the ditto-metadata answer to get-metadata on resource r:
// the selected metadata relative to the resource, as JSON, as much of it
// as the requester may read (metaView).
func (s *Service) metaHeader(q metaReq, rec *Record, r resource, thing any, enf ditto.Enforcer, subjects []string) ([]byte, error) {
	out, err := getMeta(q, rec, r, thing)
	if err != nil {
		return nil, err
	}
	v, ok := metaView(enf, r.path, out, subjects)
	if !ok {
		v = map[string]any{}
	}
	return ditto.EncodeJSON(v), nil
}

// metaView is the part of metadata m (at resource path p) that subjects
// may read: metadata about a value needs READ on the value (metadata at
// p/x/k describes the data at p/x) and READ on _metadata/p/x/k, since
// Ditto treats _metadata as a field of the thing. It reports false when
// nothing is left.
func metaView(enf ditto.Enforcer, p ditto.Pointer, m any, subjects []string) (any, bool) {
	if !enf.Unrestricted(ditto.ResourceThing, p, subjects, ditto.PermRead) {
		v, ok := enf.View(ditto.ResourceThing, p, m, subjects)
		if !ok {
			return nil, false
		}
		m = v
	}
	at := append(ditto.Pointer{keyMetadata}, p...)
	if !enf.Unrestricted(ditto.ResourceThing, at, subjects, ditto.PermRead) {
		return enf.View(ditto.ResourceThing, at, m, subjects)
	}
	return m, true
}

// thingView is the requester's view of a whole thing: the JSON view for
// partial readers (thingId kept), the selected special fields and the field
// selection. It reports false when nothing of the thing is readable.
func (s *Service) thingView(ctx context.Context, cmd ditto.Command, rec *Record, thing map[string]any, enf ditto.Enforcer, unrestricted bool, fs ditto.FieldSelector) (map[string]any, bool) {
	if !unrestricted {
		v, ok := enf.View(ditto.ResourceThing, rootPointer, thing, cmd.Auth.Subjects)
		m, _ := v.(map[string]any)
		if !ok || m == nil {
			m = map[string]any{}
		}
		m[keyThingID] = rec.ID
		thing = m
	}
	if fs.IsEmpty() {
		return thing, true
	}
	addSpecial(thing, rec)
	if meta, ok := thing[keyMetadata]; ok && !unrestricted {
		// A partial reader sees the metadata its policy lets it read.
		if v, ok := metaView(enf, rootPointer, meta, cmd.Auth.Subjects); ok {
			thing[keyMetadata] = v
		} else {
			delete(thing, keyMetadata)
		}
	}
	if fs.Has(keyInlinePolicy) && s.policies != nil {
		pc := ditto.Command{Action: ditto.ActionRetrieve, Entity: rec.PolicyID, Auth: cmd.Auth,
			Headers: ditto.Headers{ditto.HeaderConsistency: consistencyLocal}}
		if cid := cmd.Headers.Get(ditto.HeaderCorrelationID); cid != "" {
			pc.Headers[ditto.HeaderCorrelationID] = cid
		}
		if res, err := s.policies.Handle(ctx, pc); err == nil {
			if p, ok := resultValue(res); ok {
				thing[keyInlinePolicy] = p
			}
		}
	}
	return fs.Apply(thing).(map[string]any), true
}

// resultValue returns the value of a result, decoding Raw if needed.
func resultValue(res ditto.Result) (any, bool) {
	if res.Raw != nil {
		v, err := ditto.DecodeJSON(res.Raw)
		return v, err == nil
	}
	return res.Value, res.Value != nil
}

// checkRetrieveETags evaluates If-Match (412) and If-None-Match (304) of a
// retrieve.
func checkRetrieveETags(h ditto.Headers, etag string, exists bool) error {
	if m := h.Get(ditto.HeaderIfMatch); m != "" && !ditto.MatchETag(ditto.StrongIfMatch(m), etag, exists) {
		return withETag(preconditionFailed(ditto.HeaderIfMatch, m, etag), etag)
	}
	if m := h.Get(ditto.HeaderIfNoneMatch); m != "" && ditto.MatchETag(m, etag, exists) {
		return withETag(ditto.ErrThingPreconditionNotMod.New("The comparison of precondition header '%s' for the requested Thing resource evaluated to false. Header value: '%s', actual ETag: '%s'.", ditto.HeaderIfNoneMatch, m, etag), etag)
	}
	return nil
}

// maxListed is the most things a GET /things without ids returns (Ditto:
// "the first 200 for the user available Things").
const maxListed = 200

// RetrieveMany returns the things of ids the requester may read, in the
// order given; missing, unreadable and invalid IDs are omitted. A nil ids
// lists the first maxListed readable things in thingId order. cmd carries
// Fields, Auth and Headers.
func (s *Service) RetrieveMany(ctx context.Context, ids []string, cmd ditto.Command) ([]any, error) {
	fs, err := ditto.ParseFieldSelector(cmd.Fields)
	if err != nil {
		return nil, err
	}
	if err := s.barrier(ctx, cmd.Headers); err != nil {
		return nil, err
	}
	limit := len(ids)
	if ids == nil {
		ids, limit = s.sortedIDs(), maxListed
	}
	out := make([]any, 0, min(limit, len(ids)))
	for _, tid := range ids {
		if len(out) == limit {
			break
		}
		id, ok := ditto.ParseEntityID(tid)
		if !ok {
			continue
		}
		rec, ok := s.lookup(tid)
		if !ok {
			continue
		}
		enf, ok := s.enforcer(rec, id.Namespace)
		if !ok || !enf.Partial(ditto.ResourceThing, rootPointer, cmd.Auth.Subjects, ditto.PermRead) {
			continue
		}
		doc, _ := ditto.DecodeJSON(rec.JSON)
		unrestricted := enf.Unrestricted(ditto.ResourceThing, rootPointer, cmd.Auth.Subjects, ditto.PermRead)
		if v, ok := s.thingView(ctx, cmd, rec, doc.(map[string]any), enf, unrestricted, fs); ok {
			out = append(out, v)
		}
	}
	return out, nil
}

// sortedIDs returns the IDs of all applied things in ascending order.
func (s *Service) sortedIDs() []string {
	s.mu.RLock()
	ids := make([]string, 0, len(s.things))
	for id, r := range s.things {
		if !r.deleted() {
			ids = append(ids, id)
		}
	}
	s.mu.RUnlock()
	slices.Sort(ids)
	return ids
}

// checkCondition parses the condition header and checks that the requester
// may read every field it references.
func checkCondition(cond, tid string, enf ditto.Enforcer, subjects []string) error {
	n, err := rql.Parse(cond)
	if err != nil {
		msg := err.Error()
		if de, ok := err.(*ditto.Error); ok {
			msg = de.Message
		}
		return ditto.ErrThingConditionInvalid.New("The condition <%s> is invalid: %s", cond, msg)
	}
	for _, f := range rql.Fields(n) {
		if f.Placeholder != "" || len(f.Path) == 0 {
			continue
		}
		switch f.Path[0] {
		case keyThingID, "_namespace", "_revision", "_created", "_modified", "namespace":
			continue
		}
		p := f.Path
		for i, seg := range p {
			if seg == ditto.Wildcard && i == 1 && p[0] == keyFeatures {
				p = p[:i]
				break
			}
		}
		if !enf.Unrestricted(ditto.ResourceThing, p, subjects, ditto.PermRead) {
			return ditto.ErrThingConditionFailed.New("The condition <%s> references the field '%s' that the requester may not read on the Thing with ID '%s'.", cond, f.Path.String(), tid)
		}
	}
	return nil
}

package gateway

import (
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/ditto/rql"
)

// Enforcers gives the enforcer of a policy for an entity namespace
// (services/policies.Service implements it).
type Enforcers interface {
	EnforcerFor(policyID, ns string) (ditto.Enforcer, bool)
}

// HeaderOrigin carries the ID of the WebSocket session that sent a command
// or live signal; a session never receives signals carrying its own ID.
// The things service copies it from a command into its event.
const HeaderOrigin = ditto.HeaderOrigin

// headerWeakAck marks an acknowledgement a subscriber issued for a signal
// it filtered out.
const headerWeakAck = "ditto-weak-ack"

// streamSpec is the subscription of one stream (a WS START-SEND-* or an SSE
// request): namespaces, RQL filter and extra fields. A nil *streamSpec
// means "not subscribed".
type streamSpec struct {
	namespaces []string // empty: all
	filter     rql.Node // nil: everything
	extra      ditto.FieldSelector
}

// parseStreamSpec reads namespaces, filter and extraFields.
func parseStreamSpec(q url.Values) (*streamSpec, *ditto.Error) {
	spec := &streamSpec{}
	if ns := q.Get("namespaces"); ns != "" {
		for part := range strings.SplitSeq(ns, ",") {
			if part = strings.TrimSpace(part); part != "" {
				spec.namespaces = append(spec.namespaces, part)
			}
		}
	}
	if f := q.Get("filter"); f != "" {
		n, err := rql.Parse(f)
		if err != nil {
			return nil, asDittoError(err, ditto.ErrRQLInvalid)
		}
		spec.filter = n
	}
	if x := q.Get("extraFields"); x != "" {
		sel, err := ditto.ParseFieldSelector(x)
		if err != nil {
			return nil, asDittoError(err, ditto.ErrFieldSelectionInvalid)
		}
		spec.extra = sel
	}
	return spec, nil
}

func asDittoError(err error, def ditto.ErrorDef) *ditto.Error {
	if de, ok := err.(*ditto.Error); ok {
		return de
	}
	return def.New("%v", err)
}

// inNamespaces reports whether ns passes the namespaces filter.
func (spec *streamSpec) inNamespaces(ns string) bool {
	return len(spec.namespaces) == 0 || slices.Contains(spec.namespaces, ns)
}

// twinEvent is a twin event as one subscriber may see it.
type twinEvent struct {
	topic ditto.Topic
	path  ditto.Pointer
	// value is the event value the subscriber may read (the policy's JSON
	// view for partial readers); hasValue is false for deleted events.
	value    any
	hasValue bool
	filtered bool // value is a view, not the stored event value
	// extra is the READ-filtered enrichment; nil when none was selected.
	extra map[string]any
	// changed is the change as a partial thing: thingId plus value at path.
	changed map[string]any
}

// viewTwinEvent authorizes a twin event for auth and applies spec:
// unrestricted readers of the changed path get the full event, partial
// readers the JSON view of it (partial-access-events), others nothing. The
// namespaces, the RQL filter (on the changed data, the special fields and
// the extra fields) and the enrichment come from spec. ok is false when the
// subscriber must not get the event.
//
// needDoc asks for ev.changed (SSE); without it and without a filter, an
// unrestricted reader's event is not decoded at all.
func (s *Server) viewTwinEvent(sig ditto.Signal, t ditto.Topic, auth ditto.Auth, spec *streamSpec, needDoc bool) (ev twinEvent, ok bool) {
	if !spec.inNamespaces(t.Namespace) || s.deps.Enforcers == nil {
		return ev, false
	}
	enf, found := s.deps.Enforcers.EnforcerFor(sig.PolicyID, t.Namespace)
	if !found {
		return ev, false
	}
	path, err := ditto.ParsePointer(sig.Envelope.Path)
	if err != nil {
		return ev, false
	}
	ev.topic, ev.path = t, path
	subjects := auth.Subjects
	unrestricted := enf.Unrestricted(ditto.ResourceThing, path, subjects, ditto.PermRead)
	if !unrestricted && !enf.Partial(ditto.ResourceThing, path, subjects, ditto.PermRead) {
		return ev, false
	}
	if unrestricted && !needDoc && spec.filter == nil {
		if !spec.extra.IsEmpty() && t.Action != "deleted" && sig.State != nil {
			ev.extra = s.extraOf(sig.State, sig, enf, subjects, spec.extra)
		}
		return ev, true
	}
	if len(sig.Envelope.Value) > 0 && t.Action != "deleted" {
		v, err := ditto.DecodeJSON(sig.Envelope.Value)
		if err != nil {
			return ev, false
		}
		if !unrestricted {
			if v, ok = enf.View(ditto.ResourceThing, path, v, subjects); !ok {
				return ev, false
			}
			ev.filtered = true
		}
		ev.value, ev.hasValue = v, true
	}
	ev.changed = changedThing(sig.EntityID, path, ev.value, ev.hasValue)
	if !spec.extra.IsEmpty() && t.Action != "deleted" && sig.State != nil {
		ev.extra = s.extraOf(sig.State, sig, enf, subjects, spec.extra)
	}
	if spec.filter != nil {
		doc := filterDoc(ev.changed, ev.extra, t.Namespace, sig)
		if !rql.Match(spec.filter, doc, rql.Env{Now: time.Now(), Placeholder: placeholders(t, ditto.ResourceThing, sig.Envelope.Path)}) {
			return ev, false
		}
	}
	return ev, true
}

// changedThing places the changed value into a thing: {"thingId":…} plus
// value at path (a whole thing's keys at the root).
func changedThing(id string, path ditto.Pointer, v any, has bool) map[string]any {
	m := map[string]any{"thingId": id}
	if !has {
		return m
	}
	if len(path) == 0 {
		if vm, ok := v.(map[string]any); ok {
			for k, e := range vm {
				m[k] = e
			}
		}
		m["thingId"] = id
		return m
	}
	return ditto.SetAt(m, path, v).(map[string]any)
}

// extraOf returns the selected fields of the thing state, as the
// subscriber may read them.
func (s *Server) extraOf(state []byte, sig ditto.Signal, enf ditto.Enforcer, subjects []string, sel ditto.FieldSelector) map[string]any {
	v, err := ditto.DecodeJSON(state)
	if err != nil {
		return nil
	}
	if !enf.Unrestricted(ditto.ResourceThing, nil, subjects, ditto.PermRead) {
		if v, _ = enf.View(ditto.ResourceThing, nil, v, subjects); v == nil {
			v = map[string]any{}
		}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	m["thingId"] = sig.EntityID
	ns, _, _ := strings.Cut(sig.EntityID, ":")
	m["_namespace"] = ns
	if sig.Revision > 0 {
		m["_revision"] = json.Number(strconv.FormatInt(sig.Revision, 10))
	}
	if ts := sig.Envelope.Timestamp; ts != "" {
		m["_modified"] = ts
	}
	out, _ := sel.Apply(m).(map[string]any)
	return out
}

// filterDoc is what an event filter sees: the changed data, the special
// fields and the extra fields.
func filterDoc(changed, extra map[string]any, ns string, sig ditto.Signal) map[string]any {
	doc := ditto.DeepCopy(changed).(map[string]any)
	doc["_namespace"] = ns
	if sig.Revision > 0 {
		doc["_revision"] = json.Number(strconv.FormatInt(sig.Revision, 10))
	}
	if sig.Envelope.Timestamp != "" {
		doc["_modified"] = sig.Envelope.Timestamp
	}
	mergeMissing(doc, extra)
	return doc
}

// mergeMissing copies src into dst recursively where dst has no value; dst
// must not share nested maps with anything else.
func mergeMissing(dst, src map[string]any) {
	for k, v := range src {
		cur, ok := dst[k]
		if !ok {
			dst[k] = ditto.DeepCopy(v)
			continue
		}
		cm, ok1 := cur.(map[string]any)
		vm, ok2 := v.(map[string]any)
		if ok1 && ok2 {
			mergeMissing(cm, vm)
		}
	}
}

// placeholders resolves the topic: and resource: placeholders of RQL event
// filters for a signal with topic t.
func placeholders(t ditto.Topic, resType, path string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		switch name {
		case "topic:full":
			return t.String(), true
		case "topic:namespace":
			return t.Namespace, true
		case "topic:entityName":
			return t.Name, true
		case "topic:group":
			return t.Group, true
		case "topic:channel":
			return t.Channel, t.Channel != ""
		case "topic:criterion":
			return t.Criterion, true
		case "topic:action":
			if t.Criterion == ditto.CriterionMessages {
				return "", false
			}
			return t.Action, t.Action != ""
		case "topic:subject":
			if t.Criterion != ditto.CriterionMessages {
				return "", false
			}
			return t.Action, true
		case "topic:action-subject":
			return t.Action, t.Action != ""
		case "resource:type":
			return resType, true
		case "resource:path":
			return path, true
		}
		return "", false
	}
}

// eventEnvelope renders ev as the Ditto Protocol event the subscriber
// gets: the stored value unless it was filtered, the extra fields, and the
// headers without the internal origin header.
func eventEnvelope(sig ditto.Signal, ev twinEvent) ditto.Envelope {
	env := sig.Envelope
	env.Headers = outboundHeaders(env.Headers)
	if ev.filtered {
		env.Value = ditto.EncodeJSON(ev.value)
	}
	if ev.extra != nil {
		env.Extra = ditto.EncodeJSON(ev.extra)
	}
	return env
}

// outboundHeaders copies h without the headers that never leave the node.
func outboundHeaders(h ditto.Headers) ditto.Headers {
	out := make(ditto.Headers, len(h))
	for k, v := range h {
		if k != HeaderOrigin {
			out[k] = v
		}
	}
	return out
}

// viewLiveSignal applies spec to a live signal the router already
// authorized: namespaces, enrichment with the subscriber's view of the
// current thing, and the RQL filter on the signal's data plus extra. It
// returns the envelope to send.
func (s *Server) viewLiveSignal(env ditto.Envelope, t ditto.Topic, auth ditto.Auth, spec *streamSpec) (ditto.Envelope, bool) {
	if !spec.inNamespaces(t.Namespace) {
		return env, false
	}
	id := t.Entity()
	var extra map[string]any
	if !spec.extra.IsEmpty() && s.deps.ThingState != nil && s.deps.Enforcers != nil {
		if state, policyID, ok := s.deps.ThingState(id); ok {
			if enf, ok := s.deps.Enforcers.EnforcerFor(policyID, t.Namespace); ok {
				extra = s.extraOf(state, ditto.Signal{EntityID: id, PolicyID: policyID}, enf, auth.Subjects, spec.extra)
			}
		}
	}
	resType := ditto.ResourceThing
	if t.Criterion == ditto.CriterionMessages {
		resType = ditto.ResourceMessage
	}
	if spec.filter != nil {
		var changed map[string]any
		path, err := ditto.ParsePointer(env.Path)
		if resType == ditto.ResourceThing && err == nil && len(env.Value) > 0 {
			v, derr := ditto.DecodeJSON(env.Value)
			changed = changedThing(id, path, v, derr == nil)
		} else {
			changed = map[string]any{"thingId": id}
		}
		doc := filterDoc(changed, extra, t.Namespace, ditto.Signal{EntityID: id})
		if !rql.Match(spec.filter, doc, rql.Env{Now: time.Now(), Placeholder: placeholders(t, resType, env.Path)}) {
			return env, false
		}
	}
	env.Headers = outboundHeaders(env.Headers)
	if extra != nil {
		env.Extra = ditto.EncodeJSON(extra)
	}
	return env, true
}

// announcementFor reports whether a policy announcement concerns auth: a
// subjectDeletion goes to the subscribers among its subjectIds.
func announcementFor(env ditto.Envelope, auth ditto.Auth) bool {
	var v struct {
		SubjectIDs []string `json:"subjectIds"`
	}
	if err := json.Unmarshal(env.Value, &v); err != nil {
		return false
	}
	for _, sub := range v.SubjectIDs {
		if slices.Contains(auth.Subjects, sub) {
			return true
		}
	}
	return false
}

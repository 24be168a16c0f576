package ditto

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// ActionMigrate is the migrateDefinition command of things.
const ActionMigrate Action = "migrate"

// MaxTimeout is the longest command timeout a client may ask for.
const MaxTimeout = 60 * time.Second

// ContentTypeMergePatch is the content type of merge commands and events.
const ContentTypeMergePatch = "application/merge-patch+json"

// ContentTypeJSON is the content-type of the other protocol messages Ditto
// sends: responses, errors and events carry it as a header.
const ContentTypeJSON = "application/json"

// Header names the protocol adapter reads or writes besides those of
// command.go.
const (
	HeaderETag         = "etag"
	HeaderDeclaredAcks = "declared-acks"
)

// wireEnvelope is the decoding shape of an Envelope: pointers and raw
// headers tell absent fields from empty ones.
type wireEnvelope struct {
	Topic     *string                    `json:"topic"`
	Headers   map[string]json.RawMessage `json:"headers"`
	Path      *string                    `json:"path"`
	Value     json.RawMessage            `json:"value"`
	Fields    string                     `json:"fields"`
	Extra     json.RawMessage            `json:"extra"`
	Status    int                        `json:"status"`
	Revision  int64                      `json:"revision"`
	Timestamp string                     `json:"timestamp"`
	Metadata  json.RawMessage            `json:"metadata"`
}

// DecodeEnvelope decodes one Ditto Protocol message. topic, headers (an
// object) and path are required; unknown fields are ignored. value, extra
// and metadata stay raw, so an explicit null survives. Header names are
// lower-cased; header values that are not strings are converted: a JSON
// array of strings (requested-acks, declared-acks) becomes a comma list,
// booleans and numbers their literal text, anything else its compact JSON.
// Null headers are dropped. Size limits are the caller's job.
func DecodeEnvelope(b []byte) (Envelope, error) {
	var w wireEnvelope
	if err := json.Unmarshal(b, &w); err != nil {
		return Envelope{}, ErrJSONInvalid.New("Failed to parse Ditto Protocol message: %s", truncate(err.Error(), 200))
	}
	switch {
	case w.Topic == nil || *w.Topic == "":
		return Envelope{}, ErrJSONFieldMissing.New("The JSON field 'topic' is missing in the Ditto Protocol message.")
	case w.Headers == nil:
		return Envelope{}, ErrJSONFieldMissing.New("The JSON field 'headers' is missing in the Ditto Protocol message.")
	case w.Path == nil:
		return Envelope{}, ErrJSONFieldMissing.New("The JSON field 'path' is missing in the Ditto Protocol message.")
	}
	env := Envelope{
		Topic: *w.Topic, Path: *w.Path, Headers: make(Headers, len(w.Headers)),
		Value: w.Value, Fields: w.Fields, Extra: w.Extra, Status: w.Status,
		Revision: w.Revision, Timestamp: w.Timestamp, Metadata: w.Metadata,
	}
	for k, raw := range w.Headers {
		v, err := DecodeJSON(raw)
		if err != nil {
			return Envelope{}, err
		}
		s, ok := headerText(v)
		if ok {
			env.Headers.Set(k, s)
		}
	}
	return env, nil
}

// headerText converts a decoded JSON header value to its header string.
func headerText(v any) (string, bool) {
	switch t := v.(type) {
	case nil:
		return "", false
	case string:
		return t, true
	case json.Number:
		return t.String(), true
	case bool:
		return strconv.FormatBool(t), true
	case []any:
		parts := make([]string, len(t))
		for i, e := range t {
			s, ok := e.(string)
			if !ok {
				return string(EncodeJSON(v)), true
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), true
	default:
		return string(EncodeJSON(v)), true
	}
}

// Headers of a type other than string in Ditto Protocol messages, as
// Ditto's header definitions type them: lists are JSON arrays, these
// booleans JSON booleans and ditto-metadata a JSON object.
var (
	listHeaders   = map[string]bool{HeaderRequestedAcks: true, HeaderDeclaredAcks: true}
	boolHeaders   = map[string]bool{HeaderResponseRequired: true, "ditto-weak-ack": true, "dry-run": true, "live-channel-condition-matched": true}
	objectHeaders = map[string]bool{HeaderDittoMetadata: true}
)

// EncodeEnvelope encodes env as compact Ditto Protocol JSON, the inverse of
// DecodeEnvelope: requested-acks and declared-acks become JSON arrays, the
// boolean headers booleans, ditto-metadata an object and the other
// headers strings, with keys sorted. Raw values are compacted.
func EncodeEnvelope(env Envelope) []byte {
	headers := make(map[string]any, len(env.Headers))
	for k, v := range env.Headers {
		if boolHeaders[k] && (v == "true" || v == "false") {
			headers[k] = v == "true"
			continue
		}
		if objectHeaders[k] && strings.HasPrefix(v, "{") && json.Valid([]byte(v)) {
			headers[k] = json.RawMessage(v)
			continue
		}
		if listHeaders[k] {
			list := []string{}
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					list = append(list, s)
				}
			}
			headers[k] = list
			continue
		}
		headers[k] = v
	}
	out := struct {
		Topic     string          `json:"topic"`
		Headers   map[string]any  `json:"headers"`
		Path      string          `json:"path"`
		Value     json.RawMessage `json:"value,omitempty"`
		Fields    string          `json:"fields,omitempty"`
		Extra     json.RawMessage `json:"extra,omitempty"`
		Status    int             `json:"status,omitempty"`
		Revision  int64           `json:"revision,omitempty"`
		Timestamp string          `json:"timestamp,omitempty"`
		Metadata  json.RawMessage `json:"metadata,omitempty"`
	}{env.Topic, headers, env.Path, env.Value, env.Fields, env.Extra, env.Status, env.Revision, env.Timestamp, env.Metadata}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		// Only an invalid raw value can fail; envelopes are built from
		// decoded or encoded JSON.
		panic("ditto: encode envelope: " + err.Error())
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// CommandFromEnvelope turns a things (twin or live) or policies command
// message into a Command.
//
//   - Action comes from the topic, Entity is "namespace:name" from the
//     topic (validated: things:id.invalid / policies:id.invalid), Path is
//     env.Path and must address a resource (ThingsResourceName or
//     PoliciesResourceName); create and migrate only address "/".
//   - Value is env.Value decoded with UseNumber; create, modify, merge and
//     migrate need one (json.field.missing).
//   - A body "thingId" (policies: "policyId") on "/" that differs from the
//     topic's entity is things:id.notsettable (policies:id.notsettable).
//   - Headers are copied; things commands get the "channel" header from the
//     topic (twin or live), overriding the one sent. A "timeout" header is
//     parsed into Timeout (timeout.invalid); "0" leaves Timeout zero and the
//     header in place for the caller's "do not wait" handling.
//   - Multi-retrieve: topic "_/_/things/twin/commands/retrieve" (or
//     "ns/_/…") on path "/" with value {"thingIds":[…]} gives a Command with
//     Entity "" and Value as sent. Other placeholder topics fail.
//
// Auth is left empty: the transport that authenticated the sender sets it.
func CommandFromEnvelope(env Envelope) (Command, error) {
	t, err := ParseTopic(env.Topic)
	if err != nil {
		return Command{}, err
	}
	things := t.Group == GroupThings
	if t.Criterion != CriterionCommands || (!things && t.Group != GroupPolicies) {
		return Command{}, ErrTopicInvalid.New("The topic path '%s' is not a command.", env.Topic)
	}
	path, err := ParsePointer(env.Path)
	if err != nil {
		return Command{}, err
	}
	if things {
		_, err = ThingsResourceName(path)
	} else {
		_, err = PoliciesResourceName(path)
	}
	if err != nil {
		return Command{}, err
	}
	cmd := Command{Action: Action(t.Action), Path: path, Fields: env.Fields, Headers: make(Headers, len(env.Headers)+1)}
	if (cmd.Action == ActionCreate || cmd.Action == ActionMigrate) && len(path) > 0 {
		return Command{}, ErrPathUnknown.New("The topic '%s' is not supported in combination with the path '%s'.", env.Topic, env.Path)
	}
	for k, v := range env.Headers {
		cmd.Headers.Set(k, v)
	}
	if things {
		cmd.Headers[HeaderChannel] = t.Channel
	}
	if s := cmd.Headers[HeaderTimeout]; s != "" {
		if cmd.Timeout, err = ParseTimeout(s); err != nil {
			return Command{}, err
		}
	}
	hasValue := len(env.Value) > 0
	if hasValue {
		if cmd.Value, err = DecodeJSON(env.Value); err != nil {
			return Command{}, err
		}
	}
	switch cmd.Action {
	case ActionCreate, ActionModify, ActionMerge, ActionMigrate:
		if !hasValue {
			return Command{}, ErrJSONFieldMissing.New("The JSON field 'value' is missing for a '%s' command.", cmd.Action)
		}
	}
	if t.HasPlaceholder() {
		if !isMultiRetrieve(t, path, cmd.Value) {
			return Command{}, ErrTopicInvalid.New("The topic path '%s' is not supported: placeholders are allowed only for retrieving several things.", env.Topic)
		}
		return cmd, nil
	}
	idField := "thingId"
	if things {
		_, err = ParseThingID(t.Entity())
	} else {
		idField = "policyId"
		_, err = ParsePolicyID(t.Entity())
	}
	if err != nil {
		return Command{}, err
	}
	cmd.Entity = t.Entity()
	if m, ok := cmd.Value.(map[string]any); ok && len(path) == 0 {
		if id, ok := m[idField]; ok && id != cmd.Entity {
			if things {
				return Command{}, ErrThingIDNotSettable.New("The Thing ID in the request body is not equal to the Thing ID '%s' of the topic.", cmd.Entity)
			}
			return Command{}, ErrPolicyIDNotSettable.New("The Policy ID in the request body is not equal to the Policy ID '%s' of the topic.", cmd.Entity)
		}
	}
	return cmd, nil
}

// isMultiRetrieve reports whether a placeholder topic is a valid
// retrieve of several things.
func isMultiRetrieve(t Topic, path Pointer, v any) bool {
	if t.Group != GroupThings || t.Action != string(ActionRetrieve) || t.Name != TopicPlaceholder || len(path) != 0 {
		return false
	}
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	_, ok = m["thingIds"].([]any)
	return ok
}

// ResponseEnvelope builds the response message of a successful command: the
// command's topic and path, its correlation-id, the result's ETag as the
// "etag" header and its status. A 200 response always carries a value
// (null when Result.Value is nil); 204 never does; other statuses (201)
// carry Result.Value when it is not nil.
func ResponseEnvelope(cmd Command, topic Topic, res Result) Envelope {
	h := echoedHeaders(cmd.Headers)
	if cid := cmd.Headers.Get(HeaderCorrelationID); cid != "" {
		h[HeaderCorrelationID] = cid
	}
	if res.ETag != "" {
		h[HeaderETag] = res.ETag
	}
	if res.Metadata != nil {
		h[HeaderDittoMetadata] = string(res.Metadata)
	}
	h[HeaderContentType] = ContentTypeJSON
	if cmd.Action == ActionMerge {
		h[HeaderContentType] = ContentTypeMergePatch
	}
	env := Envelope{Topic: topic.String(), Headers: h, Path: cmd.Path.String(), Status: res.Status}
	switch {
	case res.Status == 200:
		env.Value = EncodeJSON(res.Value)
	case res.Status == 204:
	case res.Value != nil:
		env.Value = EncodeJSON(res.Value)
	}
	return env
}

// ErrorEnvelope builds the error message for a failed signal with topic
// topic: "<ns>/<name>/things/<channel>/errors" (channel twin when unknown)
// or "<ns>/<name>/policies/errors", path "/", the error's status and its
// JSON as value. Of headers, the correlation-id and the client's own
// headers (echoedHeaders) are kept. An unknown
// entity (a topic that did not parse, or an invalid ID) is Ditto's
// "unknown:unknown", which its clients can decode.
func ErrorEnvelope(topic Topic, headers Headers, err *Error) Envelope {
	et := Topic{Namespace: topic.Namespace, Name: topic.Name, Group: GroupThings, Channel: topic.Channel, Criterion: CriterionErrors}
	if et.Namespace == "" && et.Name == "" {
		et.Namespace, et.Name = unknownEntity, unknownEntity
	}
	if topic.Group == GroupPolicies {
		et.Group, et.Channel = GroupPolicies, ""
	} else if et.Channel != ChannelLive {
		et.Channel = ChannelTwin
	}
	h := echoedHeaders(headers)
	h[HeaderContentType] = ContentTypeJSON
	if cid := headers.Get(HeaderCorrelationID); cid != "" {
		h[HeaderCorrelationID] = cid
	}
	return Envelope{Topic: et.String(), Headers: h, Path: "/", Status: err.Status, Value: err.JSON()}
}

// echoedHeaders returns the headers of a signal that go back in its
// response: those Ditto does not define, i.e. the client's own, which
// Ditto passes through to the response. Of the headers Ditto defines, the
// response builders set the ones that belong in a response themselves;
// internal headers never leave.
func echoedHeaders(headers Headers) Headers {
	h := Headers{}
	for k, v := range headers {
		if !definedHeaders[k] && !strings.HasPrefix(k, "ditto-") {
			h[k] = v
		}
	}
	return h
}

// definedHeaders are the headers Ditto defines (its DittoHeaderDefinition)
// and the gateway-internal ones.
var definedHeaders = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range strings.Fields(`correlation-id response-required dry-run content-type accept
		authorization reply-to channel live-channel-timeout-strategy etag if-match if-none-match
		if-equal divert-response-to-connection divert-expected-response-types
		diverted-response-from-connection requested-acks declared-acks timeout www-authenticate
		location put-metadata get-metadata delete-metadata allow-policy-lockout condition
		live-channel-condition live-channel-condition-matched at-historical-revision
		at-historical-timestamp historical-headers entity-revision merge-thing-patch-conditions
		policy-view version read-subjects subject raw-request-url timeout-access`) {
		m[k] = true
	}
	return m
}()

// unknownEntity is the namespace and name of an error whose entity is
// not known (Ditto's fallback ID "unknown:unknown").
const unknownEntity = "unknown"

// EventTopic returns the topic of an event: "<ns>/<name>/things/<channel>/
// events/<action>" (channel "" means twin) or "<ns>/<name>/policies/events/
// <action>".
func EventTopic(entity EntityID, group, channel, action string) string {
	t := Topic{Namespace: entity.Namespace, Name: entity.Name, Group: group, Criterion: CriterionEvents, Action: action}
	if group == GroupThings {
		t.Channel = channel
		if t.Channel == "" {
			t.Channel = ChannelTwin
		}
	}
	return t.String()
}

// EventAction returns the event action a successful command produces:
// created, modified, merged, deleted or migrated; created tells a modify
// that created its resource from one that replaced it. It returns "" for
// retrieve.
func EventAction(a Action, created bool) string {
	switch a {
	case ActionCreate:
		return "created"
	case ActionModify:
		if created {
			return "created"
		}
		return "modified"
	case ActionMerge:
		return "merged"
	case ActionDelete:
		return "deleted"
	case ActionMigrate:
		return "migrated"
	}
	return ""
}

// EventParams describes one event for EventEnvelope.
type EventParams struct {
	Entity EntityID
	// Group is things or policies; Channel is twin ("") or live for things.
	Group   string
	Channel string
	// Action is created, modified, merged, deleted or migrated.
	Action string
	Path   Pointer
	// Value is the new value (for merged: the patch). It is not sent for
	// deleted events; otherwise nil is sent as null.
	Value     any
	Revision  int64
	Timestamp string
	// Headers are sent as given (e.g. correlation-id, ditto-originator,
	// requested-acks); merged events also get content-type
	// application/merge-patch+json.
	Headers Headers
}

// EventEnvelope renders an event as a Ditto Protocol message.
func EventEnvelope(p EventParams) Envelope {
	h := p.Headers.Clone()
	h[HeaderContentType] = ContentTypeJSON
	if p.Action == "merged" {
		h[HeaderContentType] = ContentTypeMergePatch
	}
	env := Envelope{
		Topic: EventTopic(p.Entity, p.Group, p.Channel, p.Action), Headers: h, Path: p.Path.String(),
		Revision: p.Revision, Timestamp: p.Timestamp,
	}
	if p.Action != "deleted" {
		env.Value = EncodeJSON(p.Value)
	}
	return env
}

// ParseTimeout parses a Ditto timeout: "42" (seconds), "42s", "250ms" or
// "1m". It must be between 0 and MaxTimeout, else timeout.invalid.
func ParseTimeout(s string) (time.Duration, error) {
	num, unit := s, time.Second
	switch {
	case strings.HasSuffix(s, "ms"):
		num, unit = s[:len(s)-2], time.Millisecond
	case strings.HasSuffix(s, "s"):
		num = s[:len(s)-1]
	case strings.HasSuffix(s, "m"):
		num, unit = s[:len(s)-1], time.Minute
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > int64(MaxTimeout/unit) {
		return 0, ErrTimeoutInvalid.New("The timeout <%s> is invalid.", truncate(s, 50))
	}
	return time.Duration(n) * unit, nil
}

// Resource names of things, as in Ditto's command and event names
// (Modify<R>, <R>Modified).
const (
	ResThing                    = "Thing"
	ResPolicyID                 = "PolicyId"
	ResThingDefinition          = "ThingDefinition"
	ResAttributes               = "Attributes"
	ResAttribute                = "Attribute"
	ResFeatures                 = "Features"
	ResFeature                  = "Feature"
	ResFeatureDefinition        = "FeatureDefinition"
	ResFeatureProperties        = "FeatureProperties"
	ResFeatureProperty          = "FeatureProperty"
	ResFeatureDesiredProperties = "FeatureDesiredProperties"
	ResFeatureDesiredProperty   = "FeatureDesiredProperty"
)

// Resource names of policies.
const (
	ResPolicy                        = "Policy"
	ResPolicyEntries                 = "PolicyEntries"
	ResPolicyEntry                   = "PolicyEntry"
	ResSubjects                      = "Subjects"
	ResSubject                       = "Subject"
	ResResources                     = "Resources"
	ResResource                      = "Resource"
	ResPolicyEntryNamespaces         = "PolicyEntryNamespaces"
	ResPolicyEntryImportable         = "PolicyEntryImportable"
	ResPolicyEntryAllowedAdditions   = "PolicyEntryAllowedAdditions"
	ResPolicyEntryReferences         = "PolicyEntryReferences"
	ResPolicyImports                 = "PolicyImports"
	ResPolicyImport                  = "PolicyImport"
	ResPolicyImportEntries           = "PolicyImportEntries"
	ResPolicyImportTransitiveImports = "PolicyImportTransitiveImports"
)

func unknownPath(p Pointer) error {
	return ErrPathUnknown.New("The path '%s' does not correspond to any known command, response or event.", p.String())
}

// checkKeys returns json.key.invalid for the first segment that is not a
// valid key.
func checkKeys(segs []string) error {
	for _, s := range segs {
		if err := CheckKey(s); err != nil {
			return err
		}
	}
	return nil
}

// ThingsResourceName returns the Ditto resource name addressed by a thing
// path: "/" Thing, /policyId, /definition, /attributes[/<ptr>],
// /features[/<id>[/definition | /properties[/<ptr>] |
// /desiredProperties[/<ptr>]]]. Any other path is
// protocoladapter:unknown.path; an invalid key or feature ID (e.g. "*") is
// json.key.invalid.
func ThingsResourceName(path Pointer) (string, error) {
	if len(path) == 0 {
		return ResThing, nil
	}
	switch path[0] {
	case "policyId":
		if len(path) == 1 {
			return ResPolicyID, nil
		}
	case "definition":
		if len(path) == 1 {
			return ResThingDefinition, nil
		}
	case "attributes":
		if len(path) == 1 {
			return ResAttributes, nil
		}
		if err := checkKeys(path[1:]); err != nil {
			return "", err
		}
		return ResAttribute, nil
	case "features":
		if len(path) == 1 {
			return ResFeatures, nil
		}
		if !ValidFeatureID(path[1]) {
			return "", ErrJSONKeyInvalid.New("The feature ID <%s> is invalid.", path[1])
		}
		if len(path) == 2 {
			return ResFeature, nil
		}
		return featureResourceName(path)
	}
	return "", unknownPath(path)
}

func featureResourceName(path Pointer) (string, error) {
	switch path[2] {
	case "definition":
		if len(path) == 3 {
			return ResFeatureDefinition, nil
		}
	case "properties":
		if len(path) == 3 {
			return ResFeatureProperties, nil
		}
		if err := checkKeys(path[3:]); err != nil {
			return "", err
		}
		return ResFeatureProperty, nil
	case "desiredProperties":
		if len(path) == 3 {
			return ResFeatureDesiredProperties, nil
		}
		if err := checkKeys(path[3:]); err != nil {
			return "", err
		}
		return ResFeatureDesiredProperty, nil
	}
	return "", unknownPath(path)
}

// PoliciesResourceName returns the Ditto resource name addressed by a policy
// path: "/" Policy, /entries[/<label>[/subjects[/<subjectId>] |
// /resources[/<type:path>] | /namespaces | /importable | /allowedAdditions |
// /references]], /imports[/<policyId>[/entries | /transitiveImports]].
// Subject IDs and resource keys may span several segments (see
// PolicyPathKey). Any other path is protocoladapter:unknown.path; an invalid
// label is policies:label.invalid and an invalid imported ID
// policies:id.invalid.
func PoliciesResourceName(path Pointer) (string, error) {
	if len(path) == 0 {
		return ResPolicy, nil
	}
	switch path[0] {
	case "entries":
		if len(path) == 1 {
			return ResPolicyEntries, nil
		}
		if !ValidKey(path[1]) {
			return "", ErrJSONKeyInvalid.New("The JSON key <%s> of the Policy Label is invalid.", truncate(path[1], 300))
		}
		if len(path) == 2 {
			return ResPolicyEntry, nil
		}
		return entryResourceName(path)
	case "imports":
		if len(path) == 1 {
			return ResPolicyImports, nil
		}
		if _, err := ParsePolicyID(path[1]); err != nil {
			return "", err
		}
		switch {
		case len(path) == 2:
			return ResPolicyImport, nil
		case len(path) == 3 && path[2] == "entries":
			return ResPolicyImportEntries, nil
		case len(path) == 3 && path[2] == "transitiveImports":
			return ResPolicyImportTransitiveImports, nil
		}
	}
	return "", unknownPath(path)
}

func entryResourceName(path Pointer) (string, error) {
	switch path[2] {
	case "subjects":
		if len(path) == 3 {
			return ResSubjects, nil
		}
		return ResSubject, nil
	case "resources":
		if len(path) == 3 {
			return ResResources, nil
		}
		return ResResource, nil
	}
	if len(path) == 3 {
		switch path[2] {
		case "namespaces":
			return ResPolicyEntryNamespaces, nil
		case "importable":
			return ResPolicyEntryImportable, nil
		case "allowedAdditions":
			return ResPolicyEntryAllowedAdditions, nil
		case "references":
			return ResPolicyEntryReferences, nil
		}
	}
	return "", unknownPath(path)
}

// PolicyPathKey returns the subject ID or resource key addressed by a
// Subject or Resource path (/entries/<label>/subjects|resources/<key…>):
// the segments after the fourth joined with '/'. A resource key without a
// path ("thing:", from "thing:/" whose trailing slash the pointer drops)
// gets its root path back: "thing:/". It returns "" for shorter paths.
func PolicyPathKey(path Pointer) string {
	if len(path) < 4 {
		return ""
	}
	key := strings.Join(path[3:], "/")
	if path[2] == "resources" && len(path) == 4 && strings.HasSuffix(key, ":") {
		key += "/"
	}
	return key
}

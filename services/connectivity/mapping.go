package connectivity

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// External is a message of the external system: its headers (lower-case
// names; MQTT 3 has only mqtt.topic, mqtt.qos and mqtt.retain), its
// payload and content type.
type External struct {
	Headers     map[string]string
	Payload     []byte
	ContentType string
	// Text reports whether Payload is text (UTF-8) rather than binary.
	Text bool
	// subjects are the source's resolved authorization subjects (inbound:
	// request:subjectId of mappers).
	subjects []string
}

// Mapper turns external messages into Ditto Protocol signals and back. A
// mapper is safe for concurrent use.
type Mapper interface {
	// Inbound returns the signals of one external message (none: drop).
	Inbound(msg External) ([]ditto.Envelope, error)
	// Outbound returns the external messages of one signal (none: drop).
	Outbound(env ditto.Envelope) ([]External, error)
}

// Mapping engines.
const (
	engineDitto          = "Ditto"
	engineJavaScript     = "JavaScript"
	engineNormalized     = "Normalized"
	engineRawMessage     = "RawMessage"
	engineImplicitThing  = "ImplicitThingCreation"
	engineConnectionStat = "ConnectionStatus"
)

// builtinMapper reports whether id names a mapper usable without options.
func builtinMapper(id string) bool {
	switch id {
	case engineDitto, engineNormalized, engineRawMessage, engineLiveResponse, engineCloudEvents:
		return true
	}
	return false
}

func validateMapping(id string, md MappingDefinition) error {
	_, err := newMapper(id, md, DefaultConfig().Mapping)
	return err
}

// newMapper builds the mapper of one mapping definition.
func newMapper(id string, md MappingDefinition, cfg MappingConfig) (Mapper, error) {
	switch md.MappingEngine {
	case engineDitto:
		return dittoMapper{}, nil
	case engineJavaScript:
		return newJSMapper(id, md.Options, cfg)
	case engineNormalized:
		return newNormalizedMapper(md.Options)
	case engineRawMessage:
		return rawMessageMapper{}, nil
	case engineImplicitThing:
		return newImplicitThingMapper(id, md.Options)
	case engineConnectionStat:
		return newConnectionStatusMapper(id, md.Options)
	case engineLiveResponse:
		return newLiveResponseMapper(id, md.Options)
	case engineCloudEvents:
		return newCloudEventsMapper(id, md.Options)
	}
	return nil, invalid("The mapping '%s' has the unknown mappingEngine '%s'; use Ditto, JavaScript, Normalized, RawMessage, ImplicitThingCreation, ConnectionStatus, UpdateTwinWithLiveResponse or CloudEvents.", clip(id), clip(md.MappingEngine))
}

func mappingFailed(format string, args ...any) error {
	return ditto.ErrMappingFailed.New(format, args...)
}

// dittoMapper is the default: the payload is a Ditto Protocol message.
type dittoMapper struct{}

func (dittoMapper) Inbound(msg External) ([]ditto.Envelope, error) {
	if len(msg.Payload) == 0 {
		return nil, mappingFailed("The message has no payload; the Ditto mapper expects a Ditto Protocol message.")
	}
	env, err := ditto.DecodeEnvelope(msg.Payload)
	if err != nil {
		return nil, mappingFailed("The payload is not a Ditto Protocol message: %v", err)
	}
	return []ditto.Envelope{env}, nil
}

func (dittoMapper) Outbound(env ditto.Envelope) ([]External, error) {
	return []External{{Payload: ditto.EncodeEnvelope(env), ContentType: contentTypeDitto, Text: true,
		Headers: map[string]string{"content-type": contentTypeDitto}}}, nil
}

// normalizedMapper renders twin events as the changed part of the thing
// plus _context (outbound only).
type normalizedMapper struct {
	fields         ditto.FieldSelector
	includeDeleted bool
}

func newNormalizedMapper(opts map[string]any) (Mapper, error) {
	m := normalizedMapper{}
	if f, ok := opts["fields"].(string); ok && f != "" {
		sel, err := ditto.ParseFieldSelector(f)
		if err != nil {
			return nil, invalid("The fields option of the Normalized mapper is invalid: %v", err)
		}
		m.fields = sel
	}
	switch v := opts["includeDeletedFields"].(type) {
	case bool:
		m.includeDeleted = v
	case string:
		m.includeDeleted = v == "true"
	}
	return m, nil
}

func (normalizedMapper) Inbound(External) ([]ditto.Envelope, error) { return nil, nil }

func (m normalizedMapper) Outbound(env ditto.Envelope) ([]External, error) {
	t, err := ditto.ParseTopic(env.Topic)
	if err != nil || t.Group != ditto.GroupThings || t.Criterion != ditto.CriterionEvents {
		return nil, nil // only thing events are normalized
	}
	path, err := ditto.ParsePointer(env.Path)
	if err != nil {
		return nil, nil
	}
	thing := map[string]any{"thingId": t.Entity()}
	if t.Action == "deleted" {
		if !m.includeDeleted || len(path) == 0 {
			return nil, nil
		}
		thing = ditto.SetAt(thing, path, nil).(map[string]any)
	} else if len(env.Value) > 0 {
		v, err := ditto.DecodeJSON(env.Value)
		if err != nil {
			return nil, mappingFailed("The event value is not JSON: %v", err)
		}
		if len(path) == 0 {
			if vm, ok := v.(map[string]any); ok {
				for k, e := range vm {
					thing[k] = e
				}
			}
		} else {
			thing = ditto.SetAt(thing, path, v).(map[string]any)
		}
	}
	ctx := map[string]any{"topic": env.Topic, "path": env.Path, "headers": env.Headers}
	if env.Revision > 0 {
		thing["_revision"] = env.Revision
	}
	if env.Timestamp != "" {
		thing["_modified"] = env.Timestamp
	}
	if !m.fields.IsEmpty() {
		out, _ := m.fields.Apply(thing).(map[string]any)
		if out == nil {
			return nil, nil
		}
		thing = out
	}
	thing["_context"] = ctx
	b := ditto.EncodeJSON(thing)
	return []External{{Payload: b, ContentType: "application/json", Text: true, Headers: map[string]string{"content-type": "application/json"}}}, nil
}

// Headers of the RawMessage mapper.
const (
	hdrMsgSubject   = "ditto-message-subject"
	hdrMsgThingID   = "ditto-message-thing-id"
	hdrMsgDirection = "ditto-message-direction"
	hdrMsgFeatureID = "ditto-message-feature-id"
)

// rawMessageMapper turns a raw payload into a live message of the thing
// and feature named in the ditto-message-* headers, and a message's
// payload back into the raw payload. Other signals use the Ditto mapper.
type rawMessageMapper struct{}

func (rawMessageMapper) Inbound(msg External) ([]ditto.Envelope, error) {
	subject, id := msg.Headers[hdrMsgSubject], msg.Headers[hdrMsgThingID]
	if subject == "" || id == "" {
		return dittoMapper{}.Inbound(msg)
	}
	ns, name, ok := strings.Cut(id, ":")
	if !ok || !validThingID(id) {
		return nil, mappingFailed("The header %s '%s' is not a valid thing ID.", hdrMsgThingID, clip(id))
	}
	dir := msg.Headers[hdrMsgDirection]
	if dir == "" {
		dir = "to"
	}
	box := "inbox"
	if dir == "from" {
		box = "outbox"
	} else if dir != "to" {
		return nil, mappingFailed("The header %s must be 'to' or 'from'.", hdrMsgDirection)
	}
	path := "/" + box + "/messages/" + subject
	if f := msg.Headers[hdrMsgFeatureID]; f != "" {
		path = "/features/" + f + path
	}
	ct := msg.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h := ditto.Headers{"content-type": ct, "subject": subject, "direction": dir, "thing-id": id}
	var value json.RawMessage
	switch {
	case strings.HasPrefix(ct, "application/json") && json.Valid(msg.Payload):
		value = msg.Payload
	case msg.Text || strings.HasPrefix(ct, "text/"):
		value = ditto.EncodeJSON(string(msg.Payload))
	default:
		value = ditto.EncodeJSON(msg.Payload) // base64, as Ditto encodes binary payloads
	}
	return []ditto.Envelope{{Topic: ns + "/" + name + "/things/live/messages/" + subject, Headers: h, Path: path, Value: value}}, nil
}

func (rawMessageMapper) Outbound(env ditto.Envelope) ([]External, error) {
	t, err := ditto.ParseTopic(env.Topic)
	if err != nil || t.Criterion != ditto.CriterionMessages {
		return dittoMapper{}.Outbound(env)
	}
	ct := env.Headers.Get("content-type")
	out := External{Headers: map[string]string{}, ContentType: ct}
	for k, v := range env.Headers {
		out.Headers[k] = v
	}
	if len(env.Value) > 0 {
		var s string
		if json.Unmarshal(env.Value, &s) == nil && !strings.HasPrefix(ct, "application/json") {
			out.Payload, out.Text = []byte(s), true
		} else {
			out.Payload, out.Text = env.Value, true
		}
	}
	return []External{out}, nil
}

// implicitThingMapper creates a thing from a template when a device first
// sends: the template's placeholders ({{ header:x }}) come from the
// message's headers.
type implicitThingMapper struct {
	template       any
	templates      map[string]*Template // JSON strings containing placeholders, by their text
	commandHeaders map[string]string
	allowLockout   bool
}

func newImplicitThingMapper(id string, opts map[string]any) (Mapper, error) {
	tpl, ok := opts["thing"].(map[string]any)
	if !ok {
		return nil, invalid("The ImplicitThingCreation mapping '%s' needs the option 'thing' (a thing template).", clip(id))
	}
	m := &implicitThingMapper{template: tpl, templates: map[string]*Template{}, allowLockout: true,
		commandHeaders: map[string]string{"if-none-match": "*"}}
	scope := Scope{"header": nil, "time": phTime, "request": phRequest, "connection": phConnection}
	var walk func(v any) error
	walk = func(v any) error {
		switch x := v.(type) {
		case string:
			if strings.Contains(x, "{{") {
				t, err := ParseTemplate(x, scope)
				if err != nil {
					return err
				}
				m.templates[x] = t
			}
		case map[string]any:
			for k, e := range x {
				if err := walk(k); err != nil {
					return err
				}
				if err := walk(e); err != nil {
					return err
				}
			}
		case []any:
			for _, e := range x {
				if err := walk(e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(tpl); err != nil {
		return nil, err
	}
	if id, ok := tpl["thingId"].(string); !ok || id == "" {
		return nil, invalid("The thing template of the ImplicitThingCreation mapping '%s' needs a thingId.", clip(id))
	}
	if ch, ok := opts["commandHeaders"].(map[string]any); ok {
		m.commandHeaders = map[string]string{}
		for k, v := range ch {
			m.commandHeaders[strings.ToLower(k)] = fmt.Sprint(v)
		}
	}
	if v, ok := opts["allowPolicyLockout"].(bool); ok {
		m.allowLockout = v
	}
	return m, nil
}

func (m *implicitThingMapper) Inbound(msg External) ([]ditto.Envelope, error) {
	now := time.Now()
	r := func(prefix, name string) (string, bool) {
		switch prefix {
		case "header":
			v, ok := msg.Headers[strings.ToLower(name)]
			return v, ok
		case "time":
			return timePlaceholder(name, now)
		}
		return "", false
	}
	var failed string
	var fill func(v any) any
	fill = func(v any) any {
		switch x := v.(type) {
		case string:
			t := m.templates[x]
			if t == nil {
				return x
			}
			s, ok := t.ResolveOne(r)
			if !ok {
				failed = x
			}
			return s
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, e := range x {
				out[fill(k).(string)] = fill(e)
			}
			return out
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = fill(e)
			}
			return out
		}
		return v
	}
	thing := fill(m.template).(map[string]any)
	if failed != "" {
		return nil, mappingFailed("The placeholder '%s' of the thing template could not be resolved from the message.", clip(failed))
	}
	id, _ := thing["thingId"].(string)
	ns, name, ok := strings.Cut(id, ":")
	if !ok || !validThingID(id) {
		return nil, mappingFailed("The thing template resolved to the invalid thing ID '%s'.", clip(id))
	}
	h := ditto.Headers{}
	for k, v := range m.commandHeaders {
		h[k] = v
	}
	if m.allowLockout {
		h["allow-policy-lockout"] = "true"
	}
	if cid := msg.Headers[ditto.HeaderCorrelationID]; cid != "" {
		h[ditto.HeaderCorrelationID] = cid
	}
	return []ditto.Envelope{{Topic: ns + "/" + name + "/things/twin/commands/create", Headers: h, Path: "/", Value: ditto.EncodeJSON(thing)}}, nil
}

func (m *implicitThingMapper) Outbound(ditto.Envelope) ([]External, error) { return nil, nil }

// connectionStatusMapper turns Hono's ttd and creation-time headers into
// the feature ConnectionStatus of a thing (readySince, readyUntil).
type connectionStatusMapper struct {
	thingID   *Template
	featureID string
}

func newConnectionStatusMapper(id string, opts map[string]any) (Mapper, error) {
	raw, _ := opts["thingId"].(string)
	if raw == "" {
		return nil, invalid("The ConnectionStatus mapping '%s' needs the option 'thingId' (e.g. {{ header:device_id }}).", clip(id))
	}
	t, err := ParseTemplate(raw, Scope{"header": nil})
	if err != nil {
		return nil, err
	}
	m := &connectionStatusMapper{thingID: t, featureID: "ConnectionStatus"}
	if f, ok := opts["featureId"].(string); ok && f != "" {
		m.featureID = f
	}
	return m, nil
}

func (m *connectionStatusMapper) Inbound(msg External) ([]ditto.Envelope, error) {
	ttdS, ctS := msg.Headers["ttd"], msg.Headers["creation-time"]
	if ttdS == "" || ctS == "" {
		return nil, nil // not a connection status message
	}
	var ttd, created int64
	if _, err := fmt.Sscan(ttdS, &ttd); err != nil {
		return nil, mappingFailed("The header ttd '%s' is not a number.", clip(ttdS))
	}
	if _, err := fmt.Sscan(ctS, &created); err != nil || created < 0 {
		return nil, mappingFailed("The header creation-time '%s' is not a number of milliseconds.", clip(ctS))
	}
	id, ok := m.thingID.ResolveOne(func(prefix, name string) (string, bool) {
		v, ok := msg.Headers[strings.ToLower(name)]
		return v, ok && prefix == "header"
	})
	if !ok || !validThingID(id) {
		return nil, mappingFailed("The thing ID of the ConnectionStatus mapping could not be resolved to a valid ID.")
	}
	ns, name, _ := strings.Cut(id, ":")
	since := time.UnixMilli(created).UTC()
	status := map[string]any{"readySince": ditto.FormatTime(since)}
	switch {
	case ttd == 0:
		status["readyUntil"] = ditto.FormatTime(since)
	case ttd == -1:
		status["readyUntil"] = "9999-12-31T23:59:59Z"
	case ttd > 0:
		status["readyUntil"] = ditto.FormatTime(since.Add(time.Duration(ttd) * time.Second))
	default:
		return nil, mappingFailed("The header ttd must be -1, 0 or a positive number of seconds.")
	}
	feature := map[string]any{"definition": []any{"org.eclipse.ditto:ConnectionStatus:1.0.0"}, "properties": map[string]any{"status": status}}
	return []ditto.Envelope{{Topic: ns + "/" + name + "/things/twin/commands/merge", Path: "/features/" + m.featureID,
		Headers: ditto.Headers{"content-type": "application/merge-patch+json"}, Value: ditto.EncodeJSON(feature)}}, nil
}

func (m *connectionStatusMapper) Outbound(ditto.Envelope) ([]External, error) { return nil, nil }

// contentTypeDitto is the content type of Ditto Protocol messages.
const contentTypeDitto = "application/vnd.eclipse.ditto+json"

func validThingID(id string) bool {
	_, err := ditto.ParseThingID(id)
	return err == nil
}

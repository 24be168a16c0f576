package connectivity

import (
	"encoding/base64"
	"encoding/json"
	"mime"
	"strings"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Mapping engines without options beyond the first six.
const (
	engineLiveResponse = "UpdateTwinWithLiveResponse"
	engineCloudEvents  = "CloudEvents"
)

// liveResponseMapper turns a live retrieve response of a thing (a device
// answered a live retrieve) into a merge of the retrieved value into the
// twin at the response's path. Other messages map to nothing, so it is
// listed next to the mapper that handles them (["Ditto",
// "UpdateTwinWithLiveResponse"]). The merge runs with the headers of the
// option dittoHeadersForMerge (default response-required false and
// if-match *), whose string values may use {{ header:x }},
// {{ request:subjectId }} and {{ time:now }}; its correlation-id is the
// response's with the suffix -merge-into-twin.
type liveResponseMapper struct {
	headers map[string]string
	tpls    map[string]*Template
}

const mergeIntoTwinSuffix = "-merge-into-twin"

var scopeMergeHeaders = Scope{"header": nil, "request": phRequest, "time": phTime}

func newLiveResponseMapper(id string, opts map[string]any) (Mapper, error) {
	m := &liveResponseMapper{headers: map[string]string{ditto.HeaderResponseRequired: "false", "if-match": "*"}, tpls: map[string]*Template{}}
	if raw, ok := opts["dittoHeadersForMerge"]; ok {
		hm, ok := raw.(map[string]any)
		if !ok {
			return nil, invalid("The option dittoHeadersForMerge of the mapping '%s' must be a JSON object of headers.", clip(id))
		}
		m.headers = make(map[string]string, len(hm))
		for k, v := range hm {
			if k == "" || strings.ContainsAny(k, " \t\r\n") {
				return nil, invalid("The option dittoHeadersForMerge of the mapping '%s' has the invalid header name '%s'.", clip(id), clip(k))
			}
			var s string
			switch x := v.(type) {
			case string:
				s = x
			default:
				s = string(ditto.EncodeJSON(x)) // e.g. put-metadata
			}
			k = strings.ToLower(k)
			m.headers[k] = s
			if strings.Contains(s, "{{") {
				t, err := ParseTemplate(s, scopeMergeHeaders)
				if err != nil {
					return nil, invalid("The header '%s' of dittoHeadersForMerge of the mapping '%s' is not valid: %s", clip(k), clip(id), asDitto(err).Message)
				}
				m.tpls[k] = t
			}
		}
	}
	return m, nil
}

func (m *liveResponseMapper) Inbound(msg External) ([]ditto.Envelope, error) {
	env, err := ditto.DecodeEnvelope(msg.Payload)
	if err != nil {
		return nil, nil // not a Ditto Protocol message: nothing to merge
	}
	t, err := ditto.ParseTopic(env.Topic)
	if err != nil || t.Group != ditto.GroupThings || t.Channel != ditto.ChannelLive || t.Criterion != ditto.CriterionCommands ||
		t.Action != "retrieve" || t.HasPlaceholder() || env.Status < 200 || env.Status > 299 || len(env.Value) == 0 {
		return nil, nil
	}
	if _, err := ditto.ParsePointer(env.Path); err != nil {
		return nil, nil
	}
	now := time.Now()
	res := func(prefix, name string) (string, bool) {
		switch prefix {
		case "header":
			v, ok := msg.Headers[strings.ToLower(name)]
			return v, ok
		case "time":
			return timePlaceholder(name, now)
		case "request":
			if name == "subjectId" && len(msg.subjects) > 0 {
				return msg.subjects[0], true
			}
		}
		return "", false
	}
	h := ditto.Headers{"content-type": "application/merge-patch+json"}
	for k, v := range m.headers {
		if t := m.tpls[k]; t != nil {
			// Unresolvable placeholders stay as written (Ditto resolves
			// these headers partially).
			if r, ok := t.ResolveOne(res); ok {
				v = r
			}
		}
		h[k] = v
	}
	cid := env.Headers.Get(ditto.HeaderCorrelationID)
	if cid == "" {
		cid = newCorrelationID()
	}
	h[ditto.HeaderCorrelationID] = cid + mergeIntoTwinSuffix
	merge := ditto.Topic{Namespace: t.Namespace, Name: t.Name, Group: ditto.GroupThings, Channel: ditto.ChannelTwin,
		Criterion: ditto.CriterionCommands, Action: "merge"}
	return []ditto.Envelope{{Topic: merge.String(), Headers: h, Path: env.Path, Value: env.Value}}, nil
}

func (m *liveResponseMapper) Outbound(ditto.Envelope) ([]External, error) { return nil, nil }

// CloudEvents (v1.0) content types and headers.
const (
	contentTypeCloudEvents = "application/cloudevents+json"
	ceSpecVersion          = "1.0"
	ceOutboundType         = "org.eclipse.ditto.outbound"
)

// cloudEventsMapper maps CloudEvents carrying Ditto Protocol messages, in
// both CloudEvents modes:
//   - binary: the payload is the Ditto Protocol message (content type
//     application/vnd.eclipse.ditto+json) and the attributes are the
//     headers ce-specversion, ce-id, ce-source, ce-type (and optional ce-*);
//   - structured: the payload is the JSON event (content type
//     application/cloudevents+json, or none at all, as over MQTT 3.1.1)
//     with the Ditto Protocol message in data (or data_base64).
//
// The event's id becomes the correlation-id. Other content types map to
// nothing. Outbound, a signal becomes a structured event (Ditto's choice,
// the default) or, with the option outboundMode "binary", a binary one:
// id = correlation-id, type org.eclipse.ditto.outbound:<topic without
// namespace and name>, subject <namespace>:<name>, time = the signal's
// timestamp, source = the option source (default "dittonode").
type cloudEventsMapper struct {
	binaryOut bool
	source    string
}

func newCloudEventsMapper(id string, opts map[string]any) (Mapper, error) {
	m := &cloudEventsMapper{source: "dittonode"}
	if v, ok := opts["outboundMode"]; ok {
		switch v {
		case "structured":
		case "binary":
			m.binaryOut = true
		default:
			return nil, invalid("The option outboundMode of the CloudEvents mapping '%s' must be 'structured' or 'binary'.", clip(id))
		}
	}
	if v, ok := opts["source"]; ok {
		s, isStr := v.(string)
		if !isStr || s == "" {
			return nil, invalid("The option source of the CloudEvents mapping '%s' must be a non-empty string (a URI reference).", clip(id))
		}
		m.source = s
	}
	return m, nil
}

func mediaType(ct string) string {
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(ct))
	}
	return mt
}

func (m *cloudEventsMapper) Inbound(msg External) ([]ditto.Envelope, error) {
	ct := msg.ContentType
	if ct == "" {
		ct = msg.Headers["content-type"]
	}
	switch mt := mediaType(ct); {
	case mt == contentTypeDitto:
		return m.binaryIn(msg)
	case mt == contentTypeCloudEvents, mt == "" && len(msg.Payload) > 0:
		return m.structuredIn(msg, mt == "")
	}
	return nil, nil
}

func (m *cloudEventsMapper) binaryIn(msg External) ([]ditto.Envelope, error) {
	for _, k := range []string{"ce-specversion", "ce-id", "ce-source", "ce-type"} {
		if msg.Headers[k] == "" {
			return nil, mappingFailed("This is not a CloudEvent: the binary mode needs the header '%s'.", k)
		}
	}
	if v := msg.Headers["ce-specversion"]; v != ceSpecVersion {
		return nil, mappingFailed("The CloudEvents specversion '%s' is not supported; use %s.", clip(v), ceSpecVersion)
	}
	env, err := decodeEventData(msg.Payload)
	if err != nil {
		return nil, mappingFailed("The data of the CloudEvent is not a Ditto Protocol message: %v", err)
	}
	if env.Headers == nil {
		env.Headers = ditto.Headers{}
	}
	env.Headers[ditto.HeaderCorrelationID] = msg.Headers["ce-id"]
	return []ditto.Envelope{env}, nil
}

// structuredEvent is a structured CloudEvent; data stays raw.
type structuredEvent struct {
	SpecVersion string          `json:"specversion"`
	ID          string          `json:"id"`
	Source      string          `json:"source"`
	Type        string          `json:"type"`
	Data        json.RawMessage `json:"data"`
	DataBase64  string          `json:"data_base64"`
}

func (m *cloudEventsMapper) structuredIn(msg External, sniffed bool) ([]ditto.Envelope, error) {
	var ev structuredEvent
	if err := json.Unmarshal(msg.Payload, &ev); err != nil {
		if sniffed {
			return nil, nil // no content type and not JSON: not ours
		}
		return nil, mappingFailed("This is not a CloudEvent: %v", err)
	}
	if sniffed && ev.SpecVersion == "" {
		return nil, nil // JSON, but no CloudEvent
	}
	if ev.SpecVersion == "" || ev.ID == "" || ev.Source == "" || ev.Type == "" {
		return nil, mappingFailed("This is not a CloudEvent: specversion, id, source and type are required.")
	}
	if ev.SpecVersion != ceSpecVersion {
		return nil, mappingFailed("The CloudEvents specversion '%s' is not supported; use %s.", clip(ev.SpecVersion), ceSpecVersion)
	}
	data := []byte(ev.Data)
	switch {
	case ev.DataBase64 != "":
		b, err := base64.StdEncoding.DecodeString(ev.DataBase64)
		if err != nil {
			return nil, mappingFailed("The data_base64 of the CloudEvent is not base64: %v", err)
		}
		data = b
	case len(data) == 0 || string(data) == "null":
		return nil, mappingFailed("The CloudEvent has no data.")
	}
	env, err := decodeEventData(data)
	if err != nil {
		return nil, mappingFailed("The data of the CloudEvent is not a Ditto Protocol message: %v", err)
	}
	if env.Headers == nil {
		env.Headers = ditto.Headers{}
	}
	env.Headers[ditto.HeaderCorrelationID] = ev.ID
	return []ditto.Envelope{env}, nil
}

// decodeEventData decodes the Ditto Protocol message of an event; Ditto's
// own CloudEvents examples leave out its headers, so they are optional
// here.
func decodeEventData(b []byte) (ditto.Envelope, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return ditto.Envelope{}, err
	}
	if _, ok := obj["headers"]; !ok && obj != nil {
		obj["headers"] = json.RawMessage(`{}`)
		b = ditto.EncodeJSON(obj)
	}
	return ditto.DecodeEnvelope(b)
}

func (m *cloudEventsMapper) Outbound(env ditto.Envelope) ([]External, error) {
	t, err := ditto.ParseTopic(env.Topic)
	if err != nil {
		return nil, mappingFailed("The signal's topic '%s' is not valid.", clip(env.Topic))
	}
	id := env.Headers.Get(ditto.HeaderCorrelationID)
	if id == "" {
		id = newCorrelationID()
	}
	typ := ceOutboundType + ":" + strings.TrimPrefix(t.String(), t.Namespace+"/"+t.Name+"/")
	ts := env.Timestamp
	if ts == "" {
		ts = ditto.FormatTime(time.Now())
	}
	subject := t.Namespace + ":" + t.Name
	data := ditto.EncodeEnvelope(env)
	if m.binaryOut {
		h := map[string]string{"content-type": contentTypeDitto, "ce-specversion": ceSpecVersion, "ce-id": id,
			"ce-source": m.source, "ce-type": typ, "ce-time": ts, "ce-subject": subject}
		return []External{{Headers: h, Payload: data, ContentType: contentTypeDitto, Text: true}}, nil
	}
	ev := map[string]any{"specversion": ceSpecVersion, "id": id, "source": m.source, "type": typ,
		"datacontenttype": contentTypeDitto, "time": ts, "subject": subject, "data": json.RawMessage(data)}
	return []External{{Headers: map[string]string{"content-type": contentTypeCloudEvents}, Payload: ditto.EncodeJSON(ev),
		ContentType: contentTypeCloudEvents, Text: true}}, nil
}

package connectivity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/ditto/rql"
)

// Connection is a Ditto connection definition (ditto-spec.md section 10).
// Unknown fields are kept in the stored JSON; these are the ones the node
// validates and runs.
type Connection struct {
	ID                   string                       `json:"id"`
	Name                 string                       `json:"name,omitempty"`
	ConnectionType       string                       `json:"connectionType"`
	ConnectionStatus     string                       `json:"connectionStatus"`
	URI                  string                       `json:"uri"`
	Sources              []Source                     `json:"sources,omitempty"`
	Targets              []Target                     `json:"targets,omitempty"`
	ClientCount          int                          `json:"clientCount,omitempty"`
	FailoverEnabled      *bool                        `json:"failoverEnabled,omitempty"`
	ValidateCertificates *bool                        `json:"validateCertificates,omitempty"`
	CA                   string                       `json:"ca,omitempty"`
	Credentials          *Credentials                 `json:"credentials,omitempty"`
	SpecificConfig       SpecificConfig               `json:"specificConfig,omitempty"`
	MappingDefinitions   map[string]MappingDefinition `json:"mappingDefinitions,omitempty"`
	Tags                 []string                     `json:"tags,omitempty"`
}

// Source consumes messages from the external system.
type Source struct {
	Addresses               []string          `json:"addresses"`
	ConsumerCount           int               `json:"consumerCount,omitempty"`
	QoS                     *int              `json:"qos,omitempty"`
	AuthorizationContext    []string          `json:"authorizationContext"`
	Enforcement             *Enforcement      `json:"enforcement,omitempty"`
	AcknowledgementRequests *AckRequests      `json:"acknowledgementRequests,omitempty"`
	HeaderMapping           map[string]string `json:"headerMapping,omitempty"`
	PayloadMapping          []string          `json:"payloadMapping,omitempty"`
	ReplyTarget             *ReplyTarget      `json:"replyTarget,omitempty"`
	DeclaredAcks            []string          `json:"declaredAcks,omitempty"`
}

// Enforcement checks that a message's input (e.g. the device ID of an MQTT
// topic) matches one of the filters (e.g. the thing ID of the signal).
type Enforcement struct {
	Input   string   `json:"input"`
	Filters []string `json:"filters"`
}

// AckRequests are the acknowledgements a source requests for its commands.
type AckRequests struct {
	Includes []string `json:"includes,omitempty"`
	Filter   string   `json:"filter,omitempty"`
}

// ReplyTarget sends command responses back to the external system.
type ReplyTarget struct {
	Enabled               *bool             `json:"enabled,omitempty"`
	Address               string            `json:"address,omitempty"`
	HeaderMapping         map[string]string `json:"headerMapping,omitempty"`
	ExpectedResponseTypes []string          `json:"expectedResponseTypes,omitempty"`
}

// Target publishes signals to the external system.
type Target struct {
	Address                    string            `json:"address"`
	Topics                     []string          `json:"topics"`
	QoS                        *int              `json:"qos,omitempty"`
	AuthorizationContext       []string          `json:"authorizationContext"`
	HeaderMapping              map[string]string `json:"headerMapping,omitempty"`
	PayloadMapping             []string          `json:"payloadMapping,omitempty"`
	IssuedAcknowledgementLabel string            `json:"issuedAcknowledgementLabel,omitempty"`
}

// MappingDefinition configures one payload mapper of the connection.
type MappingDefinition struct {
	MappingEngine      string         `json:"mappingEngine"`
	Options            map[string]any `json:"options,omitempty"`
	IncomingConditions map[string]any `json:"incomingConditions,omitempty"`
	OutgoingConditions map[string]any `json:"outgoingConditions,omitempty"`
}

// Connection types the node can run. Each has a client factory in the
// runtime (ClientFactories); validation accepts exactly these.
const (
	TypeMQTT     = "mqtt"
	TypeMQTT5    = "mqtt-5"
	TypeHTTPPush = "http-push"
)

// knownTypes are Ditto's connection types; the ones without a client on
// this node are rejected with a clear message.
var knownTypes = []string{"amqp-091", "amqp-10", "mqtt", "mqtt-5", "kafka", "http-push", "hono"}

// Target topics (the part before '?').
const (
	topicTwinEvents     = "_/_/things/twin/events"
	topicLiveMessages   = "_/_/things/live/messages"
	topicLiveCommands   = "_/_/things/live/commands"
	topicLiveEvents     = "_/_/things/live/events"
	topicPolicyAnnounce = "_/_/policies/announcements"
	topicConnAnnounce   = "_/_/connections/announcements"
)

// TargetTopic is one parsed entry of a target's topics.
type TargetTopic struct {
	Topic string
	// Query holds namespaces, filter and extraFields as given.
	Query      url.Values
	Namespaces []string
	Filter     rql.Node
	Extra      ditto.FieldSelector
}

// ParseConnection decodes and validates a definition. types are the
// connection types with a client on this node.
func ParseConnection(raw []byte, types []string) (*Connection, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var c Connection
	if err := dec.Decode(&c); err != nil {
		return nil, ditto.ErrConnectionInvalid.New("The connection definition is not valid: %s", clip(err.Error()))
	}
	if err := c.validate(types); err != nil {
		return nil, err
	}
	return &c, nil
}

func invalid(format string, args ...any) error {
	return ditto.ErrConnectionInvalid.New(format, args...)
}

func (c *Connection) validate(types []string) error {
	for f, v := range map[string]string{"id": c.ID, "connectionType": c.ConnectionType, "connectionStatus": c.ConnectionStatus, "uri": c.URI} {
		if v == "" {
			return ditto.ErrJSONFieldMissing.New("The connection field '%s' is missing or empty.", f)
		}
	}
	if !ditto.ValidConnectionID(c.ID) {
		return ditto.ErrConnectionIDInvalid.New("Connection ID '%s' is not valid.", clip(c.ID))
	}
	if !slices.Contains(knownTypes, c.ConnectionType) {
		return invalid("The connectionType '%s' is unknown; use one of %s.", clip(c.ConnectionType), strings.Join(knownTypes, ", "))
	}
	if !slices.Contains(types, c.ConnectionType) {
		return invalid("The connectionType '%s' is not supported by this node; supported are %s.", c.ConnectionType, strings.Join(types, ", "))
	}
	switch c.ConnectionStatus {
	case "open", "closed":
	default:
		return invalid("The connectionStatus must be 'open' or 'closed', not '%s'.", clip(c.ConnectionStatus))
	}
	u, err := url.Parse(c.URI)
	if err != nil || u.Host == "" {
		return invalid("The uri '%s' is not a valid URI with a host.", redactURI(c.URI))
	}
	if err := c.validateEmbedded(u); err != nil {
		return err
	}
	schemes := map[string][]string{TypeMQTT: {"tcp", "ssl", "ws", "wss"}, TypeMQTT5: {"tcp", "ssl"}, TypeHTTPPush: {"http", "https"}}[c.ConnectionType]
	if schemes != nil && !slices.Contains(schemes, u.Scheme) && !c.IsEmbedded() {
		return invalid("The uri scheme of a %s connection must be one of %s, not '%s'.", c.ConnectionType, strings.Join(schemes, ", "), clip(u.Scheme))
	}
	if err := c.validateTransport(u); err != nil {
		return err
	}
	if c.ClientCount < 0 || c.ClientCount > 1 {
		return invalid("The clientCount must be 1: each connection runs on exactly one node of the cluster.")
	}
	for id, md := range c.MappingDefinitions {
		if id == "" || len(id) > 100 {
			return invalid("A mapping definition ID must have 1 to 100 characters.")
		}
		if err := validateMapping(id, md); err != nil {
			return err
		}
	}
	if c.ConnectionType == TypeHTTPPush && len(c.Sources) > 0 {
		return invalid("An http-push connection has no sources.")
	}
	for i, s := range c.Sources {
		if err := c.validateSource(i, s); err != nil {
			return err
		}
	}
	for i, t := range c.Targets {
		if err := c.validateTarget(i, t); err != nil {
			return err
		}
	}
	return nil
}

func (c *Connection) validateMappingRefs(where string, ids []string) error {
	for _, id := range ids {
		if _, ok := c.MappingDefinitions[id]; ok {
			continue
		}
		if builtinMapper(id) {
			continue
		}
		return invalid("The %s refers to the mapping '%s', which is neither in mappingDefinitions nor a built-in mapper without options (Ditto, Normalized, RawMessage, UpdateTwinWithLiveResponse, CloudEvents).", where, clip(id))
	}
	return nil
}

func validateAuthContext(where string, subjects []string, scope Scope) error {
	if len(subjects) == 0 {
		return invalid("The %s needs an authorizationContext with at least one subject.", where)
	}
	for _, s := range subjects {
		if s == "" || len(s) > 256 {
			return invalid("The %s has an empty or overlong authorization subject.", where)
		}
		if _, err := ParseTemplate(s, scope); err != nil {
			return err
		}
	}
	return nil
}

func validateHeaderMapping(where string, hm map[string]string, scope Scope) error {
	for k, v := range hm {
		if k == "" || strings.ContainsAny(k, " \t\r\n") {
			return invalid("The headerMapping of the %s has an invalid header name '%s'.", where, clip(k))
		}
		if _, err := ParseTemplate(v, scope); err != nil {
			return err
		}
	}
	return nil
}

func (c *Connection) validateSource(i int, s Source) error {
	where := fmt.Sprintf("source %d", i)
	if len(s.Addresses) == 0 {
		return invalid("The %s needs at least one address.", where)
	}
	for _, a := range s.Addresses {
		if a == "" {
			return invalid("The %s has an empty address.", where)
		}
		if c.isMQTT() {
			if err := validTopicFilter(a); err != nil {
				return invalid("The %s address '%s' is not a valid MQTT topic filter: %v.", where, clip(a), err)
			}
		}
	}
	if s.ConsumerCount < 0 || s.ConsumerCount > 1 {
		return invalid("The consumerCount of %s must be 1.", where)
	}
	if c.isMQTT() {
		if s.QoS == nil {
			return invalid("The %s of an MQTT connection needs a qos (0, 1 or 2).", where)
		}
	}
	if s.QoS != nil && (*s.QoS < 0 || *s.QoS > 2) {
		return invalid("The qos of %s must be 0, 1 or 2.", where)
	}
	if err := validateAuthContext(where, s.AuthorizationContext, scopeSourceAuth); err != nil {
		return err
	}
	if e := s.Enforcement; e != nil {
		if e.Input == "" || len(e.Filters) == 0 {
			return invalid("The enforcement of %s needs an input and at least one filter.", where)
		}
		if _, err := ParseTemplate(e.Input, scopeEnforcementInput); err != nil {
			return err
		}
		for _, f := range e.Filters {
			if _, err := ParseTemplate(f, scopeEnforcementFilter); err != nil {
				return err
			}
		}
	}
	if err := c.validateSourceAcks(where, s); err != nil {
		return err
	}
	if err := validateHeaderMapping(where, s.HeaderMapping, scopeInbound); err != nil {
		return err
	}
	if err := c.validateMappingRefs("payloadMapping of "+where, s.PayloadMapping); err != nil {
		return err
	}
	if rt := s.ReplyTarget; rt != nil && (rt.Enabled == nil || *rt.Enabled) {
		if rt.Address == "" {
			return invalid("The enabled replyTarget of %s needs an address.", where)
		}
		if _, err := ParseTemplate(rt.Address, scopeOutbound); err != nil {
			return err
		}
		if err := validateHeaderMapping("replyTarget of "+where, rt.HeaderMapping, scopeOutbound); err != nil {
			return err
		}
		for _, t := range rt.ExpectedResponseTypes {
			if t != "response" && t != "error" && t != "nack" {
				return invalid("The expectedResponseTypes of %s may contain response, error and nack, not '%s'.", where, clip(t))
			}
		}
	}
	return nil
}

func (c *Connection) validateTarget(i int, t Target) error {
	where := fmt.Sprintf("target %d", i)
	if t.Address == "" {
		return invalid("The %s needs an address.", where)
	}
	if _, err := ParseTemplate(t.Address, scopeOutbound); err != nil {
		return err
	}
	if c.ConnectionType == TypeHTTPPush {
		if _, _, err := parseHTTPAddress(t.Address); err != nil {
			return err
		}
	}
	if c.isMQTT() && !strings.Contains(t.Address, "{{") {
		if strings.ContainsAny(t.Address, "+#") {
			return invalid("The %s address '%s' must not contain MQTT wildcards.", where, clip(t.Address))
		}
	}
	if len(t.Topics) == 0 {
		return invalid("The %s needs at least one topic.", where)
	}
	for _, tp := range t.Topics {
		if _, err := ParseTargetTopic(tp); err != nil {
			return err
		}
	}
	if t.QoS != nil && (*t.QoS < 0 || *t.QoS > 2) {
		return invalid("The qos of %s must be 0, 1 or 2.", where)
	}
	if err := validateAuthContext(where, t.AuthorizationContext, Scope{}); err != nil {
		return err
	}
	if err := validateHeaderMapping(where, t.HeaderMapping, scopeOutbound); err != nil {
		return err
	}
	if l := t.IssuedAcknowledgementLabel; l != "" {
		if _, err := ParseTemplate(l, scopeOutbound); err != nil {
			return err
		}
	}
	return c.validateMappingRefs("payloadMapping of "+where, t.PayloadMapping)
}

func (c *Connection) isMQTT() bool {
	return c.ConnectionType == TypeMQTT || c.ConnectionType == TypeMQTT5
}

// ParseTargetTopic parses "_/_/things/twin/events?namespaces=…&filter=…".
func ParseTargetTopic(s string) (TargetTopic, error) {
	topic, query, _ := strings.Cut(s, "?")
	tt := TargetTopic{Topic: topic}
	switch topic {
	case topicTwinEvents, topicLiveMessages, topicLiveCommands, topicLiveEvents, topicPolicyAnnounce, topicConnAnnounce:
	default:
		return tt, invalid("The target topic '%s' is not supported; use one of %s.", clip(topic),
			strings.Join([]string{topicTwinEvents, topicLiveMessages, topicLiveCommands, topicLiveEvents, topicPolicyAnnounce, topicConnAnnounce}, ", "))
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return tt, invalid("The query of the target topic '%s' is not valid.", clip(s))
	}
	tt.Query = q
	for k := range q {
		switch k {
		case "namespaces", "filter", "extraFields":
		default:
			return tt, invalid("The target topic '%s' has the unknown parameter '%s'.", clip(topic), clip(k))
		}
	}
	if q.Has("filter") && topic != topicTwinEvents && topic != topicLiveMessages && topic != topicLiveEvents && topic != topicLiveCommands {
		return tt, invalid("The target topic '%s' does not take a filter.", topic)
	}
	if q.Has("namespaces") && topic == topicConnAnnounce {
		return tt, invalid("The target topic '%s' does not take namespaces.", topic)
	}
	if q.Has("extraFields") && (topic == topicPolicyAnnounce || topic == topicConnAnnounce) {
		return tt, invalid("The target topic '%s' does not take extraFields.", topic)
	}
	for ns := range strings.SplitSeq(q.Get("namespaces"), ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			tt.Namespaces = append(tt.Namespaces, ns)
		}
	}
	if f := q.Get("filter"); f != "" {
		n, err := rql.Parse(f)
		if err != nil {
			return tt, err
		}
		tt.Filter = n
	}
	if x := q.Get("extraFields"); x != "" {
		sel, err := ditto.ParseFieldSelector(x)
		if err != nil {
			return tt, err
		}
		tt.Extra = sel
	}
	return tt, nil
}

// validTopicFilter checks an MQTT topic filter: '+' and '#' occupy a whole
// level and '#' comes last.
func validTopicFilter(f string) error {
	if len(f) > 65535 {
		return fmt.Errorf("too long")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.ContainsRune(l, 0) {
			return fmt.Errorf("NUL character")
		}
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return fmt.Errorf("'#' must be the whole last level")
		}
		if strings.Contains(l, "+") && l != "+" {
			return fmt.Errorf("'+' must be a whole level")
		}
	}
	return nil
}

// parseHTTPAddress splits an http-push target address "VERB:/path?query".
func parseHTTPAddress(a string) (method, path string, err error) {
	method, path, ok := strings.Cut(a, ":")
	switch method {
	case "GET", "POST", "PUT", "PATCH", "DELETE":
	default:
		ok = false
	}
	if !ok || !strings.HasPrefix(path, "/") {
		return "", "", invalid("The http-push target address '%s' must be VERB:/path with VERB one of GET, POST, PUT, PATCH, DELETE.", clip(a))
	}
	return method, path, nil
}

// redactURI hides the password of a URI for messages and logs.
func redactURI(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<invalid uri>"
	}
	return u.Redacted()
}

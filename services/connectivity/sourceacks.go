package connectivity

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/dittonode/dittonode/ditto"
)

// Source acknowledgements (ditto-spec.md section 10, Ditto's "source
// acknowledgement requests"): a consumed message is acknowledged to the
// external system (MQTT PUBACK) only after the acknowledgements its
// commands requested succeeded. Which ones a command requests is the
// source's acknowledgementRequests: includes (default: the command's own,
// twin-persisted for a twin command and live-response for a live one) and
// a filter that may switch them off per message. An MQTT source without
// acknowledgementRequests requests them for QoS 1 and 2 messages.
//
// On failure the message is acknowledged anyway, unless the failure may go
// away on a second attempt (408, 424, a 5xx or no answer at all, as in
// Ditto) and the connection's specificConfig reconnectForRedelivery is
// true: then the client withholds the acknowledgement and reconnects after
// reconnectForRedeliveryDelay, and the broker delivers the message again.
// A permanent failure (a denied or invalid command) is never redelivered:
// it would fail again forever and stall the source.

// Built-in acknowledgement labels.
const (
	ackTwinPersisted   = "twin-persisted"
	ackLiveResponse    = "live-response"
	ackSearchPersisted = "search-persisted"
)

func builtinAck(l string) bool {
	return l == ackTwinPersisted || l == ackLiveResponse || l == ackSearchPersisted
}

// defaultAckFilter requests acknowledgements for QoS 1 and 2 messages of
// an MQTT source without acknowledgementRequests.
const defaultAckFilter = "fn:filter(header:mqtt.qos,'ne','0')"

// TwinAcks collects the custom acknowledgements of the twin event of a
// twin command (the node's live router implements it).
type TwinAcks interface {
	ExpectAcks(ctx context.Context, thingID, correlationID string, labels []string) (wait func(ctx context.Context) []ditto.Envelope, cancel func(), err error)
}

// resolveConnectionLabel resolves {{ connection:id }} in an
// acknowledgement label.
func resolveConnectionLabel(connID, raw string) (string, error) {
	t, err := ParseTemplate(raw, Scope{"connection": phConnection})
	if err != nil {
		return "", invalid("The acknowledgement label '%s' may use {{connection:id}} only: %s", clip(raw), asDitto(err).Message)
	}
	v, ok := t.ResolveOne(func(prefix, name string) (string, bool) {
		return connID, prefix == "connection" && name == "id"
	})
	if !ok {
		return "", invalid("The acknowledgement label '%s' could not be resolved.", clip(raw))
	}
	return v, nil
}

func ackFilterTemplate(filter string) (*Template, error) {
	t, err := ParseTemplate("{{"+strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(filter), "{{"), "}}")+"}}", scopeAckFilter)
	if err != nil {
		return nil, invalid("The acknowledgementRequests filter '%s' is not valid: %s", clip(filter), asDitto(err).Message)
	}
	return t, nil
}

// validateSourceAcks checks a source's acknowledgementRequests and
// declaredAcks.
func (c *Connection) validateSourceAcks(where string, s Source) error {
	if a := s.AcknowledgementRequests; a != nil {
		for _, raw := range a.Includes {
			l, err := resolveConnectionLabel(c.ID, raw)
			if err != nil {
				return err
			}
			if !ditto.ValidAckLabel(l) {
				return invalid("The acknowledgement label '%s' of %s is not valid.", clip(raw), where)
			}
		}
		if a.Filter != "" {
			if _, err := ackFilterTemplate(a.Filter); err != nil {
				return err
			}
		}
	}
	for _, raw := range s.DeclaredAcks {
		l, err := resolveConnectionLabel(c.ID, raw)
		if err != nil {
			return err
		}
		if !ditto.ValidAckLabel(l) || builtinAck(l) {
			return invalid("The declared acknowledgement label '%s' of %s is not valid.", clip(raw), where)
		}
		if !strings.HasPrefix(l, c.ID+":") {
			return invalid("The declared acknowledgement label '%s' of %s must start with the connection ID and a colon ('{{connection:id}}:').", clip(raw), where)
		}
	}
	return nil
}

// validateTransport checks the URI-dependent options: the MQTT
// specificConfig and TLS settings, the TLS settings of http-push.
func (c *Connection) validateTransport(u *url.URL) error {
	switch {
	case c.isMQTT():
		_, err := parseMQTTSettings(c)
		return err
	case c.ConnectionType == TypeHTTPPush:
		_, err := tlsConfig(c, u)
		return err
	}
	return nil
}

// sourceAcks is the compiled acknowledgement handling of one source.
type sourceAcks struct {
	// enabled is false when the source never requests acknowledgements.
	enabled  bool
	includes []string  // resolved labels; empty: the command's own
	filter   *Template // nil: always
	// declared are the labels acknowledgements consumed from this source
	// may carry; declID is the live subscriber that declared them.
	declared []string
	declID   string
}

func compileSourceAcks(c *Connection, s Source) sourceAcks {
	var sa sourceAcks
	for _, raw := range s.DeclaredAcks {
		if l, err := resolveConnectionLabel(c.ID, raw); err == nil {
			sa.declared = append(sa.declared, l)
		}
	}
	a := s.AcknowledgementRequests
	if a == nil {
		if !c.isMQTT() || s.QoS == nil || *s.QoS == 0 {
			return sa
		}
		a = &AckRequests{Filter: defaultAckFilter}
	}
	sa.enabled = true
	for _, raw := range a.Includes {
		if l, err := resolveConnectionLabel(c.ID, raw); err == nil && !slices.Contains(sa.includes, l) {
			sa.includes = append(sa.includes, l)
		}
	}
	if a.Filter != "" {
		sa.filter, _ = ackFilterTemplate(a.Filter)
	}
	return sa
}

// requested returns the acknowledgement labels env requests as a command
// of the source (nil: none, the message is acknowledged whatever happens)
// and sets or clears its requested-acks header accordingly.
func (sa *sourceAcks) requested(env *ditto.Envelope, res Resolver) []string {
	if !sa.enabled {
		return nil
	}
	if sa.filter != nil {
		if _, ok := sa.filter.ResolveOne(res); !ok {
			delete(env.Headers, ditto.HeaderRequestedAcks)
			return nil
		}
	}
	t, err := ditto.ParseTopic(env.Topic)
	if err != nil || !isCommand(t) || env.Status != 0 {
		return nil // responses, acknowledgements and events request nothing
	}
	labels := sa.includes
	if len(labels) == 0 {
		if raw, ok := env.Headers[ditto.HeaderRequestedAcks]; ok {
			l, derr := ditto.ParseAckLabels(raw)
			if derr == nil {
				labels = l
			}
		} else {
			labels = defaultAcks(t, env.Headers)
		}
	}
	if len(labels) == 0 {
		return nil
	}
	env.Headers[ditto.HeaderRequestedAcks] = strings.Join(labels, ",")
	return labels
}

func isCommand(t ditto.Topic) bool {
	return t.Criterion == ditto.CriterionCommands || t.Criterion == ditto.CriterionMessages
}

// defaultAcks are a command's own acknowledgements: twin-persisted for a
// twin command, live-response for a live command or message that wants a
// response.
func defaultAcks(t ditto.Topic, h ditto.Headers) []string {
	switch {
	case t.Channel == ditto.ChannelTwin && t.Criterion == ditto.CriterionCommands:
		return []string{ackTwinPersisted}
	case isCommand(t) && h.Get(ditto.HeaderResponseRequired) != "false":
		return []string{ackLiveResponse}
	}
	return nil
}

// ackFailure is a requested acknowledgement that did not succeed.
type ackFailure struct {
	label  string
	status int
}

// ackOutcome is the result of a consumed message's requested
// acknowledgements.
type ackOutcome struct {
	requested bool
	failures  []ackFailure
	// cid is the correlation-id of the (first) command.
	cid string
}

func (o *ackOutcome) merge(p ackOutcome) {
	o.requested = o.requested || p.requested
	o.failures = append(o.failures, p.failures...)
	if o.cid == "" {
		o.cid = p.cid
	}
}

// redeliverable reports whether a failure may succeed on a second attempt:
// 408, 424 and server errors (Ditto's rule).
func redeliverable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusFailedDependency || status >= 500
}

func (o ackOutcome) shouldRedeliver() bool {
	for _, f := range o.failures {
		if redeliverable(f.status) {
			return true
		}
	}
	return false
}

func (o ackOutcome) String() string {
	parts := make([]string, len(o.failures))
	for i, f := range o.failures {
		parts[i] = fmt.Sprintf("%s: %d", f.label, f.status)
	}
	return strings.Join(parts, ", ")
}

// ackStatus is the status a requested built-in label gets from a
// command's response: 412 counts as success (the condition decided, as in
// Ditto), no response as a timeout.
func ackStatus(resp ditto.Envelope, has bool) int {
	if !has {
		return http.StatusRequestTimeout
	}
	st := resp.Status
	if st == 0 {
		st = http.StatusOK
	}
	if st == http.StatusPreconditionFailed {
		return http.StatusOK
	}
	return st
}

// expectCustom registers the custom labels of a twin command with the
// node's acknowledgement collector before the command runs; wait returns
// the failed ones. Without a collector, or for a command that is not a
// twin command of a thing, custom labels fail with 408 (nobody can issue
// them).
func (rn *runner) expectCustom(ctx context.Context, env ditto.Envelope, labels []string) (wait func(context.Context) []ackFailure, cancel func()) {
	var custom []string
	for _, l := range labels {
		if !builtinAck(l) {
			custom = append(custom, l)
		}
	}
	none := func(context.Context) []ackFailure { return nil }
	if len(custom) == 0 {
		return none, func() {}
	}
	timedOut := func(context.Context) []ackFailure {
		out := make([]ackFailure, len(custom))
		for i, l := range custom {
			out[i] = ackFailure{label: l, status: http.StatusRequestTimeout}
		}
		return out
	}
	t, err := ditto.ParseTopic(env.Topic)
	acks := rn.rt.deps.Acks
	if err != nil || acks == nil || t.Group != ditto.GroupThings || t.Channel != ditto.ChannelTwin || t.HasPlaceholder() {
		return timedOut, func() {}
	}
	w, c, err := acks.ExpectAcks(ctx, t.Entity(), env.Headers.Get(ditto.HeaderCorrelationID), custom)
	if err != nil {
		return func(context.Context) []ackFailure {
			st := asDitto(err).Status
			out := make([]ackFailure, len(custom))
			for i, l := range custom {
				out[i] = ackFailure{label: l, status: st}
			}
			return out
		}, func() {}
	}
	return func(ctx context.Context) []ackFailure {
		var out []ackFailure
		for i, a := range w(ctx) {
			if a.Status < 200 || a.Status > 299 {
				out = append(out, ackFailure{label: custom[i], status: a.Status})
			}
		}
		return out
	}, c
}

// builtinFailures are the failed built-in labels of a command's response.
func builtinFailures(labels []string, resp ditto.Envelope, has bool) []ackFailure {
	var out []ackFailure
	st := ackStatus(resp, has)
	for _, l := range labels {
		switch l {
		case ackTwinPersisted, ackSearchPersisted, ackLiveResponse:
			// The search index is updated synchronously with the
			// command on this node: it stands or falls with it.
			if st < 200 || st > 299 {
				out = append(out, ackFailure{label: l, status: st})
			}
		}
	}
	return out
}

// settle decides what happens to a consumed message after its commands:
// acknowledged (false) or redelivered (true). Failures are logged and
// counted.
func (rn *runner) settle(addr string, o ackOutcome) bool {
	if !o.requested {
		return false
	}
	cid := o.cid
	if len(o.failures) == 0 {
		rn.count(mInAcked, true)
		return false
	}
	rn.count(mInAcked, false)
	if o.shouldRedeliver() && rn.redelivery.enabled {
		rn.logEntry("source", "acknowledged", false, cid, addr, fmt.Sprintf(
			"The requested acknowledgements failed (%s); the message is not acknowledged and the client reconnects in %s so that the broker redelivers it.",
			o, rn.redelivery.delay))
		return true
	}
	rn.count(mInDropped, false)
	why := "the failure is permanent"
	if o.shouldRedeliver() {
		why = "reconnectForRedelivery is off"
	}
	rn.logEntry("source", "acknowledged", false, cid, addr, fmt.Sprintf(
		"The requested acknowledgements failed (%s); the message was acknowledged anyway and dropped (%s).", o, why))
	return false
}

// declareSourceAcks declares the labels a source's consumed
// acknowledgements may carry at the live router, so that they count for
// the commands that requested them.
func (rn *runner) declareSourceAcks(i int, s *sourceRT) func() {
	live := rn.rt.deps.Live
	if len(s.acks.declared) == 0 || live == nil {
		return nil
	}
	id := fmt.Sprintf("connection:%s:source:%d", rn.conn.ID, i)
	cancel, err := live.Subscribe(id, ditto.Auth{}, nil, s.acks.declared, func(ditto.Envelope) {})
	if err != nil {
		rn.logEntry("source", "declared", false, "", strings.Join(s.src.Addresses, ","), err.Error())
		return nil
	}
	s.acks.declID = id
	return cancel
}

// markAckOrigin lets an acknowledgement consumed from a source count when
// its label is one the source declared (Ditto rejects undeclared ones).
func (s *sourceRT) markAckOrigin(env *ditto.Envelope) {
	t, err := ditto.ParseTopic(env.Topic)
	if err != nil || t.Criterion != ditto.CriterionAcks || s.acks.declID == "" {
		return
	}
	if slices.Contains(s.acks.declared, t.Action) {
		env.Headers[ditto.HeaderOrigin] = s.acks.declID
	}
}

package connectivity

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// The embedded connection is the node's own MQTT broker expressed as a
// Ditto connection: one definition with the reserved ID "embedded", stored
// in the connectivity group like any other, of connectionType mqtt-5 with
// a URI of scheme "embedded" (host and port are informational: Ditto's
// URI model wants them, the connection uses each node's own listeners).
//
// Unlike an external connection it runs on every node that has the broker
// enabled, for the devices connected to that node (no rendezvous
// placement), and its /status, /metrics and /logs are those of the node
// asked. Its client (RuntimeDeps.Embedded, built by node over mqtt.Broker)
// differs from an external one in who is on the other side:
//
//   - A device publish consumed by a source carries the publishing device
//     (WithSender): the command runs with the device's subjects plus the
//     resolved authorizationContext of the source, and the reply target
//     delivers only to that device.
//   - A target publishes a twin event only to the devices subscribed to the
//     resolved address whose subjects may READ it (AudienceClient), each
//     getting its own authorized view, and only if the target's
//     authorizationContext may read it too.
//
// The default topic conventions (ditto/command, path-shaped values, event,
// message and live topics; see package mqtt) are built in and belong to
// this connection: closing it, or specificConfig "conventions": "false",
// switches them off (ConventionsOn).
const (
	// EmbeddedID is the reserved ID of the embedded connection.
	EmbeddedID = "embedded"
	// SchemeEmbedded is the URI scheme of the embedded connection.
	SchemeEmbedded = "embedded"
	// EmbeddedURI is the URI of the default definition.
	EmbeddedURI = "embedded://localhost:1883"
	// specConventions is the specificConfig key that switches the default
	// topic conventions off ("false").
	specConventions = "conventions"
)

// reservedPrefixes are the topics the default conventions own; sources and
// targets of the embedded connection use other topics.
var reservedPrefixes = []string{"ditto/", "things/", "$"}

// DefaultEmbedded is the definition the node creates when the cluster has
// no embedded connection yet: open, the default conventions on, no
// sources or targets of its own.
func DefaultEmbedded() map[string]any {
	return map[string]any{
		"id":               EmbeddedID,
		"name":             "Embedded MQTT broker",
		"connectionType":   TypeMQTT5,
		"connectionStatus": "open",
		"uri":              EmbeddedURI,
		"sources":          []any{},
		"targets":          []any{},
		"specificConfig":   map[string]any{specConventions: "true"},
		"tags":             []any{"embedded"},
	}
}

// IsEmbedded reports whether c is the embedded connection.
func (c *Connection) IsEmbedded() bool { return c.ID == EmbeddedID }

// ConventionsOn reports whether the default topic conventions of the
// embedded broker are on for the applied definition rec (nil: none
// applied yet, the defaults hold).
func ConventionsOn(rec *Record) bool {
	if rec == nil {
		return true
	}
	c, err := ParseConnection(rec.JSON, []string{TypeMQTT5})
	if err != nil {
		return true // stored definitions were validated; keep the default
	}
	return c.ConnectionStatus == "open" && c.SpecificConfig[specConventions] != "false"
}

// validateEmbedded checks what the embedded connection adds to the model:
// the reserved ID and scheme go together, and its sources and targets
// stay off the topics of the default conventions.
func (c *Connection) validateEmbedded(u *url.URL) error {
	isID, isScheme := c.ID == EmbeddedID, u.Scheme == SchemeEmbedded
	switch {
	case !isID && !isScheme:
		return nil
	case !isID:
		return invalid("The uri scheme '%s' is reserved for the connection '%s' (the embedded MQTT broker).", SchemeEmbedded, EmbeddedID)
	case !isScheme || c.ConnectionType != TypeMQTT5:
		return invalid("The connection ID '%s' is reserved for the embedded MQTT broker: its connectionType is %s and its uri %s.", EmbeddedID, TypeMQTT5, EmbeddedURI)
	}
	switch v, ok := c.SpecificConfig[specConventions]; {
	case ok && v != "true" && v != "false":
		return invalid("The specificConfig '%s' of the embedded connection is 'true' or 'false', not '%s'.", specConventions, clip(v))
	}
	for i, s := range c.Sources {
		for _, a := range s.Addresses {
			if reservedTopic(a) {
				return invalid("The source %d address '%s' of the embedded connection overlaps the topics of the default conventions (ditto/…, things/…, $…); use a topic of your own, e.g. 'devices/+/telemetry'.", i, clip(a))
			}
		}
	}
	for i, t := range c.Targets {
		if reservedTopic(t.Address) {
			return invalid("The target %d address '%s' of the embedded connection is a topic of the default conventions (ditto/…, things/…, $…).", i, clip(t.Address))
		}
		if t.IssuedAcknowledgementLabel != "" {
			return invalid("The targets of the embedded connection issue no acknowledgements (target %d).", i)
		}
		for _, tp := range t.Topics {
			if topic, _, _ := strings.Cut(tp, "?"); topic != topicTwinEvents {
				return invalid("The target %d of the embedded connection takes only %s; devices get messages and live signals on the topics of the default conventions.", i, topicTwinEvents)
			}
		}
	}
	return nil
}

// reservedTopic reports whether a topic (filter) starts in the topics of
// the default conventions; "#" alone does not: it gets the other topics.
func reservedTopic(t string) bool {
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(t, p) || t+"/" == p {
			return true
		}
	}
	return false
}

// EnsureEmbedded creates the default embedded connection unless the
// cluster has one; it is idempotent (create-only: a concurrent creation
// on another node wins and this one is a no-op).
func (s *Service) EnsureEmbedded(ctx context.Context) error {
	if _, ok := s.fsm.lookup(EmbeddedID); ok {
		return nil
	}
	_, _, err := s.Put(ctx, DefaultEmbedded(), true, false)
	var de *ditto.Error
	if errors.As(err, &de) && de.Code == ditto.ErrConnectionConflict.Code {
		return nil
	}
	return err
}

// Sender is the device that published a message the embedded broker
// delivers to a source.
type Sender struct {
	ClientID string
	Auth     ditto.Auth
}

type senderKey struct{}

type recipientsKey struct{}

// WithSender marks ctx as the delivery of a device's publish.
func WithSender(ctx context.Context, s Sender) context.Context {
	return context.WithValue(ctx, senderKey{}, s)
}

// SenderOf returns the device of a delivery.
func SenderOf(ctx context.Context) (Sender, bool) {
	s, ok := ctx.Value(senderKey{}).(Sender)
	return s, ok
}

// withRecipients restricts a publish of the embedded connection to the
// devices with these client IDs.
func withRecipients(ctx context.Context, ids []string) context.Context {
	return context.WithValue(ctx, recipientsKey{}, ids)
}

// RecipientsOf returns the client IDs a publish of the embedded connection
// is for: the authorized subscribers of a target, or the device whose
// publish a reply answers. ok is false when ctx names none; the embedded
// client then delivers to nobody.
func RecipientsOf(ctx context.Context) ([]string, bool) {
	if ids, ok := ctx.Value(recipientsKey{}).([]string); ok {
		return ids, true
	}
	if s, ok := SenderOf(ctx); ok {
		return []string{s.ClientID}, true
	}
	return nil, false
}

// Recipient is a device subscribed to a topic of the embedded broker.
type Recipient struct {
	ClientID string
	Auth     ditto.Auth
}

// AudienceClient is a client whose subscribers are authorized one by one
// (the embedded broker): a target's signal goes to each subscriber of the
// address that may read it, with that subscriber's view.
type AudienceClient interface {
	Client
	// Audience lists the subscribers of a topic with their current
	// subjects.
	Audience(address string) []Recipient
}

// senderAuth adds the subjects of the device that published a consumed
// message (embedded connection) to the subjects resolved from the
// source's authorizationContext.
func senderAuth(ctx context.Context, auth ditto.Auth) ditto.Auth {
	s, ok := SenderOf(ctx)
	if !ok {
		return auth
	}
	subs := slices.Clone(s.Auth.Subjects)
	for _, x := range auth.Subjects {
		if !slices.Contains(subs, x) {
			subs = append(subs, x)
		}
	}
	return ditto.Auth{Subjects: subs}
}

// twinAudience publishes a twin event through a target of the embedded
// connection: only if the target's authorizationContext may read it, and
// then to each device subscribed to the resolved address that may read it
// too, with that device's view (devices with the same view share one
// publish).
func (rn *runner) twinAudience(ctx context.Context, ac AudienceClient, tg *targetRT, sig ditto.Signal) {
	rn.count(mOutDispatch, true)
	base, ok := viewOf(tg, sig, tg.auth)
	if !ok {
		rn.count(mOutFiltered, true)
		return
	}
	res := rn.outboundResolver(base, sig.State, nil)
	addrs, ok, _ := tg.address.Resolve(res)
	if !ok || len(addrs) == 0 {
		rn.count(mOutDropped, true)
		rn.logEntry("target", "dropped", true, base.Headers.Get(ditto.HeaderCorrelationID), tg.t.Address,
			"The target address could not be resolved for "+base.Topic+"; the signal was dropped.")
		return
	}
	type group struct {
		env ditto.Envelope
		ids []string
	}
	for _, a := range addrs {
		if reservedTopic(a) {
			rn.count(mOutDropped, false)
			rn.logEntry("target", "dropped", false, base.Headers.Get(ditto.HeaderCorrelationID), a, "The target address resolved to a topic of the default conventions; the signal was dropped.")
			continue
		}
		var groups []*group
		byPayload := map[string]*group{}
		for _, r := range ac.Audience(a) {
			env, ok := viewOf(tg, sig, r.Auth)
			if !ok {
				rn.count(mOutFiltered, true)
				continue
			}
			key := string(ditto.EncodeEnvelope(env))
			g := byPayload[key]
			if g == nil {
				g = &group{env: env}
				byPayload[key] = g
				groups = append(groups, g)
			}
			g.ids = append(g.ids, r.ClientID)
		}
		for _, g := range groups {
			rn.publish(withRecipients(ctx, g.ids), tg.mappers, tg.headers, a, tg.qos, g.env, rn.outboundResolver(g.env, sig.State, nil), "target")
		}
	}
}

// viewOf is the first of the target's twin views that lets auth read sig.
func viewOf(tg *targetRT, sig ditto.Signal, auth ditto.Auth) (ditto.Envelope, bool) {
	for _, v := range tg.twin {
		if env, ok := v(sig, auth); ok {
			return env, true
		}
	}
	return ditto.Envelope{}, false
}

// factory is the client factory of c: the embedded client for the
// embedded connection (nil when this node runs no broker), else the one
// of its type.
func (r *Runtime) factory(c *Connection) ClientFactory {
	if c.IsEmbedded() {
		return r.deps.Embedded
	}
	return r.deps.Factories[c.ConnectionType]
}

// ensureEmbedded creates the default embedded connection when this node
// runs the broker and the cluster has none yet; a failure (no leader yet)
// is retried at the next reconcile, at most every embeddedRetry.
func (r *Runtime) ensureEmbedded(ctx context.Context) {
	if r.deps.Embedded == nil {
		return
	}
	if _, ok := r.deps.Service.fsm.lookup(EmbeddedID); ok {
		return
	}
	now := r.deps.Clock()
	if now.Before(r.embeddedNext) {
		return
	}
	r.embeddedNext = now.Add(embeddedRetry)
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CommandTimeout)
	defer cancel()
	if err := r.deps.Service.EnsureEmbedded(cctx); err != nil {
		r.log.Debug("connectivity: the embedded connection could not be created yet", "error", err)
	}
}

// embeddedRetry spaces the attempts to create the default embedded
// connection.
const embeddedRetry = 5 * time.Second

// embeddedOffStatus is the status of the embedded connection on a node
// that runs no broker.
func embeddedOffStatus(node string) map[string]any {
	return map[string]any{"liveStatus": "closed", "clientStatus": []any{map[string]any{"type": "client", "client": node, "status": "closed",
		"statusDetails": "This node runs no MQTT broker (all its MQTT listeners are off)."}}, "sourceStatus": []any{}, "targetStatus": []any{}}
}

var errNoBroker = errors.New("this node runs no MQTT broker")

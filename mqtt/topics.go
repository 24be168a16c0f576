package mqtt

import (
	"strings"
	"unicode/utf8"

	"github.com/dittonode/dittonode/ditto"
)

// Topic conventions of the default "embedded" connection. Devices publish
//
//	ditto/command                                     Ditto Protocol JSON (twin commands of things and policies)
//	things/{thingId}/attributes/{path…}               a plain JSON value (or text) -> modify of that attribute
//	things/{thingId}/features/{f}/properties/{path…}  -> modify of that property (also …/properties itself)
//	things/{thingId}/features/{f}/desiredProperties/{path…}
//
// and subscribe to
//
//	ditto/reply/{clientId}                            responses and errors (unless an MQTT 5 response topic or a reply-to header says otherwise)
//	things/{thingId}/events[/{path…}]                 twin events as Ditto Protocol JSON, the topic ending in the changed path
//	things/{thingId}[/features/{f}]/inbox|outbox/messages/{subject}  Ditto messages (Ditto Protocol JSON, live.go)
//	things/{thingId}/inbox/claim                      claim messages
//	things/{thingId}/live/commands/{action}[/{path…}] live commands
//	things/{thingId}/live/events/{action}[/{path…}]   live events
//
// Answers to live signals (responses, errors, acknowledgements) go to
// ditto/command like every Ditto Protocol message.
const (
	// CommandTopic takes Ditto Protocol JSON.
	CommandTopic = "ditto/command"
	// ReplyPrefix + client ID is the default reply topic.
	ReplyPrefix = "ditto/reply/"
	// ThingsPrefix starts the value and event topics.
	ThingsPrefix  = "things/"
	eventsSegment = "events"
)

// inboundKind is what a device publish means.
type inboundKind int

const (
	inboundPlain    inboundKind = iota // ordinary pub/sub between clients
	inboundCommand                     // Ditto Protocol JSON
	inboundValue                       // plain value on a path-shaped topic
	inboundReserved                    // a topic devices may not publish to
)

// inbound is a parsed device publish topic.
type inbound struct {
	kind    inboundKind
	thingID string
	path    ditto.Pointer
}

// parseInbound maps a publish topic to its meaning. Topics under things/
// that are not value topics, and the reply and event topics, are reserved.
func parseInbound(topic string) inbound {
	switch {
	case topic == CommandTopic:
		return inbound{kind: inboundCommand}
	case strings.HasPrefix(topic, "ditto/"), strings.HasPrefix(topic, "$"):
		return inbound{kind: inboundReserved}
	case !strings.HasPrefix(topic, ThingsPrefix):
		return inbound{kind: inboundPlain}
	}
	rest := topic[len(ThingsPrefix):]
	id, rest, ok := strings.Cut(rest, "/")
	if !ok || id == "" || rest == "" {
		return inbound{kind: inboundReserved}
	}
	if _, err := ditto.ParseThingID(id); err != nil {
		return inbound{kind: inboundReserved}
	}
	segs := strings.Split(rest, "/")
	for _, s := range segs {
		if s == "" {
			return inbound{kind: inboundReserved}
		}
	}
	switch {
	case segs[0] == "attributes" && len(segs) >= 2:
	case segs[0] == "features" && len(segs) >= 3 && (segs[2] == "properties" || segs[2] == "desiredProperties"):
	default:
		return inbound{kind: inboundReserved}
	}
	p, err := ditto.ParsePointer("/" + rest)
	if err != nil {
		return inbound{kind: inboundReserved}
	}
	return inbound{kind: inboundValue, thingID: id, path: p}
}

// eventTopic is the topic a twin event of thing id at the (escaped JSON
// pointer) path goes out on: things/{id}/events plus the path's segments.
// It stops before a segment that cannot be part of an MQTT topic name
// (empty, or holding a wildcard or NUL). ok is false when the thing ID
// itself cannot be part of a topic.
func eventTopic(id, path string) (string, bool) {
	if !topicSafe(id) || strings.Contains(id, "/") {
		return "", false
	}
	var b strings.Builder
	b.Grow(len(ThingsPrefix) + len(id) + len(eventsSegment) + len(path) + 1)
	b.WriteString(ThingsPrefix)
	b.WriteString(id)
	b.WriteByte('/')
	b.WriteString(eventsSegment)
	path = strings.TrimPrefix(path, "/")
	if path == "" {
		return b.String(), true
	}
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" || !topicSafe(seg) {
			break
		}
		b.WriteByte('/')
		b.WriteString(seg)
	}
	return b.String(), true
}

func topicSafe(s string) bool {
	return s != "" && !strings.ContainsAny(s, "+#\x00")
}

// isEventTopic reports whether topic is an event topic (things/{id}/events…).
func isEventTopic(topic string) bool {
	if !strings.HasPrefix(topic, ThingsPrefix) {
		return false
	}
	_, rest, ok := strings.Cut(topic[len(ThingsPrefix):], "/")
	return ok && (rest == eventsSegment || strings.HasPrefix(rest, eventsSegment+"/"))
}

// plainValue decodes a plain-value payload: JSON if it parses, else the
// text as a JSON string.
func plainValue(payload []byte) (any, bool) {
	if len(payload) == 0 {
		return nil, false
	}
	if v, err := ditto.DecodeJSON(payload); err == nil {
		return v, true
	}
	if !utf8.Valid(payload) {
		return nil, false
	}
	return string(payload), true
}

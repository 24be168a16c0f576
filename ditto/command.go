package ditto

import (
	"strconv"
	"strings"
	"time"
)

// Action is what a command does to its resource.
type Action string

// The actions of things and policies commands.
const (
	ActionCreate   Action = "create"
	ActionRetrieve Action = "retrieve"
	ActionModify   Action = "modify"
	ActionMerge    Action = "merge"
	ActionDelete   Action = "delete"
)

// Channel of a things signal.
const (
	ChannelTwin = "twin"
	ChannelLive = "live"
)

// Auth is the authenticated requester: its authorization subjects in order.
// The first subject is the default one (default policy, request:subjectId,
// ditto-originator, whoami).
type Auth struct {
	Subjects []string
}

// Default returns the default (first) subject, or "".
func (a Auth) Default() string {
	if len(a.Subjects) == 0 {
		return ""
	}
	return a.Subjects[0]
}

// Headers are Ditto headers with lower-case names. HTTP request headers and
// their query-parameter equivalents, Ditto Protocol headers and MQTT user
// properties all arrive here.
type Headers map[string]string

// Get returns the header with the given (case-insensitive) name.
func (h Headers) Get(name string) string { return h[strings.ToLower(name)] }

// Set sets a header; the name is lower-cased.
func (h Headers) Set(name, v string) { h[strings.ToLower(name)] = v }

// Clone returns a copy of h.
func (h Headers) Clone() Headers {
	c := make(Headers, len(h))
	for k, v := range h {
		c[k] = v
	}
	return c
}

// Header names dittonode interprets.
const (
	HeaderCorrelationID      = "correlation-id"
	HeaderIfMatch            = "if-match"
	HeaderIfNoneMatch        = "if-none-match"
	HeaderIfEqual            = "if-equal"
	HeaderCondition          = "condition"
	HeaderResponseRequired   = "response-required"
	HeaderTimeout            = "timeout"
	HeaderAllowPolicyLockout = "allow-policy-lockout"
	HeaderChannel            = "channel"
	HeaderRequestedAcks      = "requested-acks"
	HeaderContentType        = "content-type"
	HeaderOriginator         = "ditto-originator"
	HeaderConsistency        = "consistency"
	HeaderReplyTo            = "reply-to"

	// Thing metadata (ditto-spec section 11): put-metadata and
	// delete-metadata on a modify, get-metadata on a retrieve, whose
	// answer is the ditto-metadata response header.
	HeaderPutMetadata    = "put-metadata"
	HeaderGetMetadata    = "get-metadata"
	HeaderDeleteMetadata = "delete-metadata"
	HeaderDittoMetadata  = "ditto-metadata"

	// HeaderPolicyView "resolved" asks for a policy with its imported
	// entries merged in; "original" (the default) for the policy as stored.
	HeaderPolicyView = "policy-view"

	// HeaderAtHistoricalRevision and HeaderAtHistoricalTimestamp ask for a
	// thing as it was at a revision or an instant.
	HeaderAtHistoricalRevision  = "at-historical-revision"
	HeaderAtHistoricalTimestamp = "at-historical-timestamp"

	// HeaderOrigin is internal: the ID of the WebSocket session (live
	// subscriber) that sent a command or signal. Events carry it so that a
	// session never receives its own; it is never accepted from clients and
	// never leaves the node.
	HeaderOrigin = "ditto-origin"
)

// Command is one things or policies command, whatever carried it (HTTP,
// WebSocket, MQTT, a connection). Path addresses the resource inside the
// entity (empty = the whole entity), exactly like HTTP sub-resource URLs and
// Ditto Protocol paths.
type Command struct {
	Action Action
	// Entity is the thing or policy ID as given; services validate it.
	Entity string
	Path   Pointer
	// Value is the payload of create, modify and merge (a decoded JSON value).
	Value any
	// Fields is the field selector of a retrieve ("" = all).
	Fields  string
	Headers Headers
	Auth    Auth
	// Timeout bounds the whole command; zero means the default (60 s).
	Timeout time.Duration
}

// Result is a successful command's outcome.
type Result struct {
	// Status is the Ditto status: 200 retrieve, 201 created, 204 modified or
	// deleted.
	Status int
	// Value is the response value (the retrieved or created resource); nil
	// when there is none.
	Value any
	// Raw, when non-nil, is Value already encoded as JSON; readers that can
	// answer from stored bytes set it instead of Value.
	Raw []byte
	// ETag is the entity tag of the addressed resource after the command,
	// quoted as Ditto sends it ("\"rev:3\"" or "\"hash:…\""); "" for none.
	ETag string
	// Revision is the entity's revision after the command.
	Revision int64
	// Entity is the entity ID the command addressed (for POST-created things
	// the generated ID).
	Entity string
	// Metadata is the answer to a get-metadata header: a JSON object, sent
	// as the ditto-metadata response header; nil for none.
	Metadata []byte
}

// Permissions of policy statements.
const (
	PermRead    = "READ"
	PermWrite   = "WRITE"
	PermExecute = "EXECUTE"
)

// Resource types of policy resources.
const (
	ResourceThing   = "thing"
	ResourcePolicy  = "policy"
	ResourceMessage = "message"
)

// Enforcer answers authorization questions for one policy. Implemented by
// services/policies; consumers (things, search, gateway, mqtt) use this
// interface.
type Enforcer interface {
	// Unrestricted reports whether subjects have every perm at resource
	// (type, path) and no revoke of them anywhere below it.
	Unrestricted(resType string, path Pointer, subjects []string, perms ...string) bool
	// Partial reports whether subjects have every perm at resource or at any
	// resource below it.
	Partial(resType string, path Pointer, subjects []string, perms ...string) bool
	// View returns the part of v (located at resource (type, path)) the
	// subjects may READ, and false when nothing of it is readable. v is not
	// modified.
	View(resType string, path Pointer, v any, subjects []string) (any, bool)
}

// Signal is an applied change or other signal travelling on the node-local
// bus: a Ditto Protocol envelope plus what subscribers need to authorize and
// enrich it without another lookup.
type Signal struct {
	Envelope Envelope
	// EntityID is the thing or policy ID.
	EntityID string
	// PolicyID is the policy governing the thing after the change.
	PolicyID string
	// Revision of the entity after the change.
	Revision int64
	// State is the entity's full JSON after the change (nil once deleted);
	// a thing's includes its _metadata when it has any.
	// It is immutable: subscribers must not modify it.
	State []byte
	// Index is the Raft log index that produced the change (0 for signals
	// that did not come from a state machine).
	Index uint64
}

// TimeFormat is how dittonode writes timestamps (_created, _modified, event
// timestamps): ISO-8601 in UTC with milliseconds, so that the strings sort
// in time order.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// FormatTime formats t in TimeFormat (converted to UTC).
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// Millis is a time in Unix milliseconds, the precision of TimeFormat: how
// state machines keep the times the leader stamps into commands (8 bytes
// per timestamp instead of a time.Time's 24 or a formatted string's 40).
type Millis int64

// MillisOf returns t in Unix milliseconds.
func MillisOf(t time.Time) Millis { return Millis(t.UnixMilli()) }

// ParseMillis parses a timestamp written with FormatTime (exactly
// TimeFormat: UTC, three fractional digits); the result does not depend on
// the local time zone or clock.
func ParseMillis(s string) (Millis, error) {
	t, err := time.Parse(TimeFormat, s)
	if err != nil {
		return 0, err
	}
	return MillisOf(t), nil
}

// Time returns m as a UTC time.
func (m Millis) Time() time.Time { return time.UnixMilli(int64(m)).UTC() }

// String formats m in TimeFormat, as FormatTime does.
func (m Millis) String() string { return FormatTime(m.Time()) }

// RestoredTopic is the topic of the internal signal a things state machine
// publishes after it replaced its whole state from a snapshot: local
// projections (the search index) must rebuild from the applied state. It
// never leaves the node.
const RestoredTopic = "_/_/things/twin/restored"

// AtCurrentRevision reports whether the at-historical-revision and
// at-historical-timestamp headers of h, when given, ask for an entity's
// current state: revision rev, last modified at modified. A node keeps
// no earlier revisions, so for any other request it returns false, with
// "revision" or "timestamp" and the value asked for, for the caller's
// history.notfound error.
func AtCurrentRevision(h Headers, rev int64, modified Millis) (what, value string, ok bool) {
	if v := h.Get(HeaderAtHistoricalRevision); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err != nil || n != rev {
			return "revision", v, false
		}
	}
	if v := h.Get(HeaderAtHistoricalTimestamp); v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err != nil || t.Before(modified.Time()) {
			return "timestamp", v, false
		}
	}
	return "", "", true
}

package ditto

import (
	"slices"
	"strings"
)

// Groups of Ditto Protocol topics.
const (
	GroupThings      = "things"
	GroupPolicies    = "policies"
	GroupConnections = "connections"
)

// Criteria of Ditto Protocol topics.
const (
	CriterionCommands      = "commands"
	CriterionEvents        = "events"
	CriterionSearch        = "search"
	CriterionMessages      = "messages"
	CriterionErrors        = "errors"
	CriterionAcks          = "acks"
	CriterionAnnouncements = "announcements"
	CriterionStreaming     = "streaming"
)

// TopicPlaceholder stands for "any" namespace or name in a topic
// ("_/_/things/twin/commands/retrieve").
const TopicPlaceholder = "_"

// Topic is a parsed Ditto Protocol topic,
// {namespace}/{name}/{group}/{channel}/{criterion}/{action|subject}.
type Topic struct {
	// Namespace and Name are the entity ID's parts, or TopicPlaceholder.
	Namespace string
	Name      string
	// Group is things, policies or connections.
	Group string
	// Channel is twin or live for things, "" for policies and connections.
	Channel   string
	Criterion string
	// Action is the action of commands, events, search, streaming and
	// announcements, the subject of messages (which may contain '/'), the
	// label of acks ("" for aggregated acks) and "" for errors.
	Action string
}

var (
	thingCommandActions  = []string{"create", "retrieve", "modify", "merge", "delete", "migrate"}
	thingEventActions    = []string{"created", "modified", "merged", "deleted", "migrated"}
	policyCommandActions = []string{"create", "retrieve", "modify", "delete"}
	policyEventActions   = []string{"created", "modified", "deleted"}
	searchActions        = []string{"subscribe", "request", "cancel", "created", "next", "complete", "failed"}
	streamingActions     = []string{"subscribeForPersistedEvents", "request", "cancel", "created", "next", "complete", "failed"}
)

// ParseTopic parses and validates a Ditto Protocol topic. Failures are
// protocoladapter:unknown.topicpath (400), except for a topic of things or
// policies that is valid but for its namespace or name: then the error is
// things:id.invalid or policies:id.invalid and the returned Topic keeps
// everything but the ID, for the error's topic.
func ParseTopic(s string) (Topic, error) {
	bad := func() (Topic, error) {
		return Topic{}, ErrTopicInvalid.New("The topic path '%s' is not supported.", truncate(s, 300))
	}
	parts := strings.Split(s, "/")
	if len(parts) < 4 {
		return bad()
	}
	t := Topic{Namespace: parts[0], Name: parts[1], Group: parts[2]}
	badID := (t.Namespace != TopicPlaceholder && !ValidNamespace(t.Namespace)) || !validName(t.Name)
	rest := parts[3:]
	switch t.Group {
	case GroupThings:
		if rest[0] != ChannelTwin && rest[0] != ChannelLive {
			return bad()
		}
		t.Channel, rest = rest[0], rest[1:]
	case GroupPolicies, GroupConnections:
	default:
		return bad()
	}
	if len(rest) == 0 {
		return bad()
	}
	t.Criterion, rest = rest[0], rest[1:]
	if !t.validAction(rest) {
		return bad()
	}
	if badID {
		// A topic that is right but for its entity: the ID's error, as
		// Ditto reports it, with the topic's group and channel so the
		// error can be answered on them.
		id := t.Namespace + ":" + t.Name
		t.Namespace, t.Name = "", ""
		switch t.Group {
		case GroupThings:
			return t, ErrThingIDInvalid.New("Thing ID '%s' is not valid!", truncate(id, 300))
		case GroupPolicies:
			return t, ErrPolicyIDInvalid.New("Policy ID '%s' is not valid!", truncate(id, 300))
		}
		return Topic{}, ErrTopicInvalid.New("The topic path '%s' is not supported.", truncate(s, 300))
	}
	return t, nil
}

// validAction checks the segments after the criterion and sets t.Action.
func (t *Topic) validAction(rest []string) bool {
	one := func(allowed []string) bool {
		if len(rest) != 1 || !slices.Contains(allowed, rest[0]) {
			return false
		}
		t.Action = rest[0]
		return true
	}
	things, policies := t.Group == GroupThings, t.Group == GroupPolicies
	twin := t.Channel == ChannelTwin
	switch t.Criterion {
	case CriterionCommands:
		return (things && one(thingCommandActions)) || (policies && one(policyCommandActions))
	case CriterionEvents:
		return (things && one(thingEventActions)) || (policies && one(policyEventActions))
	case CriterionSearch:
		return things && twin && one(searchActions)
	case CriterionStreaming:
		return ((things && twin) || policies) && one(streamingActions)
	case CriterionMessages:
		if !things || t.Channel != ChannelLive || len(rest) == 0 {
			return false
		}
		subject := strings.Join(rest, "/")
		if subject == "" || strings.ContainsFunc(subject, func(r rune) bool { return r < 0x20 || r == 0x7F }) {
			return false
		}
		t.Action = subject
		return true
	case CriterionErrors:
		return (things || policies) && len(rest) == 0
	case CriterionAcks:
		if !things || len(rest) > 1 {
			return false
		}
		if len(rest) == 1 {
			if !ValidAckLabel(rest[0]) {
				return false
			}
			t.Action = rest[0]
		}
		return true
	case CriterionAnnouncements:
		if things || len(rest) != 1 || !ValidKey(rest[0]) {
			return false
		}
		t.Action = rest[0]
		return true
	}
	return false
}

// String renders the topic; it is the inverse of ParseTopic.
func (t Topic) String() string {
	var b strings.Builder
	b.WriteString(t.Namespace)
	b.WriteByte('/')
	b.WriteString(t.Name)
	b.WriteByte('/')
	b.WriteString(t.Group)
	if t.Channel != "" {
		b.WriteByte('/')
		b.WriteString(t.Channel)
	}
	b.WriteByte('/')
	b.WriteString(t.Criterion)
	if t.Action != "" {
		b.WriteByte('/')
		b.WriteString(t.Action)
	}
	return b.String()
}

// Entity returns "namespace:name" (placeholders included as they are).
func (t Topic) Entity() string { return t.Namespace + ":" + t.Name }

// HasPlaceholder reports whether the namespace or the name is "_".
func (t Topic) HasPlaceholder() bool {
	return t.Namespace == TopicPlaceholder || t.Name == TopicPlaceholder
}

package live

import (
	"net/http"
	"strings"

	"github.com/dittonode/dittonode/ditto"
)

// signal is a classified live signal with the enforcer of its thing.
type signal struct {
	kind    kindSet // kMessages, kCommands or kEvents
	topic   ditto.Topic
	thingID string
	path    ditto.Pointer
	// resType is the policy resource type the signal addresses: message for
	// messages, thing for live commands and events.
	resType string
	// resName is the Ditto resource name of commands and events (Attribute…).
	resName string
	claim   bool
	enf     ditto.Enforcer // nil when the thing's policy is missing: nobody may
}

// classify parses a live signal: a things/live topic with criterion
// messages, commands or events, a path that fits it, and an existing thing.
func (r *Router) classify(env ditto.Envelope) (*signal, error) {
	t, err := ditto.ParseTopic(env.Topic)
	if err != nil {
		return nil, err
	}
	if t.Group != ditto.GroupThings || t.Channel != ditto.ChannelLive || t.HasPlaceholder() {
		return nil, ditto.ErrTopicInvalid.New("The topic '%s' is not a live signal of a thing.", env.Topic)
	}
	path, err := ditto.ParsePointer(env.Path)
	if err != nil {
		return nil, err
	}
	sig := &signal{topic: t, path: path, thingID: t.Entity()}
	if _, err := ditto.ParseThingID(sig.thingID); err != nil {
		return nil, err
	}
	switch t.Criterion {
	case ditto.CriterionMessages:
		sig.kind, sig.resType = kMessages, ditto.ResourceMessage
		if err := sig.checkMessagePath(); err != nil {
			return nil, err
		}
	case ditto.CriterionCommands, ditto.CriterionEvents:
		sig.kind, sig.resType = kCommands, ditto.ResourceThing
		if t.Criterion == ditto.CriterionEvents {
			sig.kind = kEvents
		}
		if sig.resName, err = ditto.ThingsResourceName(path); err != nil {
			return nil, err
		}
		if t.Action == string(ditto.ActionCreate) {
			// Ditto's code with the status of a live create: 405, not the
			// 400 of a twin create that references a missing policy.
			e := ditto.ErrThingNotCreatable.New("The Thing with ID '%s' cannot be created via the live channel.", sig.thingID)
			e.Status = http.StatusMethodNotAllowed
			e.Description = "Create the Thing on the twin channel; live commands address things that exist."
			return nil, e
		}
	default:
		return nil, ditto.ErrTopicInvalid.New("The topic '%s' is not a message, live command or live event.", env.Topic)
	}
	if r.things == nil {
		return nil, ditto.ErrThingNotFound.New("The Thing with ID '%s' could not be found or requester had insufficient permissions to access it.", sig.thingID)
	}
	policyID, ok := r.things.ThingPolicy(sig.thingID)
	if !ok {
		return nil, ditto.ErrThingNotFound.New("The Thing with ID '%s' could not be found or requester had insufficient permissions to access it.", sig.thingID)
	}
	if r.enf != nil {
		sig.enf, _ = r.enf.EnforcerFor(policyID, t.Namespace)
	}
	return sig, nil
}

// checkMessagePath checks [/features/<fid>]/inbox|outbox/messages/<subject>
// with the topic's subject, or the claim path /inbox/claim (also accepted
// as /inbox/messages/claim).
func (s *signal) checkMessagePath() error {
	p := s.path
	if s.topic.Action == "claim" && (p.Equal(ditto.Pointer{"inbox", "claim"}) || p.Equal(ditto.Pointer{"inbox", "messages", "claim"})) {
		s.claim = true
		return nil
	}
	if len(p) >= 2 && p[0] == "features" {
		if !ditto.ValidFeatureID(p[1]) {
			return ditto.ErrJSONKeyInvalid.New("The feature ID <%s> is invalid.", p[1])
		}
		p = p[2:]
	}
	if len(p) < 3 || (p[0] != "inbox" && p[0] != "outbox") || p[1] != "messages" || strings.Join(p[2:], "/") != s.topic.Action {
		return ditto.ErrPathUnknown.New("The path '%s' is not a message path for the subject '%s'.", s.path.String(), s.topic.Action)
	}
	return nil
}

func (s *signal) unrestricted(subjects []string, perm string) bool {
	return s.enf != nil && s.enf.Unrestricted(s.resType, s.path, subjects, perm)
}

func (s *signal) partial(subjects []string, perm string) bool {
	return s.enf != nil && s.enf.Partial(s.resType, s.path, subjects, perm)
}

// authorizeSend checks that auth may send the signal (ditto-spec 2.2).
func (s *signal) authorizeSend(env ditto.Envelope, auth ditto.Auth) error {
	subj := auth.Subjects
	switch s.kind {
	case kMessages:
		if s.claim || s.unrestricted(subj, ditto.PermWrite) {
			return nil
		}
		return ditto.ErrMessageSendDenied.New("You are not allowed to send messages with subject '%s' on the Thing with ID '%s'.", s.topic.Action, s.thingID)
	case kEvents:
		if s.unrestricted(subj, ditto.PermWrite) {
			return nil
		}
		return ditto.ErrEventNotAllowed.New("You are not allowed to send the live event '%s' on the path '%s' of the Thing with ID '%s'.", s.topic.Action, s.path.String(), s.thingID)
	}
	switch ditto.Action(s.topic.Action) {
	case ditto.ActionRetrieve:
		if s.partial(subj, ditto.PermRead) {
			return nil
		}
		return s.notFound()
	case ditto.ActionMerge:
		if s.unrestricted(subj, ditto.PermWrite) || (s.partial(subj, ditto.PermWrite) && s.leavesWritable(env, subj)) {
			return nil
		}
	default:
		if s.unrestricted(subj, ditto.PermWrite) {
			return nil
		}
	}
	return s.notModifiable()
}

// leavesWritable checks unrestricted WRITE on every leaf of a merge patch.
func (s *signal) leavesWritable(env ditto.Envelope, subjects []string) bool {
	v, err := ditto.DecodeJSON(env.Value)
	if err != nil {
		return false
	}
	var walk func(p ditto.Pointer, v any) bool
	walk = func(p ditto.Pointer, v any) bool {
		m, ok := v.(map[string]any)
		if !ok || len(m) == 0 {
			return s.enf.Unrestricted(ditto.ResourceThing, p, subjects, ditto.PermWrite)
		}
		for k, c := range m {
			if !walk(p.Append(k), c) {
				return false
			}
		}
		return true
	}
	return walk(s.path, v)
}

// receivable returns the signal as the subscriber with auth gets it, and
// whether it gets it at all: messages need unrestricted READ on the message
// resource, live commands and events partial READ on the thing resource;
// partial readers get live events as the JSON view.
func (s *signal) receivable(env ditto.Envelope, auth ditto.Auth) (ditto.Envelope, bool) {
	subj := auth.Subjects
	switch s.kind {
	case kMessages:
		return env, s.unrestricted(subj, ditto.PermRead)
	case kCommands:
		return env, s.partial(subj, ditto.PermRead)
	}
	if s.unrestricted(subj, ditto.PermRead) {
		return env, true
	}
	if !s.partial(subj, ditto.PermRead) {
		return env, false
	}
	if len(env.Value) == 0 {
		return env, true
	}
	v, err := ditto.DecodeJSON(env.Value)
	if err != nil {
		return env, false
	}
	view, ok := s.enf.View(ditto.ResourceThing, s.path, v, subj)
	if !ok {
		return env, false
	}
	env.Value = ditto.EncodeJSON(view)
	return env, true
}

// resourceErrors maps thing resource names to their not-found and
// not-modifiable errors, as the twin commands report them.
var resourceErrors = map[string][2]ditto.ErrorDef{
	ditto.ResThing:                    {ditto.ErrThingNotFound, ditto.ErrThingNotModifiable},
	ditto.ResPolicyID:                 {ditto.ErrThingPolicyIDNotFound, ditto.ErrThingPolicyIDNotMod},
	ditto.ResThingDefinition:          {ditto.ErrThingDefinitionNotFound, ditto.ErrThingDefinitionNotMod},
	ditto.ResAttributes:               {ditto.ErrAttributesNotFound, ditto.ErrAttributesNotModifiable},
	ditto.ResAttribute:                {ditto.ErrAttributeNotFound, ditto.ErrAttributeNotModifiable},
	ditto.ResFeatures:                 {ditto.ErrFeaturesNotFound, ditto.ErrFeaturesNotModifiable},
	ditto.ResFeature:                  {ditto.ErrFeatureNotFound, ditto.ErrFeatureNotModifiable},
	ditto.ResFeatureDefinition:        {ditto.ErrFeatureDefNotFound, ditto.ErrFeatureDefNotModifiable},
	ditto.ResFeatureProperties:        {ditto.ErrFeaturePropsNotFound, ditto.ErrFeaturePropsNotMod},
	ditto.ResFeatureProperty:          {ditto.ErrFeaturePropNotFound, ditto.ErrFeaturePropNotMod},
	ditto.ResFeatureDesiredProperties: {ditto.ErrFeatureDesPropsNotFound, ditto.ErrFeatureDesPropsNotMod},
	ditto.ResFeatureDesiredProperty:   {ditto.ErrFeatureDesPropNotFound, ditto.ErrFeatureDesPropNotMod},
}

func (s *signal) notFound() *ditto.Error {
	return resourceErrors[s.resName][0].New("The resource '%s' of the Thing with ID '%s' could not be found or the requester had insufficient permissions to access it.", s.path.String(), s.thingID)
}

func (s *signal) notModifiable() *ditto.Error {
	if s.resName == ditto.ResThing && s.topic.Action == string(ditto.ActionDelete) {
		return ditto.ErrThingNotDeletable.New("The Thing with ID '%s' could not be deleted as the requester had insufficient permissions to delete it.", s.thingID)
	}
	return resourceErrors[s.resName][1].New("The resource '%s' of the Thing with ID '%s' could not be modified as the requester had insufficient permissions to modify it.", s.path.String(), s.thingID)
}

package gateway

import (
	"context"
	"encoding/json"

	"github.com/dittonode/dittonode/ditto"
)

// This file is the gateway's protocol API for other ingresses (the
// embedded MQTT broker, connections): they execute Ditto Protocol
// commands as given subjects through exactly the things/policies Handle
// path HTTP and WebSocket use, and get the authorized view of twin events
// for a subscriber. Enforcement, limits and error mapping stay here.

// ExecuteProtocol runs one Ditto Protocol message as auth and returns the
// response or error envelope to send back, and whether the sender wants
// one (response-required, timeout=0 and retrieves as on the WebSocket).
// origin identifies the sender (a broker client); its twin events carry it
// in ditto-origin, so an ingress can tell its own events. Only twin
// commands of things and policies are executed; every other topic gets a
// protocoladapter error.
func (s *Server) ExecuteProtocol(ctx context.Context, env ditto.Envelope, auth ditto.Auth, origin string) (ditto.Envelope, bool) {
	for k := range env.Headers {
		if internalHeader(k) {
			delete(env.Headers, k)
		}
	}
	if env.Headers == nil {
		env.Headers = ditto.Headers{}
	}
	if env.Headers.Get(ditto.HeaderCorrelationID) == "" {
		env.Headers[ditto.HeaderCorrelationID] = s.deps.NewUUID()
	}
	t, err := ditto.ParseTopic(env.Topic)
	if err != nil {
		return ditto.ErrorEnvelope(t, env.Headers, asDittoError(err, ditto.ErrTopicInvalid)), true
	}
	if t.Criterion != ditto.CriterionCommands || (t.Group != ditto.GroupPolicies && t.Channel != ditto.ChannelTwin) {
		return ditto.ErrorEnvelope(t, env.Headers, ditto.ErrTopicInvalid.New("The topic path '%s' is not supported here: send twin commands of things or policies.", env.Topic)), true
	}
	cmd, err := ditto.CommandFromEnvelope(env)
	if err != nil {
		return ditto.ErrorEnvelope(t, env.Headers, asDittoError(err, ditto.ErrJSONInvalid)), true
	}
	if t.Group == ditto.GroupThings && cmd.Entity == "" {
		return ditto.ErrorEnvelope(t, env.Headers, ditto.ErrTopicInvalid.New("Send commands for one thing: the topic must name it.")), true
	}
	cmd.Auth = auth
	if origin != "" {
		cmd.Headers[HeaderOrigin] = origin
	}
	timeout, respond, derr := responseOptions(cmd.Headers)
	if derr != nil {
		return ditto.ErrorEnvelope(t, env.Headers, derr), true
	}
	if cmd.Action == ditto.ActionRetrieve && !respond {
		return ditto.Envelope{}, false
	}
	cmd.Timeout = timeout
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := resThings
	if t.Group == ditto.GroupPolicies {
		res = resPolicies
	}
	result, err := s.execute(ctx, res, cmd)
	if err != nil {
		return ditto.ErrorEnvelope(t, cmd.Headers, s.toDittoError(res, cmd.Headers.Get(ditto.HeaderCorrelationID), err)), respond
	}
	if result.Value == nil && result.Raw != nil {
		result.Value = json.RawMessage(result.Raw)
	}
	return ditto.ResponseEnvelope(cmd, t, result), respond
}

// ExecuteThingCommand runs one things command as cmd.Auth (the caller has
// set action, entity, path, value and headers) and maps a failure to the
// Ditto error HTTP would answer. The result is the service's.
func (s *Server) ExecuteThingCommand(ctx context.Context, cmd ditto.Command) (ditto.Result, *ditto.Error) {
	if cmd.Headers == nil {
		cmd.Headers = ditto.Headers{}
	}
	for k := range cmd.Headers {
		if internalHeader(k) && k != HeaderOrigin {
			delete(cmd.Headers, k)
		}
	}
	if cmd.Headers.Get(ditto.HeaderCorrelationID) == "" {
		cmd.Headers[ditto.HeaderCorrelationID] = s.deps.NewUUID()
	}
	if cmd.Timeout == 0 {
		cmd.Timeout = MaxTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, cmd.Timeout)
	defer cancel()
	res, err := s.execute(ctx, resThings, cmd)
	if err != nil {
		return res, s.toDittoError(resThings, cmd.Headers.Get(ditto.HeaderCorrelationID), err)
	}
	return res, nil
}

// EventView authorizes a twin event of the bus for a subscriber with auth:
// the full event for unrestricted readers of the changed path, the
// policy's JSON view for partial readers, and ok=false otherwise (and for
// signals that are not twin events). full reports whether env is the event
// as stored, so an ingress can encode it once for every such reader.
func (s *Server) EventView(sig ditto.Signal, auth ditto.Auth) (env ditto.Envelope, full, ok bool) {
	t, err := ditto.ParseTopic(sig.Envelope.Topic)
	if err != nil || t.Group != ditto.GroupThings || t.Channel != ditto.ChannelTwin || t.Criterion != ditto.CriterionEvents {
		return env, false, false
	}
	ev, ok := s.viewTwinEvent(sig, t, auth, &streamSpec{}, false)
	if !ok {
		return env, false, false
	}
	return eventEnvelope(sig, ev), !ev.filtered, true
}

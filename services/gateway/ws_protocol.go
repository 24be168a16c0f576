package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/dittonode/dittonode/ditto"
)

// handleProtocol handles one Ditto Protocol message from the client. It
// returns false when the session ended.
func (ss *wsSession) handleProtocol(data []byte) bool {
	env, err := ditto.DecodeEnvelope(data)
	if err != nil {
		return ss.sendError(ditto.Topic{}, nil, asDittoError(err, ditto.ErrJSONInvalid))
	}
	// Internal headers are never accepted from clients.
	for k := range env.Headers {
		if internalHeader(k) {
			delete(env.Headers, k)
		}
	}
	t, err := ditto.ParseTopic(env.Topic)
	if err != nil {
		return ss.sendError(t, env.Headers, asDittoError(err, ditto.ErrTopicInvalid))
	}
	if env.Headers.Get(ditto.HeaderCorrelationID) == "" {
		env.Headers[ditto.HeaderCorrelationID] = ss.srv.deps.NewUUID()
	}
	switch {
	case t.Criterion == ditto.CriterionSearch:
		return ss.handleSearch(t, env)
	case t.Criterion == ditto.CriterionCommands && (t.Group == ditto.GroupPolicies || t.Channel == ditto.ChannelTwin):
		return ss.runAsync(func() { ss.twinCommand(t, env) })
	case t.Group == ditto.GroupThings && (t.Channel == ditto.ChannelLive || t.Criterion == ditto.CriterionAcks):
		return ss.handleLive(t, env)
	}
	return ss.sendError(t, env.Headers, ditto.ErrTopicInvalid.New("The topic path '%s' is not supported on the WebSocket.", env.Topic))
}

// runAsync runs fn in a session goroutine, at most MaxInFlight at once;
// the read loop waits for a slot (back-pressure).
func (ss *wsSession) runAsync(fn func()) bool {
	select {
	case ss.cmdSem <- struct{}{}:
	case <-ss.ctx.Done():
		return false
	}
	ss.goFn(func() {
		defer func() { <-ss.cmdSem }()
		fn()
	})
	return true
}

// twinCommand runs a things or policies command and sends its response or
// error with the command's correlation-id. The command carries the session
// ID (ditto-origin) into its event, so the session skips its own events.
func (ss *wsSession) twinCommand(t ditto.Topic, env ditto.Envelope) {
	cmd, err := ditto.CommandFromEnvelope(env)
	if err != nil {
		ss.sendError(t, env.Headers, asDittoError(err, ditto.ErrJSONInvalid))
		return
	}
	cmd.Auth = ss.currentAuth()
	cmd.Headers[HeaderOrigin] = ss.id
	timeout, respond, derr := responseOptions(cmd.Headers)
	if derr != nil {
		ss.sendError(t, env.Headers, derr)
		return
	}
	if cmd.Action == ditto.ActionRetrieve && !respond {
		return // Ditto drops queries nobody waits for
	}
	cmd.Timeout = timeout
	ctx, cancel := context.WithTimeout(ss.ctx, timeout)
	defer cancel()
	res := resThings
	if t.Group == ditto.GroupPolicies {
		res = resPolicies
	}
	if res == resThings && cmd.Entity == "" {
		ss.multiRetrieve(ctx, t, cmd)
		return
	}
	if res == resThings && cmd.Action != ditto.ActionRetrieve && ss.twinAcks(ctx, t, cmd, respond) {
		return
	}
	cid := cmd.Headers.Get(ditto.HeaderCorrelationID)
	result, err := ss.srv.execute(ctx, res, cmd)
	if !respond {
		return
	}
	if err != nil {
		ss.sendError(t, cmd.Headers, ss.srv.toDittoError(res, cid, err))
		return
	}
	if result.Value == nil && result.Raw != nil {
		result.Value = json.RawMessage(result.Raw)
	}
	ss.sendEnvelope(ditto.ResponseEnvelope(cmd, t, result))
}

// multiRetrieve answers _/_/things/twin/commands/retrieve with
// {"thingIds":[…]}: the readable things as an array.
func (ss *wsSession) multiRetrieve(ctx context.Context, t ditto.Topic, cmd ditto.Command) {
	cid := cmd.Headers.Get(ditto.HeaderCorrelationID)
	if ss.srv.deps.Things == nil {
		ss.sendError(t, cmd.Headers, ss.srv.toDittoError(resThings, cid, ErrUnavailable))
		return
	}
	m, _ := cmd.Value.(map[string]any)
	raw, _ := m["thingIds"].([]any)
	if len(raw) == 0 {
		ss.sendError(t, cmd.Headers, ditto.ErrThingIDsMissing.New("The required list of thing ids was missing."))
		return
	}
	ids := make([]string, 0, len(raw))
	for _, v := range raw {
		id, ok := v.(string)
		if !ok {
			ss.sendError(t, cmd.Headers, ditto.ErrThingIDInvalid.New("The Thing IDs of a multi-retrieve must be strings."))
			return
		}
		if _, err := ditto.ParseThingID(id); err != nil {
			ss.sendError(t, cmd.Headers, asDittoError(err, ditto.ErrThingIDInvalid))
			return
		}
		ids = append(ids, id)
	}
	items, err := ss.srv.deps.Things.RetrieveMany(ctx, ids, cmd)
	if err != nil {
		ss.sendError(t, cmd.Headers, ss.srv.toDittoError(resThings, cid, err))
		return
	}
	if items == nil {
		items = []any{}
	}
	ss.sendEnvelope(ditto.ResponseEnvelope(cmd, t, ditto.Result{Status: http.StatusOK, Value: items}))
}

// handleLive hands live signals to the live router: responses and acks go
// to Respond, messages, live commands and live events to Send (its answer,
// if any, back to the client).
func (ss *wsSession) handleLive(t ditto.Topic, env ditto.Envelope) bool {
	live := ss.srv.deps.Live
	if live == nil {
		return ss.sendError(t, env.Headers, ditto.ErrUnavailable.New("The live channel is not available on this node."))
	}
	env.Headers[HeaderOrigin] = ss.id
	auth := ss.currentAuth()
	if t.Criterion == ditto.CriterionAcks || env.Status != 0 {
		if err := live.Respond(env, auth); err != nil {
			return ss.sendError(t, env.Headers, ss.srv.toDittoError(resThings, env.Headers.Get(ditto.HeaderCorrelationID), err))
		}
		return true
	}
	return ss.runAsync(func() {
		timeout, _, derr := responseOptions(env.Headers)
		if derr != nil {
			ss.sendError(t, env.Headers, derr)
			return
		}
		ctx, cancel := context.WithTimeout(ss.ctx, timeout)
		defer cancel()
		resp, has, err := live.Send(ctx, env, auth)
		switch {
		case err != nil:
			ss.sendError(t, env.Headers, ss.srv.toDittoError(resThings, env.Headers.Get(ditto.HeaderCorrelationID), err))
		case has:
			resp.Headers = outboundHeaders(resp.Headers)
			ss.sendEnvelope(resp)
		}
	})
}

// handleSearch serves the search protocol: subscribe, request, cancel.
func (ss *wsSession) handleSearch(t ditto.Topic, env ditto.Envelope) bool {
	search := ss.srv.deps.SearchProtocol
	if search == nil {
		return ss.sendError(t, env.Headers, ditto.ErrUnavailable.New("The search is not available on this node."))
	}
	var v struct {
		Filter         string   `json:"filter"`
		Options        string   `json:"options"`
		Namespaces     []string `json:"namespaces"`
		SubscriptionID string   `json:"subscriptionId"`
		Demand         *int64   `json:"demand"`
	}
	if len(env.Value) > 0 {
		if err := json.Unmarshal(env.Value, &v); err != nil {
			return ss.sendError(t, env.Headers, ditto.ErrJSONInvalid.New("The value of the search message is invalid: %s", truncateText(err.Error(), 200)))
		}
	}
	cid := env.Headers.Get(ditto.HeaderCorrelationID)
	switch t.Action {
	case "subscribe":
		ss.mu.Lock()
		n := len(ss.searches)
		ss.mu.Unlock()
		if n >= maxSearches {
			return ss.sendError(t, env.Headers, ditto.ErrSearchProtocol.New("At most %d search subscriptions may be open on one WebSocket.", maxSearches))
		}
		sub, err := search.Subscribe(ss.ctx, SearchQuery{Filter: v.Filter, Options: v.Options, Namespaces: v.Namespaces, Fields: env.Fields, Auth: ss.currentAuth()})
		if err != nil {
			return ss.sendError(t, env.Headers, ss.srv.toDittoError(0, cid, err))
		}
		ss.mu.Lock()
		ss.searches[sub.ID()] = sub
		ss.searchCIDs[sub.ID()] = cid
		ss.mu.Unlock()
		ss.goFn(func() { ss.searchPump(sub) })
		return true
	case "request", "cancel":
		ss.mu.Lock()
		sub := ss.searches[v.SubscriptionID]
		if sub != nil {
			ss.searchCIDs[v.SubscriptionID] = cid
		}
		ss.mu.Unlock()
		if sub == nil {
			// As Ditto: failed, with the subscription not found.
			e := ditto.ErrSearchSubNotFound.New("No subscription with ID '%s' exists.", truncateText(v.SubscriptionID, 100))
			h := ditto.Headers{ditto.HeaderContentType: ditto.ContentTypeJSON}
			if cid != "" {
				h[ditto.HeaderCorrelationID] = cid
			}
			return ss.sendEnvelope(ditto.Envelope{Topic: searchTopicFailed, Headers: h, Path: "/",
				Value: ditto.EncodeJSON(map[string]any{"subscriptionId": v.SubscriptionID, "error": json.RawMessage(e.JSON())})})
		}
		if t.Action == "cancel" {
			sub.Cancel()
			return true
		}
		demand := 0
		if v.Demand != nil && *v.Demand > 0 {
			demand = int(min(*v.Demand, 1<<30))
		}
		_ = sub.Request(demand) // a protocol error arrives as failed through Next
		return true
	}
	return ss.sendError(t, env.Headers, ditto.ErrSearchProtocol.New("The search action '%s' cannot be sent by a client.", t.Action))
}

// searchTopicFailed is the topic of a failed search subscription.
const searchTopicFailed = "_/_/things/twin/search/failed"

// searchPump forwards a search subscription's envelopes, each with the
// correlation-id of the subscription's latest message, until it ends.
func (ss *wsSession) searchPump(sub SearchSubscription) {
	defer func() {
		ss.mu.Lock()
		delete(ss.searches, sub.ID())
		delete(ss.searchCIDs, sub.ID())
		ss.mu.Unlock()
	}()
	for {
		env, err := sub.Next(ss.ctx)
		if err != nil {
			if !errors.Is(err, io.EOF) && ss.ctx.Err() == nil {
				ss.srv.log.Debug("gateway: search subscription ended", logKeySession, ss.id, logKeyError, err)
			}
			return
		}
		if env.Headers == nil {
			env.Headers = ditto.Headers{}
		}
		ss.mu.Lock()
		cid := ss.searchCIDs[sub.ID()]
		ss.mu.Unlock()
		if cid != "" {
			env.Headers[ditto.HeaderCorrelationID] = cid
		}
		if !ss.sendEnvelope(env) {
			sub.Cancel()
			return
		}
	}
}

// refreshJWT re-authenticates the session with a new JWT (JWT-TOKEN); the
// session then ends when the new JWT expires. The token's default subject
// must be the session's; otherwise (or without a JWT issuer) the client
// gets an error and the session keeps its authentication and expiry.
func (ss *wsSession) refreshJWT(token string) bool {
	errTopic := ditto.Topic{}
	if strings.TrimSpace(token) == "" {
		return ss.sendError(errTopic, nil, ditto.ErrAuthFailed.New("The JWT-TOKEN frame carries no jwtToken."))
	}
	auth, expiry, err := ss.srv.authenticateToken(strings.TrimSpace(token))
	if err != nil {
		return ss.sendError(errTopic, nil, asDittoError(err, ditto.ErrJWTInvalid))
	}
	if auth.Default() != ss.currentAuth().Default() {
		return ss.sendError(errTopic, nil, ditto.ErrAuthFailed.New("The subject of the new JWT differs from the subject of the WebSocket session."))
	}
	ss.setAuth(auth, expiry)
	if err := ss.resubscribeLive(); err != nil {
		ss.failWith(err)
		return false
	}
	return true
}

package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Message limits and timeouts (Ditto's defaults).
const (
	// MaxMessageBytes bounds a message payload (413 messages:message.toolarge).
	MaxMessageBytes       = 250 * 1024
	messageTimeoutDefault = 10 * time.Second
	messageTimeoutMax     = 60 * time.Second
	claimTimeoutDefault   = 60 * time.Second
	claimTimeoutMax       = 600 * time.Second
	// writeSlack is added to the write deadline of a long claim wait.
	writeSlack = 15 * time.Second
	// twinFallbackTimeout bounds the twin retrieve of
	// live-channel-timeout-strategy=use-twin after the live wait used up
	// the request's timeout.
	twinFallbackTimeout = 10 * time.Second
	mediaOctetStream    = "application/octet-stream"
	headerTimeoutStrat  = "live-channel-timeout-strategy"
)

// messageRoute is a parsed message or claim path:
// /things/{id}[/features/{fid}]/inbox|outbox/messages/{subject…} or
// /things/{id}/inbox/claim.
type messageRoute struct {
	thingID   string
	featureID string
	box       string // inbox or outbox
	// subject is the decoded subject; its segments may contain '/'.
	subject []string
	claim   bool
}

// parseMessageRoute recognises the message and claim paths below /api/2
// (escaped), and the subject-less .../inbox|outbox/messages of message
// streams (SSE). ok is false for any other path; a recognised path with a
// bad segment is an error.
func parseMessageRoute(escaped string) (mr messageRoute, ok bool, derr *ditto.Error) {
	if !strings.Contains(escaped, "/inbox") && !strings.Contains(escaped, "/outbox") {
		// Every message path has an inbox or outbox segment; twin paths
		// (nearly every request) leave without splitting.
		return messageRoute{}, false, nil
	}
	segs := strings.Split(strings.TrimPrefix(escaped, "/"), "/")
	if len(segs) < 4 || segs[0] != "things" {
		return messageRoute{}, false, nil
	}
	rest := segs[2:]
	switch {
	case len(rest) == 2 && rest[0] == "inbox" && rest[1] == "claim":
		mr.claim, mr.box, mr.subject = true, "inbox", []string{"claim"}
	case len(rest) >= 2 && (rest[0] == "inbox" || rest[0] == "outbox") && rest[1] == "messages":
		mr.box, rest = rest[0], rest[2:]
	case len(rest) >= 4 && rest[0] == "features" && (rest[2] == "inbox" || rest[2] == "outbox") && rest[3] == "messages":
		fid, err := keySegment(rest[1])
		if err != nil {
			return messageRoute{}, true, err
		}
		if !ditto.ValidFeatureID(fid) {
			return messageRoute{}, true, ditto.ErrJSONKeyInvalid.New("The feature ID <%s> is invalid.", fid)
		}
		mr.featureID, mr.box, rest = fid, rest[2], rest[4:]
	default:
		return messageRoute{}, false, nil
	}
	id, derr := entityID(segs, ditto.ErrThingIDInvalid, "Thing")
	if derr != nil {
		return messageRoute{}, true, derr
	}
	mr.thingID = id
	if mr.claim {
		return mr, true, nil
	}
	for _, seg := range rest {
		if seg == "" {
			return messageRoute{}, true, subjectInvalid(strings.Join(rest, "/"))
		}
		s, err := valueSegment(seg)
		if err != nil {
			return messageRoute{}, true, err
		}
		// An encoded slash may sit inside a subject, but no part of the
		// subject may be empty: it becomes a path of the message.
		for _, part := range strings.Split(s, "/") {
			if part == "" {
				return messageRoute{}, true, subjectInvalid(s)
			}
		}
		mr.subject = append(mr.subject, s)
	}
	return mr, true, nil
}

// subjectInvalid is Ditto's error for a subject with an empty part.
func subjectInvalid(subject string) *ditto.Error {
	return ditto.ErrMessageSubjectBad.New("The subject '%s' is invalid!", truncateString(subject, 200))
}

// envelope builds the message's topic and path.
func (mr messageRoute) envelope() (ditto.Envelope, *ditto.Error) {
	tid, err := ditto.ParseThingID(mr.thingID)
	if err != nil {
		var de *ditto.Error
		if errors.As(err, &de) {
			return ditto.Envelope{}, de
		}
		return ditto.Envelope{}, ditto.ErrThingIDInvalid.New("The Thing ID '%s' is not valid.", mr.thingID)
	}
	subject := strings.Join(mr.subject, "/")
	t := ditto.Topic{Namespace: tid.Namespace, Name: tid.Name, Group: ditto.GroupThings, Channel: ditto.ChannelLive, Criterion: ditto.CriterionMessages, Action: subject}
	var p ditto.Pointer
	switch {
	case mr.claim:
		p = ditto.Pointer{"inbox", "claim"}
	case mr.featureID != "":
		p = append(ditto.Pointer{"features", mr.featureID, mr.box, "messages"}, mr.subject...)
	default:
		p = append(ditto.Pointer{mr.box, "messages"}, mr.subject...)
	}
	return ditto.Envelope{Topic: t.String(), Path: p.String()}, nil
}

// serveMessage sends a message (or a claim) through the live router and
// answers with the responder's status, payload and content-type, 202 when
// no response is required, or the aggregated acks when custom
// acknowledgements were requested.
func (s *Server) serveMessage(w http.ResponseWriter, r *http.Request, q url.Values, cid string, auth ditto.Auth, mr messageRoute) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r, mPost)
		return
	}
	if len(mr.subject) == 0 {
		writeDittoError(w, ditto.ErrResourceNotFound.New("The resource '%s' does not exist: a message needs a subject.", r.URL.EscapedPath()))
		return
	}
	if s.deps.Live == nil {
		s.writeError(w, 0, cid, ErrUnavailable)
		return
	}
	env, derr := mr.envelope()
	if derr != nil {
		writeDittoError(w, derr)
		return
	}
	h := commandHeaders(r.Header, q)
	h[ditto.HeaderCorrelationID] = cid
	delete(h, ditto.HeaderChannel)
	def, limit := messageTimeoutDefault, messageTimeoutMax
	if mr.claim {
		def, limit = claimTimeoutDefault, claimTimeoutMax
	}
	timeout, derr := messageTimeout(h, def, limit)
	if derr != nil {
		writeDittoError(w, derr)
		return
	}
	h[ditto.HeaderTimeout] = strconv.FormatInt(timeout.Milliseconds(), 10) + "ms"
	respond := h[ditto.HeaderResponseRequired] != "false"

	buf := getBuf()
	defer putBuf(buf)
	tooLarge, err := readBody(r.Body, r.ContentLength, MaxMessageBytes, buf)
	if err != nil {
		writeDittoError(w, ditto.ErrJSONInvalid.New("The request body could not be read completely."))
		return
	}
	if tooLarge {
		writeDittoError(w, ditto.ErrMessageTooLarge.New("The message payload is larger than the allowed %d bytes.", MaxMessageBytes))
		return
	}
	ct := r.Header.Get(contentTypeKey)
	if ct == "" {
		ct = mediaOctetStream
	}
	h[ditto.HeaderContentType] = ct
	if env.Value, derr = payloadValue(ct, buf.Bytes()); derr != nil {
		writeDittoError(w, derr)
		return
	}
	env.Headers = h

	if cond := h[ditto.HeaderCondition]; cond != "" && !mr.claim {
		// As in Ditto, a message with a condition goes out only when the
		// condition holds on the twin (412 otherwise), and the requester
		// must be able to read the fields it references.
		probe := ditto.Command{Action: ditto.ActionRetrieve, Entity: mr.thingID, Path: ditto.Pointer{}, Fields: "thingId", Auth: auth,
			Headers: ditto.Headers{ditto.HeaderCondition: cond, ditto.HeaderCorrelationID: cid}}
		pctx, cancel := context.WithTimeout(r.Context(), MaxTimeout)
		_, err := s.execute(pctx, resThings, probe)
		cancel()
		if err != nil {
			s.writeCommandError(w, resThings, probe, ditto.Result{}, err)
			return
		}
	}

	ctx := r.Context()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
		if timeout+writeSlack > s.cfg.WriteTimeout {
			// A claim may wait longer than the server's write timeout.
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(timeout + writeSlack))
		}
	}
	resp, ok, err := s.deps.Live.Send(ctx, env, auth)
	switch {
	case err != nil:
		s.writeError(w, resThings, cid, err)
	case !ok || !respond:
		w.WriteHeader(http.StatusAccepted)
	default:
		s.writeLiveResponse(w, resp, cid, true)
	}
}

// messageTimeout reads the timeout header of a message: default def, at
// most limit; "42" (seconds), "42s", "250ms" or "1m".
func messageTimeout(h ditto.Headers, def, limit time.Duration) (time.Duration, *ditto.Error) {
	v, ok := h[ditto.HeaderTimeout]
	if !ok {
		return def, nil
	}
	num, unit := v, time.Second
	switch {
	case strings.HasSuffix(v, "ms"):
		num, unit = v[:len(v)-2], time.Millisecond
	case strings.HasSuffix(v, "s"):
		num = v[:len(v)-1]
	case strings.HasSuffix(v, "m"):
		num, unit = v[:len(v)-1], time.Minute
	}
	n, err := strconv.ParseUint(num, 10, 32)
	if err != nil || num == "" || num[0] == '+' || time.Duration(n) > limit/unit {
		return 0, ditto.ErrTimeoutInvalid.New("The value '%s' of the header 'timeout' is not a valid timeout of at most %s.", truncateString(v, 50), limit)
	}
	return time.Duration(n) * unit, nil
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// isJSONMedia reports whether a media type carries JSON.
func isJSONMedia(mt string) bool {
	return mt == mediaJSON || strings.HasSuffix(mt, "+json")
}

// payloadValue turns a message body into the Ditto Protocol value: the JSON
// itself for JSON types, a string for text/*, base64 otherwise; nil for an
// empty body.
func payloadValue(ct string, body []byte) (json.RawMessage, *ditto.Error) {
	if len(body) == 0 {
		return nil, nil
	}
	mt := mediaType(ct)
	switch {
	case isJSONMedia(mt):
		if !json.Valid(body) {
			return nil, ditto.ErrJSONInvalid.New("The message payload is not valid JSON although its content-type is <%s>.", truncateString(ct, 100))
		}
		return append(json.RawMessage(nil), body...), nil
	case strings.HasPrefix(mt, "text/"):
		return ditto.EncodeJSON(string(body)), nil
	}
	return ditto.EncodeJSON(base64.StdEncoding.EncodeToString(body)), nil
}

// payloadBody is the inverse of payloadValue for a response.
func payloadBody(ct string, v json.RawMessage) []byte {
	mt := mediaType(ct)
	if isJSONMedia(mt) {
		return v
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return v // not a string: the responder sent JSON anyway
	}
	if strings.HasPrefix(mt, "text/") {
		return []byte(s)
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b
	}
	return []byte(s)
}

// writeLiveResponse writes a live answer: aggregated acks and errors as
// JSON with their status, a message response with its payload decoded by
// its content-type, a live command response as JSON with its ETag.
func (s *Server) writeLiveResponse(w http.ResponseWriter, resp ditto.Envelope, cid string, message bool) {
	status := resp.Status
	if status < 100 || status > 599 {
		status = http.StatusOK
	}
	t, _ := ditto.ParseTopic(resp.Topic)
	if t.Criterion == ditto.CriterionAcks || t.Criterion == ditto.CriterionErrors {
		writeJSON(w, status, resp.Value)
		return
	}
	hdr := w.Header()
	if etag := resp.Headers[ditto.HeaderETag]; etag != "" {
		hdr[etagKey] = []string{etag}
	}
	if len(resp.Value) == 0 || status == http.StatusNoContent || status == http.StatusNotModified {
		w.WriteHeader(status)
		return
	}
	ct := resp.Headers[ditto.HeaderContentType]
	if !message || ct == "" {
		writeJSON(w, status, resp.Value)
		return
	}
	body := payloadBody(ct, resp.Value)
	hdr[contentTypeKey] = []string{ct}
	hdr[contentTypeOpts] = hdrNoSniff
	hdr[contentLenKey] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, _ = w.Write(body) // the client went away; nothing left to tell it
}

// serveLiveCommand sends a things command with channel=live through the
// router and answers with the responder's live response (retrieve
// responses reduced to the requester's READ view by the router), 202 when
// no response is required, 408 on timeout, or, for a retrieve with
// live-channel-timeout-strategy=use-twin, the twin's answer.
func (s *Server) serveLiveCommand(w http.ResponseWriter, r *http.Request, rt route, cmd ditto.Command, timeout time.Duration, respond bool) {
	cid := cmd.Headers[ditto.HeaderCorrelationID]
	if s.deps.Live == nil {
		s.writeError(w, resThings, cid, ErrUnavailable)
		return
	}
	strategy := cmd.Headers[headerTimeoutStrat]
	if strategy != "" && strategy != "fail" && strategy != "use-twin" {
		writeDittoError(w, ditto.ErrHeaderInvalid.New("The value '%s' of the header '%s' is invalid: use fail or use-twin.", truncateString(strategy, 50), headerTimeoutStrat))
		return
	}
	tid, err := ditto.ParseThingID(cmd.Entity)
	if err != nil {
		s.writeError(w, resThings, cid, err)
		return
	}
	t := ditto.Topic{Namespace: tid.Namespace, Name: tid.Name, Group: ditto.GroupThings, Channel: ditto.ChannelLive, Criterion: ditto.CriterionCommands, Action: string(cmd.Action)}
	env := ditto.Envelope{Topic: t.String(), Headers: cmd.Headers, Path: cmd.Path.String(), Fields: cmd.Fields}
	if cmd.Value != nil {
		env.Value = ditto.EncodeJSON(cmd.Value)
	}
	if respond {
		env.Headers[ditto.HeaderTimeout] = strconv.FormatInt(timeout.Milliseconds(), 10) + "ms"
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	resp, ok, err := s.deps.Live.Send(ctx, env, cmd.Auth)
	var de *ditto.Error
	if err != nil && strategy == "use-twin" && cmd.Action == ditto.ActionRetrieve && errors.As(err, &de) && de.Code == ditto.ErrCommandTimeout.Code {
		s.serveTwinFallback(w, r, rt, cmd)
		return
	}
	switch {
	case err != nil:
		s.writeError(w, resThings, cid, err)
	case !ok || !respond:
		w.WriteHeader(http.StatusAccepted)
	default:
		w.Header()[channelKey] = hdrLive
		if resp.Status == http.StatusCreated {
			w.Header()[locationKey] = []string{absoluteURL(r, r.URL.EscapedPath())}
		}
		s.writeLiveResponse(w, resp, cid, false)
	}
}

var (
	channelKey = http.CanonicalHeaderKey(ditto.HeaderChannel)
	hdrLive    = []string{ditto.ChannelLive}
	hdrTwin    = []string{ditto.ChannelTwin}
)

// serveTwinFallback answers a timed-out live retrieve from the twin.
func (s *Server) serveTwinFallback(w http.ResponseWriter, r *http.Request, rt route, cmd ditto.Command) {
	ctx, cancel := context.WithTimeout(r.Context(), twinFallbackTimeout)
	defer cancel()
	cmd.Headers = cmd.Headers.Clone()
	cmd.Headers[ditto.HeaderChannel] = ditto.ChannelTwin
	cmd.Timeout = twinFallbackTimeout
	res, err := s.execute(ctx, resThings, cmd)
	if err != nil {
		s.writeCommandError(w, resThings, cmd, res, err)
		return
	}
	w.Header()[channelKey] = hdrTwin
	s.writeResult(w, r, rt, cmd, res)
}

// live-channel-condition (ditto-spec §7): headers and their values.
const (
	headerLiveCondition        = "live-channel-condition"
	headerLiveConditionMatched = "live-channel-condition-matched"
)

var liveConditionMatchedKey = http.CanonicalHeaderKey(headerLiveConditionMatched)

// serveLiveCondition answers a things request with a live-channel-condition.
// Only retrieves may carry one (405 otherwise). The condition is evaluated
// by the things service as the twin retrieve's "condition", so the
// requester needs READ on every field it references: when it holds, the
// retrieve goes to the device as a live command (with
// live-channel-timeout-strategy as usual); when it does not (or references
// fields the requester may not read), the twin answers. The response
// carries live-channel-condition-matched and channel.
func (s *Server) serveLiveCondition(w http.ResponseWriter, r *http.Request, rt route, cmd ditto.Command, timeout time.Duration, respond bool) {
	cond := cmd.Headers[headerLiveCondition]
	if cmd.Action != ditto.ActionRetrieve {
		writeDittoError(w, ditto.ErrLiveConditionNotAllowed.New("The header '%s' is not allowed on the modifying command '%s' of the Thing with ID '%s'.", headerLiveCondition, cmd.Action, cmd.Entity))
		return
	}
	if strategy := cmd.Headers[headerTimeoutStrat]; strategy != "" && strategy != "fail" && strategy != "use-twin" {
		writeDittoError(w, ditto.ErrHeaderInvalid.New("The value '%s' of the header '%s' is invalid: use fail or use-twin.", truncateString(strategy, 50), headerTimeoutStrat))
		return
	}
	if !respond {
		// Ditto drops queries nobody waits for.
		w.WriteHeader(http.StatusAccepted)
		return
	}
	cmd.Headers = cmd.Headers.Clone()
	delete(cmd.Headers, headerLiveCondition)
	delete(cmd.Headers, ditto.HeaderChannel)

	probe := cmd
	probe.Headers = cmd.Headers.Clone()
	probe.Headers[ditto.HeaderCondition] = cond
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	_, err := s.execute(ctx, resThings, probe)
	cancel()
	var de *ditto.Error
	switch {
	case err == nil:
		w.Header()[liveConditionMatchedKey] = hdrTrue
		cmd.Headers[ditto.HeaderChannel] = ditto.ChannelLive
		s.serveLiveCommand(w, r, rt, cmd, timeout, respond)
		return
	case !errors.As(err, &de) || de.Code != ditto.ErrThingConditionFailed.Code:
		s.writeCommandError(w, resThings, probe, ditto.Result{}, err)
		return
	}
	w.Header()[liveConditionMatchedKey] = hdrFalse
	ctx, cancel = context.WithTimeout(r.Context(), timeout)
	defer cancel()
	res, err := s.execute(ctx, resThings, cmd)
	if err != nil {
		s.writeCommandError(w, resThings, cmd, res, err)
		return
	}
	w.Header()[channelKey] = hdrTwin
	s.writeResult(w, r, rt, cmd, res)
}

var (
	hdrTrue  = []string{"true"}
	hdrFalse = []string{"false"}
)

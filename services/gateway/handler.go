package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// serveResource runs one things or policies request: method check, command
// building, body, execution and response mapping.
func (s *Server) serveResource(w http.ResponseWriter, r *http.Request, q url.Values, cid string, auth ditto.Auth, rt route) {
	bit := methodBit(r.Method)
	if rt.methods&bit == 0 {
		if rt.res == resThings && r.Method == http.MethodDelete && len(rt.path) == 1 && rt.path[0] == "policyId" {
			// ditto-spec section 3.1 names the error; Ditto's status for it is 400.
			writeDittoError(w, ditto.ErrThingPolicyIDNotDeletable.New("The policyId of the Thing with ID '%s' cannot be deleted.", rt.entity))
			return
		}
		methodNotAllowed(w, r, rt.methods)
		return
	}
	if rt.err != nil {
		writeDittoError(w, rt.err)
		return
	}
	cmd := ditto.Command{
		Action:  rt.action(r.Method),
		Entity:  rt.entity,
		Path:    rt.path,
		Headers: commandHeaders(r.Header, q),
		Auth:    auth,
		Fields:  strings.Join(q["fields"], ","), // repeated parameters add up, as in Ditto
	}
	cmd.Headers[ditto.HeaderCorrelationID] = cid

	timeout, respond, derr := responseOptions(cmd.Headers)
	if derr != nil {
		writeDittoError(w, derr)
		return
	}
	cmd.Timeout = timeout

	var ids []string
	switch {
	case rt.collection && bit == mGet && !q.Has("ids") && s.deps.Search != nil:
		s.serveThingsListing(w, r, q, auth)
		return
	case rt.collection && bit == mGet:
		if ids, derr = thingIDs(q); derr != nil {
			writeDittoError(w, derr)
			return
		}
	case rt.collection && bit == mPost:
		if cmd.Headers[ditto.HeaderChannel] == ditto.ChannelLive {
			e := ditto.ErrThingNotCreatable.New("Thing could not be created via channel <live>.").WithDescription("Create a thing on the twin channel.")
			e.Status = http.StatusMethodNotAllowed // as Ditto's forLiveChannel
			writeDittoError(w, e)
			return
		}
		ns := q.Get("namespace")
		if ns == "" {
			ns = s.cfg.DefaultNamespace
		}
		if !ditto.ValidNamespace(ns) {
			writeDittoError(w, ditto.ErrThingIDInvalid.New("The namespace '%s' is not valid!", ns))
			return
		}
		cmd.Entity = ns + ":" + s.deps.NewUUID()
	}
	if bit&(mPut|mPatch|mPost) != 0 {
		v, derr := s.readValue(r, rt, bit)
		if derr != nil {
			writeDittoError(w, derr)
			return
		}
		if rt.collection {
			if m, ok := v.(map[string]any); ok {
				if _, has := m["thingId"]; has {
					writeDittoError(w, ditto.ErrThingIDNotSettable.New("The Thing ID in the request body is not allowed when creating a Thing with POST; the ID is generated."))
					return
				}
			}
		}
		cmd.Value = v
	}
	if rt.res == resThings && !rt.collection && cmd.Headers[headerLiveCondition] != "" {
		s.serveLiveCondition(w, r, rt, cmd, timeout, respond)
		return
	}
	if rt.res == resThings && !rt.collection && cmd.Headers[ditto.HeaderChannel] == ditto.ChannelLive {
		s.serveLiveCommand(w, r, rt, cmd, timeout, respond)
		return
	}
	if !respond && bit == mGet {
		// Ditto drops queries nobody waits for.
		w.WriteHeader(http.StatusAccepted)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	if rt.collection && bit == mGet {
		s.serveRetrieveMany(ctx, w, ids, cmd)
		return
	}
	if rt.res == resThings && bit != mGet && s.serveTwinAcks(ctx, w, r, rt, cmd, respond) {
		return
	}
	res, err := s.execute(ctx, rt.res, cmd)
	if !respond {
		if err != nil {
			s.log.Debug("gateway: command without response failed", logKeyCorrelationID, cid, logKeyError, err)
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if err != nil {
		s.writeCommandError(w, rt.res, cmd, res, err)
		return
	}
	s.writeResult(w, r, rt, cmd, res)
}

// responseOptions reads timeout and response-required. timeout=0 means
// "do not wait for a response" (202); the command still runs with the
// default timeout. Every request path reads them first, so it also checks
// the syntax of the other headers Ditto validates (checkHeaders).
func responseOptions(h ditto.Headers) (timeout time.Duration, respond bool, err *ditto.Error) {
	if err := checkHeaders(h); err != nil {
		return 0, false, err
	}
	timeout, respond = MaxTimeout, true
	explicitRespond := false
	if v, ok := h[ditto.HeaderResponseRequired]; ok {
		b, derr := parseBool(ditto.HeaderResponseRequired, v)
		if derr != nil {
			return 0, false, derr
		}
		respond, explicitRespond = b, b
	}
	if v, ok := h[ditto.HeaderTimeout]; ok {
		d, derr := parseTimeout(v)
		if derr != nil {
			return 0, false, derr
		}
		if d == 0 {
			if explicitRespond {
				return 0, false, ditto.ErrHeaderInvalid.New("The headers 'timeout=0' and 'response-required=true' contradict each other.")
			}
			respond = false
		} else {
			timeout = d
		}
	}
	return timeout, respond, nil
}

// thingIDs parses the ids query parameter of a multi-get. Without the
// parameter it returns nil: list the first things the requester may read.
// An empty value is a 400.
func thingIDs(q url.Values) ([]string, *ditto.Error) {
	raw, ok := q["ids"]
	if !ok || len(raw) == 0 {
		return nil, nil
	}
	// Repeated parameters add up, and a trailing comma adds nothing, as
	// in Ditto.
	joined := strings.TrimSuffix(strings.Join(raw, ","), ",")
	if joined == "" {
		return nil, ditto.ErrThingIDInvalid.New("The query parameter 'ids' must not be empty: give a comma-separated list of Thing IDs.")
	}
	ids := strings.Split(joined, ",")
	for _, id := range ids {
		if _, err := ditto.ParseThingID(id); err != nil {
			return nil, err.(*ditto.Error)
		}
	}
	return ids, nil
}

func (s *Server) execute(ctx context.Context, res resource, cmd ditto.Command) (ditto.Result, error) {
	switch res {
	case resThings:
		if s.deps.Things == nil {
			return ditto.Result{}, ErrUnavailable
		}
		return s.deps.Things.Handle(ctx, cmd)
	default:
		if s.deps.Policies == nil {
			return ditto.Result{}, ErrUnavailable
		}
		return s.deps.Policies.Handle(ctx, cmd)
	}
}

func (s *Server) serveRetrieveMany(ctx context.Context, w http.ResponseWriter, ids []string, cmd ditto.Command) {
	if s.deps.Things == nil {
		s.writeError(w, resThings, cmd.Headers[ditto.HeaderCorrelationID], ErrUnavailable)
		return
	}
	items, err := s.deps.Things.RetrieveMany(ctx, ids, cmd)
	if err != nil {
		s.writeError(w, resThings, cmd.Headers[ditto.HeaderCorrelationID], err)
		return
	}
	if items == nil {
		items = []any{}
	}
	s.writeValue(w, http.StatusOK, items, cmd.Headers[ditto.HeaderCorrelationID])
}

// readValue enforces media type and size and decodes the body.
func (s *Server) readValue(r *http.Request, rt route, bit methods) (any, *ditto.Error) {
	ct := r.Header.Get(contentTypeKey)
	if rt.collection && r.ContentLength == 0 && ct == "" {
		return map[string]any{}, nil // POST /things without a body: an empty thing
	}
	if derr := s.checkMediaType(r.Method, ct); derr != nil {
		return nil, derr
	}
	buf := getBuf()
	defer putBuf(buf)
	// MaxBodyBytes bounds the transport (Ditto's max-content-length); the
	// services check the thing's or policy's compact JSON against its own
	// limit, so whitespace and escapes do not count, as in Ditto.
	limit := s.cfg.MaxBodyBytes
	tooLarge, err := readBody(r.Body, r.ContentLength, limit, buf)
	if err != nil {
		return nil, ditto.ErrJSONInvalid.New("The request body could not be read completely.")
	}
	if tooLarge {
		if rt.res == resPolicies {
			return nil, ditto.ErrPolicyTooLarge.New("The request body is larger than the allowed %d bytes.", limit)
		}
		return nil, ditto.ErrThingTooLarge.New("The request body is larger than the allowed %d bytes.", limit)
	}
	if buf.Len() == 0 {
		if rt.collection {
			return map[string]any{}, nil
		}
		return nil, ditto.ErrJSONInvalid.New("The request body of a %s must be JSON; it was empty.", r.Method)
	}
	v, err := ditto.DecodeJSON(buf.Bytes())
	if err != nil {
		if de, ok := err.(*ditto.Error); ok {
			return nil, de
		}
		return nil, ditto.ErrJSONInvalid.New("The request body is not valid JSON.")
	}
	return v, nil
}

// writeCommandError writes a service failure. A 304 or 412 carries the
// current ETag of the resource, as Ditto sends it: from the error, from the
// result, or (a 304 matched it) If-None-Match.
func (s *Server) writeCommandError(w http.ResponseWriter, res resource, cmd ditto.Command, result ditto.Result, err error) {
	de := s.toDittoError(res, cmd.Headers[ditto.HeaderCorrelationID], err)
	var et etagged
	if de.Status == http.StatusPreconditionFailed && errors.As(err, &et) && et.ETag() != "" {
		w.Header()[etagKey] = []string{et.ETag()}
	}
	if de.Status == http.StatusNotModified {
		etag := result.ETag
		if errors.As(err, &et) && et.ETag() != "" {
			etag = et.ETag()
		}
		if inm := cmd.Headers[ditto.HeaderIfNoneMatch]; etag == "" && inm != "*" && !strings.Contains(inm, ",") {
			etag = strings.TrimSpace(inm)
		}
		if etag != "" {
			w.Header()[etagKey] = []string{etag}
		}
	}
	writeDittoError(w, de)
}

// writeResult maps a successful result: 204 empty, 201 with Location and
// body, otherwise the status with the value as JSON (Result.Raw as is when
// set, else Value encoded); ETag when known.
func (s *Server) writeResult(w http.ResponseWriter, r *http.Request, rt route, cmd ditto.Command, res ditto.Result) {
	h := w.Header()
	if res.ETag != "" {
		h[etagKey] = []string{res.ETag}
	}
	if res.Metadata != nil {
		h[ditto.HeaderDittoMetadata] = []string{string(res.Metadata)}
	}
	hasValue := res.Raw != nil || res.Value != nil
	status := res.Status
	if status == 0 {
		status = http.StatusOK
		if !hasValue {
			status = http.StatusNoContent
		}
	}
	switch status {
	case http.StatusNoContent, http.StatusNotModified, http.StatusAccepted:
		w.WriteHeader(status)
		return
	case http.StatusCreated:
		h[locationKey] = []string{location(r, rt, cmd, res)}
		if !hasValue {
			w.WriteHeader(status)
			return
		}
	}
	if res.Raw != nil {
		writeJSON(w, status, res.Raw) // stored bytes: no re-encoding
		return
	}
	s.writeValue(w, status, res.Value, cmd.Headers[ditto.HeaderCorrelationID])
}

// location is the URL of a created resource: the new thing for POST, the
// request's resource otherwise.
func location(r *http.Request, rt route, cmd ditto.Command, res ditto.Result) string {
	if rt.collection {
		id := res.Entity
		if id == "" {
			id = cmd.Entity
		}
		return absoluteURL(r, apiPrefix+"/things/"+url.PathEscape(id))
	}
	return absoluteURL(r, r.URL.EscapedPath())
}

// absoluteURL makes path, a path on this server, an absolute URL as the
// client addressed the server (its Host header; https when the request
// came over TLS), as Ditto's Location headers are. Without a Host it stays
// a path.
func absoluteURL(r *http.Request, path string) string {
	if r.Host == "" {
		return path
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + path
}

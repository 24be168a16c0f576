package gateway

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/dittonode/dittonode/ditto"
)

// Connections is what the gateway needs for /api/2/connections
// (services/connectivity.API implements it). Only subjects it authorizes
// may use the resource (Ditto's devops role).
type Connections interface {
	Authorized(auth ditto.Auth) bool
	List(ctx context.Context, idsOnly bool, fields string, local bool) ([]any, error)
	Retrieve(ctx context.Context, id, fields string, local bool) (any, int64, error)
	Create(ctx context.Context, def any, dryRun bool) (any, string, error)
	Modify(ctx context.Context, id string, def any) error
	Delete(ctx context.Context, id string) error
	Command(ctx context.Context, id, command string) (any, error)
	Status(ctx context.Context, id string) (any, error)
	Metrics(ctx context.Context, id string) (any, error)
	Logs(ctx context.Context, id string) (any, error)
}

const connectionsPath = "/connections"

// maxCommandBytes bounds the text body of POST /connections/{id}/command.
const maxCommandBytes = 1024

// serveConnections serves /api/2/connections[/{id}[/command|status|metrics|logs]].
// It reports false when the path is not a connections path.
func (s *Server) serveConnections(w http.ResponseWriter, r *http.Request, q url.Values, auth ditto.Auth, escaped, cid string) bool {
	if escaped != connectionsPath && !strings.HasPrefix(escaped, connectionsPath+"/") {
		return false
	}
	conns := s.deps.Connections
	if conns == nil {
		writeDittoError(w, ditto.ErrUnavailable.New("Connections are not available on this node."))
		return true
	}
	if !conns.Authorized(auth) {
		writeDittoError(w, ditto.ErrConnectionNotAllowed.New("The subject '%s' may not manage connections.", auth.Default()))
		return true
	}
	rest := strings.Trim(strings.TrimPrefix(escaped, connectionsPath), "/")
	var id, sub string
	if rest != "" {
		parts := strings.Split(rest, "/")
		if len(parts) > 2 {
			writeDittoError(w, ditto.ErrResourceNotFound.New("The resource '%s' does not exist.", r.URL.EscapedPath()))
			return true
		}
		var err error
		if id, err = url.PathUnescape(parts[0]); err != nil || !ditto.ValidConnectionID(id) {
			writeDittoError(w, ditto.ErrConnectionIDInvalid.New("Connection ID '%s' is not valid.", truncateText(parts[0], 100)))
			return true
		}
		if len(parts) == 2 {
			sub = parts[1]
		}
	}
	timeout, _, derr := responseOptions(commandHeaders(r.Header, q))
	if derr != nil {
		writeDittoError(w, derr)
		return true
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	local := strings.EqualFold(q.Get("consistency"), "local") || strings.EqualFold(r.Header.Get("consistency"), "local")
	fail := func(err error) { s.writeError(w, 0, cid, err) }
	switch {
	case id == "":
		switch r.Method {
		case http.MethodGet:
			list, err := conns.List(ctx, q.Get("ids-only") == "true", q.Get("fields"), local)
			if err != nil {
				fail(err)
				return true
			}
			s.writeValue(w, http.StatusOK, list, cid)
		case http.MethodPost:
			v, derr := s.readConnection(r)
			if derr != nil {
				writeDittoError(w, derr)
				return true
			}
			dry := q.Get("dry-run") == "true" || r.Header.Get("dry-run") == "true"
			out, newID, err := conns.Create(ctx, v, dry)
			if err != nil {
				fail(err)
				return true
			}
			if dry {
				s.writeValue(w, http.StatusOK, out, cid)
				return true
			}
			w.Header()[locationKey] = []string{absoluteURL(r, apiPrefix+connectionsPath+"/"+url.PathEscape(newID))}
			s.writeValue(w, http.StatusCreated, out, cid)
		default:
			methodNotAllowed(w, r, mGet|mPost)
		}
	case sub == "":
		switch r.Method {
		case http.MethodGet:
			v, rev, err := conns.Retrieve(ctx, id, q.Get("fields"), local)
			if err != nil {
				fail(err)
				return true
			}
			w.Header()[etagKey] = []string{`"rev:` + strconv.FormatInt(rev, 10) + `"`}
			s.writeValue(w, http.StatusOK, v, cid)
		case http.MethodPut:
			v, derr := s.readConnection(r)
			if derr != nil {
				writeDittoError(w, derr)
				return true
			}
			if err := conns.Modify(ctx, id, v); err != nil {
				fail(err)
				return true
			}
			w.WriteHeader(http.StatusNoContent)
		case http.MethodDelete:
			if err := conns.Delete(ctx, id); err != nil {
				fail(err)
				return true
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			methodNotAllowed(w, r, mGet|mPut|mDelete)
		}
	case sub == "command":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, r, mPost)
			return true
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxCommandBytes+1))
		if err != nil || len(body) > maxCommandBytes {
			writeDittoError(w, ditto.ErrConnectionCommand.New("The command body must be a short text."))
			return true
		}
		out, err := conns.Command(ctx, id, string(body))
		if err != nil {
			fail(err)
			return true
		}
		s.writeValue(w, http.StatusOK, out, cid)
	case sub == "status" || sub == "metrics" || sub == "logs":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r, mGet)
			return true
		}
		get := map[string]func(context.Context, string) (any, error){"status": conns.Status, "metrics": conns.Metrics, "logs": conns.Logs}[sub]
		out, err := get(ctx, id)
		if err != nil {
			fail(err)
			return true
		}
		s.writeValue(w, http.StatusOK, out, cid)
	default:
		writeDittoError(w, ditto.ErrResourceNotFound.New("The resource '%s' does not exist.", r.URL.EscapedPath()))
	}
	return true
}

// readConnection reads a JSON connection definition within the body limit.
func (s *Server) readConnection(r *http.Request) (any, *ditto.Error) {
	if derr := s.checkMediaType(r.Method, r.Header.Get(contentTypeKey)); derr != nil {
		return nil, derr
	}
	buf := getBuf()
	defer putBuf(buf)
	tooLarge, err := readBody(r.Body, r.ContentLength, s.cfg.MaxBodyBytes, buf)
	if err != nil {
		return nil, ditto.ErrJSONInvalid.New("The request body could not be read completely.")
	}
	if tooLarge {
		return nil, ditto.ErrConnectionInvalid.New("The connection in the request body is larger than the allowed %d bytes.", s.cfg.MaxBodyBytes)
	}
	v, err := ditto.DecodeJSON(buf.Bytes())
	if err != nil {
		return nil, asDittoError(err, ditto.ErrJSONInvalid)
	}
	return v, nil
}

// EventView is a compiled stream subscription (namespaces, RQL filter,
// extraFields) for consumers outside the gateway, such as connection
// targets: they get exactly what a WebSocket subscriber with the same
// subjects and parameters gets.
type EventView struct{ spec *streamSpec }

// ParseEventView compiles the query parameters namespaces, filter and
// extraFields.
func ParseEventView(q url.Values) (*EventView, error) {
	spec, derr := parseStreamSpec(q)
	if derr != nil {
		return nil, derr
	}
	return &EventView{spec: spec}, nil
}

// ViewTwinEvent authorizes a twin event for auth (READ on the changed
// resource; partial readers get their view) and applies v. ok is false
// when auth must not get it.
func (s *Server) ViewTwinEvent(sig ditto.Signal, auth ditto.Auth, v *EventView) (ditto.Envelope, bool) {
	t, err := ditto.ParseTopic(sig.Envelope.Topic)
	if err != nil {
		return ditto.Envelope{}, false
	}
	ev, ok := s.viewTwinEvent(sig, t, auth, v.spec, false)
	if !ok {
		return ditto.Envelope{}, false
	}
	return eventEnvelope(sig, ev), true
}

// ViewLiveSignal applies v to a live signal the live router already
// authorized for auth.
func (s *Server) ViewLiveSignal(env ditto.Envelope, auth ditto.Auth, v *EventView) (ditto.Envelope, bool) {
	t, err := ditto.ParseTopic(env.Topic)
	if err != nil {
		return env, false
	}
	return s.viewLiveSignal(env, t, auth, v.spec)
}

// SetConnections plugs the connections API in after New (the connections
// runtime needs the gateway's event views, so it is built after the
// gateway). It must be called before Start.
func (s *Server) SetConnections(c Connections) { s.deps.Connections = c }

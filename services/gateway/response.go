package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/dittonode/dittonode/ditto"
)

// ErrUnavailable is the sentinel for "the service cannot answer right now"
// (no Raft leader reachable, group not ready). Whoever wires the services
// (node) wraps such conditions with it; the gateway answers 503.
var ErrUnavailable = errors.New("gateway: service unavailable")

// unavailable lets an error report unavailability without wrapping
// ErrUnavailable (e.g. a consensus "not leader" error type).
type unavailable interface{ Unavailable() bool }

// etagged lets a 304 error carry the current entity tag.
type etagged interface{ ETag() string }

// Shared header values: net/http never modifies them.
var (
	hdrJSON         = []string{"application/json"}
	hdrBasicRealm   = []string{`Basic realm="dittonode"`}
	hdrNoSniff      = []string{"nosniff"}
	contentTypeKey  = http.CanonicalHeaderKey("Content-Type")
	contentLenKey   = http.CanonicalHeaderKey("Content-Length")
	etagKey         = http.CanonicalHeaderKey("ETag")
	locationKey     = http.CanonicalHeaderKey("Location")
	correlationKey  = http.CanonicalHeaderKey(ditto.HeaderCorrelationID)
	allowKey        = http.CanonicalHeaderKey("Allow")
	wwwAuthKey      = http.CanonicalHeaderKey("WWW-Authenticate")
	contentTypeOpts = http.CanonicalHeaderKey("X-Content-Type-Options")
)

// appendValue encodes a JSON value into buf. json.RawMessage is written as
// is (services hand out pre-encoded entities to skip re-encoding).
func appendValue(buf *bytes.Buffer, v any) error {
	switch t := v.(type) {
	case json.RawMessage:
		if len(t) == 0 {
			buf.WriteString("null")
			return nil
		}
		buf.Write(t)
		return nil
	case []any:
		buf.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := appendValue(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1) // Encode's newline
	return nil
}

// writeJSON writes status and a JSON body.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h[contentTypeKey] = hdrJSON
	h[contentTypeOpts] = hdrNoSniff
	h[contentLenKey] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, _ = w.Write(body) // the client went away; nothing left to tell it
}

// writeValue encodes v and writes it with status; an unencodable value is a
// service bug and becomes a 500.
func (s *Server) writeValue(w http.ResponseWriter, status int, v any, cid string) {
	buf := getBuf()
	defer putBuf(buf)
	if err := appendValue(buf, v); err != nil {
		s.writeError(w, 0, cid, err)
		return
	}
	writeJSON(w, status, buf.Bytes())
}

// writeDittoError writes a Ditto error as JSON with its status. 304 has no
// body by definition.
func writeDittoError(w http.ResponseWriter, e *ditto.Error) {
	if e.Status == http.StatusNotModified {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeJSON(w, e.Status, e.JSON())
}

// writeError maps any error to a Ditto error response: *ditto.Error as is,
// deadlines to 408, unavailability to 503, the rest to a logged 500.
func (s *Server) writeError(w http.ResponseWriter, res resource, cid string, err error) {
	writeDittoError(w, s.toDittoError(res, cid, err))
}

func (s *Server) toDittoError(res resource, cid string, err error) *ditto.Error {
	var de *ditto.Error
	var un unavailable
	switch {
	case errors.As(err, &de):
		return de
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return ditto.ErrCommandTimeout.New("The command did not complete within its timeout.")
	case errors.Is(err, ErrUnavailable), errors.As(err, &un) && un.Unavailable():
		switch res {
		case resThings:
			return ditto.ErrThingUnavailable.New("The Thing service is currently not available.")
		case resPolicies:
			return ditto.ErrPolicyUnavailable.New("The Policy service is currently not available.")
		}
		return ditto.ErrUnavailable.New("The service is currently not available.")
	}
	s.log.Error("gateway: internal error", logKeyCorrelationID, cid, logKeyError, err)
	return ditto.ErrInternal.New("An unexpected error occurred while processing the request with correlation-id '%s'.", cid)
}

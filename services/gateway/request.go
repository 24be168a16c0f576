package gateway

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// queryHeaders are the Ditto headers that may also be given as query
// parameters. A query parameter wins over the header of the same name.
var queryHeaders = []string{
	"channel", ditto.HeaderCorrelationID, ditto.HeaderRequestedAcks, "declared-acks", ditto.HeaderResponseRequired,
	ditto.HeaderTimeout, "live-channel-timeout-strategy", ditto.HeaderAllowPolicyLockout, ditto.HeaderCondition,
	"live-channel-condition", "at-historical-revision", "at-historical-timestamp", "dry-run", "accept",
	ditto.HeaderConsistency, ditto.HeaderPolicyView,
	ditto.HeaderPutMetadata, ditto.HeaderGetMetadata, ditto.HeaderDeleteMetadata,
}

// lowerNames caches the lower-case Ditto names of common canonical HTTP
// header names so the hot path does not allocate them.
var lowerNames = map[string]string{
	"Accept": "accept", "Content-Type": "content-type", "Correlation-Id": "correlation-id",
	"If-Match": "if-match", "If-None-Match": "if-none-match", "If-Equal": "if-equal",
	"Condition": "condition", "Response-Required": "response-required", "Timeout": "timeout",
	"Channel": "channel", "Requested-Acks": "requested-acks", "Consistency": "consistency",
	"Allow-Policy-Lockout": "allow-policy-lockout", "Dry-Run": "dry-run", "Origin": "origin",
}

// skippedHeaders are transport and credential headers that are not Ditto
// headers and must not travel with a command.
var skippedHeaders = map[string]bool{
	"authorization": true, "proxy-authorization": true, "cookie": true, "x-ditto-pre-authenticated": true,
	"host": true, "connection": true, "keep-alive": true, "proxy-connection": true, "te": true,
	"trailer": true, "transfer-encoding": true, "upgrade": true, "content-length": true,
	"accept-encoding": true, "user-agent": true,
}

// internalHeader reports whether a lower-case header name is internal to
// Ditto and therefore not accepted from clients (stripped silently).
func internalHeader(name string) bool {
	switch name {
	case "read-subjects", "subject", "raw-request-url", "timeout-access":
		return true
	}
	return strings.HasPrefix(name, "ditto-")
}

// commandHeaders builds the command headers from the request headers and the
// header-like query parameters.
func commandHeaders(h http.Header, q url.Values) ditto.Headers {
	out := make(ditto.Headers, len(h)+1)
	for k, vs := range h {
		name, ok := lowerNames[k]
		if !ok {
			name = strings.ToLower(k)
		}
		if skippedHeaders[name] || internalHeader(name) || len(vs) == 0 {
			continue
		}
		if len(vs) == 1 {
			out[name] = vs[0]
		} else {
			out[name] = strings.Join(vs, ",")
		}
	}
	if len(q) > 0 {
		for _, name := range queryHeaders {
			if vs, ok := q[name]; ok && len(vs) > 0 {
				out[name] = vs[0]
			}
		}
	}
	return out
}

// headerBytes is the total size of the request headers as Ditto counts
// them: names plus values.
func headerBytes(h http.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v)
		}
	}
	return n
}

// parseTimeout parses Ditto's timeout syntax: "42" (seconds), "42s",
// "250ms", "1m". Negative, over MaxTimeout, or malformed → timeout.invalid.
func parseTimeout(s string) (time.Duration, *ditto.Error) {
	invalid := func() (time.Duration, *ditto.Error) {
		return 0, ditto.ErrTimeoutInvalid.New("The value '%s' of the header 'timeout' is not a valid timeout.", s)
	}
	num, unit := s, time.Second
	switch {
	case strings.HasSuffix(s, "ms"):
		num, unit = s[:len(s)-2], time.Millisecond
	case strings.HasSuffix(s, "s"):
		num = s[:len(s)-1]
	case strings.HasSuffix(s, "m"):
		num, unit = s[:len(s)-1], time.Minute
	}
	if num == "" || len(num) > 9 {
		return invalid()
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return invalid()
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return invalid()
	}
	if time.Duration(n) > MaxTimeout/unit { // before multiplying: no overflow
		return 0, ditto.ErrTimeoutInvalid.New("The timeout '%s' exceeds the maximum of %s.", s, MaxTimeout)
	}
	d := time.Duration(n) * unit
	if d > MaxTimeout {
		return 0, ditto.ErrTimeoutInvalid.New("The timeout '%s' exceeds the maximum of %s.", s, MaxTimeout)
	}
	return d, nil
}

// parseBool parses a boolean Ditto header.
func parseBool(name, v string) (bool, *ditto.Error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, ditto.ErrHeaderInvalid.New("The value '%s' of the header '%s' is not a valid boolean.", v, name)
}

// checkHeaders refuses, with 400 header.invalid as Ditto does, values of
// headers whose syntax Ditto validates: the entity tag lists of If-Match
// and If-None-Match, channel, policy-view, the boolean
// allow-policy-lockout and the historical revision or timestamp.
func checkHeaders(h ditto.Headers) *ditto.Error {
	for _, name := range []string{ditto.HeaderIfMatch, ditto.HeaderIfNoneMatch} {
		if v, ok := h[name]; ok && !validETagList(v) {
			return ditto.ErrHeaderInvalid.New("The value '%s' of the header '%s' is not a list of entity tags.", truncateString(v, 100), name)
		}
	}
	if v, ok := h[ditto.HeaderChannel]; ok {
		// Normalized as Ditto's channel validator does: trimmed, any case.
		n := strings.ToLower(strings.TrimSpace(v))
		if n != ditto.ChannelTwin && n != ditto.ChannelLive {
			return ditto.ErrHeaderInvalid.New("The value '%s' of the header '%s' is invalid: use twin or live.", truncateString(v, 100), ditto.HeaderChannel)
		}
		h[ditto.HeaderChannel] = n
	}
	if v, ok := h[ditto.HeaderPolicyView]; ok && v != "original" && v != "resolved" {
		return ditto.ErrHeaderInvalid.New("The value '%s' of the header '%s' is invalid: use original or resolved.", truncateString(v, 100), ditto.HeaderPolicyView)
	}
	if v, ok := h[ditto.HeaderAllowPolicyLockout]; ok {
		if _, err := parseBool(ditto.HeaderAllowPolicyLockout, v); err != nil {
			return err
		}
	}
	if v, ok := h[ditto.HeaderAtHistoricalRevision]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err != nil || n < 0 {
			return ditto.ErrHeaderInvalid.New("The value '%s' of the header '%s' is not a revision number.", truncateString(v, 100), ditto.HeaderAtHistoricalRevision)
		}
	}
	if v, ok := h[ditto.HeaderAtHistoricalTimestamp]; ok {
		if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
			return ditto.ErrHeaderInvalid.New("The value '%s' of the header '%s' is not an ISO-8601 timestamp.", truncateString(v, 100), ditto.HeaderAtHistoricalTimestamp)
		}
	}
	return nil
}

// validETagList reports whether v is "*" or a comma-separated list of
// entity tags, each "\"opaque\"" or "W/\"opaque\"" (RFC 9110; the opaque
// part holds no quote and, as in Ditto, no '*').
func validETagList(v string) bool {
	n := 0
	for _, t := range strings.Split(v, ",") {
		t = strings.TrimSpace(t)
		switch {
		case t == "":
			continue
		case t == "*":
		default:
			t = strings.TrimPrefix(t, "W/")
			if len(t) < 2 || t[0] != '"' || t[len(t)-1] != '"' || strings.ContainsAny(t[1:len(t)-1], "\"*") {
				return false
			}
		}
		n++
	}
	return n > 0
}

// mediaType returns the lower-cased media type of a Content-Type value
// without its parameters.
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	for i := 0; i < len(ct); i++ {
		if c := ct[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(ct)
		}
	}
	return ct
}

const (
	mediaJSON       = "application/json"
	mediaMergePatch = "application/merge-patch+json"
)

// checkMediaType enforces Ditto's body media types: PATCH takes
// application/merge-patch+json, PUT and POST application/json or one of
// the configured extras.
func (s *Server) checkMediaType(method, ct string) *ditto.Error {
	mt := mediaType(ct)
	if method == http.MethodPatch {
		if mt == mediaMergePatch {
			return nil
		}
		e := ditto.ErrMediaTypeUnsup.New("The Media-Type <%s> is not supported for PATCH; use <%s>.", ct, mediaMergePatch)
		e.Href = "https://tools.ietf.org/html/rfc7396" // as Ditto's merge media type error
		return e
	}
	if mt == mediaJSON || ct == "" {
		// A body without a content-type is octet-stream to Ditto, which it
		// accepts for PUT and POST by default.
		return nil
	}
	for _, extra := range s.cfg.AdditionalMediaTypes {
		if mt == extra {
			return nil
		}
	}
	return ditto.ErrMediaTypeUnsup.New("The Media-Type <%s> is not supported for %s; use <%s>.", ct, method, mediaJSON)
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuf() *bytes.Buffer { return bufPool.Get().(*bytes.Buffer) }

func putBuf(b *bytes.Buffer) {
	if b.Cap() > 256*1024 {
		return // do not pin huge buffers
	}
	b.Reset()
	bufPool.Put(b)
}

// readBody reads at most limit bytes of the body into buf. It reports
// tooLarge when the body is longer than limit.
func readBody(body io.Reader, contentLength int64, limit int, buf *bytes.Buffer) (tooLarge bool, err error) {
	if contentLength > int64(limit) {
		return true, nil
	}
	if contentLength > 0 {
		buf.Grow(int(contentLength) + 1)
	}
	n, err := buf.ReadFrom(io.LimitReader(body, int64(limit)+1))
	if err != nil {
		return false, err
	}
	return n > int64(limit), nil
}

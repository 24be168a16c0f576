package gateway

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// SSE for messages (ditto-spec §5): GET
// /api/2/things/{id}[/features/{fid}]/inbox|outbox/messages[/{subject}]
// with Accept: text/event-stream subscribes to the live router as a
// messages consumer and streams every message of that thing, feature,
// direction and subject (prefix) the requester may READ (the router
// authorizes: unrestricted READ on message:<path>) as
//
//	event:<subject>
//	data:<payload>
//
// The payload is the JSON for JSON content types, the text for text/*, and
// the Ditto Protocol value (base64) otherwise; a payload with line breaks
// takes several data: lines (SSE joins them with "\n"). Messages are not
// retained: only those sent while the stream is open are delivered, and
// Last-Event-ID is ignored. A client that falls EventQueue messages behind
// is disconnected.

// sseWriter writes SSE frames with a per-frame write deadline.
type sseWriter struct {
	rc      *http.ResponseController
	bw      *bufio.Writer
	timeout time.Duration
}

// startSSE writes the SSE response header and the initial comment.
func startSSE(w http.ResponseWriter, frameTimeout time.Duration) (*sseWriter, bool) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{}) // not every writer supports deadlines
	h := w.Header()
	h[contentTypeKey] = []string{"text/event-stream"}
	h["Cache-Control"] = []string{"no-cache"}
	h[contentTypeOpts] = hdrNoSniff
	w.WriteHeader(http.StatusOK)
	sw := &sseWriter{rc: rc, bw: bufio.NewWriter(w), timeout: frameTimeout}
	return sw, sw.write([]byte(":\n\n"))
}

// write sends one frame and flushes it; false when the client is gone.
func (sw *sseWriter) write(b []byte) bool {
	_ = sw.rc.SetWriteDeadline(time.Now().Add(sw.timeout))
	if _, err := sw.bw.Write(b); err != nil {
		return false
	}
	if err := sw.bw.Flush(); err != nil {
		return false
	}
	return sw.rc.Flush() == nil
}

// appendSSEField appends "name:value\n" lines, one per line of value (SSE
// ends a line at CRLF, LF or CR, so a value can never end the event or
// inject a field).
func appendSSEField(b []byte, name string, value []byte) []byte {
	for {
		i := bytes.IndexAny(value, "\r\n")
		b = append(b, name...)
		b = append(b, ':')
		if i < 0 {
			b = append(b, value...)
			return append(b, '\n')
		}
		b = append(b, value[:i]...)
		b = append(b, '\n')
		if value[i] == '\r' && i+1 < len(value) && value[i+1] == '\n' {
			i++
		}
		value = value[i+1:]
	}
}

// messageFilter selects the messages of one SSE message stream.
type messageFilter struct {
	thingID string
	prefix  ditto.Pointer
	// exact: a subject was given, and only that subject is selected
	// (Ditto filters eq(resource:path)); else every subject below prefix.
	exact bool
}

func newMessageFilter(mr messageRoute) messageFilter {
	f := messageFilter{thingID: mr.thingID, exact: len(mr.subject) > 0}
	switch {
	case mr.claim:
		f.prefix = ditto.Pointer{"inbox", "claim"}
	case mr.featureID != "":
		f.prefix = append(ditto.Pointer{"features", mr.featureID, mr.box, "messages"}, mr.subject...)
	default:
		f.prefix = append(ditto.Pointer{mr.box, "messages"}, mr.subject...)
	}
	return f
}

// frame renders env for the stream, or reports false when it does not
// belong to it.
func (f messageFilter) frame(env ditto.Envelope) ([]byte, bool) {
	t, err := ditto.ParseTopic(env.Topic)
	if err != nil || t.Criterion != ditto.CriterionMessages || t.Entity() != f.thingID {
		return nil, false
	}
	p, err := ditto.ParsePointer(env.Path)
	if err != nil || !p.HasPrefix(f.prefix) || (f.exact && len(p) != len(f.prefix)) {
		return nil, false
	}
	var data []byte
	if len(env.Value) > 0 {
		ct := env.Headers[ditto.HeaderContentType]
		mt := mediaType(ct)
		switch {
		case isJSONMedia(mt):
			data = env.Value
		case strings.HasPrefix(mt, "text/"):
			data = payloadBody(ct, env.Value)
		default:
			data = payloadBody("text/plain", env.Value) // the base64 text
		}
	}
	b := appendSSEField(nil, "event", []byte(strings.ReplaceAll(t.Action, "\n", " ")))
	b = appendSSEField(b, "data", data)
	return append(b, '\n'), true
}

// serveMessageSSE streams the messages of a thing (or feature) the
// requester may read.
func (s *Server) serveMessageSSE(w http.ResponseWriter, r *http.Request, auth ditto.Auth, mr messageRoute) {
	if s.deps.Live == nil {
		writeDittoError(w, ditto.ErrUnavailable.New("Server-sent events for messages are not available on this node."))
		return
	}
	if _, derr := mr.envelope(); derr != nil {
		writeDittoError(w, derr)
		return
	}
	// No existence check: a 404 for a missing thing against 200 for one
	// the requester may not read would tell which things exist (Ditto
	// answers 200 either way).
	if !s.hub.acquire() {
		writeDittoError(w, ditto.ErrTooManyRequests.New("Too many streams are open; try again later."))
		return
	}
	defer s.hub.release()

	cfg := s.cfg.Streams
	filter := newMessageFilter(mr)
	queue := make(chan []byte, cfg.EventQueue)
	overflow := make(chan struct{})
	var overflowOnce sync.Once
	cancel, err := s.deps.Live.Subscribe("sse-"+s.deps.NewUUID(), auth, []string{LiveKindMessages}, nil, func(env ditto.Envelope) {
		frame, ok := filter.frame(env)
		if !ok {
			return
		}
		select {
		case queue <- frame:
		default:
			overflowOnce.Do(func() { close(overflow) })
		}
	})
	if err != nil {
		s.writeError(w, resThings, w.Header().Get(correlationKey), err)
		return
	}
	defer cancel()

	sw, ok := startSSE(w, cfg.FrameTimeout)
	if !ok {
		return
	}
	keep := newTicker(cfg.SSEKeepAlive)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case <-overflow:
			s.log.Debug("gateway: SSE message stream too slow; closed")
			return
		case <-keep.C:
			if !sw.write([]byte(":keep-alive\n\n")) {
				return
			}
		case frame := <-queue:
			if !sw.write(frame) {
				return
			}
		}
	}
}

package gateway

import (
	"bufio"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// SSE (ditto-spec §5): GET /api/2/things[?ids=&fields=&filter=&namespaces=
// &extraFields=] or GET /api/2/things/{id}[/<path>] with Accept:
// text/event-stream streams every twin change the requester may read as
// "data:<json>" with "id:<n>", where n is the Raft log index of the change.
//
// Resumption is best effort: the node keeps the last ReplayWindow twin
// events in memory (from the first SSE request on). A client reconnecting
// with Last-Event-ID: n first gets the kept events after n that pass its
// filters, then the live ones. Events older than the window, and events
// from before a node restart, are not replayed.

// wantsEventStream reports whether a GET asks for an SSE stream.
func wantsEventStream(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	for _, a := range r.Header.Values("Accept") {
		if strings.Contains(a, "text/event-stream") {
			return true
		}
	}
	return false
}

// replayRing is a bounded ring of recent twin events, filled by a bus
// observer.
type replayRing struct {
	mu   sync.Mutex
	buf  []ditto.Signal
	next int
	full bool
}

func newReplayRing(n int) *replayRing {
	return &replayRing{buf: make([]ditto.Signal, max(n, 1))}
}

func (r *replayRing) add(sig ditto.Signal) {
	if !strings.Contains(sig.Envelope.Topic, "/things/twin/events/") {
		return
	}
	r.mu.Lock()
	r.buf[r.next] = sig
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
	r.mu.Unlock()
}

// after returns the kept signals with an index above idx, oldest first.
func (r *replayRing) after(idx uint64) []ditto.Signal {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []ditto.Signal
	collect := func(part []ditto.Signal) {
		for _, s := range part {
			if s.Index > idx {
				out = append(out, s)
			}
		}
	}
	if r.full {
		collect(r.buf[r.next:])
	}
	collect(r.buf[:r.next])
	return out
}

// sseStream is one SSE request's subscription.
type sseStream struct {
	spec   *streamSpec
	ids    map[string]bool // nil: all things
	fields ditto.FieldSelector
	// thing and path are set for /things/{id}[/path] streams.
	thing string
	path  ditto.Pointer
	auth  ditto.Auth
}

// serveSSE streams twin changes. The route must be /things or a thing
// resource; the request is already authenticated.
func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request, q url.Values, auth ditto.Auth, rt route) {
	if s.deps.Bus == nil {
		writeDittoError(w, ditto.ErrUnavailable.New("Server-sent events are not available on this node."))
		return
	}
	if derr := historicalStream(q, rt); derr != nil {
		writeDittoError(w, derr)
		return
	}
	st := &sseStream{auth: auth}
	spec, derr := parseStreamSpec(q)
	if derr != nil {
		writeDittoError(w, derr)
		return
	}
	st.spec = spec
	if st.fields, derr = parseFields(q.Get("fields")); derr != nil {
		writeDittoError(w, derr)
		return
	}
	if rt.collection {
		if raw := q.Get("ids"); raw != "" {
			st.ids = map[string]bool{}
			for id := range strings.SplitSeq(raw, ",") {
				if _, err := ditto.ParseThingID(id); err != nil {
					writeDittoError(w, err.(*ditto.Error))
					return
				}
				st.ids[id] = true
			}
		}
	} else {
		st.thing, st.path = rt.entity, rt.path
	}
	// A Last-Event-ID that is no event ID of this node (Ditto sends none on
	// this stream and ignores the header) replays nothing.
	var lastID uint64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		lastID, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	}
	if !s.hub.acquire() {
		writeDittoError(w, ditto.ErrTooManyRequests.New("Too many streams are open; try again later."))
		return
	}
	defer s.hub.release()
	s.hub.ringOnce.Do(func() { s.deps.Bus.Observe(s.hub.ring.add) })

	cfg := s.cfg.Streams
	sub := s.deps.Bus.Subscribe(cfg.EventQueue)
	defer sub.Close()
	var replay []ditto.Signal
	if lastID > 0 {
		replay = s.hub.ring.after(lastID)
	}

	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h[contentTypeKey] = []string{"text/event-stream"}
	h["Cache-Control"] = []string{"no-cache"}
	h[contentTypeOpts] = hdrNoSniff
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(w)
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(cfg.FrameTimeout))
		if _, err := bw.Write(b); err != nil {
			return false
		}
		if err := bw.Flush(); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write([]byte(":\n\n")) {
		return
	}
	var sent uint64
	for _, sig := range replay {
		if frame, ok := s.sseFrame(st, sig); ok {
			if !write(frame) {
				return
			}
		}
		sent = sig.Index
	}
	keep := newTicker(cfg.SSEKeepAlive)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case <-sub.Done():
			if errors.Is(sub.Err(), ditto.ErrSlowSubscriber) {
				s.log.Debug("gateway: SSE stream too slow; closed", logKeyError, sub.Err())
			}
			return
		case <-keep.C:
			if !write([]byte(":keep-alive\n\n")) {
				return
			}
		case sig := <-sub.C():
			// The events already queued go out in one flush.
			_ = rc.SetWriteDeadline(time.Now().Add(cfg.FrameTimeout))
			for n := 0; ; n++ {
				if sig.Index == 0 || sig.Index > sent { // else already replayed
					if frame, ok := s.sseFrame(st, sig); ok {
						if _, err := bw.Write(frame); err != nil {
							return
						}
					}
				}
				if n+1 >= maxWriteBatch {
					break
				}
				var more bool
				select {
				case sig, more = <-sub.C():
				default:
				}
				if !more {
					break
				}
			}
			if bw.Flush() != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// historicalStream answers a stream of persisted events (the
// from-/to-historical-revision and -timestamp parameters, ditto-spec
// section 5): 400 for a value that does not parse, else 404
// things:thing.history.notfound, since a node keeps only the current
// revision of a thing. Without such a parameter it returns nil.
func historicalStream(q url.Values, rt route) *ditto.Error {
	given := false
	for _, name := range [...]string{"from-historical-revision", "to-historical-revision", "from-historical-timestamp", "to-historical-timestamp"} {
		v, ok := q[name]
		if !ok {
			continue
		}
		given = true
		raw := ""
		if len(v) > 0 {
			raw = v[0]
		}
		var err error
		if strings.HasSuffix(name, "revision") {
			_, err = strconv.ParseUint(raw, 10, 63)
		} else {
			_, err = time.Parse(time.RFC3339Nano, raw)
		}
		if err != nil {
			return ditto.ErrQueryParamInvalid.New("The value '%s' of the parameter '%s' is invalid.", truncateText(raw, 50), name)
		}
	}
	if !given {
		return nil
	}
	id := rt.entity
	if id == "" {
		id = "*"
	}
	return ditto.ErrThingHistoryNotFound.New("The history of the Thing with ID '%s' could not be found: this node keeps only the current revision of a thing.", id).
		WithDescription("Omit the historical parameters to stream the changes from now on.")
}

func parseFields(s string) (ditto.FieldSelector, *ditto.Error) {
	fs, err := ditto.ParseFieldSelector(s)
	if err != nil {
		return fs, asDittoError(err, ditto.ErrFieldSelectionInvalid)
	}
	return fs, nil
}

// sseFrame renders sig for one SSE stream, or reports false when the
// stream must not get it.
func (s *Server) sseFrame(st *sseStream, sig ditto.Signal) ([]byte, bool) {
	t, err := ditto.ParseTopic(sig.Envelope.Topic)
	if err != nil || t.Group != ditto.GroupThings || t.Channel != ditto.ChannelTwin || t.Criterion != ditto.CriterionEvents {
		return nil, false
	}
	if st.ids != nil && !st.ids[sig.EntityID] {
		return nil, false
	}
	if st.thing != "" {
		if sig.EntityID != st.thing {
			return nil, false
		}
		p, err := ditto.ParsePointer(sig.Envelope.Path)
		if err != nil || !(p.HasPrefix(st.path) || st.path.HasPrefix(p)) {
			return nil, false
		}
	}
	ev, ok := s.viewTwinEvent(sig, t, st.auth, st.spec, true)
	if !ok {
		return nil, false
	}
	doc := ev.changed
	switch {
	case t.Action == "merged":
		// The thing after a merge holds no nulls: they deleted (Ditto).
		doc = withoutNulls(doc)
	case ev.extra != nil:
		doc = ditto.DeepCopy(doc).(map[string]any)
	}
	if ev.extra != nil {
		mergeMissing(doc, ev.extra)
	}
	var data any = doc
	if !st.fields.IsEmpty() {
		if st.fields.Has("_context") {
			ctx := map[string]any{"topic": sig.Envelope.Topic, "path": sig.Envelope.Path, "headers": map[string]string(outboundHeaders(sig.Envelope.Headers)), "value": nil}
			if ev.hasValue {
				ctx["value"] = ev.value
			}
			doc["_context"] = ctx
		}
		addSpecials(doc, t.Namespace, sig)
		data = st.fields.Apply(doc)
		if m, ok := data.(map[string]any); ok && len(m) == 0 {
			return nil, false // the selection left nothing of this change (Ditto drops it)
		}
	}
	if len(st.path) > 0 {
		v, ok := ditto.GetAt(data, st.path)
		if !ok {
			return nil, false
		}
		data = v
	}
	var b strings.Builder
	b.WriteString("data:")
	b.Write(ditto.EncodeJSON(data))
	b.WriteString("\n")
	if sig.Index != 0 {
		b.WriteString("id:")
		b.WriteString(strconv.FormatUint(sig.Index, 10))
		b.WriteString("\n")
	}
	b.WriteString("\n")
	return []byte(b.String()), true
}

// withoutNulls returns a copy of m without its null members, at any depth.
func withoutNulls(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case nil:
		case map[string]any:
			out[k] = withoutNulls(x)
		default:
			out[k] = ditto.DeepCopy(v)
		}
	}
	return out
}

// addSpecials adds the special fields a field selector may pick.
func addSpecials(doc map[string]any, ns string, sig ditto.Signal) {
	doc["_namespace"] = ns
	if sig.Revision > 0 {
		doc["_revision"] = sig.Revision
	}
	if sig.Envelope.Timestamp != "" {
		doc["_modified"] = sig.Envelope.Timestamp
	}
}

func newTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }

// isTwinResource reports whether a thing route addresses twin data (not
// messages).
func isTwinResource(p ditto.Pointer) bool {
	_, err := ditto.ThingsResourceName(p)
	return err == nil
}

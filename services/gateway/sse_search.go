package gateway

import (
	"context"
	"net/http"
	"strings"

	"github.com/dittonode/dittonode/ditto"
)

// SSE for search (ditto-spec §5): GET /api/2/search/things?filter=&option=
// &fields=&namespaces= with Accept: text/event-stream walks every page of
// the search and sends each thing as
//
//	data:<thing JSON>
//	id:<thingId>
//
// then ends the stream. A client that reconnects with Last-Event-ID:
// <thingId> gets the things after that one: with the default sort
// (+thingId) the filter is narrowed to gt(thingId,<id>); with another sort
// the walk skips the results up to and including that thing. The thingId
// is fetched even when fields leaves it out (it is the event ID) and then
// removed from the data.

// serveSearchSSE streams all results of a search.
func (s *Server) serveSearchSSE(w http.ResponseWriter, r *http.Request, q SearchQuery) {
	cid := w.Header().Get(correlationKey)
	if s.deps.Search == nil {
		writeDittoError(w, ditto.ErrUnavailable.New("Search is not available on this node."))
		return
	}
	timeout, _, derr := responseOptions(commandHeaders(r.Header, r.URL.Query()))
	if derr != nil {
		writeDittoError(w, derr)
		return
	}
	after := strings.TrimSpace(r.Header.Get("Last-Event-ID"))
	if after != "" {
		if _, err := ditto.ParseThingID(after); err != nil {
			writeDittoError(w, ditto.ErrHeaderInvalid.New("The Last-Event-ID '%s' is not a Thing ID.", truncateText(after, 50)))
			return
		}
	}
	stripID := false
	if q.Fields != "" {
		fs, derr := parseFields(q.Fields)
		if derr != nil {
			writeDittoError(w, derr)
			return
		}
		if !fs.Has("thingId") {
			q.Fields += ",thingId"
			stripID = true
		}
	}
	// As in Ditto's search source: sort and size only; the stream holds
	// every match, so size is ignored, and limit or cursor are refused.
	opts := splitOptions(q.Options)
	kept := opts[:0]
	for _, o := range opts {
		switch {
		case strings.HasPrefix(o, "cursor("), strings.HasPrefix(o, "limit("):
			writeDittoError(w, ditto.ErrSearchOptionInvalid.New("The option '%s' is not supported at this endpoint.", truncateText(o, 100)).
				WithDescription("Give only sort and size options to a search stream."))
			return
		case strings.HasPrefix(o, "size("):
			continue
		}
		kept = append(kept, o)
	}
	base := strings.Join(kept, ",")
	page := func(cursor string) ([]any, string, error) {
		pq := q
		pq.Options = base
		if cursor != "" {
			pq.Options = strings.TrimPrefix(base+",cursor("+cursor+")", ",")
		} else {
			// Resumed: after that thing's current sort values, as Ditto
			// does, even if it no longer matches.
			pq.After = after
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		items, next, _, err := s.deps.Search.SearchThings(ctx, pq)
		return items, next, err
	}
	items, next, err := page("")
	if err != nil {
		s.writeError(w, 0, cid, err)
		return
	}
	if !s.hub.acquire() {
		writeDittoError(w, ditto.ErrTooManyRequests.New("Too many streams are open; try again later."))
		return
	}
	defer s.hub.release()
	sw, ok := startSSE(w, s.cfg.Streams.FrameTimeout)
	if !ok {
		return
	}
	for {
		for _, it := range items {
			m, _ := it.(map[string]any)
			id, _ := m["thingId"].(string)
			if stripID {
				m = shallowWithout(m, "thingId")
			}
			b := appendSSEField(nil, "data", ditto.EncodeJSON(m))
			if id != "" {
				b = appendSSEField(b, "id", []byte(id))
			}
			if !sw.write(append(b, '\n')) {
				return
			}
		}
		if next == "" {
			return
		}
		if items, next, err = page(next); err != nil {
			s.log.Debug("gateway: SSE search page failed; stream ended", logKeyCorrelationID, cid, logKeyError, err)
			return
		}
	}
}

// splitOptions splits a search option list at the commas outside
// parentheses and quotes: "sort(+a,-b),size(5)" -> [sort(+a,-b) size(5)].
func splitOptions(s string) []string {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			if o := strings.TrimSpace(s[start:i]); o != "" {
				out = append(out, o)
			}
			start = i + 1
		}
	}
	if o := strings.TrimSpace(s[start:]); o != "" {
		out = append(out, o)
	}
	return out
}

// shallowWithout returns m without key (a copy; m is not changed).
func shallowWithout(m map[string]any, key string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

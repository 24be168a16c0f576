package gateway

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/dittonode/dittonode/ditto"
)

// Search is the things-search role as the gateway uses it
// (services/search.Service through an adapter in node).
type Search interface {
	// SearchThings returns one page of the things matching filter that the
	// requester may read, projected with fields. cursor is "" on the last
	// page; nextPageOffset is set only for limit(…) paging.
	SearchThings(ctx context.Context, q SearchQuery) (items []any, cursor string, nextPageOffset *int, err error)
	// CountThings counts the matching readable things.
	CountThings(ctx context.Context, q SearchQuery) (int, error)
}

// SearchQuery is one search request.
type SearchQuery struct {
	Filter     string
	Namespaces []string
	Fields     string
	Options    string
	Auth       ditto.Auth
	// RawItems allows items to be pre-encoded json.RawMessage values (the
	// HTTP response copies them as they are).
	RawItems bool
	// After starts after this thing in the sort order (SSE resumption).
	After string
}

const searchPrefix = "/search/things"

// serveSearch answers /search/things and /search/things/count. It reports
// false when the path is not a search path.
func (s *Server) serveSearch(w http.ResponseWriter, r *http.Request, q url.Values, auth ditto.Auth, escaped string) bool {
	p := strings.TrimSuffix(escaped, "/")
	if p != searchPrefix && p != searchPrefix+"/count" {
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeDittoError(w, ditto.ErrMethodNotAllowed.New("The method '%s' is not allowed on '%s'.", r.Method, escaped))
		return true
	}
	params, derr := s.searchParams(r, q)
	if derr != nil {
		writeDittoError(w, derr)
		return true
	}
	params.Auth = auth
	if p == searchPrefix && wantsEventStream(r) {
		s.serveSearchSSE(w, r, params)
		return true
	}
	s.runSearch(w, r, params, p != searchPrefix, false)
	return true
}

// serveThingsListing answers GET /things without ids: the readable things
// paged like a search without filter.
func (s *Server) serveThingsListing(w http.ResponseWriter, r *http.Request, q url.Values, auth ditto.Auth) {
	params, derr := s.searchParams(r, q)
	if derr != nil {
		writeDittoError(w, derr)
		return
	}
	params.Auth = auth
	// As Ditto's GET /things: no filter here (only on /search/things), the
	// page as a bare array, and the next page in a Link header.
	params.Filter = ""
	s.runSearch(w, r, params, false, true)
}

func (s *Server) runSearch(w http.ResponseWriter, r *http.Request, params SearchQuery, count, listing bool) {
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
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	if count {
		n, err := s.deps.Search.CountThings(ctx, params)
		if err != nil {
			s.writeError(w, 0, cid, err)
			return
		}
		writeJSON(w, http.StatusOK, []byte(strconv.Itoa(n)))
		return
	}
	params.RawItems = true
	items, cursor, next, err := s.deps.Search.SearchThings(ctx, params)
	if err != nil {
		s.writeError(w, 0, cid, err)
		return
	}
	// {"items":[...],"cursor":"...","nextPageOffset":n} into a pooled
	// buffer; pre-encoded items are copied as they are. A listing is the
	// bare array.
	buf := getBuf()
	defer putBuf(buf)
	if listing {
		links := []string{"<" + r.URL.RequestURI() + `>; rel="canonical"`}
		if cursor != "" {
			links = append(links, "<"+r.URL.EscapedPath()+"?option=cursor("+cursor+`)>; rel="next"`)
		}
		w.Header()["Link"] = links
		buf.WriteByte('[')
	} else {
		buf.WriteString(`{"items":[`)
	}
	for i, it := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := appendValue(buf, it); err != nil {
			s.writeError(w, 0, cid, err)
			return
		}
	}
	buf.WriteByte(']')
	if listing {
		writeJSON(w, http.StatusOK, buf.Bytes())
		return
	}
	if cursor != "" {
		buf.WriteString(`,"cursor":`)
		if plainToken(cursor) {
			buf.WriteByte('"')
			buf.WriteString(cursor)
			buf.WriteByte('"')
		} else if err := appendValue(buf, cursor); err != nil {
			s.writeError(w, 0, cid, err)
			return
		}
	}
	if next != nil {
		buf.WriteString(`,"nextPageOffset":`)
		buf.WriteString(strconv.Itoa(*next))
	}
	buf.WriteByte('}')
	writeJSON(w, http.StatusOK, buf.Bytes())
}

// searchParams reads filter, namespaces, fields and option from the query
// string and, for POST, from a form-urlencoded body (both may be given).
func (s *Server) searchParams(r *http.Request, q url.Values) (SearchQuery, *ditto.Error) {
	vals := url.Values{}
	for k, v := range q {
		vals[k] = append(vals[k], v...)
	}
	if r.Method == http.MethodPost && r.Body != nil {
		ct := r.Header.Get("Content-Type")
		if ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded") {
			return SearchQuery{}, ditto.ErrMediaTypeUnsup.New("The Media-Type '%s' is not supported for search; use application/x-www-form-urlencoded.", ct)
		}
		r.Body = http.MaxBytesReader(nil, r.Body, int64(s.cfg.MaxBodyBytes))
		if err := r.ParseForm(); err != nil {
			return SearchQuery{}, ditto.ErrQueryParamInvalid.New("The search form body could not be read: %v", err)
		}
		for k, v := range r.PostForm {
			vals[k] = append(vals[k], v...)
		}
	}
	var out SearchQuery
	out.Filter = strings.Join(vals["filter"], "")
	if len(vals["filter"]) > 1 {
		// Several filters are combined like Ditto does: all must hold.
		out.Filter = "and(" + strings.Join(vals["filter"], ",") + ")"
	}
	for _, ns := range vals["namespaces"] {
		for _, n := range strings.Split(ns, ",") {
			if n = strings.TrimSpace(n); n != "" {
				out.Namespaces = append(out.Namespaces, n)
			}
		}
	}
	out.Fields = strings.Join(vals["fields"], ",")
	out.Options = strings.Join(vals["option"], ",")
	return out, nil
}

// plainToken reports whether s needs no escaping in a JSON string (the
// base64url alphabet of cursors).
func plainToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '=') {
			return false
		}
	}
	return true
}

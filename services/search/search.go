package search

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/ditto/rql"
)

// Query is one search request.
type Query struct {
	// Filter is an RQL expression ("" = every thing).
	Filter string
	// Namespaces restricts the search to things in these namespaces.
	Namespaces []string
	// Fields is a field selector projecting each item ("" = the thing's
	// default fields: thingId, policyId, definition, attributes, features).
	Fields string
	// Options is "sort(+thingId),size(25),cursor(x)" or "limit(0,10)".
	Options string
	Auth    ditto.Auth
	// RawItems lets Search return items as pre-encoded json.RawMessage
	// (for a requester who may read the whole thing, without fields, the
	// stored JSON is copied instead of being decoded and encoded again).
	RawItems bool
	// After starts the results after this thing in the sort order, at its
	// current sort values as the requester sees them, whether or not it
	// still matches (an SSE stream resumed with Last-Event-ID). A thing
	// that is gone or that the requester may not read is passed by its ID
	// when sorted by thingId only, else the results start from the
	// beginning; the two cases look alike. A cursor wins.
	After string
}

// Page is one page of results. Items are fresh JSON values owned by the
// caller.
type Page struct {
	Items []any `json:"items"`
	// Cursor continues with the next page; "" on the last page.
	Cursor string `json:"cursor,omitempty"`
	// NextPageOffset is the offset of the next page of a limit(off,n)
	// query; nil on the last page and without limit.
	NextPageOffset *int `json:"nextPageOffset,omitempty"`
}

// Explain describes how a query ran.
type Explain struct {
	// Plan names the index access ("eq:attributes/x~1", "scan", ...).
	Plan string
	// Scan is true when the plan could not use the index.
	Scan bool
	// Candidates is the number of things the index returned (with Scan, the
	// number of things visited).
	Candidates int
	// Examined is the number of things verified with rql.Match.
	Examined int
}

var rootPtr = ditto.Pointer{}

// prepared is a validated query.
type prepared struct {
	node     rql.Node // filter and namespaces
	hash     string
	sort     []sortKey
	sortStr  string
	size     int
	limit    bool
	off      int
	after    []any // cursor: sort values of the last item
	afterID  string
	hasAfter bool
	sel      ditto.FieldSelector
	hasSel   bool
	env      rql.Env
	subjects []string
}

// prepare validates q. count skips options and fields.
func (s *Service) prepare(q Query, count bool) (*prepared, error) {
	p := &prepared{env: rql.Env{Now: s.clock()}, subjects: q.Auth.Subjects}
	var filter rql.Node
	canon := ""
	if strings.TrimSpace(q.Filter) != "" {
		n, err := rql.Parse(q.Filter)
		if err != nil {
			return nil, err
		}
		for _, f := range rql.Fields(n) {
			if f.Placeholder != "" {
				return nil, ditto.ErrRQLInvalid.New("The RQL expression '%s' is invalid: the placeholder '%s' cannot be used in a search.", q.Filter, f.Placeholder)
			}
		}
		filter, canon = n, n.String()
	}
	nss := slices.Clone(q.Namespaces)
	slices.Sort(nss)
	nss = slices.Compact(nss)
	p.node = filter
	if len(nss) > 0 {
		in := rql.In{Field: rql.Field{Path: ditto.Pointer{"_namespace"}}}
		for _, ns := range nss {
			in.Values = append(in.Values, rql.Value{Kind: rql.String, Str: ns})
		}
		if filter == nil {
			p.node = in
		} else {
			p.node = rql.And{Children: []rql.Node{filter, in}}
		}
	}
	if count {
		return p, nil
	}
	o, err := parseOptions(q.Options, s.cfg.MaxPageSize)
	if err != nil {
		return nil, err
	}
	if o.sort == nil {
		o.sort, o.sortStr = []sortKey{{path: ditto.Pointer{"thingId"}, isID: true}}, "+thingId"
	}
	if o.hasCursor {
		cd, keys, err := decodeCursor(o.cursor)
		if err != nil {
			return nil, err
		}
		if q.Options != "" && strings.Contains(q.Options, "sort(") && cd.Sort != o.sortStr {
			return nil, cursorErr()
		}
		if cd.Sort != o.sortStr {
			ks, _, err := parseSort(cd.Sort)
			if err != nil {
				return nil, cursorErr()
			}
			o.sort, o.sortStr = ks, cd.Sort
		}
		if len(keys) != len(o.sort) || cd.Hash != queryHash(canon, nss, o.sortStr) {
			return nil, cursorErr()
		}
		p.after, p.afterID, p.hasAfter = keys, cd.ID, true
	}
	p.sort, p.sortStr = o.sort, o.sortStr
	p.hash = queryHash(canon, nss, p.sortStr)
	p.size = s.cfg.DefaultPageSize
	if o.size > 0 {
		p.size = o.size
	}
	if o.limitGiven {
		p.limit, p.off, p.size = true, o.limitOff, o.limitN
	}
	if strings.TrimSpace(q.Fields) != "" {
		sel, err := ditto.ParseFieldSelector(q.Fields)
		if err != nil {
			return nil, err
		}
		p.sel, p.hasSel = sel, true
	}
	return p, nil
}

// enfCache remembers the last enforcer looked up within one query.
type enfCache struct {
	enfs         Enforcers
	policyID, ns string
	enf          ditto.Enforcer
	ok, valid    bool
}

func (c *enfCache) get(policyID, ns string) (ditto.Enforcer, bool) {
	if !c.valid || c.policyID != policyID || c.ns != ns {
		c.enf, c.ok = nil, false
		if c.enfs != nil {
			c.enf, c.ok = c.enfs.EnforcerFor(policyID, ns)
		}
		c.policyID, c.ns, c.valid = policyID, ns, true
	}
	return c.enf, c.ok
}

// view decodes d and returns the part the subjects may read (enf and c
// from access), as the filter sees it, or false when they may read
// nothing of it (or its JSON does not decode). The result is fresh and
// owned by the caller.
func (r *runner) view(d *doc, enf ditto.Enforcer, c uint8) (map[string]any, bool) {
	if c == readNone {
		return nil, false
	}
	full, err := d.full()
	if err != nil {
		return nil, false
	}
	if c == readAll {
		return full, true
	}
	v, ok := enf.View(ditto.ResourceThing, rootPtr, full, r.p.subjects)
	if !ok {
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	// A partial reader keeps the thing's ID, namespace, revision and
	// timestamps, as on a thing GET (ditto-spec section 2.1).
	m["thingId"] = d.id
	m["_namespace"] = d.ns()
	m["_revision"] = full["_revision"]
	for _, k := range [...]string{"_created", "_modified"} {
		if v, ok := full[k]; ok {
			m[k] = v
		}
	}
	return m, true
}

// hit is one verified result. view is nil for a thing that matched
// without being decoded (see runner.certain); all is set when the
// requester may read the whole thing.
type hit struct {
	d    *doc
	view map[string]any
	keys []any
	all  bool
}

// runner verifies candidates for one query.
type runner struct {
	s        *Service
	p        *prepared
	ctx      context.Context
	ec       enfCache
	examined int
	// classes memoises access decisions per enforcer (access).
	classes map[ditto.Enforcer]uint8
	// exact is set when the candidates come from an exact plan (or the
	// query has no filter): a candidate whose slot is not in unsure
	// (sorted) matches for a requester who may read all of it, without
	// decoding it. Only documents resolved under the same read lock as
	// the plan are such candidates.
	exact  bool
	unsure []uint32
}

// setExact records the exactness of plan c for the candidates resolved
// under the same read lock (held by the caller).
func (r *runner) setExact(x *index, c cand) {
	r.exact, r.unsure = false, nil
	switch {
	case c.all:
		r.exact = r.p.node == nil // no filter: every readable thing matches
	case c.exact:
		var pl postingLists
		if len(x.odd) > 0 {
			pl.lists = append(pl.lists, x.odd)
		}
		for _, e := range c.unsure {
			pl.add(e)
		}
		r.exact, r.unsure = true, pl.union(len(x.docs))
	}
}

// certain reports whether candidate d matches the filter for a requester
// who may read all of it, without Match.
func (r *runner) certain(d *doc) bool {
	if !r.exact {
		return false
	}
	_, found := slices.BinarySearch(r.unsure, d.slot)
	return !found
}

// idKeysOnly reports whether the sort keys of a hit need no view.
func (p *prepared) idKeysOnly() bool {
	for _, k := range p.sort {
		if !k.isID {
			return false
		}
	}
	return true
}

// check verifies d and returns its hit.
func (r *runner) check(d *doc) (hit, bool, error) {
	if r.examined&63 == 0 {
		if err := r.ctx.Err(); err != nil {
			return hit{}, false, timeoutErr(err)
		}
	}
	r.examined++
	enf, c := r.access(d)
	if c == readAll && r.certain(d) && r.p.idKeysOnly() {
		h := hit{d: d, all: true}
		if len(r.p.sort) > 0 {
			h.keys = make([]any, len(r.p.sort))
			for i := range h.keys {
				h.keys[i] = d.id
			}
		}
		return h, true, nil
	}
	v, ok := r.view(d, enf, c)
	if !ok || !rql.Match(r.p.node, v, r.p.env) {
		return hit{}, false, nil
	}
	h := hit{d: d, view: v, all: c == readAll}
	if r.p.sort != nil {
		h.keys = make([]any, len(r.p.sort))
		for i, k := range r.p.sort {
			if k.isID {
				h.keys[i] = d.id
				continue
			}
			if x, ok := ditto.GetAt(v, k.path); ok {
				h.keys[i] = x
			} else {
				h.keys[i] = missing{}
			}
		}
	}
	return h, true, nil
}

func timeoutErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return ditto.ErrSearchTimeout.New("The search did not complete in time.")
	}
	return err
}

// startAfter makes the query start after thing id in its sort order, as
// a cursor at that thing would (Query.After).
func (r *runner) startAfter(id string) {
	r.s.mu.RLock()
	defer r.s.mu.RUnlock()
	byIDOnly := func() {
		if r.p.idKeysOnly() {
			// Sorted by thingId only: its ID is all the position needs.
			keys := make([]any, len(r.p.sort))
			for i := range keys {
				keys[i] = id
			}
			r.p.after, r.p.afterID, r.p.hasAfter = keys, id, true
		}
	}
	d := r.s.idx.byID(id)
	if d == nil {
		byIDOnly()
		return
	}
	enf, c := r.access(d)
	v, ok := r.view(d, enf, c)
	if !ok {
		byIDOnly() // an unreadable thing is treated as a missing one
		return
	}
	keys := make([]any, len(r.p.sort))
	for i, k := range r.p.sort {
		switch x, ok := ditto.GetAt(v, k.path); {
		case k.isID:
			keys[i] = d.id
		case ok:
			keys[i] = x
		default:
			keys[i] = missing{}
		}
	}
	r.p.after, r.p.afterID, r.p.hasAfter = keys, d.id, true
}

// afterCursor reports whether h comes after the cursor.
func (r *runner) afterCursor(h hit) bool {
	if !r.p.hasAfter {
		return true
	}
	return cmpKeys(r.p.sort, h.keys, h.d.id, r.p.after, r.p.afterID) > 0
}

// Search returns one page of the things matching q that the requester may
// read.
func (s *Service) Search(ctx context.Context, q Query) (Page, error) {
	page, _, err := s.SearchExplain(ctx, q)
	return page, err
}

// SearchExplain is Search that also says how the query ran.
func (s *Service) SearchExplain(ctx context.Context, q Query) (Page, Explain, error) {
	p, err := s.prepare(q, false)
	if err != nil {
		return Page{}, Explain{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if err := s.waitReady(ctx); err != nil {
		return Page{}, Explain{}, err
	}
	r := &runner{s: s, p: p, ctx: ctx, ec: enfCache{enfs: s.deps.Enforcers}}
	if q.After != "" && !p.hasAfter {
		r.startAfter(q.After)
	}
	need := p.size + 1
	if p.limit {
		need += p.off
	}
	var hits []hit
	var ex Explain
	if len(p.sort) == 1 && p.sort[0].isID {
		hits, ex, err = r.byID(need)
	} else {
		hits, ex, err = r.sorted(need)
	}
	if err != nil {
		return Page{}, ex, err
	}
	ex.Examined = r.examined
	page := Page{Items: []any{}}
	if p.limit {
		if len(hits) > p.off {
			hits = hits[p.off:]
		} else {
			hits = nil
		}
		if len(hits) > p.size {
			next := p.off + p.size
			page.NextPageOffset = &next
			hits = hits[:p.size]
		}
	} else if len(hits) > p.size {
		hits = hits[:p.size]
		last := hits[len(hits)-1]
		page.Cursor = encodeCursor(p.hash, p.sortStr, last.keys, last.d.id)
	}
	for _, h := range hits {
		page.Items = append(page.Items, p.item(h, q.RawItems))
	}
	return page, ex, nil
}

// item renders a hit: pre-encoded from the stored JSON when raw is allowed
// and the requester reads the whole thing with the default fields, else
// projected from its view.
func (p *prepared) item(h hit, raw bool) any {
	if raw && h.all && !p.hasSel {
		dst := make([]byte, 0, len(h.d.raw)+len(h.d.id)+len(h.d.policyID)+32)
		if b, ok := defaultItemJSON(dst, h.d); ok {
			return json.RawMessage(b)
		}
	}
	v := h.view
	if v == nil {
		full, err := h.d.full()
		if err != nil {
			return map[string]any{"thingId": h.d.id}
		}
		v = full
	}
	return p.project(v)
}

// project renders an item: the selected fields, or the default ones. v
// was decoded for this query alone, so the item may share its values.
func (p *prepared) project(v map[string]any) any {
	if p.hasSel {
		return p.sel.Apply(v)
	}
	out := make(map[string]any, 5)
	for _, k := range [...]string{"thingId", "policyId", "definition", "attributes", "features"} {
		if x, ok := v[k]; ok {
			out[k] = x
		}
	}
	return out
}

// candidates plans the query and returns its candidate documents in slot
// order, or all=true when it must scan. With scanOver > 0, a plan whose
// candidates are known to exceed scanOver is not built either (all=true,
// Explain.Scan false): a caller that stops after a page finds it sooner in
// thingId order than by building a large posting.
func (r *runner) candidates(scanOver int) (docs []*doc, slots []uint32, all bool, ex Explain) {
	s := r.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	x := s.idx
	limit := x.things
	if scanOver > 0 {
		limit = min(limit, scanOver)
	}
	c := planner{x: x, env: r.p.env}.plan(r.p.node, limit)
	ex.Plan = c.String()
	r.setExact(x, c)
	if c.all {
		ex.Scan = true
		return nil, nil, true, ex
	}
	if scanOver > 0 && (c.capped || c.est > scanOver) {
		ex.Plan += "+idwalk"
		ex.Candidates = c.est
		r.exact = r.p.node == nil
		return nil, nil, true, ex
	}
	slots = c.build()
	docs = make([]*doc, 0, len(slots))
	for _, sl := range slots {
		if d := x.docs[sl]; d != nil {
			docs = append(docs, d)
		}
	}
	ex.Candidates = len(docs)
	return docs, slots, false, ex
}

// idWalkOver is the candidate count above which a thingId-sorted page
// walks the thingId order and verifies each thing instead of building the
// candidates: with more than this many of 100k things matching, a page of
// 25 is found after a few hundred verifications, while building a posting
// of tens of thousands of keys costs tens of milliseconds.
const idWalkOver = 4096

// idWalkBudget is how many things a thingId walk over unbuilt candidates
// verifies before it builds them.
const idWalkBudget = 256

// buildCandidates plans the query without a limit and builds its
// candidate slots; ok is false when the plan cannot use the index.
func (r *runner) buildCandidates() (slots []uint32, ok bool) {
	r.s.mu.RLock()
	defer r.s.mu.RUnlock()
	x := r.s.idx
	c := planner{x: x, env: r.p.env}.plan(r.p.node, x.things)
	if c.all {
		return nil, false
	}
	return c.build(), true
}

// byID collects up to need hits in thingId order after the cursor.
func (r *runner) byID(need int) ([]hit, Explain, error) {
	desc := r.p.sort[0].desc
	docs, slots, all, ex := r.candidates(idWalkOver)
	// idwalk: many candidates, not built; the walk verifies each thing in
	// thingId order until its budget is spent, then builds them.
	idwalk := all && !ex.Scan && r.p.node != nil
	var hits []hit
	var member func(*doc) bool
	useMembers := func(slots []uint32) {
		// Walking the thingId order and stopping after need hits beats
		// sorting many candidates.
		set := newBitmap(int(slices.Max(slots)) + 1)
		for _, sl := range slots {
			set.set(sl)
		}
		member = func(d *doc) bool { return set.has(d.slot) }
		all = true
		// The walk reads documents under later read locks: a thing
		// changed since the plan must be verified.
		r.exact = false
	}
	if !all && len(docs) > idWalkOver {
		useMembers(slots)
	}
	if !all {
		slices.SortFunc(docs, func(a, b *doc) int {
			if desc {
				return strings.Compare(b.id, a.id)
			}
			return strings.Compare(a.id, b.id)
		})
		for _, d := range docs {
			h, ok, err := r.check(d)
			if err != nil {
				return nil, ex, err
			}
			if ok && r.afterCursor(h) {
				if hits = append(hits, h); len(hits) >= need {
					break
				}
			}
		}
		return hits, ex, nil
	}
	// Scan in thingId order (the thingId field's keys), a chunk at a time
	// under the read lock, so the page stops after need hits and writers
	// are not held up.
	from, started := "", false
	if r.p.hasAfter {
		from, started = r.p.afterID, true
	}
	const chunk = 256
	buf := make([]*doc, 0, chunk)
	for {
		buf = buf[:0]
		r.s.mu.RLock()
		x := r.s.idx
		visit := func(e *entry) bool {
			if e.t != tStr {
				return !desc // the presence key sorts before the IDs
			}
			if started && e.s == from {
				return true
			}
			if e.size() > 0 {
				if d := x.docs[e.first()]; d != nil {
					buf = append(buf, d)
				}
			}
			return len(buf) < chunk
		}
		if f := x.fields["thingId"]; f != nil {
			pivot := &entry{t: tStr, s: from}
			switch {
			case desc && !started:
				f.vals.Descend(visit)
			case desc:
				f.vals.DescendLessOrEqual(pivot, visit)
			default:
				f.vals.AscendGreaterOrEqual(pivot, visit)
			}
		}
		r.s.mu.RUnlock()
		if member == nil {
			ex.Candidates += len(buf)
		}
		if idwalk && member == nil && r.examined > idWalkBudget {
			// The matches are sparse where the walk is (values that follow
			// the thingIds): build the candidates after all.
			if slots, ok := r.buildCandidates(); ok && len(slots) > 0 {
				useMembers(slots)
			} else if ok {
				return hits, ex, nil
			}
		}
		for _, d := range buf {
			if member != nil && !member(d) {
				continue
			}
			h, ok, err := r.check(d)
			if err != nil {
				return nil, ex, err
			}
			if ok && r.afterCursor(h) {
				if hits = append(hits, h); len(hits) >= need {
					return hits, ex, nil
				}
			}
		}
		if len(buf) < chunk {
			return hits, ex, nil
		}
		from, started = buf[len(buf)-1].id, true
	}
}

// checkAll verifies docs and returns the first need hits after the cursor
// in sort order.
func (r *runner) checkAll(docs []*doc, need int) ([]hit, error) {
	var hits []hit
	for _, d := range docs {
		h, ok, err := r.check(d)
		if err != nil {
			return nil, err
		}
		if ok && r.afterCursor(h) {
			hits = append(hits, h)
		}
	}
	r.sortHits(hits)
	if len(hits) > need {
		hits = hits[:need]
	}
	return hits, nil
}

func (r *runner) sortHits(hits []hit) {
	slices.SortFunc(hits, func(a, b hit) int { return cmpKeys(r.p.sort, a.keys, a.d.id, b.keys, b.d.id) })
}

func (s *Service) allDocs() []*doc {
	s.mu.RLock()
	defer s.mu.RUnlock()
	docs := make([]*doc, 0, s.idx.things)
	for _, d := range s.idx.docs {
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs
}

// Count returns how many things match q's filter and namespaces that the
// requester may read. Options and fields are ignored.
func (s *Service) Count(ctx context.Context, q Query) (int, error) {
	p, err := s.prepare(q, true)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if err := s.waitReady(ctx); err != nil {
		return 0, err
	}
	r := &runner{s: s, p: p, ctx: ctx, ec: enfCache{enfs: s.deps.Enforcers}}
	docs, _, all, _ := r.candidates(0)
	if all {
		docs = s.allDocs()
	}
	n := 0
	for _, d := range docs {
		_, ok, err := r.check(d)
		if err != nil {
			return 0, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

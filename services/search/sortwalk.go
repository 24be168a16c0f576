package search

import (
	"encoding/json"
	"math"
	"math/bits"
	"slices"
	"strings"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/ditto/rql"
)

// Sorting on a field other than thingId walks that field's ordered keys
// (keyset: from the cursor's value on) instead of verifying every
// candidate. The sort value of a thing is read from the requester's view;
// the index key is that value when the value is one scalar and the view
// shows it:
//
//   - rank 0 (missing or null): candidates without the path or with a null
//     key, checked as one group (by thingId with a single sort key, so the
//     page stops early);
//   - numbers, strings and booleans: the field's keys in order, each key's
//     candidates as one group;
//   - things whose value is an object, an array or lies in one (the tIrr
//     key) are verified up front and merged by their true sort value.
//
// Access is decided lazily, only for the things the walk reaches (with
// per-thing policies that is one enforcer lookup per thing, so deciding it
// for every candidate up front would cost more than the page). A partial
// reader reached in a value group is a hit of that group when its view
// shows the value. When its view hides the value, the thing sorts as
// missing (rank 0):
//
//   - a filter that bounds the sort field never matches such a view, and
//     bounded walks skip rank 0;
//   - a descending walk without a cursor reaches rank 0 only after every
//     value group, so the hidden ones it met on the way are kept and
//     merged (deferred);
//   - otherwise (ascending, where rank 0 comes first, or descending from a
//     cursor, which skipped value groups) the walk looks up every present
//     candidate's access when it comes to rank 0 (hiddenHits).
//
// Each hit of the walk must have the sort value of its group, else it is
// dropped (it is served by the group of its true value).

// walkSource is one stretch of the walk in sort order.
type walkSource struct {
	rank int   // rank() of the values of the stretch
	t    uint8 // key type; 0 for the rank-0 group
}

// walkOrder lists the stretches ascending (MongoDB order): missing and
// null, numbers, strings, (objects, arrays: not walked), booleans.
var walkOrder = []walkSource{{rank: 0}, {rank: 1, t: tNum}, {rank: 2, t: tStr}, {rank: 5, t: tBool}}

// useWalk decides between walking the sort field and verifying every
// candidate: the walk visits about keys*need/cands keys (cheap) before it
// has a page, verification costs a decode per candidate.
func useWalk(cands, keys, need int) bool {
	return cands > 2*need && int64(keys)*int64(need) < 100*int64(cands)*int64(cands)
}

// walkBuildLimit is the candidate estimate above which a walk bounded by
// the filter on its sort field does not build the candidate set: the walk
// enumerates the things within those bounds itself (the filter decides),
// while building a range of many keys costs more than a page. Planning
// such a query only counts range keys up to this limit; that count was
// most of the cost of a sorted range page at 4096, and with more than a
// few hundred candidates in the bounds the walk reaches a page of 25
// sooner than building and verifying them all.
const walkBuildLimit = 512

// sorted returns the first need hits after the cursor in sort order.
func (r *runner) sorted(need int) ([]hit, Explain, error) {
	var ex Explain
	path := strings.Join(r.p.sort[0].path, "/")
	_, _, bounded := walkBounds(r.p.node, path, planner{env: r.p.env})
	s := r.s
	s.mu.RLock()
	x := s.idx
	limit := x.things
	if bounded {
		limit = min(limit, walkBuildLimit)
	}
	c := planner{x: x, env: r.p.env}.plan(r.p.node, limit)
	ex.Plan, ex.Scan = c.String(), c.all
	keys := 0
	if f := x.fields[path]; f != nil {
		keys = f.vals.Len()
	}
	var inC bitmap
	var docs []*doc
	switch {
	case bounded && !c.all && c.est > walkBuildLimit && useWalk(c.est, keys, need):
		// Candidates: the things within the walk's bounds (est is a lower
		// bound of their number).
		inC, ex.Candidates = fullBitmap(len(x.docs)), c.est
	case c.all && useWalk(x.things, keys, need):
		inC, ex.Candidates = fullBitmap(len(x.docs)), x.things
	case c.all:
		docs = liveDocs(x, nil)
		ex.Candidates = len(docs)
	default:
		docs = liveDocs(x, c.build())
		ex.Candidates = len(docs)
		if useWalk(len(docs), keys, need) {
			inC = newBitmap(len(x.docs))
			for _, d := range docs {
				inC.set(d.slot)
			}
		}
	}
	s.mu.RUnlock()
	if inC == nil {
		hits, err := r.checkAll(docs, need)
		return hits, ex, err
	}
	ex.Plan += "+sortwalk:" + path
	hits, err := r.walk(inC, path, need)
	return hits, ex, err
}

// liveDocs returns the documents of slots (nil: of every thing). Called
// with the read lock held.
func liveDocs(x *index, slots []uint32) []*doc {
	if slots == nil {
		docs := make([]*doc, 0, x.things)
		for _, d := range x.docs {
			if d != nil {
				docs = append(docs, d)
			}
		}
		return docs
	}
	docs := make([]*doc, 0, len(slots))
	for _, sl := range slots {
		if d := x.docs[sl]; d != nil {
			docs = append(docs, d)
		}
	}
	return docs
}

// walk is sorted by walking the sort field over the candidates inC (which
// it modifies).
func (r *runner) walk(inC bitmap, path string, need int) ([]hit, error) {
	desc := r.p.sort[0].desc
	var ra int
	var after any
	if r.p.hasAfter {
		after = r.p.after[0]
		ra = rank(after)
	}
	lo, hi, bounded := walkBounds(r.p.node, path, planner{env: r.p.env})
	// deferHidden: value groups are walked completely before rank 0, so
	// the hidden values met on the way are all there are.
	deferHidden := desc && !r.p.hasAfter && !bounded
	// Things whose value is not one scalar are verified up front.
	var extra []*doc
	r.s.mu.RLock()
	x := r.s.idx
	if f := x.fields[path]; f != nil {
		if e := f.get(vkey{t: tIrr}); e != nil {
			for sl := range e.all() {
				if inC.has(sl) {
					inC.clear(sl)
					if d := x.docs[sl]; d != nil {
						extra = append(extra, d)
					}
				}
			}
		}
	}
	r.s.mu.RUnlock()
	eh, err := r.checkAll(extra, need)
	if err != nil {
		return nil, err
	}
	order := walkOrder
	if desc {
		order = slices.Clone(walkOrder)
		slices.Reverse(order)
	}
	if bounded {
		// Only things with a value of the bounds' type in the bounds can
		// match: walk just that stretch of keys.
		order = slices.DeleteFunc(slices.Clone(order), func(w walkSource) bool { return w.t != lo.t })
	} else {
		lo, hi = vkey{t: tPresent, n: math.Inf(-1)}, vkey{t: tStr + 1}
	}
	var hits []hit
	var groups []walkGroup
	for _, src := range order {
		if r.p.hasAfter && ((!desc && src.rank < ra) || (desc && src.rank > ra)) {
			continue // wholly before the cursor
		}
		if src.rank == 0 && !deferHidden {
			hh, err := r.hiddenHits(inC, path)
			if err != nil {
				return nil, err
			}
			eh = append(eh, hh...)
		}
		// The walk resumes at from: inclusive for the cursor's value,
		// exclusive after a chunk.
		from, exclusive := vkey{t: src.t, n: math.Inf(-1)}, false
		if desc {
			from = vkey{t: src.t, n: math.Inf(1), s: maxString}
		}
		if bounded {
			from = lo
			if desc {
				from = hi
			}
		}
		if r.p.hasAfter && src.rank == ra {
			if ck := cursorKey(after); !bounded || (!desc && cmpKey(ck, from) > 0) || (desc && cmpKey(ck, from) < 0) {
				from = ck
			}
		}
		stop := hi
		if desc {
			stop = lo
		}
		for len(hits) < need {
			r.s.mu.RLock()
			x := r.s.idx
			f := x.fields[path]
			switch {
			case src.rank == 0:
				groups = append(groups[:0], rankZero(x, f, inC))
			case f != nil:
				groups = collect(x, f, from, stop, exclusive, desc, inC, groups[:0])
			default:
				groups = groups[:0]
			}
			r.s.mu.RUnlock()
			for _, g := range groups {
				if len(hits) >= need {
					break
				}
				gh, hidden, err := r.checkGroup(g, need-len(hits))
				if err != nil {
					return nil, err
				}
				hits = append(hits, gh...)
				if deferHidden {
					eh = append(eh, hidden...)
				}
			}
			if src.rank == 0 || len(groups) < walkChunk {
				break
			}
			from, exclusive = groups[len(groups)-1].k, true
		}
		if len(hits) >= need {
			break
		}
	}
	hits = append(hits, eh...)
	r.sortHits(hits)
	if len(hits) > need {
		hits = hits[:need]
	}
	return hits, nil
}

// hiddenHits returns the hits among the candidates with a non-null value
// at path whose view hides it: partial readers, for whom the thing sorts
// as missing. It looks up the access of every such candidate.
func (r *runner) hiddenHits(inC bitmap, path string) ([]hit, error) {
	var present []*doc
	r.s.mu.RLock()
	x := r.s.idx
	if f := x.fields[path]; f != nil {
		var null bitmap
		if e := f.get(vkey{t: tNull}); e != nil {
			null = newBitmap(len(inC) * 64)
			e.orInto(null)
		}
		if e := f.get(vkey{t: tPresent}); e != nil {
			for sl := range e.all() {
				if inC.has(sl) && !null.has(sl) {
					if d := x.docs[sl]; d != nil {
						present = append(present, d)
					}
				}
			}
		}
	}
	r.s.mu.RUnlock()
	var hits []hit
	for i, d := range present {
		if i&1023 == 0 {
			if err := r.ctx.Err(); err != nil {
				return nil, timeoutErr(err)
			}
		}
		if _, c := r.access(d); c != readPart {
			continue
		}
		h, ok, err := r.check(d)
		if err != nil {
			return nil, err
		}
		if ok && rank(h.keys[0]) == 0 && r.afterCursor(h) {
			hits = append(hits, h)
		}
	}
	return hits, nil
}

// walkChunk is the number of keys collected under one read lock.
const walkChunk = 64

// walkGroup is the walked candidates with one sort value.
type walkGroup struct {
	k    vkey // tPresent for the rank-0 group
	docs []*doc
}

// collect gathers up to walkChunk non-empty groups of the keys of from's
// type, from from on in sort direction (without from itself when
// exclusive).
func collect(x *index, f *field, from, stop vkey, exclusive, desc bool, inC bitmap, out []walkGroup) []walkGroup {
	visit := func(e *entry) bool {
		if e.t != from.t || (!desc && cmpKey(e.key(), stop) > 0) || (desc && cmpKey(e.key(), stop) < 0) {
			return false
		}
		if exclusive && cmpKey(e.key(), from) == 0 {
			return true
		}
		var ds []*doc
		for sl := range e.all() {
			if inC.has(sl) {
				if d := x.docs[sl]; d != nil {
					ds = append(ds, d)
				}
			}
		}
		if len(ds) > 0 {
			out = append(out, walkGroup{k: e.key(), docs: ds})
		}
		return len(out) < walkChunk
	}
	if desc {
		f.vals.DescendLessOrEqual(pivotOf(from), visit)
	} else {
		f.vals.AscendGreaterOrEqual(pivotOf(from), visit)
	}
	return out
}

// maxString sorts after every string key: JSON strings decode to valid
// UTF-8, which never holds the byte 0xff.
const maxString = "\xff"

// rankZero is the group of candidates without the path or with null at it.
func rankZero(x *index, f *field, inC bitmap) walkGroup {
	g := walkGroup{k: vkey{t: tPresent}}
	present, null := bitmap(nil), bitmap(nil)
	if f != nil {
		if e := f.get(vkey{t: tPresent}); e != nil {
			present = newBitmap(len(inC) * 64)
			e.orInto(present)
		}
		if e := f.get(vkey{t: tNull}); e != nil {
			null = newBitmap(len(inC) * 64)
			e.orInto(null)
		}
	}
	for w, b := range inC {
		for ; b != 0; b &= b - 1 {
			sl := uint32(w*64 + bits.TrailingZeros64(b))
			if present.has(sl) && !null.has(sl) {
				continue
			}
			if d := x.docs[sl]; d != nil {
				g.docs = append(g.docs, d)
			}
		}
	}
	return g
}

// cursorKey is the index key of a cursor's sort value.
func cursorKey(v any) vkey {
	switch t := v.(type) {
	case json.Number:
		return numKey(string(t))
	case string:
		return vkey{t: tStr, s: t}
	case bool:
		if t {
			return vkey{t: tBool, n: 1}
		}
		return vkey{t: tBool}
	}
	return vkey{}
}

// hasValue reports whether a view's sort value is the value of group key k.
func hasValue(v any, k vkey) bool {
	switch t := v.(type) {
	case missing, nil:
		return k.t == tPresent
	case json.Number:
		return k.t == tNum && numKey(string(t)).n == k.n
	case string:
		return k.t == tStr && t == k.s
	case bool:
		return k.t == tBool && (k.n == 1) == t
	}
	return false
}

// checkGroup verifies a group and returns its hits in sort order. With a
// single sort key the group is ordered by thingId and stops after need
// hits. hidden are the hits whose view hides the group's value (they sort
// as missing).
func (r *runner) checkGroup(g walkGroup, need int) (hits, hidden []hit, err error) {
	single := len(r.p.sort) == 1
	if single {
		slices.SortFunc(g.docs, func(a, b *doc) int { return strings.Compare(a.id, b.id) })
	}
	atCursor := r.p.hasAfter && hasValue(r.p.after[0], g.k)
	for _, d := range g.docs {
		if single && atCursor && d.id <= r.p.afterID {
			continue
		}
		h, ok, err := r.check(d)
		if err != nil {
			return nil, nil, err
		}
		if !ok || !r.afterCursor(h) {
			continue
		}
		if !hasValue(h.keys[0], g.k) {
			if g.k.t != tPresent && rank(h.keys[0]) == 0 {
				hidden = append(hidden, h)
			}
			continue
		}
		hits = append(hits, h)
		if single && len(hits) >= need {
			return hits, hidden, nil
		}
	}
	if !single {
		r.sortHits(hits)
	}
	return hits, hidden, nil
}

// Readability of a thing for the runner's subjects.
const (
	readNone uint8 = iota
	readPart
	readAll
)

// maxClasses bounds the access decisions one query memoises.
const maxClasses = 4096

// access returns d's enforcer and what the requester may read of d. The
// decision depends only on the enforcer and the query's subjects, so it is
// memoised per enforcer for the query: things whose policies have equal
// content share one interned enforcer (100k default policies of one user
// cost one decision, not 100k).
func (r *runner) access(d *doc) (ditto.Enforcer, uint8) {
	enf, ok := r.ec.get(d.policyID, d.ns())
	if !ok || enf == nil {
		return nil, readNone
	}
	if c, ok := r.classes[enf]; ok {
		return enf, c
	}
	c := readNone
	switch {
	case enf.Unrestricted(ditto.ResourceThing, rootPtr, r.p.subjects, ditto.PermRead):
		c = readAll
	case enf.Partial(ditto.ResourceThing, rootPtr, r.p.subjects, ditto.PermRead):
		c = readPart
	}
	if r.classes == nil {
		r.classes = make(map[ditto.Enforcer]uint8, 4)
	}
	if len(r.classes) < maxClasses {
		r.classes[enf] = c
	}
	return enf, c
}

// walkBounds returns the inclusive key range on path that the filter
// leaves to a thing with one scalar value there: the conjunction of its
// comparisons of path with a number or a string. ok is false when the
// filter does not bound path so.
func walkBounds(n rql.Node, path string, p planner) (lo, hi vkey, ok bool) {
	var visit func(rql.Node)
	visit = func(n rql.Node) {
		switch x := n.(type) {
		case rql.And:
			for _, c := range x.Children {
				visit(c)
			}
		case rql.Compare:
			if x.Field.Placeholder != "" || strings.Join(x.Field.Path, "/") != path {
				return
			}
			k, kok := p.litKey(x.Value)
			if !kok || (k.t != tNum && k.t != tStr) || (ok && k.t != lo.t) {
				return
			}
			if !ok {
				lo, hi, ok = vkey{t: k.t, n: math.Inf(-1)}, vkey{t: k.t, n: math.Inf(1), s: maxString}, true
			}
			switch x.Op {
			case rql.OpEq:
				lo, hi = maxKey(lo, k), minKey(hi, k)
			case rql.OpGt, rql.OpGe:
				lo = maxKey(lo, k)
			case rql.OpLt, rql.OpLe:
				hi = minKey(hi, k)
			}
		}
	}
	visit(n)
	return lo, hi, ok
}

func maxKey(a, b vkey) vkey {
	if cmpKey(a, b) >= 0 {
		return a
	}
	return b
}

func minKey(a, b vkey) vkey {
	if cmpKey(a, b) <= 0 {
		return a
	}
	return b
}

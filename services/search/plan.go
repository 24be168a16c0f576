package search

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/ditto/rql"
)

// cand is the planner's answer for one expression: either every thing
// (all) or the things of a posting built on demand. est estimates the
// posting's size (exactly for eq, in and exists); capped means counting
// stopped at the planner's limit, so the size is only known to exceed est.
//
// exact means the built posting is precisely the set of things whose full
// view matches the expression, except for the things in the postings of
// unsure (the irregular keys of the fields involved: values that are
// objects or arrays or lie inside arrays, where the index flattens nested
// arrays and Match does not) and the index's odd things. A reader who may
// read a whole thing then needs no Match for a candidate outside those.
type cand struct {
	all    bool
	est    int
	capped bool
	exact  bool
	unsure []*entry
	build  func() []uint32 // runs under the index read lock
	desc   string
}

var allCand = cand{all: true, desc: "scan"}

// emptyCand is an empty posting: exact, Match would accept none of them.
func emptyCand(desc string) cand {
	return cand{exact: true, build: func() []uint32 { return nil }, desc: desc}
}

// planner turns an RQL expression into candidates. It runs under the
// index's read lock.
type planner struct {
	x   *index
	env rql.Env
}

// plan returns the candidates of n. limit bounds the work of estimating
// range sizes: an estimate above limit is only known to be above it.
func (p planner) plan(n rql.Node, limit int) cand {
	switch x := n.(type) {
	case nil:
		return allCand
	case rql.And:
		var parts []cand
		exact := true
		if c, ok := p.boundedRange(x.Children, limit); ok {
			parts = append(parts, c)
			limit = min(limit, 8*c.est+4096)
			exact = exact && c.exact
		}
		for _, c := range x.Children {
			cc := p.plan(c, limit)
			if cc.all {
				exact = false
				continue
			}
			parts = append(parts, cc)
			limit = min(limit, 8*cc.est+4096)
		}
		if len(parts) == 0 {
			return allCand
		}
		slices.SortStableFunc(parts, func(a, b cand) int { return cmp.Compare(a.est, b.est) })
		// Intersect the smallest posting with the others of similar size;
		// much larger ones cost more to build than Match costs to verify.
		use := parts[:1]
		for _, c := range parts[1:] {
			if c.est <= 8*parts[0].est+4096 && !c.capped {
				use = append(use, c)
			}
		}
		// Exact only when every child is intersected and exact itself.
		exact = exact && len(use) == len(parts)
		var unsure []*entry
		descs := make([]string, len(use))
		for i, c := range use {
			descs[i] = c.desc
			exact = exact && c.exact
			unsure = append(unsure, c.unsure...)
		}
		if !exact {
			unsure = nil
		}
		if len(use) == 1 {
			return cand{est: use[0].est, capped: use[0].capped, exact: exact, unsure: unsure, build: use[0].build, desc: "and[" + use[0].desc + "]"}
		}
		return cand{est: use[0].est, capped: use[0].capped, exact: exact, unsure: unsure, desc: "and[" + strings.Join(descs, "&") + "]", build: func() []uint32 {
			out := use[0].build()
			for _, c := range use[1:] {
				if len(out) == 0 {
					break
				}
				out = intersect(out, c.build())
			}
			return out
		}}
	case rql.Or:
		parts := make([]cand, 0, len(x.Children))
		est, capped, exact := 0, false, true
		var unsure []*entry
		descs := make([]string, 0, len(x.Children))
		for _, c := range x.Children {
			cc := p.plan(c, limit)
			if cc.all {
				return allCand
			}
			parts = append(parts, cc)
			est += cc.est
			capped = capped || cc.capped
			exact = exact && cc.exact
			unsure = append(unsure, cc.unsure...)
			descs = append(descs, cc.desc)
		}
		if !exact {
			unsure = nil
		}
		n := len(p.x.docs)
		return cand{est: est, capped: capped, exact: exact, unsure: unsure, desc: "or[" + strings.Join(descs, ",") + "]", build: func() []uint32 {
			lists := make([][]uint32, len(parts))
			for i, c := range parts {
				lists[i] = c.build()
			}
			return union(lists, n)
		}}
	case rql.Compare:
		return p.compare(x, limit)
	case rql.In:
		f, ok := p.field(x.Field)
		if !ok {
			return allCand
		}
		if f == nil {
			return emptyCand("in:none")
		}
		var entries []*entry
		exact := true
		for _, v := range x.Values {
			k, ok := p.litKey(v)
			if !ok {
				return allCand
			}
			exact = exact && exactKey(k)
			if e := f.get(k); e != nil {
				entries = append(entries, e)
			}
		}
		return p.exactIf(exact, f, p.entriesCand("in:"+f.path, entries))
	case rql.Exists:
		c := p.presence(x.Field, "exists")
		if f, ok := p.field(x.Field); ok && f != nil {
			// Presence keys are exact for exists: a path is present when
			// Match finds it, including through arrays (unsure).
			c = p.exactIf(true, f, c)
		}
		return c
	default: // Not, Empty: absent fields match, the index cannot list them
		return allCand
	}
}

// field resolves an expression field to its index field. ok is false for
// placeholders (not indexable); f is nil when no thing has the path.
func (p planner) field(fl rql.Field) (f *field, ok bool) {
	if fl.Placeholder != "" || len(fl.Path) == 0 {
		return nil, false
	}
	return p.x.fields[strings.Join(fl.Path, "/")], true
}

func (p planner) presence(fl rql.Field, what string) cand {
	f, ok := p.field(fl)
	if !ok {
		return allCand
	}
	if f == nil {
		return emptyCand(what + ":none")
	}
	e := f.get(vkey{t: tPresent})
	if e == nil {
		return emptyCand(what + ":none")
	}
	return p.entriesCand(what+":"+f.path, []*entry{e})
}

// entriesCand is the union of the postings of entries.
func (p planner) entriesCand(desc string, entries []*entry) cand {
	est := 0
	for _, e := range entries {
		est += e.size()
	}
	n := len(p.x.docs)
	return cand{est: est, desc: desc, build: func() []uint32 {
		var pl postingLists
		for _, e := range entries {
			pl.add(e)
		}
		return pl.union(n)
	}}
}

// exactKey reports whether an index key equals Match's equality for its
// literal: strings and booleans do; numbers are keyed by float64 value
// while Match compares integers exactly, and null is left to Match.
func exactKey(k vkey) bool { return k.t == tStr || k.t == tBool }

// exactIf marks c exact when ok, with the irregular things of f unsure.
func (p planner) exactIf(ok bool, f *field, c cand) cand {
	if !ok || c.all {
		return c
	}
	c.exact = true
	if e := f.get(vkey{t: tIrr}); e != nil {
		c.unsure = []*entry{e}
	}
	return c
}

// litKey is the index key of a literal for equality.
func (p planner) litKey(v rql.Value) (vkey, bool) {
	switch v.Kind {
	case rql.String:
		return vkey{t: tStr, s: v.Str}, true
	case rql.Number:
		return numKey(string(v.Num)), true
	case rql.Bool:
		if v.Bool {
			return vkey{t: tBool, n: 1}, true
		}
		return vkey{t: tBool}, true
	case rql.Null:
		return vkey{t: tNull}, true
	case rql.TimeNowEpochMillis:
		return vkey{t: tNum, n: float64(p.env.Now.UnixMilli())}, true
	}
	return vkey{}, false // time:now compares strings as instants
}

func (p planner) compare(c rql.Compare, limit int) cand {
	if c.Op == rql.OpNe {
		return p.presence(c.Field, "ne")
	}
	f, ok := p.field(c.Field)
	if !ok {
		return allCand
	}
	if f == nil {
		return emptyCand(c.Op + ":none")
	}
	switch c.Op {
	case rql.OpEq:
		k, ok := p.litKey(c.Value)
		if !ok {
			return allCand
		}
		e := f.get(k)
		if e == nil {
			return p.exactIf(exactKey(k), f, emptyCand("eq:none"))
		}
		return p.exactIf(exactKey(k), f, p.entriesCand("eq:"+f.path, []*entry{e}))
	case rql.OpGt, rql.OpGe, rql.OpLt, rql.OpLe:
		k, ok := p.litKey(c.Value)
		if !ok {
			return allCand
		}
		if k.t == tBool {
			return p.boolRange(c.Op, k, f)
		}
		if k.t != tNum && k.t != tStr {
			return emptyCand("range:unordered") // null has no order
		}
		lo, in := vkey{t: k.t, n: math.Inf(-1)}, func(e *entry) bool { return cmpKey(e.key(), k) <= 0 }
		if c.Op == rql.OpGt || c.Op == rql.OpGe {
			// Inclusive bounds: float64 keys may round, Match decides.
			lo, in = k, func(e *entry) bool { return e.t == k.t }
		}
		// Strings compare bytewise in both; the inclusive bound is exact
		// for ge and le only.
		exact := k.t == tStr && (c.Op == rql.OpGe || c.Op == rql.OpLe)
		return p.exactIf(exact, f, p.rangeCand("range:"+f.path, f, lo, in, nil, limit))
	case rql.OpLike, rql.OpILike:
		if c.Value.Kind != rql.String {
			return emptyCand("like:nonstring")
		}
		test := likeTest(c)
		prefix := likePrefix(c.Value.Str)
		if c.Op == rql.OpILike || prefix == "" {
			return p.exactIf(true, f, p.rangeCand("likescan:"+f.path, f, vkey{t: tStr}, func(e *entry) bool { return e.t == tStr }, test, limit))
		}
		if prefixOnly(c.Value.Str) {
			test = nil // "abc*": the prefix range is the answer
		}
		// With a per-key test rql's own like decides each key, so the
		// range is exact either way.
		return p.exactIf(true, f, p.rangeCand("likeprefix:"+f.path, f, vkey{t: tStr, s: prefix}, func(e *entry) bool {
			return e.t == tStr && strings.HasPrefix(e.s, prefix)
		}, test, limit))
	}
	return allCand
}

// boolRange plans a comparison with a boolean: false < true, so the
// answer is the postings of at most both values, exactly.
func (p planner) boolRange(op string, k vkey, f *field) cand {
	var es []*entry
	for _, n := range [...]float64{0, 1} {
		var in bool
		switch op {
		case rql.OpGt:
			in = n > k.n
		case rql.OpGe:
			in = n >= k.n
		case rql.OpLt:
			in = n < k.n
		case rql.OpLe:
			in = n <= k.n
		}
		if !in {
			continue
		}
		if e := f.get(vkey{t: tBool, n: n}); e != nil {
			es = append(es, e)
		}
	}
	if len(es) == 0 {
		return p.exactIf(true, f, emptyCand("range:bool:none"))
	}
	return p.exactIf(true, f, p.entriesCand("range:bool:"+f.path, es))
}

// boundedRange finds a lower and an upper bound on the same field among
// the children of an and (ge(f,a),lt(f,b)) and plans them as one range.
func (p planner) boundedRange(children []rql.Node, limit int) (cand, bool) {
	lower := map[string]vkey{}
	for _, c := range children {
		cmpn, ok := c.(rql.Compare)
		if !ok || (cmpn.Op != rql.OpGt && cmpn.Op != rql.OpGe) {
			continue
		}
		if k, ok := p.litKey(cmpn.Value); ok && (k.t == tNum || k.t == tStr) && cmpn.Field.Placeholder == "" {
			lower[strings.Join(cmpn.Field.Path, "/")] = k
		}
	}
	for _, c := range children {
		cmpn, ok := c.(rql.Compare)
		if !ok || (cmpn.Op != rql.OpLt && cmpn.Op != rql.OpLe) || cmpn.Field.Placeholder != "" {
			continue
		}
		path := strings.Join(cmpn.Field.Path, "/")
		lo, ok1 := lower[path]
		hi, ok2 := p.litKey(cmpn.Value)
		if !ok1 || !ok2 || hi.t != lo.t {
			continue
		}
		f := p.x.fields[path]
		if f == nil {
			return emptyCand("range:none"), true
		}
		return p.rangeCand("range:"+path, f, lo, func(e *entry) bool { return cmpKey(e.key(), hi) <= 0 }, nil, limit), true
	}
	return cand{}, false
}

// rangeCand is the union of the entries of f from lo while in(e) holds and
// that pass test (nil: all).
func (p planner) rangeCand(desc string, f *field, lo vkey, in func(*entry) bool, test func(string) bool, limit int) cand {
	est := 0
	f.vals.AscendGreaterOrEqual(pivotOf(lo), func(e *entry) bool {
		if !in(e) {
			return false
		}
		est += e.size()
		return est <= limit
	})
	n := len(p.x.docs)
	return cand{est: est, capped: est > limit, desc: desc, build: func() []uint32 {
		if est > limit || est >= n/64 {
			// Many keys (often one thing each): set bits as the keys go by
			// rather than collecting their postings for a union.
			set := newBitmap(n)
			f.vals.AscendGreaterOrEqual(pivotOf(lo), func(e *entry) bool {
				if !in(e) {
					return false
				}
				if test == nil || test(e.s) {
					e.orInto(set)
				}
				return true
			})
			return set.slots()
		}
		var pl postingLists
		f.vals.AscendGreaterOrEqual(pivotOf(lo), func(e *entry) bool {
			if !in(e) {
				return false
			}
			if test == nil || test(e.s) {
				pl.add(e)
			}
			return true
		})
		return pl.union(n)
	}}
}

// likePrefix returns the literal prefix of a like pattern: the characters
// before the first '*' or '?' (like has no escape).
func likePrefix(pat string) string {
	if i := strings.IndexAny(pat, "*?"); i >= 0 {
		return pat[:i]
	}
	return pat
}

// prefixOnly reports whether a like pattern is a literal prefix followed by
// a single '*' and nothing else.
func prefixOnly(pat string) bool {
	for i := 0; i < len(pat); i++ {
		switch pat[i] {
		case '*':
			return i == len(pat)-1
		case '?':
			return false
		}
	}
	return false
}

// likeTest returns a test of a single string against the like pattern,
// evaluated by rql itself so the index never disagrees with Match.
func likeTest(c rql.Compare) func(string) bool {
	n := rql.Compare{Op: c.Op, Field: rql.Field{Path: ditto.Pointer{"v"}}, Value: c.Value}
	return func(s string) bool {
		return rql.Match(n, map[string]any{"v": s}, rql.Env{})
	}
}

// describe renders a candidate count for Explain.
func (c cand) String() string {
	if c.all {
		return c.desc
	}
	return c.desc + "~" + strconv.Itoa(c.est)
}

package policies

import (
	"crypto/sha256"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Enforcer is a compiled policy: one trie per resource type whose nodes hold
// the statements of every applicable entry. It implements ditto.Enforcer
// exactly as Ditto's trie-based enforcer decides:
//
//   - a node inherits its parent's effective (permission, subject) state with
//     a lower weight (weights are node depths here); its own grant replaces
//     an inherited revoke, its own revoke replaces any grant: at one node
//     revoke beats grant;
//   - allow ⇔ every permission is granted to some requester subject and the
//     heaviest revoke among the requester's subjects is lighter than the
//     heaviest grant: the deepest statement wins, revoke wins ties, across
//     subjects too.
//
// An Enforcer is immutable and safe for concurrent use. It is exact for
// evaluation times in [validFrom, validUntil): outside that window a subject
// expired or is about to, and the service compiles a new one.
type Enforcer struct {
	roots      [3]*node // thing, policy, message
	validFrom  time.Time
	validUntil time.Time // zero: no expiring subject
}

var _ ditto.Enforcer = (*Enforcer)(nil)

// stmt is the own statement of one subject at one node.
type stmt struct{ grant, revoke uint8 }

type node struct {
	depth    int16
	children map[string]*node
	own      map[string]stmt
	// below* are the permission bits granted / revoked per subject anywhere
	// strictly below this node.
	belowGrant  map[string]uint8
	belowRevoke map[string]uint8
}

func rootIndex(resType string) int {
	switch resType {
	case ditto.ResourceThing:
		return 0
	case ditto.ResourcePolicy:
		return 1
	case ditto.ResourceMessage:
		return 2
	}
	return -1
}

// namespaceMatches applies an entry's namespaces to the entity namespace ns.
func namespaceMatches(patterns []any, ns string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		s, _ := p.(string)
		if base, ok := strings.CutSuffix(s, ".*"); ok {
			if strings.HasPrefix(ns, base+".") {
				return true
			}
		} else if s == ns {
			return true
		}
	}
	return false
}

// compile builds the enforcer of the given (normalized) entries for an
// entity in namespace ns at time now. Entries whose namespaces do not match
// ns and subjects expired at now are left out.
func compile(entries []map[string]any, ns string, now time.Time) *Enforcer {
	e := &Enforcer{}
	for _, em := range entries {
		nsList, _ := em["namespaces"].([]any)
		if !namespaceMatches(nsList, ns) {
			continue
		}
		subjects, _ := em["subjects"].(map[string]any)
		resources, _ := em["resources"].(map[string]any)
		if len(subjects) == 0 || len(resources) == 0 {
			continue
		}
		live := make([]string, 0, len(subjects))
		for sid, s := range subjects {
			sm, _ := s.(map[string]any)
			if exp, ok := sm["expiry"].(string); ok {
				t, err := time.Parse(time.RFC3339, exp)
				if err != nil {
					continue
				}
				if !t.After(now) {
					if t.After(e.validFrom) {
						e.validFrom = t
					}
					continue
				}
				if e.validUntil.IsZero() || t.Before(e.validUntil) {
					e.validUntil = t
				}
			}
			live = append(live, sid)
		}
		if len(live) == 0 {
			continue
		}
		for key, r := range resources {
			rm, _ := r.(map[string]any)
			g, rv := permMask(rm["grant"]), permMask(rm["revoke"])
			if g|rv == 0 {
				continue
			}
			n := e.insert(key)
			if n == nil {
				continue
			}
			if n.own == nil {
				n.own = map[string]stmt{}
			}
			for _, sid := range live {
				st := n.own[sid]
				st.grant |= g
				st.revoke |= rv
				n.own[sid] = st
			}
		}
	}
	for _, r := range e.roots {
		if r != nil {
			r.summarize()
		}
	}
	return e
}

func permMask(v any) uint8 {
	a, _ := v.([]any)
	var m uint8
	for _, p := range a {
		s, _ := p.(string)
		if b := permBit(s); b != permUnknown {
			m |= b
		}
	}
	return m
}

func (e *Enforcer) insert(key string) *node {
	typ, path := splitResourceKey(key)
	i := rootIndex(typ)
	if i < 0 {
		return nil
	}
	if e.roots[i] == nil {
		e.roots[i] = &node{depth: 1}
	}
	n := e.roots[i]
	for _, seg := range path {
		c := n.children[seg]
		if c == nil {
			if n.children == nil {
				n.children = map[string]*node{}
			}
			c = &node{depth: n.depth + 1}
			n.children[seg] = c
		}
		n = c
	}
	return n
}

// summarize fills belowGrant and belowRevoke bottom-up.
func (n *node) summarize() {
	for _, c := range n.children {
		c.summarize()
		merge := func(dst *map[string]uint8, sid string, bits uint8) {
			if bits == 0 {
				return
			}
			if *dst == nil {
				*dst = map[string]uint8{}
			}
			(*dst)[sid] |= bits
		}
		for sid, st := range c.own {
			merge(&n.belowGrant, sid, st.grant)
			merge(&n.belowRevoke, sid, st.revoke)
		}
		for sid, b := range c.belowGrant {
			merge(&n.belowGrant, sid, b)
		}
		for sid, b := range c.belowRevoke {
			merge(&n.belowRevoke, sid, b)
		}
	}
}

// stackSubjects is how many requester subjects evaluate without allocating.
const stackSubjects = 16

// state is the effective state of the requester's subjects at one node:
// per (subject i, permission p) at [i*3+p] 0 for nothing, +d for a grant
// made at depth d, -d for a revoke made at depth d.
type state []int16

// step applies n's own statements to st.
func (st state) step(n *node, subjects []string) {
	if len(n.own) == 0 {
		return
	}
	for i, sid := range subjects {
		s, ok := n.own[sid]
		if !ok {
			continue
		}
		for p := 0; p < 3; p++ {
			bit := uint8(1) << p
			switch {
			case s.revoke&bit != 0:
				st[i*3+p] = -n.depth
			case s.grant&bit != 0:
				st[i*3+p] = n.depth
			}
		}
	}
}

// allowed decides for the permissions in mask.
func (st state) allowed(k int, mask uint8) bool {
	if mask == 0 || mask&permUnknown != 0 {
		return false
	}
	var g, r int16
	for p := 0; p < 3; p++ {
		if mask&(1<<p) == 0 {
			continue
		}
		var best int16
		for i := 0; i < k; i++ {
			w := st[i*3+p]
			if w > best {
				best = w
			}
			if -w > r {
				r = -w
			}
		}
		if best == 0 {
			return false
		}
		if best > g {
			g = best
		}
	}
	return r == 0 || r < g
}

func masks(perms []string) uint8 {
	var m uint8
	for _, p := range perms {
		m |= permBit(p)
	}
	return m
}

// locate walks to (resType, path), applying statements on the way. It
// returns the deepest existing node and whether it is the exact one.
func (e *Enforcer) locate(resType string, path ditto.Pointer, subjects []string, st state) (*node, bool) {
	i := rootIndex(resType)
	if i < 0 || e.roots[i] == nil {
		return nil, false
	}
	n := e.roots[i]
	st.step(n, subjects)
	for _, seg := range path {
		c := n.children[seg]
		if c == nil {
			return n, false
		}
		n = c
		st.step(n, subjects)
	}
	return n, true
}

func newState(buf *[stackSubjects * 3]int16, k int) state {
	if k <= stackSubjects {
		return buf[:k*3]
	}
	return make(state, k*3)
}

// Unrestricted reports whether subjects have every perm at (resType, path)
// and no revoke of any of them anywhere below it.
func (e *Enforcer) Unrestricted(resType string, path ditto.Pointer, subjects []string, perms ...string) bool {
	mask := masks(perms)
	var buf [stackSubjects * 3]int16
	st := newState(&buf, len(subjects))
	n, exact := e.locate(resType, path, subjects, st)
	if n == nil || !st.allowed(len(subjects), mask) {
		return false
	}
	if exact && n.belowRevoke != nil {
		for _, sid := range subjects {
			if n.belowRevoke[sid]&mask != 0 {
				return false
			}
		}
	}
	return true
}

// Partial reports whether subjects have every perm at (resType, path) or at
// some resource below it.
func (e *Enforcer) Partial(resType string, path ditto.Pointer, subjects []string, perms ...string) bool {
	mask := masks(perms)
	var buf [stackSubjects * 3]int16
	st := newState(&buf, len(subjects))
	n, exact := e.locate(resType, path, subjects, st)
	if n == nil {
		return false
	}
	if st.allowed(len(subjects), mask) {
		return true
	}
	return exact && anyBelow(n, subjects, st, mask)
}

// anyBelow reports whether some descendant of n allows mask. Only a
// descendant with an own grant for a requester subject can change the
// decision, so subtrees without one are skipped.
func anyBelow(n *node, subjects []string, st state, mask uint8) bool {
	hope := false
	for _, sid := range subjects {
		if n.belowGrant[sid]&mask != 0 {
			hope = true
			break
		}
	}
	if !hope {
		return false
	}
	var buf [stackSubjects * 3]int16
	for _, c := range n.children {
		cs := newState(&buf, len(subjects))
		copy(cs, st)
		cs.step(c, subjects)
		if cs.allowed(len(subjects), mask) || anyBelow(c, subjects, cs, mask) {
			return true
		}
	}
	return false
}

// View returns the part of v, located at (resType, path), that subjects may
// READ, and false when nothing of it is readable. v is not modified; the
// result shares fully readable subtrees with v, so treat it as read-only.
func (e *Enforcer) View(resType string, path ditto.Pointer, v any, subjects []string) (any, bool) {
	var buf [stackSubjects * 3]int16
	st := newState(&buf, len(subjects))
	n, exact := e.locate(resType, path, subjects, st)
	if n == nil {
		return nil, false
	}
	if !exact {
		n = nil // below the deepest node every value has the same state
	}
	return view(n, subjects, st, v)
}

// decidesBelow reports whether any statement below n concerns subjects;
// if none does, every value below n has n's state.
func (n *node) decidesBelow(subjects []string) bool {
	if len(n.children) == 0 {
		return false
	}
	for _, sid := range subjects {
		if n.belowGrant[sid] != 0 || n.belowRevoke[sid] != 0 {
			return true
		}
	}
	return false
}

// view filters v at node n (nil: a node without statements below).
func view(n *node, subjects []string, st state, v any) (any, bool) {
	ok := st.allowed(len(subjects), permRead)
	if n == nil || !n.decidesBelow(subjects) {
		if ok {
			return v, true
		}
		return nil, false
	}
	m, isObj := v.(map[string]any)
	if !isObj {
		if ok {
			return v, true
		}
		return nil, false
	}
	out := make(map[string]any, len(m))
	var buf [stackSubjects * 3]int16
	for k, cv := range m {
		c := n.children[k]
		if c == nil {
			if ok {
				out[k] = cv
			}
			continue
		}
		cs := newState(&buf, len(subjects))
		copy(cs, st)
		cs.step(c, subjects)
		if r, keep := view(c, subjects, cs, cv); keep {
			out[k] = r
		}
	}
	if len(out) > 0 || ok {
		return out, true
	}
	return nil, false
}

// validAt reports whether e is exact at now.
func (e *Enforcer) validAt(now time.Time) bool {
	return !now.Before(e.validFrom) && (e.validUntil.IsZero() || now.Before(e.validUntil))
}

// enforcerCacheSize bounds the compiled enforcers kept. Policies of equal
// content share one (100k default policies of one creator: one entry), so
// it only has to hold the distinct contents in use.
const enforcerCacheSize = 4096

// enforcerKey identifies what compile depends on: the content of the
// entries (own and imported) and, only when some entry restricts
// namespaces, the entity namespace.
type enforcerKey struct {
	sum [sha256.Size]byte
	ns  string
}

// enforcerCache holds compiled enforcers by content key, at most max of
// them, evicting with the clock (second chance) algorithm: a hit only sets
// a bit, so lookups share a read lock.
type enforcerCache struct {
	mu   sync.RWMutex
	max  int
	m    map[enforcerKey]*cacheSlot
	ring []*cacheSlot // the clock; hand is the next candidate
	hand int
}

type cacheSlot struct {
	key enforcerKey
	enf atomic.Pointer[Enforcer]
	ref atomic.Bool
}

func newEnforcerCache(max int) *enforcerCache {
	return &enforcerCache{max: max, m: make(map[enforcerKey]*cacheSlot, max)}
}

// get returns the enforcer of key if it is exact at now, or nil.
func (c *enforcerCache) get(key enforcerKey, now time.Time) *Enforcer {
	c.mu.RLock()
	sl := c.m[key]
	c.mu.RUnlock()
	if sl == nil {
		return nil
	}
	e := sl.enf.Load()
	if !e.validAt(now) {
		return nil
	}
	if !sl.ref.Load() {
		sl.ref.Store(true)
	}
	return e
}

// put stores e as the enforcer of key, replacing one compiled for another
// time window, and evicts when full.
func (c *enforcerCache) put(key enforcerKey, e *Enforcer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sl := c.m[key]; sl != nil {
		sl.enf.Store(e)
		sl.ref.Store(true)
		return
	}
	sl := &cacheSlot{key: key}
	sl.enf.Store(e)
	if len(c.ring) < c.max {
		c.ring = append(c.ring, sl)
		c.m[key] = sl
		return
	}
	// Hits set bits without the lock: give up on second chances after two
	// turns of the clock.
	for turn := 0; turn < 2*len(c.ring) && c.ring[c.hand].ref.Swap(false); turn++ {
		c.hand = (c.hand + 1) % len(c.ring)
	}
	delete(c.m, c.ring[c.hand].key)
	c.ring[c.hand] = sl
	c.m[key] = sl
	c.hand = (c.hand + 1) % len(c.ring)
}

// len returns how many enforcers are cached.
func (c *enforcerCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

package policies

import (
	"crypto/sha256"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// facts are derived once from a policy's canonical JSON. A record memoises
// its facts on first use (records are immutable, so they never go stale);
// records of equal content share one (factsTable).
type facts struct {
	// sum identifies everything of the policy that compile depends on:
	// SHA-256 of its canonical JSON without policyId.
	sum       [sha256.Size]byte
	usesNS    bool // some entry has namespaces
	imports   bool // the policy imports others
	hasExpiry bool
	minExpiry time.Time // earliest subject expiry
	// importKey memoises the enforcer key of a policy with imports; it is
	// valid while the imported records it was made from are current. The
	// imports are part of the content the sum stands for, so every record
	// of these facts has the same key.
	importKey atomic.Pointer[importKey]
}

// Markers of the canonical JSON (compact, keys quoted as they are): a
// policy without them decides facts without decoding.
const (
	markNamespaces   = `"namespaces":`
	markImports      = `"imports":`
	markExpiry       = `"expiry":`
	markBeforeExpiry = `"beforeExpiry":`
	markPolicyID     = `,"policyId":"`
)

// facts returns the memoised facts of a live record, derived and interned
// in t (nil: not interned) on first use.
func (r *record) facts(t *factsTable) *facts {
	if f := r.memo.Load(); f != nil {
		return f
	}
	f := t.intern(deriveFacts(r))
	r.memo.Store(f)
	return f
}

// factsTableSize bounds a factsTable; when full it starts over.
const factsTableSize = 4096

// factsTable interns facts by sum, so that the records of equal policies
// (100k default policies of one creator) share one. Facts derive from the
// content the sum stands for, so equal sums mean equal facts.
type factsTable struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]*facts
}

func (t *factsTable) intern(f *facts) *facts {
	if t == nil {
		return f
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.m[f.sum]; ok {
		return g
	}
	if t.m == nil || len(t.m) >= factsTableSize {
		t.m = make(map[[sha256.Size]byte]*facts)
	}
	t.m[f.sum] = f
	return f
}

func deriveFacts(r *record) *facts {
	f := &facts{}
	var tree map[string]any
	decoded := func() map[string]any {
		if tree == nil {
			tree = r.policy()
		}
		return tree
	}
	h := sha256.New()
	if r.cut() {
		io.WriteString(h, r.body.Value().json) // hash writes never fail
		h.Write([]byte{'}'})
	} else {
		m := decoded()
		delete(m, "policyId")
		h.Write(ditto.EncodeJSON(m))
		tree = nil // modified: decode again if needed
	}
	h.Sum(f.sum[:0])
	if !r.contains(markNamespaces) && !r.contains(markImports) && !r.contains(markExpiry) {
		return f
	}
	m := decoded()
	imps, _ := m["imports"].(map[string]any)
	f.imports = len(imps) > 0
	entries, _ := m["entries"].(map[string]any)
	for _, e := range entries {
		em, _ := e.(map[string]any)
		if ns, _ := em["namespaces"].([]any); len(ns) > 0 {
			f.usesNS = true
		}
		subjects, _ := em["subjects"].(map[string]any)
		for _, sv := range subjects {
			sm, _ := sv.(map[string]any)
			exp, ok := sm["expiry"].(string)
			if !ok {
				continue
			}
			t, err := time.Parse(time.RFC3339, exp)
			if err != nil {
				continue
			}
			if !f.hasExpiry || t.Before(f.minExpiry) {
				f.hasExpiry, f.minExpiry = true, t
			}
		}
	}
	return f
}

// withoutPolicyID returns raw up to its last member, "policyId" (keys come
// sorted, and a normalized policy has only entries, imports and policyId),
// when that member is exactly id without escapes.
func withoutPolicyID(raw []byte, id string) ([]byte, bool) {
	end := len(raw) - len(id) - 2 // raw[end:] is id+`"}`
	i := end - len(markPolicyID)
	if i < 1 || string(raw[i:end]) != markPolicyID || string(raw[end:len(raw)-2]) != id || string(raw[len(raw)-2:]) != `"}` {
		return nil, false
	}
	return raw[:i], true
}

// expiredAt reports whether some subject of the live policy expired at now.
func (r *record) expiredAt(now time.Time) bool {
	if !r.contains(markExpiry) {
		return false
	}
	f := r.facts(nil)
	return f.hasExpiry && !f.minExpiry.After(now)
}

// mayAnnounce reports whether the policy is live and may have a subject
// with a beforeExpiry announcement (cheap: no decoding).
func (r *record) mayAnnounce() bool {
	return r.contains(markBeforeExpiry)
}

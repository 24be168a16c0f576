package search

import (
	"strings"
	"sync"

	"github.com/dittonode/dittonode/ditto"
)

// testPolicy is a small real policy evaluator for tests: per subject, READ
// grants and revokes on thing resource paths. The most specific rule on a
// path's prefixes decides (a revoke wins over a grant at the same path).
type testPolicy struct {
	// rules maps subject -> path ("/", "/attributes/x") -> true (grant) or
	// false (revoke).
	rules map[string]map[string]bool
	mu    sync.Mutex
	cache map[string]map[string]bool
}

func pathKey(p ditto.Pointer) string { return p.String() }

// merged returns the rules of the given subjects (revoke wins).
func (tp *testPolicy) merged(subjects []string) map[string]bool {
	key := strings.Join(subjects, "\x00")
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if m, ok := tp.cache[key]; ok {
		return m
	}
	if tp.cache == nil {
		tp.cache = map[string]map[string]bool{}
	}
	out := map[string]bool{}
	defer func() { tp.cache[key] = out }()
	for _, s := range subjects {
		for p, g := range tp.rules[s] {
			if old, ok := out[p]; ok && !old {
				continue
			}
			out[p] = g
		}
	}
	return out
}

// decide returns whether path is readable by the most specific rule.
func decide(rules map[string]bool, path ditto.Pointer) bool {
	for i := len(path); i >= 0; i-- {
		if g, ok := rules[pathKey(path[:i])]; ok {
			return g
		}
	}
	return false
}

func below(rules map[string]bool, path ditto.Pointer, want bool) bool {
	pre := pathKey(path)
	if pre != "/" {
		pre += "/"
	}
	for p, g := range rules {
		if g == want && strings.HasPrefix(p, pre) && p != pathKey(path) {
			return true
		}
	}
	return false
}

func readOnly(resType string, perms []string) bool {
	if resType != ditto.ResourceThing {
		return false
	}
	for _, p := range perms {
		if p != ditto.PermRead {
			return false
		}
	}
	return true
}

func (tp *testPolicy) Unrestricted(resType string, path ditto.Pointer, subjects []string, perms ...string) bool {
	if !readOnly(resType, perms) {
		return false
	}
	r := tp.merged(subjects)
	return decide(r, path) && !below(r, path, false)
}

func (tp *testPolicy) Partial(resType string, path ditto.Pointer, subjects []string, perms ...string) bool {
	if !readOnly(resType, perms) {
		return false
	}
	r := tp.merged(subjects)
	return decide(r, path) || below(r, path, true)
}

func (tp *testPolicy) View(resType string, path ditto.Pointer, v any, subjects []string) (any, bool) {
	if resType != ditto.ResourceThing {
		return nil, false
	}
	return tp.view(tp.merged(subjects), path, v)
}

func (tp *testPolicy) view(r map[string]bool, path ditto.Pointer, v any) (any, bool) {
	ok := decide(r, path)
	if !below(r, path, false) && !below(r, path, true) {
		return v, ok
	}
	m, isObj := v.(map[string]any)
	if !isObj {
		return v, ok
	}
	out := map[string]any{}
	for k, c := range m {
		if cv, keep := tp.view(r, path.Append(k), c); keep {
			out[k] = cv
		}
	}
	if len(out) > 0 || ok {
		return out, true
	}
	return nil, false
}

// testEnforcers maps policy IDs to policies.
type testEnforcers map[string]*testPolicy

func (te testEnforcers) EnforcerFor(policyID, _ string) (ditto.Enforcer, bool) {
	p, ok := te[policyID]
	if !ok {
		return nil, false
	}
	return p, true
}

func grants(paths ...string) map[string]bool {
	m := map[string]bool{}
	for _, p := range paths {
		if strings.HasPrefix(p, "!") {
			m[p[1:]] = false
		} else {
			m[p] = true
		}
	}
	return m
}

// Subjects of the tests.
const (
	subjAdmin  = "test:admin"
	subjAll    = "test:all"
	subjPart   = "test:part"
	subjNobody = "test:nobody"
)

// testPolicies: open (admin, all read everything), partial (part reads
// attributes but not attributes/secret, and the lamp feature), hidden (admin
// only), revoked (all reads everything but features).
func testPolicies() testEnforcers {
	admin := grants("/")
	return testEnforcers{
		"pol:open":    {rules: map[string]map[string]bool{subjAdmin: admin, subjAll: grants("/")}},
		"pol:partial": {rules: map[string]map[string]bool{subjAdmin: admin, subjAll: grants("/"), subjPart: grants("/attributes", "!/attributes/secret", "/features/lamp")}},
		"pol:hidden":  {rules: map[string]map[string]bool{subjAdmin: admin}},
		"pol:revoked": {rules: map[string]map[string]bool{subjAdmin: admin, subjAll: grants("/", "!/features"), subjPart: grants("/thingId", "/attributes/location")}},
	}
}

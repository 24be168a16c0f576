package rql

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Env is what an expression may see besides the document: the current time
// (for time:now and time:now_epoch_millis, so evaluation is deterministic
// when the caller stamps it) and the values of topic: and resource:
// placeholders, looked up by their full name ("topic:action").
type Env struct {
	Now         time.Time
	Placeholder func(name string) (string, bool)
}

// Match reports whether doc satisfies n. doc is a JSON value as decoded with
// UseNumber, usually a thing including the special fields the caller adds
// (thingId, policyId, _namespace, _revision, _created, _modified,
// _metadata). A nil n matches everything.
//
// Comparisons are type-strict: numbers compare with numbers, strings with
// strings (lexicographically), booleans and null only by eq and ne. All
// operators but exists and empty fail where the field is absent. A field
// holding an array matches eq, gt, ..., like and in when any element does,
// and ne when no element equals; arrays met inside a path are searched
// element by element. "features/*/..." matches when it matches for any
// feature.
func Match(n Node, doc any, env Env) bool {
	if n == nil {
		return true
	}
	return match(n, doc, &env)
}

func match(n Node, doc any, env *Env) bool {
	switch x := n.(type) {
	case And:
		for _, c := range x.Children {
			if !match(c, doc, env) {
				return false
			}
		}
		return true
	case Or:
		for _, c := range x.Children {
			if match(c, doc, env) {
				return true
			}
		}
		return false
	case Not:
		return !match(x.Child, doc, env)
	case Compare:
		pr := probe{env: *env, op: x.Op, lit: x.Value}
		if x.Op == OpNe {
			pr.op = OpEq
			return resolve(x.Field, doc, &pr, wantPresentNoHit)
		}
		return resolve(x.Field, doc, &pr, wantHit)
	case In:
		pr := probe{env: *env, op: opIn, many: x.Values}
		return resolve(x.Field, doc, &pr, wantHit)
	case Exists:
		pr := probe{env: *env, op: opAny}
		return resolve(x.Field, doc, &pr, wantPresent)
	case Empty:
		pr := probe{env: *env, op: opNonEmpty}
		return resolve(x.Field, doc, &pr, wantEmpty)
	case nil:
		return true
	default:
		if m := unptr(n); m != n {
			return match(m, doc, env)
		}
		return false
	}
}

// Internal probe operations besides the comparison operators.
const (
	opIn       = "in"
	opAny      = "any"      // hits on any value: presence
	opNonEmpty = "nonempty" // hits on a value that is not empty
)

// How a group's (found, hit) outcome decides the operator.
type want uint8

const (
	wantHit          want = iota // some value hit
	wantPresentNoHit             // present and no value hit (ne)
	wantPresent                  // present (exists)
	wantEmpty                    // absent or no non-empty value (empty)
)

func (w want) ok(found, hit bool) bool {
	switch w {
	case wantHit:
		return hit
	case wantPresentNoHit:
		return found && !hit
	case wantPresent:
		return found
	default:
		return !found || !hit
	}
}

// resolve evaluates the probe on every group the field denotes and reports
// whether any group satisfies w. A group is the field in one feature for
// "features/*/...", else the single field.
func resolve(f Field, doc any, pr *probe, w want) bool {
	if f.Placeholder != "" {
		v, ok := placeholderValue(f.Placeholder, &pr.env)
		if !ok {
			return w.ok(false, false)
		}
		return w.ok(true, pr.leaf(v))
	}
	if len(f.Path) >= 2 && f.Path[0] == "features" && f.Path[1] == "*" {
		feats, _ := mapAt(doc, "features")
		if len(feats) == 0 {
			return w.ok(false, false)
		}
		for _, fv := range feats {
			if found, hit := walk(fv, f.Path[2:], pr); w.ok(found, hit) {
				return true
			}
		}
		return false
	}
	return w.ok(walk(doc, f.Path, pr))
}

func mapAt(doc any, key string) (map[string]any, bool) {
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, false
	}
	v, ok := m[key].(map[string]any)
	return v, ok
}

func placeholderValue(name string, env *Env) (any, bool) {
	switch name {
	case "time:now":
		return formatNow(env.Now), true
	case "time:now_epoch_millis":
		return json.Number(strconv.FormatInt(env.Now.UnixMilli(), 10)), true
	}
	if env.Placeholder == nil {
		return nil, false
	}
	s, ok := env.Placeholder(name)
	if !ok {
		return nil, false
	}
	return s, true
}

func formatNow(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// walk follows rest from v, searching arrays met on the way element by
// element, and calls pr.leaf on each value found until one hits.
func walk(v any, rest ditto.Pointer, pr *probe) (found, hit bool) {
	for i, seg := range rest {
		switch x := v.(type) {
		case map[string]any:
			c, ok := x[seg]
			if !ok {
				return false, false
			}
			v = c
		case []any:
			for _, e := range x {
				f, h := walk(e, rest[i:], pr)
				found = found || f
				if h {
					return true, true
				}
			}
			return found, false
		default:
			return false, false
		}
	}
	return true, pr.leaf(v)
}

// probe is the test applied to each value a field resolves to.
type probe struct {
	env  Env
	op   string
	lit  Value   // the Compare value
	many []Value // the In values
}

// leaf reports whether v hits. For comparisons an array hits when any
// element does.
func (pr *probe) leaf(v any) bool {
	switch pr.op {
	case opAny:
		return true
	case opNonEmpty:
		return !isEmpty(v)
	}
	if a, ok := v.([]any); ok {
		for _, e := range a {
			if pr.scalar(e) {
				return true
			}
		}
		return false
	}
	return pr.scalar(v)
}

func (pr *probe) scalar(v any) bool {
	if pr.op == opIn {
		for _, lit := range pr.many {
			if c, ok, _ := compare(v, lit, &pr.env); ok && c == 0 {
				return true
			}
		}
		return false
	}
	lit := pr.lit
	switch pr.op {
	case OpLike, OpILike:
		s, ok := v.(string)
		return ok && lit.Kind == String && like(lit.Str, s, pr.op == OpILike)
	}
	c, ok, ordered := compare(v, lit, &pr.env)
	if !ok {
		return false
	}
	switch pr.op {
	case OpEq:
		return c == 0
	case OpGt:
		return ordered && c > 0
	case OpGe:
		return ordered && c >= 0
	case OpLt:
		return ordered && c < 0
	case OpLe:
		return ordered && c <= 0
	}
	return false
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// compare compares a document value with a literal. ok is false when their
// types differ; ordered is false for null, which only supports equality
// (c is then 0). Booleans order false before true.
func compare(v any, lit Value, env *Env) (c int, ok, ordered bool) {
	switch lit.Kind {
	case Number:
		a, ok := toNum(v)
		if !ok {
			return 0, false, false
		}
		b, ok := numOf(string(lit.Num))
		if !ok {
			return 0, false, false
		}
		return a.cmp(b), true, true
	case TimeNowEpochMillis:
		a, ok := toNum(v)
		if !ok {
			return 0, false, false
		}
		return a.cmp(num{i: env.Now.UnixMilli(), isInt: true}), true, true
	case String:
		s, ok := v.(string)
		if !ok {
			return 0, false, false
		}
		return strings.Compare(s, lit.Str), true, true
	case TimeNow:
		s, ok := v.(string)
		if !ok {
			return 0, false, false
		}
		// Timestamps compare as instants, so "…:00Z" and "…:00.5Z" order
		// right; other strings compare with now's ISO-8601 form.
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t.Compare(env.Now), true, true
		}
		return strings.Compare(s, formatNow(env.Now)), true, true
	case Bool:
		// false < true, as MongoDB (and so Ditto's search) orders them.
		b, ok := v.(bool)
		if !ok {
			return 0, false, false
		}
		switch {
		case b == lit.Bool:
			return 0, true, true
		case lit.Bool:
			return -1, true, true
		}
		return 1, true, true
	case Null:
		if v != nil {
			return 0, false, false
		}
		return 0, true, false
	}
	return 0, false, false
}

// num is a JSON number: an exact int64 when it is one, else a float64.
type num struct {
	i     int64
	f     float64
	isInt bool
}

func (a num) cmp(b num) int {
	if a.isInt && b.isInt {
		switch {
		case a.i < b.i:
			return -1
		case a.i > b.i:
			return 1
		}
		return 0
	}
	x, y := a.float(), b.float()
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func (a num) float() float64 {
	if a.isInt {
		return float64(a.i)
	}
	return a.f
}

func numOf(s string) (num, bool) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return num{i: i, isInt: true}, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !math.IsInf(f, 0) {
		return num{}, false
	}
	return num{f: f}, true
}

func toNum(v any) (num, bool) {
	switch x := v.(type) {
	case json.Number:
		return numOf(string(x))
	case float64:
		return num{f: x}, true
	case float32:
		return num{f: float64(x)}, true
	case int:
		return num{i: int64(x), isInt: true}, true
	case int64:
		return num{i: x, isInt: true}, true
	case int32:
		return num{i: int64(x), isInt: true}, true
	}
	return num{}, false
}

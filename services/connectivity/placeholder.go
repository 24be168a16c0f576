package connectivity

import (
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Placeholders are Ditto's "{{ prefix:name | fn:f(args) | … }}" expressions
// inside connection strings (addresses, header mappings, authorization
// contexts, enforcement). A Template is parsed and checked against the
// placeholders of its scope when the connection is validated, and
// resolved per message.

// Limits that bound a pipeline's work on hostile input.
const (
	maxTemplateLen   = 4096
	maxPipelineVals  = 256
	maxPipelineStage = 16
)

// Scope lists the placeholders allowed in one place of a connection: prefix
// to the allowed names (nil: any name, as for header:<name>).
type Scope map[string]map[string]bool

func names(ns ...string) map[string]bool {
	m := make(map[string]bool, len(ns))
	for _, n := range ns {
		m[n] = true
	}
	return m
}

// The placeholder groups of Ditto's connection scopes.
var (
	phThing      = names("id", "namespace", "name")
	phEntity     = names("id", "namespace", "name")
	phFeature    = names("id")
	phTopic      = names("full", "namespace", "entityName", "group", "channel", "criterion", "action", "subject", "action-subject")
	phResource   = names("type", "path")
	phConnection = names("id")
	phRequest    = names("subjectId")
	phTime       map[string]bool // validated by timePlaceholder
)

// Scopes of the places in a connection that take placeholders.
var (
	// scopeSourceAuth: a source's authorizationContext.
	scopeSourceAuth = Scope{"header": nil, "connection": phConnection, "source": names("address")}
	// scopeEnforcementInput: a source's enforcement input.
	scopeEnforcementInput = Scope{"header": nil, "source": names("address"), "connection": phConnection}
	// scopeEnforcementFilter: a source's enforcement filters.
	scopeEnforcementFilter = Scope{"thing": phThing, "entity": phEntity, "policy": phEntity, "connection": phConnection}
	// scopeInbound: source header mappings (after mapping, on the signal).
	scopeInbound = Scope{"header": nil, "thing": phThing, "entity": phEntity, "policy": phEntity, "feature": phFeature,
		"topic": phTopic, "connection": phConnection, "source": names("address"), "request": phRequest, "time": phTime}
	// scopeOutbound: target and reply-target addresses and header mappings,
	// issued acknowledgement labels.
	scopeOutbound = Scope{"header": nil, "thing": phThing, "entity": phEntity, "policy": phEntity, "feature": phFeature,
		"topic": phTopic, "resource": phResource, "connection": phConnection, "request": phRequest, "time": phTime,
		"thing-json": nil}
	// scopeAckFilter: a source's acknowledgementRequests filter.
	scopeAckFilter = Scope{"header": nil, "connection": phConnection}
)

// Template is a parsed string with placeholders.
type Template struct {
	raw   string
	parts []tplPart
}

type tplPart struct {
	lit  string
	pipe *pipeline // nil for a literal
}

type pipeline struct {
	src    *phRef // nil when the pipeline starts with a function
	stages []fnCall
}

type phRef struct{ prefix, name string }

type fnCall struct {
	name string
	args []fnArg
}

type fnArg struct {
	lit string
	ref *phRef
}

// HasPlaceholders reports whether the template contains any expression.
func (t *Template) HasPlaceholders() bool {
	for _, p := range t.parts {
		if p.pipe != nil {
			return true
		}
	}
	return false
}

// String is the template's source text.
func (t *Template) String() string { return t.raw }

// ParseTemplate parses s and checks every placeholder against scope.
func ParseTemplate(s string, scope Scope) (*Template, error) {
	if len(s) > maxTemplateLen {
		return nil, ditto.ErrPlaceholderFnInvalid.New("The placeholder expression is longer than %d characters.", maxTemplateLen)
	}
	t := &Template{raw: s}
	rest := s
	for rest != "" {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if strings.Contains(rest, "}}") {
				return nil, ditto.ErrPlaceholderFnInvalid.New("The string '%s' has a '}}' without a matching '{{'.", clip(s))
			}
			t.parts = append(t.parts, tplPart{lit: rest})
			break
		}
		if i > 0 {
			if strings.Contains(rest[:i], "}}") {
				return nil, ditto.ErrPlaceholderFnInvalid.New("The string '%s' has a '}}' without a matching '{{'.", clip(s))
			}
			t.parts = append(t.parts, tplPart{lit: rest[:i]})
		}
		rest = rest[i+2:]
		j := strings.Index(rest, "}}")
		if j < 0 {
			return nil, ditto.ErrPlaceholderFnInvalid.New("The placeholder in '%s' is not closed with '}}'.", clip(s))
		}
		p, err := parsePipeline(rest[:j], scope)
		if err != nil {
			return nil, err
		}
		t.parts = append(t.parts, tplPart{pipe: p})
		rest = rest[j+2:]
	}
	return t, nil
}

// MustTemplate parses a template known to be valid (validated connection
// definitions); it panics otherwise.
func mustTemplate(s string, scope Scope) *Template {
	t, err := ParseTemplate(s, scope)
	if err != nil {
		panic("connectivity: template of a validated connection: " + err.Error())
	}
	return t
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

func parsePipeline(expr string, scope Scope) (*pipeline, error) {
	stages, err := splitTopLevel(expr, '|')
	if err != nil {
		return nil, err
	}
	if len(stages) > maxPipelineStage {
		return nil, ditto.ErrPlaceholderFnInvalid.New("A placeholder pipeline has at most %d stages.", maxPipelineStage)
	}
	p := &pipeline{}
	for i, st := range stages {
		st = strings.TrimSpace(st)
		if st == "" {
			return nil, ditto.ErrPlaceholderFnInvalid.New("The placeholder '{{%s}}' has an empty stage.", clip(expr))
		}
		if strings.HasPrefix(st, "fn:") {
			fc, err := parseFn(st, scope)
			if err != nil {
				return nil, err
			}
			p.stages = append(p.stages, fc)
			continue
		}
		if i > 0 {
			return nil, ditto.ErrPlaceholderFnInvalid.New("Only the first stage of '{{%s}}' may be a placeholder; the others must be fn: functions.", clip(expr))
		}
		ref, err := parseRef(st, scope)
		if err != nil {
			return nil, err
		}
		p.src = ref
	}
	return p, nil
}

// splitTopLevel splits s at sep outside quotes and parentheses.
func splitTopLevel(s string, sep byte) ([]string, error) {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth < 0 {
				return nil, ditto.ErrPlaceholderFnInvalid.New("Unbalanced parentheses in '%s'.", clip(s))
			}
		case c == sep && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	if quote != 0 || depth != 0 {
		return nil, ditto.ErrPlaceholderFnInvalid.New("Unbalanced quotes or parentheses in '%s'.", clip(s))
	}
	return append(out, s[start:]), nil
}

func parseRef(s string, scope Scope) (*phRef, error) {
	prefix, name, ok := strings.Cut(s, ":")
	if !ok || prefix == "" || name == "" || strings.ContainsAny(s, " \t'\"(),") {
		return nil, ditto.ErrPlaceholderNotFound.New("The placeholder '%s' is not of the form prefix:name.", clip(s))
	}
	allowed, known := scope[prefix]
	if !known {
		return nil, ditto.ErrPlaceholderNotFound.New("The placeholder prefix '%s' is not available here.", clip(prefix))
	}
	if prefix == "time" {
		if _, ok := timePlaceholder(name, time.Unix(0, 0)); !ok {
			return nil, ditto.ErrPlaceholderNotFound.New("The placeholder 'time:%s' is not valid.", clip(name))
		}
	} else if allowed != nil && !allowed[name] {
		return nil, ditto.ErrPlaceholderNotFound.New("The placeholder '%s:%s' is not available here.", prefix, clip(name))
	}
	if prefix == "thing-json" {
		if _, err := ditto.ParsePointer("/" + strings.TrimPrefix(name, "/")); err != nil {
			return nil, ditto.ErrPlaceholderNotFound.New("The placeholder 'thing-json:%s' has an invalid JSON pointer.", clip(name))
		}
	}
	if prefix == "header" {
		name = strings.ToLower(name) // header names are case-insensitive
	}
	return &phRef{prefix: prefix, name: name}, nil
}

// Function arities (min, max).
var fnArity = map[string][2]int{
	"default": {1, 1}, "substring-before": {1, 1}, "substring-after": {1, 1},
	"lower": {0, 0}, "upper": {0, 0}, "trim": {0, 0}, "url-encode": {0, 0}, "url-decode": {0, 0},
	"base64-encode": {0, 0}, "base64-decode": {0, 0}, "delete": {0, 0}, "replace": {2, 2},
	"split": {1, 1}, "join": {1, 1}, "filter": {1, 3},
}

func parseFn(s string, scope Scope) (fnCall, error) {
	body := strings.TrimPrefix(s, "fn:")
	open := strings.IndexByte(body, '(')
	if open < 0 || !strings.HasSuffix(body, ")") {
		return fnCall{}, ditto.ErrPlaceholderFnInvalid.New("The function '%s' must be called with parentheses, e.g. fn:lower().", clip(s))
	}
	fc := fnCall{name: strings.TrimSpace(body[:open])}
	ar, ok := fnArity[fc.name]
	if !ok {
		return fnCall{}, ditto.ErrPlaceholderFnInvalid.New("The function 'fn:%s' is unknown.", clip(fc.name))
	}
	inner := strings.TrimSpace(body[open+1 : len(body)-1])
	if inner != "" {
		raw, err := splitTopLevel(inner, ',')
		if err != nil {
			return fnCall{}, err
		}
		for _, a := range raw {
			a = strings.TrimSpace(a)
			if n := len(a); n >= 2 && (a[0] == '\'' || a[0] == '"') && a[n-1] == a[0] {
				fc.args = append(fc.args, fnArg{lit: a[1 : n-1]})
				continue
			}
			ref, err := parseRef(a, scope)
			if err != nil {
				return fnCall{}, ditto.ErrPlaceholderFnInvalid.New("The argument '%s' of fn:%s is neither a quoted string nor a placeholder.", clip(a), fc.name)
			}
			fc.args = append(fc.args, fnArg{ref: ref})
		}
	}
	if len(fc.args) < ar[0] || len(fc.args) > ar[1] {
		return fnCall{}, ditto.ErrPlaceholderFnInvalid.New("The function fn:%s takes %d to %d arguments, not %d.", fc.name, ar[0], ar[1], len(fc.args))
	}
	if fc.name == "filter" {
		if err := checkFilterArgs(fc.args); err != nil {
			return fnCall{}, err
		}
	}
	return fc, nil
}

var filterOps = names("eq", "ne", "exists", "like")

// filterForm splits fn:filter's arguments into (value, op, operand):
// filter(v,'op',c), filter(v,'exists'), filter('op',c) on the input and
// filter('exists') on the input.
func filterForm(args []fnArg) (val *fnArg, op string, operand *fnArg) {
	switch len(args) {
	case 3:
		return &args[0], args[1].lit, &args[2]
	case 2:
		if args[1].ref == nil && args[1].lit == "exists" {
			return &args[0], "exists", nil
		}
		return nil, args[0].lit, &args[1]
	default:
		return nil, args[0].lit, nil
	}
}

func checkFilterArgs(args []fnArg) error {
	_, op, operand := filterForm(args)
	opArg := args[0]
	if len(args) == 3 {
		opArg = args[1]
	} else if len(args) == 2 && args[1].ref == nil && args[1].lit == "exists" {
		opArg = args[1]
	}
	if opArg.ref != nil || !filterOps[op] {
		return ditto.ErrPlaceholderFnInvalid.New("fn:filter needs one of the operators 'eq', 'ne', 'exists', 'like' as a quoted string.")
	}
	if op != "exists" && operand == nil {
		return ditto.ErrPlaceholderFnInvalid.New("fn:filter with '%s' needs a value to compare with.", op)
	}
	return nil
}

// Resolver returns the value of placeholder prefix:name for one message.
type Resolver func(prefix, name string) (string, bool)

// elemState is the state of a pipeline element.
type elemState int

const (
	elemResolved elemState = iota
	elemUnresolved
	elemDeleted
)

type element struct {
	state elemState
	vals  []string
}

func unresolved() element { return element{state: elemUnresolved} }

func (p *pipeline) eval(r Resolver) element {
	el := element{state: elemResolved, vals: []string{""}}
	if p.src != nil {
		el = resolveRef(p.src, r)
	}
	for _, st := range p.stages {
		el = st.apply(el, r)
		if len(el.vals) > maxPipelineVals {
			return unresolved()
		}
	}
	return el
}

func resolveRef(ref *phRef, r Resolver) element {
	v, ok := r(ref.prefix, ref.name)
	if !ok {
		return unresolved()
	}
	return element{state: elemResolved, vals: []string{v}}
}

func argValue(a fnArg, r Resolver) (string, bool) {
	if a.ref == nil {
		return a.lit, true
	}
	return r(a.ref.prefix, a.ref.name)
}

func mapVals(el element, f func(string) (string, bool)) element {
	if el.state != elemResolved {
		return el
	}
	out := make([]string, 0, len(el.vals))
	for _, v := range el.vals {
		if w, ok := f(v); ok {
			out = append(out, w)
		}
	}
	if len(out) == 0 {
		return unresolved()
	}
	return element{state: elemResolved, vals: out}
}

func (fc fnCall) apply(el element, r Resolver) element {
	arg := func(i int) (string, bool) { return argValue(fc.args[i], r) }
	switch fc.name {
	case "default":
		if el.state != elemUnresolved {
			return el
		}
		if v, ok := arg(0); ok {
			return element{state: elemResolved, vals: []string{v}}
		}
		return el
	case "substring-before", "substring-after":
		sep, ok := arg(0)
		if !ok {
			return unresolved()
		}
		return mapVals(el, func(v string) (string, bool) {
			before, after, found := strings.Cut(v, sep)
			if fc.name == "substring-before" {
				return before, found
			}
			return after, found
		})
	case "lower":
		return mapVals(el, func(v string) (string, bool) { return strings.ToLower(v), true })
	case "upper":
		return mapVals(el, func(v string) (string, bool) { return strings.ToUpper(v), true })
	case "trim":
		return mapVals(el, func(v string) (string, bool) { return strings.TrimSpace(v), true })
	case "url-encode":
		return mapVals(el, func(v string) (string, bool) { return url.QueryEscape(v), true })
	case "url-decode":
		return mapVals(el, func(v string) (string, bool) {
			d, err := url.QueryUnescape(v)
			return d, err == nil
		})
	case "base64-encode":
		return mapVals(el, func(v string) (string, bool) { return base64.StdEncoding.EncodeToString([]byte(v)), true })
	case "base64-decode":
		return mapVals(el, func(v string) (string, bool) {
			d, err := base64.StdEncoding.DecodeString(v)
			return string(d), err == nil
		})
	case "delete":
		return element{state: elemDeleted}
	case "replace":
		from, ok1 := arg(0)
		to, ok2 := arg(1)
		if !ok1 || !ok2 || from == "" {
			return el
		}
		return mapVals(el, func(v string) (string, bool) {
			if len(to) > len(from) && strings.Count(v, from)*(len(to)-len(from)) > maxTemplateLen*16 {
				return "", false
			}
			return strings.ReplaceAll(v, from, to), true
		})
	case "split":
		sep, ok := arg(0)
		if !ok || el.state != elemResolved {
			return el
		}
		var out []string
		for _, v := range el.vals {
			parts := strings.Split(v, sep)
			if sep == "" || len(out)+len(parts) > maxPipelineVals {
				return unresolved()
			}
			out = append(out, parts...)
		}
		return element{state: elemResolved, vals: out}
	case "join":
		sep, ok := arg(0)
		if !ok || el.state != elemResolved {
			return el
		}
		return element{state: elemResolved, vals: []string{strings.Join(el.vals, sep)}}
	case "filter":
		return fc.filter(el, r)
	}
	return unresolved()
}

func (fc fnCall) filter(el element, r Resolver) element {
	valArg, op, operand := filterForm(fc.args)
	var candidates []string
	present := true
	if valArg != nil {
		v, ok := argValue(*valArg, r)
		candidates, present = []string{v}, ok
	} else {
		candidates, present = el.vals, el.state == elemResolved
	}
	keep := false
	switch op {
	case "exists":
		keep = present
	default:
		want, ok := argValue(*operand, r)
		if !ok || !present {
			break
		}
		for _, c := range candidates {
			switch op {
			case "eq":
				keep = keep || c == want
			case "ne":
				keep = keep || c != want
			case "like":
				keep = keep || wildcard(want, c)
			}
		}
	}
	if !keep {
		return unresolved()
	}
	return el
}

// Resolve evaluates the template. ok is false when an expression is
// unresolved (the caller drops the message or skips the header); deleted
// is true when a pipeline ended in fn:delete(). Several values arise from
// fn:split and combine as a cartesian product, bounded by maxPipelineVals.
func (t *Template) Resolve(r Resolver) (vals []string, ok, deleted bool) {
	out := []string{""}
	for _, p := range t.parts {
		if p.pipe == nil {
			for i := range out {
				out[i] += p.lit
			}
			continue
		}
		el := p.pipe.eval(r)
		switch el.state {
		case elemUnresolved:
			return nil, false, false
		case elemDeleted:
			return nil, false, true
		}
		if len(out)*len(el.vals) > maxPipelineVals {
			return nil, false, false
		}
		next := make([]string, 0, len(out)*len(el.vals))
		for _, o := range out {
			for _, v := range el.vals {
				next = append(next, o+v)
			}
		}
		out = next
	}
	return out, true, false
}

// ResolveOne evaluates the template to its first value.
func (t *Template) ResolveOne(r Resolver) (string, bool) {
	vals, ok, _ := t.Resolve(r)
	if !ok || len(vals) == 0 {
		return "", false
	}
	return vals[0], true
}

// timePlaceholder resolves time:now and time:now_epoch_millis with an
// optional offset (+1h, -30m) and truncation ([h]).
func timePlaceholder(name string, now time.Time) (string, bool) {
	base, millis := "", false
	switch {
	case strings.HasPrefix(name, "now_epoch_millis"):
		base, millis = name[len("now_epoch_millis"):], true
	case strings.HasPrefix(name, "now"):
		base = name[len("now"):]
	default:
		return "", false
	}
	t := now.UTC()
	if base != "" && (base[0] == '+' || base[0] == '-') {
		end := strings.IndexByte(base, '[')
		if end < 0 {
			end = len(base)
		}
		d, ok := parseTimeUnit(base[1:end])
		if !ok {
			return "", false
		}
		if base[0] == '-' {
			d = -d
		}
		t = t.Add(d)
		base = base[end:]
	}
	if base != "" {
		if len(base) < 3 || base[0] != '[' || base[len(base)-1] != ']' {
			return "", false
		}
		var ok bool
		if t, ok = truncateTime(t, base[1:len(base)-1]); !ok {
			return "", false
		}
	}
	if millis {
		return strconv.FormatInt(t.UnixMilli(), 10), true
	}
	return t.Format("2006-01-02T15:04:05.000Z"), true
}

var timeUnits = map[string]time.Duration{
	"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour,
	"d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "mo": 30 * 24 * time.Hour, "y": 365 * 24 * time.Hour,
}

func parseTimeUnit(s string) (time.Duration, bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 6 {
		return 0, false
	}
	n, _ := strconv.Atoi(s[:i])
	u, ok := timeUnits[s[i:]]
	return time.Duration(n) * u, ok
}

func truncateTime(t time.Time, unit string) (time.Time, bool) {
	switch unit {
	case "ms":
		return t.Truncate(time.Millisecond), true
	case "s", "m", "h":
		return t.Truncate(timeUnits[unit]), true
	case "d":
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), true
	case "w":
		d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		return d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7)), true
	case "mo":
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC), true
	case "y":
		return time.Date(t.Year(), 1, 1, 0, 0, 0, 0, time.UTC), true
	}
	return t, false
}

// wildcard matches s against pat, where '*' is any run of characters and
// '?' one character (fn:filter's 'like'). It runs in O(len(pat)*len(s)).
func wildcard(pat, s string) bool {
	p, t := []rune(pat), []rune(s)
	pi, ti, star, mark := 0, 0, -1, 0
	for ti < len(t) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == t[ti]):
			pi++
			ti++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ti
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			ti = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

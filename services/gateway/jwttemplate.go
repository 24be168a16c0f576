package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/dittonode/dittonode/ditto"
)

// maxTemplateLen bounds a configured template; templates come from the
// operator, but the fuzz target and a typo should not build huge pipelines.
const maxTemplateLen = 1024

// subjectTemplate is a compiled OIDC auth-subjects (or prerequisite
// condition) template as in Ditto's gateway configuration: literal text
// and {{ jwt:<claim-pointer> | fn:<function>(<args>) | ... }} expressions.
//
// An expression resolves to a list of values: a JSON array claim gives one
// value per element and fn:split splits values further; every function of
// the pipeline works on each value. A template with several expressions
// yields every combination. An expression that resolves to nothing makes
// the whole template unresolved (Ditto skips such auth subjects).
type subjectTemplate struct {
	src   string
	parts []templatePart
}

// templatePart is literal text (expr nil) or one {{ }} expression.
type templatePart struct {
	lit  string
	expr *templateExpr
}

// templateExpr is a pipeline: an optional jwt: source and functions.
type templateExpr struct {
	claim ditto.Pointer // nil: the pipeline starts with a function (empty input)
	fns   []templateFn
}

type templateFn struct {
	name string
	args []fnArg
}

// fnArg is a quoted string constant or a jwt: placeholder.
type fnArg struct {
	lit   string
	claim ditto.Pointer // non-nil for a placeholder argument
}

// fnArity is the allowed argument counts of each function.
var fnArity = map[string][2]int{
	"default":          {1, 1},
	"lower":            {0, 0},
	"upper":            {0, 0},
	"delete":           {0, 0},
	"split":            {1, 1},
	"substring-before": {1, 1},
	"substring-after":  {1, 1},
	"replace":          {2, 2},
	"filter":           {1, 3},
}

// parseSubjectTemplate compiles a template. It never panics.
func parseSubjectTemplate(src string) (*subjectTemplate, error) {
	if len(src) > maxTemplateLen {
		return nil, fmt.Errorf("template longer than %d bytes", maxTemplateLen)
	}
	if src == "" {
		return nil, errors.New("empty template")
	}
	t := &subjectTemplate{src: src}
	rest := src
	for rest != "" {
		i := strings.Index(rest, "{{")
		if i < 0 {
			t.parts = append(t.parts, templatePart{lit: rest})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, templatePart{lit: rest[:i]})
		}
		end := closingBraces(rest[i+2:])
		if end < 0 {
			return nil, fmt.Errorf("template %q: unclosed {{", src)
		}
		e, err := parseTemplateExpr(rest[i+2 : i+2+end])
		if err != nil {
			return nil, fmt.Errorf("template %q: %w", src, err)
		}
		t.parts = append(t.parts, templatePart{expr: e})
		rest = rest[i+2+end+2:]
	}
	return t, nil
}

// closingBraces returns the index of the "}}" that ends an expression,
// skipping quoted strings, or -1.
func closingBraces(s string) int {
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
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			return i
		}
	}
	return -1
}

// splitOutsideQuotes splits s at sep where sep is not inside quotes.
func splitOutsideQuotes(s string, sep byte) ([]string, error) {
	var out []string
	var quote byte
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	if quote != 0 {
		return nil, errors.New("unterminated quoted string")
	}
	return append(out, s[start:]), nil
}

func parseTemplateExpr(s string) (*templateExpr, error) {
	stages, err := splitOutsideQuotes(s, '|')
	if err != nil {
		return nil, err
	}
	e := &templateExpr{}
	for i, st := range stages {
		st = strings.TrimSpace(st)
		switch {
		case i == 0 && strings.HasPrefix(st, "jwt:"):
			p, err := parseClaimPointer(st)
			if err != nil {
				return nil, err
			}
			e.claim = p
		case strings.HasPrefix(st, "fn:"):
			fn, err := parseTemplateFn(st)
			if err != nil {
				return nil, err
			}
			e.fns = append(e.fns, fn)
		case st == "":
			return nil, errors.New("empty pipeline stage")
		default:
			return nil, fmt.Errorf("unknown placeholder or function %q (supported: jwt:<claim>, fn:...)", st)
		}
	}
	return e, nil
}

// parseClaimPointer parses "jwt:<pointer>" (e.g. jwt:sub, jwt:extra/roles).
func parseClaimPointer(s string) (ditto.Pointer, error) {
	name := strings.TrimPrefix(s, "jwt:")
	if name == "" || strings.ContainsAny(name, " \t'\"(),|") {
		return nil, fmt.Errorf("invalid claim placeholder %q", s)
	}
	p, err := ditto.ParsePointer(name)
	if err != nil || len(p) == 0 {
		return nil, fmt.Errorf("invalid claim pointer in %q", s)
	}
	return p, nil
}

func parseTemplateFn(s string) (templateFn, error) {
	open := strings.IndexByte(s, '(')
	if open < 0 || !strings.HasSuffix(s, ")") {
		return templateFn{}, fmt.Errorf("function %q: want fn:<name>(<args>)", s)
	}
	fn := templateFn{name: strings.TrimSpace(s[len("fn:"):open])}
	arity, ok := fnArity[fn.name]
	if !ok {
		return templateFn{}, fmt.Errorf("unknown function fn:%s", fn.name)
	}
	inner := strings.TrimSpace(s[open+1 : len(s)-1])
	if inner != "" {
		raw, err := splitOutsideQuotes(inner, ',')
		if err != nil {
			return templateFn{}, fmt.Errorf("function %q: %w", s, err)
		}
		for _, a := range raw {
			arg, err := parseFnArg(strings.TrimSpace(a))
			if err != nil {
				return templateFn{}, fmt.Errorf("function %q: %w", s, err)
			}
			fn.args = append(fn.args, arg)
		}
	}
	if len(fn.args) < arity[0] || len(fn.args) > arity[1] {
		return templateFn{}, fmt.Errorf("function fn:%s takes %d to %d arguments, not %d", fn.name, arity[0], arity[1], len(fn.args))
	}
	if err := checkFnArgs(fn); err != nil {
		return templateFn{}, err
	}
	return fn, nil
}

func parseFnArg(a string) (fnArg, error) {
	if len(a) >= 2 && (a[0] == '\'' || a[0] == '"') && a[len(a)-1] == a[0] {
		body := a[1 : len(a)-1]
		if strings.IndexByte(body, a[0]) >= 0 {
			return fnArg{}, fmt.Errorf("argument %s: quote inside a quoted string", a)
		}
		return fnArg{lit: body}, nil
	}
	if strings.HasPrefix(a, "jwt:") {
		p, err := parseClaimPointer(a)
		if err != nil {
			return fnArg{}, err
		}
		return fnArg{claim: p}, nil
	}
	return fnArg{}, fmt.Errorf("argument %q: want a quoted string or a jwt: placeholder", a)
}

// filterOps are the RQL functions of fn:filter.
var filterOps = map[string]bool{"eq": true, "ne": true, "exists": true, "like": true}

func checkFnArgs(fn templateFn) error {
	switch fn.name {
	case "split":
		if fn.args[0].claim != nil || fn.args[0].lit == "" {
			return errors.New("fn:split takes a non-empty string separator")
		}
	case "filter":
		// (op) | (op, value) | (filterValue, op, value)
		opIdx := 0
		if len(fn.args) == 3 {
			opIdx = 1
		}
		op := fn.args[opIdx]
		if op.claim != nil || !filterOps[op.lit] {
			return fmt.Errorf("fn:filter: unknown function %q (eq, ne, exists, like)", op.lit)
		}
		if len(fn.args) == 1 && op.lit != "exists" {
			return fmt.Errorf("fn:filter('%s') needs a value to compare with", op.lit)
		}
	}
	return nil
}

// resolve evaluates the template against the JWT claims. It returns nil if
// the template is unresolved. At most limit values are returned.
func (t *subjectTemplate) resolve(claims map[string]any, limit int) []string {
	out := []string{""}
	for _, p := range t.parts {
		if p.expr == nil {
			for i := range out {
				out[i] += p.lit
			}
			continue
		}
		vals := p.expr.eval(claims)
		if len(vals) == 0 {
			return nil
		}
		next := make([]string, 0, min(len(out)*len(vals), limit))
	product:
		for _, prefix := range out {
			for _, v := range vals {
				if len(next) == limit {
					break product
				}
				next = append(next, prefix+v)
			}
		}
		out = next
	}
	return out
}

func (e *templateExpr) eval(claims map[string]any) []string {
	var vals []string
	if e.claim != nil {
		vals = claimValues(claims, e.claim)
	}
	for _, fn := range e.fns {
		vals = fn.apply(vals, claims)
	}
	// An empty value resolves to nothing.
	kept := vals[:0]
	for _, v := range vals {
		if v != "" {
			kept = append(kept, v)
		}
	}
	return kept
}

func (a fnArg) values(claims map[string]any) []string {
	if a.claim != nil {
		return claimValues(claims, a.claim)
	}
	return []string{a.lit}
}

// first returns the argument's first value and whether it has one.
func (a fnArg) first(claims map[string]any) (string, bool) {
	vs := a.values(claims)
	if len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

func mapValues(vals []string, f func(string) (string, bool)) []string {
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		if r, ok := f(v); ok {
			out = append(out, r)
		}
	}
	return out
}

func (fn templateFn) apply(vals []string, claims map[string]any) []string {
	switch fn.name {
	case "default":
		if len(vals) == 0 {
			return fn.args[0].values(claims)
		}
		return vals
	case "lower":
		return mapValues(vals, func(v string) (string, bool) { return strings.ToLower(v), true })
	case "upper":
		return mapValues(vals, func(v string) (string, bool) { return strings.ToUpper(v), true })
	case "delete":
		return nil
	case "split":
		var out []string
		for _, v := range vals {
			for part := range strings.SplitSeq(v, fn.args[0].lit) {
				if part != "" {
					out = append(out, part)
				}
			}
		}
		return out
	case "substring-before", "substring-after":
		sep, ok := fn.args[0].first(claims)
		if !ok {
			return nil
		}
		return mapValues(vals, func(v string) (string, bool) {
			before, after, found := strings.Cut(v, sep)
			if fn.name == "substring-before" {
				return before, found
			}
			return after, found
		})
	case "replace":
		from, ok1 := fn.args[0].first(claims)
		to, ok2 := fn.args[1].first(claims)
		if !ok1 || !ok2 {
			return vals
		}
		return mapValues(vals, func(v string) (string, bool) { return strings.ReplaceAll(v, from, to), true })
	case "filter":
		return fn.filter(vals, claims)
	}
	return vals
}

func (fn templateFn) filter(vals []string, claims map[string]any) []string {
	if len(fn.args) == 3 {
		// (filterValue, op, value): a condition on filterValue decides for
		// the whole pipeline.
		subject := fn.args[0].values(claims)
		cmp, _ := fn.args[2].first(claims)
		for _, s := range subject {
			if filterHolds(fn.args[1].lit, s, true, cmp) {
				return vals
			}
		}
		if len(subject) == 0 && filterHolds(fn.args[1].lit, "", false, cmp) {
			return vals
		}
		return nil
	}
	op := fn.args[0].lit
	cmp := "true"
	if len(fn.args) == 2 {
		cmp, _ = fn.args[1].first(claims)
	}
	return mapValues(vals, func(v string) (string, bool) { return v, filterHolds(op, v, true, cmp) })
}

// filterHolds evaluates one fn:filter condition on a value.
func filterHolds(op, v string, exists bool, cmp string) bool {
	switch op {
	case "eq":
		return exists && v == cmp
	case "ne":
		return !exists || v != cmp
	case "exists":
		return exists == (cmp != "false")
	case "like":
		if !exists {
			return false
		}
		for alt := range strings.SplitSeq(cmp, "|") {
			if globMatch(alt, v) {
				return true
			}
		}
	}
	return false
}

// globMatch matches s against a pattern with '*' (any run) and '?' (one
// character), iteratively (no exponential backtracking).
func globMatch(pattern, s string) bool {
	p, str := []rune(pattern), []rune(s)
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(str) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == str[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// claimValues resolves a claim pointer to its string values: a scalar is one
// value, an array gives one value per scalar element; objects, nulls and
// missing claims give nothing.
func claimValues(claims map[string]any, p ditto.Pointer) []string {
	var cur any = claims
	for _, seg := range p {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[seg]; !ok {
			return nil
		}
	}
	if arr, ok := cur.([]any); ok {
		out := make([]string, 0, len(arr))
		for _, e := range arr {
			if s, ok := scalarString(e); ok {
				out = append(out, s)
			}
		}
		return out
	}
	if s, ok := scalarString(cur); ok {
		return []string{s}
	}
	return nil
}

func scalarString(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case json.Number:
		return t.String(), true
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(t), true
	}
	return "", false
}

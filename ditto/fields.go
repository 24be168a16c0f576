package ditto

import (
	"slices"
	"strings"
)

// thingFieldRoots are the top-level keys a thing field selector may name.
var thingFieldRoots = []string{
	"thingId", "policyId", "definition", "_namespace", "_revision", "_created", "_modified",
	"_metadata", "_policy", "_context", "attributes", "features",
}

// policyFieldRoots are the top-level keys a policy field selector may name.
var policyFieldRoots = []string{
	"policyId", "imports", "entries", "_namespace", "_revision", "_created", "_modified", "_metadata",
}

// ThingFieldRoots returns the roots a thing field selector may use.
func ThingFieldRoots() []string { return slices.Clone(thingFieldRoots) }

// PolicyFieldRoots returns the roots a policy field selector may use.
func PolicyFieldRoots() []string { return slices.Clone(policyFieldRoots) }

// Wildcard is the pointer segment that stands for every feature ID in a field
// selector ("features/*/properties/on").
const Wildcard = "*"

// FieldSelector is a parsed Ditto field selector ("fields=" and
// "extraFields="): a set of pointers whose selected parts of a JSON object
// are kept in their original nesting. The zero FieldSelector selects
// nothing and IsEmpty reports true; callers treat that as "no selection".
type FieldSelector struct {
	ptrs []Pointer
	tree *fieldNode
}

// fieldNode is one level of the selection tree. A leaf selects the whole
// value below it; otherwise only its children are selected.
type fieldNode struct {
	leaf bool
	// features marks the root's "features" child and the one below
	// "_metadata", below which "*" is the wildcard feature ID.
	features bool
	children map[string]*fieldNode
}

// ParseFieldSelector parses a thing field selector: a comma list of pointers
// (leading slash optional) with "a/b(c,d/e)" groups nested arbitrarily and
// the wildcard feature ID "features/*/…" (also "_metadata/features/*/…"). Every pointer must start at one of
// ThingFieldRoots. The empty string gives the empty selector. Failures are
// things:field.selection.invalid.
func ParseFieldSelector(s string) (FieldSelector, error) {
	return ParseFieldSelectorFor(s, thingFieldRoots)
}

// ParsePolicyFieldSelector parses a field selector on a policy (roots
// PolicyFieldRoots) with the same syntax as ParseFieldSelector.
func ParsePolicyFieldSelector(s string) (FieldSelector, error) {
	return ParseFieldSelectorFor(s, policyFieldRoots)
}

// ParseFieldSelectorFor parses a field selector whose pointers must start at
// one of roots. Sub-paths below any root are accepted (a sub-path of a
// scalar simply selects nothing). "*" is a wildcard only as the second
// segment below "features"; anywhere else it is a literal key.
func ParseFieldSelectorFor(s string, roots []string) (FieldSelector, error) {
	if strings.TrimSpace(s) == "" {
		return FieldSelector{}, nil
	}
	p := fieldParser{src: s}
	ptrs, err := p.list(nil)
	if err != nil {
		return FieldSelector{}, err
	}
	if p.pos != len(s) {
		return FieldSelector{}, p.fail("unexpected ')'")
	}
	fs := FieldSelector{tree: &fieldNode{}}
	for _, ptr := range ptrs {
		if !slices.Contains(roots, ptr[0]) {
			return FieldSelector{}, ErrFieldSelectionInvalid.New(
				"The field selector <%s> is invalid: <%s> is not a selectable field.", s, ptr[0]).
				WithDescription("Check the field selector: allowed roots are " + strings.Join(roots, ", ") + ".")
		}
		if slices.ContainsFunc(fs.ptrs, ptr.Equal) {
			continue
		}
		fs.ptrs = append(fs.ptrs, ptr)
		fs.tree.insert(ptr)
	}
	return fs, nil
}

// ParseFieldPointers parses a field selector with any roots (a ','
// separated list of pointers with "a(b,c)" groups, as get-metadata and
// delete-metadata take) and returns its pointers, groups expanded, in
// the order given. An empty selector is an error.
func ParseFieldPointers(s string) ([]Pointer, error) {
	p := fieldParser{src: s}
	ptrs, err := p.list(nil)
	if err != nil {
		return nil, err
	}
	if p.pos != len(s) {
		return nil, p.fail("unexpected ')'")
	}
	return ptrs, nil
}

// fieldParser is a recursive-descent parser over the selector string.
type fieldParser struct {
	src string
	pos int
}

func (p *fieldParser) fail(why string) error {
	return ErrFieldSelectionInvalid.New("The field selector <%s> is invalid: %s.", p.src, why)
}

// list parses item (',' item)* and returns the expanded pointers, each
// prefixed with prefix. It stops before a ')' or at the end.
func (p *fieldParser) list(prefix Pointer) ([]Pointer, error) {
	var out []Pointer
	for {
		ptrs, err := p.item(prefix)
		if err != nil {
			return nil, err
		}
		out = append(out, ptrs...)
		if p.pos < len(p.src) && p.src[p.pos] == ',' {
			p.pos++
			continue
		}
		return out, nil
	}
}

// item parses path ['(' list ')'].
func (p *fieldParser) item(prefix Pointer) ([]Pointer, error) {
	start := p.pos
	for p.pos < len(p.src) && !strings.ContainsRune(",()", rune(p.src[p.pos])) {
		p.pos++
	}
	raw := strings.TrimSpace(p.src[start:p.pos])
	if raw == "" || raw == "/" {
		return nil, p.fail("it contains an empty field")
	}
	seg, err := ParsePointer(raw)
	if err != nil {
		return nil, p.fail("it contains an empty path segment or control characters")
	}
	path := prefix.Append(seg...)
	if p.pos == len(p.src) || p.src[p.pos] != '(' {
		return []Pointer{path}, nil
	}
	p.pos++ // '('
	inner, err := p.list(path)
	if err != nil {
		return nil, err
	}
	if p.pos == len(p.src) || p.src[p.pos] != ')' {
		return nil, p.fail("unbalanced parentheses")
	}
	p.pos++ // ')'
	if p.pos < len(p.src) && p.src[p.pos] != ',' && p.src[p.pos] != ')' {
		return nil, p.fail("a group must be followed by ',' or ')'")
	}
	return inner, nil
}

func (n *fieldNode) insert(p Pointer) {
	for i, seg := range p {
		if n.leaf {
			return // an ancestor already selects everything below
		}
		if n.children == nil {
			n.children = map[string]*fieldNode{}
		}
		c, ok := n.children[seg]
		if !ok {
			c = &fieldNode{features: seg == "features" && (i == 0 || i == 1 && p[0] == "_metadata")}
			n.children[seg] = c
		}
		n = c
	}
	n.leaf = true
	n.children = nil
}

// IsEmpty reports whether the selector selects nothing (no "fields" given).
func (fs FieldSelector) IsEmpty() bool { return len(fs.ptrs) == 0 }

// Pointers returns the selected pointers with groups expanded, in the order
// given and without duplicates. A wildcard feature ID is the segment "*".
func (fs FieldSelector) Pointers() []Pointer {
	out := make([]Pointer, len(fs.ptrs))
	for i, p := range fs.ptrs {
		out[i] = slices.Clone(p)
	}
	return out
}

// Has reports whether any selected pointer starts at root, e.g. whether
// "_revision" or "_policy" is selected.
func (fs FieldSelector) Has(root string) bool {
	for _, p := range fs.ptrs {
		if p[0] == root {
			return true
		}
	}
	return false
}

// String renders the selector as a flat comma list of pointers without the
// leading slash, e.g. "thingId,attributes/location".
func (fs FieldSelector) String() string {
	parts := make([]string, len(fs.ptrs))
	for i, p := range fs.ptrs {
		parts[i] = p.String()[1:]
	}
	return strings.Join(parts, ",")
}

// Apply returns a new JSON object holding only the selected parts of v, in
// their original nesting. Missing paths are omitted, and so are objects that
// would only hold omitted paths. A wildcard feature ID expands over the
// feature IDs present. The selected values are deep copies; v is not
// modified. A v that is not an object yields an empty object.
func (fs FieldSelector) Apply(v any) any {
	out := map[string]any{}
	m, ok := v.(map[string]any)
	if !ok || fs.tree == nil {
		return out
	}
	fs.tree.applyObject(m, out, 0)
	return out
}

// applyObject copies the selected children of m into out. depth is the depth
// of m below the root.
func (n *fieldNode) applyObject(m, out map[string]any, depth int) {
	for k, c := range n.children {
		if k == Wildcard && n.isFeatures(depth) {
			for fk, fv := range m {
				if sel, ok := c.apply(fv, depth+1); ok {
					out[fk] = unionSelected(out[fk], sel)
				}
			}
			continue
		}
		v, ok := m[k]
		if !ok {
			continue
		}
		if sel, ok := c.apply(v, depth+1); ok {
			out[k] = unionSelected(out[k], sel)
		}
	}
}

// isFeatures reports whether n is the root's "features" node (or the one
// of "_metadata", which mirrors the thing), whose children are feature IDs.
func (n *fieldNode) isFeatures(int) bool { return n.features }

// apply returns the selected part of v at node n, and false when nothing of
// v is selected.
func (n *fieldNode) apply(v any, depth int) (any, bool) {
	if n.leaf {
		return DeepCopy(v), true
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	out := map[string]any{}
	n.applyObject(m, out, depth)
	if len(out) == 0 {
		return nil, false
	}
	return out, true
}

// unionSelected merges two selections taken from the same source value.
func unionSelected(a, b any) any {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if !aok || !bok {
		if a == nil {
			return b
		}
		return a
	}
	for k, v := range bm {
		am[k] = unionSelected(am[k], v)
	}
	return am
}

package things

import (
	"slices"
	"strings"

	"github.com/dittonode/dittonode/ditto"
)

// Thing metadata (ditto-spec section 11). A record's Meta mirrors the
// thing: metadata about the value at /attributes/a lives in it at
// /attributes/a/<key>. It changes only as a side effect of writes:
// put-metadata and delete-metadata on a modify or merge, and deleting data
// deletes the metadata at and below it. get-metadata reads it on a
// retrieve, answered in the ditto-metadata response header, and the field
// selector _metadata returns it with the thing.
//
// Header keys and paths are relative to the command's resource. A path
// with a "*" segment before its last one is a wildcard, expanded against
// the command's value (put-metadata) or the thing's current value at the
// resource (get- and delete-metadata). Which wildcards a resource takes
// follows Ditto's MetadataWildcardValidator; see metaPatterns.

// metaPath is one path of a metadata header, relative to the resource.
type metaPath struct {
	p ditto.Pointer
	// leaves: "*/k…" stands for k… below every leaf of the value.
	leaves bool
	// wild is the length of p's wildcard prefix: each "*" in it stands for
	// every key of the object at that place in the value, and the other
	// segments must exist there. 0 for a path without wildcards.
	wild int
}

// metaPut is one item of put-metadata.
type metaPut struct {
	metaPath
	value any
}

// metaReq is the metadata header of a command that applies to it:
// put-metadata or delete-metadata on a write, get-metadata on a retrieve.
type metaReq struct {
	put      []metaPut // wildcard keys first, so a specific key wins
	get, del []metaPath
	getAll   bool // get-metadata: *
	delAll   bool // delete-metadata: *
}

// Wildcard patterns per resource (Ditto's MetadataWildcardValidator). "*"
// is the wildcard, "P" properties or desiredProperties, "_" any one key;
// at least one more key must follow, none of them "*". The pattern {"*"}
// at the thing and below a feature's leaves means every leaf.
var (
	metaPatternsThing = [][]string{
		{"*"}, {"attributes", "*"},
		{"features", "*", "P", "*"}, {"features", "*", "P", "_"}, {"features", "_", "P", "*"},
		{"features", "*", "definition"},
	}
	metaPatternsFeatures = [][]string{{"*", "P", "*"}, {"*", "P", "_"}, {"_", "P", "*"}, {"*", "definition"}}
	metaPatternsFeature  = [][]string{{"P", "*"}}
	metaPatternsOther    = [][]string{{"*"}}
)

// parseMetaPath classifies p, a path of header h, for resource r.
func parseMetaPath(p ditto.Pointer, r resource, h string) (metaPath, error) {
	if !slices.Contains(p[:len(p)-1], ditto.Wildcard) {
		return metaPath{p: p}, nil
	}
	patterns := metaPatternsOther
	switch r.kind {
	case kindThing:
		patterns = metaPatternsThing
	case kindFeatures:
		patterns = metaPatternsFeatures
	case kindFeature:
		patterns = metaPatternsFeature
	}
	for _, pat := range patterns {
		if len(p) <= len(pat) || slices.Contains(p[len(pat):], ditto.Wildcard) {
			continue
		}
		if matchMetaPattern(p, pat) {
			return metaPath{p: p, wild: len(pat), leaves: len(pat) == 1 && pat[0] == ditto.Wildcard}, nil
		}
	}
	return metaPath{}, ditto.ErrHeaderInvalid.New("The wildcard expression '%s' in header '%s' is not valid.", p.String(), h).
		WithDescription("Verify that the value of the '" + h + "' header is valid and try again.")
}

func matchMetaPattern(p ditto.Pointer, pat []string) bool {
	for i, want := range pat {
		switch seg := p[i]; want {
		case ditto.Wildcard:
			if seg != ditto.Wildcard {
				return false
			}
		case "P":
			if seg != keyProperties && seg != keyDesired {
				return false
			}
		case "_":
			if seg == ditto.Wildcard {
				return false
			}
		default:
			if seg != want {
				return false
			}
		}
	}
	return true
}

// parseMetaHeaders checks the metadata headers of a command on resource r
// and returns the one that applies to it. As in Ditto, a header's syntax
// is checked on every command, only one metadata header may be given, and
// a header of the wrong kind for the command (get-metadata on a write,
// put-metadata on a retrieve) is ignored.
func parseMetaHeaders(h ditto.Headers, r resource, query bool) (metaReq, error) {
	var q metaReq
	given := 0
	// As in Ditto, a header counts when it is there, even empty or [].
	putRaw, hasPut := h[ditto.HeaderPutMetadata]
	if hasPut {
		given++
		items, err := parsePutMetadata(putRaw)
		if err != nil {
			return q, err
		}
		if !query {
			if err := q.setPut(items, r); err != nil {
				return q, err
			}
		}
	}
	getRaw, hasGet := h[ditto.HeaderGetMetadata]
	if hasGet {
		given++
	}
	delRaw, hasDel := h[ditto.HeaderDeleteMetadata]
	if hasDel {
		given++
	}
	getPtrs, err := parseMetaSelector(getRaw, hasGet, ditto.HeaderGetMetadata)
	if err != nil {
		return q, err
	}
	delPtrs, err := parseMetaSelector(delRaw, hasDel, ditto.HeaderDeleteMetadata)
	if err != nil {
		return q, err
	}
	if given > 1 {
		if query {
			return q, ditto.ErrThingMetadataConflict.New("Metadata of the Thing could not be retrieved.").
				WithDescription("Multiple metadata headers were specified. For GET requests only the 'get-metadata' header can be specified.")
		}
		return q, ditto.ErrThingMetadataConflict.New("Metadata of the Thing could not be created, modified or deleted.").
			WithDescription("Multiple metadata headers were specified. For PUT/PATCH requests either the 'put-metadata' or 'delete-metadata' header can be specified not both at the same time.")
	}
	if query && hasGet {
		q.get, q.getAll, err = metaPaths(getPtrs, r, ditto.HeaderGetMetadata)
	}
	if !query && hasDel {
		q.del, q.delAll, err = metaPaths(delPtrs, r, ditto.HeaderDeleteMetadata)
	}
	return q, err
}

// parsePutMetadata parses put-metadata: a JSON array of {"key","value"}
// objects. Items that are not objects are skipped and an empty value is
// no items, as in Ditto.
func parsePutMetadata(raw string) ([]metaPut, error) {
	if raw == "" {
		return nil, nil
	}
	invalid := func(why string) error {
		return ditto.ErrHeaderInvalid.New("The value '%s' of the header '%s' is not a valid MetadataHeaders.", raw, ditto.HeaderPutMetadata).
			WithDescription(why)
	}
	v, err := ditto.DecodeJSON([]byte(raw))
	if err != nil {
		return nil, invalid("It must be a JSON array of objects with a 'key' and a 'value'.")
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, invalid("It must be a JSON array of objects with a 'key' and a 'value'.")
	}
	var out []metaPut
	for _, it := range arr {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		key, okKey := m["key"].(string)
		value, okValue := m["value"]
		if !okKey || !okValue {
			return nil, invalid("Every item needs a string 'key' and a 'value'.")
		}
		p, err := ditto.ParsePointer(key)
		if err != nil {
			return nil, err
		}
		if len(p) == 0 {
			return nil, invalid("The metadata header key <" + key + "> is invalid! The path of a metadata header key must not be empty!")
		}
		out = append(out, metaPut{metaPath: metaPath{p: p}, value: value})
	}
	return out, nil
}

// setPut classifies the keys of put-metadata items for resource r and
// orders them as Ditto applies them: wildcard keys first, so a specific
// key wins, then by key, so "x" is set before "x/y", then by value.
func (q *metaReq) setPut(items []metaPut, r resource) error {
	type sortKey struct {
		specific   bool
		key, value string
	}
	keys := make([]sortKey, len(items))
	for i := range items {
		mp, err := parseMetaPath(items[i].p, r, ditto.HeaderPutMetadata)
		if err != nil {
			return err
		}
		items[i].metaPath = mp
		keys[i] = sortKey{mp.wild == 0, mp.p.String(), string(ditto.EncodeJSON(items[i].value))}
	}
	idx := make([]int, len(items))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		ka, kb := keys[a], keys[b]
		switch {
		case ka.specific != kb.specific:
			if ka.specific {
				return 1
			}
			return -1
		case ka.key != kb.key:
			return strings.Compare(ka.key, kb.key)
		}
		return strings.Compare(ka.value, kb.value)
	})
	q.put = make([]metaPut, len(items))
	for i, j := range idx {
		q.put[i] = items[j]
	}
	return nil
}

// parseMetaSelector parses get-metadata or delete-metadata: a field
// selector of paths.
func parseMetaSelector(raw string, given bool, h string) ([]ditto.Pointer, error) {
	if !given {
		return nil, nil
	}
	ptrs, err := ditto.ParseFieldPointers(raw)
	if err != nil {
		return nil, ditto.ErrHeaderInvalid.New("The value '%s' of the header '%s' is not a valid field selector.", raw, h).
			WithDescription("Give a comma-separated list of paths, for example 'features/lamp/properties/color,attributes/*/unit'.")
	}
	return ptrs, nil
}

// metaPaths classifies the paths of get- or delete-metadata; a lone "*"
// means all metadata at the resource.
func metaPaths(ptrs []ditto.Pointer, r resource, h string) ([]metaPath, bool, error) {
	if len(ptrs) == 1 && len(ptrs[0]) == 1 && ptrs[0][0] == ditto.Wildcard {
		return nil, true, nil
	}
	out := make([]metaPath, 0, len(ptrs))
	for _, p := range ptrs {
		mp, err := parseMetaPath(p, r, h)
		if err != nil {
			return nil, false, err
		}
		out = append(out, mp)
	}
	return out, false, nil
}

// expand returns the paths mp stands for in v, relative to the resource.
func (mp metaPath) expand(v any) []ditto.Pointer {
	switch {
	case mp.wild == 0:
		return []ditto.Pointer{mp.p}
	case mp.leaves:
		var out []ditto.Pointer
		eachLeaf(v, nil, func(leaf ditto.Pointer) {
			out = append(out, leaf.Append(mp.p[1:]...))
		})
		return out
	}
	var out []ditto.Pointer
	expandPrefix(v, mp.p[:mp.wild], nil, func(at ditto.Pointer) {
		out = append(out, at.Append(mp.p[mp.wild:]...))
	})
	return out
}

// eachLeaf calls f with the path of every leaf of v (every value that is
// not an object; an empty object has none), in key order.
func eachLeaf(v any, at ditto.Pointer, f func(ditto.Pointer)) {
	m, ok := v.(map[string]any)
	if !ok {
		f(at)
		return
	}
	for _, k := range sortedKeys(m) {
		eachLeaf(m[k], at.Append(k), f)
	}
}

// expandPrefix calls f with every path of v that pattern (with "*"
// segments) matches, in key order.
func expandPrefix(v any, pattern, at ditto.Pointer, f func(ditto.Pointer)) {
	if len(pattern) == 0 {
		f(at)
		return
	}
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	if pattern[0] != ditto.Wildcard {
		if c, ok := m[pattern[0]]; ok {
			expandPrefix(c, pattern[1:], at.Append(pattern[0]), f)
		}
		return
	}
	for _, k := range sortedKeys(m) {
		expandPrefix(m[k], pattern[1:], at.Append(k), f)
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// writesMetadata reports a put-metadata with items or a delete-metadata.
func writesMetadata(h ditto.Headers) bool {
	if h[ditto.HeaderDeleteMetadata] != "" {
		return true
	}
	items, _ := parsePutMetadata(h[ditto.HeaderPutMetadata])
	return len(items) > 0
}

// maxMetaPaths bounds the paths the wildcards of one get- or
// delete-metadata header expand to (a thing of 100 kB has fewer leaves).
const maxMetaPaths = 100_000

func tooManyMetaPaths(h string) *ditto.Error {
	return ditto.ErrHeaderInvalid.New("The header '%s' selects more than %d metadata paths.", h, maxMetaPaths).
		WithDescription("Select fewer paths or use fewer wildcards.")
}

// decodeMeta decodes a record's Meta ("" for none) into a fresh object.
func decodeMeta(s string) map[string]any {
	if s == "" {
		return nil
	}
	v, err := ditto.DecodeJSON([]byte(s))
	if err != nil {
		panic("things: stored metadata does not decode: " + err.Error())
	}
	m, _ := v.(map[string]any)
	return m
}

// encodeMeta is decodeMeta's inverse: "" for no metadata. Metadata that
// became empty stays "{}", as in Ditto: the thing shows "_metadata":{}.
func encodeMeta(m map[string]any) string {
	if m == nil {
		return ""
	}
	return string(ditto.EncodeJSON(m))
}

// deleteMeta removes the metadata at p; at the thing it empties it.
// Objects left empty stay, as in Ditto.
func deleteMeta(m map[string]any, p ditto.Pointer) map[string]any {
	if len(p) == 0 {
		if m == nil {
			return nil
		}
		return map[string]any{}
	}
	ditto.DeleteAt(m, p)
	return m
}

// emptyMeta empties the metadata at p, if there is any.
func emptyMeta(m map[string]any, p ditto.Pointer) map[string]any {
	if _, ok := ditto.GetAt(m, p); !ok || len(p) == 0 {
		return deleteMeta(m, p)
	}
	return ditto.SetAt(m, p, map[string]any{}).(map[string]any)
}

func isEmptyObject(v any) bool {
	o, ok := v.(map[string]any)
	return ok && len(o) == 0
}

// deleteNulls removes the metadata of every value a merge patch deletes
// (its nulls), below the resource path at.
func deleteNulls(m map[string]any, at ditto.Pointer, patch any) map[string]any {
	if patch == nil {
		return deleteMeta(m, at)
	}
	o, ok := patch.(map[string]any)
	if !ok {
		return m
	}
	for _, k := range sortedKeys(o) {
		m = deleteNulls(m, at.Append(k), o[k])
	}
	return m
}

// nextMeta returns the metadata after entry e on resource r: old is the
// stored Meta, before the thing's JSON before the change (nil for none),
// val the entry's canonical value (the patch of a merge, the whole thing
// of a create). It is deterministic, as Apply must be. max bounds what
// put-metadata may add (a "*/k" over a value with many leaves multiplies
// its value): beyond it the thing is too large, found before the
// metadata is built.
//
// The order follows Ditto's: a value replaced by {} empties its metadata,
// put-metadata applies (keys relative to the resource, wildcards over the
// command's value), a merge's nulls delete the metadata of what they
// delete, and delete-metadata removes paths, its wildcards expanded over
// the thing before the change.
func nextMeta(old string, before []byte, e *entry, r resource, val any, max int) (string, error) {
	if e.op == opDelete && r.kind == kindThing {
		return "", nil
	}
	if old == "" && e.putMeta == "" {
		return "", nil // the common case: no metadata before or after
	}
	var q metaReq
	if e.putMeta != "" {
		items, err := parsePutMetadata(e.putMeta)
		if err != nil {
			return "", err
		}
		if err := q.setPut(items, r); err != nil {
			return "", err
		}
	}
	if e.delMeta != "" {
		ptrs, err := parseMetaSelector(e.delMeta, true, ditto.HeaderDeleteMetadata)
		if err != nil {
			return "", err
		}
		if q.del, q.delAll, err = metaPaths(ptrs, r, ditto.HeaderDeleteMetadata); err != nil {
			return "", err
		}
	}
	m := decodeMeta(old)
	if e.op == opDelete {
		// Deleting data deletes its metadata.
		return encodeMeta(deleteMeta(m, r.path)), nil
	}
	if e.op == opModify && isEmptyObject(val) {
		m = emptyMeta(m, r.path)
	}
	if len(q.put) > 0 && e.op == opModify && r.kind == kindThing && e.value != nil {
		// The command's thing, without the policyId Apply keeps from the
		// stored thing: "*/k" covers what the command wrote.
		if v, err := ditto.DecodeJSON(e.value); err == nil {
			val = v
		}
	}
	added := 0
	for _, it := range q.put {
		size := len(ditto.EncodeJSON(it.value))
		for _, p := range it.expand(val) {
			added += size
			for _, seg := range p {
				added += len(seg) + 4
			}
			if added > max {
				return "", tooLarge(e.id, added, max)
			}
			if m == nil {
				m = map[string]any{}
			}
			m = ditto.SetAt(m, r.path.Append(p...), ditto.DeepCopy(it.value)).(map[string]any)
		}
	}
	if e.op == opMerge {
		m = deleteNulls(m, r.path, val)
	}
	if q.delAll {
		m = emptyMeta(m, r.path)
	} else if len(q.del) > 0 {
		var cur any
		if before != nil {
			if thing, err := ditto.DecodeJSON(before); err == nil {
				cur, _ = ditto.GetAt(thing, r.path)
			}
		}
		n := 0
		for _, mp := range q.del {
			ps := mp.expand(cur)
			if n += len(ps); n > maxMetaPaths {
				return "", tooManyMetaPaths(ditto.HeaderDeleteMetadata)
			}
			for _, p := range ps {
				m = deleteMeta(m, r.path.Append(p...))
			}
		}
	}
	return encodeMeta(m), nil
}

// getMeta answers get-metadata on resource r of rec: the metadata the
// paths select, relative to the resource, as a JSON object ({} for none).
// thing is the decoded thing, or nil to decode it when needed.
func getMeta(q metaReq, rec *Record, r resource, thing any) (map[string]any, error) {
	m := decodeMeta(rec.Meta)
	at, _ := ditto.GetAt(m, r.path)
	out := map[string]any{}
	if q.getAll {
		if o, ok := at.(map[string]any); ok {
			return o, nil
		}
		return out, nil
	}
	if at == nil {
		return out, nil
	}
	var cur any
	n := 0
	for _, mp := range q.get {
		if mp.wild > 0 && thing == nil {
			thing, _ = ditto.DecodeJSON(rec.JSON)
		}
		if mp.wild > 0 && cur == nil {
			cur, _ = ditto.GetAt(thing, r.path)
		}
		ps := mp.expand(cur)
		if n += len(ps); n > maxMetaPaths {
			return nil, tooManyMetaPaths(ditto.HeaderGetMetadata)
		}
		for _, p := range ps {
			if v, ok := ditto.GetAt(at, p); ok {
				out = ditto.SetAt(out, p, v).(map[string]any)
			}
		}
	}
	return out, nil
}

// inlineMetaPut turns the _metadata of a created thing's body into
// put-metadata items at the thing: one per top-level key.
func inlineMetaPut(tid string, meta any) (string, error) {
	m, ok := meta.(map[string]any)
	if !ok {
		return "", ditto.ErrJSONInvalid.New("The _metadata of the Thing with ID '%s' must be a JSON object.", tid)
	}
	items := make([]any, 0, len(m))
	for _, k := range sortedKeys(m) {
		items = append(items, map[string]any{"key": ditto.Pointer{k}.String(), "value": m[k]})
	}
	if len(items) == 0 {
		return "", nil
	}
	return string(ditto.EncodeJSON(items)), nil
}

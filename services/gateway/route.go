package gateway

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/dittonode/dittonode/ditto"
)

// resource says which service a route belongs to.
type resource uint8

const (
	resThings resource = iota + 1
	resPolicies
)

// methods is a set of HTTP methods a route supports.
type methods uint8

const (
	mGet methods = 1 << iota
	mPut
	mPatch
	mDelete
	mPost
)

const (
	mAll       = mGet | mPut | mPatch | mDelete
	mGetPut    = mGet | mPut
	mPolicyAll = mGet | mPut | mDelete
)

// methodBit maps an HTTP method to its bit; 0 for methods no route supports.
func methodBit(m string) methods {
	switch m {
	case http.MethodGet:
		return mGet
	case http.MethodPut:
		return mPut
	case http.MethodPatch:
		return mPatch
	case http.MethodDelete:
		return mDelete
	case http.MethodPost:
		return mPost
	}
	return 0
}

// allow renders the set for the Allow header.
func (m methods) allow() string {
	var b strings.Builder
	for _, e := range []struct {
		bit  methods
		name string
	}{{mGet, http.MethodGet}, {mPost, http.MethodPost}, {mPut, http.MethodPut}, {mPatch, http.MethodPatch}, {mDelete, http.MethodDelete}} {
		if m&e.bit != 0 {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(e.name)
		}
	}
	return b.String()
}

// route is a parsed /api/2 resource path.
type route struct {
	res resource
	// collection is /things itself (multi-get and POST).
	collection bool
	// entity is the URL-decoded thing or policy ID.
	entity string
	// path is the resource inside the entity (nil = the entity itself).
	path    ditto.Pointer
	methods methods
	// err is a malformed sub-resource path (e.g. "attributes//x"). It is
	// reported after the method check, as Ditto answers an unsupported
	// method with 405 before it looks at the pointer.
	err *ditto.Error
}

// action maps the request method to the command action on this route.
func (rt route) action(method string) ditto.Action {
	switch method {
	case http.MethodPut:
		return ditto.ActionModify
	case http.MethodPatch:
		return ditto.ActionMerge
	case http.MethodDelete:
		return ditto.ActionDelete
	case http.MethodPost:
		return ditto.ActionCreate
	}
	return ditto.ActionRetrieve
}

// parseRoute parses the escaped path below /api/2 (e.g. "/things/ns:t/attributes/a").
// It never panics on any input; an unknown path is 404, a malformed one 400.
func parseRoute(escaped string) (route, *ditto.Error) {
	p := strings.TrimPrefix(escaped, "/")
	trailingSlash := strings.HasSuffix(p, "/")
	p = strings.TrimSuffix(p, "/")
	segs := strings.Split(p, "/")
	switch segs[0] {
	case "things":
		return parseThingRoute(segs)
	case "policies":
		return parsePolicyRoute(segs, trailingSlash)
	}
	return route{}, notFound(escaped)
}

func notFound(escaped string) *ditto.Error {
	return ditto.ErrResourceNotFound.New("The resource '/api/2%s' does not exist.", escaped)
}

// unescape decodes one path segment; segments without '%' cost nothing.
func unescape(seg string) (string, *ditto.Error) {
	if strings.IndexByte(seg, '%') < 0 {
		return seg, nil
	}
	s, err := url.PathUnescape(seg)
	if err != nil {
		return "", ditto.ErrPointerInvalid.New("The path segment '%s' is not validly URL-encoded.", seg)
	}
	return s, nil
}

// entityID decodes the ID segment. An empty segment ("/things//x") is no
// resource at all: 404, as Ditto does not merge double slashes.
func entityID(segs []string, invalid ditto.ErrorDef, kind string) (string, *ditto.Error) {
	seg := segs[1]
	if seg == "" {
		return "", nil404(segs)
	}
	id, derr := unescape(seg)
	if derr != nil {
		return "", derr
	}
	if id == "" {
		return "", invalid.New("%s ID '' is not valid!", kind)
	}
	return id, nil
}

// keySegment decodes one JSON pointer segment of a sub-resource URL with
// ditto.ParsePointer's semantics: no empty segments, no control characters,
// "~0" stands for "~". A '/' smuggled in as %2F is an invalid key.
func keySegment(seg string) (string, *ditto.Error) {
	if seg == "" {
		return "", errConsecutiveSlashes()
	}
	s, derr := unescape(seg)
	if derr != nil {
		return "", derr
	}
	if s == "" {
		return "", errConsecutiveSlashes()
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == 0x7F:
			return "", ditto.ErrPointerInvalid.New("The JSON pointer of the request path contains control characters.")
		case c == '/':
			return "", ditto.ErrJSONKeyInvalid.New("JSON key <%s> is invalid!", s)
		}
	}
	if strings.Contains(s, "~") {
		s = strings.ReplaceAll(s, "~0", "~")
	}
	return s, nil
}

// errConsecutiveSlashes is Ditto's answer to an empty pointer segment.
func errConsecutiveSlashes() *ditto.Error {
	return ditto.ErrPointerInvalid.New("Consecutive slashes in JSON pointers are not supported.")
}

// pointer builds the command path from the decoded fixed names and the
// escaped key segments.
func pointer(fixed []string, keys []string) (ditto.Pointer, *ditto.Error) {
	p := make(ditto.Pointer, 0, len(fixed)+len(keys))
	p = append(p, fixed...)
	for _, k := range keys {
		s, derr := keySegment(k)
		if derr != nil {
			return nil, derr
		}
		p = append(p, s)
	}
	return p, nil
}

// Fixed path names, shared so routes do not allocate them.
var (
	segPolicyID     = []string{"policyId"}
	segDefinition   = []string{"definition"}
	segAttributes   = []string{"attributes"}
	segFeatures     = []string{"features"}
	segEntries      = []string{"entries"}
	segImports      = []string{"imports"}
	featureSub      = map[string]bool{"properties": true, "desiredProperties": true}
	entryLeafGetPut = map[string]bool{"namespaces": true, "importable": true, "allowedAdditions": true}
	importSubs      = map[string]bool{"entries": true, "transitiveImports": true}
)

func parseThingRoute(segs []string) (route, *ditto.Error) {
	rt := route{res: resThings}
	if len(segs) == 1 {
		rt.collection, rt.methods = true, mGet|mPost
		return rt, nil
	}
	id, derr := entityID(segs, ditto.ErrThingIDInvalid, "Thing")
	if derr != nil {
		return route{}, derr
	}
	rt.entity = id
	if len(segs) == 2 {
		rt.methods = mAll
		return rt, nil
	}
	sub, rest := segs[2], segs[3:]
	var err *ditto.Error
	switch sub {
	case "policyId":
		if len(rest) > 0 {
			return route{}, nil404(segs)
		}
		rt.path, rt.methods = segPolicyID, mGet|mPut|mPatch
	case "definition":
		if len(rest) > 0 {
			return route{}, nil404(segs)
		}
		rt.path, rt.methods = segDefinition, mAll
	case "attributes":
		rt.methods = mAll
		rt.path, err = pointer(segAttributes, rest)
	case "features":
		rt.methods = mAll
		rt.path, err = featurePath(segs, rest)
	default:
		return route{}, nil404(segs)
	}
	if err != nil {
		if err.Status == http.StatusNotFound {
			return route{}, err
		}
		rt.path, rt.err = nil, err
	}
	return rt, nil
}

// featurePath parses what follows /features: [{fid}[/definition|/properties[/ptr]|/desiredProperties[/ptr]]].
func featurePath(segs, rest []string) (ditto.Pointer, *ditto.Error) {
	if len(rest) == 0 {
		return segFeatures, nil
	}
	fid, err := keySegment(rest[0])
	if err != nil {
		return nil, err
	}
	if len(rest) == 1 {
		return ditto.Pointer{"features", fid}, nil
	}
	switch sub := rest[1]; {
	case sub == "definition" && len(rest) == 2:
		return ditto.Pointer{"features", fid, "definition"}, nil
	case featureSub[sub]:
		return pointer([]string{"features", fid, sub}, rest[2:])
	}
	return nil, nil404(segs)
}

func parsePolicyRoute(segs []string, trailingSlash bool) (route, *ditto.Error) {
	if len(segs) == 1 {
		return route{}, nil404(segs)
	}
	id, derr := entityID(segs, ditto.ErrPolicyIDInvalid, "Policy")
	if derr != nil {
		return route{}, derr
	}
	rt := route{res: resPolicies, entity: id}
	if len(segs) == 2 {
		rt.methods = mPolicyAll
		return rt, nil
	}
	var err *ditto.Error
	switch segs[2] {
	case "entries":
		rt.path, rt.methods, err = entriesPath(segs, trailingSlash)
	case "imports":
		rt.path, rt.methods, err = importsPath(segs)
	default:
		return route{}, nil404(segs)
	}
	if err != nil {
		return route{}, err
	}
	return rt, nil
}

// entriesPath parses /policies/{id}/entries[...].
func entriesPath(segs []string, trailingSlash bool) (ditto.Pointer, methods, *ditto.Error) {
	rest := segs[3:]
	if len(rest) == 0 {
		return segEntries, mGetPut, nil
	}
	label, err := keySegment(rest[0])
	if err != nil {
		return nil, 0, err
	}
	if len(rest) == 1 {
		return ditto.Pointer{"entries", label}, mPolicyAll, nil
	}
	sub := rest[1]
	switch {
	case sub == "subjects" && len(rest) == 2, sub == "resources" && len(rest) == 2:
		return ditto.Pointer{"entries", label, sub}, mGetPut, nil
	case sub == "subjects" && len(rest) == 3:
		sid, err := valueSegment(rest[2])
		if err != nil {
			return nil, 0, err
		}
		return ditto.Pointer{"entries", label, sub, sid}, mPolicyAll, nil
	case sub == "resources":
		// The resource key "type:/path" travels URL-encoded in one segment
		// (thing:%2Ffeatures%2Fx) or, as Ditto also accepts, as the rest of
		// the path (thing:/features/x); either way it is ONE path segment.
		raw := strings.Join(rest[2:], "/")
		if trailingSlash {
			raw += "/"
		}
		key, err := valueSegment(raw)
		if err != nil {
			return nil, 0, err
		}
		return ditto.Pointer{"entries", label, sub, key}, mPolicyAll, nil
	case entryLeafGetPut[sub] && len(rest) == 2:
		return ditto.Pointer{"entries", label, sub}, mGetPut, nil
	case sub == "references" && len(rest) == 2:
		return ditto.Pointer{"entries", label, sub}, mPolicyAll, nil
	}
	return nil, 0, nil404(segs)
}

// importsPath parses /policies/{id}/imports[...].
func importsPath(segs []string) (ditto.Pointer, methods, *ditto.Error) {
	rest := segs[3:]
	switch {
	case len(rest) == 0:
		return segImports, mPolicyAll, nil
	case len(rest) > 2:
		return nil, 0, nil404(segs)
	}
	imp, err := valueSegment(rest[0])
	if err != nil {
		return nil, 0, err
	}
	if len(rest) == 1 {
		return ditto.Pointer{"imports", imp}, mPolicyAll, nil
	}
	if !importSubs[rest[1]] {
		return nil, 0, nil404(segs)
	}
	return ditto.Pointer{"imports", imp, rest[1]}, mGetPut, nil
}

// valueSegment decodes a segment that is a whole value (a subject ID, a
// resource key, an imported policy ID): non-empty, no control characters,
// '/' allowed, no "~0" unescaping.
func valueSegment(seg string) (string, *ditto.Error) {
	s, err := unescape(seg)
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", errConsecutiveSlashes()
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7F {
			return "", ditto.ErrPointerInvalid.New("The JSON pointer of the request path contains control characters.")
		}
	}
	return s, nil
}

func nil404(segs []string) *ditto.Error {
	return notFound("/" + strings.Join(segs, "/"))
}

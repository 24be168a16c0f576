package policies

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// MaxImports is the most imports a policy may have.
const MaxImports = 10

// Importable values of a policy entry.
const (
	importableImplicit = "implicit"
	importableExplicit = "explicit"
	importableNever    = "never"
)

// Permission bits.
const (
	permRead uint8 = 1 << iota
	permWrite
	permExecute
	permUnknown // a permission name the model does not know: never granted
)

func permBit(p string) uint8 {
	switch p {
	case ditto.PermRead:
		return permRead
	case ditto.PermWrite:
		return permWrite
	case ditto.PermExecute:
		return permExecute
	}
	return permUnknown
}

// kind is what a policy path addresses.
type kind int

const (
	kRoot kind = iota
	kEntries
	kEntry
	kSubjects
	kSubject
	kResources
	kResource
	kEntryField // namespaces, importable, allowedAdditions, references
	kImports
	kImport
	kImportField // entries, transitiveImports
)

// entryFields are the fields of an entry addressable on their own.
var entryFields = map[string]bool{"namespaces": true, "importable": true, "allowedAdditions": true, "references": true}

// importFields are the fields of an import addressable on their own.
var importFields = map[string]bool{"entries": true, "transitiveImports": true}

// parsePath classifies p and normalizes a resource key segment. It returns
// gateway:resource.notfound for paths that are not policy resources.
func parsePath(p ditto.Pointer) (ditto.Pointer, kind, error) {
	notFound := func() error {
		return ditto.ErrResourceNotFound.New("The resource '%s' of a policy does not exist.", p.String())
	}
	if len(p) == 0 {
		return p, kRoot, nil
	}
	switch p[0] {
	case "entries":
		switch len(p) {
		case 1:
			return p, kEntries, nil
		case 2:
			return p, kEntry, nil
		case 3:
			switch {
			case p[2] == "subjects":
				return p, kSubjects, nil
			case p[2] == "resources":
				return p, kResources, nil
			case entryFields[p[2]]:
				return p, kEntryField, nil
			}
		default:
			// A subject ID or resource key may hold '/': over HTTP it is
			// one escaped segment, in a protocol path the rest of the
			// path ("/entries/e/resources/thing:/features/f").
			key := ditto.PolicyPathKey(p)
			q := append(p[:3:3], key)
			switch p[2] {
			case "subjects":
				return q, kSubject, nil
			case "resources":
				key, err := normalizeResourceKey(key)
				if err != nil {
					return nil, 0, err
				}
				q[3] = key
				return q, kResource, nil
			}
		}
	case "imports":
		switch len(p) {
		case 1:
			return p, kImports, nil
		case 2:
			return p, kImport, nil
		case 3:
			if importFields[p[2]] {
				return p, kImportField, nil
			}
		}
	}
	return nil, 0, notFound()
}

// validLabel reports whether l may label a policy entry.
func validLabel(l string) bool {
	return ditto.ValidKey(l) && !strings.HasPrefix(l, "imported") && !strings.HasPrefix(l, "nsimported-")
}

// checkLabel refuses a label that is no valid JSON key (json.key.invalid,
// as for any key) or that takes a prefix of imported entries.
func checkLabel(l string) error {
	if !ditto.ValidKey(l) {
		return ditto.ErrJSONKeyInvalid.New("The JSON key '%s' of the Policy Label is invalid.", l)
	}
	if !validLabel(l) {
		return ditto.ErrPolicyLabelInvalid.New("The Policy Label '%s' is invalid.", l)
	}
	return nil
}

// checkSubjectID accepts "<issuer>:<subject>" without control characters.
func checkSubjectID(id string) error {
	i := strings.IndexByte(id, ':')
	if i <= 0 || i == len(id)-1 || len(id) > 2048 {
		return ditto.ErrPolicySubjectIDInvalid.New("The Subject ID '%s' is not valid.", id)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7F {
			return ditto.ErrPolicySubjectIDInvalid.New("The Subject ID '%s' is not valid.", id)
		}
	}
	return nil
}

// normalizeResourceKey turns "thing:/a/" into "thing:/a" and rejects keys of
// unknown types or with invalid paths.
func normalizeResourceKey(k string) (string, error) {
	bad := func() error {
		return ditto.ErrPolicyResourceInvalid.New("The resource key '%s' is invalid.", k)
	}
	i := strings.IndexByte(k, ':')
	if i <= 0 {
		return "", bad()
	}
	switch k[:i] {
	case ditto.ResourceThing, ditto.ResourcePolicy, ditto.ResourceMessage:
	default:
		return "", bad()
	}
	p, err := ditto.ParsePointer(k[i+1:])
	if err != nil {
		return "", bad()
	}
	return k[:i] + ":" + p.String(), nil
}

// splitResourceKey returns a normalized key's type and path.
func splitResourceKey(k string) (string, ditto.Pointer) {
	i := strings.IndexByte(k, ':')
	p, _ := ditto.ParsePointer(k[i+1:])
	return k[:i], p
}

func asObject(v any, invalid func() error) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalid()
	}
	return m, nil
}

// roundExpiry parses an ISO-8601 expiry and rounds it up to the next full
// hour unless it already is one.
func roundExpiry(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	t = t.UTC()
	if r := t.Truncate(time.Hour); !r.Equal(t) {
		t = r.Add(time.Hour)
	}
	return t, true
}

// normSubject validates one subject value and returns its normalized form.
func normSubject(id string, v any) (map[string]any, error) {
	if err := checkSubjectID(id); err != nil {
		return nil, err
	}
	invalid := func() error {
		return ditto.ErrPolicyEntryInvalid.New("The subject '%s' must be an object with a string 'type'.", id)
	}
	m, err := asObject(v, invalid)
	if err != nil {
		return nil, err
	}
	typ, ok := m["type"].(string)
	if !ok {
		return nil, invalid()
	}
	out := map[string]any{"type": typ}
	for k, e := range m {
		switch k {
		case "type":
		case "expiry":
			s, ok := e.(string)
			t, ok2 := roundExpiry(s)
			if !ok || !ok2 {
				return nil, ditto.ErrPolicySubjectExpiryBad.New("Subject expiry timestamp '%v' is not valid.", e)
			}
			out["expiry"] = t.Format(time.RFC3339)
		case "announcement":
			a, err := normAnnouncement(id, e)
			if err != nil {
				return nil, err
			}
			out["announcement"] = a
		default:
			return nil, ditto.ErrPolicyEntryInvalid.New("The subject '%s' has the unknown field '%s'.", id, k)
		}
	}
	return out, nil
}

func normSubjects(v any) (map[string]any, error) {
	m, err := asObject(v, func() error {
		return ditto.ErrPolicyEntryInvalid.New("The subjects of a policy entry must be an object.")
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(m))
	for id, s := range m {
		n, err := normSubject(id, s)
		if err != nil {
			return nil, err
		}
		out[id] = n
	}
	return out, nil
}

func normPerms(key, field string, v any) ([]any, error) {
	if v == nil {
		return []any{}, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, ditto.ErrPolicyResourceInvalid.New("The '%s' of resource '%s' must be an array.", field, key)
	}
	out := make([]any, 0, len(a))
	seen := uint8(0)
	for _, e := range a {
		s, _ := e.(string)
		b := permBit(s)
		if b == permUnknown {
			return nil, ditto.ErrPolicyResourceInvalid.New("The permission '%v' of resource '%s' is not one of READ, WRITE, EXECUTE.", e, key)
		}
		if seen&b == 0 {
			seen |= b
			out = append(out, s)
		}
	}
	return out, nil
}

// normResource validates one resource value; key must be normalized.
func normResource(key string, v any) (map[string]any, error) {
	m, err := asObject(v, func() error {
		return ditto.ErrPolicyResourceInvalid.New("The resource '%s' must be an object with 'grant' and 'revoke'.", key)
	})
	if err != nil {
		return nil, err
	}
	for k := range m {
		if k != "grant" && k != "revoke" {
			return nil, ditto.ErrPolicyResourceInvalid.New("The resource '%s' has the unknown field '%s'.", key, k)
		}
	}
	g, err := normPerms(key, "grant", m["grant"])
	if err != nil {
		return nil, err
	}
	r, err := normPerms(key, "revoke", m["revoke"])
	if err != nil {
		return nil, err
	}
	return map[string]any{"grant": g, "revoke": r}, nil
}

func normResources(v any) (map[string]any, error) {
	m, err := asObject(v, func() error {
		return ditto.ErrPolicyEntryInvalid.New("The resources of a policy entry must be an object.")
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(m))
	keys := sortedKeys(m)
	for _, k := range keys {
		nk, err := normalizeResourceKey(k)
		if err != nil {
			return nil, err
		}
		if _, dup := out[nk]; dup {
			return nil, ditto.ErrPolicyResourceInvalid.New("The resource key '%s' is given twice.", nk)
		}
		r, err := normResource(nk, m[k])
		if err != nil {
			return nil, err
		}
		out[nk] = r
	}
	return out, nil
}

func normNamespaces(v any) ([]any, error) {
	a, ok := v.([]any)
	if !ok {
		return nil, ditto.ErrPolicyEntryNamespacesBad.New("The namespaces of a policy entry must be an array of strings.")
	}
	out := make([]any, 0, len(a))
	for _, e := range a {
		s, _ := e.(string)
		ns := strings.TrimSuffix(s, ".*")
		if ns == "" || !ditto.ValidNamespace(ns) {
			return nil, ditto.ErrPolicyEntryNamespacesBad.New("The namespace pattern '%v' is invalid.", e)
		}
		out = append(out, s)
	}
	return out, nil
}

func normImportable(v any) (string, error) {
	s, _ := v.(string)
	switch s {
	case importableImplicit, importableExplicit, importableNever:
		return s, nil
	}
	return "", ditto.ErrPolicyImportableInvalid.New("The importable value '%v' is invalid.", v)
}

func normStrings(v any, what string, check func(string) bool) ([]any, error) {
	a, ok := v.([]any)
	if !ok {
		return nil, ditto.ErrPolicyEntryInvalid.New("The %s must be an array of strings.", what)
	}
	out := make([]any, 0, len(a))
	for _, e := range a {
		s, ok := e.(string)
		if !ok || !check(s) {
			return nil, ditto.ErrPolicyEntryInvalid.New("The %s contain the invalid value '%v'.", what, e)
		}
		out = append(out, s)
	}
	return out, nil
}

// normEntryField validates one of the entryFields.
func normEntryField(field string, v any) (any, error) {
	switch field {
	case "namespaces":
		return normNamespaces(v)
	case "importable":
		return normImportable(v)
	case "allowedAdditions":
		return normStrings(v, "allowedAdditions", func(s string) bool { return s == "subjects" || s == "resources" || s == "namespaces" })
	case "references":
		a, ok := v.([]any)
		if !ok {
			return nil, ditto.ErrPolicyEntryInvalid.New("The references of a policy entry must be an array.")
		}
		return ditto.DeepCopy(a), nil
	}
	return nil, ditto.ErrPolicyEntryInvalid.New("Unknown entry field '%s'.", field)
}

// normEntry validates one entry.
func normEntry(label string, v any) (map[string]any, error) {
	if err := checkLabel(label); err != nil {
		return nil, err
	}
	m, err := asObject(v, func() error {
		return ditto.ErrPolicyEntryInvalid.New("The policy entry '%s' must be an object.", label)
	})
	if err != nil {
		return nil, err
	}
	if _, ok := m["subjects"]; !ok {
		return nil, ditto.ErrPolicyEntryInvalid.New("The policy entry '%s' lacks 'subjects'.", label)
	}
	if _, ok := m["resources"]; !ok {
		return nil, ditto.ErrPolicyEntryInvalid.New("The policy entry '%s' lacks 'resources'.", label)
	}
	out := make(map[string]any, len(m))
	for k, e := range m {
		var n any
		switch {
		case k == "subjects":
			n, err = normSubjects(e)
		case k == "resources":
			n, err = normResources(e)
		case entryFields[k]:
			n, err = normEntryField(k, e)
		default:
			err = ditto.ErrPolicyEntryInvalid.New("The policy entry '%s' has the unknown field '%s'.", label, k)
		}
		if err != nil {
			return nil, err
		}
		out[k] = n
	}
	return out, nil
}

func normEntries(v any) (map[string]any, error) {
	m, err := asObject(v, func() error {
		return ditto.ErrPolicyInvalid.New("The entries of a policy must be an object.")
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(m))
	for l, e := range m {
		n, err := normEntry(l, e)
		if err != nil {
			return nil, err
		}
		out[l] = n
	}
	return out, nil
}

func validPolicyID(s string) bool {
	_, ok := ditto.ParseEntityID(s)
	return ok
}

// normImportField validates one of the importFields.
func normImportField(field string, v any) ([]any, error) {
	if field == "entries" {
		return normStrings(v, "imported entries", validLabel)
	}
	a, err := normStrings(v, "transitiveImports", validPolicyID)
	if err == nil && len(a) > MaxImports {
		err = ditto.ErrPolicyImportInvalid.New("At most %d transitive imports are allowed.", MaxImports)
	}
	return a, err
}

// normImport validates the import of policy imported into policy self.
func normImport(self, imported string, v any) (map[string]any, error) {
	if !validPolicyID(imported) || imported == self {
		return nil, ditto.ErrPolicyImportInvalid.New("The Policy '%s' cannot be imported by '%s'.", imported, self)
	}
	m, err := asObject(v, func() error {
		return ditto.ErrPolicyImportInvalid.New("The import of '%s' must be an object.", imported)
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(m))
	for k, e := range m {
		if !importFields[k] {
			return nil, ditto.ErrPolicyImportInvalid.New("The import of '%s' has the unknown field '%s'.", imported, k)
		}
		n, err := normImportField(k, e)
		if err != nil {
			return nil, err
		}
		out[k] = n
	}
	return out, nil
}

func normImports(self string, v any) (map[string]any, error) {
	m, err := asObject(v, func() error {
		return ditto.ErrPolicyImportInvalid.New("The imports of a policy must be an object.")
	})
	if err != nil {
		return nil, err
	}
	if len(m) > MaxImports {
		return nil, ditto.ErrPolicyImportsTooLarge.New("The Policy '%s' has %d imports, more than the allowed %d.", self, len(m), MaxImports)
	}
	out := make(map[string]any, len(m))
	for id, e := range m {
		n, err := normImport(self, id, e)
		if err != nil {
			return nil, err
		}
		out[id] = n
	}
	return out, nil
}

// normPolicy validates a whole policy for ID id and returns its normalized
// form {"policyId","entries"[,"imports"]}. Read-only "_" fields are dropped.
func normPolicy(id string, v any) (map[string]any, error) {
	m, err := asObject(v, func() error {
		return ditto.ErrPolicyInvalid.New("A policy must be a JSON object.")
	})
	if err != nil {
		return nil, err
	}
	out := map[string]any{"policyId": id}
	for k, e := range m {
		switch {
		case k == "policyId":
			if s, ok := e.(string); !ok || s != id {
				return nil, ditto.ErrPolicyIDNotSettable.New("The Policy ID in the request body is not equal to the Policy ID '%s' in the request URL.", id)
			}
		case k == "entries":
			n, err := normEntries(e)
			if err != nil {
				return nil, err
			}
			out[k] = n
		case k == "imports":
			n, err := normImports(id, e)
			if err != nil {
				return nil, err
			}
			out[k] = n
		case strings.HasPrefix(k, "_"):
		default:
			return nil, ditto.ErrPolicyInvalid.New("The policy has the unknown field '%s'.", k)
		}
	}
	if _, ok := out["entries"]; !ok {
		out["entries"] = map[string]any{}
	}
	return out, nil
}

// normFragment validates and normalizes the value of a modify at path p
// (already classified as k) inside policy self.
func normFragment(self string, p ditto.Pointer, k kind, v any) (any, error) {
	switch k {
	case kRoot:
		return normPolicy(self, v)
	case kEntries:
		return normEntries(v)
	case kEntry:
		return normEntry(p[1], v)
	case kSubjects:
		return normSubjects(v)
	case kSubject:
		return normSubject(p[3], v)
	case kResources:
		return normResources(v)
	case kResource:
		return normResource(p[3], v)
	case kEntryField:
		return normEntryField(p[2], v)
	case kImports:
		return normImports(self, v)
	case kImport:
		return normImport(self, p[1], v)
	case kImportField:
		return normImportField(p[2], v)
	}
	return nil, ditto.ErrPolicyInvalid.New("Unknown policy resource.")
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// lockoutSafe reports whether policy keeps at least one subject without
// expiry that is granted WRITE on policy:/ and revoked it nowhere.
func lockoutSafe(policy map[string]any) bool {
	entries, _ := policy["entries"].(map[string]any)
	granted := map[string]bool{}
	revoked := map[string]bool{}
	for _, e := range entries {
		em, _ := e.(map[string]any)
		subjects, _ := em["subjects"].(map[string]any)
		resources, _ := em["resources"].(map[string]any)
		r, _ := resources["policy:/"].(map[string]any)
		if r == nil {
			continue
		}
		g, rv := hasPerm(r["grant"], ditto.PermWrite), hasPerm(r["revoke"], ditto.PermWrite)
		for sid, s := range subjects {
			sm, _ := s.(map[string]any)
			if rv {
				revoked[sid] = true
			}
			if _, exp := sm["expiry"]; g && !exp {
				granted[sid] = true
			}
		}
	}
	for sid := range granted {
		if !revoked[sid] {
			return true
		}
	}
	return false
}

func hasPerm(v any, perm string) bool {
	a, _ := v.([]any)
	for _, e := range a {
		if e == perm {
			return true
		}
	}
	return false
}

// decodePolicyJSON decodes and validates untrusted policy bytes.
func decodePolicyJSON(id string, b []byte) (map[string]any, error) {
	v, err := ditto.DecodeJSON(b)
	if err != nil {
		return nil, err
	}
	return normPolicy(id, v)
}

// jsonInt is an int64 as a JSON number.
func jsonInt(n int64) json.Number { return json.Number(strconv.FormatInt(n, 10)) }

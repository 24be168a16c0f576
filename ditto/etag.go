package ditto

import (
	"hash/fnv"
	"strconv"
	"strings"
)

// RevisionETag returns the entity tag of a thing or policy root at revision
// rev, quoted as Ditto sends it: "\"rev:3\"".
func RevisionETag(rev int64) string {
	return `"rev:` + strconv.FormatInt(rev, 10) + `"`
}

// HashETag returns the opaque entity tag of a sub-resource value,
// "\"hash:<16 hex digits>\"": the FNV-1a 64-bit hash of the canonical
// encoding (EncodeJSON, keys sorted). Values with equal encodings get equal
// tags on every node; numbers are compared by their text, so 1 and 1.0
// differ.
func HashETag(v any) string {
	h := fnv.New64a()
	h.Write(EncodeJSON(v))
	return `"hash:` + strconv.FormatUint(h.Sum64(), 16) + `"`
}

// MatchETag evaluates an If-Match or If-None-Match header value against the
// current entity tag of a resource: it reports whether any tag of the comma
// separated list matches. "*" matches any existing resource; a missing
// resource (exists false) matches nothing. Tags compare without their
// quotes and without a weak "W/" prefix, since Ditto issues only strong
// tags and clients differ in how they echo them. An empty header matches
// nothing.
//
// If-Match fails (412) when MatchETag is false; If-None-Match fails (304 for
// retrieves, 412 for modifications) when it is true. If-Match compares
// strongly: pass its value through StrongIfMatch first.
func MatchETag(header string, current string, exists bool) bool {
	if !exists {
		return false
	}
	cur := bareETag(current)
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "" {
			continue
		}
		if tag == "*" {
			return true
		}
		if cur != "" && bareETag(tag) == cur {
			return true
		}
	}
	return false
}

// bareETag strips the weak prefix and the quotes of an entity tag.
func bareETag(t string) string {
	t = strings.TrimSpace(t)
	t = strings.TrimPrefix(t, "W/")
	if len(t) >= 2 && t[0] == '"' && t[len(t)-1] == '"' {
		t = t[1 : len(t)-1]
	}
	return t
}

// StrongIfMatch returns an If-Match value for MatchETag: If-Match uses the
// strong comparison (RFC 9110 section 13.1.1, as Ditto does), so a weak
// tag never matches and is dropped. When only weak tags were given it
// returns the empty strong tag "\"\"", which matches nothing.
func StrongIfMatch(h string) string {
	if !strings.Contains(h, "W/") {
		return h
	}
	var keep []string
	for _, tag := range strings.Split(h, ",") {
		if tag = strings.TrimSpace(tag); tag != "" && !strings.HasPrefix(tag, "W/") {
			keep = append(keep, tag)
		}
	}
	if len(keep) == 0 {
		return `""`
	}
	return strings.Join(keep, ", ")
}

package ditto

import (
	"regexp"
	"strings"
)

// MaxIDLength is the longest entity ID Ditto accepts, in UTF-16 code units
// as Ditto (Java) counts a string's length: a character outside the Basic
// Multilingual Plane counts twice, any other once, whatever its UTF-8 size.
const MaxIDLength = 256

// MaxKeyLength is the longest JSON key, feature ID or policy label, counted
// as MaxIDLength.
const MaxKeyLength = 256

// longerThan reports whether s has more than n UTF-16 code units. A UTF-8
// string has at most as many code units as bytes, so short strings need no
// count.
func longerThan(s string, n int) bool {
	if len(s) <= n {
		return false
	}
	units := 0
	for _, r := range s {
		units++
		if r > 0xFFFF {
			units++
		}
		if units > n {
			return true
		}
	}
	return false
}

var namespaceRE = regexp.MustCompile(`^(?:[a-zA-Z]\w*)(?:[.-][a-zA-Z]\w*)*$`)

// EntityID is a namespaced entity ID, "namespace:name", used for things and
// policies alike.
type EntityID struct {
	Namespace string
	Name      string
}

// String returns "namespace:name".
func (id EntityID) String() string { return id.Namespace + ":" + id.Name }

// IsZero reports whether id is the zero EntityID.
func (id EntityID) IsZero() bool { return id.Namespace == "" && id.Name == "" }

// ValidNamespace reports whether ns is a valid namespace. The empty namespace
// is valid.
func ValidNamespace(ns string) bool {
	return ns == "" || namespaceRE.MatchString(ns)
}

// validName: non-empty, no '/', no control characters and none of U+007F..U+00FF.
func validName(n string) bool {
	if n == "" {
		return false
	}
	for _, r := range n {
		if r == '/' || r < 0x20 || (r >= 0x7F && r <= 0xFF) || r == 0xFFFD {
			return false
		}
	}
	return true
}

// ParseEntityID parses "namespace:name" with Ditto's rules. It reports false
// when s is not a valid ID.
func ParseEntityID(s string) (EntityID, bool) {
	if longerThan(s, MaxIDLength) {
		return EntityID{}, false
	}
	i := strings.IndexByte(s, ':')
	if i < 0 {
		return EntityID{}, false
	}
	id := EntityID{Namespace: s[:i], Name: s[i+1:]}
	if !ValidNamespace(id.Namespace) || !validName(id.Name) {
		return EntityID{}, false
	}
	return id, true
}

// ParseThingID parses a thing ID, or returns things:id.invalid.
func ParseThingID(s string) (EntityID, error) {
	id, ok := ParseEntityID(s)
	if !ok {
		return EntityID{}, ErrThingIDInvalid.New("Thing ID '%s' is not valid!", s)
	}
	return id, nil
}

// ParsePolicyID parses a policy ID, or returns policies:id.invalid.
func ParsePolicyID(s string) (EntityID, error) {
	id, ok := ParseEntityID(s)
	if !ok {
		return EntityID{}, ErrPolicyIDInvalid.New("Policy ID '%s' is not valid!", s)
	}
	return id, nil
}

// ValidKey reports whether k may be a JSON key in attributes, properties and
// desired properties, a feature ID or a policy label: non-empty, at most 256
// characters, no '/' and no control characters.
func ValidKey(k string) bool {
	if k == "" || longerThan(k, MaxKeyLength) {
		return false
	}
	for _, r := range k {
		if r == '/' || r < 0x20 || r == 0x7F {
			return false
		}
	}
	return true
}

// CheckKey returns json.key.invalid when k is not a valid key.
func CheckKey(k string) error {
	if !ValidKey(k) {
		return ErrJSONKeyInvalid.New("JSON key <%s> is invalid!", k)
	}
	return nil
}

// ValidFeatureID reports whether id is a valid feature ID (a valid key other
// than "*").
func ValidFeatureID(id string) bool { return id != "*" && ValidKey(id) }

var definitionRE = regexp.MustCompile(`^[_a-zA-Z0-9\-.]+:[_a-zA-Z0-9\-.]+:[_a-zA-Z0-9\-.]+$`)

// ValidDefinition reports whether d is a valid thing or feature definition
// identifier: "namespace:name:version" or an http(s) URL.
func ValidDefinition(d string) bool {
	if strings.HasPrefix(d, "http://") || strings.HasPrefix(d, "https://") {
		return len(d) > len("https://") && !strings.ContainsAny(d, " \t\r\n")
	}
	return definitionRE.MatchString(d)
}

var connectionIDRE = regexp.MustCompile(`^[a-zA-Z0-9\-_:]{1,100}$`)

// ValidConnectionID reports whether id is a valid connection ID.
func ValidConnectionID(id string) bool { return connectionIDRE.MatchString(id) }

var ackLabelRE = regexp.MustCompile(`^[a-zA-Z0-9\-_:]{3,100}$`)

// ValidAckLabel reports whether l is a valid acknowledgement label.
func ValidAckLabel(l string) bool { return ackLabelRE.MatchString(l) }

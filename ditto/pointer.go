package ditto

import "strings"

// Pointer is a parsed JSON pointer: its segments, unescaped. The empty
// pointer addresses the whole value.
type Pointer []string

// ParsePointer parses a Ditto JSON pointer. The leading slash is optional, a
// trailing slash is ignored, "~0" stands for "~" and an empty segment in the
// middle ("a//b") is an error. Control characters are rejected.
func ParsePointer(s string) (Pointer, error) {
	s = strings.TrimPrefix(s, "/")
	if s == "" {
		return Pointer{}, nil
	}
	s = strings.TrimSuffix(s, "/")
	parts := strings.Split(s, "/")
	p := make(Pointer, 0, len(parts))
	for _, seg := range parts {
		if seg == "" {
			return nil, ErrPointerInvalid.New("JSON pointer <%s> is invalid: it contains an empty segment.", "/"+s)
		}
		for i := 0; i < len(seg); i++ {
			if seg[i] < 0x20 || seg[i] == 0x7F {
				return nil, ErrPointerInvalid.New("JSON pointer <%s> contains control characters.", "/"+s)
			}
		}
		if strings.Contains(seg, "~") {
			seg = strings.ReplaceAll(seg, "~0", "~")
		}
		p = append(p, seg)
	}
	return p, nil
}

// MustPointer parses s and panics on error; for constants and tests.
func MustPointer(s string) Pointer {
	p, err := ParsePointer(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String renders the pointer with a leading slash ("/" for the empty one).
func (p Pointer) String() string {
	if len(p) == 0 {
		return "/"
	}
	var b strings.Builder
	for _, s := range p {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(s, "~", "~0"))
	}
	return b.String()
}

// Append returns a new pointer with the segments added.
func (p Pointer) Append(segs ...string) Pointer {
	q := make(Pointer, 0, len(p)+len(segs))
	return append(append(q, p...), segs...)
}

// HasPrefix reports whether q is a prefix of p.
func (p Pointer) HasPrefix(q Pointer) bool {
	if len(q) > len(p) {
		return false
	}
	for i := range q {
		if p[i] != q[i] {
			return false
		}
	}
	return true
}

// Equal reports whether p and q have the same segments.
func (p Pointer) Equal(q Pointer) bool { return len(p) == len(q) && p.HasPrefix(q) }

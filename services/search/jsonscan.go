package search

import (
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// The index reads a thing's JSON twice without encoding/json's reflection:
// keyWalker walks the bytes and emits index keys without building a
// document, and decodeDoc builds the document (map[string]any, []any,
// json.Number, string, bool, nil, as ditto.DecodeJSON does) when a
// candidate is verified. Both assume the JSON is well formed (the things
// state machine only stores JSON it decoded) but report an error instead
// of panicking when it is not. Strings with escapes or non-ASCII bytes that
// are not valid UTF-8 are decoded by encoding/json, so values are exactly
// what ditto.DecodeJSON returns.

var errBadJSON = errors.New("search: malformed thing JSON")

// scanner reads one JSON text.
type scanner struct {
	b   []byte
	i   int
	err error
}

func (s *scanner) fail() {
	if s.err == nil {
		s.err = errBadJSON
	}
	s.i = len(s.b)
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte (0 at the end).
func (s *scanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

func (s *scanner) expect(c byte) bool {
	if s.peek() != c {
		s.fail()
		return false
	}
	s.i++
	return true
}

// rawString consumes a string token and returns its content without the
// quotes; plain is true when it holds no escapes and is valid UTF-8, so
// the content is the value.
func (s *scanner) rawString() (raw []byte, plain bool) {
	if !s.expect('"') {
		return nil, false
	}
	start, plain := s.i, true
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			if plain {
				for _, c := range raw {
					if c >= utf8.RuneSelf {
						plain = utf8.Valid(raw)
						break
					}
				}
			}
			return raw, plain
		case c == '\\':
			plain = false
			if !s.escape() {
				return nil, false
			}
		case c < 0x20:
			s.fail()
			return nil, false
		default:
			s.i++
		}
	}
	s.fail()
	return nil, false
}

// escape consumes one escape sequence at s.i (the backslash included), so
// a string that is skipped rather than decoded is still checked.
func (s *scanner) escape() bool {
	if s.i+1 >= len(s.b) {
		s.fail()
		return false
	}
	switch s.b[s.i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.i += 2
		return true
	case 'u':
		if s.i+6 > len(s.b) {
			s.fail()
			return false
		}
		for _, h := range s.b[s.i+2 : s.i+6] {
			if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
				s.fail()
				return false
			}
		}
		s.i += 6
		return true
	}
	s.fail()
	return false
}

// str consumes a string token and returns its value.
func (s *scanner) str() string {
	start := s.i
	raw, plain := s.rawString()
	if s.err != nil {
		return ""
	}
	if plain {
		return string(raw)
	}
	var v string
	if err := json.Unmarshal(s.b[start:s.i], &v); err != nil {
		s.fail()
	}
	return v
}

// number consumes a number token and returns its text.
func (s *scanner) number() []byte {
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	intStart := s.i
	if n := digits(); n == 0 || (n > 1 && s.b[intStart] == '0') {
		s.fail()
		return nil
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			s.fail()
			return nil
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			s.fail()
			return nil
		}
	}
	return s.b[start:s.i]
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		s.fail()
		return false
	}
	s.i += len(lit)
	return true
}

// value decodes one JSON value.
func (s *scanner) value(depth int) any {
	if depth > maxDepth {
		s.fail()
		return nil
	}
	switch c := s.peek(); {
	case c == '{':
		s.i++
		m := make(map[string]any)
		if s.peek() == '}' {
			s.i++
			return m
		}
		for s.err == nil {
			k := s.str()
			if !s.expect(':') {
				break
			}
			m[k] = s.value(depth + 1)
			if s.peek() == ',' {
				s.i++
				continue
			}
			s.expect('}')
			break
		}
		return m
	case c == '[':
		s.i++
		a := []any{}
		if s.peek() == ']' {
			s.i++
			return a
		}
		for s.err == nil {
			a = append(a, s.value(depth+1))
			if s.peek() == ',' {
				s.i++
				continue
			}
			s.expect(']')
			break
		}
		return a
	case c == '"':
		return s.str()
	case c == 't':
		s.literal("true")
		return true
	case c == 'f':
		s.literal("false")
		return false
	case c == 'n':
		s.literal("null")
		return nil
	case c == '-' || (c >= '0' && c <= '9'):
		return json.Number(s.number())
	}
	s.fail()
	return nil
}

// maxDepth bounds nesting, as encoding/json does (10000); things are far
// shallower.
const maxDepth = 10000

// skip consumes one value without building it.
func (s *scanner) skip(depth int) {
	if depth > maxDepth {
		s.fail()
		return
	}
	switch c := s.peek(); {
	case c == '{':
		s.i++
		if s.peek() == '}' {
			s.i++
			return
		}
		for s.err == nil {
			s.rawString()
			if !s.expect(':') {
				return
			}
			s.skip(depth + 1)
			if s.peek() == ',' {
				s.i++
				continue
			}
			s.expect('}')
			return
		}
	case c == '[':
		s.i++
		if s.peek() == ']' {
			s.i++
			return
		}
		for s.err == nil {
			s.skip(depth + 1)
			if s.peek() == ',' {
				s.i++
				continue
			}
			s.expect(']')
			return
		}
	case c == '"':
		s.rawString()
	case c == 't':
		s.literal("true")
	case c == 'f':
		s.literal("false")
	case c == 'n':
		s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		s.number()
	default:
		s.fail()
	}
}

// end reports an error unless only whitespace is left.
func (s *scanner) end() error {
	// Not peek: a NUL byte in the input would look like the end.
	s.ws()
	if s.i < len(s.b) && s.err == nil {
		s.fail()
	}
	return s.err
}

// isSpecial reports a top-level key that comes from the record, not the
// JSON: every "_" key but _metadata.
func isSpecial(k []byte) bool {
	return len(k) > 0 && k[0] == '_' && string(k) != "_metadata"
}

// decodeBody decodes a thing's JSON without its special fields.
func decodeBody(b []byte) (map[string]any, error) {
	s := scanner{b: b}
	if s.peek() != '{' {
		return nil, errBadJSON
	}
	s.i++
	m := make(map[string]any, 8)
	if s.peek() == '}' {
		s.i++
		return m, s.end()
	}
	for s.err == nil {
		k := s.str()
		if !s.expect(':') {
			break
		}
		if isSpecial([]byte(k)) { // the decoded key: "\u005frevision" is "_revision"
			s.skip(1)
		} else {
			m[k] = s.value(1)
		}
		if s.peek() == ',' {
			s.i++
			continue
		}
		s.expect('}')
		break
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	return m, nil
}

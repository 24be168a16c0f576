package search

import (
	"unicode/utf8"
)

// defaultItemJSON appends the default search item of d (thingId, policyId,
// definition, attributes, features) to dst, copied from the stored JSON
// instead of decoding and encoding it again. It is only correct for a
// requester who may read the whole thing. ok is false when the stored JSON
// cannot be copied as it is (a thing the index marked odd, malformed or
// invalid UTF-8 bytes): the caller then projects the decoded document.
func defaultItemJSON(dst []byte, d *doc) (out []byte, ok bool) {
	if d.odd {
		return dst, false
	}
	start := len(dst)
	dst = append(dst, `{"thingId":`...)
	dst = appendJSONString(dst, d.id)
	if d.policyID != "" {
		dst = append(dst, `,"policyId":`...)
		dst = appendJSONString(dst, d.policyID)
	}
	s := scanner{b: d.raw}
	if !s.expect('{') {
		return dst[:start], false
	}
	if s.peek() == '}' {
		return append(dst, '}'), true
	}
	for s.err == nil {
		raw, plain := s.rawString()
		if !s.expect(':') {
			break
		}
		s.ws()
		from := s.i
		s.skip(1)
		if s.err != nil {
			break
		}
		if plain {
			switch string(raw) {
			case "definition", "attributes", "features":
				v := d.raw[from:s.i]
				if !validUTF8(v) {
					return dst[:start], false
				}
				dst = append(dst, ',', '"')
				dst = append(dst, raw...)
				dst = append(dst, '"', ':')
				dst = append(dst, v...)
			}
		}
		if s.peek() == ',' {
			s.i++
			continue
		}
		if s.expect('}') {
			return append(dst, '}'), true
		}
	}
	return dst[:start], false
}

// validUTF8 is utf8.Valid with a fast path for ASCII.
func validUTF8(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return utf8.Valid(b)
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string (as encoding/json writes it
// without HTML escaping; invalid UTF-8 becomes U+FFFD).
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

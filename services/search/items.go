package search

import (
	"unicode/utf8"

	"github.com/dittonode/dittonode/ditto"
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
	dst = ditto.AppendJSONString(dst, d.id)
	if d.policyID != "" {
		dst = append(dst, `,"policyId":`...)
		dst = ditto.AppendJSONString(dst, d.policyID)
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

package ditto

import "unicode/utf8"

// RawValueAt locates the value at p inside the JSON document doc without
// decoding it: doc[start:end] is the value's encoding. doc must be
// well-formed JSON, such as EncodeJSON's output: the scan checks the
// structure but not every string escape, so on malformed input the result
// means nothing (it never panics). ok is false when the path does not lead
// to a value, and in the cases it leaves to a full decode: an object key on
// the path that holds escapes or invalid UTF-8, or a key that occurs twice
// in one object.
//
// Splicing a value encoded by EncodeJSON into EncodeJSON's encoding of a
// document, doc[:start]+EncodeJSON(v)+doc[end:], gives exactly
// EncodeJSON of the document with the value at p set to v: what a
// single-property write changes, without decoding and encoding the whole
// entity.
func RawValueAt(doc []byte, p Pointer) (start, end int, ok bool) {
	d := rawScanner{b: doc}
	d.skipSpace()
	start, end, ok = d.find(p, 0)
	d.skipSpace()
	if !ok || d.i != len(doc) { // nothing may follow the document
		return 0, 0, false
	}
	return start, end, true
}

// rawScanner walks JSON text without building values.
type rawScanner struct {
	b []byte
	i int
}

func (d *rawScanner) skipSpace() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// find consumes the value under d.i and returns the span of the value at
// p inside it. Every object on the path is scanned to its end, so a
// duplicate key is noticed.
func (d *rawScanner) find(p Pointer, depth int) (int, int, bool) {
	if len(p) == 0 {
		start := d.i
		if !d.skip(depth) {
			return 0, 0, false
		}
		return start, d.i, true
	}
	if depth > maxFastDepth || d.i >= len(d.b) || d.b[d.i] != '{' {
		return 0, 0, false
	}
	d.i++
	found := false
	var start, end int
	d.skipSpace()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		return 0, 0, false
	}
	for {
		d.skipSpace()
		ks := d.i + 1
		escaped, ok := d.skipString()
		if !ok || escaped {
			return 0, 0, false // escaped keys are left to a full decode
		}
		match := string(d.b[ks:d.i-1]) == p[0]
		if match && !utf8.ValidString(p[0]) {
			// A decoder reads invalid UTF-8 in a key as U+FFFD: such keys
			// are left to a full decode too.
			return 0, 0, false
		}
		d.skipSpace()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return 0, 0, false
		}
		d.i++
		d.skipSpace()
		if match {
			if found {
				return 0, 0, false // duplicate key
			}
			if start, end, found = d.find(p[1:], depth+1); !found {
				return 0, 0, false
			}
		} else if !d.skip(depth + 1) {
			return 0, 0, false
		}
		d.skipSpace()
		if d.i >= len(d.b) {
			return 0, 0, false
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return start, end, found
		default:
			return 0, 0, false
		}
	}
}

// skip consumes one value (with the whitespace before it).
func (d *rawScanner) skip(depth int) bool {
	d.skipSpace()
	if d.i >= len(d.b) || depth > maxFastDepth {
		return false
	}
	switch c := d.b[d.i]; {
	case c == '{', c == '[':
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		d.i++
		d.skipSpace()
		if d.i < len(d.b) && d.b[d.i] == closing {
			d.i++
			return true
		}
		for {
			if c == '{' {
				d.skipSpace()
				if _, ok := d.skipString(); !ok {
					return false
				}
				d.skipSpace()
				if d.i >= len(d.b) || d.b[d.i] != ':' {
					return false
				}
				d.i++
			}
			if !d.skip(depth + 1) {
				return false
			}
			d.skipSpace()
			if d.i >= len(d.b) {
				return false
			}
			switch d.b[d.i] {
			case ',':
				d.i++
			case closing:
				d.i++
				return true
			default:
				return false
			}
		}
	case c == '"':
		_, ok := d.skipString()
		return ok
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		start := d.i
		d.i = numberEnd(d.b, d.i)
		return validNumber(string(d.b[start:d.i]))
	}
	return false
}

func (d *rawScanner) literal(lit string) bool {
	if len(d.b)-d.i < len(lit) || string(d.b[d.i:d.i+len(lit)]) != lit {
		return false
	}
	d.i += len(lit)
	return true
}

// skipString consumes a string starting at its opening quote and reports
// whether it holds escapes. Control characters are refused; the bytes are
// not otherwise checked (the documents this reads were encoded by
// EncodeJSON).
func (d *rawScanner) skipString() (escaped, ok bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return false, false
	}
	d.i++
	for d.i < len(d.b) {
		switch c := d.b[d.i]; {
		case c == '"':
			d.i++
			return escaped, true
		case c == '\\':
			escaped = true
			d.i += 2
		case c < 0x20:
			return false, false
		default:
			d.i++
		}
	}
	return false, false
}

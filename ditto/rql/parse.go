package rql

import (
	"encoding/json"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/dittonode/dittonode/ditto"
)

// Limits on what Parse accepts.
const (
	MaxLength = 10000 // characters of an expression
	MaxDepth  = 64    // nesting of operators, the outermost one counting 1
)

// placeholderNames lists the placeholders a field may name, by prefix.
var placeholderNames = map[string][]string{
	"topic":    {"full", "namespace", "entityName", "group", "channel", "criterion", "action", "subject", "action-subject"},
	"resource": {"type", "path"},
	"time":     {"now", "now_epoch_millis"},
}

// Parse parses an RQL filter expression. Whitespace is allowed before and
// after operators, commas, values and parentheses. Errors are *ditto.Error
// with code rql.expression.invalid whose message names the 1-based byte
// position of the problem.
func Parse(s string) (Node, error) {
	if len(s) > MaxLength && utf8.RuneCountInString(s) > MaxLength {
		return nil, ditto.ErrRQLInvalid.New("The RQL expression is too long: it has more than %d characters.", MaxLength)
	}
	p := parser{s: s}
	p.skipWS()
	n, err := p.query()
	if err != nil {
		return nil, err
	}
	p.skipWS()
	if p.pos < len(p.s) {
		return nil, p.errorf(p.pos, "unexpected %s after the end of the expression", p.found())
	}
	return n, nil
}

// MustParse parses s and panics on error; for constants and tests.
func MustParse(s string) Node {
	n, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return n
}

type parser struct {
	s     string
	pos   int
	depth int
}

func (p *parser) errorf(pos int, format string, args ...any) *ditto.Error {
	e := ditto.ErrRQLInvalid.New(format, args...)
	e.Message = "Invalid RQL expression at position " + itoa(pos+1) + ": " + e.Message + "."
	return e
}

func itoa(n int) string {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(buf[i:])
}

// found describes what is at the current position, for error messages.
func (p *parser) found() string {
	if p.pos >= len(p.s) {
		return "end of input"
	}
	r, _ := utf8.DecodeRuneInString(p.s[p.pos:])
	if r == utf8.RuneError || r < 0x20 {
		return "byte 0x" + string("0123456789abcdef"[p.s[p.pos]>>4]) + string("0123456789abcdef"[p.s[p.pos]&0xF])
	}
	return "'" + string(r) + "'"
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }

func (p *parser) skipWS() {
	for p.pos < len(p.s) && isWS(p.s[p.pos]) {
		p.pos++
	}
}

func (p *parser) expect(c byte, what string) error {
	p.skipWS()
	if p.pos >= len(p.s) || p.s[p.pos] != c {
		return p.errorf(p.pos, "expected %s but found %s", what, p.found())
	}
	p.pos++
	p.skipWS()
	return nil
}

// query parses one operator with its arguments.
func (p *parser) query() (Node, error) {
	start := p.pos
	for p.pos < len(p.s) && p.s[p.pos] >= 'a' && p.s[p.pos] <= 'z' {
		p.pos++
	}
	name := p.s[start:p.pos]
	switch name {
	case "and", "or", "not", "eq", "ne", "gt", "ge", "lt", "le", "like", "ilike", "in", "exists", "empty":
	case "":
		return nil, p.errorf(start, "expected an operator such as eq, in, and or exists but found %s", p.found())
	default:
		return nil, p.errorf(start, "unknown operator '%s'", name)
	}
	if p.pos >= len(p.s) || p.s[p.pos] != '(' {
		return nil, p.errorf(p.pos, "expected '(' after '%s' but found %s", name, p.found())
	}
	p.pos++
	p.depth++
	if p.depth > MaxDepth {
		return nil, p.errorf(start, "the expression is nested deeper than %d levels", MaxDepth)
	}
	defer func() { p.depth-- }()
	p.skipWS()

	switch name {
	case "and", "or":
		var children []Node
		for {
			c, err := p.query()
			if err != nil {
				return nil, err
			}
			children = append(children, c)
			p.skipWS()
			if p.pos < len(p.s) && p.s[p.pos] == ',' {
				p.pos++
				p.skipWS()
				continue
			}
			break
		}
		if err := p.close(name); err != nil {
			return nil, err
		}
		if name == "and" {
			return And{Children: children}, nil
		}
		return Or{Children: children}, nil
	case "not":
		c, err := p.query()
		if err != nil {
			return nil, err
		}
		if err := p.close(name); err != nil {
			return nil, err
		}
		return Not{Child: c}, nil
	case "exists", "empty":
		f, err := p.field()
		if err != nil {
			return nil, err
		}
		if err := p.close(name); err != nil {
			return nil, err
		}
		if name == "exists" {
			return Exists{Field: f}, nil
		}
		return Empty{Field: f}, nil
	case "in":
		f, err := p.field()
		if err != nil {
			return nil, err
		}
		var vals []Value
		for p.pos < len(p.s) && p.s[p.pos] == ',' {
			p.pos++
			p.skipWS()
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			vals = append(vals, v)
			p.skipWS()
		}
		if len(vals) == 0 {
			return nil, p.errorf(p.pos, "expected ',' and a value after the property of 'in' but found %s", p.found())
		}
		if err := p.close(name); err != nil {
			return nil, err
		}
		return In{Field: f, Values: vals}, nil
	default: // single-value comparisons
		f, err := p.field()
		if err != nil {
			return nil, err
		}
		if err := p.expect(',', "','"); err != nil {
			return nil, err
		}
		vpos := p.pos
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		if (name == OpLike || name == OpILike) && v.Kind != String {
			return nil, p.errorf(vpos, "'%s' needs a string pattern, not %s", name, v.Kind)
		}
		if err := p.close(name); err != nil {
			return nil, err
		}
		return Compare{Op: name, Field: f, Value: v}, nil
	}
}

func (p *parser) close(name string) error {
	p.skipWS()
	if p.pos >= len(p.s) || p.s[p.pos] != ')' {
		if name == "and" || name == "or" {
			return p.errorf(p.pos, "expected ',' or ')' in '%s' but found %s", name, p.found())
		}
		return p.errorf(p.pos, "expected ')' to close '%s' but found %s", name, p.found())
	}
	p.pos++
	return nil
}

// field parses a property: every character up to an unescaped ',', ')' or
// '"', with backslash escapes; trailing unescaped whitespace is dropped.
func (p *parser) field() (Field, error) {
	start := p.pos
	var b *strings.Builder // only when the property holds escapes
	end := p.pos           // end of the raw text after trimming
	keep := 0              // length of b after trimming
loop:
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		switch {
		case c == ',' || c == ')':
			break loop
		case c == '"':
			return Field{}, p.errorf(p.pos, "unexpected '\"' in a property (escape it as \\\")")
		case c == '\\':
			if b == nil {
				b = new(strings.Builder)
				b.WriteString(p.s[start:p.pos])
				keep = end - start
			}
			if err := p.escape(b); err != nil {
				return Field{}, err
			}
			keep = b.Len()
			continue
		default:
			if b != nil {
				b.WriteByte(c)
				if !isWS(c) {
					keep = b.Len()
				}
			} else if !isWS(c) {
				end = p.pos + 1
			}
		}
		p.pos++
	}
	raw := p.s[start:end]
	if b != nil {
		raw = b.String()[:keep]
	}
	if raw == "" {
		return Field{}, p.errorf(start, "expected a property but found %s", p.found())
	}
	if raw[0] != '/' {
		colon, slash := strings.IndexByte(raw, ':'), strings.IndexByte(raw, '/')
		if colon >= 0 && (slash < 0 || colon < slash) {
			return p.placeholder(start, raw)
		}
	}
	ptr, err := ditto.ParsePointer(raw)
	if err != nil {
		return Field{}, p.errorf(start, "the property '%s' is not a valid JSON pointer", raw)
	}
	if len(ptr) == 0 {
		return Field{}, p.errorf(start, "the property '%s' does not name a field", raw)
	}
	if len(ptr) == 1 && ptr[0] == "namespace" {
		ptr[0] = "_namespace"
	}
	return Field{Path: ptr}, nil
}

func (p *parser) placeholder(pos int, raw string) (Field, error) {
	prefix, name, _ := strings.Cut(raw, ":")
	names, ok := placeholderNames[prefix]
	if !ok {
		return Field{}, p.errorf(pos, "unknown placeholder prefix '%s:' (supported: topic:, resource:, time:)", prefix)
	}
	for _, n := range names {
		if n == name {
			return Field{Placeholder: raw}, nil
		}
	}
	return Field{}, p.errorf(pos, "unknown placeholder '%s' (supported %s: names: %s)", raw, prefix, strings.Join(names, ", "))
}

// value parses a literal.
func (p *parser) value() (Value, error) {
	if p.pos >= len(p.s) {
		return Value{}, p.errorf(p.pos, "expected a value but found end of input")
	}
	switch c := p.s[p.pos]; {
	case c == '"' || c == '\'':
		s, err := p.str(c)
		return Value{Kind: String, Str: s}, err
	case c == '+' || c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	start := p.pos
	for p.pos < len(p.s) && !isWS(p.s[p.pos]) && p.s[p.pos] != ',' && p.s[p.pos] != ')' {
		p.pos++
	}
	switch word := p.s[start:p.pos]; word {
	case "true":
		return Value{Kind: Bool, Bool: true}, nil
	case "false":
		return Value{Kind: Bool}, nil
	case "null":
		return Value{Kind: Null}, nil
	case "time:now":
		return Value{Kind: TimeNow}, nil
	case "time:now_epoch_millis":
		return Value{Kind: TimeNowEpochMillis}, nil
	default:
		if strings.HasPrefix(word, "time:") {
			return Value{}, p.errorf(start, "unknown placeholder value '%s' (supported: time:now, time:now_epoch_millis)", word)
		}
		p.pos = start
		return Value{}, p.errorf(start, "expected a value (number, quoted string, true, false, null or time:now) but found %s", p.found())
	}
}

// number parses [+-] (0 | [1-9][0-9]*) [. [0-9]+], except the integer -0.
func (p *parser) number() (Value, error) {
	start := p.pos
	if c := p.s[p.pos]; c == '+' || c == '-' {
		p.pos++
	}
	digits := p.pos
	if p.pos < len(p.s) && p.s[p.pos] == '0' {
		p.pos++
	} else {
		for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
			p.pos++
		}
	}
	if p.pos == digits {
		return Value{}, p.errorf(p.pos, "expected a digit but found %s", p.found())
	}
	if p.pos < len(p.s) && p.s[p.pos] == '.' {
		p.pos++
		frac := p.pos
		for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
			p.pos++
		}
		if p.pos == frac {
			return Value{}, p.errorf(p.pos, "expected a digit after '.' but found %s", p.found())
		}
	}
	if p.pos < len(p.s) && !isWS(p.s[p.pos]) && p.s[p.pos] != ',' && p.s[p.pos] != ')' {
		return Value{}, p.errorf(p.pos, "invalid number: unexpected %s", p.found())
	}
	num := p.s[start:p.pos]
	if num == "-0" {
		// Ditto's grammar has no integer -0 (a double -0.0 is fine).
		return Value{}, p.errorf(start, "invalid number: -0")
	}
	if num[0] == '+' {
		num = num[1:]
	}
	return Value{Kind: Number, Num: json.Number(num)}, nil
}

// str parses a string literal delimited by quote q.
func (p *parser) str(q byte) (string, error) {
	open := p.pos
	p.pos++
	start := p.pos
	for p.pos < len(p.s) {
		switch p.s[p.pos] {
		case q:
			s := p.s[start:p.pos]
			p.pos++
			return s, nil
		case '\\':
			var b strings.Builder
			b.WriteString(p.s[start:p.pos])
			for p.pos < len(p.s) {
				switch c := p.s[p.pos]; c {
				case q:
					p.pos++
					return b.String(), nil
				case '\\':
					if err := p.escape(&b); err != nil {
						return "", err
					}
				default:
					b.WriteByte(c)
					p.pos++
				}
			}
		default:
			p.pos++
			continue
		}
	}
	return "", p.errorf(open, "the string starting here is not terminated by %c", q)
}

// escape decodes the backslash escape at p.pos into b: \" \' \\ \/ \b \f \n
// \r \t and \uXXXX (UTF-16 surrogate pairs are joined; a lone surrogate
// becomes U+FFFD).
func (p *parser) escape(b *strings.Builder) error {
	at := p.pos
	if p.pos+1 >= len(p.s) {
		return p.errorf(at, "a backslash must be followed by an escape character")
	}
	c := p.s[p.pos+1]
	p.pos += 2
	switch c {
	case '"', '\'', '\\', '/':
		b.WriteByte(c)
	case 'b':
		b.WriteByte('\b')
	case 'f':
		b.WriteByte('\f')
	case 'n':
		b.WriteByte('\n')
	case 'r':
		b.WriteByte('\r')
	case 't':
		b.WriteByte('\t')
	case 'u':
		r, ok := p.hex4()
		if !ok {
			return p.errorf(at, "\\u must be followed by four hex digits")
		}
		if utf16.IsSurrogate(r) {
			r2 := utf8.RuneError
			if strings.HasPrefix(p.s[p.pos:], `\u`) {
				save := p.pos
				p.pos += 2
				if lo, ok := p.hex4(); ok {
					if d := utf16.DecodeRune(r, lo); d != utf8.RuneError {
						r2 = d
					} else {
						p.pos = save
					}
				} else {
					p.pos = save
				}
			}
			r = r2
		}
		b.WriteRune(r)
	default:
		return p.errorf(at, "invalid escape '\\%c' (allowed: \\\" \\' \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)", c)
	}
	return nil
}

func (p *parser) hex4() (rune, bool) {
	if p.pos+4 > len(p.s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(p.s[p.pos : p.pos+4]) {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	p.pos += 4
	return r, true
}

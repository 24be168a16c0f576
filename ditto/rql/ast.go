package rql

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/dittonode/dittonode/ditto"
)

// Node is a parsed RQL expression. Parse returns the concrete types below as
// values (And, not *And); String renders canonical RQL.
type Node interface{ String() string }

// And matches when every child matches.
type And struct{ Children []Node }

// Or matches when at least one child matches.
type Or struct{ Children []Node }

// Not matches when its child does not.
type Not struct{ Child Node }

// Compare is a single-value comparison. Op is one of eq, ne, gt, ge, lt, le,
// like and ilike.
type Compare struct {
	Op    string
	Field Field
	Value Value
}

// In matches when the field equals any of the values.
type In struct {
	Field  Field
	Values []Value
}

// Exists matches when the field is present, whatever its value (null too).
type Exists struct{ Field Field }

// Empty matches when the field is absent, null, [], {} or "".
type Empty struct{ Field Field }

// Field is a property of an expression: a JSON pointer into the thing, where
// "features/*/..." stands for any feature, or a placeholder such as
// "topic:action" when Placeholder is not empty (Path is then nil).
type Field struct {
	Path        ditto.Pointer
	Placeholder string
}

// Kind is the type of a literal Value.
type Kind uint8

// The kinds of literal values.
const (
	String             Kind = iota + 1 // "str" or 'str'
	Number                             // long or double
	Bool                               // true or false
	Null                               // null
	TimeNow                            // time:now, the caller's time as ISO-8601 UTC
	TimeNowEpochMillis                 // time:now_epoch_millis, the caller's time in ms
)

var kindNames = [...]string{"", "string", "number", "bool", "null", "time:now", "time:now_epoch_millis"}

// String returns the kind's name.
func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return "invalid"
}

// Value is a literal. Str is set for String, Num for Number and Bool for
// Bool; the time kinds resolve against Env.Now when matched.
type Value struct {
	Kind Kind
	Str  string
	Num  json.Number
	Bool bool
}

// Comparison operators of Compare.
const (
	OpEq    = "eq"
	OpNe    = "ne"
	OpGt    = "gt"
	OpGe    = "ge"
	OpLt    = "lt"
	OpLe    = "le"
	OpLike  = "like"
	OpILike = "ilike"
)

func (n And) String() string     { return render(n) }
func (n Or) String() string      { return render(n) }
func (n Not) String() string     { return render(n) }
func (n Compare) String() string { return render(n) }
func (n In) String() string      { return render(n) }
func (n Exists) String() string  { return render(n) }
func (n Empty) String() string   { return render(n) }

// String renders the field as an RQL property.
func (f Field) String() string {
	var b strings.Builder
	writeField(&b, f)
	return b.String()
}

// String renders the value as an RQL literal.
func (v Value) String() string {
	var b strings.Builder
	writeValue(&b, v)
	return b.String()
}

func render(n Node) string {
	var b strings.Builder
	writeNode(&b, n)
	return b.String()
}

// unptr turns pointers to node types into values, so callers that build
// nodes by hand may use either.
func unptr(n Node) Node {
	switch x := n.(type) {
	case *And:
		return *x
	case *Or:
		return *x
	case *Not:
		return *x
	case *Compare:
		return *x
	case *In:
		return *x
	case *Exists:
		return *x
	case *Empty:
		return *x
	}
	return n
}

func writeNode(b *strings.Builder, n Node) {
	switch x := unptr(n).(type) {
	case And:
		writeLogical(b, "and", x.Children)
	case Or:
		writeLogical(b, "or", x.Children)
	case Not:
		b.WriteString("not(")
		writeNode(b, x.Child)
		b.WriteByte(')')
	case Compare:
		b.WriteString(x.Op)
		b.WriteByte('(')
		writeField(b, x.Field)
		b.WriteByte(',')
		writeValue(b, x.Value)
		b.WriteByte(')')
	case In:
		b.WriteString("in(")
		writeField(b, x.Field)
		for _, v := range x.Values {
			b.WriteByte(',')
			writeValue(b, v)
		}
		b.WriteByte(')')
	case Exists:
		b.WriteString("exists(")
		writeField(b, x.Field)
		b.WriteByte(')')
	case Empty:
		b.WriteString("empty(")
		writeField(b, x.Field)
		b.WriteByte(')')
	case nil:
		b.WriteString("<nil>")
	default:
		b.WriteString(x.String())
	}
}

func writeLogical(b *strings.Builder, name string, children []Node) {
	b.WriteString(name)
	b.WriteByte('(')
	for i, c := range children {
		if i > 0 {
			b.WriteByte(',')
		}
		writeNode(b, c)
	}
	b.WriteByte(')')
}

// writeField writes a property so that it parses back to the same field: the
// pointer without its leading slash (kept when the first segment holds a ':'
// so it is not read as a placeholder), with ',', ')', '"' and '\' escaped and
// leading or trailing spaces written as \u0020 so they survive trimming.
func writeField(b *strings.Builder, f Field) {
	if f.Placeholder != "" {
		b.WriteString(f.Placeholder)
		return
	}
	s := f.Path.String()
	if len(f.Path) > 0 && !strings.Contains(f.Path[0], ":") {
		s = s[1:]
	}
	last := len(s) - 1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ',':
			b.WriteString(`\u002c`)
		case c == ')':
			b.WriteString(`\u0029`)
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == ' ' && (i == 0 || i == last):
			b.WriteString(`\u0020`)
		case c < 0x20 || c == 0x7F:
			writeControl(b, c)
		default:
			b.WriteByte(c)
		}
	}
}

func writeValue(b *strings.Builder, v Value) {
	switch v.Kind {
	case String:
		writeString(b, v.Str)
	case Number:
		b.WriteString(string(v.Num))
	case Bool:
		if v.Bool {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case Null:
		b.WriteString("null")
	case TimeNow:
		b.WriteString("time:now")
	case TimeNowEpochMillis:
		b.WriteString("time:now_epoch_millis")
	default:
		b.WriteString("<invalid>")
	}
}

// writeString writes s as a double-quoted literal. Bytes that are not valid
// UTF-8 are written through unchanged; the parser reads them back as is.
func writeString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			_, n := utf8.DecodeRuneInString(s[i:])
			b.WriteString(s[i : i+n])
			i += n
			continue
		}
		switch c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 || c == 0x7F {
				writeControl(b, c)
			} else {
				b.WriteByte(c)
			}
		}
		i++
	}
	b.WriteByte('"')
}

func writeControl(b *strings.Builder, c byte) {
	const hex = "0123456789abcdef"
	b.WriteString(`\u00`)
	b.WriteByte(hex[c>>4])
	b.WriteByte(hex[c&0xF])
}

// Fields returns every field n references, each once, in order of first
// appearance. Callers check READ permission on them before evaluating.
func Fields(n Node) []Field {
	var out []Field
	add := func(f Field) {
		for _, g := range out {
			if g.Placeholder == f.Placeholder && g.Path.Equal(f.Path) {
				return
			}
		}
		out = append(out, f)
	}
	var walk func(Node)
	walk = func(n Node) {
		switch x := unptr(n).(type) {
		case And:
			for _, c := range x.Children {
				walk(c)
			}
		case Or:
			for _, c := range x.Children {
				walk(c)
			}
		case Not:
			walk(x.Child)
		case Compare:
			add(x.Field)
		case In:
			add(x.Field)
		case Exists:
			add(x.Field)
		case Empty:
			add(x.Field)
		}
	}
	walk(n)
	return out
}

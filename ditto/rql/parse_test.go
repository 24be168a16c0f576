package rql

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

func ptr(s string) ditto.Pointer { return ditto.MustPointer(s) }

func TestParseAST(t *testing.T) {
	str := func(s string) Value { return Value{Kind: String, Str: s} }
	numv := func(s string) Value { return Value{Kind: Number, Num: json.Number(s)} }
	tests := []struct {
		name string
		in   string
		want Node
	}{
		{"eq string", `eq(attributes/location,"kitchen")`,
			Compare{Op: OpEq, Field: Field{Path: ptr("attributes/location")}, Value: str("kitchen")}},
		{"leading slash", `eq(/attributes/location,'kitchen')`,
			Compare{Op: OpEq, Field: Field{Path: ptr("attributes/location")}, Value: str("kitchen")}},
		{"namespace alias", `eq(namespace,"org.eclipse")`,
			Compare{Op: OpEq, Field: Field{Path: ptr("_namespace")}, Value: str("org.eclipse")}},
		{"long", `gt(_revision,42)`, Compare{Op: OpGt, Field: Field{Path: ptr("_revision")}, Value: numv("42")}},
		{"plus sign dropped", `ge(x,+7)`, Compare{Op: OpGe, Field: Field{Path: ptr("x")}, Value: numv("7")}},
		{"negative double", `lt(x,-0.25)`, Compare{Op: OpLt, Field: Field{Path: ptr("x")}, Value: numv("-0.25")}},
		{"double minus zero", `lt(x,-0.0)`, Compare{Op: OpLt, Field: Field{Path: ptr("x")}, Value: numv("-0.0")}},
		{"bool null", `and(eq(a,true),eq(b,false),ne(c,null))`, And{Children: []Node{
			Compare{Op: OpEq, Field: Field{Path: ptr("a")}, Value: Value{Kind: Bool, Bool: true}},
			Compare{Op: OpEq, Field: Field{Path: ptr("b")}, Value: Value{Kind: Bool}},
			Compare{Op: OpNe, Field: Field{Path: ptr("c")}, Value: Value{Kind: Null}},
		}}},
		{"time values", `or(lt(_modified,time:now),le(attributes/ts,time:now_epoch_millis))`, Or{Children: []Node{
			Compare{Op: OpLt, Field: Field{Path: ptr("_modified")}, Value: Value{Kind: TimeNow}},
			Compare{Op: OpLe, Field: Field{Path: ptr("attributes/ts")}, Value: Value{Kind: TimeNowEpochMillis}},
		}}},
		{"single child and", `and(exists(a))`, And{Children: []Node{Exists{Field: Field{Path: ptr("a")}}}}},
		{"not empty", `not(empty(features/*/properties/x))`, Not{Child: Empty{Field: Field{Path: ptr("features/*/properties/x")}}}},
		{"in", `in(topic:action,'created',"deleted")`,
			In{Field: Field{Placeholder: "topic:action"}, Values: []Value{str("created"), str("deleted")}}},
		{"resource placeholder", `eq(resource:path,'/')`, Compare{Op: OpEq, Field: Field{Placeholder: "resource:path"}, Value: str("/")}},
		{"time placeholder field", `gt(time:now_epoch_millis,0)`, Compare{Op: OpGt, Field: Field{Placeholder: "time:now_epoch_millis"}, Value: numv("0")}},
		{"whitespace", " and( eq(a , 1 ) ,\n\tlike( b,\"x*\" ) ) ", And{Children: []Node{
			Compare{Op: OpEq, Field: Field{Path: ptr("a")}, Value: numv("1")},
			Compare{Op: OpLike, Field: Field{Path: ptr("b")}, Value: str("x*")},
		}}},
		{"string escapes", `eq(a,"q\"s\'b\\s\/n\nt\tu\u00e9\ud83d\ude00")`,
			Compare{Op: OpEq, Field: Field{Path: ptr("a")}, Value: str("q\"s'b\\s/n\nt\tu\u00e9\U0001F600")}},
		{"single quote escapes", `eq(a,'it\'s "x"')`, Compare{Op: OpEq, Field: Field{Path: ptr("a")}, Value: str(`it's "x"`)}},
		{"lone surrogate", `eq(a,"\ud800x")`, Compare{Op: OpEq, Field: Field{Path: ptr("a")}, Value: str("\uFFFDx")}},
		{"property escapes", `eq(attributes/we\u002cird\"key\u0029,1)`,
			Compare{Op: OpEq, Field: Field{Path: ditto.Pointer{"attributes", `we,ird"key)`}}, Value: numv("1")}},
		{"property with spaces", `exists(attributes/my key )`, Exists{Field: Field{Path: ditto.Pointer{"attributes", "my key"}}}},
		{"escaped trailing space kept", `exists(attributes/k\u0020)`, Exists{Field: Field{Path: ditto.Pointer{"attributes", "k "}}}},
		{"colon after slash is a path", `eq(attributes/a:b,1)`, Compare{Op: OpEq, Field: Field{Path: ditto.Pointer{"attributes", "a:b"}}, Value: numv("1")}},
		{"slash-led colon is a path", `exists(/a:b)`, Exists{Field: Field{Path: ditto.Pointer{"a:b"}}}},
		{"tilde", `exists(attributes/a~0b)`, Exists{Field: Field{Path: ditto.Pointer{"attributes", "a~b"}}}},
		{"empty string", `eq(a,"")`, Compare{Op: OpEq, Field: Field{Path: ptr("a")}, Value: str("")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse(%q)\n got %#v\nwant %#v", tt.in, got, tt.want)
			}
			mustRoundTrip(t, got)
		})
	}
}

func TestParseCanonical(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", `eq(thingId,"a:b")`, `eq(thingId,"a:b")`},
		{"single quotes", `eq(thingId,'a:b')`, `eq(thingId,"a:b")`},
		{"slash dropped", `exists(/attributes/x)`, `exists(attributes/x)`},
		{"spaces dropped", ` and( eq(a,1) , not( exists(b) ) ) `, `and(eq(a,1),not(exists(b)))`},
		{"in", `in(attributes/c, 1, 2.5, "x", true, null)`, `in(attributes/c,1,2.5,"x",true,null)`},
		{"like", `ilike(attributes/name,"*Th?ng*")`, `ilike(attributes/name,"*Th?ng*")`},
		{"escapes", `eq(a,'\b\f\n\r\t\u0001"')`, `eq(a,"\b\f\n\r\t\u0001\"")`},
		{"property specials", `exists(attributes/a\u002cb\u0029c\"d\\e)`, `exists(attributes/a\u002cb\u0029c\"d\\e)`},
		{"leading space", `exists(\u0020a)`, `exists(\u0020a)`},
		{"colon first segment", `exists(/a:b/c)`, `exists(/a:b/c)`},
		{"placeholder", `eq(topic:action-subject,"x")`, `eq(topic:action-subject,"x")`},
		{"time", `gt(_modified,time:now)`, `gt(_modified,time:now)`},
		{"namespace", `eq(namespace,"ns")`, `eq(_namespace,"ns")`},
		{"tilde", `exists(a~0)`, `exists(a~0)`},
		{"unicode", `eq(a,"Wörld ✓")`, `eq(a,"Wörld ✓")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := mustParse(t, tt.in)
			if got := n.String(); got != tt.want {
				t.Fatalf("String() = %s, want %s", got, tt.want)
			}
			mustRoundTrip(t, n)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // substring of the message
	}{
		{"empty", ``, "position 1: expected an operator"},
		{"blank", `   `, "position 4: expected an operator"},
		{"unknown operator", `foo(a,1)`, "position 1: unknown operator 'foo'"},
		{"uppercase operator", `EQ(a,1)`, "position 1: expected an operator"},
		{"space before paren", `eq (a,1)`, "position 3: expected '(' after 'eq'"},
		{"missing value", `eq(a)`, "position 5: expected ',' but found ')'"},
		{"missing property", `eq(,1)`, "position 4: expected a property"},
		{"unclosed", `eq(a,1`, "position 7: expected ')' to close 'eq' but found end of input"},
		{"trailing", `eq(a,1))`, "position 8: unexpected ')' after the end"},
		{"two roots", `eq(a,1),eq(b,2)`, "position 8: unexpected ','"},
		{"bare word value", `eq(a,kitchen)`, "position 6: expected a value"},
		{"bad keyword", `eq(a,truex)`, "position 6: expected a value"},
		{"unknown time value", `eq(a,time:later)`, "position 6: unknown placeholder value 'time:later'"},
		{"unterminated string", `eq(a,"abc)`, "position 6: the string starting here is not terminated"},
		{"bad escape", `eq(a,"a\qb")`, `position 8: invalid escape '\q'`},
		{"bad unicode escape", `eq(a,"\u12G4")`, `position 7: \u must be followed by four hex digits`},
		{"quote in property", `eq(a"b,1)`, `position 5: unexpected '"' in a property`},
		{"leading zero", `eq(a,01)`, "position 7: invalid number: unexpected '1'"},
		{"dot without digits", `eq(a,1.)`, "position 8: expected a digit after '.'"},
		{"exponent", `eq(a,1e5)`, "position 7: invalid number"},
		{"sign only", `eq(a,-)`, "position 7: expected a digit"},
		{"integer minus zero", `eq(a,-0)`, "position 6: invalid number: -0"},
		{"like number", `like(a,5)`, "position 8: 'like' needs a string pattern, not number"},
		{"ilike null", `ilike(a,null)`, "position 9: 'ilike' needs a string pattern, not null"},
		{"in without values", `in(a)`, "position 5: expected ',' and a value"},
		{"in trailing comma", `in(a,1,)`, "position 8: expected a value"},
		{"and empty", `and()`, "position 5: expected an operator"},
		{"and trailing comma", `and(exists(a),)`, "position 15: expected an operator"},
		{"and garbage", `and(exists(a) x)`, "position 15: expected ',' or ')' in 'and'"},
		{"not two children", `not(exists(a),exists(b))`, "position 14: expected ')' to close 'not'"},
		{"exists two args", `exists(a,b)`, "position 9: expected ')' to close 'exists'"},
		{"unknown placeholder prefix", `eq(header:x,1)`, "position 4: unknown placeholder prefix 'header:'"},
		{"unknown topic name", `eq(topic:nope,1)`, "position 4: unknown placeholder 'topic:nope'"},
		{"double slash", `exists(a//b)`, "position 8: the property 'a//b' is not a valid JSON pointer"},
		{"root pointer", `exists(/)`, "position 8: the property '/' does not name a field"},
		{"control char in property", "exists(a\x01b)", "not a valid JSON pointer"},
		{"lone backslash", `exists(a\`, "position 9: a backslash must be followed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %s, want error containing %q", tt.in, n, tt.want)
			}
			checkRQLError(t, err, tt.want)
		})
	}
}

func TestParseLimits(t *testing.T) {
	nest := func(depth int) string {
		return strings.Repeat("not(", depth-1) + "exists(a)" + strings.Repeat(")", depth-1)
	}
	t.Run("max depth ok", func(t *testing.T) { mustParse(t, nest(MaxDepth)) })
	t.Run("too deep", func(t *testing.T) {
		_, err := Parse(nest(MaxDepth + 1))
		checkRQLError(t, err, "nested deeper than 64 levels")
	})
	t.Run("very deep is cheap", func(t *testing.T) {
		_, err := Parse(strings.Repeat("and(", 2000))
		checkRQLError(t, err, "nested deeper than 64 levels")
	})
	long := `eq(a,"` + strings.Repeat("x", MaxLength-8) + `")`
	t.Run("max length ok", func(t *testing.T) { mustParse(t, long) })
	t.Run("too long", func(t *testing.T) {
		_, err := Parse(long + " ")
		checkRQLError(t, err, "more than 10000 characters")
	})
	t.Run("length counts characters", func(t *testing.T) {
		mustParse(t, `eq(a,"`+strings.Repeat("é", MaxLength-8)+`")`)
	})
}

func TestFields(t *testing.T) {
	n := mustParse(t, `and(eq(attributes/a,1),or(exists(/attributes/a),in(features/*/properties/x,1)),not(empty(thingId)),eq(topic:action,"created"),like(namespace,"x*"))`)
	want := []Field{
		{Path: ptr("attributes/a")},
		{Path: ptr("features/*/properties/x")},
		{Path: ptr("thingId")},
		{Placeholder: "topic:action"},
		{Path: ptr("_namespace")},
	}
	if got := Fields(n); !reflect.DeepEqual(got, want) {
		t.Fatalf("Fields = %v, want %v", got, want)
	}
}

func TestPointerNodes(t *testing.T) {
	// Hand-built nodes may be pointers; String, Fields and Match accept them.
	n := &And{Children: []Node{
		&Compare{Op: OpEq, Field: Field{Path: ptr("a")}, Value: Value{Kind: Number, Num: "1"}},
		&Not{Child: &Exists{Field: Field{Path: ptr("b")}}},
	}}
	if got, want := n.String(), `and(eq(a,1),not(exists(b)))`; got != want {
		t.Fatalf("String() = %s, want %s", got, want)
	}
	if got := len(Fields(n)); got != 2 {
		t.Fatalf("Fields: %d fields, want 2", got)
	}
	doc := map[string]any{"a": json.Number("1")}
	if !Match(n, doc, Env{}) {
		t.Fatal("Match = false, want true")
	}
}

func mustParse(t testing.TB, s string) Node {
	t.Helper()
	n, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return n
}

// mustRoundTrip checks that the canonical form of n parses to an equal node
// and is stable.
func mustRoundTrip(t testing.TB, n Node) {
	t.Helper()
	s := n.String()
	m, err := Parse(s)
	if err != nil {
		t.Fatalf("canonical form %q does not parse: %v", s, err)
	}
	if !reflect.DeepEqual(n, m) {
		t.Fatalf("canonical form %q parses to\n %#v\nnot\n %#v", s, m, n)
	}
	if s2 := m.String(); s2 != s {
		t.Fatalf("canonical form is not stable: %q then %q", s, s2)
	}
}

func checkRQLError(t testing.TB, err error, want string) {
	t.Helper()
	var de *ditto.Error
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *ditto.Error", err, err)
	}
	if de.Code != ditto.ErrRQLInvalid.Code || de.Status != 400 {
		t.Fatalf("error code %s status %d, want %s 400", de.Code, de.Status, ditto.ErrRQLInvalid.Code)
	}
	if !strings.Contains(de.Message, want) {
		t.Fatalf("message %q does not contain %q", de.Message, want)
	}
}

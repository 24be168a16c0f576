package rql

import (
	"errors"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dittonode/dittonode/ditto"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		``,
		`eq(a,1)`,
		benchRQL,
		`and(in(topic:action,'created','deleted'),eq(resource:path,'/'))`,
		`or(lt(_modified,time:now),le(attributes/ts,time:now_epoch_millis))`,
		`not(empty(features/*/properties/x))`,
		`eq(attributes/we\u002cird\"key\u0029,"q\"\u00e9\ud83d\ude00\n")`,
		`exists(\u0020a\u0020)`,
		`exists(/a:b/c~0d)`,
		`ilike(a,'*x?\\*')`,
		` and( eq(a , -0.5 ) ,exists( b ) ) `,
		`eq(a,"\ud800")`,
		"eq(a,\"\xff\")",
		`in(a,1,+2,3.25,"x",true,false,null)`,
		`eq(header:x,1)`,
		`eq(a,01)`,
		`and(and(and(and(exists(a)))))`,
	} {
		f.Add(s)
	}
	doc := mustThing(f)
	env := Env{Now: time.Unix(1700000000, 0), Placeholder: func(string) (string, bool) { return "x", true }}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			var de *ditto.Error
			if !errors.As(err, &de) || de.Code != ditto.ErrRQLInvalid.Code {
				t.Fatalf("Parse(%q): error %v is not rql.expression.invalid", s, err)
			}
			return
		}
		canon := n.String()
		if utf8.RuneCountInString(canon) > MaxLength {
			// Escaping can make the canonical form longer than the input
			// (a raw control character renders as \u001f): it is only
			// hashed, never parsed again, so the round trip stops here.
			_ = Match(n, doc, env)
			_ = Fields(n)
			return
		}
		m, err := Parse(canon)
		if err != nil {
			t.Fatalf("Parse(%q) = %s, which does not parse: %v", s, canon, err)
		}
		if !reflect.DeepEqual(n, m) {
			t.Fatalf("Parse(%q): canonical %s parses to\n %#v\nnot\n %#v", s, canon, m, n)
		}
		if again := m.String(); again != canon {
			t.Fatalf("canonical form unstable: %s then %s", canon, again)
		}
		if Match(n, doc, env) != Match(m, doc, env) {
			t.Fatalf("Match differs between %q and %s", s, canon)
		}
		_ = Fields(n)
	})
}

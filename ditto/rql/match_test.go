package rql

import (
	"strings"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

const thingJSON = `{
  "thingId": "org.eclipse:car-1",
  "policyId": "org.eclipse:car-1",
  "_namespace": "org.eclipse",
  "_revision": 42,
  "_created": "2024-01-15T10:00:00Z",
  "_modified": "2024-06-01T12:30:00.5Z",
  "definition": "org.eclipse:car:1.0",
  "attributes": {
    "manufacturer": "ACME",
    "model": "Speedster",
    "year": 2021,
    "price": 19999.99,
    "electric": true,
    "nothing": null,
    "emptyStr": "",
    "emptyArr": [],
    "emptyObj": {},
    "zero": 0,
    "no": false,
    "numStr": "5",
    "tags": ["red", "fast", "2door"],
    "nums": [1, 5, 10],
    "rooms": [{"room": "kitchen", "floor": 1}, {"room": "hall", "floor": 2}],
    "nested": {"a": {"b": "deep"}},
    "big": 9007199254740993,
    "expo": 1e3,
    "weird, key)\"": "x",
    "tilde~key": "t",
    "Mixed": "HeLLo Wörld",
    "pattern": "a*b?c",
    "updated": "2024-06-01T12:00:00Z",
    "millis": 1717243200000
  },
  "features": {
    "engine": {"properties": {"temp": 90, "status": "running"}},
    "lamp": {"properties": {"on": true, "temp": 40}, "desiredProperties": {"on": false}},
    "door": {"definition": ["org.eclipse:door:1.0"]}
  }
}`

func mustThing(t testing.TB) any {
	t.Helper()
	v, err := ditto.DecodeJSON([]byte(thingJSON))
	if err != nil {
		t.Fatalf("decode thing: %v", err)
	}
	return v
}

func TestMatch(t *testing.T) {
	doc := mustThing(t)
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	env := Env{Now: now, Placeholder: func(name string) (string, bool) {
		switch name {
		case "topic:action":
			return "modified", true
		case "resource:path":
			return "/attributes/year", true
		}
		return "", false
	}}
	tests := []struct {
		name string
		rql  string
		want bool
	}{
		// eq / ne on every type.
		{"eq string", `eq(thingId,"org.eclipse:car-1")`, true},
		{"eq string single quotes", `eq(attributes/model,'Speedster')`, true},
		{"eq string mismatch", `eq(attributes/model,"speedster")`, false},
		{"eq long", `eq(_revision,42)`, true},
		{"eq long vs double", `eq(_revision,42.0)`, true},
		{"eq double", `eq(attributes/price,19999.99)`, true},
		{"eq exponent in doc", `eq(attributes/expo,1000)`, true},
		{"eq big int exact", `eq(attributes/big,9007199254740993)`, true},
		{"eq big int off by one", `eq(attributes/big,9007199254740992)`, false},
		{"eq bool", `eq(attributes/electric,true)`, true},
		{"eq bool false", `eq(attributes/electric,false)`, false},
		{"eq null", `eq(attributes/nothing,null)`, true},
		{"eq null on missing", `eq(attributes/missing,null)`, false},
		{"eq null on value", `eq(attributes/model,null)`, false},
		{"namespace alias", `eq(namespace,"org.eclipse")`, true},
		{"ne string", `ne(attributes/model,"Other")`, true},
		{"ne same", `ne(attributes/model,"Speedster")`, false},
		{"ne missing field", `ne(attributes/missing,"x")`, false},
		{"ne other type", `ne(attributes/year,"2021")`, true},
		{"ne null on null", `ne(attributes/nothing,null)`, false},
		{"ne null on value", `ne(attributes/year,null)`, true},
		{"ne bool", `ne(attributes/electric,false)`, true},

		// Type strictness.
		{"string vs number", `eq(attributes/numStr,5)`, false},
		{"number vs string", `eq(attributes/year,"2021")`, false},
		{"bool vs number", `eq(attributes/no,0)`, false},
		{"gt string vs number", `gt(attributes/model,1)`, false},
		// Booleans order false < true (MongoDB's order, so Ditto's).
		{"gt bool", `gt(attributes/electric,false)`, true},
		{"ge bool", `ge(attributes/electric,true)`, true},
		{"gt true", `gt(attributes/electric,true)`, false},
		{"lt bool", `lt(attributes/electric,true)`, false},
		{"le bool", `le(attributes/electric,true)`, true},
		{"bool against number", `gt(attributes/electric,0)`, false},
		{"lt null unsupported", `lt(attributes/nothing,null)`, false},
		{"gt object", `gt(attributes/nested,1)`, false},

		// Ordering.
		{"gt long", `gt(_revision,41)`, true},
		{"gt equal", `gt(_revision,42)`, false},
		{"ge equal", `ge(_revision,42)`, true},
		{"lt long", `lt(attributes/year,2022)`, true},
		{"le equal", `le(attributes/year,2021)`, true},
		{"lt double vs long", `lt(attributes/price,20000)`, true},
		{"gt negative", `gt(attributes/zero,-1)`, true},
		{"gt string", `gt(thingId,"org.eclipse:car-0")`, true},
		{"lt string", `lt(thingId,"org.eclipse:car-0")`, false},
		{"ge string equal", `ge(attributes/model,"Speedster")`, true},
		{"le string prefix", `le(attributes/model,"Speed")`, false},
		{"gt missing", `gt(attributes/missing,0)`, false},
		{"timestamp as string", `gt(_created,"2024-01-01T00:00:00Z")`, true},
		{"timestamp as string lt", `lt(_created,"2023-12-31T23:59:59Z")`, false},

		// time:now and time:now_epoch_millis.
		{"created before now", `lt(_created,time:now)`, true},
		{"modified after now", `gt(_modified,time:now)`, true},
		{"fraction ordered as instant", `gt(_modified,time:now)`, true},
		{"equal to now", `eq(attributes/updated,time:now)`, true},
		{"now on number", `eq(attributes/millis,time:now)`, false},
		{"now on non-timestamp string", `gt(attributes/model,time:now)`, true},
		{"epoch millis equal", `eq(attributes/millis,time:now_epoch_millis)`, true},
		{"epoch millis lt", `lt(attributes/year,time:now_epoch_millis)`, true},
		{"epoch millis on string", `eq(attributes/updated,time:now_epoch_millis)`, false},
		{"time placeholder field", `eq(time:now,"2024-06-01T12:00:00Z")`, true},
		{"time epoch placeholder field", `ge(time:now_epoch_millis,1717243200000)`, true},

		// Arrays.
		{"eq any element", `eq(attributes/tags,"fast")`, true},
		{"eq no element", `eq(attributes/tags,"slow")`, false},
		{"ne some element equal", `ne(attributes/tags,"fast")`, false},
		{"ne no element equal", `ne(attributes/tags,"slow")`, true},
		{"gt any element", `gt(attributes/nums,9)`, true},
		{"gt no element", `gt(attributes/nums,10)`, false},
		{"lt any element", `lt(attributes/nums,2)`, true},
		{"object elements", `eq(attributes/rooms/room,"hall")`, true},
		{"object elements miss", `eq(attributes/rooms/room,"attic")`, false},
		{"object elements ne", `ne(attributes/rooms/room,"hall")`, false},
		{"object elements ne other", `ne(attributes/rooms/room,"attic")`, true},
		{"object elements gt", `gt(attributes/rooms/floor,1)`, true},
		{"object elements in", `in(attributes/rooms/room,"attic","kitchen")`, true},
		{"object elements exists", `exists(attributes/rooms/floor)`, true},
		{"object elements not exists", `exists(attributes/rooms/window)`, false},
		{"like any element", `like(attributes/tags,"f*")`, true},
		{"in any element", `in(attributes/nums,7,10)`, true},
		{"empty array eq", `eq(attributes/emptyArr,1)`, false},

		// in.
		{"in match", `in(thingId,"a:b","org.eclipse:car-1")`, true},
		{"in no match", `in(thingId,"a:b","c:d")`, false},
		{"in mixed types", `in(attributes/year,"2021",2021)`, true},
		{"in type strict", `in(attributes/year,"2021",true)`, false},
		{"in null", `in(attributes/nothing,1,null)`, true},
		{"in missing", `in(attributes/missing,null)`, false},

		// like and ilike.
		{"like exact", `like(attributes/model,"Speedster")`, true},
		{"like prefix", `like(attributes/model,"Speed*")`, true},
		{"like suffix", `like(attributes/model,"*ster")`, true},
		{"like contains", `like(attributes/model,"*eed*")`, true},
		{"like single", `like(attributes/model,"Sp?edster")`, true},
		{"like single too few", `like(attributes/model,"Speedster?")`, false},
		{"like case", `like(attributes/model,"speed*")`, false},
		{"like regex chars literal", `like(attributes/weird\u002c key\u0029\",".")`, false},
		{"like has no escape", `like(attributes/pattern,"a\\*b\\?c")`, false},
		{"like wildcards match wildcards", `like(attributes/pattern,"a*b?c")`, true},
		{"like backslash is literal", `like(attributes/model,"S\\*")`, false},
		{"like unicode single", `like(attributes/Mixed,"HeLLo W?rld")`, true},
		{"like on number", `like(attributes/year,"2021")`, false},
		{"like on missing", `like(attributes/missing,"*")`, false},
		{"like star matches empty", `like(attributes/emptyStr,"*")`, true},
		{"ilike", `ilike(attributes/Mixed,"hello wö*")`, true},
		{"ilike unicode fold", `ilike(attributes/Mixed,"*WÖRLD")`, true},
		{"ilike miss", `ilike(attributes/Mixed,"bye*")`, false},

		// exists and empty.
		{"exists value", `exists(attributes/model)`, true},
		{"exists null", `exists(attributes/nothing)`, true},
		{"exists missing", `exists(attributes/missing)`, false},
		{"exists object", `exists(features/lamp)`, true},
		{"exists through scalar", `exists(attributes/model/x)`, false},
		{"exists nested", `exists(attributes/nested/a/b)`, true},
		{"exists tilde key", `exists(attributes/tilde~0key)`, true},
		{"exists escaped key", `eq(attributes/weird\u002c key\u0029\",'x')`, true},
		{"empty missing", `empty(attributes/missing)`, true},
		{"empty null", `empty(attributes/nothing)`, true},
		{"empty string", `empty(attributes/emptyStr)`, true},
		{"empty array", `empty(attributes/emptyArr)`, true},
		{"empty object", `empty(attributes/emptyObj)`, true},
		{"empty zero", `empty(attributes/zero)`, false},
		{"empty false", `empty(attributes/no)`, false},
		{"empty value", `empty(attributes/model)`, false},

		// Feature wildcard.
		{"wildcard eq", `eq(features/*/properties/temp,40)`, true},
		{"wildcard eq none", `eq(features/*/properties/temp,41)`, false},
		{"wildcard gt", `gt(features/*/properties/temp,80)`, true},
		{"wildcard ne any feature", `ne(features/*/properties/temp,90)`, true},
		{"wildcard ne only existing", `ne(features/*/properties/status,"running")`, false},
		{"wildcard exists", `exists(features/*/desiredProperties/on)`, true},
		{"wildcard exists none", `exists(features/*/properties/missing)`, false},
		{"wildcard empty some feature lacks it", `empty(features/*/properties/status)`, true},
		{"wildcard definition array", `eq(features/*/definition,"org.eclipse:door:1.0")`, true},
		{"wildcard feature itself", `exists(features/*)`, true},
		{"not wildcard", `not(eq(features/*/properties/temp,40))`, false},
		{"explicit feature", `eq(features/engine/properties/temp,40)`, false},

		// Logic.
		{"and true", `and(eq(_revision,42),exists(attributes/model))`, true},
		{"and false", `and(eq(_revision,42),exists(attributes/missing))`, false},
		{"and single", `and(eq(_revision,42))`, true},
		{"or true", `or(eq(_revision,1),exists(attributes/model))`, true},
		{"or false", `or(eq(_revision,1),exists(attributes/missing))`, false},
		{"not", `not(eq(_revision,1))`, true},
		{"not missing", `not(gt(attributes/missing,1))`, true},
		{"nested", `and(or(eq(a,1),eq(attributes/year,2021)),not(and(exists(x),exists(y))))`, true},

		// Placeholders.
		{"topic placeholder", `eq(topic:action,"modified")`, true},
		{"topic in", `in(topic:action,"created","deleted")`, false},
		{"resource placeholder", `like(resource:path,"/attributes/*")`, true},
		{"unresolved placeholder", `eq(topic:channel,"twin")`, false},
		{"unresolved placeholder ne", `ne(topic:channel,"live")`, false},
		{"unresolved placeholder empty", `empty(topic:subject)`, true},
		{"spec example", `and(in(topic:action,'created','modified'),eq(resource:path,'/attributes/year'))`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := mustParse(t, tt.rql)
			if got := Match(n, doc, env); got != tt.want {
				t.Fatalf("Match(%s) = %v, want %v", tt.rql, got, tt.want)
			}
			// The canonical form means the same.
			if got := Match(mustParse(t, n.String()), doc, env); got != tt.want {
				t.Fatalf("Match(%s) = %v, want %v", n.String(), got, tt.want)
			}
		})
	}
}

func TestMatchEdgeDocs(t *testing.T) {
	tests := []struct {
		name string
		rql  string
		doc  any
		env  Env
		want bool
	}{
		{"nil node", "", map[string]any{}, Env{}, true},
		{"nil doc exists", `exists(a)`, nil, Env{}, false},
		{"nil doc empty", `empty(a)`, nil, Env{}, true},
		{"scalar doc", `eq(a,1)`, "x", Env{}, false},
		{"no features wildcard empty", `empty(features/*/properties/x)`, map[string]any{}, Env{}, true},
		{"no features wildcard exists", `exists(features/*/properties/x)`, map[string]any{}, Env{}, false},
		{"features not object", `exists(features/*)`, map[string]any{"features": "x"}, Env{}, false},
		{"plain go numbers", `and(eq(i,3),gt(f,2.5),lt(n,0))`,
			map[string]any{"i": 3, "f": 2.75, "n": int64(-1)}, Env{}, true},
		{"nested arrays with array leaf", `eq(a/b,1)`,
			map[string]any{"a": []any{[]any{map[string]any{"b": []any{1}}}}}, Env{}, true},
		{"array leaf of arrays", `eq(a,1)`, map[string]any{"a": []any{[]any{1}}}, Env{}, false},
		{"nested arrays of objects", `eq(a/b,1)`,
			map[string]any{"a": []any{[]any{map[string]any{"b": 1}}}}, Env{}, true},
		{"no placeholder func", `eq(topic:action,"x")`, map[string]any{}, Env{}, false},
		{"zero time", `eq(t,time:now)`, map[string]any{"t": "0001-01-01T00:00:00Z"}, Env{}, true},
		{"now with zone", `eq(t,time:now)`, map[string]any{"t": "2024-06-01T14:00:00+02:00"},
			Env{Now: time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n Node
			if tt.rql != "" {
				n = mustParse(t, tt.rql)
			}
			if got := Match(n, tt.doc, tt.env); got != tt.want {
				t.Fatalf("Match(%s) = %v, want %v", tt.rql, got, tt.want)
			}
		})
	}
}

func TestLike(t *testing.T) {
	tests := []struct {
		pat, s string
		fold   bool
		want   bool
	}{
		{"", "", false, true},
		{"", "a", false, false},
		{"*", "", false, true},
		{"**", "abc", false, true},
		{"?", "", false, false},
		{"?", "é", false, true},
		{"a*c", "abbbc", false, true},
		{"a*c", "abbbd", false, false},
		{"*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false, false},
		{"a.c", "abc", false, false},
		{"[ab]", "a", false, false},
		{"(x)+", "(x)+", false, true},
		// No escape, as in Ditto: a backslash is itself, '*' and '?' stay wildcards.
		{`a\*`, "a*", false, false},
		{`a\*`, `a\x`, false, true},
		{`\?`, `\?`, false, true},
		{`\?`, "?", false, false},
		{`\\`, `\\`, false, true},
		{`\\`, `\`, false, false},
		{`a\`, `a\`, false, true},
		{"ABC", "abc", true, true},
		{"straße", "STRASSE", true, false},
		{"Ǆ*", "ǆx", true, true},
		{"k", "\u212A", true, true},
		{"\xff", "\xff", false, true},
		{"\xff", "\xfe", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.pat+"~"+tt.s, func(t *testing.T) {
			if got := like(tt.pat, tt.s, tt.fold); got != tt.want {
				t.Fatalf("like(%q, %q, %v) = %v, want %v", tt.pat, tt.s, tt.fold, got, tt.want)
			}
		})
	}
	t.Run("pathological is bounded", func(t *testing.T) {
		pat := strings.Repeat("*a", 2000) + "b"
		s := strings.Repeat("a", 20000)
		if like(pat, s, false) {
			t.Fatal("matched")
		}
	})
}

func TestMatchAllocs(t *testing.T) {
	doc := mustThing(t)
	n := mustParse(t, benchRQL)
	env := Env{Now: time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)}
	if !Match(n, doc, env) {
		t.Fatal("benchmark expression does not match")
	}
	if allocs := testing.AllocsPerRun(100, func() { Match(n, doc, env) }); allocs != 0 {
		t.Fatalf("Match allocates %.0f times per run, want 0", allocs)
	}
}

const benchRQL = `and(eq(thingId,"org.eclipse:car-1"),gt(_revision,10),or(like(attributes/model,"Speed*"),eq(attributes/electric,false)),in(attributes/tags,"slow","fast"),ne(features/*/properties/temp,90),exists(features/lamp/properties/on),not(empty(attributes/rooms/room)),lt(_created,"2025"))`

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(benchRQL); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	doc := mustThing(b)
	n := mustParse(b, benchRQL)
	env := Env{Now: time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)}
	b.ReportAllocs()
	for b.Loop() {
		if !Match(n, doc, env) {
			b.Fatal("no match")
		}
	}
}

func BenchmarkLikePathological(b *testing.B) {
	pat := strings.Repeat("*a", 100) + "b"
	s := strings.Repeat("a", 1000)
	b.ReportAllocs()
	for b.Loop() {
		like(pat, s, true)
	}
}

package search

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

var (
	fuzzOnce  sync.Once
	fuzzWorld *world
)

// FuzzSearchQuery runs arbitrary filter and option strings end to end
// against a small index: no panic, a bounded time, and either a
// *ditto.Error or a page no larger than the maximum.
func FuzzSearchQuery(f *testing.F) {
	for _, flt := range testFilters {
		f.Add(flt, "sort(+attributes/count),size(3)")
	}
	f.Add(`eq(attributes/x,"a\u0000")`, "limit(2,2)")
	f.Add(`like(attributes/manufacturer,"\\*?*")`, "sort(-_revision,+thingId)")
	f.Add(`and()`, "cursor(eyJoIjoiIn0)")
	f.Add(`in(features/*/properties/temp,1,2.5e308,-0)`, "sort(+features/lamp)")
	f.Fuzz(func(t *testing.T, filter, options string) {
		fuzzOnce.Do(func() {
			fuzzWorld = newWorld(t)
			fuzzWorld.populate(51, 150)
			fuzzWorld.svc = New(Config{Timeout: 5 * time.Second}, Deps{Source: fuzzWorld.src, Enforcers: fuzzWorld.enfs})
			if err := fuzzWorld.svc.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
		s := fuzzWorld.svc
		start := time.Now()
		for _, subj := range []string{subjAdmin, subjPart} {
			q := Query{Filter: filter, Options: options, Auth: ditto.Auth{Subjects: []string{subj}}}
			p, err := s.Search(context.Background(), q)
			if err != nil {
				if _, ok := err.(*ditto.Error); !ok {
					t.Fatalf("error %T %v is not a *ditto.Error", err, err)
				}
			} else if len(p.Items) > 200 {
				t.Fatalf("%d items", len(p.Items))
			}
			if _, err := s.Count(context.Background(), q); err != nil {
				if _, ok := err.(*ditto.Error); !ok {
					t.Fatalf("count error %T %v", err, err)
				}
			}
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("query took %v", d)
		}
	})
}

// FuzzDecodeBody checks the index's decoder against ditto.DecodeJSON: the
// same document (without special fields) for every object it accepts, an
// error for everything else, and keys that walk without error.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{`{}`, ` {"a":1} `, `{"a":"x\u00e9\n\"","b":[1,-2.5e3,true,null,{}],"_revision":3,"_metadata":{"x":1}}`,
		`{"a":"\xff"}`, `{"a":"\ud83d\ude00 é"}`, `{"a":1,"a":2}`, `{"features":{"f":{"properties":{"p":[{"x":1}]}}}}`,
		`[1]`, `{"a":01}`, `{"a":1}x`, `{"a":"\u00"}`, `{"a":1.}`, `{"a": tru}`,
		`{"_":"\0"}`, `{"_x":{"k\q":1}}`, `{"_x":["\u12"]}`, `{"a":{"_b":"\uZZZZ"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeBody(b)
		v, werr := ditto.DecodeJSON(b)
		want, isObj := v.(map[string]any)
		if werr != nil || !isObj {
			if err == nil {
				t.Fatalf("decodeBody accepted %q", b)
			}
			return
		}
		if err != nil {
			t.Fatalf("decodeBody(%q): %v", b, err)
		}
		for k := range want {
			if isSpecial([]byte(k)) {
				delete(want, k)
			}
		}
		if !bytes.Equal(ditto.EncodeJSON(want), ditto.EncodeJSON(got)) {
			t.Fatalf("decodeBody(%q) = %s, want %s", b, ditto.EncodeJSON(got), ditto.EncodeJSON(want))
		}
		x := newIndex()
		if _, err := x.keysOf(&doc{id: "ns:x", raw: b}, true); err != nil {
			t.Fatalf("keysOf(%q): %v", b, err)
		}
	})
}

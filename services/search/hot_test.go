package search

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// keyDump renders every key of x as "path type key" -> the IDs of the
// things holding it, sorted.
func keyDump(x *index) map[string][]string {
	out := map[string][]string{}
	for path, f := range x.fields {
		f.vals.Ascend(func(e *entry) bool {
			var ids []string
			for s := range e.all() {
				ids = append(ids, x.docs[s].id)
			}
			slices.Sort(ids)
			out[fmt.Sprintf("%s %d %q", path, e.t, e.s)] = ids
			return true
		})
	}
	return out
}

// TestHotEntriesMatchRebuild updates, deletes and re-creates things with
// revisions and modification times that many things share (the entries a
// document keeps for them, doc.hot, are then shared and outlive some of
// their holders): the keys of the index must be those of an index built
// from the final documents alone.
func TestHotEntriesMatchRebuild(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	x := newIndex()
	const n = 300
	live := map[string]thing{}
	for step := range 20000 {
		id := fmt.Sprintf("ns:t-%d", r.IntN(n))
		old, ok := live[id]
		switch {
		case ok && r.IntN(10) == 0:
			x.remove(id)
			delete(live, id)
		default:
			rev := int64(1)
			if ok {
				rev = old.rev + 1
			}
			// A few distinct times and values: entries shared by many
			// things, kept alive and dropped as they move on.
			mod := loadStamp(step / 50)
			th := thing{id: id, policyID: "ns:p", rev: rev, created: loadStamp(0), modified: mod,
				raw: loadThing(r.IntN(5), r.IntN(8))}
			if r.IntN(20) == 0 {
				th.modified = "" // no _modified key at all
			}
			if err := x.upsert(th); err != nil {
				t.Fatal(err)
			}
			live[id] = th
		}
	}
	fresh := newIndex()
	for _, th := range live {
		if err := fresh.upsert(th); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(keyDump(fresh), keyDump(x)); diff != "" {
		t.Fatalf("keys differ (-rebuilt +incremental):\n%s", diff)
	}
	if x.entries != fresh.entries || x.things != fresh.things || x.things != len(live) {
		t.Fatalf("entries %d things %d, rebuilt: entries %d things %d, live %d",
			x.entries, x.things, fresh.entries, fresh.things, len(live))
	}
	for id, th := range live {
		if d := x.byID(id); d == nil || d.rev != th.rev {
			t.Fatalf("byID(%s) = %v, want revision %d", id, d, th.rev)
		}
	}
}

// TestEscapedSpecialMembers: a thing's JSON may spell a special member
// with an escape ("\u005frevision" is "_revision"); it is skipped as the
// plain one is, so the record's revision and modification time stay the
// only keys of those fields and updates keep the index exact.
func TestEscapedSpecialMembers(t *testing.T) {
	x := newIndex()
	raw := []byte(`{"\u005frevision":7,"\u005fmodified":"b","\u0074hingId":"ns:other","attributes":{"a":1}}`)
	for rev := int64(5); rev <= 8; rev++ {
		th := thing{id: "ns:t", policyID: "ns:p", rev: rev, created: "c", modified: fmt.Sprintf("m%d", rev), raw: raw}
		if err := x.upsert(th); err != nil {
			t.Fatal(err)
		}
	}
	fresh := newIndex()
	if err := fresh.upsert(thing{id: "ns:t", policyID: "ns:p", rev: 8, created: "c", modified: "m8", raw: raw}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(keyDump(fresh), keyDump(x)); diff != "" {
		t.Fatalf("keys differ (-rebuilt +incremental):\n%s", diff)
	}
	for _, k := range []string{`_revision 4 "` + numStr(7) + `"`, `_modified 5 "b"`, `thingId 5 "ns:other"`} {
		if _, ok := keyDump(x)[k]; ok {
			t.Errorf("the JSON's own special member is indexed: %s", k)
		}
	}
	m, err := decodeBody(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m["_revision"]; ok {
		t.Errorf("decodeBody kept the escaped special member: %v", m)
	}
	x.remove("ns:t")
	if x.entries != 0 || len(x.fields) != 0 {
		t.Fatalf("after remove: %d entries, fields %v", x.entries, slices.Collect(maps.Keys(x.fields)))
	}
}

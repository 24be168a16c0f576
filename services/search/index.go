package search

import (
	"cmp"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/google/btree"

	"github.com/dittonode/dittonode/ditto"
)

// Key types, in the order they sort inside a field's B-tree.
const (
	tPresent uint8 = iota // the path exists (any value)
	tNull
	tBool
	tNum
	tStr
)

// vkey is a typed index key. Numbers keep their float64 value (n), booleans
// 0 or 1 in n, strings s.
type vkey struct {
	t uint8
	n float64
	s string
}

func cmpKey(a, b vkey) int {
	if c := cmp.Compare(a.t, b.t); c != 0 {
		return c
	}
	if c := cmp.Compare(a.n, b.n); c != 0 {
		return c
	}
	return strings.Compare(a.s, b.s)
}

// numKey returns the float64 key of a JSON number. Out-of-range numbers
// become ±Inf, as rql compares them.
func numKey(s string) vkey {
	f, _ := strconv.ParseFloat(s, 64)
	return vkey{t: tNum, n: f}
}

// entry is one key of a field with the sorted slots of the things that
// hold it.
type entry struct {
	k    vkey
	post []uint32
}

func lessEntry(a, b *entry) bool { return cmpKey(a.k, b.k) < 0 }

// field is the index of one path ("attributes/location/floor",
// "features/*/properties/on"): its keys in order.
type field struct {
	path string
	vals *btree.BTreeG[*entry]
}

func (f *field) get(k vkey) *entry {
	e, _ := f.vals.Get(&entry{k: k})
	return e
}

// dkey is one key a document contributes: the field and the key.
type dkey struct {
	f *field
	k vkey
}

// doc is one indexed thing. A doc is immutable once published in the index:
// an update replaces it, so queries may use it without the lock.
type doc struct {
	id       string
	ns       string
	policyID string
	rev      int64
	created  string
	modified string
	slot     uint32
	// full is the thing with its special fields, as rql sees it. Read-only.
	full map[string]any
	raw  int // size of the thing JSON it came from
}

// index is the whole search index. It is not safe for concurrent use; the
// Service guards it.
type index struct {
	fields map[string]*field
	docs   []*doc // by slot; nil for free slots
	free   []uint32
	byID   map[string]*doc
	ids    *btree.BTreeG[*doc]
	// entries counts the (field, key, slot) postings.
	entries int
	rawSize int
	// pivot is the search key of writers (who hold the write lock), so
	// lookups while indexing do not allocate.
	pivot entry
}

func lessDocID(a, b *doc) bool { return a.id < b.id }

func newIndex() *index {
	return &index{
		fields: map[string]*field{},
		byID:   map[string]*doc{},
		ids:    btree.NewG(32, lessDocID),
	}
}

// thing is one state to index: a decoded thing (without special fields)
// plus what the special fields come from.
type thing struct {
	id, policyID      string
	rev               int64
	created, modified string
	body              map[string]any
	raw               int
}

// upsert indexes t, replacing the thing's previous document.
func (x *index) upsert(t thing) {
	old := x.byID[t.id]
	d := &doc{id: t.id, policyID: t.policyID, rev: t.rev, created: t.created, modified: t.modified, raw: t.raw}
	if eid, ok := ditto.ParseEntityID(t.id); ok {
		d.ns = eid.Namespace
	}
	full := t.body
	if full == nil {
		full = map[string]any{}
	}
	full["thingId"] = t.id
	if t.policyID != "" {
		full["policyId"] = t.policyID
	} else {
		delete(full, "policyId")
	}
	full["_namespace"] = d.ns
	full["_revision"] = json.Number(strconv.FormatInt(t.rev, 10))
	if t.created != "" {
		full["_created"] = t.created
	}
	if t.modified != "" {
		full["_modified"] = t.modified
	}
	d.full = full
	keys := x.keysOf(full)
	if old != nil {
		// The old keys are recomputed rather than stored: updates are rarer
		// than the memory a stored key list costs per thing.
		d.slot = old.slot
		x.rawSize -= old.raw
		x.diff(d.slot, x.keysOf(old.full), keys)
	} else {
		d.slot = x.allocSlot()
		for _, k := range keys {
			x.add(k, d.slot)
		}
	}
	x.rawSize += d.raw
	x.docs[d.slot] = d
	x.byID[d.id] = d
	x.ids.ReplaceOrInsert(d)
}

// remove drops the thing with the given ID.
func (x *index) remove(id string) {
	d := x.byID[id]
	if d == nil {
		return
	}
	for _, k := range x.keysOf(d.full) {
		x.del(k, d.slot)
	}
	x.docs[d.slot] = nil
	x.free = append(x.free, d.slot)
	x.rawSize -= d.raw
	delete(x.byID, id)
	x.ids.Delete(d)
}

func (x *index) allocSlot() uint32 {
	if n := len(x.free); n > 0 {
		s := x.free[n-1]
		x.free = x.free[:n-1]
		return s
	}
	x.docs = append(x.docs, nil)
	return uint32(len(x.docs) - 1)
}

// diff moves slot from the old keys to the new ones, touching only the keys
// that changed. Both lists are sorted by cmpDKey.
func (x *index) diff(slot uint32, old, cur []dkey) {
	i, j := 0, 0
	for i < len(old) || j < len(cur) {
		switch {
		case j == len(cur):
			x.del(old[i], slot)
			i++
		case i == len(old):
			x.add(cur[j], slot)
			j++
		default:
			c := cmpDKey(old[i], cur[j])
			switch {
			case c < 0:
				x.del(old[i], slot)
				i++
			case c > 0:
				x.add(cur[j], slot)
				j++
			default:
				i++
				j++
			}
		}
	}
}

func cmpDKey(a, b dkey) int {
	if c := strings.Compare(a.f.path, b.f.path); c != 0 {
		return c
	}
	return cmpKey(a.k, b.k)
}

// lookup is field.get for writers.
func (x *index) lookup(f *field, k vkey) *entry {
	x.pivot.k = k
	e, _ := f.vals.Get(&x.pivot)
	x.pivot.k = vkey{}
	return e
}

func (x *index) add(k dkey, slot uint32) {
	e := x.lookup(k.f, k.k)
	if e == nil {
		e = &entry{k: k.k}
		k.f.vals.ReplaceOrInsert(e)
	}
	e.post = insertSlot(e.post, slot)
	x.entries++
}

func (x *index) del(k dkey, slot uint32) {
	e := x.lookup(k.f, k.k)
	if e == nil {
		return
	}
	e.post = removeSlot(e.post, slot)
	x.entries--
	if len(e.post) == 0 {
		k.f.vals.Delete(e)
		if k.f.vals.Len() == 0 {
			delete(x.fields, k.f.path)
		}
	}
}

// fieldFor returns the field of path, creating it.
func (x *index) fieldFor(path string) *field {
	f := x.fields[path]
	if f == nil {
		f = &field{path: path, vals: btree.NewG(8, lessEntry)}
		x.fields[path] = f
	}
	return f
}

// keysOf returns the sorted, de-duplicated keys of a thing document.
func (x *index) keysOf(full map[string]any) []dkey {
	w := keyWalker{x: x, keys: make([]dkey, 0, 32)}
	for k, v := range full {
		w.value(k, v, false)
		if k == "features" {
			if feats, ok := v.(map[string]any); ok {
				for _, fv := range feats {
					w.value("features/*", fv, false)
				}
			}
		}
	}
	slices.SortFunc(w.keys, cmpDKey)
	return slices.CompactFunc(w.keys, func(a, b dkey) bool { return cmpDKey(a, b) == 0 })
}

type keyWalker struct {
	x    *index
	keys []dkey
}

// value records the keys of v at path. inArray is true for the elements of
// an array, whose presence is the array's.
func (w *keyWalker) value(path string, v any, inArray bool) {
	f := w.x.fieldFor(path)
	if !inArray {
		w.keys = append(w.keys, dkey{f, vkey{t: tPresent}})
	}
	switch t := v.(type) {
	case nil:
		w.keys = append(w.keys, dkey{f, vkey{t: tNull}})
	case bool:
		n := 0.0
		if t {
			n = 1
		}
		w.keys = append(w.keys, dkey{f, vkey{t: tBool, n: n}})
	case json.Number:
		w.keys = append(w.keys, dkey{f, numKey(string(t))})
	case string:
		w.keys = append(w.keys, dkey{f, vkey{t: tStr, s: t}})
	case map[string]any:
		for k, c := range t {
			w.value(path+"/"+k, c, false)
		}
	case []any:
		for _, e := range t {
			w.value(path, e, true)
		}
	}
}

// Stats describes the size of the index.
type Stats struct {
	// Things is the number of indexed things.
	Things int `json:"things"`
	// Fields is the number of distinct indexed paths.
	Fields int `json:"fields"`
	// Keys is the number of distinct (path, value) keys.
	Keys int `json:"keys"`
	// Entries is the number of (path, value, thing) postings.
	Entries int `json:"entries"`
	// IndexBytes approximates the memory of the index structures (fields,
	// keys, postings, per-thing key lists), without the decoded documents.
	IndexBytes int `json:"indexBytes"`
	// RawJSONBytes is the size of the things' JSON as received.
	RawJSONBytes int `json:"rawJsonBytes"`
}

func (x *index) stats() Stats {
	st := Stats{Things: len(x.byID), Fields: len(x.fields), Entries: x.entries, RawJSONBytes: x.rawSize}
	const (
		fieldCost = 96 // map slot, field struct, B-tree root
		keyCost   = 72 // entry, B-tree item, slice header
		docCost   = 160
	)
	b := 0
	for p, f := range x.fields {
		b += fieldCost + len(p)
		st.Keys += f.vals.Len()
		f.vals.Ascend(func(e *entry) bool {
			b += keyCost + 4*cap(e.post)
			return true
		})
	}
	b += docCost * len(x.byID)
	st.IndexBytes = b
	return st
}

package search

import (
	"cmp"
	"encoding/binary"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/google/btree"

	"github.com/dittonode/dittonode/ditto"
)

// Key types, in the order they sort inside a field's B-tree.
const (
	tPresent uint8 = iota // the path exists (any value)
	tIrr                  // the value is an object or an array, or lies in one
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
	switch {
	case a.t != b.t:
		return cmp.Compare(a.t, b.t)
	case a.n < b.n:
		return -1
	case a.n > b.n:
		return 1
	case a.n != b.n: // NaN: ordered as cmp.Compare orders it
		return cmp.Compare(a.n, b.n)
	}
	return strings.Compare(a.s, b.s)
}

// numKey returns the float64 key of a JSON number. Out-of-range numbers
// become ±Inf, as rql compares them.
func numKey(s string) vkey {
	f, _ := strconv.ParseFloat(s, 64)
	return vkey{t: tNum, n: f}
}

// entry is one key of a field with the slots of the things that hold it
// (posting.go): the slot one while more is nil, else the posting more. The
// key is the type t and s: a string key's own string, a number's or a
// boolean's value in numStr's order-preserving form, nothing for the other
// types. An index holds several entries per thing, so they are kept to 32
// bytes (TestEntrySize): a float64 field would take them to 48.
type entry struct {
	t    uint8
	one  uint32
	s    string
	more *posting
}

// key returns the entry's key.
func (e *entry) key() vkey {
	if e.t == tNum || e.t == tBool {
		return vkey{t: e.t, n: strNum(e.s)}
	}
	return vkey{t: e.t, s: e.s}
}

// keyStr is the s of k's entry.
func keyStr(k vkey) string {
	if k.t == tNum || k.t == tBool {
		return numStr(k.n)
	}
	return k.s
}

// pivotOf returns an entry with key k to search a field's B-tree with.
func pivotOf(k vkey) *entry { return &entry{t: k.t, s: keyStr(k)} }

// numStr encodes f in 8 bytes whose bytewise order is cmpKey's order of
// numbers: NaN first (as cmp.Compare orders it), then -Inf to +Inf, with -0
// equal to 0.
func numStr(f float64) string {
	var u uint64
	switch {
	case f != f: // NaN
	case f == 0:
		u = 1 << 63 // +0, also for -0
	default:
		u = math.Float64bits(f)
		if u>>63 == 1 {
			u = ^u
		} else {
			u |= 1 << 63
		}
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], u)
	return string(b[:])
}

// strNum decodes numStr's form.
func strNum(s string) float64 {
	if len(s) != 8 {
		return math.NaN()
	}
	u := be64(s)
	if u == 0 {
		return math.NaN()
	}
	if u>>63 == 1 {
		u &^= 1 << 63
	} else {
		u = ^u
	}
	return math.Float64frombits(u)
}

// be64 reads numStr's 8 bytes as the big-endian number they are (one load).
func be64(s string) uint64 {
	_ = s[7]
	return uint64(s[7]) | uint64(s[6])<<8 | uint64(s[5])<<16 | uint64(s[4])<<24 |
		uint64(s[3])<<32 | uint64(s[2])<<40 | uint64(s[1])<<48 | uint64(s[0])<<56
}

// lessEntry orders entries as cmpKey orders their keys: numStr keeps the
// order of numbers, so their 8 bytes compare as integers, and strings
// compare as strings. It runs at every step of every B-tree descent.
func lessEntry(a, b *entry) bool {
	if a.t != b.t {
		return a.t < b.t
	}
	if len(a.s) == 8 && len(b.s) == 8 && (a.t == tNum || a.t == tBool) {
		return be64(a.s) < be64(b.s)
	}
	return a.s < b.s
}

// field is the index of one path ("attributes/location/floor",
// "features/*/properties/on"): its keys in order. Paths are interned: every
// key of every thing refers to its field, and the path string is held once.
type field struct {
	id   uint32 // orders keys in diffs; never reused
	path string
	vals *btree.BTreeG[*entry]
	seen uint64 // keyWalker.gen of the last walk that found the path
	// hot is 1 + the index in doc.hot of the entry a document keeps for
	// this field's value (_revision, _modified: they change with every
	// write), 0 for the other fields.
	hot uint8
}

// hotField returns the field.hot of path.
func hotField(path string) uint8 {
	switch path {
	case "_revision":
		return 1
	case "_modified":
		return 2
	}
	return 0
}

func (f *field) get(k vkey) *entry {
	e, _ := f.vals.Get(pivotOf(k))
	return e
}

// dkey is one key a document contributes: the field and the key.
type dkey struct {
	f *field
	k vkey
}

func cmpDKey(a, b dkey) int {
	if c := cmp.Compare(a.f.id, b.f.id); c != 0 {
		return c
	}
	return cmpKey(a.k, b.k)
}

// doc is one indexed thing: its record fields and its JSON as received.
// The JSON is the immutable slice the things store holds (ThingState.JSON,
// Signal.State), so keeping it costs no memory of its own; the document is
// decoded from it only to verify a candidate. A doc is immutable once
// published in the index: an update replaces it, so queries may use it
// without the lock.
type doc struct {
	id       string
	nsLen    uint16 // the namespace is id[:nsLen]
	policyID string
	rev      int64
	created  string
	modified string
	raw      []byte
	slot     uint32
	// odd is keyWalker.odd of raw: its keys say more than its decoded
	// document, so exact plans verify it and items are not copied from
	// raw.
	odd bool
	// hot holds the entries of the document's _revision and _modified
	// values (field.hot), which the next update of the thing leaves: its
	// indexer then needs no B-tree descent to find them. An entry stays in
	// its tree while a document holds its key, so these are never stale,
	// as a document has exactly one value key in each of the two fields:
	// the record's (keyWalker.special; the JSON's own special members,
	// escaped or not, are skipped).
	hot [2]*entry
}

// ns returns the thing's namespace.
func (d *doc) ns() string { return d.id[:d.nsLen] }

// full decodes the thing as rql sees it: the JSON plus the special fields.
// The result is fresh and owned by the caller.
func (d *doc) full() (map[string]any, error) {
	m, err := decodeBody(d.raw)
	if err != nil {
		return nil, err
	}
	m["thingId"] = d.id
	if d.policyID != "" {
		m["policyId"] = d.policyID
	}
	m["_namespace"] = d.ns()
	m["_revision"] = jsonNumber(d.rev)
	if d.created != "" {
		m["_created"] = d.created
	}
	if d.modified != "" {
		m["_modified"] = d.modified
	}
	return m, nil
}

// index is the whole search index. It is not safe for concurrent use; the
// Service guards it. Things are numbered by dense slots (reused after a
// delete), and postings hold slots.
type index struct {
	fields map[string]*field
	nextID uint32
	docs   []*doc // by slot; nil for free slots
	free   []uint32
	things int
	// entries counts the (field, key, slot) postings.
	entries int
	// odd holds the slots of things whose JSON the keys describe only
	// loosely (keyWalker.odd): exact plans verify them anyway.
	odd     []uint32
	rawSize int
	// pivot is the search key of writers (who hold the write lock), so
	// lookups while indexing do not allocate; w and old are their reused
	// key buffers.
	pivot entry
	w     keyWalker
	old   []dkey
	// prev and cur are the documents a writer moves keys from and to
	// (del, add), for their hot entries; nil when there is none.
	prev, cur *doc
}

func newIndex() *index {
	x := &index{fields: map[string]*field{}}
	x.w.x = x
	return x
}

// byID returns the thing with the given ID: the thingId field is the ID
// index.
func (x *index) byID(id string) *doc {
	f := x.fields["thingId"]
	if f == nil {
		return nil
	}
	e := x.lookup(f, tStr, id)
	if e == nil || e.size() == 0 {
		return nil
	}
	return x.docs[e.first()]
}

// thing is one state to index.
type thing struct {
	id, policyID      string
	rev               int64
	created, modified string
	raw               []byte
}

// upsert indexes t, replacing the thing's previous document. It returns an
// error, and leaves the index unchanged, when t's JSON is not an object.
func (x *index) upsert(t thing) error { return x.replace(t, x.byID(t.id)) }

// replace is upsert for a caller that looked up the thing's current
// document (old, nil for none) already.
func (x *index) replace(t thing, old *doc) error {
	d := &doc{id: t.id, policyID: t.policyID, rev: t.rev, created: t.created, modified: t.modified, raw: t.raw}
	if old != nil && old.created == t.created {
		// The index keys hold the old document's string: keep one copy
		// (the source formats the time afresh for every write).
		d.created = old.created
	}
	if eid, ok := ditto.ParseEntityID(t.id); ok && len(eid.Namespace) <= math.MaxUint16 {
		d.nsLen = uint16(len(eid.Namespace))
	}
	keys, err := x.keysOf(d, old != nil)
	if err != nil {
		return err
	}
	d.odd = x.w.odd
	x.prev, x.cur = old, d
	defer func() { x.prev, x.cur = nil, nil }()
	if old != nil {
		// The old keys are recomputed from the old JSON rather than stored:
		// updates are rarer than the memory a stored key list costs.
		x.old = append(x.old[:0], keys...)
		cur := x.old
		prev, err := x.keysOf(old, true)
		if err != nil {
			panic("search: indexed JSON no longer scans: " + err.Error())
		}
		d.slot = old.slot
		x.rawSize -= len(old.raw)
		x.diff(d.slot, prev, cur)
	} else {
		d.slot = x.allocSlot()
		x.things++
		for _, k := range keys {
			x.add(k, d.slot)
		}
	}
	x.rawSize += len(d.raw)
	x.docs[d.slot] = d
	if d.odd {
		x.odd = insertSlot(x.odd, d.slot)
	} else {
		x.odd = removeSlot(x.odd, d.slot)
	}
	return nil
}

// remove drops the thing with the given ID.
func (x *index) remove(id string) {
	d := x.byID(id)
	if d == nil {
		return
	}
	keys, err := x.keysOf(d, false)
	if err != nil {
		panic("search: indexed JSON no longer scans: " + err.Error())
	}
	x.prev = d
	for _, k := range keys {
		x.del(k, d.slot)
	}
	x.prev = nil
	x.docs[d.slot] = nil
	x.odd = removeSlot(x.odd, d.slot)
	x.free = append(x.free, d.slot)
	x.rawSize -= len(d.raw)
	x.things--
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
				if h := cur[j].f.hot; h != 0 && cur[j].k.t != tPresent {
					x.cur.hot[h-1] = x.prev.hot[h-1]
				}
				i++
				j++
			}
		}
	}
}

// lookup returns f's entry with type t and s (entry), if any. It is
// field.get for writers: it uses the writer's pivot, so never call it
// under the read lock.
func (x *index) lookup(f *field, t uint8, s string) *entry {
	x.pivot.t, x.pivot.s = t, s
	e, _ := f.vals.Get(&x.pivot)
	x.pivot.s = ""
	return e
}

// add puts slot in k's posting, the slot of the document x.cur.
func (x *index) add(k dkey, slot uint32) {
	s := keyStr(k.k)
	e := x.lookup(k.f, k.k.t, s)
	if e == nil {
		e = &entry{t: k.k.t, s: s, one: slot}
		k.f.vals.ReplaceOrInsert(e)
		x.entries++
	} else if e.addSlot(slot, len(x.docs)) {
		x.entries++
	}
	if h := k.f.hot; h != 0 && k.k.t != tPresent && x.cur != nil {
		x.cur.hot[h-1] = e
	}
}

// del takes slot, the slot of the document x.prev, out of k's posting.
func (x *index) del(k dkey, slot uint32) {
	var e *entry
	if h := k.f.hot; h != 0 && k.k.t != tPresent && x.prev != nil && x.prev.hot[h-1] != nil {
		e = x.prev.hot[h-1]
	} else {
		e = x.lookup(k.f, k.k.t, keyStr(k.k))
	}
	if e == nil {
		return
	}
	if e.more == nil && e.one == slot {
		// The thing's own key (an ID, a timestamp, a counter's value):
		// dropped without making the empty posting removeSlot would.
		x.entries--
		k.f.vals.Delete(e)
		if k.f.vals.Len() == 0 {
			delete(x.fields, k.f.path)
		}
		return
	}
	if e.removeSlot(slot, len(x.docs)) {
		x.entries--
	}
	if e.size() == 0 {
		k.f.vals.Delete(e)
		if k.f.vals.Len() == 0 {
			delete(x.fields, k.f.path)
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
	// keys, postings, per-thing records), without the things' JSON.
	IndexBytes int `json:"indexBytes"`
	// RawJSONBytes is the size of the things' JSON the index refers to; it
	// is shared with the things store, not a copy.
	RawJSONBytes int `json:"rawJsonBytes"`
}

func (x *index) stats() Stats {
	st := Stats{Things: x.things, Fields: len(x.fields), Entries: x.entries, RawJSONBytes: x.rawSize}
	const (
		fieldCost = 96 // map slot, field struct, B-tree root
		keyCost   = 44 // entry, B-tree item
		docCost   = 128
	)
	b := 8*cap(x.docs) + 4*cap(x.free)
	for p, f := range x.fields {
		b += fieldCost + len(p)
		st.Keys += f.vals.Len()
		f.vals.Ascend(func(e *entry) bool {
			b += keyCost
			if p := e.more; p != nil {
				b += 32 + 4*cap(p.post)
				if p.dense != nil {
					b += 32 + 8*cap(p.dense.bits)
				}
			}
			if p != "thingId" { // the thingId keys are the documents' IDs
				b += len(e.s)
			}
			return true
		})
	}
	b += docCost * x.things
	st.IndexBytes = b
	return st
}

// compactPostings trims the spare capacity appends left in postings (after
// a rebuild, when no posting grows soon).
func (x *index) compactPostings() {
	for _, f := range x.fields {
		f.vals.Ascend(func(e *entry) bool {
			if p := e.more; p != nil && cap(p.post)-len(p.post) > 8 {
				p.post = slices.Clip(slices.Clone(p.post))
			}
			return true
		})
	}
}

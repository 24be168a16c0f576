package search

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/google/btree"
)

// keyWalker collects the index keys of one thing straight from its JSON
// bytes, without decoding a document. Its buffers are reused by the
// index's writer.
type keyWalker struct {
	x       *index
	s       scanner
	path    []byte
	keys    []dkey
	created []*field // fields created by this walk, dropped again on error
	// gen numbers the walks; field.seen holds the walk that last found the
	// field present, so a path found twice in one walk is noticed.
	gen uint64
	// odd is set when the keys of the walked JSON may say more than Match
	// sees in its decoded document: a key found twice (duplicate object
	// keys, or a key holding '/' that collides with a nested path).
	odd   bool
	wild  bool   // walking features/*
	polID string // the record's policy ID
}

// keysOf returns the keys of d: its special fields and every path of its
// JSON. With sorted they are sorted by cmpDKey and de-duplicated (for
// diff); else they may repeat. The slice is reused by the next call.
func (x *index) keysOf(d *doc, sorted bool) ([]dkey, error) {
	w := &x.w
	w.keys, w.created = w.keys[:0], w.created[:0]
	w.gen++
	w.odd, w.polID = false, d.policyID
	w.special("thingId", vkey{t: tStr, s: d.id})
	if d.policyID != "" {
		w.special("policyId", vkey{t: tStr, s: d.policyID})
	}
	w.special("_namespace", vkey{t: tStr, s: d.ns()})
	w.special("_revision", vkey{t: tNum, n: float64(d.rev)})
	if d.created != "" {
		w.special("_created", vkey{t: tStr, s: d.created})
	}
	if d.modified != "" {
		w.special("_modified", vkey{t: tStr, s: d.modified})
	}
	if err := w.body(d.raw); err != nil {
		for _, f := range w.created {
			if f.vals.Len() == 0 {
				delete(x.fields, f.path)
			}
		}
		return nil, err
	}
	if sorted {
		slices.SortFunc(w.keys, cmpDKey)
		w.keys = slices.CompactFunc(w.keys, func(a, b dkey) bool { return cmpDKey(a, b) == 0 })
	}
	return w.keys, nil
}

func (w *keyWalker) special(name string, k vkey) {
	w.path = append(w.path[:0], name...)
	f := w.field()
	w.keys = append(w.keys, dkey{f, vkey{t: tPresent}}, dkey{f, k})
}

// field returns the field of the current path, creating it.
func (w *keyWalker) field() *field {
	if f := w.x.fields[string(w.path)]; f != nil {
		return f
	}
	f := newField(w.x, string(w.path))
	w.created = append(w.created, f)
	return f
}

// body walks a thing's JSON object, skipping the special fields it may
// carry (they come from the record). The members of "features" are walked
// a second time under "features/*".
func (w *keyWalker) body(b []byte) error {
	w.s = scanner{b: b}
	s := &w.s
	if s.peek() != '{' {
		return errBadJSON
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return s.end()
	}
	for s.err == nil {
		w.path = w.path[:0]
		w.key()
		if !s.expect(':') {
			break
		}
		// w.path is the decoded key: "\u005frevision" is "_revision".
		switch k := w.path; {
		case isSpecial(k), w.fromRecord(k):
			s.skip(1)
		case string(k) == "features" && s.peek() == '{':
			start := s.i
			w.value(false, false, 1)
			end := s.i
			s.i = start + 1
			w.features()
			s.i = end
		default:
			w.value(false, false, 1)
		}
		if s.peek() == ',' {
			s.i++
			continue
		}
		s.expect('}')
		break
	}
	return s.end()
}

// fromRecord reports a top-level member whose value Match takes from the
// record instead (doc.full): thingId always, policyId when the record has
// one. Indexing the member too would list the thing under a value its
// document does not show.
func (w *keyWalker) fromRecord(k []byte) bool {
	return string(k) == "thingId" || string(k) == "policyId" && w.polID != ""
}

// key reads an object key and appends it, decoded, to the path.
func (w *keyWalker) key() {
	s := &w.s
	start := s.i
	raw, plain := s.rawString()
	if plain {
		if bytes.IndexByte(raw, '/') >= 0 {
			w.odd = true
		}
		w.path = append(w.path, raw...)
		return
	}
	s.i = start
	k := s.str()
	if strings.IndexByte(k, '/') >= 0 {
		w.odd = true
	}
	w.path = append(w.path, k...)
}

// features walks the members of the features object (the scanner is just
// after its '{') under "features/*".
func (w *keyWalker) features() {
	s := &w.s
	if s.peek() == '}' {
		s.i++
		return
	}
	for s.err == nil {
		s.rawString()
		if !s.expect(':') {
			return
		}
		w.path = append(w.path[:0], "features/*"...)
		// Several features meet at the same wildcard paths.
		w.wild = true
		w.value(false, false, 2)
		w.wild = false
		if s.peek() == ',' {
			s.i++
			continue
		}
		s.expect('}')
		return
	}
}

// value records the keys of the value at the current path. elem is true
// for the elements of an array, whose presence is the array's; via is true
// inside an array, where a path holds no single value (tIrr).
func (w *keyWalker) value(elem, via bool, depth int) {
	s := &w.s
	if depth > maxDepth {
		s.fail()
		return
	}
	f := w.field()
	if !elem {
		if f.seen == w.gen && !via && !w.wild {
			w.odd = true // the same path twice outside arrays
		}
		f.seen = w.gen
		w.keys = append(w.keys, dkey{f, vkey{t: tPresent}})
	}
	if via {
		w.keys = append(w.keys, dkey{f, vkey{t: tIrr}})
	}
	switch c := s.peek(); {
	case c == '{':
		if !via {
			w.keys = append(w.keys, dkey{f, vkey{t: tIrr}})
		}
		s.i++
		if s.peek() == '}' {
			s.i++
			return
		}
		n := len(w.path)
		for s.err == nil {
			w.path = append(w.path, '/')
			w.key()
			if !s.expect(':') {
				return
			}
			w.value(false, via, depth+1)
			w.path = w.path[:n]
			if s.peek() == ',' {
				s.i++
				continue
			}
			s.expect('}')
			return
		}
	case c == '[':
		if !via {
			w.keys = append(w.keys, dkey{f, vkey{t: tIrr}})
		}
		s.i++
		if s.peek() == ']' {
			s.i++
			return
		}
		for s.err == nil {
			w.value(true, true, depth+1)
			if s.peek() == ',' {
				s.i++
				continue
			}
			s.expect(']')
			return
		}
	case c == '"':
		w.keys = append(w.keys, dkey{f, vkey{t: tStr, s: s.str()}})
	case c == 't':
		s.literal("true")
		w.keys = append(w.keys, dkey{f, vkey{t: tBool, n: 1}})
	case c == 'f':
		s.literal("false")
		w.keys = append(w.keys, dkey{f, vkey{t: tBool}})
	case c == 'n':
		s.literal("null")
		w.keys = append(w.keys, dkey{f, vkey{t: tNull}})
	case c == '-' || (c >= '0' && c <= '9'):
		n, _ := strconv.ParseFloat(string(s.number()), 64)
		w.keys = append(w.keys, dkey{f, vkey{t: tNum, n: n}})
	default:
		s.fail()
	}
}

// newField creates and registers the field of path.
func newField(x *index, path string) *field {
	f := &field{id: x.nextID, path: path, vals: newValTree(), hot: hotField(path)}
	x.nextID++
	x.fields[path] = f
	return f
}

// jsonNumber is the json.Number of a revision.
func jsonNumber(n int64) json.Number { return json.Number(strconv.FormatInt(n, 10)) }

// valDegree is the B-tree degree of a field's keys: wide nodes keep the
// per-key overhead of large fields (thingId, serial numbers) small, and
// a shallow tree keeps the indexer's lookups few (32 instead of 16: -6 %
// CPU per update in BenchmarkIndexUpdate100k, -0.7 MB for 100k things).
const valDegree = 32

func newValTree() *btree.BTreeG[*entry] { return btree.NewG(valDegree, lessEntry) }

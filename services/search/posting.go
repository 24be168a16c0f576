package search

import (
	"iter"
	"math/bits"
	"slices"
)

// A key's posting is the set of the slots of the things that hold it. A
// single slot (most keys of a field whose value is unique per thing:
// thingId, _modified, a serial number) is held inline in the entry; more
// are a sorted, duplicate-free slice while few; a key that many things
// share (_revision 1, a manufacturer, a model) holds a bitmap over the slot
// space instead, where adding and removing a slot is O(1) rather than a
// memmove of the whole list, and which takes less memory than the list
// once more than one slot in 32 holds the key. The bounds have slack
// between them, so a posting near one does not flip at every write.
//
// denseMin is the smallest list that becomes a bitmap, and at least one
// slot in denseRatio must hold the key. (A variable only so that tests
// can turn most postings into bitmaps.)
var denseMin = 1024

const denseRatio = 64

// dense is a large posting: the set of slots and how many there are.
type dense struct {
	bits bitmap
	n    int
}

// wantDense reports whether a list of n slots among nslots becomes a
// bitmap; wantSparse whether a bitmap of n slots goes back to a list.
func wantDense(n, nslots int) bool  { return n >= denseMin && n >= nslots/denseRatio }
func wantSparse(n, nslots int) bool { return n < denseMin/2 || n < nslots/(4*denseRatio) }

// posting holds the slots of a key that more than one thing holds (or,
// briefly, none): the sorted list post, or dense (then post is nil).
type posting struct {
	post  []uint32
	dense *dense
}

func (p *posting) size() int {
	if p.dense != nil {
		return p.dense.n
	}
	return len(p.post)
}

// size returns how many slots hold e's key.
func (e *entry) size() int {
	if e.more == nil {
		return 1
	}
	return e.more.size()
}

// first returns the lowest slot of a non-empty posting.
func (e *entry) first() uint32 {
	switch {
	case e.more == nil:
		return e.one
	case e.more.dense == nil:
		return e.more.post[0]
	}
	for w, x := range e.more.dense.bits {
		if x != 0 {
			return uint32(w*64 + bits.TrailingZeros64(x))
		}
	}
	panic("search: first of an empty posting")
}

// all yields the slots of e in ascending order. The caller holds the
// index lock while iterating.
func (e *entry) all() iter.Seq[uint32] {
	return func(yield func(uint32) bool) {
		switch {
		case e.more == nil:
			yield(e.one)
		case e.more.dense == nil:
			for _, s := range e.more.post {
				if !yield(s) {
					return
				}
			}
		default:
			for w, x := range e.more.dense.bits {
				for ; x != 0; x &= x - 1 {
					if !yield(uint32(w*64 + bits.TrailingZeros64(x))) {
						return
					}
				}
			}
		}
	}
}

// list returns the slots of e as a sorted slice: the posting itself while
// it is a list of several (read only, valid under the index lock), else a
// fresh one.
func (e *entry) list() []uint32 {
	switch {
	case e.more == nil:
		return []uint32{e.one}
	case e.more.dense == nil:
		return e.more.post
	}
	return e.more.dense.bits.slots()
}

// postingLists collects the postings of entries for their union: the
// single slots of many keys of one thing each go into one list, not a
// list each, and a union of one fresh list is that list.
type postingLists struct {
	lists [][]uint32 // sorted, duplicate-free
	fresh int        // how many of lists were made for the union
	ones  []uint32
}

func (pl *postingLists) add(e *entry) {
	switch {
	case e.more == nil:
		pl.ones = append(pl.ones, e.one)
	case e.more.dense != nil:
		pl.lists = append(pl.lists, e.list())
		pl.fresh++
	default:
		pl.lists = append(pl.lists, e.list())
	}
}

// union returns the sorted union of the postings collected, n being the
// size of the slot space; the caller owns it.
func (pl *postingLists) union(n int) []uint32 {
	if len(pl.ones) > 0 {
		slices.Sort(pl.ones)
		pl.lists = append(pl.lists, slices.Compact(pl.ones)) // a thing may hold several keys
		pl.fresh++
	}
	if len(pl.lists) == 1 && pl.fresh == 1 {
		return pl.lists[0]
	}
	return union(pl.lists, n)
}

// orInto sets the slots of e in b (slots beyond b are ignored).
func (e *entry) orInto(b bitmap) {
	switch {
	case e.more == nil:
		b.set(e.one)
	case e.more.dense == nil:
		for _, s := range e.more.post {
			b.set(s)
		}
	default:
		d := e.more.dense.bits
		for w, x := range d[:min(len(b), len(d))] {
			b[w] |= x
		}
	}
}

// addSlot adds slot s to e, nslots being the size of the slot space; it
// reports whether s was new.
func (e *entry) addSlot(s uint32, nslots int) bool {
	if e.more == nil {
		if e.one == s {
			return false
		}
		e.more = &posting{post: []uint32{min(e.one, s), max(e.one, s)}}
		return true
	}
	p := e.more
	if d := p.dense; d != nil {
		w := int(s >> 6)
		if w >= len(d.bits) {
			d.bits = append(d.bits, make(bitmap, w+1-len(d.bits))...)
		}
		if d.bits[w]&(1<<(s&63)) != 0 {
			return false
		}
		d.bits[w] |= 1 << (s & 63)
		d.n++
		return true
	}
	n := len(p.post)
	p.post = insertSlot(p.post, s)
	if len(p.post) == n {
		return false
	}
	if wantDense(len(p.post), nslots) {
		d := &dense{bits: newBitmap(max(nslots, int(p.post[len(p.post)-1])+1)), n: len(p.post)}
		for _, s := range p.post {
			d.bits.set(s)
		}
		p.post, p.dense = nil, d
	}
	return true
}

// removeSlot removes slot s from e, nslots being the size of the slot
// space; it reports whether s was there. A posting left with one slot
// holds it inline again; one left empty has size 0 (the index then drops
// the entry).
func (e *entry) removeSlot(s uint32, nslots int) bool {
	if e.more == nil {
		if e.one != s {
			return false
		}
		e.more = &posting{}
		return true
	}
	p := e.more
	if d := p.dense; d != nil {
		if !d.bits.has(s) {
			return false
		}
		d.bits.clear(s)
		d.n--
		if wantSparse(d.n, nslots) {
			p.post, p.dense = d.bits.slots(), nil
		}
	} else {
		n := len(p.post)
		if p.post = removeSlot(p.post, s); len(p.post) == n {
			return false
		}
	}
	if p.dense == nil && len(p.post) == 1 {
		e.one, e.more = p.post[0], nil
	}
	return true
}

// Lists are sorted, duplicate-free slices of document slots.

func insertSlot(p []uint32, s uint32) []uint32 {
	if n := len(p); n == 0 || p[n-1] < s {
		return append(p, s)
	}
	i, found := slices.BinarySearch(p, s)
	if found {
		return p
	}
	return slices.Insert(p, i, s)
}

func removeSlot(p []uint32, s uint32) []uint32 {
	i, found := slices.BinarySearch(p, s)
	if !found {
		return p
	}
	p = slices.Delete(p, i, i+1)
	if cap(p) > 64 && len(p) < cap(p)/4 {
		p = slices.Clip(slices.Clone(p))
	}
	return p
}

// union returns the sorted union of postings. Large unions go through a
// bitmap over the slot space (n slots).
func union(lists [][]uint32, n int) []uint32 {
	switch len(lists) {
	case 0:
		return nil
	case 1:
		return slices.Clone(lists[0])
	}
	total := 0
	for _, l := range lists {
		total += len(l)
	}
	if total < 2048 || total < n/64 {
		out := make([]uint32, 0, total)
		for _, l := range lists {
			out = append(out, l...)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	set := newBitmap(n)
	for _, l := range lists {
		for _, s := range l {
			set.set(s)
		}
	}
	return set.slots()
}

// intersect returns the slots in both sorted postings; a is reused.
func intersect(a, b []uint32) []uint32 {
	out := a[:0]
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

// bitmap is a set of slots.
type bitmap []uint64

func newBitmap(n int) bitmap { return make(bitmap, (n+63)/64) }

// slots returns the members of b in ascending order.
func (b bitmap) slots() []uint32 {
	total := 0
	for _, w := range b {
		total += bits.OnesCount64(w)
	}
	out := make([]uint32, 0, total)
	for w, x := range b {
		for ; x != 0; x &= x - 1 {
			out = append(out, uint32(w*64+bits.TrailingZeros64(x)))
		}
	}
	return out
}

// fullBitmap returns the set of the slots 0..n-1.
func fullBitmap(n int) bitmap {
	b := newBitmap(n)
	for i := range b {
		b[i] = ^uint64(0)
	}
	if r := n % 64; r != 0 {
		b[len(b)-1] = 1<<r - 1
	}
	return b
}

func (b bitmap) has(s uint32) bool {
	return int(s>>6) < len(b) && b[s>>6]&(1<<(s&63)) != 0
}

func (b bitmap) set(s uint32) {
	if int(s>>6) < len(b) {
		b[s>>6] |= 1 << (s & 63)
	}
}

func (b bitmap) clear(s uint32) {
	if int(s>>6) < len(b) {
		b[s>>6] &^= 1 << (s & 63)
	}
}

package search

import (
	"math/bits"
	"slices"
)

// Postings are sorted, duplicate-free slices of document slots.

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

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
	set := make([]uint64, (n+63)/64)
	for _, l := range lists {
		for _, s := range l {
			set[s>>6] |= 1 << (s & 63)
		}
	}
	out := make([]uint32, 0, total)
	for w, b := range set {
		for b != 0 {
			i := bits.TrailingZeros64(b)
			out = append(out, uint32(w*64+i))
			b &= b - 1
		}
	}
	return out
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

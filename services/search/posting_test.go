package search

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPostingMatchesSet adds and removes random slots in one posting,
// crossing the list/bitmap bounds both ways, and checks every view of it
// against a plain set after each step.
func TestPostingMatchesSet(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for _, nslots := range []int{3000, 70_000} {
		e := &entry{more: &posting{}} // empty
		ref := map[uint32]bool{}
		wasDense, wasSparseAgain := false, false
		for step := range 40_000 {
			// Grow for a while, then shrink: the posting crosses both bounds.
			grow := (step/10_000)%2 == 0
			s := uint32(r.IntN(nslots))
			add := r.IntN(20) != 0 // 95 %
			if !grow {
				add = r.IntN(20) == 0 // 5 %
			}
			if add {
				if got, want := e.addSlot(s, nslots), !ref[s]; got != want {
					t.Fatalf("step %d: addSlot(%d) = %v, want %v", step, s, got, want)
				}
				ref[s] = true
			} else {
				if got, want := e.removeSlot(s, nslots), ref[s]; got != want {
					t.Fatalf("step %d: removeSlot(%d) = %v, want %v", step, s, got, want)
				}
				delete(ref, s)
			}
			if e.more == nil && len(ref) != 1 {
				t.Fatalf("step %d: inline posting of %d slots", step, len(ref))
			}
			if e.more != nil && e.more.dense != nil {
				wasDense = true
			} else if wasDense {
				wasSparseAgain = true
			}
			if step%97 != 0 {
				continue
			}
			want := make([]uint32, 0, len(ref))
			for s := range ref {
				want = append(want, s)
			}
			slices.Sort(want)
			if e.size() != len(want) || !slices.Equal(e.list(), want) || !slices.Equal(slices.Collect(e.all()), want) {
				t.Fatalf("step %d: size %d, want %d; lists differ", step, e.size(), len(want))
			}
			if len(want) > 0 && e.first() != want[0] {
				t.Fatalf("step %d: first %d, want %d", step, e.first(), want[0])
			}
			b := newBitmap(nslots)
			e.orInto(b)
			if !slices.Equal(b.slots(), want) {
				t.Fatalf("step %d: orInto differs", step)
			}
		}
		if nslots == 3000 && (!wasDense || !wasSparseAgain) {
			t.Fatalf("%d slots: posting never went dense and back (dense %v, back %v)", nslots, wasDense, wasSparseAgain)
		}
	}
}

// TestPostingBitmapGrowsWithSlots adds slots beyond the bitmap made for a
// smaller slot space.
func TestPostingBitmapGrowsWithSlots(t *testing.T) {
	e := &entry{}
	for s := range uint32(denseMin) {
		e.addSlot(s, denseMin)
	}
	if e.more == nil || e.more.dense == nil {
		t.Fatal("a posting of every slot is not a bitmap")
	}
	if !e.addSlot(100_000, 100_001) || e.size() != denseMin+1 || slices.Max(e.list()) != 100_000 {
		t.Fatalf("slot beyond the bitmap: size %d", e.size())
	}
}

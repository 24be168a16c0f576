package search

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

func TestEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(entry{}); n > 32 {
		t.Errorf("an entry takes %d bytes, want at most 32", n)
	}
}

// TestNumStrOrder checks that numStr's bytewise order is cmpKey's order of
// numbers and that strNum reverses it.
func TestNumStrOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	nums := []float64{math.NaN(), math.Inf(-1), -math.MaxFloat64, -1e300, -2.5, -1, -math.SmallestNonzeroFloat64,
		math.Copysign(0, -1), 0, math.SmallestNonzeroFloat64, 1, 1.5, 2, 1e15, 1e300, math.MaxFloat64, math.Inf(1)}
	for range 2000 {
		nums = append(nums, r.NormFloat64()*math.Pow(10, float64(r.IntN(40)-20)), float64(r.Int64N(1<<53)-1<<52))
	}
	for _, a := range nums {
		back := strNum(numStr(a))
		if back != a && !(math.IsNaN(a) && math.IsNaN(back)) {
			t.Errorf("strNum(numStr(%v)) = %v", a, back)
		}
		for _, b := range nums[:40] {
			ka, kb := vkey{t: tNum, n: a}, vkey{t: tNum, n: b}
			want := cmpKey(ka, kb)
			ea, eb := pivotOf(ka), pivotOf(kb)
			got := 0
			switch {
			case lessEntry(ea, eb):
				got = -1
			case lessEntry(eb, ea):
				got = 1
			}
			if got != want {
				t.Errorf("entries of %v and %v compare %d, keys %d", a, b, got, want)
			}
		}
	}
	sorted := slices.Clone(nums)
	slices.SortFunc(sorted, func(a, b float64) int { return cmpKey(vkey{t: tNum, n: a}, vkey{t: tNum, n: b}) })
	for i := 1; i < len(sorted); i++ {
		if numStr(sorted[i-1]) > numStr(sorted[i]) {
			t.Errorf("numStr(%v) sorts after numStr(%v)", sorted[i-1], sorted[i])
		}
	}
}

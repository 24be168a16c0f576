package main

import (
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	tests := []struct {
		name          string
		values        []time.Duration // recorded once each
		p50, p90, p99 time.Duration
		max           time.Duration
	}{
		{name: "empty"},
		{name: "one", values: []time.Duration{5 * time.Millisecond},
			p50: 5 * time.Millisecond, p90: 5 * time.Millisecond, p99: 5 * time.Millisecond, max: 5 * time.Millisecond},
		{name: "exact-small", values: seq(1, 100, 1), p50: 50, p90: 90, p99: 99, max: 100},
		{name: "ms-range", values: seq(time.Millisecond, time.Second, time.Millisecond),
			p50: 500 * time.Millisecond, p90: 900 * time.Millisecond, p99: 990 * time.Millisecond, max: time.Second},
		{name: "clamped", values: []time.Duration{-1, 2 * time.Hour}, p50: 0, p99: maxValue, max: maxValue, p90: maxValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h histogram
			for _, v := range tt.values {
				h.record(v)
			}
			for _, c := range []struct {
				q    float64
				want time.Duration
			}{{0.5, tt.p50}, {0.9, tt.p90}, {0.99, tt.p99}, {1, tt.max}} {
				if got := h.quantile(c.q); !near(got, c.want) {
					t.Errorf("quantile(%v) = %v, want %v ±0.8%%", c.q, got, c.want)
				}
			}
			if time.Duration(h.max) != tt.max {
				t.Errorf("max = %v, want %v", time.Duration(h.max), tt.max)
			}
		})
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all histogram
	for i, v := range seq(time.Microsecond, 10*time.Millisecond, time.Microsecond) {
		all.record(v)
		if i%3 == 0 {
			a.record(v)
		} else {
			b.record(v)
		}
	}
	a.merge(&b)
	if a != all {
		t.Fatalf("merged histogram differs: n %d/%d min %d/%d max %d/%d", a.n, all.n, a.min, all.min, a.max, all.max)
	}
}

func TestBucketsCoverRange(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 127, 128, 255, 256, 257, 1e6, 1e9, maxValue} {
		i := bucketOf(v)
		if i < prev || i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d, prev %d, numBuckets %d", v, i, prev, numBuckets)
		}
		if hi := bucketHigh(i); hi < v || float64(hi-v) > float64(v)/subCount {
			t.Fatalf("bucketHigh(bucketOf(%d)) = %d: too far", v, hi)
		}
		prev = i
	}
}

func seq(from, to, step time.Duration) []time.Duration {
	var s []time.Duration
	for v := from; v <= to; v += step {
		s = append(s, v)
	}
	return s
}

func near(got, want time.Duration) bool {
	d := float64(got - want)
	return d >= 0 && d <= float64(want)/subCount
}

package search

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// loadThing is the JSON of a thing of cmd/dittoload (Ditto's benchmark
// thing) with brewed-coffees set to n.
func loadThing(i, n int) []byte {
	return []byte(`{"attributes":{"manufacturer":"ACME","serialNo":"` + strconv.Itoa(i) +
		`"},"features":{"coffee-brewer":{"properties":{"brewed-coffees":` + strconv.Itoa(n) + `}}}}`)
}

// BenchmarkIndexUpdate100k is the indexer's work per durable property
// write of scripts/bench-http.sh: 100k things of cmd/dittoload, each with
// its own policy, and one op updates a random thing's brewed-coffees to a
// new value, with the next revision and a new modification time.
func BenchmarkIndexUpdate100k(b *testing.B) {
	l := newLoadIndex(b, benchThings)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		l.update()
	}
	// CPU time of the process (the collector included), which a loaded
	// machine inflates less than the wall time per op.
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadIndex is an index of things of cmd/dittoload, each with its own
// policy, created three per millisecond, and updated as the durable
// property writes of scripts/bench-http.sh update them.
type loadIndex struct {
	tb   testing.TB
	x    *index
	revs []int64
	r    *rand.Rand
	seq  int
}

func loadStamp(k int) string {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	return t0.Add(time.Duration(k) * time.Millisecond / 3).Format("2006-01-02T15:04:05.000Z")
}

func newLoadIndex(tb testing.TB, n int) *loadIndex {
	l := &loadIndex{tb: tb, x: newIndex(), revs: make([]int64, n), r: rand.New(rand.NewPCG(1, 2))}
	for i := range n {
		id := fmt.Sprintf("load:thing-%d", i)
		l.revs[i] = 1
		if err := l.x.upsert(thing{id: id, policyID: id, rev: 1, created: loadStamp(i), modified: loadStamp(i), raw: loadThing(i, 0)}); err != nil {
			tb.Fatal(err)
		}
	}
	return l
}

// update writes a new brewed-coffees value to a random thing.
func (l *loadIndex) update() {
	n := len(l.revs)
	i := l.r.IntN(n)
	l.seq++
	l.revs[i]++
	id := fmt.Sprintf("load:thing-%d", i)
	if err := l.x.upsert(thing{id: id, policyID: id, rev: l.revs[i], created: loadStamp(i), modified: loadStamp(n + l.seq), raw: loadThing(i, l.seq)}); err != nil {
		l.tb.Fatal(err)
	}
}

// TestIndexMemoryLoadThings100k bounds the heap of the index of 100k
// things of the HTTP benchmark after as many property writes: most of
// their keys (thingId, policyId, _created, _modified, serialNo,
// brewed-coffees twice) are unique per thing. The things' JSON counts
// here, as it is not shared with a things store.
func TestIndexMemoryLoadThings100k(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("builds 100k things; the race detector inflates the heap")
	}
	before := heapInUse()
	l := newLoadIndex(t, benchThings)
	for range benchThings {
		l.update()
	}
	heap := heapInUse() - before
	st := l.x.stats()
	t.Logf("100k load things after 100k updates: heap %.1f MB (raw JSON %.1f MB), %+v", float64(heap)/1e6, float64(st.RawJSONBytes)/1e6, st)
	// 74 MB; 98.8 MB before postings of one slot were held in the entry,
	// documents lost their namespace string and large postings became
	// bitmaps.
	const budget = 80 << 20
	if heap > budget {
		t.Fatalf("index heap %d bytes exceeds %d", heap, budget)
	}
	runtime.KeepAlive(l)
}

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

package search

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

const benchThings = 100_000

// benchSource holds things in Ditto's benchmark shape.
type benchSource struct{ things []ThingState }

func (b *benchSource) RangeThings(fn func(ThingState) bool) {
	for _, t := range b.things {
		if !fn(t) {
			return
		}
	}
}

func newBenchSource(n int) *benchSource {
	src := &benchSource{things: make([]ThingState, n)}
	models := []string{"Speedster", "Classic", "Barista", "Mini"}
	for i := range n {
		body := map[string]any{
			"attributes": map[string]any{
				"manufacturer": "ACME",
				"serialNo":     strconv.Itoa(i),
				"model":        models[i%len(models)],
				"year":         json.Number(strconv.Itoa(2000 + i%25)),
				"location":     map[string]any{"building": fmt.Sprintf("b%d", i%50), "floor": json.Number(strconv.Itoa(i % 7))},
			},
			"features": map[string]any{"coffee-brewer": map[string]any{"properties": map[string]any{
				"brewed-coffees": json.Number(strconv.Itoa(i % 10000)),
			}}},
		}
		id := fmt.Sprintf("bench:thing-%06d", i)
		src.things[i] = ThingState{ID: id, PolicyID: "bench:policy", Revision: 1, Created: "2026-01-01T00:00:00.000Z",
			Modified: "2026-01-01T00:00:00.000Z", JSON: ditto.EncodeJSON(body)}
	}
	return src
}

var (
	benchOnce sync.Once
	benchSvc  *Service
	benchSrc  *benchSource
)

func benchEnforcers() testEnforcers {
	return testEnforcers{"bench:policy": {rules: map[string]map[string]bool{subjAdmin: grants("/")}}}
}

func benchService(tb testing.TB) *Service {
	benchOnce.Do(func() {
		benchSrc = newBenchSource(benchThings)
		benchSvc = New(DefaultConfig(), Deps{Source: benchSrc, Enforcers: benchEnforcers()})
		if err := benchSvc.Start(context.Background()); err != nil {
			tb.Fatal(err)
		}
		if err := benchSvc.WaitReady(context.Background()); err != nil {
			tb.Fatal(err)
		}
	})
	return benchSvc
}

// benchQueries are the queries of the benchmarks; %d is replaced by a
// varying number.
var benchQueries = []struct{ name, filter, options string }{
	{"EqAttribute", `eq(attributes/serialNo,"%d")`, ""},
	{"EqThingID", `eq(thingId,"bench:thing-%06d")`, ""},
	{"AndSelectiveUnselective", `and(eq(attributes/manufacturer,"ACME"),eq(attributes/serialNo,"%d"))`, ""},
	{"LikePrefix", `like(attributes/serialNo,"%d*")`, "size(25)"},
	{"SortedRange", `and(ge(features/coffee-brewer/properties/brewed-coffees,%d),lt(features/coffee-brewer/properties/brewed-coffees,5100))`,
		"sort(-features/coffee-brewer/properties/brewed-coffees),size(25)"},
}

func benchQuery(b *testing.B, i int) {
	s := benchService(b)
	bq := benchQueries[i]
	admin := ditto.Auth{Subjects: []string{subjAdmin}}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		arg := (n * 7919) % benchThings
		switch bq.name {
		case "LikePrefix":
			arg = 10 + arg%90
		case "SortedRange":
			arg = 5000 + n%10
		}
		n++
		p, err := s.Search(ctx, Query{Filter: fmt.Sprintf(bq.filter, arg), Options: bq.options, Auth: admin, RawItems: true})
		if err != nil || len(p.Items) == 0 {
			b.Fatalf("%v, %d items", err, len(p.Items))
		}
	}
}

func BenchmarkSearchEqAttribute(b *testing.B)             { benchQuery(b, 0) }
func BenchmarkSearchEqThingID(b *testing.B)               { benchQuery(b, 1) }
func BenchmarkSearchAndSelectiveUnselective(b *testing.B) { benchQuery(b, 2) }
func BenchmarkSearchLikePrefix(b *testing.B)              { benchQuery(b, 3) }
func BenchmarkSearchSortedRange(b *testing.B)             { benchQuery(b, 4) }

// measureRebuild builds a service over src and returns it with the heap
// it holds (the things' JSON, held by src, is not part of it) and the
// build time.
func measureRebuild(tb testing.TB, src Source) (s *Service, heap uint64, took time.Duration) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	s = New(DefaultConfig(), Deps{Source: src, Enforcers: benchEnforcers()})
	if err := s.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	if err := s.WaitReady(context.Background()); err != nil {
		tb.Fatal(err)
	}
	took = time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if after.HeapAlloc > before.HeapAlloc {
		heap = after.HeapAlloc - before.HeapAlloc
	}
	return s, heap, took
}

// BenchmarkRebuild100k rebuilds the index of 100k things and reports the
// heap it holds next to the raw JSON size.
func BenchmarkRebuild100k(b *testing.B) {
	src := newBenchSource(benchThings)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s, heap, _ := measureRebuild(b, src)
		b.StopTimer()
		st := s.IndexStats()
		b.ReportMetric(float64(heap)/1e6, "heapMB")
		b.ReportMetric(float64(st.IndexBytes)/1e6, "indexMB")
		b.ReportMetric(float64(st.RawJSONBytes)/1e6, "rawJsonMB")
		runtime.KeepAlive(s)
		b.StartTimer()
	}
}

// TestIndexMemory100k asserts, loosely, that the index of 100k benchmark
// things fits its budget: 40 MB of heap besides the things' JSON, which
// the index shares with the things store.
func TestIndexMemory100k(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("builds 100k things; the race detector inflates the heap")
	}
	src := newBenchSource(benchThings)
	raw := 0
	for _, ts := range src.things {
		raw += len(ts.JSON)
	}
	s, heap, took := measureRebuild(t, src)
	st := s.IndexStats()
	t.Logf("100k things: index heap %.1f MB (estimate %.1f MB), shared raw JSON %.1f MB, rebuild %v, %+v",
		float64(heap)/1e6, float64(st.IndexBytes)/1e6, float64(raw)/1e6, took, st)
	const budget = 40 << 20 // 32.8 MB (52.4 MB with a slice per posting)
	if heap > budget {
		t.Fatalf("index heap %d bytes exceeds %d", heap, budget)
	}
	if st.RawJSONBytes != raw {
		t.Fatalf("RawJSONBytes = %d, want %d", st.RawJSONBytes, raw)
	}
	runtime.KeepAlive(s)
}

// TestBenchmarkPlans reports, for each benchmark query on 100k things, the
// plan and how many things it examined; none may examine them all.
func TestBenchmarkPlans(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 100k things")
	}
	start := time.Now()
	s := benchService(t)
	st := s.IndexStats()
	t.Logf("100k things indexed in %v (incl. generation): %+v", time.Since(start), st)
	admin := ditto.Auth{Subjects: []string{subjAdmin}}
	for _, bq := range benchQueries {
		t.Run(bq.name, func(t *testing.T) {
			arg := 5003
			if bq.name == "LikePrefix" {
				arg = 42
			}
			q := Query{Filter: fmt.Sprintf(bq.filter, arg), Options: bq.options, Auth: admin}
			t0 := time.Now()
			p, ex, err := s.SearchExplain(context.Background(), q)
			if err != nil || len(p.Items) == 0 {
				t.Fatalf("%v, %d items", err, len(p.Items))
			}
			t.Logf("%s: plan %s, candidates %d, examined %d, items %d, %v", bq.name, ex.Plan, ex.Candidates, ex.Examined, len(p.Items), time.Since(t0))
			if ex.Scan || ex.Examined >= benchThings/10 {
				t.Fatalf("examined %d things (scan %v)", ex.Examined, ex.Scan)
			}
		})
	}
}

package things

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

// coffeeBrewer is the thing of the Ditto benchmark.
func coffeeBrewer(i int) []byte {
	id := fmt.Sprintf("org.eclipse.ditto:coffee-brewer-%06d", i)
	return createEntry(id, fmt.Sprintf(`{"thingId":%q,"policyId":%q,"attributes":{"manufacturer":"ACME","serialNo":"%08d"},"features":{"coffee-brewer":{"properties":{"brewed-coffees":0}}}}`, id, id, i)).encode()
}

func loadBrewers(tb testing.TB, s *Service, n int) {
	tb.Helper()
	const batch = 256
	cmds := make([][]byte, 0, batch)
	f := s.FSM().(fsm)
	idx := uint64(1)
	for i := 0; i < n; i++ {
		cmds = append(cmds, coffeeBrewer(i))
		if len(cmds) == batch || i == n-1 {
			for _, out := range f.ApplyBatch(commands(idx, cmds)) {
				if _, ok := out.(ditto.Result); !ok {
					tb.Fatalf("load: %v", out)
				}
			}
			idx += uint64(len(cmds))
			cmds = cmds[:0]
		}
	}
}

func BenchmarkApplyModifyProperty(b *testing.B) {
	s := New(DefaultConfig(), Deps{Bus: ditto.NewBus()})
	loadBrewers(b, s, 1000)
	f := s.FSM()
	path := ditto.MustPointer("/features/coffee-brewer/properties/brewed-coffees")
	cmds := make([][]byte, 1000)
	for i := range cmds {
		id := fmt.Sprintf("org.eclipse.ditto:coffee-brewer-%06d", i)
		cmds[i] = (&entry{op: opModify, id: id, path: path, value: []byte(fmt.Sprint(i)), time: t0, corrID: "c", origin: owner}).encode()
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := f.Apply(uint64(i+2000), cmds[i%len(cmds)]).(ditto.Result); !ok {
			b.Fatal("apply failed")
		}
		i++
	}
}

func BenchmarkHandleModifyProperty(b *testing.B) {
	env := newEnv(b, DefaultConfig())
	mustOK(b)(env.do(ditto.ActionModify, tid, "/", map[string]any{}, owner))
	cmd := ditto.Command{Action: ditto.ActionModify, Entity: tid, Path: ditto.MustPointer("/features/f/properties/n"),
		Value: 1, Headers: ditto.Headers{}, Auth: ditto.Auth{Subjects: []string{owner}}}
	mustOK(b)(env.do(ditto.ActionModify, tid, "/features/f", map[string]any{}, owner))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := env.svc.Handle(ctx, cmd); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRetrieveFastPath(b *testing.B) {
	env := newEnv(b, DefaultConfig())
	mustOK(b)(env.do(ditto.ActionModify, tid, "/", mustJSON(b, `{"attributes":{"manufacturer":"ACME","serialNo":"1"},"features":{"coffee-brewer":{"properties":{"brewed-coffees":0}}}}`), owner))
	cmd := ditto.Command{Action: ditto.ActionRetrieve, Entity: tid, Path: ditto.Pointer{}, Headers: ditto.Headers{}, Auth: ditto.Auth{Subjects: []string{owner}}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := env.svc.Handle(ctx, cmd)
		if err != nil || res.Raw == nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRestore100k(b *testing.B) {
	s := newFSMService()
	loadBrewers(b, s, 100_000)
	snap, err := s.FSM().Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.Persist(&buf); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.ReportMetric(float64(len(data)), "snapshot-bytes")
	b.ReportAllocs()
	for b.Loop() {
		r := newFSMService()
		if err := r.FSM().Restore(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryPerThing reports the live heap per applied coffee-brewer
// thing after loading 100k of them.
func BenchmarkMemoryPerThing(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := newFSMService()
		loadBrewers(b, s, n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-bytes/thing")
		runtime.KeepAlive(s)
	}
}

package consensus

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// countFSM is the cheapest FSM: it counts commands.
type countFSM struct {
	n atomic.Uint64
}

func (f *countFSM) Apply(index uint64, cmd []byte) any { return f.n.Add(1) }

func (f *countFSM) ApplyBatch(cmds []Command) []any {
	out := make([]any, len(cmds))
	for i := range cmds {
		out[i] = f.n.Add(1)
	}
	return out
}

func (f *countFSM) Snapshot() (Snapshot, error) { return testSnapshot(nil), nil }

func (f *countFSM) Restore(io.Reader) error { return nil }

// benchGroup starts a durable (fsync on) single-node group.
func benchGroup(b *testing.B, fsm FSM) *Group {
	b.Helper()
	cfg := DefaultConfig()
	cfg.Name, cfg.Dir, cfg.NodeID, cfg.Bootstrap = "things", b.TempDir(), "n1", true
	g := mustStart(b, cfg, fsm, Deps{})
	waitLeader(b, g)
	return g
}

// BenchmarkProposeParallel measures durable writes with 64 concurrent
// proposers on a real bolt store with fsync.
func BenchmarkProposeParallel(b *testing.B) {
	for _, kind := range []struct {
		name string
		fsm  func() FSM
	}{
		{"batch", func() FSM { return &batchTestFSM{} }},
		{"plain", func() FSM { return &testFSM{} }},
	} {
		b.Run(kind.name, func(b *testing.B) {
			fsm := kind.fsm()
			g := benchGroup(b, fsm)
			before := g.Stats()
			cmd := []byte(`{"thing":"org.acme:sensor-1","path":"/features/temp/properties/value","value":21.5}`)
			b.SetParallelism(64 / max(1, runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := g.Propose(context.Background(), cmd); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
			st := g.Stats().Sub(before)
			b.ReportMetric(st.CommandsPerLogWrite(), "cmds/fsync")
			b.ReportMetric(st.CommandsPerPack(), "cmds/entry")
			b.ReportMetric(float64(st.LogWriteMean().Microseconds()), "µs/fsync")
			b.ReportMetric(st.EntriesPerApply(), "entries/apply")
		})
	}
}

// BenchmarkPropose measures one proposer: one fsync per write.
func BenchmarkPropose(b *testing.B) {
	g := benchGroup(b, &batchTestFSM{})
	cmd := []byte("small command")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Propose(context.Background(), cmd); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadBarrierParallel measures linearizable read barriers with 64
// concurrent readers sharing leadership checks.
func BenchmarkReadBarrierParallel(b *testing.B) {
	g := benchGroup(b, &batchTestFSM{})
	if _, err := g.Propose(context.Background(), []byte("x")); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(64 / max(1, runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := g.ReadBarrier(context.Background()); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkApplyBatchAdapter measures the adapter's per-entry overhead.
func BenchmarkApplyBatchAdapter(b *testing.B) {
	for _, size := range []int{1, 64, 256} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			a := newFSMAdapter(&countFSM{}, &appliedTracker{})
			logs := makeLogs(size)
			b.ReportAllocs()
			for b.Loop() {
				a.ApplyBatch(logs)
				for _, l := range logs {
					l.Index += uint64(size)
				}
			}
		})
	}
}

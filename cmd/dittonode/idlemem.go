package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// After a burst of load the Go heap keeps the size the collector let it
// reach, about twice the live heap, and the runtime hands the free pages
// back to the OS only slowly: a gateway with 100k things kept ~250 MB
// resident after a GET load although ~95 MB were live. idleRelease gives
// those pages back once the node has gone quiet, once per quiet spell: a
// forced collection costs little then, and none of it falls on a busy node.
type idleRelease struct {
	// quiet is the allocation per check below which the process counts
	// as idle (an idle node allocates ~40 KB/s: timers, health probes).
	quiet uint64
	// worth is how much garbage and free heap a release must at least
	// return.
	worth uint64
	// release gives the memory back (debug.FreeOSMemory).
	release func()

	samples  []metrics.Sample
	allocs   uint64 // cumulative allocation at the last check
	released bool   // released since the process last was busy
}

const (
	idleQuietBytes = 2 << 20  // per check (node.Config.IdleRelease, 5 s by default): 400 KB/s
	idleWorthBytes = 32 << 20 // not worth a collection below this
)

func newIdleRelease(quiet, worth uint64, release func()) *idleRelease {
	r := &idleRelease{quiet: quiet, worth: worth, release: release, samples: []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}}
	r.allocs, _, _ = r.read()
	return r
}

// read returns the cumulative allocation, what the heap holds beyond its
// live objects as of the last collection (garbage and free pages not yet
// returned), and the live heap.
func (r *idleRelease) read() (allocs, spare, live uint64) {
	metrics.Read(r.samples)
	v := func(i int) uint64 {
		if r.samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return r.samples[i].Value.Uint64()
	}
	objects, free := v(1), v(3)
	live = v(2)
	if objects > live {
		spare = objects - live
	}
	return v(0), spare + free, live
}

// check is one look at the process; it reports whether it released.
func (r *idleRelease) check() bool {
	allocs, spare, _ := r.read()
	busy := allocs-r.allocs >= r.quiet
	r.allocs = allocs
	if busy {
		r.released = false
		return false
	}
	if r.released || spare < r.worth {
		return false
	}
	r.release()
	r.released = true
	r.allocs, _, _ = r.read() // the release's own allocation is not load
	return true
}

// releaseWhenIdle runs r's checks every period until ctx ends.
func releaseWhenIdle(ctx context.Context, r *idleRelease, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if r.check() {
				_, spare, live := r.read()
				log.Debug("idle: heap returned to the OS", "liveBytes", live, "spareBytes", spare)
			}
		}
	}
}

// startIdleRelease starts releaseWhenIdle with the defaults and
// debug.FreeOSMemory; the returned stop ends it and waits for it.
func startIdleRelease(ctx context.Context, every time.Duration, log *slog.Logger) (stop func()) {
	if every <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	r := newIdleRelease(idleQuietBytes, idleWorthBytes, debug.FreeOSMemory)
	go func() {
		defer close(done)
		releaseWhenIdle(ctx, r, every, log)
	}()
	return func() { cancel(); <-done }
}

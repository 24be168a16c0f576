package main

import (
	"log/slog"
	"runtime"
)

// procsPerCPU is how many Go processors (Ps) a node runs per CPU the
// runtime found (cgroup limits included).
//
// With one P per CPU, a goroutine coming back from a blocking system call
// (a log write's fsync, a response's socket write) finds every P busy with
// runnable HTTP handlers and waits in the run queue. The Raft leader loop,
// the one serial stage of every write, makes several such calls per log
// write. With two Ps per CPU it finds an idle P at once and the kernel
// shares the cores between the threads. With 100k things on 2 CPUs, 64
// clients: durable PUTs 7,936/s on average over six runs with one P per
// CPU, 9,054/s over eight runs with two, alternated; no more CPU per
// request and no more memory (docs/BENCHMARKS.md).
const procsPerCPU = 2

// cpuProcs is the runtime's own GOMAXPROCS, taken before anything changed
// it: applyProcs stays idempotent.
var cpuProcs = runtime.GOMAXPROCS(0)

// applyProcs sets GOMAXPROCS to procsPerCPU Ps per CPU, unless the
// GOMAXPROCS environment variable set it already. It returns the number of
// Ps the node runs with.
func applyProcs(getenv func(string) string, log *slog.Logger) int {
	if env := getenv("GOMAXPROCS"); env != "" {
		n := runtime.GOMAXPROCS(0)
		log.Debug("processors from GOMAXPROCS", "procs", n)
		return n
	}
	n := procsPerCPU * cpuProcs
	runtime.GOMAXPROCS(n)
	log.Debug("processors set", "procs", n, "cpus", runtime.NumCPU())
	return n
}

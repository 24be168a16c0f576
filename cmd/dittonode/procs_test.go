package main

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
)

func TestApplyProcs(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	if n := applyProcs(func(k string) string {
		if k == "GOMAXPROCS" {
			return "3"
		}
		return ""
	}, log); n != before || runtime.GOMAXPROCS(0) != before {
		t.Fatalf("with GOMAXPROCS set the node runs %d Ps (runtime %d), want the runtime's %d", n, runtime.GOMAXPROCS(0), before)
	}
	for range 2 { // idempotent
		if n := applyProcs(func(string) string { return "" }, log); n != procsPerCPU*cpuProcs || runtime.GOMAXPROCS(0) != n {
			t.Fatalf("the node runs %d Ps (runtime %d), want %d", n, runtime.GOMAXPROCS(0), procsPerCPU*cpuProcs)
		}
	}
}

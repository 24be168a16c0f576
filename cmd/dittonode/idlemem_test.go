package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

var sink [][]byte

// garbage allocates n bytes in 1 MiB pieces and drops them.
func garbage(n int) {
	for range n >> 20 {
		sink = append(sink, make([]byte, 1<<20))
	}
	sink = nil
}

func heapReleased() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestIdleRelease runs the check on the real runtime: a check that sees a
// burst of allocation counts the process busy and leaves the heap alone;
// the next quiet check hands the garbage and free pages back to the OS,
// once; a new burst and a quiet spell after it hand back again.
func TestIdleRelease(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // the burst stays on the heap until released
	releases := 0
	var before, after uint64
	r := newIdleRelease(48<<20, 32<<20, func() {
		releases++
		before = heapReleased()
		debug.FreeOSMemory()
		after = heapReleased()
	})
	garbage(96 << 20)
	if r.check() {
		t.Fatal("released right after a burst")
	}
	if !r.check() {
		t.Fatal("no release in the first quiet check")
	}
	if after < before+32<<20 {
		t.Errorf("heap released to the OS grew by %d bytes, want at least 32 MiB", after-before)
	}
	if r.check() || r.check() {
		t.Fatal("released twice in one quiet spell")
	}
	garbage(96 << 20)
	r.check()
	if !r.check() || releases != 2 {
		t.Fatalf("releases = %d after a second burst and a quiet check, want 2", releases)
	}
	runtime.KeepAlive(sink)
}

// TestIdleReleaseNotWorth: a quiet process with little spare heap is left
// alone.
func TestIdleReleaseNotWorth(t *testing.T) {
	runtime.GC()
	debug.FreeOSMemory()
	r := newIdleRelease(48<<20, 1<<40, func() { t.Fatal("released with less spare heap than worth it") })
	r.check()
	r.check()
}

func TestStartIdleReleaseStops(t *testing.T) {
	stop := startIdleRelease(t.Context(), time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	time.Sleep(20 * time.Millisecond)
	stop() // returns only once the goroutine ended
	startIdleRelease(t.Context(), 0, slog.New(slog.NewTextHandler(io.Discard, nil)))()
}

func TestParseRunIdleRelease(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(cfgFile, []byte("idle-release: 1m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		want    time.Duration
		wantErr string
	}{
		{"default", []string{"--dev"}, 5 * time.Second, ""},
		{"flag", []string{"--dev", "--idle-release", "30s"}, 30 * time.Second, ""},
		{"off", []string{"--dev", "--idle-release", "0s"}, 0, ""},
		{"file", []string{"--dev", "--config", cfgFile}, time.Minute, ""},
		{"flag beats file", []string{"--dev", "--config", cfgFile, "--idle-release", "5s"}, 5 * time.Second, ""},
		{"negative", []string{"--dev", "--idle-release", "-1s"}, 0, "idle-release"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, ok := parseRunCase(t, tc.args, tc.wantErr)
			if ok && cfg.IdleRelease != tc.want {
				t.Errorf("IdleRelease = %v, want %v", cfg.IdleRelease, tc.want)
			}
		})
	}
}

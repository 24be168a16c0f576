package consensus

import (
	"context"
	"errors"
	"testing"
)

func TestAppliedTracker(t *testing.T) {
	var tr appliedTracker
	tr.advance(2)
	if w := tr.register(2); w != nil {
		t.Fatal("register of a reached index returned a waiter")
	}
	w3, w5, w8 := tr.register(3), tr.register(5), tr.register(8)
	gone := tr.register(6)
	tr.cancel(gone)
	tr.advance(4)
	tests := []struct {
		name  string
		w     *waiter
		woken bool
	}{
		{"3 woken at 4", w3, true},
		{"5 waits at 4", w5, false},
		{"8 waits at 4", w8, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			select {
			case <-tt.w.ch:
				if !tt.woken {
					t.Error("woken too early")
				}
			default:
				if tt.woken {
					t.Error("not woken")
				}
			}
		})
	}
	tr.advance(3) // never goes back
	if tr.load() != 4 {
		t.Errorf("index = %d, want 4", tr.load())
	}
	tr.set(9)
	<-w5.ch
	<-w8.ch
	if tr.pending() {
		t.Error("waiters left after all were reached")
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := tr.wait(ctx, nil, 100, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("wait with cancelled ctx = %v", err)
	}
	done := make(chan struct{})
	close(done)
	if err := tr.wait(t.Context(), done, 100, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("wait after done = %v, want ErrClosed", err)
	}
	if tr.pending() {
		t.Error("abandoned waiters left registered")
	}
}

func BenchmarkAppliedAdvance(b *testing.B) {
	var tr appliedTracker
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		i++
		tr.advance(i)
	}
}

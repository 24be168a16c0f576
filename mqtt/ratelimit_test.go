package mqtt

import (
	"fmt"
	"testing"
	"time"
)

func TestAuthLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newAuthLimiter(3, time.Minute, 10*time.Minute, func() time.Time { return now })
	for i := range 2 {
		l.failed("10.0.0.1")
		if !l.allowed("10.0.0.1") {
			t.Fatalf("blocked after %d failures", i+1)
		}
	}
	l.failed("10.0.0.1")
	if l.allowed("10.0.0.1") {
		t.Fatal("not blocked after 3 failures")
	}
	if !l.allowed("10.0.0.2") {
		t.Fatal("another address is blocked")
	}
	now = now.Add(11 * time.Minute)
	if !l.allowed("10.0.0.1") {
		t.Fatal("still blocked after the block ended")
	}
	// Failures spread over more than the window do not add up.
	for range 5 {
		l.failed("10.0.0.3")
		l.failed("10.0.0.3")
		now = now.Add(2 * time.Minute)
		if !l.allowed("10.0.0.3") {
			t.Fatal("slow failures blocked")
		}
	}
	// The table stays bounded.
	for i := range maxTracked + 100 {
		l.failed(fmt.Sprintf("h%d", i))
	}
	if n := len(l.addrs); n > maxTracked {
		t.Fatalf("%d addresses tracked", n)
	}
}

package consensus

import (
	"testing"
	"time"
)

func TestReadLease(t *testing.T) {
	l := &readLease{dur: 50 * time.Millisecond}
	if l.valid(1) {
		t.Fatal("a lease before any round")
	}
	start := time.Now()
	l.extend(start, 1, l.epoch.Load())
	if !l.valid(1) {
		t.Fatal("no lease right after a round")
	}
	if l.valid(2) {
		t.Fatal("a lease of term 1 serves term 2")
	}
	l.extend(start.Add(-time.Second), 1, l.epoch.Load()) // an older round does not shorten it
	if !l.valid(1) {
		t.Fatal("an older round ended the lease")
	}
	l.epoch.Add(1) // a configuration entry
	if l.valid(1) {
		t.Fatal("the lease survived a configuration change")
	}
	l.extend(time.Now(), 1, l.epoch.Load())
	if !l.valid(1) {
		t.Fatal("no lease after a round in the new configuration")
	}
	time.Sleep(60 * time.Millisecond)
	if l.valid(1) {
		t.Fatal("the lease outlived its duration")
	}
	off := &readLease{}
	off.extend(time.Now(), 1, 0)
	if off.valid(1) {
		t.Fatal("a zero-length lease is valid")
	}
}

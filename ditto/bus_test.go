package ditto

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond until it returns nil or d passes.
func waitFor(t *testing.T, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", d, err)
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
}

func TestBusObserversInOrder(t *testing.T) {
	b := NewBus()
	var got []string
	b.Observe(func(s Signal) { got = append(got, "first:"+s.EntityID) })
	b.Observe(func(s Signal) { got = append(got, "second:"+s.EntityID) })
	b.Publish(Signal{EntityID: "ns:a"})
	b.Publish(Signal{EntityID: "ns:b"})
	want := []string{"first:ns:a", "second:ns:a", "first:ns:b", "second:ns:b"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if b.Published() != 2 {
		t.Fatalf("Published = %d", b.Published())
	}
}

func TestBusSubscriberReceivesInOrder(t *testing.T) {
	b := NewBus()
	sub := b.Subscribe(16)
	defer sub.Close()
	for i := range 10 {
		b.Publish(Signal{Revision: int64(i)})
	}
	for i := range 10 {
		select {
		case s := <-sub.C():
			if s.Revision != int64(i) {
				t.Fatalf("got revision %d, want %d", s.Revision, i)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("signal not delivered")
		}
	}
	if sub.Err() != nil {
		t.Fatalf("Err = %v", sub.Err())
	}
}

func TestBusSlowSubscriberCutOff(t *testing.T) {
	b := NewBus()
	slow := b.Subscribe(2)
	fast := b.Subscribe(100)
	for i := range 5 {
		b.Publish(Signal{Revision: int64(i)})
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("slow subscriber not cut off")
	}
	if !errors.Is(slow.Err(), ErrSlowSubscriber) {
		t.Fatalf("Err = %v", slow.Err())
	}
	if b.Dropped() != 1 {
		t.Fatalf("Dropped = %d", b.Dropped())
	}
	if fast.Err() != nil || len(fast.C()) != 5 {
		t.Fatalf("fast subscriber: err %v, queued %d", fast.Err(), len(fast.C()))
	}
	// The cut-off subscription gets nothing more and does not count again.
	b.Publish(Signal{})
	if b.Dropped() != 1 || len(slow.C()) != 2 {
		t.Fatalf("after cut-off: dropped %d, queued %d", b.Dropped(), len(slow.C()))
	}
	fast.Close()
	fast.Close() // idempotent
	if !errors.Is(fast.Err(), ErrSubscriptionClosed) {
		t.Fatalf("Err after Close = %v", fast.Err())
	}
	if b.Subscribe(0) == nil {
		t.Fatal("Subscribe(0) must give a queue of 1")
	}
}

func TestBusConcurrent(t *testing.T) {
	b := NewBus()
	var mu sync.Mutex
	observed := 0
	b.Observe(func(Signal) { mu.Lock(); observed++; mu.Unlock() })
	const publishers, each = 4, 200
	subs := make([]*Subscription, 3)
	var wg sync.WaitGroup
	counts := make([]int, len(subs))
	for i := range subs {
		subs[i] = b.Subscribe(publishers * each)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for counts[i] < publishers*each {
				select {
				case <-subs[i].C():
					counts[i]++
				case <-subs[i].Done():
					return
				}
			}
		}(i)
	}
	var pubs sync.WaitGroup
	for range publishers {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for range each {
				b.Publish(Signal{})
			}
		}()
	}
	pubs.Wait()
	wg.Wait()
	for i, c := range counts {
		if c != publishers*each {
			t.Fatalf("subscriber %d got %d signals", i, c)
		}
	}
	waitFor(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if observed != publishers*each {
			return errors.New("observer behind")
		}
		return nil
	})
}

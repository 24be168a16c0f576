package mqtt

import (
	"sync"
	"time"
)

// authLimiter blocks client addresses after repeated failed logins: max
// failures within window block the address for block. It tracks at most
// maxTracked addresses; when full it forgets the stale ones first, then
// the oldest.
type authLimiter struct {
	max    int
	window time.Duration
	block  time.Duration
	clock  func() time.Time

	mu    sync.Mutex
	addrs map[string]*authEntry
}

type authEntry struct {
	first    time.Time
	count    int
	blocked  time.Time // zero: not blocked
	lastSeen time.Time
}

const maxTracked = 10_000

func newAuthLimiter(max int, window, block time.Duration, clock func() time.Time) *authLimiter {
	return &authLimiter{max: max, window: window, block: block, clock: clock, addrs: map[string]*authEntry{}}
}

// allowed reports whether host may try to log in now.
func (l *authLimiter) allowed(host string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.addrs[host]
	if !ok {
		return true
	}
	now := l.clock()
	if !e.blocked.IsZero() {
		if now.Before(e.blocked) {
			return false
		}
		delete(l.addrs, host)
	}
	return true
}

// failed records a failed login from host.
func (l *authLimiter) failed(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	e, ok := l.addrs[host]
	if !ok || now.Sub(e.first) > l.window {
		if !ok && len(l.addrs) >= maxTracked {
			l.evict(now)
		}
		e = &authEntry{first: now}
		l.addrs[host] = e
	}
	e.count++
	e.lastSeen = now
	if e.count >= l.max {
		e.blocked = now.Add(l.block)
	}
}

// evict makes room: drop entries that neither block nor count any more,
// and if none is stale, the least recently seen one.
func (l *authLimiter) evict(now time.Time) {
	var oldest string
	var oldestSeen time.Time
	for h, e := range l.addrs {
		if (e.blocked.IsZero() && now.Sub(e.first) > l.window) || (!e.blocked.IsZero() && now.After(e.blocked)) {
			delete(l.addrs, h)
			continue
		}
		if oldest == "" || e.lastSeen.Before(oldestSeen) {
			oldest, oldestSeen = h, e.lastSeen
		}
	}
	if len(l.addrs) >= maxTracked && oldest != "" {
		delete(l.addrs, oldest)
	}
}

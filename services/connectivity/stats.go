package connectivity

import (
	"sync"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Metric names of a connection (Ditto's connection metrics).
const (
	mInConsumed   = "inbound.consumed"
	mInMapped     = "inbound.mapped"
	mInDropped    = "inbound.dropped"
	mInEnforced   = "inbound.enforced"
	mInAcked      = "inbound.acknowledged"
	mOutDispatch  = "outbound.dispatched"
	mOutFiltered  = "outbound.filtered"
	mOutMapped    = "outbound.mapped"
	mOutDropped   = "outbound.dropped"
	mOutPublished = "outbound.published"
)

var metricNames = []string{mInConsumed, mInMapped, mInDropped, mInEnforced, mInAcked, mOutDispatch, mOutFiltered, mOutMapped, mOutDropped, mOutPublished}

// counter counts events per minute for the last hour and per hour for the
// last day: a fixed 84 slots whatever the rate.
type counter struct {
	minutes [60]slot
	hours   [24]slot
	last    time.Time
}

type slot struct {
	at    int64 // minute or hour number since the epoch
	count uint64
}

func (c *counter) add(now time.Time) {
	m, h := now.Unix()/60, now.Unix()/3600
	ms, hs := &c.minutes[m%60], &c.hours[h%24]
	if ms.at != m {
		*ms = slot{at: m}
	}
	if hs.at != h {
		*hs = slot{at: h}
	}
	ms.count++
	hs.count++
	c.last = now
}

func (c *counter) snapshot(now time.Time) map[string]any {
	m, h := now.Unix()/60, now.Unix()/3600
	var pt1m, pt1h, pt24h uint64
	for _, s := range c.minutes {
		if s.at > m-60 && s.at <= m {
			pt1h += s.count
		}
		if s.at == m {
			pt1m = s.count
		}
	}
	for _, s := range c.hours {
		if s.at > h-24 && s.at <= h {
			pt24h += s.count
		}
	}
	out := map[string]any{"PT1M": pt1m, "PT1H": pt1h, "PT24H": pt24h}
	if !c.last.IsZero() {
		out["lastMessageAt"] = ditto.FormatTime(c.last)
	}
	return out
}

// LogEntry is one connection log entry.
type LogEntry struct {
	Timestamp     string `json:"timestamp"`
	CorrelationID string `json:"correlationId,omitempty"`
	Message       string `json:"message"`
	Category      string `json:"category"` // source, target, response, connection
	Type          string `json:"type"`     // consumed, dispatched, mapped, published, …
	Level         string `json:"level"`    // success or failure
	Address       string `json:"address,omitempty"`
	ThingID       string `json:"thingId,omitempty"`
}

const maxLogEntries = 200

// stats are the metrics and logs of one connection on this node.
type stats struct {
	mu       sync.Mutex
	counters map[string]*[2]counter // [success, failure]
	logs     []LogEntry             // ring, oldest first once full
	logNext  int
	logSince time.Time
	logUntil time.Time
}

func newStats() *stats {
	s := &stats{counters: map[string]*[2]counter{}}
	for _, n := range metricNames {
		s.counters[n] = &[2]counter{}
	}
	return s
}

func (s *stats) count(name string, ok bool, now time.Time) {
	i := 0
	if !ok {
		i = 1
	}
	s.mu.Lock()
	s.counters[name][i].add(now)
	s.mu.Unlock()
}

func (s *stats) log(e LogEntry, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.After(s.logUntil) {
		return
	}
	e.Timestamp = ditto.FormatTime(now)
	if len(s.logs) < maxLogEntries {
		s.logs = append(s.logs, e)
		return
	}
	s.logs[s.logNext] = e
	s.logNext = (s.logNext + 1) % maxLogEntries
}

func (s *stats) enableLogs(now time.Time, d time.Duration) {
	s.mu.Lock()
	s.logSince, s.logUntil = now, now.Add(d)
	s.mu.Unlock()
}

func (s *stats) resetLogs() {
	s.mu.Lock()
	s.logs, s.logNext = nil, 0
	s.mu.Unlock()
}

func (s *stats) resetMetrics() {
	s.mu.Lock()
	for _, n := range metricNames {
		s.counters[n] = &[2]counter{}
	}
	s.mu.Unlock()
}

// metricsJSON renders Ditto's connectionMetrics shape.
func (s *stats) metricsJSON(now time.Time) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, out := map[string]any{}, map[string]any{}
	for _, n := range metricNames {
		c := s.counters[n]
		v := map[string]any{"success": c[0].snapshot(now), "failure": c[1].snapshot(now)}
		if dir, name, _ := cutDot(n); dir == "inbound" {
			in[name] = v
		} else {
			out[name] = v
		}
	}
	return map[string]any{"inbound": in, "outbound": out}
}

func cutDot(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// logsJSON renders the logs oldest first.
func (s *stats) logsJSON() (entries []LogEntry, since, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	entries = make([]LogEntry, 0, len(s.logs))
	entries = append(entries, s.logs[s.logNext:]...)
	entries = append(entries, s.logs[:s.logNext]...)
	return entries, s.logSince, s.logUntil
}

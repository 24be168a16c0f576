package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// result is the outcome of one phase (prepare or load).
type result struct {
	Requests   uint64            `json:"requests"`
	OK         uint64            `json:"ok"`
	Errors     map[string]uint64 `json:"errors"` // by HTTP status, or "timeout"/"transport"
	Seconds    float64           `json:"duration_s"`
	Throughput float64           `json:"throughput_rps"`
	Latency    latency           `json:"latency_ms"`
}

type latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// summary is what dittoload prints: the load phase's result, flattened.
type summary struct {
	Mode    string  `json:"mode"`
	URL     string  `json:"url"`
	Clients int     `json:"clients"`
	Things  int     `json:"things,omitempty"`
	Rate    float64 `json:"rate,omitempty"`
	Prepare *result `json:"prepare,omitempty"`
	result
	// ClientCPUPerRequest is the CPU time (user and system) dittoload itself
	// spent per request of the load phase, in µs: what the load costs the
	// machine next to the system under test.
	ClientCPUPerRequest float64 `json:"client_cpu_us_per_request"`
	Interrupted         bool    `json:"interrupted,omitempty"`
}

// stats is one worker's private tally, merged when all workers are done.
type stats struct {
	hist   histogram
	ok     uint64
	errors map[string]uint64
}

func (s *stats) record(status int, err error, d time.Duration) {
	s.hist.record(d)
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		s.errors["timeout"]++
	case err != nil:
		s.errors["transport"]++
	case status >= 200 && status < 300:
		s.ok++
	default:
		s.errors[strconv.Itoa(status)]++
	}
}

type loader struct {
	cfg    config
	client doer
	bases  []string // cfg.urls without trailing slash; client i uses bases[i%len]
	seq    atomic.Uint64
}

func newLoader(cfg config) *loader {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second,
		// Check the resolved address too: "localhost" must not leave the machine.
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !ap.Addr().Unmap().IsLoopback() {
				return fmt.Errorf("dial %s: %w", address, ErrNotLoopback)
			}
			return nil
		}}
	var headers []header
	if cfg.user != "" {
		headers = append(headers, header{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.user))})
	}
	headers = append(headers, cfg.headers...)
	l := &loader{cfg: cfg}
	if cfg.client == clientStd {
		l.client = newStdDoer(cfg, dialer, headers)
	} else {
		l.client = newFastDoer(cfg, dialer, headers)
	}
	for _, u := range cfg.urls {
		l.bases = append(l.bases, strings.TrimRight(u, "/"))
	}
	return l
}

func load(ctx context.Context, cfg config, stdout io.Writer) error {
	l := newLoader(cfg)
	defer l.client.close()
	sum := summary{Mode: cfg.mode, URL: strings.Join(cfg.urls, ","), Clients: cfg.clients, Rate: cfg.rate}
	if cfg.mode != "get" {
		sum.Things = cfg.things
	}
	if cfg.prepare {
		res := l.prepare(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("prepare interrupted: %w", err)
		}
		if res.OK == 0 {
			return fmt.Errorf("prepare: no thing created, errors %v", res.Errors)
		}
		sum.Prepare = &res
		if !cfg.json {
			fmt.Fprintf(stdout, "prepare   %d things in %.2fs = %.1f things/s, ok %d, errors %s\n",
				cfg.things, res.Seconds, res.Throughput, res.OK, formatErrors(res.Errors))
		}
	}
	cpu0 := processCPU()
	sum.result = l.loop(ctx)
	if sum.Requests > 0 {
		sum.ClientCPUPerRequest = float64((processCPU() - cpu0).Microseconds()) / float64(sum.Requests)
	}
	sum.Interrupted = ctx.Err() != nil
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	note := ""
	if sum.Interrupted {
		note = " (interrupted)"
	}
	_, err := fmt.Fprintf(stdout, "%s %s clients %d%s\n"+
		"requests  %d in %.2fs = %.1f req/s\n"+
		"ok        %d\nerrors    %s\n"+
		"latency   p50 %v  p90 %v  p99 %v  max %v  mean %v\n"+
		"client    %.1f µs CPU per request\n",
		sum.Mode, sum.URL, sum.Clients, note,
		sum.Requests, sum.Seconds, sum.Throughput, sum.OK, formatErrors(sum.Errors),
		ms(sum.Latency.P50), ms(sum.Latency.P90), ms(sum.Latency.P99), ms(sum.Latency.Max), ms(sum.Latency.Mean),
		sum.ClientCPUPerRequest)
	return err
}

// prepare creates things load:thing-0..N-1 (etcd modes: puts keys
// load/thing-0..N-1) with -clients workers, all through the first URL.
func (l *loader) prepare(ctx context.Context) result {
	var next atomic.Uint64
	n := uint64(l.cfg.things)
	return l.drive(ctx, func() (time.Time, uint64, bool) {
		i := next.Add(1) - 1
		return time.Now(), i, i < n && ctx.Err() == nil
	}, func(_ int, i uint64) call {
		if isEtcd(l.cfg.mode) {
			return call{http.MethodPost, l.bases[0] + etcdPutPath, etcdPutBody(i, 0)}
		}
		body := `{"attributes":{"manufacturer":"ACME","serialNo":"` + strconv.FormatUint(i, 10) +
			`"},"features":{"coffee-brewer":{"properties":{"brewed-coffees":0}}}}`
		return call{http.MethodPut, l.thingURL(l.bases[0], i), []byte(body)}
	})
}

// loop runs the load phase until -duration has passed or ctx is done.
func (l *loader) loop(ctx context.Context) result {
	deadline := time.Now().Add(l.cfg.duration)
	next := func() (time.Time, uint64, bool) {
		now := time.Now()
		return now, l.seq.Add(1), now.Before(deadline) && ctx.Err() == nil
	}
	if l.cfg.rate > 0 {
		ticks := make(chan time.Time, l.cfg.clients)
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() { pace(ctx, l.cfg.rate, deadline, ticks) }) // closes ticks by deadline or ctx
		next = func() (time.Time, uint64, bool) {
			at, ok := <-ticks
			return at, l.seq.Add(1), ok
		}
	}
	return l.drive(ctx, next, l.build)
}

// build makes one load-phase request of client w. The property write's body
// is the decimal sequence number, and etcd-put writes the same bytes as its
// value, so both systems replicate values of the same size.
func (l *loader) build(w int, seq uint64) call {
	base := l.bases[w%len(l.bases)]
	switch l.cfg.mode {
	case "put-property":
		u := l.thingURL(base, uint64(rand.IntN(l.cfg.things))) + "/features/coffee-brewer/properties/brewed-coffees"
		return call{http.MethodPut, u, strconv.AppendUint(nil, seq, 10)}
	case "get-thing":
		return call{http.MethodGet, l.thingURL(base, uint64(rand.IntN(l.cfg.things))), nil}
	case "search":
		q := url.Values{"filter": {strings.ReplaceAll(l.cfg.filter, "{i}", strconv.Itoa(rand.IntN(l.cfg.things)))}}
		if l.cfg.option != "" {
			q.Set("option", l.cfg.option)
		}
		return call{http.MethodGet, base + "/api/2/search/things?" + q.Encode(), nil}
	case "etcd-put":
		return call{http.MethodPost, base + etcdPutPath, etcdPutBody(uint64(rand.IntN(l.cfg.things)), seq)}
	case "etcd-get":
		return call{http.MethodPost, base + etcdRangePath, etcdRangeBody(uint64(rand.IntN(l.cfg.things)), l.cfg.serializable)}
	default:
		return call{http.MethodGet, l.cfg.urls[w%len(l.cfg.urls)], nil}
	}
}

func (l *loader) thingURL(base string, i uint64) string {
	return base + "/api/2/things/load:thing-" + strconv.FormatUint(i, 10)
}

// pace sends the scheduled start time of each open-loop request. Times are
// absolute, so timer overshoot is caught up and a saturated target shows up
// as latency rather than as fewer requests.
func pace(ctx context.Context, rate float64, deadline time.Time, out chan<- time.Time) {
	defer close(out)
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for i := 0; ; i++ {
		at := start.Add(time.Duration(float64(i) * float64(time.Second) / rate))
		if !at.Before(deadline) {
			return
		}
		if d := time.Until(at); d > 0 {
			t.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		select {
		case out <- at:
		case <-ctx.Done():
			return
		}
	}
}

// drive runs -clients workers; each takes work from next until it says stop,
// and records the outcome of the request build makes.
func (l *loader) drive(ctx context.Context, next func() (time.Time, uint64, bool),
	build func(client int, seq uint64) call) result {
	all := make([]*stats, l.cfg.clients)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range all {
		st := &stats{errors: map[string]uint64{}}
		all[i] = st
		wg.Go(func() {
			for {
				at, seq, ok := next()
				if !ok {
					return
				}
				status, err := l.client.do(ctx, build(i, seq))
				if ctx.Err() != nil {
					return // interrupted: the aborted request is not a result
				}
				st.record(status, err, time.Since(at))
			}
		})
	}
	wg.Wait()
	return merge(all, time.Since(start))
}

func merge(all []*stats, elapsed time.Duration) result {
	var h histogram
	res := result{Errors: map[string]uint64{}, Seconds: elapsed.Seconds()}
	for _, st := range all {
		h.merge(&st.hist)
		res.OK += st.ok
		for k, v := range st.errors {
			res.Errors[k] += v
		}
	}
	res.Requests = h.n
	if res.Seconds > 0 {
		res.Throughput = float64(res.Requests) / res.Seconds
	}
	f := func(d time.Duration) float64 { return float64(d) / 1e6 }
	res.Latency = latency{P50: f(h.quantile(0.50)), P90: f(h.quantile(0.90)),
		P99: f(h.quantile(0.99)), Max: f(time.Duration(h.max)), Mean: f(h.mean())}
	return res
}

func formatErrors(errs map[string]uint64) string {
	if len(errs) == 0 {
		return "none"
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(errs)) {
		fmt.Fprintf(&b, "%s=%d ", k, errs[k])
	}
	return strings.TrimSpace(b.String())
}

func ms(v float64) time.Duration {
	return time.Duration(v * 1e6).Round(time.Microsecond)
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package node

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Search over HTTP on a real node and a real port: the things are created
// through PUT /api/2/things (each with its default policy, as Ditto does
// and as scripts/bench-http.sh prepares them), then every query runs
// through the whole gateway (authentication, parsing, the index, access
// per thing, projection, JSON) from Go HTTP clients in this process.
//
//	go test -run '^$' -bench BenchmarkSearchHTTP -benchtime 20000x ./node/
//
// Each query also runs as <query>/handler: the gateway's handler called
// directly, one query at a time, for the server's time and allocations
// per query without the network and the clients (steadier on a loaded
// machine than the latencies). CountAll counts every thing: give it a
// smaller -benchtime of its own.
//
// DITTONODE_SEARCH_BENCH_THINGS (default 100000) sets the number of
// things, DITTONODE_SEARCH_BENCH_CLIENTS (default 64) the clients, and
// DITTONODE_SEARCH_BENCH_RATE (queries/s) makes the load open loop: the
// queries start at that rate whatever the latency, and each latency is
// measured from its scheduled start, so queueing shows. Each query reports
// q/s and its latency quantiles (p50-ms, p99-ms, max-ms).

// searchBenchQueries are the queries of issue 4; {i} becomes a random
// thing number.
var searchBenchQueries = []struct{ name, filter, option string }{
	{"EqAttribute", `eq(attributes/serialNo,"{i}")`, ""},
	{"EqThingID", `eq(thingId,"load:thing-{i}")`, ""},
	{"AndSelectiveUnselective", `and(eq(attributes/manufacturer,"ACME"),eq(attributes/serialNo,"{i}"))`, ""},
	{"LikePrefix", `like(thingId,"load:thing-{i}*")`, ""},
	{"SortedRange", `ge(attributes/serialNo,"{i}")`, "sort(+attributes/serialNo),size(25)"},
	{"UnsortedPage", ``, "size(25)"},
	{"CountSelective", `count:eq(attributes/serialNo,"{i}")`, ""},
	{"CountAll", `count:eq(attributes/manufacturer,"ACME")`, ""},
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func BenchmarkSearchHTTP(b *testing.B) {
	if raceEnabled {
		b.Skip("load figures under the race detector mean nothing")
	}
	things := envInt("DITTONODE_SEARCH_BENCH_THINGS", 100_000)
	clients := envInt("DITTONODE_SEARCH_BENCH_CLIENTS", 64)
	rate := envInt("DITTONODE_SEARCH_BENCH_RATE", 0)
	cfg := DefaultConfig()
	cfg.DataDir = b.TempDir()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.Users = map[string]string{"ditto": "ditto"}
	cfg.Raft.NoSync = true
	n, err := New(cfg, Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = n.Close() })
	base := "http://" + n.HTTPAddr().String()
	tr := &http.Transport{MaxIdleConns: 2 * clients, MaxIdleConnsPerHost: 2 * clients, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	b.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("ditto:ditto"))
	do := func(method, u, body string) (int, []byte, error) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, u, rd)
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", auth)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		return resp.StatusCode, out, err
	}

	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(things) || failed.Load() != nil {
					return
				}
				body := `{"attributes":{"manufacturer":"ACME","serialNo":"` + strconv.FormatInt(i, 10) +
					`"},"features":{"coffee-brewer":{"properties":{"brewed-coffees":0}}}}`
				st, out, err := do(http.MethodPut, base+"/api/2/things/load:thing-"+strconv.FormatInt(i, 10), body)
				if err != nil || st != http.StatusCreated {
					failed.Store(fmt.Errorf("create thing %d: status %d %s %v", i, st, out, err))
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.Logf("created %d things with their default policies in %v", things, time.Since(start).Round(time.Millisecond))

	for _, q := range searchBenchQueries {
		path, filter := "/api/2/search/things?", q.filter
		if f, ok := strings.CutPrefix(filter, "count:"); ok {
			path, filter = "/api/2/search/things/count?", f
		}
		query := func() string {
			v := url.Values{}
			if filter != "" {
				v.Set("filter", strings.ReplaceAll(filter, "{i}", strconv.Itoa(rand.IntN(things))))
			}
			if q.option != "" {
				v.Set("option", q.option)
			}
			return base + path + v.Encode()
		}
		// The gateway handler alone, one query at a time, without the
		// network and the client: the server's CPU time and allocations
		// per query.
		b.Run(q.name+"/handler", func(b *testing.B) {
			h := n.gateway.Handler()
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, query(), nil)
				req.Header.Set("Authorization", auth)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d %s", rec.Code, rec.Body)
				}
			}
		})
		b.Run(q.name, func(b *testing.B) {
			// One query outside the measurement checks that it answers.
			if st, out, err := do(http.MethodGet, query(), ""); err != nil || st != http.StatusOK {
				b.Fatalf("status %d %s %v", st, out, err)
			}
			lat := make([][]time.Duration, clients)
			var ticks chan time.Time
			b.ResetTimer()
			began := time.Now()
			if rate > 0 {
				ticks = make(chan time.Time, clients)
				go func() {
					defer close(ticks)
					for i := range b.N {
						at := began.Add(time.Duration(float64(i) * float64(time.Second) / float64(rate)))
						if d := time.Until(at); d > 0 {
							time.Sleep(d)
						}
						ticks <- at
					}
				}()
			}
			var issued atomic.Int64
			var errs atomic.Int64
			var wg sync.WaitGroup
			for c := range clients {
				wg.Go(func() {
					for {
						var at time.Time
						if ticks != nil {
							var ok bool
							if at, ok = <-ticks; !ok {
								return
							}
						} else {
							if issued.Add(1) > int64(b.N) {
								return
							}
							at = time.Now()
						}
						st, _, err := do(http.MethodGet, query(), "")
						if err != nil || st != http.StatusOK {
							errs.Add(1)
						}
						lat[c] = append(lat[c], time.Since(at))
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(began)
			b.StopTimer()
			if e := errs.Load(); e > 0 {
				b.Fatalf("%d of %d queries failed", e, b.N)
			}
			all := slices.Concat(lat...)
			slices.Sort(all)
			quantile := func(p float64) float64 {
				return float64(all[min(len(all)-1, int(p*float64(len(all))))]) / 1e6
			}
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "q/s")
			b.ReportMetric(quantile(0.50), "p50-ms")
			b.ReportMetric(quantile(0.99), "p99-ms")
			b.ReportMetric(float64(all[len(all)-1])/1e6, "max-ms")
		})
	}
}

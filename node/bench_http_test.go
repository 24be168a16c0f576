package node

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// BenchmarkHTTP measures the HTTP API of a real node on a real loopback
// port with fsync on, as scripts/bench-http.sh does with dittoload, but in
// one process so a CPU or allocation profile shows the whole path:
//
//	go test -run '^$' -bench BenchmarkHTTP -benchtime 10s ./node/
//	BENCH_THINGS=100000 go test -run '^$' -bench 'BenchmarkHTTP/put' -benchtime 10s -cpuprofile cpu.out ./node/
//
// It prepares BENCH_THINGS (default 20000) things shaped like Ditto's
// benchmark thing, each with its own default policy, then runs with 64
// concurrent clients (keep-alive connections); BENCH_MEMLIMIT_MIB sets a
// soft memory limit for the process, as dittonode does by default:
//
//   - put-property: durable PUT …/features/coffee-brewer/properties/brewed-coffees
//     of a random thing, reporting req/s, the things group's commands per
//     fsync'd log write and the FSM's time per applied batch;
//   - get-thing: GET /api/2/things/{id} of a random thing (linearizable);
//   - hello: a hello-world net/http handler with the same clients, the
//     baseline the GET target is relative to.
func BenchmarkHTTP(b *testing.B) {
	things := 20000
	if s := os.Getenv("BENCH_THINGS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			b.Fatalf("BENCH_THINGS=%q", s)
		}
		things = v
	}
	if s := os.Getenv("BENCH_MEMLIMIT_MIB"); s != "" {
		// The soft memory limit dittonode applies by default
		// (Config.MemoryLimit), for the whole benchmark process.
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			b.Fatalf("BENCH_MEMLIMIT_MIB=%q", s)
		}
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(int64(v) << 20))
	}
	// BENCH_NOSYNC=1 leaves out the fsyncs, to see how much of a PUT's
	// time they take (never a durability figure).
	nosync := os.Getenv("BENCH_NOSYNC") == "1"
	n := startBenchNode(b, func(c *Config) { c.Raft.NoSync = nosync })
	prepareBenchThings(b, n, things)
	base := "http://" + n.HTTPAddr().String()
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("ditto:ditto"))
	g := n.groups[1]
	if g.Status().Name != GroupThings {
		b.Fatalf("group 1 is %s", g.Status().Name)
	}

	b.Run("put-property", func(b *testing.B) {
		before := g.Stats()
		var seq atomic.Uint64
		runHTTPClients(b, func(c *http.Client) error {
			i := rand.IntN(things)
			body := strconv.AppendUint(nil, seq.Add(1), 10)
			req, err := http.NewRequest(http.MethodPut, base+"/api/2/things/load:thing-"+strconv.Itoa(i)+"/features/coffee-brewer/properties/brewed-coffees", bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", auth)
			req.Header.Set("Content-Type", "application/json")
			return doExpect(c, req, http.StatusNoContent)
		})
		st := g.Stats().Sub(before)
		b.ReportMetric(st.CommandsPerLogWrite(), "cmds/fsync")
		b.ReportMetric(st.CommandsPerPack(), "cmds/entry")
		b.ReportMetric(float64(st.LogWriteMean().Microseconds()), "µs/fsync")
		b.ReportMetric(st.EntriesPerApply(), "entries/apply")
		b.ReportMetric(float64(st.ApplyMean().Microseconds()), "µs/apply")
	})
	b.Run("get-thing", func(b *testing.B) {
		runHTTPClients(b, func(c *http.Client) error {
			req, err := http.NewRequest(http.MethodGet, base+"/api/2/things/load:thing-"+strconv.Itoa(rand.IntN(things)), nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", auth)
			return doExpect(c, req, http.StatusOK)
		})
	})
	b.Run("hello", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "hello world\n")
		})}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		url := "http://" + ln.Addr().String() + "/"
		runHTTPClients(b, func(c *http.Client) error {
			req, err := http.NewRequest(http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			return doExpect(c, req, http.StatusOK)
		})
	})
}

// runHTTPClients runs do b.N times from 64 concurrent clients sharing one
// keep-alive transport and reports req/s.
func runHTTPClients(b *testing.B, do func(*http.Client) error) {
	b.Helper()
	const clients = 64
	tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := do(c); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	// CPU of the whole process (server and clients) per request: less
	// noisy than req/s on a shared machine.
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/req")
}

// processCPU is the user plus system CPU time this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func doExpect(c *http.Client, req *http.Request, status int) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != status {
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	return nil
}

// prepareBenchThings creates load:thing-0..n-1 shaped like Ditto's benchmark
// thing (two attributes, a coffee-brewer feature), each with its own default
// policy, through the things service (the path the HTTP PUT takes after
// decoding), 64 at a time.
func prepareBenchThings(b *testing.B, n *Node, count int) {
	b.Helper()
	owner := ditto.Auth{Subjects: []string{"nginx:ditto"}}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(count) {
					return
				}
				v, err := ditto.DecodeJSON([]byte(`{"attributes":{"manufacturer":"ACME","serialNo":"` + strconv.FormatInt(i, 10) +
					`"},"features":{"coffee-brewer":{"properties":{"brewed-coffees":0}}}}`))
				if err == nil {
					_, err = n.things.Handle(context.Background(), ditto.Command{Action: ditto.ActionModify,
						Entity: "load:thing-" + strconv.FormatInt(i, 10), Path: ditto.Pointer{}, Value: v, Headers: ditto.Headers{}, Auth: owner})
				}
				if err != nil {
					select {
					case errs <- fmt.Errorf("create thing %d: %w", i, err):
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

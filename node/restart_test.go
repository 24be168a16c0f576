package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// restartBudget is what a restart of a node holding 100k things may take
// until the first successful read (the target on a 2-core machine).
const restartBudget = 3 * time.Second

// restartThings is how many things TestRestartLarge loads: 100k for the
// real measurement, 5k under -short or -race.
func restartThings() int {
	if testing.Short() || raceEnabled {
		return 5_000
	}
	return 100_000
}

// TestRestartLarge loads many things, takes snapshots, writes more so the
// restart both restores snapshots and replays log entries, restarts the
// node and checks that the first read comes fast and that every read and
// every search sees every acknowledged write.
func TestRestartLarge(t *testing.T) {
	n := restartThings()
	dir := t.TempDir()
	// The things share one policy, so that loading stays fast and the
	// budget measures the things restore and the search start-up;
	// DITTONODE_RESTART_POLICY=per-thing gives every thing its default
	// policy (one policy per thing, as Ditto does) to include the
	// policies restore.
	shared := os.Getenv("DITTONODE_RESTART_POLICY") != "per-thing"
	quiet := func(c *Config) {
		c.Raft.NoSync = true
	}
	node1, err := startQuiet(t, dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	loadThings(t, node1, n, shared)
	t.Logf("loaded %d things in %s", n, time.Since(start).Round(time.Millisecond))
	for _, g := range node1.groups {
		if err := g.Snapshot(); err != nil {
			t.Fatalf("snapshot %s: %v", g.Status().Name, err)
		}
	}
	// Entries after the snapshot: the restart replays them from the log.
	modified := modifyThings(t, node1, n, 10)
	t.Logf("modified %d things after the snapshot", modified)
	if err := node1.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart and read one thing as soon as the gateway answers.
	// DITTONODE_RESTART_CPUPROFILE=file profiles the restart alone.
	if f := os.Getenv("DITTONODE_RESTART_CPUPROFILE"); f != "" {
		stop := cpuProfile(t, f)
		defer stop()
	}
	begin := time.Now()
	node2, err := startQuiet(t, dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Since(begin)
	c := newClient(t, node2, "ditto")
	probe := restartThingID(n - 1)
	waitFor(t, 10*time.Second, func() error {
		r := c.do("GET", "/api/2/things/"+probe, "")
		if r.status != http.StatusOK {
			return fmt.Errorf("status %d: %s", r.status, r.body)
		}
		return nil
	})
	firstRead := time.Since(begin)
	t.Logf("restart with %d things: Start returned after %s, first successful read after %s",
		n, started.Round(time.Millisecond), firstRead.Round(time.Millisecond))

	// A write acknowledged while the index may still be building, then a
	// search right away: it waits for the index to be complete and sees
	// every thing, the new one included.
	ready := node2.search.Ready()
	expectStatus(t, c.do("PUT", "/api/2/things/restart:late", `{"attributes":{"touched":true}}`), http.StatusCreated)
	r := c.do("GET", "/api/2/search/things/count", "")
	expectStatus(t, r, http.StatusOK)
	if got := strings.TrimSpace(string(r.body)); got != strconv.Itoa(n+1) {
		t.Errorf("search count %s right after the restart (index ready before: %t), want %d", got, ready, n+1)
	}
	t.Logf("search answered %s after the restart began (index ready before the request: %t)",
		time.Since(begin).Round(time.Millisecond), ready)

	// Every thing is there with its revision.
	for i := range n {
		id := restartThingID(i)
		rec, ok := node2.things.Lookup(id)
		if !ok {
			t.Fatalf("thing %s missing after restart", id)
		}
		if want := restartRevision(i, 10); rec.Revision != want {
			t.Fatalf("thing %s at revision %d after restart, want %d", id, rec.Revision, want)
		}
	}
	for _, i := range []int{0, 1, n / 2, n - 10, n - 1} {
		id := restartThingID(i)
		r := c.do("GET", "/api/2/things/"+id+"?fields=_revision,attributes/serialNo", "")
		expectStatus(t, r, http.StatusOK)
		m := r.json(t)
		if m["_revision"] != float64(restartRevision(i, 10)) || m["attributes"].(map[string]any)["serialNo"] != strconv.Itoa(i) {
			t.Errorf("thing %s after restart: %s", id, r.body)
		}
	}
	// Search sees every modification.
	r = c.do("GET", "/api/2/search/things/count?filter="+`eq(attributes/touched,true)`, "")
	expectStatus(t, r, http.StatusOK)
	if got := strings.TrimSpace(string(r.body)); got != strconv.Itoa(modified+1) {
		t.Errorf("search count of modified things %s after restart, want %d", got, modified+1)
	}
	if !testing.Short() && !raceEnabled && firstRead > restartBudget {
		t.Errorf("first read %s after the restart began, budget %s", firstRead.Round(time.Millisecond), restartBudget)
	}
}

// startQuiet starts a node in dir with logs at info level (a large load
// at debug level would flood the test log) and returns it.
func startQuiet(t *testing.T, dir string, cb func(*Config)) (*Node, error) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.Users = map[string]string{"ditto": "ditto"}
	if cb != nil {
		cb(&cfg)
	}
	n, err := New(cfg, Deps{Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = n.Close() })
	return n, nil
}

func restartThingID(i int) string { return fmt.Sprintf("restart:thing-%06d", i) }

// restartRevision is the revision of thing i after loadThings and
// modifyThings(every).
func restartRevision(i, every int) int64 {
	if i%every == 0 {
		return 2
	}
	return 1
}

var (
	restartAuth = ditto.Auth{Subjects: []string{"nginx:ditto"}}
	touchedPath = ditto.Pointer{"attributes", "touched"}
)

// loadThings creates n things through the things service (each a real
// Raft proposal; concurrent proposals share log appends). With shared all
// things use one policy, else each gets its default policy.
func loadThings(t *testing.T, nd *Node, n int, shared bool) {
	t.Helper()
	ctx := context.Background()
	const sharedPolicy = "restart:policy"
	if shared {
		policy := map[string]any{"entries": map[string]any{"owner": map[string]any{
			"subjects": map[string]any{"nginx:ditto": map[string]any{"type": "basic"}},
			"resources": map[string]any{
				"thing:/":  map[string]any{"grant": []any{"READ", "WRITE"}, "revoke": []any{}},
				"policy:/": map[string]any{"grant": []any{"READ", "WRITE"}, "revoke": []any{}},
			},
		}}}
		_, err := nd.policies.Handle(ctx, ditto.Command{Action: ditto.ActionCreate, Entity: sharedPolicy,
			Value: policy, Headers: ditto.Headers{}, Auth: restartAuth})
		if err != nil {
			t.Fatal(err)
		}
	}
	models := []string{"Speedster", "Classic", "Barista", "Mini"}
	parallel(t, n, func(i int) error {
		body := fmt.Sprintf(`{"attributes":{"manufacturer":"ACME","serialNo":"%d","model":"%s","year":%d,`+
			`"location":{"building":"b%d","floor":%d}},"features":{"coffee-brewer":{"properties":{"brewed-coffees":%d}}}}`,
			i, models[i%len(models)], 2000+i%25, i%50, i%7, i%10000)
		v, err := ditto.DecodeJSON([]byte(body))
		if err != nil {
			return err
		}
		if shared {
			v.(map[string]any)["policyId"] = sharedPolicy
		}
		_, err = nd.things.Handle(ctx, ditto.Command{Action: ditto.ActionCreate, Entity: restartThingID(i),
			Value: v, Headers: ditto.Headers{}, Auth: restartAuth})
		return err
	})
}

// modifyThings sets attributes/touched on every every-th thing and returns
// how many it modified.
func modifyThings(t *testing.T, nd *Node, n, every int) int {
	t.Helper()
	var count atomic.Int64
	parallel(t, (n+every-1)/every, func(j int) error {
		_, err := nd.things.Handle(context.Background(), ditto.Command{Action: ditto.ActionModify,
			Entity: restartThingID(j * every), Path: touchedPath,
			Value: true, Headers: ditto.Headers{}, Auth: restartAuth})
		if err == nil {
			count.Add(1)
		}
		return err
	})
	return int(count.Load())
}

// parallel runs fn(0..n-1) on a pool of workers and fails the test on the
// first error.
func parallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	const workers = 128
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("item %d: %w", i, err))
					mu.Unlock()
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// cpuProfile writes a CPU profile to file until the returned stop is
// called.
func cpuProfile(t *testing.T, file string) (stop func()) {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}
}

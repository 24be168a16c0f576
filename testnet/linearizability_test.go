package testnet

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/node"
)

var (
	chaosDuration = flag.Duration("chaos.duration", 0, "run TestChaos for this long (make chaos)")
	chaosSeed     = flag.Int64("chaos.seed", 7, "seed of TestChaos's clients and nemesis")
)

// TestLinearizability is the short seeded run of make test: 3 nodes, 6
// clients, 12 s of partitions, pauses, kills and restarts.
func TestLinearizability(t *testing.T) {
	runLinearizability(t, 12*time.Second, 42, false)
}

// TestChaos is the long run behind make chaos (-chaos.duration=5m); its
// nemesis also wipes nodes.
func TestChaos(t *testing.T) {
	if *chaosDuration <= 0 {
		t.Skip("set -chaos.duration to run the long linearizability test (make chaos)")
	}
	runLinearizability(t, *chaosDuration, *chaosSeed, true)
}

const (
	linKeys    = 3
	linClients = 6
	// linTimeout bounds one client request; the command timeout is
	// shorter so that the node usually answers (408/503) first.
	linTimeout = 2500 * time.Millisecond
)

func linThing(k int) string { return fmt.Sprintf("/api/2/things/org.lin:k%d", k) }

// runLinearizability drives concurrent clients against every node while a
// nemesis injects faults, then checks
//   - the history of default (linearizable) reads, writes and conditional
//     writes with porcupine against the register-with-revision model;
//   - that replicas applied the same value at every revision;
//   - that no acknowledged write is lost: its value is the one the cluster
//     applied at its revision, and every node's final revision is at least
//     that revision;
//   - that consistency=local reads are monotonic per node incarnation and
//     see the node's own acknowledged writes (they are not linearizable
//     and are not part of the porcupine history).
func runLinearizability(t *testing.T, d time.Duration, seed int64, wipe bool) {
	app := newApplied()
	net := New(t, Options{Nodes: 3, Seed: seed, BeforeStart: func(i int, n *node.Node) {
		n.Bus().Observe(func(s ditto.Signal) { observeApplied(app, i, s) })
	}})
	c := newClient(t, linTimeout)
	for k := range linKeys {
		// Create once: a retry after an unknown outcome meets 412.
		err := net.Await(30*time.Second, func() error {
			code, _, b, err := c.do(context.Background(), http.MethodPut, net.URL(0)+linThing(k)+"?timeout=2s",
				`{"attributes":{"v":0}}`, "If-None-Match", "*")
			if err != nil || (code != http.StatusCreated && code != http.StatusPreconditionFailed) {
				return fmt.Errorf("create k%d: %d %s %v", k, code, b, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The history starts once every node serves every key. (A thing's
	// default policy lives in the policies group, which a node may apply
	// after the thing itself; until it does, that node answers 404/403 for
	// the thing. The things read barrier does not cover the policies
	// group; see the report of issue 3.)
	net.WaitConverged(30 * time.Second)
	for k := range linKeys {
		for i := range net.Size() {
			err := net.Await(30*time.Second, func() error {
				code, _, b, err := c.do(context.Background(), http.MethodGet, net.URL(i)+linThing(k), "")
				if err != nil || code != http.StatusOK {
					return fmt.Errorf("k%d through node %d: %d %s %v", k, i, code, b, err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	initial := regState{Value: 0, Rev: 1}
	for k := range linKeys {
		if v, ok := app.lookup(k, 1); !ok || v != 0 {
			t.Fatalf("k%d not created at revision 1 (%d, %v)", k, v, ok)
		}
	}

	run := &linRun{t: t, net: net, app: app, hist: &history{}, start: time.Now(), local: newLocalChecker()}
	for range linClients + 1 {
		run.clients = append(run.clients, newClient(t, linTimeout))
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range linClients {
		wg.Go(func() { run.client(ctx, i, rand.New(rand.NewPCG(uint64(seed), uint64(i)))) })
	}
	nem := run.nemesis(time.Now().Add(d), rand.New(rand.NewPCG(uint64(seed), 1000)), wipe)
	stop()
	wg.Wait()
	t.Logf("clients and nemesis ran %s", time.Since(run.start).Round(time.Millisecond))
	recovery := time.Now()

	// Recover everything, wait until the replicas agree, then read every
	// key through every node (part of the history).
	net.Heal()
	for i := range net.Size() {
		net.Resume(i)
		if !net.Running(i) {
			net.Restart(i)
		}
	}
	net.WaitConverged(60 * time.Second)
	t.Logf("recovered and converged in %s", time.Since(recovery).Round(time.Millisecond))
	final := make([]int64, linKeys)
	for k := range linKeys {
		for i := range net.Size() {
			out, ok := run.read(context.Background(), linClients, i, k)
			if !ok {
				t.Fatalf("final read of k%d through node %d failed", k, i)
			}
			final[k] = max(final[k], out.Rev)
			if out.Rev < final[k] {
				t.Errorf("node %d ends at k%d rev %d, another at %d", i, k, out.Rev, final[k])
			}
		}
	}

	ops := run.hist.all()
	run.logStats(ops, nem)
	for _, e := range app.divergences() {
		t.Errorf("replicas diverge: %s", e)
	}
	for _, e := range run.local.errors() {
		t.Errorf("consistency=local: %s", e)
	}
	for _, lr := range run.local.reads() {
		if v, ok := app.lookup(lr.key, lr.rev); !ok || v != lr.value {
			t.Errorf("consistency=local read through node %d: k%d %d@%d was never applied (applied %d, %v)",
				lr.node, lr.key, lr.value, lr.rev, v, ok)
		}
	}
	lost := 0
	for _, op := range ops {
		in, out := op.Input.(regInput), op.Output.(regOutput)
		if in.Kind == opRead || out.Unknown || !out.OK {
			continue
		}
		v, ok := app.lookup(in.Key, out.Rev)
		if !ok || v != in.Value || final[in.Key] < out.Rev {
			lost++
			t.Errorf("lost acknowledged %s of %d to k%d at rev %d (applied %d, %v; final rev %d)",
				in.Kind, in.Value, in.Key, out.Rev, v, ok, final[in.Key])
		}
	}
	ops, resolved, dropped, errs := app.resolve(ops)
	for _, e := range errs {
		t.Error(e)
	}
	t.Logf("unknown outcomes: %d applied, %d never applied", resolved, dropped)
	model := registerModel(initial)
	checking := time.Now()
	res, info := porcupine.CheckOperationsVerbose(model, ops, 3*time.Minute)
	t.Logf("porcupine: %s over %d operations in %s; lost acknowledged writes: %d",
		res, len(ops), time.Since(checking).Round(time.Millisecond), lost)
	if res != porcupine.Ok {
		path := filepath.Join(os.TempDir(), fmt.Sprintf("dittonode-linearizability-%d.html", seed))
		if err := porcupine.VisualizePath(model, info, path); err == nil {
			t.Logf("history visualised in %s", path)
		}
		t.Fatalf("history is not linearizable: %s", res)
	}
}

// observeApplied records the thing events of the test keys.
func observeApplied(app *applied, node int, s ditto.Signal) {
	name, ok := strings.CutPrefix(s.EntityID, "org.lin:k")
	if !ok || s.State == nil {
		return
	}
	k, err := strconv.Atoi(name)
	if err != nil {
		return
	}
	var th struct {
		Attributes struct{ V int64 } `json:"attributes"`
	}
	if json.Unmarshal(s.State, &th) != nil {
		return
	}
	app.record(node, k, s.Revision, th.Attributes.V)
}

type linRun struct {
	t       *testing.T
	net     *Net
	app     *applied
	hist    *history
	start   time.Time
	local   *localChecker
	clients []*client // one per client goroutine, the last for the final reads
}

func (r *linRun) now() int64 { return time.Since(r.start).Nanoseconds() }

// client runs one sequential client until ctx ends: it picks a key and a
// node at random, and reads (default or local), writes or writes
// conditionally on the last revision it saw of the key.
func (r *linRun) client(ctx context.Context, id int, rnd *rand.Rand) {
	seq := int64(0)
	lastRev := make([]int64, linKeys)
	for ctx.Err() == nil {
		k, nd := rnd.IntN(linKeys), rnd.IntN(r.net.Size())
		switch p := rnd.Float64(); {
		case p < 0.10:
			r.localRead(ctx, id, nd, k)
		case p < 0.45:
			if out, ok := r.read(ctx, id, nd, k); ok {
				lastRev[k] = out.Rev
			}
		default:
			seq++
			in := regInput{Key: k, Kind: opWrite, Value: int64(id+1)*1_000_000 + seq, Node: nd}
			if p >= 0.75 {
				in.Kind, in.Expect = opCAS, lastRev[k]
			}
			if out := r.write(ctx, id, in); out.OK && !out.Unknown {
				lastRev[k] = out.Rev
			}
		}
	}
}

func decodeThing(body []byte) (regOutput, error) {
	var th struct {
		Attributes struct{ V *int64 } `json:"attributes"`
		Revision   *int64             `json:"_revision"`
	}
	if err := json.Unmarshal(body, &th); err != nil || th.Attributes.V == nil || th.Revision == nil {
		return regOutput{}, fmt.Errorf("unexpected thing %s (%v)", body, err)
	}
	return regOutput{Value: *th.Attributes.V, Rev: *th.Revision, OK: true}, nil
}

// read is a default (linearizable) read, recorded in the history when it
// succeeds; a failed read has no effect and is left out.
func (r *linRun) read(ctx context.Context, id, nd, k int) (regOutput, bool) {
	inc := r.net.Incarnation(nd)
	call := r.now()
	code, _, body, err := r.clients[id].do(ctx, http.MethodGet,
		r.net.URL(nd)+linThing(k)+"?fields=attributes,_revision&timeout=2s", "")
	ret := r.now()
	switch {
	case err == nil && code == http.StatusNotFound:
		// A definite answer: the thing does not exist. Every key exists
		// from before the history on, so porcupine must reject it.
		r.hist.add(porcupine.Operation{ClientId: id, Input: regInput{Key: k, Kind: opRead, Node: nd}, Call: call,
			Output: regOutput{Value: -1, Rev: 0, OK: true}, Return: ret})
		return regOutput{}, false
	case err == nil && code >= 400 && code < 500 && code != http.StatusRequestTimeout:
		r.t.Errorf("read k%d through node %d: %d %s", k, nd, code, body)
		return regOutput{}, false
	case err != nil || code != http.StatusOK:
		return regOutput{}, false // unavailable or timed out: a failed read has no effect
	}
	out, err := decodeThing(body)
	if err != nil {
		r.t.Errorf("read k%d through node %d: %v", k, nd, err)
		return regOutput{}, false
	}
	r.hist.add(porcupine.Operation{ClientId: id, Input: regInput{Key: k, Kind: opRead, Node: nd}, Call: call, Output: out, Return: ret})
	r.local.saw(nd, inc, k, out.Rev, ret)
	return out, true
}

// localRead is a consistency=local read, checked for monotonicity only.
func (r *linRun) localRead(ctx context.Context, id, nd, k int) {
	inc := r.net.Incarnation(nd)
	call := r.now()
	floor := r.local.floor(nd, inc, k, call)
	code, _, body, err := r.clients[id].do(ctx, http.MethodGet,
		r.net.URL(nd)+linThing(k)+"?fields=attributes,_revision", "", ditto.HeaderConsistency, "local")
	ret := r.now()
	if err != nil || code != http.StatusOK || r.net.Incarnation(nd) != inc {
		return
	}
	out, err := decodeThing(body)
	if err != nil {
		r.t.Errorf("local read k%d through node %d: %v", k, nd, err)
		return
	}
	r.local.check(nd, inc, k, out, floor)
	r.local.saw(nd, inc, k, out.Rev, ret)
}

// write is a write or a conditional write; every outcome is recorded:
// 204 with its revision, 412 as a failed conditional write, anything else
// (errors, timeouts, 503, 408) as unknown.
func (r *linRun) write(ctx context.Context, id int, in regInput) regOutput {
	inc := r.net.Incarnation(in.Node)
	hdr := []string{}
	if in.Kind == opCAS {
		hdr = append(hdr, "If-Match", ditto.RevisionETag(in.Expect))
	}
	body := fmt.Sprintf(`{"attributes":{"v":%d}}`, in.Value)
	call := r.now()
	code, h, resp, err := r.clients[id].do(ctx, http.MethodPut, r.net.URL(in.Node)+linThing(in.Key)+"?timeout=2s", body, hdr...)
	ret := r.now()
	var out regOutput
	switch {
	case err == nil && code == http.StatusNoContent:
		rev, perr := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(h.Get("ETag"), `"rev:`), `"`), 10, 64)
		if perr != nil {
			r.t.Errorf("write answered 204 without a revision ETag: %q", h.Get("ETag"))
			out, ret = regOutput{Unknown: true}, unknownReturn
			break
		}
		out = regOutput{Rev: rev, OK: true}
		r.local.saw(in.Node, inc, in.Key, rev, ret)
	case err == nil && code == http.StatusPreconditionFailed && in.Kind == opCAS:
		out = regOutput{}
	case err == nil && code >= 400 && code < 500 && code != http.StatusRequestTimeout:
		r.t.Errorf("%s of k%d through node %d: %d %s", in.Kind, in.Key, in.Node, code, resp)
		out, ret = regOutput{Unknown: true}, unknownReturn
	default:
		out, ret = regOutput{Unknown: true}, unknownReturn
	}
	r.hist.add(porcupine.Operation{ClientId: id, Input: in, Call: call, Output: out, Return: ret})
	return out
}

// nemesis injects one fault at a time until end, every kind once per round
// in a seeded order: it lets the cluster work for 0.3-0.7 s, holds the
// fault for 0.5-1.2 s and repairs it. It returns how often it did what.
// With wipe it also replaces nodes by empty ones (Net.Wipe).
func (r *linRun) nemesis(end time.Time, rnd *rand.Rand, wipe bool) map[string]int {
	n := r.net
	done := map[string]int{}
	hold := func(lo, hi time.Duration) {
		<-time.After(lo + time.Duration(rnd.Int64N(int64(hi-lo)))) // the fault's duration
	}
	actions := 6
	if wipe {
		actions++
	}
	var order []int // every action once per round, in a seeded order
	for time.Now().Before(end) {
		hold(300*time.Millisecond, 700*time.Millisecond)
		if len(order) == 0 {
			order = rnd.Perm(actions)
		}
		a := order[0]
		order = order[1:]
		victim := rnd.IntN(n.Size())
		leader := n.Leader(node.GroupThings)
		if leader < 0 {
			leader = victim
		}
		began := time.Now()
		switch a {
		case 0:
			done["partition leader"]++
			n.Isolate(leader)
			hold(500*time.Millisecond, 1200*time.Millisecond)
			n.Heal()
		case 1:
			done["partition node"]++
			n.Isolate(victim)
			hold(500*time.Millisecond, 1200*time.Millisecond)
			n.Heal()
		case 2:
			done["pause"]++
			n.Pause(victim)
			hold(500*time.Millisecond, 1200*time.Millisecond)
			n.Resume(victim)
		case 3:
			done["kill leader"]++
			n.Kill(leader)
			hold(500*time.Millisecond, 1200*time.Millisecond)
			n.Restart(leader)
		case 4:
			done["kill node"]++
			n.Kill(victim)
			hold(500*time.Millisecond, 1200*time.Millisecond)
			n.Restart(victim)
		default:
			done["lossy links"]++
			for j := range n.Size() {
				if j != victim {
					n.Drop(victim, j, 0.2)
					n.Drop(j, victim, 0.2)
					n.Delay(victim, j, 10*time.Millisecond)
				}
			}
			hold(500*time.Millisecond, 1200*time.Millisecond)
			n.Heal()
		case 6:
			done["wipe"]++
			n.Wipe(victim)
		}
		r.t.Logf("nemesis at %s: action %d (victim %d, leader %d) for %s", began.Sub(r.start).Round(time.Millisecond),
			a, victim, leader, time.Since(began).Round(time.Millisecond))
	}
	return done
}

func (r *linRun) logStats(ops []porcupine.Operation, nem map[string]int) {
	counts := map[string]int{}
	for _, op := range ops {
		in, out := op.Input.(regInput), op.Output.(regOutput)
		switch {
		case in.Kind == opRead:
			counts["read"]++
		case out.Unknown:
			counts[in.Kind.String()+" unknown"]++
		case !out.OK:
			counts["cas 412"]++
		default:
			counts[in.Kind.String()+" ok"]++
		}
	}
	r.t.Logf("operations: %v; local reads checked: %d; nemesis: %v", counts, r.local.checked(), nem)
}

// localChecker checks consistency=local reads: per node incarnation and
// key, a local read returns at least the highest revision that node
// returned or acknowledged before the read was invoked (monotonic reads,
// read-your-writes through the same node).
type localChecker struct {
	mu    sync.Mutex
	seen  map[localKey][]revAt
	errs  []string
	all   []localRead // checked against the applied log at the end
	count int
}

type localRead struct {
	node, key  int
	value, rev int64
}

type localKey struct{ node, inc, key int }

type revAt struct {
	rev int64
	at  int64 // return time
}

func newLocalChecker() *localChecker { return &localChecker{seen: map[localKey][]revAt{}} }

func (l *localChecker) saw(node, inc, key int, rev, at int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := localKey{node, inc, key}
	l.seen[k] = append(l.seen[k], revAt{rev, at})
}

// floor is the highest revision node returned for key before time call.
func (l *localChecker) floor(node, inc, key int, call int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := int64(0)
	for _, s := range l.seen[localKey{node, inc, key}] {
		if s.at < call {
			f = max(f, s.rev)
		}
	}
	return f
}

func (l *localChecker) check(node, inc, key int, out regOutput, floor int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count++
	l.all = append(l.all, localRead{node: node, key: key, value: out.Value, rev: out.Rev})
	if out.Rev < floor && len(l.errs) < 20 {
		l.errs = append(l.errs, fmt.Sprintf("node %d (start %d) returned k%d rev %d after it had returned or acknowledged rev %d",
			node, inc, key, out.Rev, floor))
	}
}

func (l *localChecker) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}

func (l *localChecker) reads() []localRead {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]localRead(nil), l.all...)
}

func (l *localChecker) checked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count
}

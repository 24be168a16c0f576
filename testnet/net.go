package testnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dittonode/dittonode/node"
)

// HTTP basic credentials of every node in the net.
const (
	User     = "ditto"
	Password = "ditto"
)

// Options configure a net.
type Options struct {
	// Nodes is the cluster size (default 3).
	Nodes int
	// Secret is the cluster secret (default a fixed test secret).
	Secret string
	// Seed seeds the random link losses of Drop.
	Seed int64
	// Logs sends node logs from LogLevel up to t.Log (off by default:
	// injected faults make Raft log a lot).
	Logs     bool
	LogLevel slog.Level
	// Sync turns fsync of the Raft logs on. Off by default: a node killed
	// in-process keeps the page cache, exactly like a kill -9.
	Sync bool
	// Configure adjusts node i's configuration before each start.
	Configure func(i int, c *node.Config)
	// BeforeStart runs after node i is built and before it starts (on
	// every start), e.g. to observe its bus while it replays its log.
	BeforeStart func(i int, n *node.Node)
}

// Net is a running cluster of real nodes in the test process.
type Net struct {
	t     testing.TB
	opts  Options
	links *links
	http  *http.Client
	logs  *logSink

	mu      sync.Mutex
	members []*member
}

// member is one node slot; its node changes on Restart and Wipe.
type member struct {
	dir         string
	listen      []string // libp2p listen addrs; fixed ports after the first start
	node        *node.Node
	id          string
	httpAddr    string
	proxy       *proxy
	incarnation int
	paused      bool
}

// New starts opts.Nodes nodes: node 0 bootstraps the cluster, the others
// join it through node 0's libp2p address. It returns once every node
// agrees on the members and leaders. Everything is closed when the test
// ends. New skips the test under -short.
func New(t testing.TB, opts Options) *Net {
	t.Helper()
	if testing.Short() {
		t.Skip("testnet starts a multi-node cluster; skipped under -short")
	}
	if opts.Nodes <= 0 {
		opts.Nodes = 3
	}
	if opts.Secret == "" {
		opts.Secret = "testnet-cluster-secret"
	}
	if lv := os.Getenv("DITTONODE_TESTNET_LOGS"); lv != "" && !opts.Logs {
		// Debugging aid: DITTONODE_TESTNET_LOGS=debug (or info, warn,
		// error) sends every node's logs to t.Log.
		if err := opts.LogLevel.UnmarshalText([]byte(lv)); err != nil {
			t.Fatalf("testnet: DITTONODE_TESTNET_LOGS=%q: %v", lv, err)
		}
		opts.Logs = true
	}
	n := &Net{
		t: t, opts: opts, links: newLinks(opts.Seed), logs: &logSink{t: t},
		http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}},
	}
	t.Cleanup(n.close)
	for range opts.Nodes {
		p, err := newProxy()
		if err != nil {
			t.Fatalf("testnet: http proxy: %v", err)
		}
		n.members = append(n.members, &member{
			dir:    t.TempDir(),
			listen: defaultListen(),
			proxy:  p,
		})
	}
	if err := n.start(0, nil); err != nil {
		t.Fatalf("testnet: start node 0: %v", err)
	}
	join := n.members[0].node.P2PAddrs()
	var wg sync.WaitGroup
	errs := make([]error, opts.Nodes)
	for i := 1; i < opts.Nodes; i++ {
		wg.Go(func() { errs[i] = n.start(i, join) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("testnet: start: %v", err)
	}
	n.WaitConverged(30 * time.Second)
	return n
}

func defaultListen() []string {
	return []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
}

// start builds and starts node i on its data directory.
func (n *Net) start(i int, join []string) error {
	n.mu.Lock()
	m := n.members[i]
	cfg := node.DefaultConfig()
	cfg.DataDir = m.dir
	cfg.NodeName = fmt.Sprintf("n%d", i)
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.Users = map[string]string{User: Password}
	cfg.Raft.NoSync = !n.opts.Sync
	cfg.StartTimeout = 10 * time.Second
	cfg.Mesh.ClusterSecret = n.opts.Secret
	cfg.Mesh.MDNS = false
	cfg.Mesh.Listen = slices.Clone(m.listen)
	cfg.Mesh.Join = join
	n.mu.Unlock()
	if n.opts.Configure != nil {
		n.opts.Configure(i, &cfg)
	}
	logger := slog.New(slog.DiscardHandler)
	if n.opts.Logs {
		logger = slog.New(slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: n.opts.LogLevel}))
	}
	nd, err := node.New(cfg, node.Deps{Logger: logger, Links: n.links.faults(i)})
	if err != nil {
		return err
	}
	if n.opts.BeforeStart != nil {
		n.opts.BeforeStart(i, nd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := nd.Start(ctx); err != nil {
		return fmt.Errorf("node %d: %w", i, err)
	}
	n.links.setID(i, nd.ID())
	n.mu.Lock()
	defer n.mu.Unlock()
	m.node, m.id, m.httpAddr = nd, nd.ID(), nd.HTTPAddr().String()
	m.incarnation++
	// A restart listens on the same ports, as a restarted process would.
	m.listen = m.listen[:0]
	for _, a := range nd.P2PAddrs() {
		m.listen = append(m.listen, a[:strings.Index(a, "/p2p/")])
	}
	m.proxy.setBackend(m.httpAddr)
	return nil
}

// Size is the number of node slots.
func (n *Net) Size() int { return len(n.members) }

// Node is node i, or nil while it is killed.
func (n *Net) Node(i int) *node.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.members[i].node
}

// URL is the HTTP base URL of node i (http://127.0.0.1:port, through the
// harness proxy; it stays the same across restarts).
func (n *Net) URL(i int) string { return "http://" + n.members[i].proxy.Addr() }

// Incarnation counts the starts of node i; it changes on Restart and Wipe.
func (n *Net) Incarnation(i int) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.members[i].incarnation
}

// Running reports whether node i is started (paused or not).
func (n *Net) Running(i int) bool { return n.Node(i) != nil }

// Partition cuts every link between the nodes of a and the nodes of b, in
// both directions; links within a side stay as they are.
func (n *Net) Partition(a, b []int) { n.links.partition(a, b) }

// Isolate partitions node i from all others.
func (n *Net) Isolate(i int) {
	var others []int
	for j := range n.members {
		if j != i {
			others = append(others, j)
		}
	}
	n.Partition([]int{i}, others)
}

// Heal removes every partition, loss and delay (pauses stay until Resume).
func (n *Net) Heal() { n.links.heal() }

// Drop makes a share p (0..1) of the writes and dials from node from to
// node to fail, resetting their stream; 0 removes the loss.
func (n *Net) Drop(from, to int, p float64) { n.links.setDrop(from, to, p) }

// Delay adds d before every write and dial from node from to node to.
func (n *Net) Delay(from, to int, d time.Duration) { n.links.setDelay(from, to, d) }

// DelayGroup adds d before every write and dial of the Raft traffic of
// one group from node from to node to (the other groups and protocols
// are not delayed): node to then applies that group's entries late.
func (n *Net) DelayGroup(from, to int, group string, d time.Duration) {
	n.links.setProtoDelay(from, to, node.RaftProtocol(group), d)
}

// SetLatency sets the delay of every link in both directions.
func (n *Net) SetLatency(d time.Duration) {
	for i := range n.members {
		for j := range n.members {
			if i != j {
				n.Delay(i, j, d)
			}
		}
	}
}

// Pause stops node i from serving without closing anything: all its links
// are cut and its HTTP traffic is held until Resume.
func (n *Net) Pause(i int) {
	n.mu.Lock()
	n.members[i].paused = true
	n.mu.Unlock()
	n.links.setPaused(i, true)
	n.members[i].proxy.pause()
}

// Resume lets a paused node serve again.
func (n *Net) Resume(i int) {
	n.mu.Lock()
	n.members[i].paused = false
	n.mu.Unlock()
	n.links.setPaused(i, false)
	n.members[i].proxy.resume()
}

// Kill closes node i abruptly, keeping its data: its links are cut first
// so that nothing it sends while closing (leadership transfer, goodbyes)
// reaches anyone, and its HTTP clients see their connections close.
func (n *Net) Kill(i int) {
	n.t.Helper()
	if i < 0 || i >= len(n.members) {
		n.t.Fatalf("testnet: kill node %d of %d", i, len(n.members))
	}
	n.mu.Lock()
	m := n.members[i]
	nd := m.node
	m.node = nil
	n.mu.Unlock()
	if nd == nil {
		return
	}
	n.links.setDown(i, true)
	m.proxy.setBackend("")
	if err := nd.Close(); err != nil {
		n.t.Logf("testnet: close node %d: %v", i, err)
	}
	n.links.setDown(i, false)
}

// Restart starts a killed node again on its data directory and ports (it
// kills the node first if it runs).
func (n *Net) Restart(i int) {
	n.t.Helper()
	n.Kill(i)
	if err := n.start(i, n.joinAddrs(i)); err != nil {
		n.t.Fatalf("testnet: restart node %d: %v", i, err)
	}
}

// Wipe replaces node i by a node with an empty data directory. Raft
// forbids a member to come back without its log (it could vote twice), so
// the wiped node is a new member: Wipe kills node i, removes its peer ID
// from every group through another node's DELETE /cluster/members/{id}
// (as an operator would) and starts a fresh node with a new identity in
// the same slot, which joins through the running members.
func (n *Net) Wipe(i int) {
	n.t.Helper()
	n.Kill(i)
	n.mu.Lock()
	old := n.members[i].id
	n.mu.Unlock()
	if err := n.Await(20*time.Second, func() error { return n.removeMember(i, old) }); err != nil {
		n.t.Fatalf("testnet: remove wiped node %d (%s): %v", i, old, err)
	}
	n.mu.Lock()
	n.members[i].dir = n.t.TempDir()
	n.members[i].listen = defaultListen()
	n.mu.Unlock()
	if err := n.start(i, n.joinAddrs(i)); err != nil {
		n.t.Fatalf("testnet: start wiped node %d: %v", i, err)
	}
}

// removeMember asks a running member other than i to remove id.
func (n *Net) removeMember(i int, id string) error {
	var errs []error
	for j := range n.members {
		addr := n.httpAddr(j)
		if j == i || addr == "" || n.links.isolated(j) {
			continue
		}
		code, body, err := n.do(http.MethodDelete, addr, "/cluster/members/"+id)
		switch {
		case err != nil:
			errs = append(errs, err)
		case code == http.StatusNoContent || code == http.StatusOK || code == http.StatusNotFound:
			return nil
		default:
			errs = append(errs, fmt.Errorf("node %d: %d %s", j, code, body))
		}
	}
	if len(errs) == 0 {
		return errors.New("no running member to ask")
	}
	return errors.Join(errs...)
}

// joinAddrs are the libp2p addresses of the running members other than i.
func (n *Net) joinAddrs(i int) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for j, m := range n.members {
		if j != i && m.node != nil {
			out = append(out, m.node.P2PAddrs()...)
		}
	}
	return out
}

func (n *Net) httpAddr(i int) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.members[i].node == nil {
		return ""
	}
	return n.members[i].httpAddr
}

// do sends an authenticated request straight to a node (not through its
// proxy).
func (n *Net) do(method, addr, path string) (int, []byte, error) {
	req, err := http.NewRequest(method, "http://"+addr+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth(User, Password)
	resp, err := n.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// Status is GET /cluster of node i, asked directly (also while paused).
func (n *Net) Status(i int) (node.ClusterStatus, error) {
	var st node.ClusterStatus
	addr := n.httpAddr(i)
	if addr == "" {
		return st, fmt.Errorf("node %d is not running", i)
	}
	code, body, err := n.do(http.MethodGet, addr, "/cluster")
	if err != nil {
		return st, err
	}
	if code != http.StatusOK {
		return st, fmt.Errorf("node %d: GET /cluster: %d %s", i, code, body)
	}
	return st, json.Unmarshal(body, &st)
}

// Leader is the index of the running node that leads group (the one with
// the highest term if a stale leader still believes it leads), or -1.
func (n *Net) Leader(group string) int {
	best, term := -1, uint64(0)
	for i := range n.members {
		st, err := n.Status(i)
		if err != nil {
			continue
		}
		if g := st.Groups[group]; g.State == "Leader" && (best < 0 || g.Term > term) {
			best, term = i, g.Term
		}
	}
	return best
}

// WaitLeader waits up to d until a running node leads group and returns
// its index; it fails the test otherwise.
func (n *Net) WaitLeader(group string, d time.Duration) int {
	n.t.Helper()
	l := -1
	err := n.Await(d, func() error {
		if l = n.Leader(group); l < 0 {
			return fmt.Errorf("no leader of group %s", group)
		}
		return nil
	})
	if err != nil {
		n.t.Fatalf("testnet: %v after %s", err, d)
	}
	return l
}

// Converged reports nil when every running node is unpaused, reports the
// same members (including every running node, each one reachable) and the same leader and term
// for every group, that leader is running, and every node holds the same
// log, committed to its end. (A group's applied index in /cluster counts
// only entries that reached the state machine; it passes trailing no-op,
// configuration and barrier entries when a reader waits for them, so it is
// no convergence criterion: a default read catches a node up.)
func (n *Net) Converged() error {
	var first node.ClusterStatus
	var firstIdx = -1
	var running []string
	for i := range n.members {
		n.mu.Lock()
		m := n.members[i]
		if m.node != nil {
			running = append(running, m.id)
			if m.paused {
				n.mu.Unlock()
				return fmt.Errorf("node %d is paused", i)
			}
		}
		n.mu.Unlock()
	}
	for i := range n.members {
		if n.httpAddr(i) == "" {
			continue
		}
		st, err := n.Status(i)
		if err != nil {
			return err
		}
		ids := memberIDs(st)
		for _, id := range running {
			if !slices.Contains(ids, id) {
				return fmt.Errorf("node %d does not list running node %s as a member", i, id)
			}
		}
		// A full mesh: every running member reaches every other one, so a
		// fault that cuts one node leaves the others able to elect.
		for _, m := range st.Members {
			if slices.Contains(running, m.ID) && !m.Reachable {
				return fmt.Errorf("node %d cannot reach running member %s", i, m.ID)
			}
		}
		if len(st.Groups) == 0 {
			return fmt.Errorf("node %d reports no groups", i)
		}
		for name, g := range st.Groups {
			if g.Leader == "" || !slices.Contains(running, g.Leader) {
				return fmt.Errorf("node %d: group %s has no running leader (%q)", i, name, g.Leader)
			}
			if g.CommitIndex != g.LastLogIndex || g.AppliedIndex > g.CommitIndex {
				return fmt.Errorf("node %d: group %s commit %d applied %d log %d", i, name, g.CommitIndex, g.AppliedIndex, g.LastLogIndex)
			}
		}
		if firstIdx < 0 {
			first, firstIdx = st, i
			continue
		}
		if a, b := memberIDs(first), ids; !slices.Equal(a, b) {
			return fmt.Errorf("members differ: node %d %v, node %d %v", firstIdx, a, i, b)
		}
		for name, g := range st.Groups {
			f := first.Groups[name]
			if f.Leader != g.Leader || f.Term != g.Term || f.CommitIndex != g.CommitIndex || f.LastLogIndex != g.LastLogIndex {
				return fmt.Errorf("group %s: node %d leader %.12s… term %d commit %d log %d, node %d leader %.12s… term %d commit %d log %d",
					name, firstIdx, f.Leader, f.Term, f.CommitIndex, f.LastLogIndex, i, g.Leader, g.Term, g.CommitIndex, g.LastLogIndex)
			}
		}
	}
	if firstIdx < 0 {
		return errors.New("no node is running")
	}
	return nil
}

// describe is every running node's view, for failure messages.
func (n *Net) describe() string {
	var b strings.Builder
	for i := range n.members {
		st, err := n.Status(i)
		if err != nil {
			fmt.Fprintf(&b, "node %d: %v\n", i, err)
			continue
		}
		fmt.Fprintf(&b, "node %d %.12s… members %d:", i, st.Node.ID, len(st.Members))
		for _, name := range slices.Sorted(maps.Keys(st.Groups)) {
			g := st.Groups[name]
			fmt.Fprintf(&b, " %s{%s term %d leader %.12s… commit %d applied %d log %d}",
				name, g.State, g.Term, g.Leader, g.CommitIndex, g.AppliedIndex, g.LastLogIndex)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func memberIDs(st node.ClusterStatus) []string {
	ids := make([]string, 0, len(st.Members))
	for _, m := range st.Members {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}

// WaitConverged waits up to d for Converged and fails the test otherwise.
func (n *Net) WaitConverged(d time.Duration) {
	n.t.Helper()
	if err := n.Await(d, n.Converged); err != nil {
		n.t.Fatalf("testnet: not converged after %s: %v\n%s", d, err, n.describe())
	}
}

// Await polls f until it returns nil or d passes; it returns f's last
// error then.
func (n *Net) Await(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(25 * time.Millisecond) // polling interval, not synchronisation
	}
}

func (n *Net) close() {
	n.mu.Lock()
	var nodes []*node.Node
	for _, m := range n.members {
		if m.node != nil {
			nodes = append(nodes, m.node)
			m.node = nil
		}
		m.proxy.resume()
	}
	n.mu.Unlock()
	var wg sync.WaitGroup
	for _, nd := range nodes {
		wg.Go(func() {
			if err := nd.Close(); err != nil {
				n.t.Logf("testnet: close: %v", err)
			}
		})
	}
	wg.Wait()
	for _, m := range n.members {
		_ = m.proxy.close()
	}
	n.http.CloseIdleConnections()
	n.logs.stop()
}

// logSink forwards node logs to t.Log until the net is closed.
type logSink struct {
	t       testing.TB
	mu      sync.Mutex
	stopped bool
}

func (s *logSink) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

func (s *logSink) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
}

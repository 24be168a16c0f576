package consensus

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// entry is one applied command as the test FSM records it.
type entry struct {
	Index uint64 // raft index of the entry
	Cmd   string
	Pos   uint64 // place in a packed entry
}

// result is what the test FSM returns for a command: it depends on the
// state, so a replay with a different history would give other results.
type result struct {
	Index uint64 // raft index of the entry
	Pos   uint64 // place in a packed entry
	Seq   int    // number of commands applied before this one
}

// at is where a command sits: its FSM index.
func (r result) at() uint64 { return fsmIndex(r.Index, int(r.Pos)) }

// testFSM records applied commands. It is deterministic and its snapshot
// is an O(1) capture of the append-only slice.
type testFSM struct {
	mu       sync.Mutex
	entries  []entry
	results  []result
	restores int
}

// Apply records the raft index of the command's entry (the FSM index
// without the command's place in a packed entry).
func (f *testFSM) Apply(index uint64, cmd []byte) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	idx, pos := index>>packShift, index&(packSlots-1)
	r := result{Index: idx, Pos: pos, Seq: len(f.entries)}
	f.entries = append(f.entries, entry{Index: idx, Pos: pos, Cmd: string(cmd)})
	f.results = append(f.results, r)
	return r
}

func (f *testFSM) Snapshot() (Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return testSnapshot(f.entries[:len(f.entries):len(f.entries)]), nil
}

func (f *testFSM) Restore(r io.Reader) error {
	br := bufio.NewReader(r)
	var n uint64
	if err := binary.Read(br, binary.BigEndian, &n); err != nil {
		return err
	}
	entries := make([]entry, 0, n)
	for range n {
		var hdr [12]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return err
		}
		cmd := make([]byte, binary.BigEndian.Uint32(hdr[8:]))
		if _, err := io.ReadFull(br, cmd); err != nil {
			return err
		}
		at := binary.BigEndian.Uint64(hdr[:8])
		entries = append(entries, entry{Index: at >> packShift, Pos: at & (packSlots - 1), Cmd: string(cmd)})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = entries
	f.results = nil
	f.restores++
	return nil
}

func (f *testFSM) snapshotEntries() []entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries)
}

func (f *testFSM) snapshotResults() []result {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.results)
}

type testSnapshot []entry

func (s testSnapshot) Persist(w io.Writer) error {
	bw := bufio.NewWriter(w)
	if err := binary.Write(bw, binary.BigEndian, uint64(len(s))); err != nil {
		return err
	}
	for _, e := range s {
		var hdr [12]byte
		binary.BigEndian.PutUint64(hdr[:8], fsmIndex(e.Index, int(e.Pos)))
		binary.BigEndian.PutUint32(hdr[8:], uint32(len(e.Cmd)))
		bw.Write(hdr[:])
		bw.WriteString(e.Cmd)
	}
	return bw.Flush()
}

func (testSnapshot) Release() {}

// batchTestFSM is testFSM with ApplyBatch; it counts batches.
type batchTestFSM struct {
	testFSM
	batches int
}

func (f *batchTestFSM) ApplyBatch(cmds []Command) []any {
	out := make([]any, len(cmds))
	for i, c := range cmds {
		out[i] = f.Apply(c.Index, c.Data)
	}
	f.mu.Lock()
	f.batches++
	f.mu.Unlock()
	return out
}

// recorder is what the tests need from both FSM kinds.
type recorder interface {
	FSM
	snapshotEntries() []entry
	snapshotResults() []result
}

var fsmKinds = []struct {
	name string
	new  func() recorder
}{
	{"plain", func() recorder { return &testFSM{} }},
	{"batch", func() recorder { return &batchTestFSM{} }},
}

// testConfig is a fast single-node configuration in dir.
func testConfig(dir, id string) Config {
	c := DefaultConfig()
	c.Name = "things"
	c.Dir = dir
	c.NodeID = id
	c.Bootstrap = true
	c.NoSync = true
	c.HeartbeatTimeout = 50 * time.Millisecond
	c.ElectionTimeout = 50 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	return c
}

// testLogger sends raft's logs at Warn and above to t.Log until the test
// ends; raft goroutines that outlive it are silenced instead of panicking.
func testLogger(t testing.TB) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

func (w *tWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// mustStart creates and starts a group, closing it at cleanup.
func mustStart(t testing.TB, cfg Config, fsm FSM, deps Deps) *Group {
	t.Helper()
	g, err := New(cfg, fsm, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := g.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return g
}

// waitFor polls f until it returns nil or d passes.
func waitFor(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", d, err)
		}
		<-tick.C
	}
}

func waitLeader(t testing.TB, g *Group) {
	t.Helper()
	waitFor(t, 5*time.Second, func() error {
		if !g.IsLeader() {
			return fmt.Errorf("%s is not leader: %+v", g.cfg.NodeID, g.Status())
		}
		return nil
	})
}

// memNetwork is an in-memory StreamLayer fabric built on net.Pipe: each
// node gets a memLayer whose address is its name. Closing a layer closes
// every stream it accepted or dialled, like a process dying.
type memNetwork struct {
	mu    sync.Mutex
	nodes map[string]*memLayer
}

func newMemNetwork() *memNetwork { return &memNetwork{nodes: make(map[string]*memLayer)} }

func (n *memNetwork) layer(t testing.TB, addr string) *memLayer {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := &memLayer{net: n, addr: addr, accept: make(chan net.Conn), done: make(chan struct{})}
	n.nodes[addr] = l
	t.Cleanup(func() { l.Close() })
	return l
}

type memLayer struct {
	net    *memNetwork
	addr   string
	accept chan net.Conn
	done   chan struct{}

	mu     sync.Mutex
	closed bool
	conns  []net.Conn
}

var _ StreamLayer = (*memLayer)(nil)

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

func (l *memLayer) Addr() net.Addr { return memAddr(l.addr) }

func (l *memLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memLayer) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns = append(l.conns, c)
	return true
}

func (l *memLayer) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.done)
	for _, c := range l.conns {
		c.Close()
	}
	return nil
}

func (l *memLayer) Dial(address string, timeout time.Duration) (net.Conn, error) {
	l.net.mu.Lock()
	peer := l.net.nodes[address]
	l.net.mu.Unlock()
	if peer == nil {
		return nil, fmt.Errorf("dial %s: no such node", address)
	}
	client, server := net.Pipe()
	if !l.track(client) || !peer.track(server) {
		client.Close()
		server.Close()
		return nil, fmt.Errorf("dial %s: %w", address, net.ErrClosed)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case peer.accept <- server:
		return client, nil
	case <-peer.done:
	case <-l.done:
	case <-t.C:
	}
	client.Close()
	server.Close()
	return nil, errors.New("dial " + address + ": refused")
}

// diffSlices describes how got differs from want, or returns "".
func diffSlices[E comparable](want, got []E) string {
	if slices.Equal(want, got) {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "len want %d, got %d", len(want), len(got))
	for i := range max(len(want), len(got)) {
		var w, g any = "<none>", "<none>"
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g {
			fmt.Fprintf(&b, "; first difference at %d: want %+v, got %+v", i, w, g)
			break
		}
	}
	return b.String()
}

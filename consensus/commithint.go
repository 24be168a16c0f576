package consensus

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Commit hints: how a follower learns of a commit before the leader tells
// it.
//
// A follower that forwarded a write answers its client once it applied
// the write itself, and hashicorp/raft lets a follower apply only up to
// the commit index the leader sends in an AppendEntries request. The
// leader sends one when it has new entries (whose storing the follower
// then waits for before it takes the commit index) or after CommitTimeout
// without any; heartbeats carry none. So the forwarding follower would
// learn of its own write's commit one append or CommitTimeout late.
//
// The leader's answer to a forward already says that the entry committed:
// it names the entry (index and term). A follower whose log holds that
// entry holds, by Raft's log matching property, the leader's log up to
// it, all committed; so the follower hands its own raft the request the
// leader would send: an AppendEntries of that term from that leader with
// no entries, the named entry as the previous one and its index as the
// leader's commit index. Raft checks the previous entry against its log
// as for any AppendEntries (a follower without it, or with another term
// at that index, refuses and learns nothing), then raises its commit
// index and applies. A hint of an old term is refused as any stale
// request is.

// Committed names a committed log entry: its index and the term in which
// its leader appended it. The zero value names none.
type Committed struct {
	Index uint64
	Term  uint64
}

// hintTransport is raft's network transport with a second source of
// requests: the commit hints this node hands its own raft.
//
// It also closes a gap of the network transport: raft answers heartbeats
// on the transport's connection goroutines, which Close does not stop, so
// a heartbeat that passed raft's shutdown check could still write the
// term to a log store the group closed meanwhile (raft panics then). Close
// here waits for the heartbeats in progress and refuses later ones.
type hintTransport struct {
	*raft.NetworkTransport
	rpcs chan raft.RPC
	done chan struct{}
	once sync.Once

	hbMu     sync.RWMutex
	hbClosed bool
}

func newHintTransport(nt *raft.NetworkTransport) *hintTransport {
	t := &hintTransport{NetworkTransport: nt, rpcs: make(chan raft.RPC), done: make(chan struct{})}
	go t.pump()
	return t
}

// pump passes the network's requests on to raft until Close.
func (t *hintTransport) pump() {
	in := t.NetworkTransport.Consumer()
	for {
		select {
		case rpc := <-in:
			select {
			case t.rpcs <- rpc:
			case <-t.done:
				return
			}
		case <-t.done:
			return
		}
	}
}

// Consumer is where raft reads the requests it must answer.
func (t *hintTransport) Consumer() <-chan raft.RPC { return t.rpcs }

// SetHeartbeatHandler passes raft's heartbeat handler on, guarded so
// that none runs after Close returned.
func (t *hintTransport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		t.NetworkTransport.SetHeartbeatHandler(nil)
		return
	}
	t.NetworkTransport.SetHeartbeatHandler(func(rpc raft.RPC) {
		t.hbMu.RLock()
		defer t.hbMu.RUnlock()
		if t.hbClosed {
			rpc.Respond(nil, raft.ErrTransportShutdown)
			return
		}
		cb(rpc)
	})
}

// Close stops the pump and the heartbeat handler and closes the network
// transport.
func (t *hintTransport) Close() error {
	t.once.Do(func() { close(t.done) })
	t.hbMu.Lock()
	t.hbClosed = true
	t.hbMu.Unlock()
	return t.NetworkTransport.Close()
}

// hintTimeout bounds how long a hint waits for raft to take it, and how
// long a hint for an entry this node has not received yet is kept.
const hintTimeout = 50 * time.Millisecond

// hint hands raft the commit of c, learned from leaderID at leaderAddr, and
// reports whether raft accepted it. It returns false at once when raft is
// busy for longer than hintTimeout.
func (t *hintTransport) hint(leaderID, leaderAddr string, c Committed) bool {
	resp := make(chan raft.RPCResponse, 1)
	req := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{
			ProtocolVersion: raft.ProtocolVersionMax,
			ID:              []byte(leaderID),
			Addr:            []byte(leaderAddr),
		},
		Term:              c.Term,
		Leader:            []byte(leaderAddr),
		PrevLogEntry:      c.Index,
		PrevLogTerm:       c.Term,
		LeaderCommitIndex: c.Index,
	}
	timer := time.NewTimer(hintTimeout)
	defer timer.Stop()
	select {
	case t.rpcs <- raft.RPC{Command: req, RespChan: resp}:
	case <-timer.C:
		return false
	case <-t.done:
		return false
	}
	// Raft answers every request it took; the channel is buffered, so it
	// never blocks on us.
	select {
	case r := <-resp:
		ae, ok := r.Response.(*raft.AppendEntriesResponse)
		return r.Error == nil && ok && ae.Success
	case <-t.done:
		return false
	}
}

// commitHints holds the latest hint for the hint loop.
type commitHints struct {
	kick chan struct{}

	mu       sync.Mutex
	c        Committed
	id, addr string
}

func (h *commitHints) init() { h.kick = make(chan struct{}, 1) }

// learnCommit tells this follower that c committed under the leader id at
// addr (the leader's answer to a forward). Best effort: raft learns it
// from the leader anyway, later.
func (g *Group) learnCommit(id, addr string, c Committed) {
	if g.hints == nil || c.Index == 0 || g.applied.load() >= c.Index {
		return
	}
	h := &g.commitHint
	h.mu.Lock()
	if c.Index > h.c.Index {
		h.c, h.id, h.addr = c, id, addr
	}
	h.mu.Unlock()
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// hintLoop hands raft the latest hint until the group closes. A hint for
// an entry this node has not stored yet (the leader committed it with
// another follower's vote) waits, polled, until the entry arrives or
// hintTimeout passes.
func (g *Group) hintLoop(r *raft.Raft) {
	defer g.wg.Done()
	h := &g.commitHint
	t := time.NewTimer(catchUpPoll)
	t.Stop()
	for {
		select {
		case <-g.done:
			return
		case <-h.kick:
		}
		h.mu.Lock()
		c, id, addr := h.c, h.id, h.addr
		h.mu.Unlock()
		for deadline := time.Now().Add(hintTimeout); ; {
			if r.CommitIndex() >= c.Index || r.State() != raft.Follower {
				break
			}
			if r.LastIndex() >= c.Index {
				if g.hints.hint(id, addr, c) {
					g.stats.commitHints.Add(1)
				}
				break
			}
			if time.Now().After(deadline) {
				break
			}
			t.Reset(catchUpPoll)
			select {
			case <-g.done:
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

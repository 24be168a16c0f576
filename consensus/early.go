package consensus

import (
	"sync"

	"github.com/hashicorp/raft"
)

// Early replication: a leader sends each batch of new entries to its
// followers while it writes the batch to its own log, not after.
//
// hashicorp/raft's leader loop stores a batch (a bolt transaction with two
// fsyncs) and only then wakes its replicators, which send the batch and
// wait for a follower to store it too: a commit costs the leader's log
// write and then a follower's, one after the other. Raft itself does not
// need that order: the entries are the leader's log from the moment it
// gave them indexes in its term, and the leader may write its own log in
// parallel with sending it, as long as it counts itself towards a majority
// only once its write is durable (which raft still does: it records its
// own match after StoreLogs returned).
//
// So the log store hook below, called by raft's leader loop right before
// it writes a batch, hands the batch to one sender per voting follower.
// The sender delivers it as an ordinary AppendEntries request of the
// leader's term (previous entry, entries, no commit index) over raft's
// own transport. The follower checks the previous entry and stores the
// entries durably as for any request from its leader; when raft's own
// request with the same entries arrives, the follower finds them stored
// and answers at once. Only raft's own requests and answers count towards
// the commit: an early request changes when the follower's fsync happens,
// not what a commit needs. A follower that refuses an early request (it
// is behind, or the term changed) loses nothing: raft's replication sends
// it what it needs, as before.
//
// A sender has at most one request in flight; batches that arrive
// meanwhile are merged into the next request (up to maxEarlyEntries, then
// the older ones are left to raft's replication).

// maxEarlyEntries bounds the entries waiting for one follower's sender.
const maxEarlyEntries = 1024

// earlyReplicator owns the senders of one group.
type earlyReplicator struct {
	g     *Group
	trans *hintTransport

	mu    sync.Mutex
	peers map[raft.ServerID]*earlyPeer
}

// earlyPeer is the sender to one follower.
type earlyPeer struct {
	id   raft.ServerID
	addr raft.ServerAddress
	kick chan struct{}
	stop chan struct{}

	mu        sync.Mutex
	prevIndex uint64 // the entry before pending[0]
	prevTerm  uint64
	pending   []*raft.Log
}

func newEarlyReplicator(g *Group, t *hintTransport) *earlyReplicator {
	return &earlyReplicator{g: g, trans: t, peers: make(map[raft.ServerID]*earlyPeer)}
}

// offer is called by the log store before it writes logs. On the leader
// it queues logs for every voting follower; elsewhere it does nothing. It
// runs on raft's main goroutine and does not block.
func (e *earlyReplicator) offer(logs []*raft.Log) {
	r := e.g.r.Load()
	if len(logs) == 0 || r == nil || r.State() != raft.Leader || e.g.closing.Load() {
		return
	}
	first := logs[0]
	for _, l := range logs[1:] {
		if l.Term != first.Term {
			return // not one leader batch
		}
	}
	// The previous entry comes from the log itself (the cache holds the
	// recent entries): a leader whose log starts after a snapshot has none
	// to name, and then raft's replication does the work.
	prevIndex, prevTerm := first.Index-1, uint64(0)
	if prevIndex > 0 {
		var prev raft.Log
		if err := e.g.logs.GetLog(prevIndex, &prev); err != nil {
			return
		}
		prevTerm = prev.Term
	}
	servers := r.GetConfiguration().Configuration().Servers
	self := raft.ServerID(e.g.cfg.NodeID)
	e.mu.Lock()
	defer e.mu.Unlock()
	voters := make(map[raft.ServerID]bool, len(servers))
	for _, s := range servers {
		if s.ID == self || s.Suffrage != raft.Voter {
			continue
		}
		voters[s.ID] = true
		p := e.peers[s.ID]
		if p != nil && p.addr != s.Address {
			close(p.stop)
			p = nil
		}
		if p == nil {
			p = &earlyPeer{id: s.ID, addr: s.Address, kick: make(chan struct{}, 1), stop: make(chan struct{})}
			e.peers[s.ID] = p
			e.g.wg.Add(1)
			go e.send(p)
		}
		p.add(prevIndex, prevTerm, logs)
	}
	for id, p := range e.peers {
		if !voters[id] {
			close(p.stop)
			delete(e.peers, id)
		}
	}
}

// add queues logs, which follow the entry (prevIndex, prevTerm).
func (p *earlyPeer) add(prevIndex, prevTerm uint64, logs []*raft.Log) {
	p.mu.Lock()
	n := len(p.pending)
	if n > 0 && p.pending[n-1].Index == prevIndex && p.pending[n-1].Term == prevTerm && n+len(logs) <= maxEarlyEntries {
		p.pending = append(p.pending, logs...)
	} else {
		p.prevIndex, p.prevTerm = prevIndex, prevTerm
		p.pending = append([]*raft.Log(nil), logs...)
	}
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// send delivers p's queued entries, one request at a time, until the group
// closes or p leaves the configuration.
func (e *earlyReplicator) send(p *earlyPeer) {
	defer e.g.wg.Done()
	self := e.g.cfg.NodeID
	local := e.trans.LocalAddr()
	header := raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersionMax,
		ID:              []byte(self),
		Addr:            e.trans.EncodePeer(raft.ServerID(self), local),
	}
	for {
		select {
		case <-e.g.done:
			return
		case <-p.stop:
			return
		case <-p.kick:
		}
		p.mu.Lock()
		prevIndex, prevTerm, entries := p.prevIndex, p.prevTerm, p.pending
		p.pending = nil
		p.mu.Unlock()
		if len(entries) == 0 {
			continue
		}
		req := &raft.AppendEntriesRequest{
			RPCHeader:    header,
			Term:         entries[0].Term,
			Leader:       header.Addr,
			PrevLogEntry: prevIndex,
			PrevLogTerm:  prevTerm,
			Entries:      entries,
		}
		var resp raft.AppendEntriesResponse
		err := e.trans.AppendEntries(p.id, p.addr, req, &resp)
		e.g.stats.earlyAppends.Add(1)
		e.g.stats.earlyEntries.Add(uint64(len(entries)))
		if err != nil || !resp.Success {
			e.g.stats.earlyRefused.Add(1)
		}
	}
}

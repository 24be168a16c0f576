package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dittonode/dittonode/consensus"
	"github.com/dittonode/dittonode/ditto"
)

// cluster is the mesh: the libp2p host, admission, discovery, the
// bootstrap decision and membership of every Raft group. One goroutine
// (loop) drives discovery and membership; dials run in tracked helpers.
type cluster struct {
	cfg  MeshConfig
	name string
	log  *slog.Logger
	now  func() time.Time
	self peer.ID
	key  []byte
	// wantJoin: this node started without Raft state and does not
	// bootstrap, so it waits to be added to the groups.
	wantJoin bool

	host  host.Host
	gater *gater
	book  *addrBook
	joins []peer.AddrInfo
	links LinkFaults // injected link faults (testnet); nil in production

	life   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	admitted    map[peer.ID]*peerState
	members     map[peer.ID]struct{} // union of the group configurations
	servers     map[string][]consensus.Server
	groups      map[string]*consensus.Group
	groupOrder  []string
	refreshedAt time.Time
	unproven    map[peer.ID]time.Time // connected, not admitted: since
	attempts    map[string]time.Time  // dial/add/remove key -> last try
	inflight    map[peer.ID]bool
	goneSince   map[peer.ID]time.Time // first seen unreachable (automatic removal)
	// leaving holds the peers this node removed from a group as its
	// leader, and when: a removal takes one configuration change per
	// group, and meanwhile the peer looks like a joiner that is only
	// partly added; addLocal refuses it for removedDenyFor.
	leaving   map[peer.ID]time.Time
	marked    bool              // member marker written (loop only)
	found     map[peer.ID]found // announced on the LAN (mdns.go)
	removed   bool              // this node was removed from every group
	closeOnce sync.Once

	mdns io.Closer // nil without mDNS

	// Forward queues by leader and group (forwardbatch.go).
	fwdMu     sync.Mutex
	fwdQueues map[fwdKey]*fwdQueue
	// readQueues share read-index round trips per leader (readbatch.go).
	readMu     sync.Mutex
	readQueues map[string]*readQueue
}

type peerState struct {
	hello hello
	at    time.Time
}

// Mesh loop timing.
const (
	meshTick       = 250 * time.Millisecond
	dialBackoff    = time.Second
	refreshHello   = time.Second
	memberRetry    = time.Second
	dialTimeout    = 3 * time.Second
	membershipWait = 5 * time.Second
	maxVoters      = 5
)

// Raft timing over the network: looser than the in-process defaults so a
// busy two-core machine does not trigger elections, tight enough that a
// dead leader is replaced within about a second.
const (
	meshHeartbeat = 400 * time.Millisecond
	meshElection  = 400 * time.Millisecond
	meshLease     = 200 * time.Millisecond
	// peerDialTimeout bounds a dial to a peer we are not connected to; a
	// dead peer's QUIC address otherwise holds a caller until its deadline.
	peerDialTimeout = 1500 * time.Millisecond
)

func newCluster(cfg MeshConfig, name string, id Identity, dataDir string, logger *slog.Logger, now func() time.Time) (*cluster, error) {
	joins := make([]peer.AddrInfo, 0, len(cfg.Join))
	for _, j := range cfg.Join {
		ai, err := parseJoin(j)
		if err != nil {
			return nil, err
		}
		joins = append(joins, ai)
	}
	self, err := peer.Decode(id.ID)
	if err != nil {
		return nil, err
	}
	return &cluster{
		cfg: cfg, name: name, log: logger.With("service", "mesh"), now: now, self: self,
		key: secretKey(cfg.ClusterSecret), gater: newGater(now), book: newAddrBook(dataDir), joins: joins,
		admitted: map[peer.ID]*peerState{}, members: map[peer.ID]struct{}{}, servers: map[string][]consensus.Server{},
		leaving: map[peer.ID]time.Time{},
		groups:  map[string]*consensus.Group{}, unproven: map[peer.ID]time.Time{}, attempts: map[string]time.Time{},
		inflight: map[peer.ID]bool{}, goneSince: map[peer.ID]time.Time{},
	}, nil
}

// start brings up the host and the discovery loop.
func (c *cluster) start(id Identity, hasState bool) error {
	c.life, c.cancel = context.WithCancel(context.Background())
	c.wantJoin = !hasState && !c.bootstrapsAlone()
	if err := c.book.load(); err != nil {
		return err
	}
	h, err := newHost(id, c.cfg.Listen, c.gater)
	if err != nil {
		return err
	}
	c.host = h
	h.SetStreamHandler(protoJoin, c.serveJoin)
	h.SetStreamHandler(protoRPC, c.guard(protoRPC, c.serveRPC))
	for p, addrs := range c.book.all() {
		if pid, err := peer.Decode(p); err == nil && pid != c.self {
			learnAddrs(h, c.book, pid, addrs)
		}
	}
	for _, j := range c.joins {
		h.Peerstore().AddAddrs(j.ID, j.Addrs, time.Hour)
	}
	c.log.Info("mesh listening", "addrs", hostAddrs(h), "join", c.cfg.Join, "bootstrapExpect", c.cfg.BootstrapExpect)
	c.wg.Add(1)
	go c.loop()
	return nil
}

// bootstrapsAlone: a node without join targets that expects no one else
// forms a single-node cluster on first start, as a plain node does.
func (c *cluster) bootstrapsAlone() bool { return len(c.joins) == 0 && c.cfg.BootstrapExpect <= 1 }

func (c *cluster) close() error {
	var err error
	c.closeOnce.Do(func() {
		if c.cancel != nil {
			c.cancel()
		}
		if c.mdns != nil {
			err = c.mdns.Close()
		}
		if c.host != nil {
			err = errors.Join(err, c.host.Close())
		}
		c.wg.Wait()
		err = errors.Join(err, c.book.flush())
	})
	return err
}

func (c *cluster) stream(group string) consensus.StreamLayer {
	return newStreamLayer(c.host, group, c.guard, c.links)
}

func (c *cluster) forwarder() consensus.Forwarder { return rpcClient{c} }

func (c *cluster) addGroup(name string, g *consensus.Group) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.groups[name] = g
	c.groupOrder = append(c.groupOrder, name)
	c.refreshedAt = time.Time{}
}

func (c *cluster) group(name string) *consensus.Group {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.groups[name]
}

// memberMarker is written once this node is in every group's
// configuration; its presence means the node belongs to a cluster.
const memberMarker = "member"

// hasClusterState reports whether the node belongs to a cluster already:
// the mesh marked it a member, or it is a single-node data directory from
// before the mesh (Raft data but no mesh directory).
func hasClusterState(dataDir string) bool {
	if _, err := os.Stat(filepath.Join(dataDir, "mesh", memberMarker)); err == nil {
		return true
	}
	if _, err := os.Stat(filepath.Join(dataDir, "mesh")); err == nil {
		return false
	}
	for _, g := range []string{GroupPolicies, GroupThings, GroupConnectivity} {
		if _, err := os.Stat(filepath.Join(dataDir, "raft", g, "raft.db")); err == nil {
			return true
		}
	}
	return false
}

// awaitBootstrap decides whether this node bootstraps the groups and
// returns the voters of the first configuration when it does (nil when
// it does not). With Raft state, or with join targets, it does not; alone
// it does at once, as the single voter. With --bootstrap-expect N it
// waits until it admitted N-1 peers (or learns that the cluster already
// exists); then the lowest peer ID bootstraps every group with all N as
// voters, and everyone else starts its groups empty and learns the
// configuration from the leader: no member is added one by one.
func (c *cluster) awaitBootstrap(ctx context.Context, hasState bool) ([]string, error) {
	switch {
	case hasState:
		return nil, nil
	case c.bootstrapsAlone():
		return []string{c.self.String()}, nil
	case c.cfg.BootstrapExpect <= 1:
		return nil, nil
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	logged := time.Time{}
	for {
		c.mu.Lock()
		ids := []peer.ID{c.self}
		exists := false
		for p, st := range c.admitted {
			ids = append(ids, p)
			exists = exists || st.hello.Bootstrapped
		}
		c.mu.Unlock()
		if exists {
			c.log.Info("found an existing cluster; waiting to be added")
			return nil, nil
		}
		if len(ids) >= c.cfg.BootstrapExpect {
			slices.Sort(ids)
			lowest := ids[0] == c.self
			c.log.Info("expected members are known", "members", len(ids), "bootstrapping", lowest)
			if !lowest {
				return nil, nil
			}
			voters := make([]string, 0, len(ids))
			for _, p := range ids {
				voters = append(voters, p.String())
			}
			return voters, nil
		}
		if time.Since(logged) > 5*time.Second {
			logged = time.Now()
			c.log.Info("waiting for members before bootstrapping", "known", len(ids), "expect", c.cfg.BootstrapExpect)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// hello is what this node tells admitted peers.
func (c *cluster) hello() hello {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := hello{Name: c.name, Addrs: hostAddrs(c.host), WantJoin: c.wantJoin && !c.inAllGroupsLocked(c.self),
		Bootstrapped: len(c.members) > 0}
	// Admitted peers and every member of the groups: a node that joined
	// before another learns the other's addresses from whoever knows them.
	known := make(map[peer.ID]bool, len(c.admitted)+len(c.members))
	for p := range c.admitted {
		known[p] = true
	}
	for p := range c.members {
		known[p] = p != c.self
	}
	for p, ok := range known {
		if addrs := addrStrings(c.host, p); ok && len(addrs) > 0 {
			h.Peers = append(h.Peers, peerInfo{ID: p.String(), Addrs: addrs})
		}
	}
	return h
}

func addrStrings(h host.Host, p peer.ID) []string {
	var out []string
	for _, a := range h.Peerstore().Addrs(p) {
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out
}

// admit records a peer that proved the secret.
func (c *cluster) admit(p peer.ID, h hello) {
	if p == c.self {
		return
	}
	learnAddrs(c.host, c.book, p, h.Addrs)
	for _, pi := range h.Peers {
		if id, err := peer.Decode(pi.ID); err == nil && id != c.self {
			learnAddrs(c.host, c.book, id, pi.Addrs)
		}
	}
	c.gater.allowPeer(p)
	c.host.ConnManager().Protect(p, "dittonode")
	c.mu.Lock()
	_, known := c.admitted[p]
	c.admitted[p] = &peerState{hello: h, at: c.now()}
	delete(c.unproven, p)
	c.mu.Unlock()
	if !known {
		c.log.Info("admitted peer", logKeyPeer, p.String(), "name", h.Name)
	}
}

// inAllGroupsLocked: p is in the configuration of every group (false before
// the groups exist).
func (c *cluster) inAllGroupsLocked(p peer.ID) bool {
	if len(c.groupOrder) == 0 {
		return false
	}
	for _, name := range c.groupOrder {
		if !slices.ContainsFunc(c.servers[name], func(s consensus.Server) bool { return s.ID == p.String() }) {
			return false
		}
	}
	return true
}

// refreshMembers re-reads the group configurations (at most every 100ms).
func (c *cluster) refreshMembers() {
	c.mu.Lock()
	if c.now().Sub(c.refreshedAt) < 100*time.Millisecond {
		c.mu.Unlock()
		return
	}
	c.refreshedAt = c.now()
	groups := make(map[string]*consensus.Group, len(c.groups))
	for k, v := range c.groups {
		groups[k] = v
	}
	c.mu.Unlock()
	servers := map[string][]consensus.Server{}
	members := map[peer.ID]struct{}{}
	complete := len(groups) > 0
	for name, g := range groups {
		ss, err := g.Servers()
		if err != nil {
			complete = false
			continue
		}
		servers[name] = ss
		for _, s := range ss {
			if id, err := peer.Decode(s.ID); err == nil {
				members[id] = struct{}{}
			}
		}
	}
	c.mu.Lock()
	var gone []peer.ID
	if complete && len(members) > 0 {
		gone = departed(c.members, members)
	}
	c.servers, c.members = servers, members
	c.mu.Unlock()
	for _, p := range gone {
		c.departed(p)
	}
}

func (c *cluster) loop() {
	defer c.wg.Done()
	t := time.NewTicker(meshTick)
	defer t.Stop()
	for {
		c.refreshMembers()
		c.markMember()
		c.discover()
		c.expireUnproven()
		c.reconcile()
		c.autoRemove()
		c.promoteVoters()
		if err := c.book.flush(); err != nil {
			c.log.Warn("write peer address book", logKeyErr, err)
		}
		select {
		case <-c.life.Done():
			return
		case <-t.C:
		}
	}
}

// markMember writes the member marker once this node is in every group.
func (c *cluster) markMember() {
	c.mu.Lock()
	in := c.inAllGroupsLocked(c.self)
	c.mu.Unlock()
	if !in || c.marked {
		return
	}
	dir := filepath.Dir(c.book.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		c.log.Warn("write member marker", logKeyErr, err)
		return
	}
	if err := writeFileSync(filepath.Join(dir, memberMarker), []byte(c.self.String()+"\n"), 0o600); err != nil {
		c.log.Warn("write member marker", logKeyErr, err)
		return
	}
	c.marked = true
}

// due reports whether the action key may run again after every, and
// records the attempt.
func (c *cluster) due(key string, every time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if last, ok := c.attempts[key]; ok && now.Sub(last) < every {
		return false
	}
	c.attempts[key] = now
	return true
}

// discover dials and handshakes with every peer we should know: join
// targets, members and peers learned from others.
func (c *cluster) discover() {
	targets := map[peer.ID]bool{}
	for _, j := range c.joins {
		targets[j.ID] = true
	}
	for p := range c.book.all() {
		if id, err := peer.Decode(p); err == nil {
			targets[id] = true
		}
	}
	for _, p := range c.foundTargets() {
		targets[p] = true
	}
	c.mu.Lock()
	if c.removed {
		// A removed node stops looking for the cluster it left.
		c.mu.Unlock()
		return
	}
	for p := range c.members {
		targets[p] = true
	}
	settled := !c.wantJoin || c.inAllGroupsLocked(c.self)
	settled = settled && len(c.members) > 0
	// A member whose addresses this node does not know (two nodes that
	// joined through a third at the same time) cannot be dialled: should
	// the third fail, the two could not elect a leader between them. Ask
	// the admitted peers again at once, and keep asking every tick until
	// every member is known.
	missing := false
	for p := range c.members {
		if p != c.self && len(c.host.Peerstore().Addrs(p)) == 0 {
			missing = true
		}
	}
	refresh, backoff := refreshHello, dialBackoff
	if missing {
		settled = false
		refresh, backoff = meshTick, meshTick
	}
	for p, st := range c.admitted {
		// Until this node is part of a configured cluster (and knows every
		// member's addresses) it refreshes what its peers know (members,
		// bootstrap state, addresses) regularly.
		if !settled && c.now().Sub(st.at) >= refresh {
			targets[p] = true
			continue
		}
		if c.host.Network().Connectedness(p) == network.Connected {
			delete(targets, p)
		}
	}
	c.mu.Unlock()
	delete(targets, c.self)
	for p := range targets {
		if c.gater.denied(p) || !c.due("dial/"+p.String(), backoff) {
			continue
		}
		c.mu.Lock()
		busy := c.inflight[p]
		c.inflight[p] = true
		c.mu.Unlock()
		if busy {
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer func() {
				c.mu.Lock()
				delete(c.inflight, p)
				c.mu.Unlock()
			}()
			c.dialAndJoin(p)
		}()
	}
}

func (c *cluster) dialAndJoin(p peer.ID) {
	if err := connect(c.life, c.host, peer.AddrInfo{ID: p}, dialTimeout); err != nil {
		c.log.Debug("peer unreachable", logKeyPeer, p.String(), logKeyErr, err)
		return
	}
	err := c.join(c.life, p)
	switch {
	case err == nil, errors.Is(err, errWrongSecret), c.life.Err() != nil:
	case errors.Is(err, errRefused):
		c.log.Warn("refused peer", logKeyPeer, p.String(), logKeyReason, "it refused our proof: the cluster secrets differ")
		c.gater.denyPeer(p, denyFor)
		_ = c.host.Network().ClosePeer(p)
	default:
		c.log.Debug("handshake failed", logKeyPeer, p.String(), logKeyErr, err)
	}
}

// expireUnproven closes connections of peers that neither proved the
// secret nor are members within admissionWindow.
func (c *cluster) expireUnproven() {
	now := c.now()
	for _, p := range c.host.Network().Peers() {
		c.mu.Lock()
		_, ok := c.admitted[p]
		_, member := c.members[p]
		if ok || member {
			delete(c.unproven, p)
			c.mu.Unlock()
			continue
		}
		since, seen := c.unproven[p]
		if !seen {
			c.unproven[p] = now
		}
		c.mu.Unlock()
		if seen && now.Sub(since) > admissionWindow {
			c.mu.Lock()
			delete(c.unproven, p)
			c.mu.Unlock()
			c.refuse(p, fmt.Sprintf("it did not prove the cluster secret within %s", admissionWindow))
		}
	}
}

// reconcile adds admitted peers that wait to join to every group, through
// the group leader.
func (c *cluster) reconcile() {
	c.mu.Lock()
	var want []peer.ID
	for p, st := range c.admitted {
		if st.hello.WantJoin && !c.inAllGroupsLocked(p) {
			want = append(want, p)
		}
	}
	order := slices.Clone(c.groupOrder)
	servers := c.servers
	c.mu.Unlock()
	for _, p := range want {
		if c.host.Network().Connectedness(p) != network.Connected {
			continue
		}
		for _, name := range order {
			if slices.ContainsFunc(servers[name], func(s consensus.Server) bool { return s.ID == p.String() }) {
				continue
			}
			if !c.due("add/"+name+"/"+p.String(), memberRetry) {
				continue
			}
			g := c.group(name)
			ctx, cancel := context.WithTimeout(c.life, membershipWait)
			var err error
			if g.IsLeader() {
				err = c.addLocal(ctx, g, p)
			} else if leader, _ := g.Leader(); leader != "" {
				payload, _ := json.Marshal(memberRequest{ID: p.String(), Addrs: addrStrings(c.host, p)})
				_, err = c.call(ctx, leader, rpcRequest{op: opAddMember, group: name, payload: payload})
			}
			cancel()
			if err != nil {
				c.log.Debug("add member failed", logKeyPeer, p.String(), "group", name, logKeyErr, err)
			}
		}
	}
	if len(want) > 0 {
		c.mu.Lock()
		c.refreshedAt = time.Time{}
		c.mu.Unlock()
	}
}

// addLocal adds p to g on the leader: as a voter while the group has fewer
// than five, else as a non-voter. A peer this node has not admitted must
// prove the secret to it first.
func (c *cluster) addLocal(ctx context.Context, g *consensus.Group, p peer.ID) error {
	c.mu.Lock()
	_, ok := c.admitted[p]
	since, leaving := c.leaving[p]
	if leaving && c.now().Sub(since) >= removedDenyFor {
		delete(c.leaving, p)
		leaving = false
	}
	c.mu.Unlock()
	if leaving {
		return fmt.Errorf("%s was removed from the cluster at %s", p, since.Format(time.RFC3339))
	}
	if !ok {
		if err := c.join(ctx, p); err != nil {
			return fmt.Errorf("admit %s: %w", p, err)
		}
	}
	ss, err := g.Servers()
	if err != nil {
		return err
	}
	name := g.Status().Name
	switch joinSuffrage(ss, p.String()) {
	case suffrageVoter:
		c.log.Info("adding voter", logKeyPeer, p.String(), "group", name)
		return g.AddVoter(ctx, p.String(), p.String())
	case suffrageNonvoter:
		c.log.Info("adding non-voter", logKeyPeer, p.String(), "group", name)
		return g.AddNonvoter(ctx, p.String(), p.String())
	}
	return nil
}

// MemberStatus is one member in /cluster.
type MemberStatus struct {
	ID        string            `json:"id"`
	Name      string            `json:"name,omitempty"`
	Addrs     []string          `json:"addrs"`
	Self      bool              `json:"self"`
	Reachable bool              `json:"reachable"`
	Suffrage  map[string]string `json:"suffrage"` // group -> Voter/Nonvoter/Staging
}

// GroupStatus is one Raft group in /cluster.
type GroupStatus struct {
	Leader       string `json:"leader"`
	State        string `json:"state"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commitIndex"`
	AppliedIndex uint64 `json:"appliedIndex"`
	LastLogIndex uint64 `json:"lastLogIndex"`
	// Pipeline counts this node's durable log writes and FSM batches of
	// the group since start (consensus.Stats): entries per log write is
	// the batching the write path achieves.
	Pipeline consensus.Stats `json:"pipeline"`
	// Forwards counts this node's forwarded proposals to the group's
	// leaders since start: requests sent and the commands they carried.
	Forwards ForwardStats `json:"forwards"`
}

// ClusterStatus is the body of GET /cluster.
type ClusterStatus struct {
	Node    MemberStatus           `json:"node"`
	Members []MemberStatus         `json:"members"`
	Pending []string               `json:"pending,omitempty"`
	Groups  map[string]GroupStatus `json:"groups"`
}

// status builds the mesh view; groups are filled in by the caller.
func (c *cluster) status() ClusterStatus {
	c.refreshMembers()
	c.mu.Lock()
	defer c.mu.Unlock()
	st := ClusterStatus{Groups: map[string]GroupStatus{}}
	ids := map[peer.ID]bool{c.self: true}
	for p := range c.members {
		ids[p] = true
	}
	for p := range c.admitted {
		if _, ok := c.members[p]; !ok {
			st.Pending = append(st.Pending, p.String())
		}
	}
	slices.Sort(st.Pending)
	for p := range ids {
		m := MemberStatus{ID: p.String(), Self: p == c.self, Suffrage: map[string]string{}}
		if m.Self {
			m.Name, m.Addrs, m.Reachable = c.name, hostAddrs(c.host), true
		} else {
			m.Addrs = addrStrings(c.host, p)
			m.Reachable = c.host.Network().Connectedness(p) == network.Connected
			if a, ok := c.admitted[p]; ok {
				m.Name = a.hello.Name
			}
		}
		for name, ss := range c.servers {
			if m.Self && c.removed {
				break // told it was removed: its own configurations are stale
			}
			for _, s := range ss {
				if s.ID == p.String() {
					m.Suffrage[name] = s.Suffrage
				}
			}
		}
		st.Members = append(st.Members, m)
		if m.Self {
			st.Node = m
		}
	}
	slices.SortFunc(st.Members, func(a, b MemberStatus) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return st
}

// startMesh starts the mesh when a cluster secret is set and decides
// whether this node bootstraps the Raft groups: it returns the voters of
// the first configuration, or nil when this node does not bootstrap.
// Without a secret the node is a single-node cluster with in-process
// transport, as before the mesh.
func (n *Node) startMesh(ctx context.Context, log *slog.Logger) ([]string, error) {
	if !n.cfg.Mesh.Enabled() {
		return []string{n.id.ID}, nil
	}
	hasState := hasClusterState(n.cfg.DataDir)
	m, err := newCluster(n.cfg.Mesh, n.cfg.NodeName, n.id, n.cfg.DataDir, log, n.deps.Clock)
	if err != nil {
		return nil, err
	}
	n.mesh = m
	m.links = n.deps.Links
	if err := m.start(n.id, hasState); err != nil {
		return nil, err
	}
	if n.cfg.Mesh.MDNS {
		if err := m.startMDNS(); err != nil {
			// A host without a multicast interface still joins with
			// --join and the address book.
			log.Warn("mDNS discovery unavailable; members are found through --join and the address book", logKeyErr, err)
		}
	}
	return m.awaitBootstrap(ctx, hasState)
}

// clusterView serves GET /cluster and member removal for the gateway.
type clusterView struct{ n *Node }

// ClusterStatus reports this node, the members and every group.
func (v clusterView) ClusterStatus(context.Context) (any, error) {
	var st ClusterStatus
	if v.n.mesh != nil {
		st = v.n.mesh.status()
	} else {
		self := MemberStatus{ID: v.n.id.ID, Name: v.n.cfg.NodeName, Addrs: []string{}, Self: true, Reachable: true,
			Suffrage: map[string]string{}}
		for _, g := range v.n.groups {
			self.Suffrage[g.Status().Name] = "Voter"
		}
		st = ClusterStatus{Node: self, Members: []MemberStatus{self}}
	}
	st.Groups = map[string]GroupStatus{}
	for _, g := range v.n.groups {
		s := g.Status()
		gs := GroupStatus{Leader: s.LeaderID, State: s.State, Term: s.Term,
			CommitIndex: s.CommitIndex, AppliedIndex: s.AppliedIndex, LastLogIndex: s.LastLogIndex,
			Pipeline: g.Stats()}
		if v.n.mesh != nil {
			gs.Forwards = v.n.mesh.forwardStats(s.Name)
		}
		st.Groups[s.Name] = gs
	}
	return st, nil
}

// RemoveMember removes a member from every group.
func (v clusterView) RemoveMember(ctx context.Context, id string) error {
	if v.n.mesh == nil {
		return ditto.ErrResourceNotFound.New("The node '%s' is not a member of the cluster.", id)
	}
	return v.n.mesh.removeMember(ctx, id)
}

// P2PAddrs are the node's libp2p addresses with /p2p/<peer ID> (none
// without the mesh).
func (n *Node) P2PAddrs() []string {
	if n.mesh == nil || n.mesh.host == nil {
		return nil
	}
	return hostAddrs(n.mesh.host)
}

package consensus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// clusterNode is one member of a test cluster on a memNetwork.
type clusterNode struct {
	id  string
	g   *Group
	fsm *batchTestFSM
	cfg Config
	net *memNetwork
	fwd *memForwarder
}

// clusterOptions vary startClusterWith.
type clusterOptions struct {
	// fwd, when set, is every node's Forwarder and learns every group.
	fwd *memForwarder
	// config adjusts each node's Config.
	config func(*Config)
}

// startCluster starts n nodes: n1 bootstraps and adds the others as voters.
func startCluster(t *testing.T, n int) []*clusterNode {
	t.Helper()
	return startClusterWith(t, n, clusterOptions{})
}

func startClusterWith(t testing.TB, n int, opts clusterOptions) []*clusterNode {
	t.Helper()
	net := newMemNetwork()
	nodes := make([]*clusterNode, n)
	for i := range nodes {
		id := fmt.Sprintf("n%d", i+1)
		cfg := testConfig(t.TempDir(), id)
		cfg.Bootstrap = i == 0
		// Generous timeouts: under -race on a loaded 2-core machine a
		// 50ms heartbeat loses leadership spuriously.
		cfg.HeartbeatTimeout = 300 * time.Millisecond
		cfg.ElectionTimeout = 300 * time.Millisecond
		cfg.LeaderLeaseTimeout = 150 * time.Millisecond
		if opts.config != nil {
			opts.config(&cfg)
		}
		nodes[i] = &clusterNode{id: id, cfg: cfg}
		nodes[i].start(t, net, opts.fwd)
	}
	waitLeader(t, nodes[0].g)
	for _, nd := range nodes[1:] {
		if err := nodes[0].g.AddVoter(t.Context(), nd.id, nd.id); err != nil {
			t.Fatalf("AddVoter %s: %v", nd.id, err)
		}
	}
	return nodes
}

// start (re)starts nd's group on its directory.
func (nd *clusterNode) start(t testing.TB, net *memNetwork, fwd *memForwarder) {
	t.Helper()
	nd.net, nd.fwd = net, fwd
	nd.fsm = &batchTestFSM{}
	deps := Deps{Logger: testLogger(t), Stream: net.layer(t, nd.id)}
	if fwd != nil {
		deps.Forwarder = fwd
	}
	nd.g = mustStart(t, nd.cfg, nd.fsm, deps)
	if fwd != nil {
		fwd.add(nd.id, nd.g)
	}
}

// leaderOf waits until exactly one of nodes leads and returns it.
func leaderOf(t testing.TB, nodes []*clusterNode) *clusterNode {
	t.Helper()
	var leader *clusterNode
	waitFor(t, 10*time.Second, func() error {
		leader = nil
		for _, nd := range nodes {
			if nd.g.IsLeader() {
				if leader != nil {
					return fmt.Errorf("both %s and %s lead", leader.id, nd.id)
				}
				leader = nd
			}
		}
		if leader == nil {
			return errors.New("no leader")
		}
		return nil
	})
	return leader
}

// waitReplicated waits until every node applied index and checks that all
// FSMs hold the same entries.
func waitReplicated(t testing.TB, nodes []*clusterNode, index uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, nd := range nodes {
		if err := nd.g.WaitApplied(ctx, index); err != nil {
			t.Fatalf("%s WaitApplied(%d): %v (status %+v)", nd.id, index, err, nd.g.Status())
		}
	}
	want := nodes[0].fsm.snapshotEntries()
	for _, nd := range nodes[1:] {
		if diff := diffSlices(want, nd.fsm.snapshotEntries()); diff != "" {
			t.Fatalf("%s diverges from %s: %s", nd.id, nodes[0].id, diff)
		}
	}
}

func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)

	servers, err := leader.g.Servers()
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 3 {
		t.Fatalf("Servers = %+v, want 3", servers)
	}
	if st := leader.g.Status(); st.NumPeers != 2 {
		t.Errorf("leader NumPeers = %d, want 2", st.NumPeers)
	}

	res := proposeN(t, leader.g, "a", 50)
	waitReplicated(t, nodes, res[len(res)-1].Index)

	t.Run("follower refuses", func(t *testing.T) {
		for _, nd := range nodes {
			if nd == leader {
				continue
			}
			_, err := nd.g.Propose(t.Context(), []byte("x"))
			var nl *NotLeaderError
			if !errors.Is(err, ErrNotLeader) || !errors.As(err, &nl) {
				t.Fatalf("%s Propose = %v, want ErrNotLeader", nd.id, err)
			}
			if nl.LeaderID != leader.id || nl.LeaderAddr != leader.id {
				t.Errorf("%s names leader %q at %q, want %s", nd.id, nl.LeaderID, nl.LeaderAddr, leader.id)
			}
			if err := nd.g.ReadBarrier(t.Context()); !errors.Is(err, ErrNotLeader) {
				t.Errorf("%s ReadBarrier = %v, want ErrNotLeader", nd.id, err)
			}
			if id, _ := nd.g.Leader(); id != leader.id {
				t.Errorf("%s Leader() = %q, want %s", nd.id, id, leader.id)
			}
		}
	})

	t.Run("read index on a follower", func(t *testing.T) {
		// The mesh's follower read: ask the leader for a read index, then
		// wait for it locally.
		if err := leader.g.ReadBarrier(t.Context()); err != nil {
			t.Fatal(err)
		}
		readIndex := leader.g.CommitIndex()
		for _, nd := range nodes {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			err := nd.g.WaitApplied(ctx, readIndex)
			cancel()
			if err != nil {
				t.Fatalf("%s WaitApplied(%d): %v (status %+v)", nd.id, readIndex, err, nd.g.Status())
			}
		}
	})

	t.Run("failover", func(t *testing.T) {
		if err := leader.g.Close(); err != nil {
			t.Fatal(err)
		}
		var rest []*clusterNode
		for _, nd := range nodes {
			if nd != leader {
				rest = append(rest, nd)
			}
		}
		next := leaderOf(t, rest)
		if err := next.g.ReadBarrier(t.Context()); err != nil {
			t.Fatalf("ReadBarrier on new leader: %v", err)
		}
		more := proposeN(t, next.g, "b", 20)
		if got := more[0].Seq; got != 50 {
			t.Errorf("first write after failover has Seq %d, want 50", got)
		}
		waitReplicated(t, rest, more[len(more)-1].Index)
	})
}

func TestClusterMembership(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	var victim *clusterNode
	for _, nd := range nodes {
		if nd != leader {
			victim = nd
			break
		}
	}
	if err := leader.g.RemoveServer(t.Context(), victim.id); err != nil {
		t.Fatalf("RemoveServer: %v", err)
	}
	servers, err := leader.g.Servers()
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 2 {
		t.Errorf("Servers after remove = %+v", servers)
	}
	if err := leader.g.AddNonvoter(t.Context(), victim.id, victim.id); err != nil {
		t.Fatalf("AddNonvoter: %v", err)
	}
	res := proposeN(t, leader.g, "a", 5)
	// The removed node shut itself down (raft's ShutdownOnRemove); the rest
	// replicate.
	var rest []*clusterNode
	for _, nd := range nodes {
		if nd != victim {
			rest = append(rest, nd)
		}
	}
	waitReplicated(t, rest, res[len(res)-1].Index)
}

// TestBootstrapServers: one node bootstraps a new cluster with every
// member as a voter; the others start without state. A leader is elected
// and the first configuration already holds all three voters, without a
// membership change.
func TestBootstrapServers(t *testing.T) {
	net := newMemNetwork()
	ids := []string{"n1", "n2", "n3"}
	var servers []Server
	for _, id := range ids {
		servers = append(servers, Server{ID: id, Address: id, Suffrage: "Voter"})
	}
	nodes := make([]*clusterNode, len(ids))
	for i, id := range ids {
		cfg := testConfig(t.TempDir(), id)
		cfg.Bootstrap = i == 1 // not the first: any member may bootstrap
		cfg.BootstrapServers = servers
		cfg.HeartbeatTimeout = 300 * time.Millisecond
		cfg.ElectionTimeout = 300 * time.Millisecond
		cfg.LeaderLeaseTimeout = 150 * time.Millisecond
		nodes[i] = &clusterNode{id: id, cfg: cfg}
		nodes[i].start(t, net, nil)
	}
	leader := leaderOf(t, nodes)
	res, err := leader.g.Propose(t.Context(), []byte("x"))
	if err != nil || res == nil {
		t.Fatalf("Propose: %v %v", res, err)
	}
	waitReplicated(t, nodes, leader.g.AppliedIndex())
	for _, nd := range nodes {
		ss, err := nd.g.Servers()
		if err != nil {
			t.Fatal(err)
		}
		if d := diffSlices(servers, ss); d != "" {
			t.Errorf("%s: configuration differs: %s", nd.id, d)
		}
	}
	// The log is the bootstrap configuration, the leader's first entry of
	// its term and the command: no member was added one by one.
	if got := leader.g.Status().LastLogIndex; got != 3 {
		t.Errorf("last log index %d, want 3", got)
	}
}

func TestBootstrapServersValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		servers []Server
	}{
		{"without this node", []Server{{ID: "n2", Address: "n2"}}},
		{"this node a non-voter", []Server{{ID: "n1", Address: "n1", Suffrage: "Nonvoter"}}},
		{"twice", []Server{{ID: "n1", Address: "n1"}, {ID: "n1", Address: "n1"}}},
		{"no address", []Server{{ID: "n1"}}},
		{"bad suffrage", []Server{{ID: "n1", Address: "n1", Suffrage: "Staging"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t.TempDir(), "n1")
			cfg.BootstrapServers = tc.servers
			if err := cfg.Validate(); err == nil {
				t.Fatal("Validate accepted it")
			}
		})
	}
}

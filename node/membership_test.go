package node

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dittonode/dittonode/consensus"
)

func servers(suffrages ...string) []consensus.Server {
	out := make([]consensus.Server, len(suffrages))
	for i, s := range suffrages {
		id := fmt.Sprintf("p%d", i)
		out[i] = consensus.Server{ID: id, Address: id, Suffrage: s}
	}
	return out
}

func TestJoinSuffrage(t *testing.T) {
	tests := []struct {
		name string
		ss   []consensus.Server
		id   string
		want int
	}{
		{name: "first joiner of a single node", ss: servers("Voter"), id: "new", want: suffrageVoter},
		{name: "fifth voter", ss: servers("Voter", "Voter", "Voter", "Voter"), id: "new", want: suffrageVoter},
		{name: "sixth member", ss: servers("Voter", "Voter", "Voter", "Voter", "Voter"), id: "new", want: suffrageNonvoter},
		{name: "seventh member", ss: servers("Voter", "Voter", "Voter", "Voter", "Voter", "Nonvoter"), id: "new", want: suffrageNonvoter},
		{name: "non-voters do not count", ss: servers("Voter", "Nonvoter", "Nonvoter", "Nonvoter", "Nonvoter", "Nonvoter"), id: "new", want: suffrageVoter},
		{name: "already a voter", ss: servers("Voter", "Voter"), id: "p1", want: suffrageNone},
		{name: "already a non-voter", ss: servers("Voter", "Voter", "Voter", "Voter", "Voter", "Nonvoter"), id: "p5", want: suffrageNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := joinSuffrage(tt.ss, tt.id); got != tt.want {
				t.Errorf("joinSuffrage = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestPromotion(t *testing.T) {
	all := func(string) bool { return true }
	tests := []struct {
		name      string
		ss        []consensus.Server
		reachable func(string) bool
		want      string
	}{
		{name: "five voters stay five", ss: servers("Voter", "Voter", "Voter", "Voter", "Voter", "Nonvoter"), reachable: all, want: ""},
		{name: "a removed voter is replaced", ss: servers("Voter", "Voter", "Voter", "Voter", "Nonvoter", "Nonvoter"), reachable: all, want: "p4"},
		{name: "only reachable non-voters", ss: servers("Voter", "Voter", "Voter", "Voter", "Nonvoter", "Nonvoter"),
			reachable: func(id string) bool { return id != "p4" }, want: "p5"},
		{name: "none reachable", ss: servers("Voter", "Nonvoter"), reachable: func(string) bool { return false }, want: ""},
		{name: "no non-voters", ss: servers("Voter", "Voter"), reachable: all, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := promotion(tt.ss, tt.reachable); got != tt.want {
				t.Errorf("promotion = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDepartedAndRemoveDue(t *testing.T) {
	set := func(ids ...peer.ID) map[peer.ID]struct{} {
		m := map[peer.ID]struct{}{}
		for _, id := range ids {
			m[id] = struct{}{}
		}
		return m
	}
	if d := cmp.Diff([]peer.ID{"b", "d"}, departed(set("a", "b", "c", "d"), set("a", "c", "e"))); d != "" {
		t.Errorf("departed (-want +got):\n%s", d)
	}
	if got := departed(set("a"), set("a", "b")); len(got) != 0 {
		t.Errorf("a joiner counted as departed: %v", got)
	}
	for _, tt := range []struct {
		gone, after time.Duration
		want        bool
	}{{time.Hour, 0, false}, {time.Second, time.Minute, false}, {2 * time.Minute, time.Minute, true}, {time.Minute, time.Minute, false}} {
		if got := removeDue(tt.gone, tt.after); got != tt.want {
			t.Errorf("removeDue(%s, %s) = %v", tt.gone, tt.after, got)
		}
	}
}

// startThree starts three joined mesh nodes and waits until they agree.
func startThree(t *testing.T, cb func(*Config)) []*Node {
	t.Helper()
	nodes := make([]*Node, 3)
	nodes[0] = mustMeshNode(t, t.TempDir(), testSecret, cb)
	join := nodes[0].P2PAddrs()[:1]
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := 1; i < 3; i++ {
		wg.Go(func() {
			nodes[i], errs[i] = meshNode(t, t.TempDir(), testSecret, nil, func(c *Config) {
				c.Mesh.Join = join
				if cb != nil {
					cb(c)
				}
			})
		})
	}
	wg.Wait()
	for _, err := range errs[1:] {
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, func() error { return converged(nodes, 3) })
	return nodes
}

// removedFromAll checks that id is in no group configuration as nodes see
// it.
func removedFromAll(nodes []*Node, id string) error {
	for i, n := range nodes {
		st, err := clusterOf(n)
		if err != nil {
			return err
		}
		for _, m := range st.Members {
			if m.ID == id {
				return fmt.Errorf("node %d still lists %s with suffrage %v", i, id, m.Suffrage)
			}
		}
		if slices.Contains(st.Pending, id) {
			return fmt.Errorf("node %d still admits %s", i, id)
		}
	}
	return nil
}

func TestMeshRemoveMember(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	nodes := startThree(t, nil)
	gone := nodes[2]
	code, _, body, err := call(nodes[0], http.MethodDelete, "/cluster/members/"+nodes[0].ID(), "")
	if err != nil || code != http.StatusMethodNotAllowed {
		t.Fatalf("a node removing itself: %d %s %v", code, body, err)
	}
	code, _, body, err = call(nodes[0], http.MethodDelete, "/cluster/members/not-a-peer", "")
	if err != nil || code != http.StatusNotFound {
		t.Fatalf("removing a non-peer: %d %s %v", code, body, err)
	}
	code, _, body, err = call(nodes[0], http.MethodDelete, "/cluster/members/"+gone.ID(), "")
	if err != nil || code != http.StatusNoContent {
		t.Fatalf("remove node 3: %d %s %v", code, body, err)
	}
	rest := nodes[:2]
	waitFor(t, 5*time.Second, func() error {
		if err := removedFromAll(rest, gone.ID()); err != nil {
			return err
		}
		return converged(rest, 2)
	})
	// The removed node learned it: it is no voter of any group any more
	// and stopped looking for the cluster.
	waitFor(t, 5*time.Second, func() error {
		st, err := clusterOf(gone)
		if err != nil {
			return err
		}
		if len(st.Node.Suffrage) != 0 {
			return fmt.Errorf("removed node still sees itself as %v", st.Node.Suffrage)
		}
		gone.mesh.mu.Lock()
		defer gone.mesh.mu.Unlock()
		if !gone.mesh.removed {
			return fmt.Errorf("removed node does not know it was removed")
		}
		return nil
	})
	// The remaining two take writes, through either of them.
	for i, n := range rest {
		code, _, body, err := call(n, http.MethodPut, fmt.Sprintf("/api/2/things/org.mesh:after-%d", i), `{}`)
		if err != nil || code != http.StatusCreated {
			t.Fatalf("write through node %d after the removal: %d %s %v", i+1, code, body, err)
		}
	}
	code, _, body, err = call(nodes[0], http.MethodDelete, "/cluster/members/"+gone.ID(), "")
	if err != nil || code != http.StatusNotFound {
		t.Fatalf("removing a removed node again: %d %s %v", code, body, err)
	}
}

func TestMeshAutoRemove(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	const after = 1500 * time.Millisecond
	nodes := startThree(t, func(c *Config) { c.Mesh.RemoveAfter = after })
	gone := nodes[2]
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	rest := nodes[:2]
	waitFor(t, after+5*time.Second, func() error {
		if err := removedFromAll(rest, gone.ID()); err != nil {
			return err
		}
		return converged(rest, 2)
	})
	if took := time.Since(stopped); took < after {
		t.Fatalf("removed after %s, before remove-after %s", took, after)
	}
	t.Logf("member removed %s after it stopped (remove-after %s)", time.Since(stopped).Round(time.Millisecond), after)
	code, _, body, err := call(nodes[1], http.MethodPut, "/api/2/things/org.mesh:auto", `{}`)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("write after automatic removal: %d %s %v", code, body, err)
	}
}

package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func TestMDNSServiceName(t *testing.T) {
	a, b := mdnsServiceName("secret-a"), mdnsServiceName("secret-b")
	if a != mdnsServiceName("secret-a") {
		t.Fatal("service name is not deterministic")
	}
	if a == b {
		t.Fatalf("two secrets share the service name %s", a)
	}
	for _, name := range []string{a, b, mdnsServiceName("")} {
		label, ok := strings.CutSuffix(name, "._udp")
		if !ok || !strings.HasPrefix(label, "_") {
			t.Fatalf("%q is not a DNS-SD service name", name)
		}
		// RFC 6335: a service name has 1 to 15 characters.
		if n := len(label) - 1; n < 1 || n > 15 {
			t.Fatalf("service name %q has %d characters", label, n)
		}
	}
	if strings.Contains(mdnsServiceName("abc"), "abc") {
		t.Fatal("service name reveals the secret")
	}
}

// randomSecret keeps concurrent test runs on one LAN apart.
func randomSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "test-" + hex.EncodeToString(b)
}

// bareCluster starts the mesh part of a node only (host, admission,
// discovery loop), without Raft groups.
func bareCluster(t *testing.T, secret string, expect int, mdns bool) *cluster {
	t.Helper()
	dir := t.TempDir()
	id, err := loadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig().Mesh
	cfg.ClusterSecret = secret
	cfg.BootstrapExpect = expect
	cfg.MDNS = mdns
	cfg.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c, err := newCluster(cfg, id.ID[len(id.ID)-6:], id, dir, log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.start(id, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.close() })
	if mdns {
		if err := c.startMDNS(); err != nil {
			t.Skipf("mDNS cannot start on this host: %v", err)
		}
	}
	return c
}

// addrInfo is what an mDNS announcement of c carries.
func addrInfo(t *testing.T, c *cluster) peer.AddrInfo {
	t.Helper()
	var addrs []ma.Multiaddr
	for _, s := range hostAddrs(c.host) {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, a)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil || len(infos) != 1 {
		t.Fatalf("addr infos of %v: %v", addrs, err)
	}
	return infos[0]
}

func admittedIDs(c *cluster) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for p := range c.admitted {
		out = append(out, p.String())
	}
	slices.Sort(out)
	return out
}

// TestMDNSFoundPeersPassAdmission feeds announcements through the handler
// the mDNS library calls: found peers with the secret are admitted and
// count for --bootstrap-expect, exactly one (the lowest peer ID)
// bootstraps, with all three as voters, and a found peer with another
// secret is refused.
func TestMDNSFoundPeersPassAdmission(t *testing.T) {
	secret := randomSecret(t)
	cs := []*cluster{bareCluster(t, secret, 3, false), bareCluster(t, secret, 3, false), bareCluster(t, secret, 3, false)}
	outsider := bareCluster(t, "another-secret", 3, false)
	// Each node hears the announcement of the next one only: the third
	// member is learned from the hello of an admitted peer.
	for i, c := range cs {
		mdnsNotifee{c}.HandlePeerFound(addrInfo(t, cs[(i+1)%len(cs)]))
	}
	mdnsNotifee{cs[0]}.HandlePeerFound(addrInfo(t, outsider))
	mdnsNotifee{outsider}.HandlePeerFound(addrInfo(t, cs[1]))

	voters := make([][]string, len(cs))
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for i, c := range cs {
		wg.Go(func() { voters[i], errs[i] = c.awaitBootstrap(ctx, false) })
	}
	wg.Wait()
	ids := make([]string, len(cs))
	for i, c := range cs {
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i, errs[i])
		}
		ids[i] = c.self.String()
	}
	lowest := slices.Min(ids)
	all := slices.Sorted(slices.Values(ids))
	for i, c := range cs {
		if want := ids[i] == lowest; (len(voters[i]) > 0) != want {
			t.Errorf("node %d bootstraps with %v, want bootstrapping %v", i, voters[i], want)
		}
		// The one that bootstraps makes all three voters at once.
		if len(voters[i]) > 0 && !slices.Equal(voters[i], all) {
			t.Errorf("node %d bootstraps with voters %v, want %v", i, voters[i], all)
		}
		for _, id := range admittedIDs(c) {
			if id == outsider.self.String() {
				t.Errorf("node %d admitted the peer with another secret", i)
			}
		}
	}
	waitFor(t, 5*time.Second, func() error {
		for i, c := range cs {
			if got := len(admittedIDs(c)); got != len(cs)-1 {
				return fmt.Errorf("node %d admitted %d peers", i, got)
			}
		}
		if got := admittedIDs(outsider); len(got) != 0 {
			return fmt.Errorf("the outsider was admitted by %v", got)
		}
		// Whichever side checked the other's proof first refuses it.
		if !cs[0].gater.denied(outsider.self) && !outsider.gater.denied(cs[0].self) {
			return fmt.Errorf("node 0 and the outsider do not refuse each other")
		}
		return nil
	})
}

// multicastWorks reports whether two mDNS services on this host hear each
// other within d (sandboxes and some CI hosts drop multicast).
func multicastWorks(t *testing.T, d time.Duration) bool {
	t.Helper()
	secret := randomSecret(t)
	a, b := bareCluster(t, secret, 1, true), bareCluster(t, secret, 1, true)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		_, ok := a.found[b.self]
		a.mu.Unlock()
		if ok {
			return true
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	return false
}

// TestMDNSBootstrapExpect: three nodes on one host with the same secret,
// mDNS and --bootstrap-expect 3 and no --join form one cluster, and a
// fourth started the same way joins it.
func TestMDNSBootstrapExpect(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	if !multicastWorks(t, 5*time.Second) {
		t.Skip("multicast does not reach this host's own mDNS listeners; TestMDNSFoundPeersPassAdmission covers the path after discovery")
	}
	secret := randomSecret(t)
	const size = 3
	nodes := make([]*Node, size)
	errs := make([]error, size)
	var wg sync.WaitGroup
	for i := range size {
		wg.Go(func() {
			nodes[i], errs[i] = meshNode(t, t.TempDir(), secret, nil, func(c *Config) {
				c.Mesh.MDNS = true
				c.Mesh.BootstrapExpect = size
			})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, func() error { return converged(nodes, size) })
	// A later node started the same way finds the existing cluster and is
	// added to it instead of bootstrapping again.
	late, err := meshNode(t, t.TempDir(), secret, nil, func(c *Config) {
		c.Mesh.MDNS = true
		c.Mesh.BootstrapExpect = size
	})
	if err != nil {
		t.Fatal(err)
	}
	nodes = append(nodes, late)
	waitFor(t, 10*time.Second, func() error { return converged(nodes, size+1) })
	code, _, body, err := call(nodes[0], http.MethodPut, "/api/2/things/org.mdns:t1", `{}`)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("create through node 1: %d %s %v", code, body, err)
	}
	code, _, body, err = call(late, http.MethodGet, "/api/2/things/org.mdns:t1?fields=_revision", "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("read through the late node: %d %s %v", code, body, err)
	}
}

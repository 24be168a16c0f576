package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// Stream protocols of the mesh.
const (
	protoJoin = "/dittonode/join/1"
	protoRPC  = "/dittonode/rpc/1"
)

// protoRaft is the stream protocol of one Raft group.
func protoRaft(group string) string { return "/dittonode/raft/" + group + "/1" }

// RaftProtocol is the libp2p stream protocol that carries the Raft group
// named group (what a LinkFaults hook sees for its traffic).
func RaftProtocol(group string) string { return protoRaft(group) }

// Log keys of the mesh.
const (
	logKeyPeer   = "peer"
	logKeyReason = "reason"
	logKeyAddr   = "addr"
	logKeyErr    = "error"
)

// newHost builds the node's libp2p host: the node key as identity, QUIC
// and TCP only, no relays, a resource manager with the library's scaled
// default limits and our admission gater.
func newHost(id Identity, listen []string, gater *gater) (host.Host, error) {
	raw := append(append([]byte{}, ed25519PrivPrefix...), id.Key...)
	priv, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("load node key for libp2p: %w", err)
	}
	pid, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	if pid.String() != id.ID {
		return nil, fmt.Errorf("libp2p peer ID %s differs from node ID %s", pid, id.ID)
	}
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	h, err := libp2p.New(
		libp2p.Identity(priv),
		libp2p.ListenAddrStrings(listen...),
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionGater(gater),
		libp2p.UserAgent("dittonode"),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		_ = rm.Close()
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	return h, nil
}

// parseJoin turns a --join multiaddr (which must end in /p2p/<peer ID>)
// into the peer and its address.
func parseJoin(s string) (peer.AddrInfo, error) {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("join address %q: %w", s, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("join address %q must end in /p2p/<peer ID>: %w", s, err)
	}
	return *ai, nil
}

// hostAddrs are the full addresses of h (with /p2p/<id>), for logs, the
// handshake and /cluster.
func hostAddrs(h host.Host) []string {
	out := make([]string, 0, len(h.Addrs()))
	for _, a := range h.Addrs() {
		out = append(out, a.String()+"/p2p/"+h.ID().String())
	}
	return out
}

// addrBook remembers the addresses of members in <data>/mesh/peers.json so
// that a restarted node finds its cluster without --join or mDNS.
type addrBook struct {
	path string

	mu    sync.Mutex
	peers map[string][]string // peer ID -> multiaddrs without /p2p
	dirty bool
}

func newAddrBook(dataDir string) *addrBook {
	return &addrBook{path: filepath.Join(dataDir, "mesh", "peers.json"), peers: map[string][]string{}}
}

func (b *addrBook) load() error {
	raw, err := os.ReadFile(b.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := json.Unmarshal(raw, &b.peers); err != nil {
		return fmt.Errorf("peer address book %s: %w", b.path, err)
	}
	return nil
}

// set records the addresses of a peer; it reports whether they changed.
func (b *addrBook) set(id string, addrs []string) {
	if len(addrs) == 0 {
		return
	}
	addrs = slices.Clone(addrs)
	slices.Sort(addrs)
	b.mu.Lock()
	defer b.mu.Unlock()
	if !slices.Equal(b.peers[id], addrs) {
		b.peers[id] = addrs
		b.dirty = true
	}
}

func (b *addrBook) remove(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.peers[id]; ok {
		delete(b.peers, id)
		b.dirty = true
	}
}

func (b *addrBook) all() map[string][]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string][]string, len(b.peers))
	for k, v := range b.peers {
		out[k] = slices.Clone(v)
	}
	return out
}

// flush writes the book when it changed.
func (b *addrBook) flush() error {
	b.mu.Lock()
	if !b.dirty {
		b.mu.Unlock()
		return nil
	}
	raw, err := json.MarshalIndent(b.peers, "", "  ")
	b.dirty = false
	b.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(b.path), 0o700); err != nil {
		return err
	}
	return writeFileSync(b.path, raw, 0o600)
}

// learnAddrs puts a peer's addresses (with or without /p2p) into the
// peerstore and the address book.
func learnAddrs(h host.Host, book *addrBook, id peer.ID, addrs []string) {
	var mas []ma.Multiaddr
	var plain []string
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			continue
		}
		tr, _ := peer.SplitAddr(a)
		if tr == nil {
			continue
		}
		mas = append(mas, tr)
		plain = append(plain, tr.String())
	}
	if len(mas) == 0 {
		return
	}
	h.Peerstore().AddAddrs(id, mas, peerstore.PermanentAddrTTL)
	book.set(id.String(), plain)
}

// connect dials a peer within d.
func connect(ctx context.Context, h host.Host, ai peer.AddrInfo, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return h.Connect(ctx, ai)
}

package node

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
)

// mDNS discovery. Every node announces its libp2p addresses under a DNS-SD
// service whose name is derived from a hash of the cluster secret, so
// clusters with different secrets on one LAN never see each other's
// announcements (and the secret itself is never broadcast). A found peer is
// only a dial target: it still has to pass admission (the challenge-response
// on /dittonode/join/1) before it is admitted, counted for
// --bootstrap-expect or added to a group.
//
// The mDNS library calls the notifee in goroutines it does not track, also
// shortly after Close. The notifee therefore only records the peer under
// the cluster lock; the mesh loop does everything else (peerstore, dials).

const (
	// foundTTL is how long a peer found by mDNS stays a dial target
	// without being announced again.
	foundTTL = 2 * time.Minute
	// maxFound bounds the peers remembered from mDNS, against a LAN full of
	// announcements.
	maxFound = 256
)

// mdnsServiceName is the DNS-SD service of a cluster: "_dn-" and the first
// 40 bits of a domain-separated SHA-256 of the secret, under the 15
// character limit of a DNS-SD service name (RFC 6335). 40 bits keep
// accidental collisions between clusters unlikely; a collision costs only a
// refused handshake. The hash reveals nothing useful about a long random
// secret, but a short guessable one could be tested offline against it, as
// it could against any admission handshake: use a long random secret.
func mdnsServiceName(secret string) string {
	sum := sha256.Sum256([]byte("dittonode mdns service v1\x00" + secret))
	return "_dn-" + hex.EncodeToString(sum[:5]) + "._udp"
}

// mdnsNotifee is what the mDNS library calls for every announcement.
type mdnsNotifee struct{ c *cluster }

// HandlePeerFound implements mdns.Notifee.
func (n mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) { n.c.peerFound(ai) }

// found is a peer announced on the LAN.
type found struct {
	info peer.AddrInfo
	at   time.Time
}

// peerFound records a discovered peer as a dial target. It is safe to call
// from any goroutine, before the loop runs and after close.
func (c *cluster) peerFound(ai peer.AddrInfo) {
	if ai.ID == "" || ai.ID == c.self || len(ai.Addrs) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.found == nil {
		c.found = map[peer.ID]found{}
	}
	if _, ok := c.found[ai.ID]; !ok && len(c.found) >= maxFound {
		return
	}
	if _, ok := c.found[ai.ID]; !ok {
		c.log.Debug("peer found on the LAN", logKeyPeer, ai.ID.String(), "addrs", fmt.Sprint(ai.Addrs))
	}
	c.found[ai.ID] = found{info: ai, at: c.now()}
}

// foundTargets puts the addresses of recently found peers into the
// peerstore and returns those that still need a handshake: not admitted
// yet, or admitted but no longer connected. Called by the loop only.
func (c *cluster) foundTargets() []peer.ID {
	now := c.now()
	c.mu.Lock()
	var fresh []peer.AddrInfo
	for id, f := range c.found {
		if now.Sub(f.at) > foundTTL {
			delete(c.found, id)
			continue
		}
		if _, ok := c.admitted[id]; ok && c.host.Network().Connectedness(id) == network.Connected {
			continue
		}
		fresh = append(fresh, f.info)
	}
	c.mu.Unlock()
	out := make([]peer.ID, 0, len(fresh))
	for _, ai := range fresh {
		// Not into the address book: that is for peers that proved the
		// secret. The TTL outlives one dial attempt and a re-announcement.
		c.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.RecentlyConnectedAddrTTL)
		out = append(out, ai.ID)
	}
	return out
}

// startMDNS announces this node and browses for the cluster's service.
func (c *cluster) startMDNS() error {
	svc := mdns.NewMdnsService(c.host, mdnsServiceName(c.cfg.ClusterSecret), mdnsNotifee{c})
	if err := svc.Start(); err != nil {
		return fmt.Errorf("start mDNS discovery: %w", err)
	}
	c.mdns = svc
	c.log.Info("mDNS discovery on", "mdnsService", mdnsServiceName(c.cfg.ClusterSecret))
	return nil
}

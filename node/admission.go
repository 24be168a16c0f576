package node

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Admission is our own, because libp2p private networks do not work over
// QUIC. A peer proves that it knows the cluster secret on /dittonode/join/1:
//
//	responder -> initiator  {nonce: Nr}
//	initiator -> responder  {nonce: Ni, mac: HMAC(k, "join" | Nr | initiator | responder)}
//	responder -> initiator  {mac: HMAC(k, "accept" | Ni | responder | initiator), hello}   or {error}
//	initiator -> responder  {hello}
//
// k is derived from the secret; the secret never crosses the wire, the
// MACs bind both (transport-authenticated) peer IDs and fresh nonces, so a
// MAC can neither be replayed nor relayed. Each side sends its hello (name,
// addresses, known peers) only after the other proved the secret.

const (
	nonceSize       = 32
	maxHandshakeMsg = 1 << 20
	// admissionWindow is how long a connected peer may stay unproven.
	admissionWindow = 10 * time.Second
	// denyFor is how long a peer that failed admission is refused.
	denyFor = time.Minute
	// handshakeTimeout bounds one handshake.
	handshakeTimeout = 5 * time.Second
)

// hello is what an admitted peer tells about itself.
type hello struct {
	Name  string   `json:"name"`
	Addrs []string `json:"addrs"`
	// WantJoin: the peer started without Raft state and waits to be added
	// to the groups.
	WantJoin bool `json:"wantJoin"`
	// Bootstrapped: the peer belongs to a cluster that has a configuration.
	Bootstrapped bool `json:"bootstrapped"`
	// Peers are the admitted peers the sender knows, for discovery.
	Peers []peerInfo `json:"peers"`
}

type peerInfo struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
}

type handshakeMsg struct {
	Nonce []byte `json:"nonce,omitempty"`
	MAC   []byte `json:"mac,omitempty"`
	Error string `json:"error,omitempty"`
	Hello *hello `json:"hello,omitempty"`
}

// secretKey derives the HMAC key from the cluster secret.
func secretKey(secret string) []byte {
	k := sha256.Sum256([]byte("dittonode cluster secret v1\x00" + secret))
	return k[:]
}

func joinMAC(key []byte, label string, nonce []byte, from, to peer.ID) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write(nonce)
	m.Write([]byte(from))
	m.Write([]byte{0})
	m.Write([]byte(to))
	return m.Sum(nil)
}

func writeMsg(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := w.Write(append(hdr[:], b...)); err != nil {
		return err
	}
	return nil
}

func readMsg(r io.Reader, v any, limit int) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if int64(n) > int64(limit) {
		return fmt.Errorf("message of %d bytes exceeds %d", n, limit)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func newNonce() []byte {
	b := make([]byte, nonceSize)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return b
}

// errWrongSecret is a failed proof of the cluster secret.
var errWrongSecret = errors.New("wrong cluster secret")

// errRefused means the other side refused our proof.
var errRefused = errors.New("admission refused")

// handshakeOut runs the initiator side on s; it returns the responder's
// hello.
func (c *cluster) handshakeOut(s network.Stream, mine hello) (hello, error) {
	_ = s.SetDeadline(time.Now().Add(handshakeTimeout))
	r := bufio.NewReader(s)
	remote := s.Conn().RemotePeer()
	var m handshakeMsg
	if err := readMsg(r, &m, maxHandshakeMsg); err != nil {
		return hello{}, err
	}
	if len(m.Nonce) != nonceSize {
		return hello{}, errors.New("bad challenge")
	}
	ni := newNonce()
	if err := writeMsg(s, handshakeMsg{Nonce: ni, MAC: joinMAC(c.key, "join", m.Nonce, c.self, remote)}); err != nil {
		return hello{}, err
	}
	var resp handshakeMsg
	if err := readMsg(r, &resp, maxHandshakeMsg); err != nil {
		return hello{}, err
	}
	if resp.Error != "" {
		return hello{}, fmt.Errorf("%w by %s: %s", errRefused, remote, resp.Error)
	}
	if !hmac.Equal(resp.MAC, joinMAC(c.key, "accept", ni, remote, c.self)) || resp.Hello == nil {
		return hello{}, fmt.Errorf("%w: peer %s could not prove it", errWrongSecret, remote)
	}
	if err := writeMsg(s, handshakeMsg{Hello: &mine}); err != nil {
		return hello{}, err
	}
	return *resp.Hello, nil
}

// handshakeIn runs the responder side on s; it returns the initiator's
// hello.
func (c *cluster) handshakeIn(s network.Stream, mine func() hello) (hello, error) {
	_ = s.SetDeadline(time.Now().Add(handshakeTimeout))
	r := bufio.NewReader(s)
	remote := s.Conn().RemotePeer()
	nr := newNonce()
	if err := writeMsg(s, handshakeMsg{Nonce: nr}); err != nil {
		return hello{}, err
	}
	var m handshakeMsg
	if err := readMsg(r, &m, maxHandshakeMsg); err != nil {
		return hello{}, err
	}
	if len(m.Nonce) != nonceSize || !hmac.Equal(m.MAC, joinMAC(c.key, "join", nr, remote, c.self)) {
		_ = writeMsg(s, handshakeMsg{Error: "admission refused"})
		return hello{}, errWrongSecret
	}
	h := mine()
	if err := writeMsg(s, handshakeMsg{MAC: joinMAC(c.key, "accept", m.Nonce, c.self, remote), Hello: &h}); err != nil {
		return hello{}, err
	}
	var fin handshakeMsg
	if err := readMsg(r, &fin, maxHandshakeMsg); err != nil {
		return hello{}, err
	}
	if fin.Hello == nil {
		return hello{}, errors.New("no hello")
	}
	return *fin.Hello, nil
}

// gater refuses connections of denied peers (failed admission, removed
// members) at the transport. Unknown peers may connect, but only to prove
// the secret: every stream handler other than the join protocol refuses
// them, and unproven connections are closed after admissionWindow.
type gater struct {
	now func() time.Time

	mu   sync.Mutex
	deny map[peer.ID]time.Time // until
}

func newGater(now func() time.Time) *gater {
	return &gater{now: now, deny: map[peer.ID]time.Time{}}
}

func (g *gater) denyPeer(p peer.ID, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deny[p] = g.now().Add(d)
}

func (g *gater) allowPeer(p peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.deny, p)
}

func (g *gater) denied(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.deny[p]
	if !ok {
		return false
	}
	if g.now().After(until) {
		delete(g.deny, p)
		return false
	}
	return true
}

func (g *gater) InterceptPeerDial(p peer.ID) bool                 { return !g.denied(p) }
func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !g.denied(p) }
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.denied(p)
}
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// serveJoin answers the join protocol.
func (c *cluster) serveJoin(s network.Stream) {
	s = faulty(c.links, s)
	defer s.Close()
	remote := s.Conn().RemotePeer()
	h, err := c.handshakeIn(s, c.hello)
	if errors.Is(err, errWrongSecret) {
		c.refuse(remote, "it does not know the cluster secret (challenge failed)")
		return
	}
	if err != nil {
		c.log.Debug("join handshake failed", logKeyPeer, remote.String(), logKeyErr, err)
		return
	}
	c.admit(remote, h)
}

// join runs the initiator side with p, admitting it on success.
func (c *cluster) join(ctx context.Context, p peer.ID) error {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := linkCheckProto(ctx, c.links, p, protoJoin); err != nil {
		return err
	}
	s, err := c.host.NewStream(ctx, p, protoJoin)
	if err != nil {
		return err
	}
	s = faulty(c.links, s)
	defer s.Close()
	h, err := c.handshakeOut(s, c.hello())
	if errors.Is(err, errWrongSecret) {
		c.refuse(p, "it does not know the cluster secret (its answer to our challenge is wrong)")
		return err
	}
	if err != nil {
		return err
	}
	c.admit(p, h)
	return nil
}

// refuse logs a refused peer, closes its connections and denies it for a
// while.
func (c *cluster) refuse(p peer.ID, reason string) {
	c.log.Warn("refused peer", logKeyPeer, p.String(), logKeyReason, reason)
	c.gater.denyPeer(p, denyFor)
	c.mu.Lock()
	delete(c.admitted, p)
	c.mu.Unlock()
	_ = c.host.Network().ClosePeer(p)
}

// allowed reports whether p may use the raft and RPC protocols: an
// admitted peer or a member of a group configuration.
func (c *cluster) allowed(p peer.ID) bool {
	if c.gater.denied(p) {
		return false
	}
	c.mu.Lock()
	_, ok := c.admitted[p]
	_, member := c.members[p]
	c.mu.Unlock()
	if ok || member {
		return true
	}
	// A member we have not handshaken with yet (after a restart): consult
	// the group configurations now.
	c.refreshMembers()
	c.mu.Lock()
	defer c.mu.Unlock()
	_, member = c.members[p]
	return member
}

// guard wraps a stream handler so that it refuses peers that are not
// allowed.
func (c *cluster) guard(proto string, next func(network.Stream)) func(network.Stream) {
	return func(s network.Stream) {
		p := s.Conn().RemotePeer()
		if !c.allowed(p) {
			c.log.Warn("refused stream", logKeyPeer, p.String(), "protocol", proto,
				logKeyReason, "peer is neither a member nor admitted with the cluster secret")
			_ = s.Reset()
			return
		}
		next(s)
	}
}

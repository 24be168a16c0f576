package node

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/dittonode/dittonode/consensus"
)

// streamLayer carries one Raft group over libp2p streams of the protocol
// /dittonode/raft/<group>/1. Raft addresses are peer IDs. The group owns
// it once started; Close removes the stream handler.
type streamLayer struct {
	host  host.Host
	proto protocol.ID
	self  peerAddr
	links LinkFaults // injected faults (testnet); nil in production

	incoming chan net.Conn
	done     chan struct{}
	once     sync.Once
}

var _ consensus.StreamLayer = (*streamLayer)(nil)

// newStreamLayer registers the group's protocol on h; guard decides which
// peers may open streams.
func newStreamLayer(h host.Host, group string, guard func(string, func(network.Stream)) func(network.Stream), links LinkFaults) *streamLayer {
	l := &streamLayer{
		host:     h,
		proto:    protocol.ID(protoRaft(group)),
		self:     peerAddr(h.ID().String()),
		links:    links,
		incoming: make(chan net.Conn),
		done:     make(chan struct{}),
	}
	h.SetStreamHandler(l.proto, guard(string(l.proto), l.handle))
	return l
}

func (l *streamLayer) handle(s network.Stream) {
	c := &streamConn{Stream: faulty(l.links, s), local: l.self, remote: peerAddr(s.Conn().RemotePeer().String())}
	select {
	case l.incoming <- c:
	case <-l.done:
		_ = s.Reset()
	}
}

// Accept waits for the next stream another member opened to this group.
func (l *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.incoming:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting; open streams stay with their owners.
func (l *streamLayer) Close() error {
	l.once.Do(func() {
		l.host.RemoveStreamHandler(l.proto)
		close(l.done)
	})
	return nil
}

// Addr is this node's peer ID.
func (l *streamLayer) Addr() net.Addr { return l.self }

// Dial opens a stream to the member with peer ID address.
func (l *streamLayer) Dial(address string, timeout time.Duration) (net.Conn, error) {
	select {
	case <-l.done:
		return nil, net.ErrClosed
	default:
	}
	p, err := peer.Decode(address)
	if err != nil {
		return nil, err
	}
	if l.host.Network().Connectedness(p) != network.Connected {
		timeout = min(timeout, peerDialTimeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := linkCheckProto(ctx, l.links, p, string(l.proto)); err != nil {
		return nil, &net.OpError{Op: "dial", Net: "libp2p", Err: err}
	}
	s, err := l.host.NewStream(ctx, p, l.proto)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, &net.OpError{Op: "dial", Net: "libp2p", Err: err}
		}
		return nil, err
	}
	return &streamConn{Stream: faulty(l.links, s), local: l.self, remote: peerAddr(address)}, nil
}

// peerAddr is a peer ID as a net.Addr.
type peerAddr string

func (a peerAddr) Network() string { return "libp2p" }
func (a peerAddr) String() string  { return string(a) }

// streamConn is a libp2p stream as a net.Conn.
type streamConn struct {
	network.Stream
	local, remote peerAddr
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

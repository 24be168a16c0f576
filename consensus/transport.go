package consensus

import (
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// StreamLayer is the transport seam: the listener accepts the streams other
// nodes open to this group, and Dial opens one to the node at address. The
// mesh implements it over libp2p streams, one protocol per group. Addresses
// are opaque strings that the same StreamLayer understands (a peer ID for
// the mesh). The Group owns the StreamLayer once Start runs: Close closes
// it.
type StreamLayer interface {
	net.Listener
	// Dial opens a stream to address within timeout.
	Dial(address string, timeout time.Duration) (net.Conn, error)
}

// raftStream adapts a StreamLayer to raft.StreamLayer.
type raftStream struct {
	StreamLayer
}

var _ raft.StreamLayer = raftStream{}

func (s raftStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.StreamLayer.Dial(string(address), timeout)
}

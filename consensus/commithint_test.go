package consensus

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestHintTransportClosedHeartbeats: once the transport is closed, a
// heartbeat arriving on a connection that is still open is refused
// without reaching raft's handler (which would write to a closed log
// store).
func TestHintTransportClosedHeartbeats(t *testing.T) {
	mn := newMemNetwork()
	newTrans := func(l StreamLayer) *raft.NetworkTransport {
		return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  raftStream{l},
			MaxPool: 1,
			Timeout: 5 * time.Second,
		})
	}
	// Like the mesh's stream layer, the server's keeps its open
	// connections when closed.
	server := newHintTransport(newTrans(&keepOpen{memLayer: mn.layer(t, "a"), stop: make(chan struct{})}))
	client := newTrans(mn.layer(t, "b"))
	t.Cleanup(func() { _ = client.Close() })
	var handled atomic.Int64
	server.SetHeartbeatHandler(func(rpc raft.RPC) {
		handled.Add(1)
		rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
	})
	heartbeat := func() error {
		req := &raft.AppendEntriesRequest{
			RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("b"), Addr: []byte("b")},
			Term:      1,
			Leader:    []byte("b"),
		}
		return client.AppendEntries("a", "a", req, new(raft.AppendEntriesResponse))
	}
	if err := heartbeat(); err != nil || handled.Load() != 1 {
		t.Fatalf("heartbeat before Close: %v, handled %d", err, handled.Load())
	}
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	// The pooled connection is still served; the heartbeat must not be.
	err := heartbeat()
	if handled.Load() != 1 {
		t.Fatalf("heartbeat after Close reached the handler (err %v)", err)
	}
	// Refused (ErrTransportShutdown) or the connection closed, as the
	// transport picks.
	if err == nil {
		t.Fatal("heartbeat after Close succeeded")
	}
}

// keepOpen is a memLayer whose Close only stops accepting.
type keepOpen struct {
	*memLayer
	stop chan struct{}
	once sync.Once
}

func (l *keepOpen) Accept() (net.Conn, error) {
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.stop:
		return nil, net.ErrClosed
	}
}

func (l *keepOpen) Close() error {
	l.once.Do(func() { close(l.stop) })
	return nil
}

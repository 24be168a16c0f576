package node

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// LinkFault is a fault on the mesh traffic from this node to one peer. The
// test harness (testnet) injects partitions, packet loss and latency with
// it through Deps.Links; production nodes have no faults.
type LinkFault struct {
	// Cut: nothing gets through. Dials to the peer fail and a write on an
	// open stream resets the stream, as a lost connection would. A
	// harness models random loss by cutting a share of the writes.
	Cut bool
	// Delay is added before every write (and dial) to the peer.
	Delay time.Duration
}

// LinkFaults reports the fault on the link from this node to the peer
// with the given ID. It is consulted on every mesh dial and stream write
// (raft, rpc and join protocols), so it must be fast and safe for
// concurrent use.
type LinkFaults func(peerID string) LinkFault

// errLinkCut is the error of a dial or write on a cut link.
type errLinkCut struct{ peer peer.ID }

func (e errLinkCut) Error() string { return fmt.Sprintf("link to %s is cut (injected fault)", e.peer) }

// linkCheck applies the fault on the link to p before a dial: it waits
// the delay and fails on a cut link. It is a no-op without faults.
func linkCheck(ctx context.Context, links LinkFaults, p peer.ID) error {
	if links == nil {
		return nil
	}
	f := links(p.String())
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if f.Cut {
		return errLinkCut{p}
	}
	return nil
}

// faulty wraps s so that its writes suffer the link's faults; without
// faults it returns s itself.
func faulty(links LinkFaults, s network.Stream) network.Stream {
	if links == nil {
		return s
	}
	return &faultStream{Stream: s, links: links, remote: s.Conn().RemotePeer()}
}

// faultStream is a stream whose writes pass through the link's faults.
type faultStream struct {
	network.Stream
	links  LinkFaults
	remote peer.ID
}

func (s *faultStream) Write(b []byte) (int, error) {
	f := s.links(s.remote.String())
	if f.Delay > 0 {
		time.Sleep(f.Delay) // injected latency, only under a test harness
	}
	if f.Cut {
		_ = s.Stream.Reset()
		return 0, errLinkCut{s.remote}
	}
	return s.Stream.Write(b)
}

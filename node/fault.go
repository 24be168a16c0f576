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
// with the given ID, for streams of the given libp2p protocol (for example
// /dittonode/raft/policies/1; empty when the caller has none). It is
// consulted on every mesh dial and stream write (raft, rpc and join
// protocols), so it must be fast and safe for concurrent use.
type LinkFaults func(peerID, protocol string) LinkFault

// errLinkCut is the error of a dial or write on a cut link.
type errLinkCut struct{ peer peer.ID }

func (e errLinkCut) Error() string { return fmt.Sprintf("link to %s is cut (injected fault)", e.peer) }

// linkCheck applies the fault on the link to p before a dial: it waits
// the delay and fails on a cut link. It is a no-op without faults.
func linkCheck(ctx context.Context, links LinkFaults, p peer.ID) error {
	return linkCheckProto(ctx, links, p, "")
}

// linkCheckProto is linkCheck for a dial of a stream of protocol proto.
func linkCheckProto(ctx context.Context, links LinkFaults, p peer.ID, proto string) error {
	if links == nil {
		return nil
	}
	f := links(p.String(), proto)
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
	return &faultStream{Stream: s, links: links, remote: s.Conn().RemotePeer().String(), proto: string(s.Protocol())}
}

// faultStream is a stream whose writes pass through the link's faults.
type faultStream struct {
	network.Stream
	links  LinkFaults
	remote string
	proto  string
}

func (s *faultStream) Write(b []byte) (int, error) {
	f := s.links(s.remote, s.proto)
	if f.Delay > 0 {
		time.Sleep(f.Delay) // injected latency, only under a test harness
	}
	if f.Cut {
		_ = s.Stream.Reset()
		return 0, errLinkCut{s.Conn().RemotePeer()}
	}
	return s.Stream.Write(b)
}

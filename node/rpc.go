package node

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dittonode/dittonode/consensus"
)

// The RPC protocol /dittonode/rpc/1 carries one request per stream:
//
//	request:  len u32 | op u8 | timeout-ms u32 | group-len uvarint | group | payload
//	response: len u32 | index u64 | code-len uvarint | code | message
//
// An empty code is success. Codes are consensus.ErrorCode values, turned
// back into errors with consensus.ErrorFromCode, so a follower sees the
// leader's ErrNotLeader, ErrTimeout… as if the call had been local.

type rpcOp byte

const (
	opForward rpcOp = iota + 1
	opReadIndex
	opAddMember
	opRemoveMember
	opForwardBatch
	opReadIndexes
	// opRemoved tells a member that it was removed from every group
	// (membership.go); no group, no payload.
	opRemoved
)

const (
	maxRPCMsg = 64 << 20
	// rpcDefaultTimeout bounds a request whose ctx has no deadline.
	rpcDefaultTimeout = 30 * time.Second
)

// rpcRequest is a decoded request.
type rpcRequest struct {
	op      rpcOp
	timeout time.Duration
	group   string
	payload []byte
}

func encodeRPCRequest(req rpcRequest) []byte {
	b := make([]byte, 4, 4+1+4+binary.MaxVarintLen64+len(req.group)+len(req.payload))
	b = append(b, byte(req.op))
	b = binary.BigEndian.AppendUint32(b, uint32(req.timeout/time.Millisecond))
	b = binary.AppendUvarint(b, uint64(len(req.group)))
	b = append(b, req.group...)
	b = append(b, req.payload...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// decodeRPCRequest parses a request body (without its length prefix).
func decodeRPCRequest(b []byte) (rpcRequest, error) {
	if len(b) < 5 {
		return rpcRequest{}, errors.New("rpc request too short")
	}
	req := rpcRequest{op: rpcOp(b[0]), timeout: time.Duration(binary.BigEndian.Uint32(b[1:5])) * time.Millisecond}
	b = b[5:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) || n > 255 {
		return rpcRequest{}, errors.New("rpc request: bad group")
	}
	req.group = string(b[k : k+int(n)])
	req.payload = b[k+int(n):]
	return req, nil
}

func encodeRPCResponse(index uint64, code, msg string) []byte {
	b := make([]byte, 4, 4+8+2*binary.MaxVarintLen64+len(code)+len(msg))
	b = binary.BigEndian.AppendUint64(b, index)
	b = binary.AppendUvarint(b, uint64(len(code)))
	b = append(b, code...)
	b = append(b, msg...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func decodeRPCResponse(b []byte) (index uint64, code, msg string, err error) {
	if len(b) < 9 {
		return 0, "", "", errors.New("rpc response too short")
	}
	index = binary.BigEndian.Uint64(b)
	b = b[8:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return 0, "", "", errors.New("rpc response: bad code")
	}
	return index, string(b[k : k+int(n)]), string(b[k+int(n):]), nil
}

// readFrame reads one length-prefixed frame: two reads, without a
// buffered reader (its 4 KiB buffer per request would be the largest
// allocation of a small RPC).
func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxRPCMsg {
		return nil, fmt.Errorf("rpc frame of %d bytes exceeds %d", n, maxRPCMsg)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// rpcClient implements consensus.Forwarder over libp2p.
type rpcClient struct{ c *cluster }

var _ consensus.Forwarder = rpcClient{}

// Forward sends a command to the group leader, which proposes it. The
// commands that wait for the same leader and group at the same time
// travel together in one request (forwardQueue).
func (f rpcClient) Forward(ctx context.Context, group, leaderID, _ string, cmd []byte) (consensus.Committed, error) {
	return f.c.forwardQueue(leaderID, group).forward(ctx, cmd)
}

// ReadIndex asks the group leader for a commit index that is safe to read
// at once applied.
func (f rpcClient) ReadIndex(ctx context.Context, group, leaderID, _ string) (uint64, error) {
	return f.c.call(ctx, leaderID, rpcRequest{op: opReadIndex, group: group})
}

// call runs one request against the peer with ID to.
func (c *cluster) call(ctx context.Context, to string, req rpcRequest) (uint64, error) {
	index, code, msg, err := c.roundTrip(ctx, to, req)
	if err != nil {
		return 0, err
	}
	if code != "" {
		return index, consensus.ErrorFromCode(code, msg)
	}
	return index, nil
}

// roundTrip sends one request to the peer with ID to and returns the
// response as it came: an empty code is success. err is set only when
// no response arrived; it matches consensus.ErrNotApplied when nothing
// was sent.
func (c *cluster) roundTrip(ctx context.Context, to string, req rpcRequest) (index uint64, code, msg string, err error) {
	p, err := peer.Decode(to)
	if err != nil {
		return 0, "", "", fmt.Errorf("rpc to %q: %w", to, err)
	}
	req.timeout = rpcDefaultTimeout
	if dl, ok := ctx.Deadline(); ok {
		req.timeout = max(time.Until(dl), time.Millisecond)
	}
	if err := linkCheckProto(ctx, c.links, p, protoRPC); err != nil {
		return 0, "", "", fmt.Errorf("%w: rpc to %s: %w", consensus.ErrNotApplied, p, err)
	}
	if c.host.Network().Connectedness(p) != network.Connected {
		if err := connect(ctx, c.host, peer.AddrInfo{ID: p}, peerDialTimeout); err != nil {
			return 0, "", "", fmt.Errorf("%w: rpc to %s: %w", consensus.ErrNotApplied, p, err)
		}
	}
	s, err := c.host.NewStream(ctx, p, protoRPC)
	if err != nil {
		// Nothing was sent: the caller may retry.
		return 0, "", "", fmt.Errorf("%w: rpc to %s: %w", consensus.ErrNotApplied, p, err)
	}
	s = faulty(c.links, s)
	defer s.Close()
	// Close or reset the stream when ctx ends so a blocked read returns.
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if _, err := s.Write(encodeRPCRequest(req)); err != nil {
		return 0, "", "", c.rpcErr(ctx, p, err)
	}
	_ = s.CloseWrite()
	frame, err := readFrame(s)
	if err != nil {
		return 0, "", "", c.rpcErr(ctx, p, err)
	}
	return decodeRPCResponse(frame)
}

func (c *cluster) rpcErr(ctx context.Context, p peer.ID, err error) error {
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%w: rpc to %s: %w", consensus.ErrTimeout, p, ctx.Err())
		}
		return ctx.Err()
	}
	return fmt.Errorf("rpc to %s: %w", p, err)
}

// serveRPC answers one request (the stream is already guarded).
func (c *cluster) serveRPC(s network.Stream) {
	s = faulty(c.links, s)
	defer s.Close()
	_ = s.SetReadDeadline(time.Now().Add(handshakeTimeout))
	frame, err := readFrame(s)
	if err != nil {
		_ = s.Reset()
		return
	}
	_ = s.SetReadDeadline(time.Time{})
	req, err := decodeRPCRequest(frame)
	if err != nil {
		c.log.Warn("bad rpc request", logKeyPeer, s.Conn().RemotePeer().String(), logKeyErr, err)
		_ = s.Reset()
		return
	}
	timeout := req.timeout
	if timeout <= 0 || timeout > rpcDefaultTimeout {
		timeout = rpcDefaultTimeout
	}
	ctx, cancel := context.WithTimeout(c.life, timeout)
	defer cancel()
	var resp []byte
	switch req.op {
	case opForwardBatch:
		resp = c.acceptBatch(ctx, req)
	case opReadIndexes:
		resp = c.acceptReadIndexes(ctx, req)
	default:
		resp = c.rpcResponse(ctx, s.Conn().RemotePeer(), req)
	}
	_ = s.SetWriteDeadline(time.Now().Add(handshakeTimeout))
	_, _ = s.Write(resp) // the caller went away: nothing to tell it
}

// rpcResponse runs a request answered by an index or an error.
func (c *cluster) rpcResponse(ctx context.Context, from peer.ID, req rpcRequest) []byte {
	index, err := c.handleRPC(ctx, from, req)
	if err != nil {
		return encodeRPCResponse(index, consensus.ErrorCode(err), err.Error())
	}
	return encodeRPCResponse(index, "", "")
}

// memberRequest is the payload of opAddMember and opRemoveMember.
type memberRequest struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs,omitempty"`
}

func (c *cluster) handleRPC(ctx context.Context, from peer.ID, req rpcRequest) (uint64, error) {
	if req.op == opRemoved {
		c.log.Info("a member says this node was removed from the cluster", "from", from.String())
		c.departed(c.self)
		return 0, nil
	}
	g := c.group(req.group)
	if g == nil {
		return 0, fmt.Errorf("unknown group %q: %w", req.group, consensus.ErrClosed)
	}
	switch req.op {
	case opForward:
		c, err := g.AcceptForwarded(ctx, req.payload)
		return c.Index, err
	case opForwardBatch, opReadIndexes:
		// Answered by serveRPC through acceptBatch and acceptReadIndexes;
		// never here.
		return 0, fmt.Errorf("rpc op %d outside serveRPC", req.op)
	case opReadIndex:
		c, err := g.LeaderReadIndex(ctx)
		return c.Index, err
	case opAddMember, opRemoveMember:
		var m memberRequest
		if err := json.Unmarshal(req.payload, &m); err != nil {
			return 0, fmt.Errorf("member request: %w", err)
		}
		id, err := peer.Decode(m.ID)
		if err != nil {
			return 0, fmt.Errorf("member request: %w", err)
		}
		if req.op == opRemoveMember {
			c.log.Info("removing member on request", logKeyPeer, m.ID, "from", from.String(), "group", req.group)
			return 0, c.removeLocal(ctx, g, id)
		}
		learnAddrs(c.host, c.book, id, m.Addrs)
		return 0, c.addLocal(ctx, g, id)
	}
	return 0, fmt.Errorf("unknown rpc op %d", req.op)
}

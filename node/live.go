package node

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/services/live"
)

// Live signals cross nodes on /dittonode/live/1. Each node keeps at most one
// outbound stream per member, fed by a bounded queue and written by one
// goroutine (the link); inbound streams are read until they end. Every
// frame is
//
//	len u32 | type u8 | JSON body
//
// offer (a live signal for the router there), reply (a response or an
// acknowledgement for a signal of the receiving node), expect (the custom
// acknowledgements of a twin command, confirmed with expectOK). The
// routers keep the state; this file only carries frames.
const protoLive = "/dittonode/live/1"

type liveFrameType byte

const (
	liveOffer liveFrameType = iota + 1
	liveReply
	liveExpect
	liveExpectOK
)

// Bounds of the live links.
const (
	// liveQueueFrames and liveQueueBytes bound the frames queued for one
	// peer; what does not fit is dropped and counted.
	liveQueueFrames = 4096
	liveQueueBytes  = 32 << 20
	// maxLiveFrame bounds one frame (Ditto messages are limited far below).
	maxLiveFrame = 16 << 20
	// liveIdle closes a link that carried nothing for that long.
	liveIdle = time.Minute
	// liveBackoff is how long a peer whose stream could not be opened is
	// skipped.
	liveBackoff = time.Second
	// liveWriteTimeout bounds one write to a peer; a peer that takes longer
	// loses its link (and the frames queued for it).
	liveWriteTimeout = 5 * time.Second
	// liveExpectWait bounds how long a twin command waits for the other
	// members to confirm its expected acknowledgements.
	liveExpectWait = 2 * time.Second
	// liveBatch bounds the frames written before one flush.
	liveBatch = 128
)

// liveWire is the JSON body of a frame.
type liveWire struct {
	Envelope *ditto.Envelope `json:"e,omitempty"`
	Sender   string          `json:"s,omitempty"`
	Custom   []string        `json:"c,omitempty"`
	Await    bool            `json:"a,omitempty"`
	// TimeoutMS is how long the origin waits (offer, expect).
	TimeoutMS int64    `json:"t,omitempty"`
	Twin      bool     `json:"w,omitempty"`
	ThingID   string   `json:"th,omitempty"`
	CID       string   `json:"cid,omitempty"`
	Labels    []string `json:"l,omitempty"`
	// ID pairs an expect with its expectOK.
	ID uint64 `json:"id,omitempty"`
}

func encodeLiveFrame(t liveFrameType, w liveWire) ([]byte, error) {
	body, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 5, 5+len(body))
	binary.BigEndian.PutUint32(b, uint32(1+len(body)))
	b[4] = byte(t)
	return append(b, body...), nil
}

// livePeers implements live.Peers over the mesh.
type livePeers struct {
	c      *cluster
	log    *slog.Logger
	router *live.Router

	life   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	links   map[peer.ID]*liveLink
	down    map[peer.ID]time.Time // until
	expects map[uint64]*expectWait
	nextID  uint64

	dropped atomic.Int64 // frames a peer could not take
}

// liveLink is the outbound stream to one peer and its bounded queue.
type liveLink struct {
	p     peer.ID
	q     chan []byte
	bytes int64 // queued, guarded by livePeers.mu
}

// expectWait is an expect frame waiting for the members' confirmations.
type expectWait struct {
	left map[peer.ID]bool
	done chan struct{}
}

var _ live.Peers = (*livePeers)(nil)

func newLivePeers(c *cluster, log *slog.Logger) *livePeers {
	life, cancel := context.WithCancel(context.Background())
	return &livePeers{
		c: c, log: log.With("service", "live-mesh"), life: life, cancel: cancel,
		links: map[peer.ID]*liveLink{}, down: map[peer.ID]time.Time{}, expects: map[uint64]*expectWait{},
	}
}

// start registers the protocol handler; frames go to r.
func (lp *livePeers) start(r *live.Router) {
	lp.router = r
	lp.c.host.SetStreamHandler(protoLive, lp.c.guard(protoLive, lp.serve))
}

// close stops every link and inbound reader and waits for them.
func (lp *livePeers) close() {
	lp.mu.Lock()
	if lp.closed {
		lp.mu.Unlock()
		return
	}
	lp.closed = true
	lp.mu.Unlock()
	if lp.c.host != nil {
		lp.c.host.RemoveStreamHandler(protoLive)
	}
	lp.cancel()
	lp.wg.Wait()
}

// Dropped counts the frames dropped because a peer could not take them.
func (lp *livePeers) Dropped() int64 { return lp.dropped.Load() }

// others are the members of the group configurations except this node.
func (lp *livePeers) others() []peer.ID {
	c := lp.c
	c.refreshMembers()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]peer.ID, 0, len(c.members))
	for p := range c.members {
		if p != c.self {
			out = append(out, p)
		}
	}
	return out
}

// Offer sends a live signal to every other member.
func (lp *livePeers) Offer(o live.Offer) {
	peers := lp.others()
	if len(peers) == 0 {
		return
	}
	env := o.Envelope
	f, err := encodeLiveFrame(liveOffer, liveWire{Envelope: &env, Sender: o.Sender, Custom: o.Custom, Await: o.Await, TimeoutMS: o.Timeout.Milliseconds()})
	if err != nil {
		lp.log.Warn("live signal not encodable", logKeyErr, err)
		return
	}
	for _, p := range peers {
		lp.send(p, f)
	}
}

// Reply sends a response or acknowledgement to the node that waits for it.
func (lp *livePeers) Reply(node string, r live.Reply) {
	p, err := peer.Decode(node)
	if err != nil {
		return
	}
	env := r.Envelope
	f, err := encodeLiveFrame(liveReply, liveWire{Envelope: &env, Twin: r.Twin})
	if err != nil {
		lp.log.Warn("live reply not encodable", logKeyErr, err)
		return
	}
	lp.send(p, f)
}

// Expect announces a twin command's custom acknowledgements to every other
// member and waits until the reachable ones confirmed, at most
// liveExpectWait or until ctx ends.
func (lp *livePeers) Expect(ctx context.Context, e live.Expectation) {
	peers := lp.others()
	if len(peers) == 0 {
		return
	}
	lp.mu.Lock()
	lp.nextID++
	id := lp.nextID
	w := &expectWait{left: make(map[peer.ID]bool, len(peers)), done: make(chan struct{})}
	for _, p := range peers {
		w.left[p] = true
	}
	lp.expects[id] = w
	lp.mu.Unlock()
	defer func() {
		lp.mu.Lock()
		delete(lp.expects, id)
		lp.mu.Unlock()
	}()
	f, err := encodeLiveFrame(liveExpect, liveWire{ThingID: e.ThingID, CID: e.CorrelationID, Labels: e.Labels, TimeoutMS: e.Timeout.Milliseconds(), ID: id})
	if err != nil {
		return
	}
	for _, p := range peers {
		if !lp.send(p, f) {
			lp.confirm(id, p)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, liveExpectWait)
	defer cancel()
	select {
	case <-w.done:
	case <-ctx.Done():
		lp.log.Debug("members did not confirm expected acknowledgements in time", "correlationId", e.CorrelationID)
	}
}

// confirm records that p confirmed expect id.
func (lp *livePeers) confirm(id uint64, p peer.ID) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	w := lp.expects[id]
	if w == nil || !w.left[p] {
		return
	}
	delete(w.left, p)
	if len(w.left) == 0 {
		close(w.done)
	}
}

// send queues frame f for p, starting its link when needed. It never
// blocks; it reports false when the frame was dropped.
func (lp *livePeers) send(p peer.ID, f []byte) bool {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if lp.closed {
		return false
	}
	if until, ok := lp.down[p]; ok {
		if time.Now().Before(until) {
			lp.dropped.Add(1)
			return false
		}
		delete(lp.down, p)
	}
	l := lp.links[p]
	if l == nil {
		l = &liveLink{p: p, q: make(chan []byte, liveQueueFrames)}
		lp.links[p] = l
		lp.wg.Add(1)
		go lp.run(l)
	}
	if l.bytes+int64(len(f)) > liveQueueBytes {
		lp.dropped.Add(1)
		return false
	}
	select {
	case l.q <- f:
		l.bytes += int64(len(f))
		return true
	default:
		lp.dropped.Add(1)
		return false
	}
}

// run owns the outbound stream to l.p: it opens it, writes the queued
// frames in batches and ends on a write error, after liveIdle without
// frames, or when the node closes. Frames still queued then are dropped.
func (lp *livePeers) run(l *liveLink) {
	defer lp.wg.Done()
	s, err := lp.open(l.p)
	if err != nil {
		lp.log.Debug("live link not opened", logKeyPeer, l.p.String(), logKeyErr, err)
		lp.end(l, true)
		return
	}
	defer func() { _ = s.Reset() }()
	bw := bufio.NewWriterSize(s, 64<<10)
	idle := time.NewTimer(liveIdle)
	defer idle.Stop()
	for {
		select {
		case <-lp.life.Done():
			lp.end(l, false)
			return
		case <-idle.C:
			if lp.endIdle(l) {
				return
			}
			idle.Reset(liveIdle)
		case f := <-l.q:
			_ = s.SetWriteDeadline(time.Now().Add(liveWriteTimeout))
			err := lp.write(l, bw, f)
			batch := 1
			for ; err == nil && batch < liveBatch; batch++ {
				select {
				case f = <-l.q:
					err = lp.write(l, bw, f)
					continue
				default:
				}
				break
			}
			if err == nil {
				err = bw.Flush()
			}
			if err != nil {
				lp.log.Debug("live link failed", logKeyPeer, l.p.String(), logKeyErr, err)
				lp.dropped.Add(int64(batch)) // the batch is lost with the stream
				lp.end(l, true)
				return
			}
			idle.Reset(liveIdle)
		}
	}
}

func (lp *livePeers) write(l *liveLink, bw *bufio.Writer, f []byte) error {
	lp.mu.Lock()
	l.bytes -= int64(len(f))
	lp.mu.Unlock()
	_, err := bw.Write(f)
	return err
}

// open opens the outbound stream to p.
func (lp *livePeers) open(p peer.ID) (network.Stream, error) {
	ctx, cancel := context.WithTimeout(lp.life, peerDialTimeout)
	defer cancel()
	c := lp.c
	if err := linkCheck(ctx, c.links, p); err != nil {
		return nil, err
	}
	if c.host.Network().Connectedness(p) != network.Connected {
		if err := connect(ctx, c.host, peer.AddrInfo{ID: p}, peerDialTimeout); err != nil {
			return nil, err
		}
	}
	s, err := c.host.NewStream(ctx, p, protoLive)
	if err != nil {
		return nil, err
	}
	return faulty(c.links, s), nil
}

// end removes l and drops its queued frames; failed marks the peer down
// for liveBackoff.
func (lp *livePeers) end(l *liveLink, failed bool) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if lp.links[l.p] == l {
		delete(lp.links, l.p)
	}
	if failed && !lp.closed {
		lp.down[l.p] = time.Now().Add(liveBackoff)
	}
	lp.dropped.Add(int64(len(l.q)))
	l.bytes = 0
}

// endIdle removes an idle link unless a frame arrived meanwhile.
func (lp *livePeers) endIdle(l *liveLink) bool {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if len(l.q) > 0 {
		return false
	}
	if lp.links[l.p] == l {
		delete(lp.links, l.p)
	}
	return true
}

// serve reads the frames of one inbound stream (already guarded) until it
// ends, and hands them to the router.
func (lp *livePeers) serve(s network.Stream) {
	lp.mu.Lock()
	if lp.closed {
		lp.mu.Unlock()
		_ = s.Reset()
		return
	}
	lp.wg.Add(1)
	lp.mu.Unlock()
	defer lp.wg.Done()
	from := s.Conn().RemotePeer()
	stop := context.AfterFunc(lp.life, func() { _ = s.Reset() })
	defer stop()
	defer func() { _ = s.Reset() }()
	r := bufio.NewReaderSize(s, 64<<10)
	for {
		t, w, err := readLiveFrame(r)
		if err != nil {
			if lp.life.Err() == nil && !errors.Is(err, network.ErrReset) {
				lp.log.Debug("live stream ended", logKeyPeer, from.String(), logKeyErr, err)
			}
			return
		}
		lp.dispatch(from, t, w)
	}
}

func readLiveFrame(r *bufio.Reader) (liveFrameType, liveWire, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, liveWire{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 1 || n > maxLiveFrame {
		return 0, liveWire{}, fmt.Errorf("live frame of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, liveWire{}, err
	}
	var w liveWire
	if err := json.Unmarshal(b[1:], &w); err != nil {
		return 0, liveWire{}, fmt.Errorf("live frame: %w", err)
	}
	return liveFrameType(b[0]), w, nil
}

func (lp *livePeers) dispatch(from peer.ID, t liveFrameType, w liveWire) {
	node := from.String()
	timeout := time.Duration(w.TimeoutMS) * time.Millisecond
	switch t {
	case liveOffer:
		if w.Envelope == nil {
			return
		}
		lp.router.Offered(node, live.Offer{Envelope: *w.Envelope, Sender: w.Sender, Custom: w.Custom, Await: w.Await, Timeout: timeout})
	case liveReply:
		if w.Envelope == nil {
			return
		}
		lp.router.Replied(node, live.Reply{Twin: w.Twin, Envelope: *w.Envelope})
	case liveExpect:
		lp.router.Expected(node, live.Expectation{ThingID: w.ThingID, CorrelationID: w.CID, Labels: w.Labels, Timeout: timeout})
		if f, err := encodeLiveFrame(liveExpectOK, liveWire{ID: w.ID}); err == nil {
			lp.send(from, f)
		}
	case liveExpectOK:
		lp.confirm(w.ID, from)
	default:
		lp.log.Debug("unknown live frame", logKeyPeer, node, "type", int(t))
	}
}

// linkTo reports whether a link to the peer with ID id exists.
func (lp *livePeers) linkTo(id string) bool {
	p, err := peer.Decode(id)
	if err != nil {
		return false
	}
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.links[p] != nil
}

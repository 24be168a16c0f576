package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dittonode/dittonode/ditto"
)

// startBenchNode runs a quiet node (no log output) for benchmarks.
func startBenchNode(b *testing.B, cb func(*Config)) *Node {
	b.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = b.TempDir()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.Users = map[string]string{"ditto": "ditto", "device": "device"}
	cfg.Raft.NoSync = true
	if cb != nil {
		cb(&cfg)
	}
	n, err := New(cfg, Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = n.Close() })
	return n
}

// received is one event a subscriber got: the write's sequence number and
// the arrival time.
type received struct {
	seq int
	at  int64 // UnixNano
}

// BenchmarkWSFanoutPaced measures twin-event fan-out to 100 WebSocket
// subscribers while a paced writer applies 2,000 changes/s for 5 s
// (through things.Service.Handle, the path every ingress takes). The writer
// is open loop, like devices that report on their own schedule: a change
// is issued at its time whatever the earlier ones are doing, with at most
// `inflight` outstanding. It reports the write rate reached, delivered
// events/s and the p50/p99 delay from the write's acknowledgement to the
// event's arrival (an event that arrives before its write returned counts
// as 0), plus the sessions the node cut off as too slow.
//
//	go test -run '^$' -bench BenchmarkWSFanoutPaced -benchtime 1x ./node/
func BenchmarkWSFanoutPaced(b *testing.B) {
	const (
		subscribers = 100
		rate        = 2000 // changes per second
		duration    = 5 * time.Second
		things      = 16
		inflight    = 1024
	)
	n := startBenchNode(b, func(c *Config) { c.HTTP.Streams.EventQueue = 8192 })
	owner := ditto.Auth{Subjects: []string{"nginx:ditto"}}
	for i := range things {
		if _, err := n.things.Handle(context.Background(), ditto.Command{Action: ditto.ActionModify, Entity: fmt.Sprintf("bench:t%d", i),
			Path: ditto.Pointer{}, Value: map[string]any{"attributes": map[string]any{"seq": json.Number("-1")}}, Headers: ditto.Headers{}, Auth: owner}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for range b.N {
		total := rate * int(duration/time.Second)
		acked := make([]atomic.Int64, total)
		subs := make([]*benchSubscriber, subscribers)
		for i := range subs {
			subs[i] = newBenchSubscriber(b, n, total)
		}
		// Paced open-loop writer: each change starts at its time in its own
		// goroutine, at most inflight at once.
		sem := make(chan struct{}, inflight)
		var wg sync.WaitGroup
		began := time.Now()
		interval := time.Second / rate
		for seq := range total {
			if wait := time.Until(began.Add(time.Duration(seq) * interval)); wait > 0 {
				time.Sleep(wait) // pacing the load, not synchronisation
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				_, err := n.things.Handle(context.Background(), ditto.Command{Action: ditto.ActionModify, Entity: fmt.Sprintf("bench:t%d", seq%things),
					Path: ditto.MustPointer("/attributes/seq"), Value: json.Number(strconv.Itoa(seq)), Headers: ditto.Headers{}, Auth: owner})
				if err != nil {
					b.Errorf("write %d: %v", seq, err)
					return
				}
				acked[seq].Store(time.Now().UnixNano())
			}()
		}
		wg.Wait()
		writeTime := time.Since(began)
		var lat []time.Duration
		delivered, cut := 0, 0
		var last int64
		for _, s := range subs {
			got, ended := s.wait(total, 30*time.Second)
			if ended {
				cut++
			}
			delivered += len(got)
			for _, r := range got {
				last = max(last, r.at)
				lat = append(lat, time.Duration(max(r.at-acked[r.seq].Load(), 0)))
			}
		}
		elapsed := time.Duration(last - began.UnixNano())
		slices.Sort(lat)
		b.ReportMetric(float64(delivered)/elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(total)/writeTime.Seconds(), "writes/s")
		if len(lat) > 0 {
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		}
		b.ReportMetric(float64(cut), "cut-sessions")
		for _, s := range subs {
			s.close()
		}
	}
}

// benchSubscriber is one WebSocket session receiving twin events; its
// reader records the sequence number and arrival time of each. It speaks
// the few parts of RFC 6455 it needs itself (handshake, reading unmasked
// server frames, masked client frames, pong): a full client library costs
// more CPU per frame than the node's fan-out, and the clients share the two
// cores with the node, so they would measure themselves.
type benchSubscriber struct {
	conn net.Conn
	mu   sync.Mutex
	got  []received
	end  chan struct{}
	err  error
}

func newBenchSubscriber(b *testing.B, n *Node, expect int) *benchSubscriber {
	conn, br := dialBenchWS(b, n, "ditto")
	if err := writeClientFrame(conn, 0x1, []byte("START-SEND-EVENTS")); err != nil {
		b.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, ack, err := readServerFrame(br, nil); err != nil || string(ack) != "START-SEND-EVENTS:ACK" {
		b.Fatalf("start: %q %v", ack, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	s := &benchSubscriber{conn: conn, got: make([]received, 0, expect), end: make(chan struct{})}
	go func() {
		defer close(s.end)
		buf := make([]byte, 0, 4096)
		for {
			op, data, err := readServerFrame(br, buf[:0])
			if err != nil {
				s.err = err
				return
			}
			buf = data[:0]
			switch op {
			case 0x8: // close
				s.err = fmt.Errorf("closed by the node: %q", data)
				return
			case 0x9: // ping
				if err := writeClientFrame(conn, 0xA, data); err != nil {
					s.err = err
					return
				}
				continue
			case 0x1:
			default:
				continue
			}
			at := time.Now().UnixNano()
			seq, ok := seqOf(data)
			if !ok {
				continue
			}
			s.mu.Lock()
			s.got = append(s.got, received{seq: seq, at: at})
			s.mu.Unlock()
		}
	}()
	return s
}

// dialBenchWS opens /ws/2 with a handshake of its own.
func dialBenchWS(b *testing.B, n *Node, user string) (net.Conn, *bufio.Reader) {
	b.Helper()
	addr := n.HTTPAddr().String()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/ws/2", nil)
	req.SetBasicAuth(user, user)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString(key))
	req.Header.Set("Sec-WebSocket-Version", "13")
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := req.Write(conn); err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, req)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		b.Fatalf("websocket handshake: %v %v", resp, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, br
}

// readServerFrame reads one unfragmented, unmasked frame into buf.
func readServerFrame(br *bufio.Reader, buf []byte) (byte, []byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return 0, nil, err
	}
	if hdr[0]&0x80 == 0 || hdr[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("unexpected frame header %x", hdr)
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(br, ext[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(br, ext[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > 1<<24 {
		return 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	buf = slices.Grow(buf[:0], int(n))[:n]
	if _, err := io.ReadFull(br, buf); err != nil {
		return 0, nil, err
	}
	return hdr[0] & 0x0f, buf, nil
}

// writeClientFrame writes one masked frame (the zero mask: the payload
// goes as it is).
func writeClientFrame(w io.Writer, op byte, payload []byte) error {
	f := []byte{0x80 | op}
	switch {
	case len(payload) < 126:
		f = append(f, 0x80|byte(len(payload)))
	case len(payload) <= 0xffff:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(len(payload)))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(len(payload)))
	}
	f = append(f, 0, 0, 0, 0)
	_, err := w.Write(append(f, payload...))
	return err
}

// wait returns the events received once all total arrived, the session
// ended (ended=true) or d passed.
func (s *benchSubscriber) wait(total int, d time.Duration) ([]received, bool) {
	deadline := time.Now().Add(d)
	for {
		s.mu.Lock()
		n := len(s.got)
		s.mu.Unlock()
		select {
		case <-s.end:
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.got, n < total
		default:
		}
		if n >= total || time.Now().After(deadline) {
			s.mu.Lock()
			defer s.mu.Unlock()
			return slices.Clone(s.got), false
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// seqOf reads the sequence number of an event frame ("value":<n>) without
// decoding the whole envelope, so the clients, which share the CPU with the
// node, measure the node rather than themselves.
func seqOf(frame []byte) (int, bool) {
	const key = `"value":`
	i := bytes.Index(frame, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := frame[i+len(key):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	seq, err := strconv.Atoi(string(rest[:j]))
	return seq, err == nil
}

func (s *benchSubscriber) close() {
	_ = s.conn.Close()
	<-s.end
}

// BenchmarkWSMessageRoundTrip measures HTTP message round trips through a
// WebSocket responder: 32 concurrent HTTP clients POST messages that one
// device session (START-SEND-MESSAGES) answers. Target: ≥ 2,000 msgs/s.
//
//	go test -run '^$' -bench BenchmarkWSMessageRoundTrip -benchtime 5000x ./node/
func BenchmarkWSMessageRoundTrip(b *testing.B) {
	n := startBenchNode(b, nil)
	messageRoundTrips(b, n, n, wsResponder)
}

// BenchmarkWSMessageRoundTripAcrossNodes is the same with the HTTP clients
// on node 1 and the device session on node 3 of a three-node cluster
// (real libp2p on loopback): every message and answer crosses the mesh.
//
//	go test -run '^$' -bench BenchmarkWSMessageRoundTripAcrossNodes -benchtime 5000x ./node/
func BenchmarkWSMessageRoundTripAcrossNodes(b *testing.B) {
	nodes := startBenchCluster(b)
	messageRoundTrips(b, nodes[0], nodes[2], wsResponder)
}

// startBenchCluster runs three quiet mesh nodes on loopback.
func startBenchCluster(b *testing.B, cbs ...func(*Config)) []*Node {
	b.Helper()
	mesh := func(join []string) func(*Config) {
		return func(c *Config) {
			for _, cb := range cbs {
				cb(c)
			}
			c.StartTimeout = 10 * time.Second
			c.Mesh.ClusterSecret = testSecret
			c.Mesh.MDNS = false
			c.Mesh.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}
			c.Mesh.Join = join
		}
	}
	n1 := startBenchNode(b, mesh(nil))
	nodes := []*Node{n1, nil, nil}
	var wg sync.WaitGroup
	for i := 1; i < 3; i++ {
		wg.Go(func() { nodes[i] = startBenchNode(b, mesh(n1.P2PAddrs()[:1])) })
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for err := converged(nodes, 3); err != nil; err = converged(nodes, 3) {
		if time.Now().After(deadline) {
			b.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
	return nodes
}

// messageRoundTrips runs 32 HTTP clients against entry whose messages one
// device session on responder answers.
func messageRoundTrips(b *testing.B, entry, responderNode *Node, startResponder func(*testing.B, *Node) func()) {
	const clients = 32
	n := entry
	base := "http://" + n.HTTPAddr().String()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: 30 * time.Second}
	b.Cleanup(hc.CloseIdleConnections)
	put, _ := http.NewRequest("PUT", base+"/api/2/things/bench:msg", strings.NewReader(`{}`))
	put.SetBasicAuth("ditto", "ditto")
	put.Header.Set("Content-Type", "application/json")
	if resp, err := hc.Do(put); err != nil || resp.StatusCode != http.StatusCreated {
		b.Fatalf("create thing: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// The responder's node must have applied the thing.
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest("GET", "http://"+responderNode.HTTPAddr().String()+"/api/2/things/bench:msg?consistency=local", nil)
		req.SetBasicAuth("ditto", "ditto")
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("thing not on the responder's node: %v %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
	stop := startResponder(b, responderNode)
	defer stop()

	var next atomic.Int64
	var failed atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	began := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				req, _ := http.NewRequest("POST", base+"/api/2/things/bench:msg/inbox/messages/ping?timeout=10", strings.NewReader("ping"))
				req.SetBasicAuth("ditto", "ditto")
				req.Header.Set("Content-Type", "text/plain")
				resp, err := hc.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || string(body) != "ping" {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(began)
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Errorf("%d of %d round trips failed", f, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// wsResponder answers the ping messages of messageRoundTrips from a
// WebSocket session (START-SEND-MESSAGES) on n.
func wsResponder(b *testing.B, n *Node) func() {
	responder := dialRawWS(b, n, "ditto", "")
	ctx, cancel := context.WithCancel(context.Background())
	if err := responder.Write(ctx, websocket.MessageText, []byte("START-SEND-MESSAGES")); err != nil {
		b.Fatal(err)
	}
	if _, ack, err := responder.Read(ctx); err != nil || string(ack) != "START-SEND-MESSAGES:ACK" {
		b.Fatalf("start: %q %v", ack, err)
	}
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		for {
			_, data, err := responder.Read(ctx)
			if err != nil {
				return
			}
			msg, err := ditto.DecodeEnvelope(data)
			if err != nil {
				continue
			}
			out := ditto.Envelope{Topic: msg.Topic, Path: "/outbox/messages/ping", Status: http.StatusOK, Value: msg.Value,
				Headers: ditto.Headers{ditto.HeaderCorrelationID: msg.Headers[ditto.HeaderCorrelationID], ditto.HeaderContentType: "text/plain"}}
			if err := responder.Write(ctx, websocket.MessageText, ditto.EncodeEnvelope(out)); err != nil {
				return
			}
		}
	}()

	return func() {
		cancel()
		_ = responder.CloseNow()
		<-answered
	}
}

package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A minimal MQTT 3.1.1 client for the p2p mode: it encodes PUBLISH and
// PUBACK itself, pipelines a window of QoS 1 publishes and batches writes,
// so the load generator spends little CPU per message and the broker, not
// the client library, is what gets measured.

type rawConn struct {
	c  net.Conn
	r  *bufio.Reader
	mu sync.Mutex
	w  *bufio.Writer
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendLength(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func rawDial(ctx context.Context, cfg config, id string) (*rawConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", cfg.broker)
	if err != nil {
		return nil, err
	}
	rc := &rawConn{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 64<<10)}
	flags := byte(0x02) // clean session
	var payload []byte
	payload = appendString(payload, id)
	if name, pw, ok := strings.Cut(cfg.user, ":"); ok {
		flags |= 0xC0
		payload = appendString(appendString(payload, name), pw)
	}
	vh := append(appendString(nil, "MQTT"), 4, flags, 0, 60)
	pk := appendLength([]byte{0x10}, len(vh)+len(payload))
	pk = append(append(pk, vh...), payload...)
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.Write(pk); err != nil {
		_ = c.Close()
		return nil, err
	}
	typ, body, err := rc.read()
	if err != nil || typ>>4 != 2 || len(body) < 2 || body[1] != 0 {
		_ = c.Close()
		return nil, fmt.Errorf("connect %s refused: %v %x", id, err, body)
	}
	_ = c.SetDeadline(time.Time{})
	return rc, nil
}

// read reads one packet: its first byte and body.
func (rc *rawConn) read() (byte, []byte, error) {
	typ, err := rc.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for {
		b, err := rc.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mul
		if b&0x80 == 0 {
			break
		}
		mul *= 128
		if mul > 128*128*128 {
			return 0, nil, errors.New("bad remaining length")
		}
	}
	body := make([]byte, n)
	_, err = io.ReadFull(rc.r, body)
	return typ, body, err
}

func (rc *rawConn) subscribe(topic string, qos byte) error {
	body := append(binary.BigEndian.AppendUint16(nil, 1), appendString(nil, topic)...)
	body = append(body, qos)
	pk := append(appendLength([]byte{0x82}, len(body)), body...)
	if _, err := rc.c.Write(pk); err != nil {
		return err
	}
	typ, b, err := rc.read()
	if err != nil || typ>>4 != 9 || len(b) < 3 || b[2] >= 0x80 {
		return fmt.Errorf("subscribe %s: %v %x", topic, err, b)
	}
	return nil
}

// publishPacket encodes a PUBLISH.
func publishPacket(buf []byte, topic string, qos byte, id uint16, payload []byte) []byte {
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	buf = appendLength(append(buf[:0], 0x30|qos<<1), n)
	buf = appendString(buf, topic)
	if qos > 0 {
		buf = binary.BigEndian.AppendUint16(buf, id)
	}
	return append(buf, payload...)
}

// runRawP2P is the p2p mode with the raw client.
func runRawP2P(ctx context.Context, cfg config, out io.Writer) error {
	var received, sent atomic.Int64
	run := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)
	payload := make([]byte, cfg.size)
	for i := range payload {
		payload[i] = 'x'
	}
	var conns []*rawConn
	defer func() {
		for _, c := range conns {
			_ = c.c.Close()
		}
	}()
	qos := byte(cfg.qos)
	var subWG sync.WaitGroup
	pubs := make([]*rawConn, cfg.pairs)
	for i := range cfg.pairs {
		topic := fmt.Sprintf("bench/%s/%d", run, i)
		sc, err := rawDial(ctx, cfg, fmt.Sprintf("sub-%s-%d", run, i))
		if err != nil {
			return err
		}
		conns = append(conns, sc)
		if err := sc.subscribe(topic, qos); err != nil {
			return err
		}
		subWG.Add(1)
		go func() {
			defer subWG.Done()
			ack := make([]byte, 4)
			for {
				typ, body, err := sc.read()
				if err != nil {
					return
				}
				if typ>>4 != 3 {
					continue
				}
				received.Add(1)
				if (typ>>1)&3 == 1 && len(body) >= 2 {
					tl := int(binary.BigEndian.Uint16(body))
					if len(body) < 2+tl+2 {
						return
					}
					ack[0], ack[1] = 0x40, 2
					copy(ack[2:], body[2+tl:2+tl+2])
					_, _ = sc.w.Write(ack)
					if sc.r.Buffered() == 0 {
						if sc.w.Flush() != nil {
							return
						}
					}
				}
			}
		}()
		pc, err := rawDial(ctx, cfg, fmt.Sprintf("pub-%s-%d", run, i))
		if err != nil {
			return err
		}
		conns = append(conns, pc)
		pubs[i] = pc
	}
	lctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i, pc := range pubs {
		topic := fmt.Sprintf("bench/%s/%d", run, i)
		window := make(chan struct{}, cfg.inflight)
		if qos > 0 {
			// Acknowledgements free window slots.
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					typ, _, err := pc.read()
					if err != nil {
						return
					}
					if typ>>4 == 4 {
						sent.Add(1)
						<-window
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var tick <-chan time.Time
			if cfg.rate > 0 {
				t := time.NewTicker(time.Duration(float64(time.Second) * float64(cfg.pairs) / cfg.rate))
				defer t.Stop()
				tick = t.C
			}
			buf := make([]byte, 0, 256+len(payload))
			var id uint16
			for lctx.Err() == nil {
				if tick != nil {
					select {
					case <-tick:
					case <-lctx.Done():
					}
				}
				if qos > 0 {
					select {
					case window <- struct{}{}:
					default:
						// Window full: send what is buffered, then wait.
						if pc.w.Flush() != nil {
							return
						}
						select {
						case window <- struct{}{}:
						case <-lctx.Done():
							continue
						}
					}
				}
				id++
				if id == 0 {
					id = 1
				}
				buf = publishPacket(buf, topic, qos, id, payload)
				if _, err := pc.w.Write(buf); err != nil {
					return
				}
				if qos == 0 {
					sent.Add(1)
					if tick != nil || pc.w.Buffered() > 32<<10 {
						if pc.w.Flush() != nil {
							return
						}
					}
				}
			}
			_ = pc.w.Flush()
		}()
	}
	<-lctx.Done()
	elapsed := time.Since(start)
	atEnd := received.Load()
	// Wait for outstanding acknowledgements and deliveries.
	deadline := time.Now().Add(10 * time.Second)
	for received.Load() < sent.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range conns {
		_ = c.c.Close()
	}
	wg.Wait()
	subWG.Wait()
	conns = nil
	fmt.Fprintf(out, "p2p client=raw qos=%d pairs=%d inflight=%d size=%d duration=%s sent=%d received=%d lost=%d throughput=%.0f msg/s\n",
		cfg.qos, cfg.pairs, cfg.inflight, cfg.size, elapsed.Round(time.Millisecond), sent.Load(), received.Load(),
		max(0, sent.Load()-received.Load()), float64(atEnd)/elapsed.Seconds())
	return nil
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mqttload:", err)
		os.Exit(1)
	}
}

type config struct {
	mode      string
	broker    string
	user      string
	pairs     int
	inflight  int
	qos       int
	rate      float64
	duration  time.Duration
	size      int
	devices   int
	httpURL   string
	conns     int
	pid       int
	hold      time.Duration
	namespace string
	client    string
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: mqttload p2p|twin|idle [flags] (mqttload MODE -h lists them)")
	}
	cfg := config{mode: args[0]}
	fs := flag.NewFlagSet("mqttload "+cfg.mode, flag.ContinueOnError)
	fs.StringVar(&cfg.broker, "broker", "127.0.0.1:1883", "broker TCP `addr:port` (loopback only)")
	fs.StringVar(&cfg.user, "user", "", "MQTT `name:password` (empty: anonymous, for a plain mosquitto)")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "measurement time")
	switch cfg.mode {
	case "p2p":
		fs.IntVar(&cfg.pairs, "pairs", 8, "publisher/subscriber pairs, one topic each")
		fs.IntVar(&cfg.inflight, "inflight", 32, "messages in flight per publisher")
		fs.IntVar(&cfg.qos, "qos", 1, "QoS of publishes and subscriptions (0 or 1)")
		fs.Float64Var(&cfg.rate, "rate", 0, "total publish rate per second (0: as fast as acknowledged)")
		fs.IntVar(&cfg.size, "size", 64, "payload bytes")
		fs.StringVar(&cfg.client, "client", "raw", "raw (a lean MQTT 3.1.1 client built in, pipelined) or paho (paho.golang, MQTT 5)")
	case "twin":
		fs.IntVar(&cfg.devices, "devices", 100, "devices, one thing each")
		fs.IntVar(&cfg.inflight, "inflight", 4, "commands in flight per device")
		fs.StringVar(&cfg.httpURL, "http", "http://127.0.0.1:8080", "node HTTP API for setup and the final check (uses -user as HTTP user)")
		fs.StringVar(&cfg.namespace, "namespace", "mqttload", "namespace of the things")
	case "idle":
		fs.IntVar(&cfg.conns, "conns", 10000, "idle connections")
		fs.IntVar(&cfg.pid, "pid", 0, "broker process ID whose memory is reported (0: none)")
		fs.DurationVar(&cfg.hold, "hold", 5*time.Second, "how long the connections stay up after the last connected")
	default:
		return fmt.Errorf("unknown mode %q (p2p, twin, idle)", cfg.mode)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(cfg.broker)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); (ip == nil && host != "localhost") || (ip != nil && !ip.IsLoopback()) {
		return errors.New("only loopback brokers are allowed")
	}
	switch cfg.mode {
	case "p2p":
		if cfg.client == "raw" {
			return runRawP2P(ctx, cfg, out)
		}
		return runP2P(ctx, cfg, out)
	case "twin":
		return runTwin(ctx, cfg, out)
	}
	return runIdle(ctx, cfg, out)
}

// client connects one MQTT 5 client; onMsg receives every publish.
func client(ctx context.Context, cfg config, id string, onMsg func(*paho.Publish)) (*paho.Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.broker)
	if err != nil {
		return nil, err
	}
	cc := paho.ClientConfig{Conn: conn}
	if onMsg != nil {
		cc.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			onMsg(pr.Packet)
			return true, nil
		}}
	}
	c := paho.NewClient(cc)
	cp := &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 60}
	if name, pw, ok := strings.Cut(cfg.user, ":"); ok {
		cp.Username, cp.UsernameFlag, cp.Password, cp.PasswordFlag = name, true, []byte(pw), true
	}
	cctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	if _, err := c.Connect(cctx, cp); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("connect %s: %w", id, err)
	}
	return c, nil
}

// runP2P: each pair has its own topic; publishers keep -inflight messages
// in flight (QoS 1: until the PUBACK), subscribers count what arrives.
// Throughput is what the subscribers received per second.
func runP2P(ctx context.Context, cfg config, out io.Writer) error {
	var received, sent, failed atomic.Int64
	subs := make([]*paho.Client, cfg.pairs)
	pubs := make([]*paho.Client, cfg.pairs)
	defer func() {
		for _, c := range append(subs, pubs...) {
			if c != nil {
				_ = c.Disconnect(&paho.Disconnect{})
			}
		}
	}()
	run := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)
	payload := bytes.Repeat([]byte("x"), cfg.size)
	for i := range cfg.pairs {
		topic := fmt.Sprintf("bench/%s/%d", run, i)
		c, err := client(ctx, cfg, fmt.Sprintf("sub-%s-%d", run, i), func(*paho.Publish) { received.Add(1) })
		if err != nil {
			return err
		}
		subs[i] = c
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = c.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: byte(cfg.qos)}}})
		cancel()
		if err != nil {
			return err
		}
		if pubs[i], err = client(ctx, cfg, fmt.Sprintf("pub-%s-%d", run, i), nil); err != nil {
			return err
		}
	}
	lctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	var tick <-chan time.Time
	if cfg.rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / cfg.rate))
		defer t.Stop()
		tick = t.C
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i := range cfg.pairs {
		topic := fmt.Sprintf("bench/%s/%d", run, i)
		for range cfg.inflight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for lctx.Err() == nil {
					if tick != nil {
						select {
						case <-tick:
						case <-lctx.Done():
							return
						}
					}
					_, err := pubs[i].Publish(lctx, &paho.Publish{Topic: topic, QoS: byte(cfg.qos), Payload: payload})
					if err != nil {
						if lctx.Err() == nil {
							failed.Add(1)
						}
						continue
					}
					sent.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	// Give the subscribers time to drain what was acknowledged.
	deadline := time.Now().Add(10 * time.Second)
	for received.Load() < sent.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprintf(out, "p2p qos=%d pairs=%d inflight=%d size=%d duration=%s sent=%d received=%d lost=%d failed=%d throughput=%.0f msg/s\n",
		cfg.qos, cfg.pairs, cfg.inflight, cfg.size, elapsed.Round(time.Millisecond), sent.Load(), received.Load(),
		max(0, sent.Load()-received.Load()), failed.Load(), float64(received.Load())/elapsed.Seconds())
	return nil
}

// runTwin: each device modifies an attribute of its own thing with Ditto
// Protocol over QoS 1; the broker acknowledges after the commit, so
// PUBACKs per second are committed modifies per second.
func runTwin(ctx context.Context, cfg config, out io.Writer) error {
	name, pw, _ := strings.Cut(cfg.user, ":")
	hc := &http.Client{Timeout: 30 * time.Second}
	for i := range cfg.devices {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, fmt.Sprintf("%s/api/2/things/%s:dev-%d", cfg.httpURL, cfg.namespace, i),
			strings.NewReader(`{"attributes":{"n":0}}`))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(name, pw)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("create thing %d: %s", i, resp.Status)
		}
	}
	clients := make([]*paho.Client, cfg.devices)
	defer func() {
		for _, c := range clients {
			if c != nil {
				_ = c.Disconnect(&paho.Disconnect{})
			}
		}
	}()
	for i := range cfg.devices {
		c, err := client(ctx, cfg, fmt.Sprintf("device-%d", i), nil)
		if err != nil {
			return err
		}
		clients[i] = c
	}
	var acked, failed atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	lctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range cfg.devices {
		for w := range cfg.inflight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var local []time.Duration
				for n := 0; lctx.Err() == nil; n++ {
					cmd := fmt.Sprintf(`{"topic":"%s/dev-%d/things/twin/commands/modify","headers":{"response-required":false},"path":"/attributes/w%d","value":%d}`,
						cfg.namespace, i, w, n)
					t0 := time.Now()
					_, err := clients[i].Publish(lctx, &paho.Publish{Topic: "ditto/command", QoS: 1, Payload: []byte(cmd)})
					if err != nil {
						if lctx.Err() == nil {
							failed.Add(1)
						}
						continue
					}
					acked.Add(1)
					local = append(local, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	// The things' revisions must account for every acknowledged modify.
	var revs int64
	for i := range cfg.devices {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/2/things/%s:dev-%d?fields=_revision", cfg.httpURL, cfg.namespace, i), nil)
		req.SetBasicAuth(name, pw)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		var v struct {
			Revision int64 `json:"_revision"`
		}
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if err != nil {
			return err
		}
		revs += v.Revision - 1
	}
	fmt.Fprintf(out, "twin devices=%d inflight=%d duration=%s acked=%d failed=%d committed_revisions=%d throughput=%.0f modifies/s p50=%s p99=%s\n",
		cfg.devices, cfg.inflight, elapsed.Round(time.Millisecond), acked.Load(), failed.Load(), revs,
		float64(acked.Load())/elapsed.Seconds(), pct(0.5).Round(time.Microsecond), pct(0.99).Round(time.Microsecond))
	if revs < acked.Load() {
		return fmt.Errorf("%d modifies acknowledged but only %d committed", acked.Load(), revs)
	}
	return nil
}

// runIdle opens -conns connections and reports the broker's memory.
func runIdle(ctx context.Context, cfg config, out io.Writer) error {
	before := rss(cfg.pid)
	clients := make([]*rawConn, 0, cfg.conns)
	defer func() {
		for _, c := range clients {
			_ = c.c.Close()
		}
	}()
	start := time.Now()
	sem := make(chan struct{}, 64)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for i := range cfg.conns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := rawDial(ctx, cfg, fmt.Sprintf("idle-%d", i))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			clients = append(clients, c)
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	connected := time.Since(start)
	select {
	case <-time.After(cfg.hold):
	case <-ctx.Done():
	}
	after := rss(cfg.pid)
	fmt.Fprintf(out, "idle conns=%d connect_time=%s broker_rss_before=%dMiB broker_rss_after=%dMiB per_conn=%.1fKiB\n",
		len(clients), connected.Round(time.Millisecond), before>>20, after>>20, float64(after-before)/1024/float64(max(1, len(clients))))
	return nil
}

// rss is the resident memory of a process in bytes (Linux; 0 if unknown).
func rss(pid int) int64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

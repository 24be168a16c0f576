package testnet

import (
	"net"
	"sync"
	"time"
)

// proxy is a TCP proxy in front of one node's HTTP gateway. Its address
// stays the same while the node behind it is killed and restarted; while
// paused it accepts connections and holds every byte in both directions,
// which is what clients of a stopped (SIGSTOP) process see.
type proxy struct {
	ln net.Listener
	wg sync.WaitGroup

	mu      sync.Mutex
	backend string        // "" while the node is down: connections are closed
	gate    chan struct{} // closed while traffic flows; open while paused
	conns   map[net.Conn]struct{}
	closed  bool
}

func newProxy() (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, gate: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	close(p.gate)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listen address.
func (p *proxy) Addr() string { return p.ln.Addr().String() }

// setBackend points new connections at addr ("" refuses them) and closes
// the connections to the previous backend.
func (p *proxy) setBackend(addr string) {
	p.mu.Lock()
	p.backend = addr
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

func (p *proxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
		p.gate = make(chan struct{})
	default:
	}
}

func (p *proxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

// wait blocks while the proxy is paused; false once it is closed.
func (p *proxy) wait() bool {
	for {
		p.mu.Lock()
		g, closed := p.gate, p.closed
		p.mu.Unlock()
		if closed {
			return false
		}
		<-g
		p.mu.Lock()
		same := g == p.gate
		closed = p.closed
		p.mu.Unlock()
		if closed {
			return false
		}
		if same {
			return true
		}
	}
}

func (p *proxy) close() error {
	p.mu.Lock()
	p.closed = true
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.setBackend("")
	p.wg.Wait()
	return err
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

func (p *proxy) serve(client net.Conn) {
	defer client.Close()
	if !p.track(client) || !p.wait() {
		return
	}
	p.mu.Lock()
	backend := p.backend
	p.mu.Unlock()
	if backend == "" {
		return
	}
	server, err := net.DialTimeout("tcp", backend, 2*time.Second)
	if err != nil {
		return
	}
	defer server.Close()
	if !p.track(server) {
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if !p.wait() {
					return
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return // EOF or a closed connection: HTTP needs no half-close
			}
		}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	// One direction ended: close both so the other ends too.
	_ = client.Close()
	_ = server.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

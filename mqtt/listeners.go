package mqtt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/quic-go/quic-go"
)

// listeners builds the configured listeners.
func (b *Broker) listeners() ([]listeners.Listener, error) {
	var out []listeners.Listener
	if b.cfg.Addr != "" {
		out = append(out, &tcpListener{id: ListenerTCP, address: b.cfg.Addr, disconnect: b.disconnectListener})
	}
	if b.cfg.WSAddr != "" {
		out = append(out, &wsListener{id: ListenerWS, address: b.cfg.WSAddr, ctx: b.ctx, disconnect: b.disconnectListener})
	}
	if b.cfg.TLSAddr == "" && b.cfg.QUICAddr == "" {
		return out, nil
	}
	tc, err := b.tlsConfig()
	if err != nil {
		return nil, err
	}
	if b.cfg.TLSAddr != "" {
		out = append(out, &tcpListener{id: ListenerTLS, address: b.cfg.TLSAddr, tls: tc, disconnect: b.disconnectListener})
	}
	if b.cfg.QUICAddr != "" {
		qc := tc.Clone()
		qc.NextProtos = []string{"mqtt"}
		out = append(out, &quicListener{id: ListenerQUIC, address: b.cfg.QUICAddr, tls: qc, ctx: b.ctx, disconnect: b.disconnectListener})
	}
	return out, nil
}

// tlsConfig is the server TLS configuration of the TLS and QUIC
// listeners: the configured certificate, or a self-signed one kept in the
// broker directory; with a client CA, client certificates are verified
// when given (a client without one logs in with a password).
func (b *Broker) tlsConfig() (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	if b.cfg.TLSCertFile != "" {
		cert, err = tls.LoadX509KeyPair(b.cfg.TLSCertFile, b.cfg.TLSKeyFile)
	} else {
		cert, err = selfSigned(b.cfg.Dir)
	}
	if err != nil {
		return nil, fmt.Errorf("mqtt: tls certificate: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if b.cfg.TLSClientCAFile != "" {
		pem, err := os.ReadFile(b.cfg.TLSClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt: client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("mqtt: the client CA file holds no PEM certificate")
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

// selfSigned loads or creates the broker's self-signed certificate
// (<dir>/self-signed.crt and .key; in memory without a directory).
func selfSigned(dir string) (tls.Certificate, error) {
	var certFile, keyFile string
	if dir != "" {
		certFile, keyFile = filepath.Join(dir, "self-signed.crt"), filepath.Join(dir, "self-signed.key")
		if c, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
			return c, nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "dittonode mqtt"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	if dir != "" {
		if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
			return tls.Certificate{}, err
		}
		if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
			return tls.Certificate{}, err
		}
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// Our listeners disconnect their clients through the broker
// (disconnectListener) instead of mochi's close callback: that one lists
// the clients under a read lock it takes twice, which deadlocks against a
// client leaving at the same moment (mochi v2.7.9 Clients.GetByListener),
// so a node under load could hang in shutdown.

// tcpListener serves MQTT over TCP, or TLS with a tls.Config.
type tcpListener struct {
	id, address string
	tls         *tls.Config
	disconnect  func(listener string)
	log         *slog.Logger

	ln net.Listener
	wg sync.WaitGroup
}

func (l *tcpListener) ID() string { return l.id }
func (l *tcpListener) Protocol() string {
	if l.tls != nil {
		return "tls"
	}
	return "tcp"
}
func (l *tcpListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.address
}

func (l *tcpListener) Init(log *slog.Logger) error {
	l.log = log
	ln, err := net.Listen("tcp", l.address)
	if err != nil {
		return err
	}
	if l.tls != nil {
		ln = tls.NewListener(ln, l.tls)
	}
	l.ln = ln
	return nil
}

func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			if err := establish(l.id, conn); err != nil {
				l.log.Debug("mqtt: client ended", "listener", l.id, logKeyError, err)
			}
		}()
	}
}

func (l *tcpListener) Close(listeners.CloseFn) {
	if l.ln != nil {
		_ = l.ln.Close()
	}
	l.disconnect(l.id)
	l.wg.Wait()
}

// wsListener serves MQTT over WebSocket (subprotocol "mqtt", binary
// frames) on any path.
type wsListener struct {
	id, address string
	ctx         context.Context
	disconnect  func(listener string)
	log         *slog.Logger

	ln  net.Listener
	srv *http.Server
	wg  sync.WaitGroup
}

func (l *wsListener) ID() string       { return l.id }
func (l *wsListener) Protocol() string { return "ws" }
func (l *wsListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.address
}

func (l *wsListener) Init(log *slog.Logger) error {
	l.log = log
	ln, err := net.Listen("tcp", l.address)
	if err != nil {
		return err
	}
	l.ln = ln
	return nil
}

func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.srv = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"mqtt"}, InsecureSkipVerify: true})
			if err != nil {
				return
			}
			c.SetReadLimit(1 << 20)
			nc := websocket.NetConn(l.ctx, c, websocket.MessageBinary)
			l.wg.Add(1)
			defer l.wg.Done()
			if err := establish(l.id, nc); err != nil {
				l.log.Debug("mqtt: websocket client ended", logKeyError, err)
			}
			_ = nc.Close()
		}),
	}
	if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.log.Warn("mqtt: websocket listener", logKeyError, err)
	}
}

func (l *wsListener) Close(listeners.CloseFn) {
	l.disconnect(l.id)
	if l.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = l.srv.Shutdown(ctx)
	} else if l.ln != nil {
		_ = l.ln.Close()
	}
	l.wg.Wait()
}

// quicListener serves MQTT over QUIC: ALPN "mqtt", the client opens one
// bidirectional stream per MQTT connection.
type quicListener struct {
	id, address string
	tls         *tls.Config
	ctx         context.Context
	disconnect  func(listener string)
	log         *slog.Logger

	ln     *quic.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (l *quicListener) ID() string       { return l.id }
func (l *quicListener) Protocol() string { return "quic" }
func (l *quicListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.address
}

func (l *quicListener) Init(log *slog.Logger) error {
	l.log = log
	ln, err := quic.ListenAddr(l.address, l.tls, &quic.Config{
		KeepAlivePeriod:       15 * time.Second,
		MaxIdleTimeout:        60 * time.Second,
		MaxIncomingStreams:    1,
		MaxIncomingUniStreams: -1,
	})
	if err != nil {
		return err
	}
	l.ln = ln
	l.ctx, l.cancel = context.WithCancel(l.ctx)
	return nil
}

func (l *quicListener) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := l.ln.Accept(l.ctx)
		if err != nil {
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.serveConn(conn, establish)
		}()
	}
}

func (l *quicListener) serveConn(conn *quic.Conn, establish listeners.EstablishFn) {
	ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
	st, err := conn.AcceptStream(ctx)
	cancel()
	if err != nil {
		_ = conn.CloseWithError(1, "no stream")
		return
	}
	sc := &streamConn{Stream: st, conn: conn}
	if err := establish(l.id, sc); err != nil {
		l.log.Debug("mqtt: quic client ended", logKeyError, err)
	}
	_ = conn.CloseWithError(0, "")
}

func (l *quicListener) Close(listeners.CloseFn) {
	if l.cancel != nil {
		l.cancel()
	}
	if l.ln != nil {
		_ = l.ln.Close()
	}
	l.disconnect(l.id)
	l.wg.Wait()
}

// streamConn is a QUIC stream as a net.Conn; the TLS state of the QUIC
// connection identifies client certificates.
type streamConn struct {
	*quic.Stream
	conn *quic.Conn
}

func (c *streamConn) LocalAddr() net.Addr  { return c.conn.LocalAddr() }
func (c *streamConn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }
func (c *streamConn) Close() error {
	c.Stream.CancelRead(0)
	return c.Stream.Close()
}

// ConnectionState is the TLS state of the QUIC connection.
func (c *streamConn) ConnectionState() tls.ConnectionState { return c.conn.ConnectionState().TLS }

// Dial helpers for clients live in the tests and load tools; the wire is
// plain MQTT on the stream.
var _ net.Conn = (*streamConn)(nil)

package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/paho"
	"github.com/quic-go/quic-go"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/mqtt"
)

// The broker's other listeners with a Go MQTT 5 client (paho.golang):
// QUIC, WebSocket, and TLS with client-certificate identities.

// quicConn is a QUIC stream as a net.Conn, the client side of the
// broker's MQTT-over-QUIC listener.
type quicConn struct {
	*quic.Stream
	conn *quic.Conn
}

func (c quicConn) LocalAddr() net.Addr  { return c.conn.LocalAddr() }
func (c quicConn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

func dialQUIC(t *testing.T, addr string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	qc, err := quic.DialAddr(ctx, addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"mqtt"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = qc.CloseWithError(0, "") })
	return quicConn{Stream: st, conn: qc}
}

// pahoClient connects an MQTT 5 client with a clean session over conn;
// received publishes arrive on the channel.
func pahoClient(t *testing.T, conn net.Conn, id, user, pw string) (*paho.Client, *inbox, error) {
	t.Helper()
	cp := &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}
	if user != "" {
		cp.Username, cp.UsernameFlag, cp.Password, cp.PasswordFlag = user, true, []byte(pw), true
	}
	return pahoConnect(t, conn, cp)
}

// pahoConnect connects an MQTT 5 client over conn with cp.
func pahoConnect(t *testing.T, conn net.Conn, cp *paho.Connect) (*paho.Client, *inbox, error) {
	t.Helper()
	got := make(chan *paho.Publish, 64)
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			got <- pr.Packet
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, cp); err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, &inbox{ch: got}, nil
}

// inbox holds what a client received; receive takes messages by topic in
// any arrival order.
type inbox struct {
	ch      chan *paho.Publish
	backlog []*paho.Publish
}

func pahoSubscribe(t *testing.T, c *paho.Client, topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := &paho.Subscribe{}
	for _, tp := range topics {
		s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{Topic: tp, QoS: 1})
	}
	if _, err := c.Subscribe(ctx, s); err != nil {
		t.Fatal(err)
	}
}

func pahoPublish(c *paho.Client, p *paho.Publish) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := c.Publish(ctx, p)
	return err
}

func receive(t *testing.T, in *inbox, topicPrefix string) *paho.Publish {
	t.Helper()
	for i, p := range in.backlog {
		if strings.HasPrefix(p.Topic, topicPrefix) {
			in.backlog = append(in.backlog[:i], in.backlog[i+1:]...)
			return p
		}
	}
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		select {
		case p := <-in.ch:
			if strings.HasPrefix(p.Topic, topicPrefix) {
				return p
			}
			in.backlog = append(in.backlog, p)
		case <-timer.C:
			t.Fatalf("nothing on %s", topicPrefix)
			return nil
		}
	}
}

func TestMQTTOverQUIC(t *testing.T) {
	n, c := startMQTTNode(t, t.TempDir(), func(c *Config) { c.MQTT.QUICAddr = "127.0.0.1:0" })
	setupMQTTFixture(t, c)
	addr := n.MQTTAddr(mqtt.ListenerQUIC)

	if _, _, err := pahoClient(t, dialQUIC(t, addr), "q-bad", "dev1", "wrong"); err == nil {
		t.Fatal("wrong password accepted over QUIC")
	}
	if _, _, err := pahoClient(t, dialQUIC(t, addr), "q-anon", "", ""); err == nil {
		t.Fatal("anonymous client accepted over QUIC")
	}
	cl, got, err := pahoClient(t, dialQUIC(t, addr), "q-dev1", "dev1", "secret-1")
	if err != nil {
		t.Fatal(err)
	}
	pahoSubscribe(t, cl, "things/t:dev1/events/#", "q/replies")

	// Ditto Protocol with an MQTT 5 response topic and correlation data.
	cmd := `{"topic":"t/dev1/things/twin/commands/modify","headers":{"correlation-id":"q-1"},"path":"/features/lamp/properties/on","value":true}`
	if err := pahoPublish(cl, &paho.Publish{Topic: mqtt.CommandTopic, QoS: 1, Payload: []byte(cmd),
		Properties: &paho.PublishProperties{ResponseTopic: "q/replies", CorrelationData: []byte("corr-7")}}); err != nil {
		t.Fatal(err)
	}
	resp := receive(t, got, "q/replies")
	var env ditto.Envelope
	if err := json.Unmarshal(resp.Payload, &env); err != nil || env.Status != 204 || string(resp.Properties.CorrelationData) != "corr-7" {
		t.Fatalf("response %s (correlation %q, %v)", resp.Payload, resp.Properties.CorrelationData, err)
	}
	ev := receive(t, got, "things/t:dev1/events/features/lamp/properties/on")
	if !strings.Contains(string(ev.Payload), `"value":true`) {
		t.Errorf("event %s", ev.Payload)
	}

	// A plain value, acknowledged after the commit.
	if err := pahoPublish(cl, &paho.Publish{Topic: "things/t:dev1/attributes/rssi", QoS: 1, Payload: []byte("-71")}); err != nil {
		t.Fatal(err)
	}
	expectJSON(t, c.do("GET", "/api/2/things/t:dev1/attributes/rssi", "", "consistency", "local"), "-71")

	// Denied: the PUBACK says so and nothing changes.
	err = pahoPublish(cl, &paho.Publish{Topic: "things/t:other/attributes/a", QoS: 1, Payload: []byte("9")})
	if err == nil || !strings.Contains(err.Error(), "not authorized") {
		t.Errorf("denied publish: %v", err)
	}
	expectJSON(t, c.do("GET", "/api/2/things/t:other/attributes/a", ""), "1")
	// Bad JSON in a Ditto Protocol message: a 400 error on the reply topic.
	if err := pahoPublish(cl, &paho.Publish{Topic: mqtt.CommandTopic, QoS: 1, Payload: []byte("{nope"),
		Properties: &paho.PublishProperties{ResponseTopic: "q/replies"}}); err == nil {
		t.Error("invalid JSON acknowledged with success")
	}
	resp = receive(t, got, "q/replies")
	if !strings.Contains(string(resp.Payload), `"status":400`) {
		t.Errorf("error reply %s", resp.Payload)
	}
}

func TestMQTTOverWebSocket(t *testing.T) {
	n, c := startMQTTNode(t, t.TempDir(), func(c *Config) { c.MQTT.WSAddr = "127.0.0.1:0" })
	setupMQTTFixture(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+n.MQTTAddr(mqtt.ListenerWS)+"/mqtt", &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
	if err != nil {
		t.Fatal(err)
	}
	// paho.golang writes a packet with net.Buffers, which on a conn other
	// than TCP is one Write (here: one WebSocket message) per part; its
	// keep-alive pinger writing at the same moment can interleave with a
	// PUBLISH and the broker rightly drops the malformed result. Keep-alive
	// off: this test is about the listener.
	cl, _, err := pahoConnect(t, websocket.NetConn(context.Background(), ws, websocket.MessageBinary),
		&paho.Connect{ClientID: "ws-dev1", CleanStart: true, Username: "dev1", UsernameFlag: true,
			Password: []byte("secret-1"), PasswordFlag: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := pahoPublish(cl, &paho.Publish{Topic: "things/t:dev1/attributes/via", QoS: 1, Payload: []byte(`"ws"`)}); err != nil {
		t.Fatal(err)
	}
	expectJSON(t, c.do("GET", "/api/2/things/t:dev1/attributes/via", ""), `"ws"`)
}

// TestMQTTClientCertificate: on the TLS listener with a client CA, a
// certificate whose CN names a device logs in as that device without a
// password; a client without certificate still needs credentials.
func TestMQTTClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCA(t)
	writePEM(t, filepath.Join(dir, "ca.crt"), "CERTIFICATE", ca.Raw)
	srvCert, srvKey := issue(t, ca, caKey, "localhost", true)
	writePEM(t, filepath.Join(dir, "srv.crt"), "CERTIFICATE", srvCert.Raw)
	writeKey(t, filepath.Join(dir, "srv.key"), srvKey)
	n, c := startMQTTNode(t, filepath.Join(dir, "node"), func(c *Config) {
		c.MQTT.TLSAddr = "127.0.0.1:0"
		c.MQTT.TLSCertFile, c.MQTT.TLSKeyFile = filepath.Join(dir, "srv.crt"), filepath.Join(dir, "srv.key")
		c.MQTT.TLSClientCAFile = filepath.Join(dir, "ca.crt")
	})
	setupMQTTFixture(t, c)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	dial := func(cert *tls.Certificate) net.Conn {
		cfg := &tls.Config{RootCAs: roots, ServerName: "localhost"}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		conn, err := tls.Dial("tcp", n.MQTTAddr(mqtt.ListenerTLS), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	devCert, devKey := issue(t, ca, caKey, "dev1", false)
	cert := tls.Certificate{Certificate: [][]byte{devCert.Raw}, PrivateKey: devKey}
	cl, _, err := pahoClient(t, dial(&cert), "cert-dev1", "", "")
	if err != nil {
		t.Fatalf("certificate login: %v", err)
	}
	if err := pahoPublish(cl, &paho.Publish{Topic: "things/t:dev1/attributes/auth", QoS: 1, Payload: []byte(`"cert"`)}); err != nil {
		t.Fatal(err)
	}
	expectJSON(t, c.do("GET", "/api/2/things/t:dev1/attributes/auth", ""), `"cert"`)
	// A certificate for a device that does not exist is refused.
	otherCert, otherKey := issue(t, ca, caKey, "ghost", false)
	if _, _, err := pahoClient(t, dial(&tls.Certificate{Certificate: [][]byte{otherCert.Raw}, PrivateKey: otherKey}), "cert-ghost", "", ""); err == nil {
		t.Error("certificate of an unknown device accepted")
	}
	if _, _, err := pahoClient(t, dial(nil), "tls-anon", "", ""); err == nil {
		t.Error("TLS client without certificate or password accepted")
	}
	if _, _, err := pahoClient(t, dial(nil), "tls-pw", "dev2", "secret-2"); err != nil {
		t.Errorf("password login over TLS: %v", err)
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return ca, key
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, server bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeKey(t *testing.T, path string, key *ecdsa.PrivateKey) {
	t.Helper()
	b, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, path, "EC PRIVATE KEY", b)
}

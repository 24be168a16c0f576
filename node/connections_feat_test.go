package node

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
)

// connMetric returns a connection metric's PT1H count, e.g.
// connMetric(t, c, id, "inbound", "acknowledged", "failure").
func connMetric(t *testing.T, c client, id, dir, name, kind string) int {
	t.Helper()
	r := c.do("GET", "/api/2/connections/"+id+"/metrics", "")
	expectStatus(t, r, 200)
	var m struct {
		ConnectionMetrics map[string]map[string]map[string]map[string]any `json:"connectionMetrics"`
	}
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatal(err)
	}
	v, _ := m.ConnectionMetrics[dir][name][kind]["PT1H"].(float64)
	return int(v)
}

// connLogs returns the messages of a connection's log entries with the
// correlation ID cid (all with "").
func connLogs(t *testing.T, c client, id, cid string) string {
	t.Helper()
	r := c.do("GET", "/api/2/connections/"+id+"/logs", "")
	expectStatus(t, r, 200)
	var l struct {
		Logs []map[string]any `json:"connectionLogs"`
	}
	_ = json.Unmarshal(r.body, &l)
	var out []string
	for _, e := range l.Logs {
		if cid == "" || e["correlationId"] == cid {
			out = append(out, fmt.Sprint(e["level"], ": ", e["message"]))
		}
	}
	return strings.Join(out, "\n")
}

// pushServer is a real HTTP endpoint of an http-push connection; fail
// decides per correlation ID and attempt whether it answers 500.
type pushServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits map[string]int
	fail func(cid string, attempt int) bool
}

func newPushServer(t *testing.T, fail func(cid string, attempt int) bool) *pushServer {
	p := &pushServer{hits: map[string]int{}, fail: fail}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var env struct {
			Headers map[string]any `json:"headers"`
		}
		_ = json.Unmarshal(b, &env)
		cid, _ := env.Headers["correlation-id"].(string)
		p.mu.Lock()
		p.hits[cid]++
		n := p.hits[cid]
		p.mu.Unlock()
		if p.fail(cid, n) {
			http.Error(w, "the backend is down", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *pushServer) count(cid string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[cid]
}

// TestConnectionsSourceAcks: a QoS 1 message is acknowledged to the broker
// only after the acknowledgements its source requested succeeded. Here
// the source requests twin-persisted and the acknowledgement of another
// connection's HTTP push target, whose backend fails the first delivery.
// With reconnectForRedelivery the failed (503, retryable) message is not
// acknowledged, the client reconnects, the broker redelivers it and the
// second attempt succeeds. Without it the message is acknowledged anyway
// and dropped. A denied command (403, permanent) is never redelivered.
func TestConnectionsSourceAcks(t *testing.T) {
	broker := startMosquitto(t)
	_, c := connNode(t)
	push := newPushServer(t, func(cid string, attempt int) bool {
		return strings.HasPrefix(cid, "first-fails") && attempt == 1 || strings.HasPrefix(cid, "always-fails")
	})
	expectStatus(t, c.do("POST", "/api/2/connections", `{"id":"push","connectionType":"http-push","connectionStatus":"open","uri":"`+push.srv.URL+`",
	  "targets":[{"address":"POST:/events","topics":["_/_/things/twin/events"],"authorizationContext":["integration:devices"],
	    "issuedAcknowledgementLabel":"{{connection:id}}:pushed"}]}`), 201)
	waitLive(t, c, "push")

	for _, typ := range []string{"mqtt", "mqtt-5"} {
		t.Run(typ, func(t *testing.T) {
			c.t = t
			short := strings.ReplaceAll(typ, "-", "")
			thing := "org.test:acks-" + short
			expectStatus(t, c.do("PUT", "/api/2/things/"+thing, thingWithPolicy), 201)
			def := func(id string, redeliver bool) string {
				return fmt.Sprintf(`{"id":%q,"connectionType":%q,"connectionStatus":"open","uri":"tcp://%s",
				  "specificConfig":{"reconnectForRedelivery":%v,"reconnectForRedeliveryDelay":"1s"},
				  "sources":[{"addresses":["%s/in"],"qos":1,"authorizationContext":["integration:devices"],
				     "acknowledgementRequests":{"includes":["twin-persisted","push:pushed"],"filter":"fn:filter(header:mqtt.qos,'ne','0')"}},
				    {"addresses":["%s/denied"],"qos":1,"authorizationContext":["integration:nobody"]}]}`, id, typ, broker, redeliver, id, id)
			}
			cmd := func(v int, cid string) string {
				return fmt.Sprintf(`{"topic":"org.test/acks-%s/things/twin/commands/modify","headers":{"correlation-id":%q},"path":"/attributes/counter","value":%d}`, short, cid, v)
			}
			dev := newDevice(t, broker, "acks-dev-"+short)

			// reconnectForRedelivery: the broker delivers the message
			// again and the second attempt succeeds.
			red := "red-" + short
			expectStatus(t, c.do("POST", "/api/2/connections", def(red, true)), 201)
			waitLive(t, c, red)
			cid := "first-fails-" + short
			dev.publish(red+"/in", cmd(5, cid))
			waitFor(t, 20*time.Second, func() error {
				if n := connMetric(t, c, red, "inbound", "acknowledged", "success"); n != 1 {
					return fmt.Errorf("acknowledged %d, pushes %d, logs:\n%s", n, push.count(cid), connLogs(t, c, red, cid))
				}
				return nil
			})
			if got := push.count(cid); got != 2 {
				t.Errorf("the push backend got the event %d times, want 2 (failed, then redelivered)", got)
			}
			if n := connMetric(t, c, red, "inbound", "consumed", "success"); n != 2 {
				t.Errorf("consumed %d, want 2 (the message and its redelivery)", n)
			}
			if n := connMetric(t, c, red, "inbound", "acknowledged", "failure"); n != 1 {
				t.Errorf("failed acknowledgements %d, want 1", n)
			}
			if l := connLogs(t, c, red, cid); !strings.Contains(l, "push:pushed: 503") || !strings.Contains(l, "reconnects in 1s") {
				t.Errorf("logs:\n%s", l)
			}
			if v := attr(t, c, thing, "counter"); fmt.Sprint(v) != "5" {
				t.Errorf("counter %v", v)
			}

			// A denied command fails for good: acknowledged and dropped,
			// not redelivered, even with reconnectForRedelivery.
			dev.publish(red+"/denied", cmd(6, "denied-"+short))
			waitFor(t, 10*time.Second, func() error {
				if l := connLogs(t, c, red, "denied-"+short); !strings.Contains(l, "acknowledged anyway and dropped (the failure is permanent)") {
					return fmt.Errorf("logs:\n%s", l)
				}
				return nil
			})
			time.Sleep(2500 * time.Millisecond) // longer than the redelivery delay: a redelivery would have come
			if n := connMetric(t, c, red, "inbound", "consumed", "success"); n != 3 {
				t.Errorf("consumed %d, want 3: the denied message must not come again", n)
			}
			if l := connLogs(t, c, red, "denied-"+short); !strings.Contains(l, "twin-persisted: 403") {
				t.Errorf("logs:\n%s", l)
			}

			// Without reconnectForRedelivery a failed message is
			// acknowledged anyway, logged and counted as dropped.
			drop := "drop-" + short
			expectStatus(t, c.do("POST", "/api/2/connections", def(drop, false)), 201)
			waitLive(t, c, drop)
			cid = "always-fails-" + short
			dev.publish(drop+"/in", cmd(7, cid))
			waitFor(t, 10*time.Second, func() error {
				if n := connMetric(t, c, drop, "inbound", "dropped", "failure"); n != 1 {
					return fmt.Errorf("dropped %d, logs:\n%s", n, connLogs(t, c, drop, cid))
				}
				return nil
			})
			time.Sleep(2500 * time.Millisecond)
			if got, n := push.count(cid), connMetric(t, c, drop, "inbound", "consumed", "success"); got != 1 || n != 1 {
				t.Errorf("pushed %d times, consumed %d times; want the message once", got, n)
			}
			if l := connLogs(t, c, drop, cid); !strings.Contains(l, "acknowledged anyway and dropped (reconnectForRedelivery is off)") {
				t.Errorf("logs:\n%s", l)
			}
			expectStatus(t, c.do("DELETE", "/api/2/connections/"+red, ""), 204)
			expectStatus(t, c.do("DELETE", "/api/2/connections/"+drop, ""), 204)
		})
	}
}

// tcpProxy forwards connections to an MQTT broker; kill cuts them all
// abruptly, as a lost network would. first holds the first bytes each
// client sent (its CONNECT packet).
type tcpProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	conns  []net.Conn
	first  [][]byte
	wg     sync.WaitGroup
	closed bool
}

func startProxy(t *testing.T, target string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			cc, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = cc.Close()
				continue
			}
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				_ = cc.Close()
				_ = up.Close()
				return
			}
			p.conns = append(p.conns, cc, up)
			idx := len(p.first)
			p.first = append(p.first, nil)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() {
				defer p.wg.Done()
				buf := make([]byte, 32<<10)
				seen := 0
				for {
					n, err := cc.Read(buf)
					if n > 0 {
						if seen < 1024 {
							p.mu.Lock()
							p.first[idx] = append(p.first[idx], buf[:n]...)
							p.mu.Unlock()
							seen += n
						}
						if _, werr := up.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				_ = up.Close()
			}()
			go func() {
				defer p.wg.Done()
				_, _ = io.Copy(cc, up)
				_ = cc.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		_ = ln.Close()
		p.kill()
		p.wg.Wait()
	})
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

// kill resets every proxied connection.
func (p *tcpProxy) kill() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
	}
}

// connects returns the first bytes of each connection the proxy saw.
func (p *tcpProxy) connects() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([][]byte, len(p.first))
	for i, f := range p.first {
		out[i] = append([]byte(nil), f...)
	}
	return out
}

// TestConnectionsLastWill: the last will of an MQTT connection reaches the
// broker's subscribers when the connection's link breaks, not when it is
// closed; with separatePublisherClient the targets publish through a
// second client (publisherId), which carries no will.
func TestConnectionsLastWill(t *testing.T) {
	broker := startMosquitto(t)
	_, c := connNode(t)
	for _, typ := range []string{"mqtt", "mqtt-5"} {
		t.Run(typ, func(t *testing.T) {
			c.t = t
			short := strings.ReplaceAll(typ, "-", "")
			id := "will-" + short
			thing := "org.test:" + id
			expectStatus(t, c.do("PUT", "/api/2/things/"+thing, thingWithPolicy), 201)
			proxy := startProxy(t, broker)
			watcher := newDevice(t, broker, id+"-watcher")
			watcher.subscribe(id + "/#")
			def := fmt.Sprintf(`{"id":%q,"connectionType":%q,"connectionStatus":"open","uri":"tcp://%s",
			  "specificConfig":{"clientId":"%s-consumer","keepAlive":20,"cleanSession":true,"lastWillTopic":"%s/will","lastWillQos":1,
			    "lastWillRetain":false,"lastWillMessage":"connection lost","separatePublisherClient":true,"publisherId":"%s-publisher"},
			  "sources":[{"addresses":["%s/in"],"qos":1,"authorizationContext":["integration:devices"]}],
			  "targets":[{"address":"%s/events","topics":["_/_/things/twin/events"],"authorizationContext":["integration:devices"],"qos":1}]}`,
				id, typ, proxy.addr(), id, id, id, id, id)
			expectStatus(t, c.do("POST", "/api/2/connections", def), 201)
			waitLive(t, c, id)

			// Two clients: the consumer with the will, the publisher
			// without.
			var consumer, publisher []byte
			for _, f := range proxy.connects() {
				switch {
				case bytes.Contains(f, []byte(id+"-consumer")):
					consumer = f
				case bytes.Contains(f, []byte(id+"-publisher")):
					publisher = f
				}
			}
			if consumer == nil || publisher == nil || len(proxy.connects()) != 2 {
				t.Fatalf("CONNECTs %q", proxy.connects())
			}
			if !bytes.Contains(consumer, []byte(id+"/will")) || !bytes.Contains(consumer, []byte("connection lost")) || bytes.Contains(publisher, []byte(id+"/will")) {
				t.Errorf("the will belongs to the consumer only: consumer %q, publisher %q", consumer, publisher)
			}
			// CONNECT: protocol name "MQTT", level, flags, keep-alive.
			for _, f := range [][]byte{consumer, publisher} {
				i := bytes.Index(f, []byte("\x00\x04MQTT"))
				if i < 0 || len(f) < i+10 {
					t.Fatalf("no CONNECT in %q", f)
				}
				level, flags, keepAlive := f[i+6], f[i+7], int(f[i+8])<<8|int(f[i+9])
				if want := map[string]byte{"mqtt": 4, "mqtt-5": 5}[typ]; level != want {
					t.Errorf("protocol level %d, want %d", level, want)
				}
				if flags&0x02 == 0 || keepAlive != 20 {
					t.Errorf("clean session flag %v, keep-alive %d; want cleanSession true and keepAlive 20 from specificConfig", flags&0x02 != 0, keepAlive)
				}
			}
			// The publisher publishes.
			expectStatus(t, c.do("PUT", "/api/2/things/"+thing+"/attributes/counter", "3"), 204)
			waitFor(t, 10*time.Second, func() error {
				if len(watcher.messages(id+"/events")) == 0 {
					return fmt.Errorf("no event")
				}
				return nil
			})
			if n := len(watcher.messages(id + "/will")); n != 0 {
				t.Fatalf("a will before any failure: %d", n)
			}
			// The link breaks: the broker publishes the will.
			proxy.kill()
			waitFor(t, 15*time.Second, func() error {
				if got := watcher.messages(id + "/will"); len(got) != 1 || string(got[0]) != "connection lost" {
					return fmt.Errorf("will messages %q", got)
				}
				return nil
			})
			// The client reconnects; a deliberate close sends no will.
			waitFor(t, 30*time.Second, func() error {
				r := c.do("GET", "/api/2/connections/"+id+"/status", "")
				if ls := r.json(t)["liveStatus"]; ls != "open" {
					return fmt.Errorf("liveStatus %v", ls)
				}
				if len(proxy.connects()) < 4 {
					return fmt.Errorf("%d connects", len(proxy.connects()))
				}
				return nil
			})
			expectStatus(t, c.doText("POST", "/api/2/connections/"+id+"/command", "connectivity.commands:closeConnection"), 200)
			waitFor(t, 10*time.Second, func() error {
				if ls := c.do("GET", "/api/2/connections/"+id+"/status", "").json(t)["liveStatus"]; ls != "closed" {
					return fmt.Errorf("liveStatus %v", ls)
				}
				return nil
			})
			time.Sleep(time.Second) // a will would be published at once
			if n := len(watcher.messages(id + "/will")); n != 1 {
				t.Errorf("%d will messages after a deliberate close, want still 1", n)
			}
			expectStatus(t, c.do("DELETE", "/api/2/connections/"+id, ""), 204)
		})
	}
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, generated per test.
type testPKI struct {
	caPEM, serverCert, serverKey, clientCert, clientKey string
	pool                                                *x509.CertPool
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	newKey := func() (*ecdsa.PrivateKey, string) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return k, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	caKey, _ := newKey()
	now := time.Now()
	caTpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dittonode test CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) (string, string) {
		k, kpem := newKey()
		tpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour),
			NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips}
		der, err := x509.CreateCertificate(rand.Reader, tpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), kpem
	}
	p := testPKI{caPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})), pool: x509.NewCertPool()}
	p.pool.AddCert(caCert)
	p.serverCert, p.serverKey = issue(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	p.clientCert, p.clientKey = issue(3, "gateway-1", x509.ExtKeyUsageClientAuth, nil)
	return p
}

// startTLSMosquitto runs mosquitto with a plain listener (for the test's
// devices) and a TLS listener that requires a client certificate of the
// test CA. It returns both addresses.
func startTLSMosquitto(t *testing.T, pki testPKI) (plain, secure string) {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
		if _, serr := os.Stat(bin); serr != nil {
			if os.Getenv("DITTONODE_REQUIRE_MOSQUITTO") == "1" {
				t.Fatal("mosquitto is required (DITTONODE_REQUIRE_MOSQUITTO=1) but not installed")
			}
			t.Skip("mosquitto is not installed")
		}
	}
	freePort := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		return port
	}
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pp, sp := freePort(), freePort()
	user := ""
	if os.Geteuid() == 0 {
		// As root mosquitto drops to the user mosquitto, which cannot
		// read the test's private key files.
		user = "user root\n"
	}
	conf := write("mosquitto.conf", fmt.Sprintf(user+"per_listener_settings false\nallow_anonymous true\npersistence false\n"+
		"listener %s 127.0.0.1\nlistener %s 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n",
		pp, sp, write("ca.pem", pki.caPEM), write("server.pem", pki.serverCert), write("server.key", pki.serverKey)))
	cmd := exec.Command(bin, "-c", conf)
	stderr := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	plain, secure = "127.0.0.1:"+pp, "127.0.0.1:"+sp
	waitFor(t, 10*time.Second, func() error {
		c, err := net.Dial("tcp", plain)
		if err != nil {
			return fmt.Errorf("mosquitto does not listen on %s: %v", plain, err)
		}
		_ = c.Close()
		// The TLS listener is up once it completes a handshake (it
		// listens before it loads the certificates).
		pair, err := tls.X509KeyPair([]byte(pki.clientCert), []byte(pki.clientKey))
		if err != nil {
			t.Fatal(err)
		}
		tc, err := tls.Dial("tcp", secure, &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
		if err != nil {
			return fmt.Errorf("mosquitto's TLS listener on %s: %v (%s)", secure, err, stderr.String())
		}
		_ = tc.Close()
		return nil
	})
	return plain, secure
}

// lockedBuffer collects a process's output safely for concurrent reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func jsonText(s string) string { b, _ := json.Marshal(s); return string(b) }

// TestConnectionsTLS: mqtt and mqtt-5 connections reach a mosquitto TLS
// listener that requires client certificates, with the trusted ca and
// client-cert credentials of the connection; an https http-push target
// does the same against a real HTTPS server. Without the certificate or
// with the wrong ca the connection test fails.
func TestConnectionsTLS(t *testing.T) {
	pki := newTestPKI(t)
	plain, secure := startTLSMosquitto(t, pki)
	other := newTestPKI(t)
	_, c := connNode(t)
	creds := `"credentials":{"type":"client-cert","cert":` + jsonText(pki.clientCert) + `,"key":` + jsonText(pki.clientKey) + `}`
	for _, typ := range []string{"mqtt", "mqtt-5"} {
		t.Run(typ, func(t *testing.T) {
			c.t = t
			id := "tls-" + strings.ReplaceAll(typ, "-", "")
			thing := "org.test:" + id
			expectStatus(t, c.do("PUT", "/api/2/things/"+thing, thingWithPolicy), 201)
			def := func(ca, credentials, extra string) string {
				d := fmt.Sprintf(`{"id":%q,"connectionType":%q,"connectionStatus":"open","uri":"ssl://%s"%s,
				  "sources":[{"addresses":["%s/in"],"qos":1,"authorizationContext":["integration:devices"]}]`, id, typ, secure, extra, id)
				if ca != "" {
					d += `,"ca":` + jsonText(ca)
				}
				if credentials != "" {
					d += "," + credentials
				}
				return d + "}"
			}
			// Connection tests: what fails and what works.
			for name, tc := range map[string]struct {
				def  string
				want int
			}{
				"no client certificate": {def(pki.caPEM, "", ""), 400},
				"wrong ca":              {def(other.caPEM, creds, ""), 400},
				"system roots":          {def("", creds, ""), 400},
				"validation off":        {def("", creds, `,"validateCertificates":false`), 200},
				"ca and certificate":    {def(pki.caPEM, creds, ""), 200},
			} {
				r := c.do("POST", "/api/2/connections?dry-run=true", tc.def)
				if r.status != tc.want {
					t.Errorf("%s: dry-run %d %s, want %d", name, r.status, r.body, tc.want)
				}
			}
			expectStatus(t, c.do("POST", "/api/2/connections", def(pki.caPEM, creds, "")), 201)
			waitLive(t, c, id)
			dev := newDevice(t, plain, id+"-dev")
			dev.publish(id+"/in", fmt.Sprintf(`{"topic":"org.test/%s/things/twin/commands/modify","headers":{},"path":"/attributes/counter","value":11}`, id))
			waitFor(t, 10*time.Second, func() error {
				if v := attr(t, c, thing, "counter"); fmt.Sprint(v) != "11" {
					return fmt.Errorf("counter %v", v)
				}
				return nil
			})
			expectStatus(t, c.do("DELETE", "/api/2/connections/"+id, ""), 204)
		})
	}
	t.Run("https", func(t *testing.T) {
		c.t = t
		got := make(chan []byte, 16)
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "gateway-1" {
				http.Error(w, "who are you", http.StatusForbidden)
				return
			}
			b, _ := io.ReadAll(r.Body)
			select {
			case got <- b:
			default:
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		pair, err := tls.X509KeyPair([]byte(pki.serverCert), []byte(pki.serverKey))
		if err != nil {
			t.Fatal(err)
		}
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.pool, MinVersion: tls.VersionTLS12}
		srv.StartTLS()
		defer srv.Close()
		thing := "org.test:tls-push"
		expectStatus(t, c.do("PUT", "/api/2/things/"+thing, thingWithPolicy), 201)
		def := func(ca string) string {
			return `{"id":"tls-push","connectionType":"http-push","connectionStatus":"open","uri":"` + srv.URL + `","ca":` + jsonText(ca) + `,` + creds + `,
			  "targets":[{"address":"POST:/events","topics":["_/_/things/twin/events?filter=eq(thingId,'` + thing + `')"],"authorizationContext":["integration:devices"]}]}`
		}
		if r := c.do("POST", "/api/2/connections?dry-run=true", def(other.caPEM)); r.status != 400 {
			t.Errorf("dry-run with the wrong ca: %d %s", r.status, r.body)
		}
		expectStatus(t, c.do("POST", "/api/2/connections", def(pki.caPEM)), 201)
		waitLive(t, c, "tls-push")
		expectStatus(t, c.do("PUT", "/api/2/things/"+thing+"/attributes/counter", "12"), 204)
		select {
		case b := <-got:
			if !bytes.Contains(b, []byte(`"path":"/attributes/counter"`)) || !bytes.Contains(b, []byte(`"value":12`)) {
				t.Errorf("pushed %s", b)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("no event over https; logs %s", c.do("GET", "/api/2/connections/tls-push/logs", "").body)
		}
	})
}

// TestConnectionsMappers: CloudEvents in (binary mode over MQTT 5 user
// properties, structured mode over MQTT 3.1.1) and out (structured), and
// UpdateTwinWithLiveResponse: a device answers a live retrieve sent over
// HTTP, the requester gets the device's answer and the twin is updated with
// it.
func TestConnectionsMappers(t *testing.T) {
	broker := startMosquitto(t)
	_, c := connNode(t)
	thing := "org.test:mapped"
	expectStatus(t, c.do("PUT", "/api/2/things/"+thing, thingWithPolicy), 201)
	watcher := newDevice(t, broker, "mappers-watcher")
	watcher.subscribe("ce/#")

	expectStatus(t, c.do("POST", "/api/2/connections", `{"id":"ce5","connectionType":"mqtt-5","connectionStatus":"open","uri":"tcp://`+broker+`",
	  "sources":[{"addresses":["ce/in5"],"qos":1,"authorizationContext":["integration:devices"],"payloadMapping":["CloudEvents"]}],
	  "targets":[{"address":"ce/out","topics":["_/_/things/twin/events?filter=eq(thingId,'`+thing+`')"],"authorizationContext":["integration:devices"],"payloadMapping":["CloudEvents"]}]}`), 201)
	expectStatus(t, c.do("POST", "/api/2/connections", `{"id":"ce3","connectionType":"mqtt","connectionStatus":"open","uri":"tcp://`+broker+`",
	  "sources":[{"addresses":["ce/in3"],"qos":1,"authorizationContext":["integration:devices"],"payloadMapping":["CloudEvents"]}]}`), 201)
	waitLive(t, c, "ce5")
	waitLive(t, c, "ce3")

	// Binary mode: ce-* attributes as MQTT 5 user properties, the Ditto
	// Protocol message as payload.
	conn, err := net.Dial("tcp", broker)
	if err != nil {
		t.Fatal(err)
	}
	dev5, _, err := pahoClient(t, conn, "ce-dev5", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := pahoPublish(dev5, &paho.Publish{Topic: "ce/in5", QoS: 1,
		Payload: []byte(`{"topic":"org.test/mapped/things/twin/commands/modify","path":"/attributes/counter","value":21}`),
		Properties: &paho.PublishProperties{ContentType: "application/vnd.eclipse.ditto+json", User: paho.UserProperties{
			{Key: "ce-specversion", Value: "1.0"}, {Key: "ce-id", Value: "ce-binary-1"}, {Key: "ce-type", Value: "com.example.temp"},
			{Key: "ce-source", Value: "/devices/mapped"}}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if v := attr(t, c, thing, "counter"); fmt.Sprint(v) != "21" {
			return fmt.Errorf("counter %v; logs %s", v, c.do("GET", "/api/2/connections/ce5/logs", "").body)
		}
		return nil
	})
	// The resulting event goes out as a structured CloudEvent whose id is
	// the command's correlation-id (the binary event's ce-id).
	waitFor(t, 10*time.Second, func() error {
		for _, m := range watcher.messages("ce/out") {
			var ev map[string]any
			_ = json.Unmarshal(m, &ev)
			data, _ := ev["data"].(map[string]any)
			if ev["specversion"] == "1.0" && ev["id"] == "ce-binary-1" && ev["type"] == "org.eclipse.ditto.outbound:things/twin/events/modified" &&
				ev["subject"] == thing && data["value"] == float64(21) {
				return nil
			}
		}
		return fmt.Errorf("events %q", watcher.messages("ce/out"))
	})

	// Structured mode over MQTT 3.1.1 (no content type on the wire).
	dev3 := newDevice(t, broker, "ce-dev3")
	dev3.publish("ce/in3", `{"specversion":"1.0","id":"ce-structured-1","source":"/devices/mapped","type":"com.example.temp",
	  "data":{"topic":"org.test/mapped/things/twin/commands/modify","path":"/attributes/counter","value":22}}`)
	waitFor(t, 10*time.Second, func() error {
		if v := attr(t, c, thing, "counter"); fmt.Sprint(v) != "22" {
			return fmt.Errorf("counter %v; logs %s", v, c.do("GET", "/api/2/connections/ce3/logs", "").body)
		}
		return nil
	})
	// Not a CloudEvent: a mapping error in the logs, no change.
	dev3.publish("ce/in3", `{"specversion":"1.0","id":"broken","type":"t","data":{}}`)
	waitFor(t, 10*time.Second, func() error {
		if l := c.do("GET", "/api/2/connections/ce3/logs", "").body; !bytes.Contains(l, []byte("This is not a CloudEvent")) {
			return fmt.Errorf("logs %s", l)
		}
		return nil
	})

	// UpdateTwinWithLiveResponse: live commands go to the device, its
	// retrieve responses come back through Ditto (to the requester) and
	// UpdateTwinWithLiveResponse (into the twin).
	expectStatus(t, c.do("POST", "/api/2/connections", `{"id":"live","connectionType":"mqtt","connectionStatus":"open","uri":"tcp://`+broker+`",
	  "sources":[{"addresses":["live/responses"],"qos":1,"authorizationContext":["integration:devices"],"payloadMapping":["Ditto","UpdateTwinWithLiveResponse"]}],
	  "targets":[{"address":"live/commands","topics":["_/_/things/live/commands"],"authorizationContext":["integration:devices"],"qos":1}]}`), 201)
	waitLive(t, c, "live")
	device := newDevice(t, broker, "live-device")
	var once sync.Once
	tok := device.cl.Subscribe("live/commands", 1, func(_ mqtt3.Client, m mqtt3.Message) {
		var cmd struct {
			Topic   string         `json:"topic"`
			Path    string         `json:"path"`
			Headers map[string]any `json:"headers"`
		}
		if json.Unmarshal(m.Payload(), &cmd) != nil || !strings.HasSuffix(cmd.Topic, "/live/commands/retrieve") {
			return
		}
		once.Do(func() {
			resp, _ := json.Marshal(map[string]any{"topic": cmd.Topic, "path": cmd.Path, "status": 200,
				"headers": map[string]any{"correlation-id": cmd.Headers["correlation-id"]},
				"value":   map[string]any{"temperature": 23.5, "unit": "C"}})
			device.cl.Publish("live/responses", 1, false, resp)
		})
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	// The merge runs with if-match * (Ditto's default): it updates what
	// exists.
	expectStatus(t, c.do("PUT", "/api/2/things/"+thing+"/features/env", `{"properties":{"temperature":0}}`), 201)
	r := c.do("GET", "/api/2/things/"+thing+"/features/env/properties?channel=live&timeout=10", "")
	expectStatus(t, r, 200)
	if !bytes.Contains(r.body, []byte(`"temperature":23.5`)) {
		t.Errorf("live answer %s", r.body)
	}
	waitFor(t, 10*time.Second, func() error {
		if l := connLogs(t, c, "live", ""); strings.Contains(l, "failure") {
			t.Fatalf("the live connection logged failures:\n%s", l)
		}
		g := c.do("GET", "/api/2/things/"+thing+"/features/env/properties", "")
		if g.status != 200 || !bytes.Contains(g.body, []byte(`"temperature":23.5`)) || !bytes.Contains(g.body, []byte(`"unit":"C"`)) {
			return fmt.Errorf("twin %d %s; logs %s", g.status, g.body, c.do("GET", "/api/2/connections/live/logs", "").body)
		}
		return nil
	})
}

// TestConnectionsDeclaredAcks: a device acknowledges twin events through a
// source that declared the label ({{connection:id}}:seen); an HTTP command
// that requested the label gets the device's acknowledgement. Labels the
// source did not declare are refused.
func TestConnectionsDeclaredAcks(t *testing.T) {
	broker := startMosquitto(t)
	_, c := connNode(t)
	thing := "org.test:acked"
	expectStatus(t, c.do("PUT", "/api/2/things/"+thing, thingWithPolicy), 201)
	expectStatus(t, c.do("POST", "/api/2/connections", `{"id":"dev","connectionType":"mqtt","connectionStatus":"open","uri":"tcp://`+broker+`",
	  "sources":[{"addresses":["dev/acks"],"qos":1,"authorizationContext":["integration:devices"],"declaredAcks":["{{connection:id}}:seen"]}],
	  "targets":[{"address":"dev/events","topics":["_/_/things/twin/events"],"authorizationContext":["integration:devices"],"qos":1}]}`), 201)
	waitLive(t, c, "dev")
	device := newDevice(t, broker, "acking-device")
	label := make(chan string, 4)
	label <- "dev:seen"
	tok := device.cl.Subscribe("dev/events", 1, func(_ mqtt3.Client, m mqtt3.Message) {
		var ev struct {
			Topic   string         `json:"topic"`
			Headers map[string]any `json:"headers"`
		}
		if json.Unmarshal(m.Payload(), &ev) != nil || ev.Headers["requested-acks"] == nil {
			return
		}
		l := <-label
		ack, _ := json.Marshal(map[string]any{"topic": "org.test/acked/things/twin/acks/" + l, "path": "/", "status": 200,
			"headers": map[string]any{"correlation-id": ev.Headers["correlation-id"]}, "value": "seen by the device"})
		device.cl.Publish("dev/acks", 1, false, ack)
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	put := func(cid string) response {
		req, err := http.NewRequest("PUT", c.base+"/api/2/things/"+thing+"/attributes/counter?timeout=5", strings.NewReader("8"))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(c.user, c.user)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("requested-acks", "dev:seen")
		req.Header.Set("correlation-id", cid)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return response{status: resp.StatusCode, body: b}
	}
	if r := put("ack-1"); r.status != 200 || !bytes.Contains(r.body, []byte("seen by the device")) {
		t.Fatalf("acknowledged command: %d %s; logs %s", r.status, r.body, connLogs(t, c, "dev", ""))
	}
	// The device acknowledges with a label its source did not declare:
	// refused, and the command times out waiting for dev:seen.
	label <- "dev:other"
	if r := put("ack-2"); r.status != 408 {
		t.Errorf("undeclared label: %d %s", r.status, r.body)
	}
	if l := connLogs(t, c, "dev", "ack-2"); !strings.Contains(l, "not declared") {
		t.Errorf("logs:\n%s", l)
	}
}

package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/mqtt"
)

// The device path end to end with Debian's mosquitto clients against a
// real node: device identities over HTTP, Ditto Protocol and plain values
// in, responses and events out, refused logins, policy denials.

// mosquittoBin returns the path of a mosquitto client. Tests skip without
// it unless DITTONODE_REQUIRE_MOSQUITTO is set (CI sets it).
func mosquittoBin(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("DITTONODE_REQUIRE_MOSQUITTO") != "" {
			t.Fatalf("%s is required (DITTONODE_REQUIRE_MOSQUITTO is set): %v", name, err)
		}
		t.Skipf("%s not installed (apt-get install mosquitto-clients)", name)
	}
	return p
}

// startMQTTNode runs a node with the broker on a free port; ditto manages
// devices, and the policy fixture mqtt:pol lets the device dev1 read and
// write thing t:dev1 while dev2 may read only features/lamp/desiredProperties.
func startMQTTNode(t *testing.T, dir string, cb func(*Config)) (*Node, client) {
	t.Helper()
	n := startNode(t, dir, func(c *Config) {
		c.MQTT.Addr = "127.0.0.1:0"
		c.HTTP.DeviceAdmins = []string{"nginx:ditto"}
		c.Connectivity.DeviceHashCost = 4 // bcrypt.MinCost: slow under -race
		// The subtests refuse logins on purpose, all from 127.0.0.1; only
		// TestMQTTAuthRateLimit wants the block.
		c.MQTT.AuthFailures = 1000
		if cb != nil {
			cb(c)
		}
	})
	return n, newClient(t, n, "ditto")
}

const mqttPolicy = `{"entries":{
 "owner":{"subjects":{"nginx:ditto":{"type":"u"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]},"policy:/":{"grant":["READ","WRITE"],"revoke":[]}}},
 "dev1":{"subjects":{"mqtt:dev1":{"type":"device"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]}}},
 "dev2":{"subjects":{"mqtt:dev2":{"type":"device"}},"resources":{"thing:/features/lamp/desiredProperties":{"grant":["READ"],"revoke":[]}}}}}`

func setupMQTTFixture(t *testing.T, c client) {
	t.Helper()
	expectStatus(t, c.do("PUT", "/api/2/devices/dev1", `{"password":"secret-1"}`), 201)
	expectStatus(t, c.do("PUT", "/api/2/devices/dev2", `{"password":"secret-2"}`), 201)
	expectStatus(t, c.do("PUT", "/api/2/policies/mqtt:pol", mqttPolicy), 201)
	expectStatus(t, c.do("PUT", "/api/2/things/t:dev1", `{"policyId":"mqtt:pol","features":{"lamp":{"properties":{"on":false}}}}`), 201)
	// t:other keeps the default policy: only nginx:ditto may touch it.
	expectStatus(t, c.do("PUT", "/api/2/things/t:other", `{"attributes":{"a":1}}`), 201)
}

// lines runs a long-lived command and delivers its stdout lines.
type lines struct {
	ch  chan string
	cmd *exec.Cmd
}

func startLines(t *testing.T, name string, args ...string) *lines {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &lines{ch: make(chan string, 256), cmd: cmd}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			l.ch <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
	})
	return l
}

// next returns the next line that contains want, failing after d.
func (l *lines) next(t *testing.T, d time.Duration, want string) string {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case s := <-l.ch:
			if strings.Contains(s, want) {
				return s
			}
		case <-timer.C:
			t.Fatalf("no line containing %q within %s", want, d)
			return ""
		}
	}
}

// run runs a mosquitto client to completion.
func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// waitSubscribed waits until the broker has the client's subscription:
// mosquitto_sub prints nothing when it subscribed.
func waitSubscribed(t *testing.T, n *Node, clients int) {
	t.Helper()
	wsWaitFor(t, 10*time.Second, func() error {
		st := n.mqtt.Stats()
		if got := st["clientsConnected"].(int64); got < int64(clients) {
			return fmt.Errorf("%d clients connected", got)
		}
		return nil
	})
}

func TestMQTTDevicePathMosquitto(t *testing.T) {
	pub := mosquittoBin(t, "mosquitto_pub")
	sub := mosquittoBin(t, "mosquitto_sub")
	rr := mosquittoBin(t, "mosquitto_rr")
	n, c := startMQTTNode(t, t.TempDir(), nil)
	setupMQTTFixture(t, c)
	h, p := hostPort(t, n.MQTTAddr(mqtt.ListenerTCP))
	conn := func(user, pw string) []string { return []string{"-h", h, "-p", p, "-u", user, "-P", pw} }

	t.Run("device API", func(t *testing.T) {
		r := c.do("GET", "/api/2/devices/dev1", "")
		expectStatus(t, r, 200)
		if strings.Contains(string(r.body), "hash") || strings.Contains(string(r.body), "secret") {
			t.Errorf("device shows its secret: %s", r.body)
		}
		if m := r.json(t); fmt.Sprint(m["subjects"]) != "[mqtt:dev1]" {
			t.Errorf("subjects %v", m["subjects"])
		}
		expectStatus(t, newClient(t, n, "bob").do("GET", "/api/2/devices", ""), 403)
		expectStatus(t, c.do("PUT", "/api/2/devices/bad%20name", `{"password":"x"}`), 400)
		expectStatus(t, c.do("PUT", "/api/2/devices/dev3", `{"subjects":["mqtt:x"]}`), 400)
		expectStatus(t, c.do("GET", "/api/2/devices/nobody", ""), 404)
		r = c.do("GET", "/api/2/devices", "")
		expectStatus(t, r, 200)
		if !strings.Contains(string(r.body), `"dev2"`) {
			t.Errorf("list %s", r.body)
		}
	})

	events := startLines(t, sub, append(conn("dev1", "secret-1"), "-i", "dev1-sub", "-q", "1", "-v",
		"-t", "things/t:dev1/events/#", "-t", "things/t:other/events/#")...)
	desired := startLines(t, sub, append(conn("dev2", "secret-2"), "-i", "dev2-sub", "-q", "1", "-v",
		"-t", "things/t:dev1/events/#")...)
	waitSubscribed(t, n, 2)

	t.Run("ditto protocol command with response", func(t *testing.T) {
		out, err := run(t, rr, append(conn("dev1", "secret-1"), "-i", "dev1-rr", "-q", "1", "-t", mqtt.CommandTopic,
			"-e", "ditto/reply/dev1-rr", "-W", "10",
			"-m", `{"topic":"t/dev1/things/twin/commands/modify","headers":{"correlation-id":"m-1"},"path":"/attributes/temp","value":21.5}`)...)
		if err != nil {
			t.Fatalf("mosquitto_rr: %v %s", err, out)
		}
		var env ditto.Envelope
		if err := json.Unmarshal([]byte(out), &env); err != nil || env.Status != 201 || env.Headers["correlation-id"] != "m-1" {
			t.Fatalf("response %q (%v)", out, err)
		}
		ev := events.next(t, 10*time.Second, "things/t:dev1/events/attributes/temp ")
		if !strings.Contains(ev, `"value":21.5`) || !strings.Contains(ev, "twin/events/created") {
			t.Errorf("event %s", ev)
		}
		expectJSON(t, c.do("GET", "/api/2/things/t:dev1/attributes/temp", ""), "21.5")
	})

	t.Run("plain value", func(t *testing.T) {
		out, err := run(t, pub, append(conn("dev1", "secret-1"), "-i", "dev1-pub", "-q", "1",
			"-t", "things/t:dev1/features/lamp/properties/on", "-m", "true")...)
		if err != nil {
			t.Fatalf("mosquitto_pub: %v %s", err, out)
		}
		// The PUBACK came after the commit: the value is readable at once.
		expectJSON(t, c.do("GET", "/api/2/things/t:dev1/features/lamp/properties/on", "", "consistency", "local"), "true")
		events.next(t, 10*time.Second, "things/t:dev1/events/features/lamp/properties/on ")
		out, err = run(t, pub, append(conn("dev1", "secret-1"), "-i", "dev1-pub", "-q", "1",
			"-t", "things/t:dev1/attributes/label", "-m", "kitchen lamp")...)
		if err != nil {
			t.Fatalf("mosquitto_pub text: %v %s", err, out)
		}
		expectJSON(t, c.do("GET", "/api/2/things/t:dev1/attributes/label", ""), `"kitchen lamp"`)
	})

	t.Run("pipelined values keep their order", func(t *testing.T) {
		// mosquitto_pub -l sends one message per line with up to 20 in
		// flight; the broker runs them concurrently but per thing in
		// order, so the last line wins and every line is one revision.
		before := c.do("GET", "/api/2/things/t:dev1?fields=_revision", "").json(t)["_revision"].(float64)
		var lines strings.Builder
		for i := 1; i <= 200; i++ {
			fmt.Fprintf(&lines, "%d\n", i)
		}
		cmd := exec.Command(pub, append(conn("dev1", "secret-1"), "-i", "dev1-lines", "-q", "1", "-l",
			"-t", "things/t:dev1/attributes/seq")...)
		cmd.Stdin = strings.NewReader(lines.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub -l: %v %s", err, out)
		}
		expectJSON(t, c.do("GET", "/api/2/things/t:dev1/attributes/seq", ""), "200")
		after := c.do("GET", "/api/2/things/t:dev1?fields=_revision", "").json(t)["_revision"].(float64)
		if after-before != 200 {
			t.Errorf("revision %v -> %v, want 200 modifies", before, after)
		}
	})

	t.Run("refused without or with wrong credentials", func(t *testing.T) {
		for name, args := range map[string][]string{
			"none":           {"-h", h, "-p", p},
			"wrong password": conn("dev1", "wrong"),
			"unknown device": conn("nobody", "secret-1"),
			// A will would be published without enforcement: refused
			// on the reserved topics.
			"will on an event topic":    append(conn("dev1", "secret-1"), "--will-topic", "things/t:dev1/events/attributes/x", "--will-payload", "forged"),
			"will on the command topic": append(conn("dev1", "secret-1"), "--will-topic", mqtt.CommandTopic, "--will-payload", "{}"),
		} {
			out, err := run(t, pub, append(args, "-i", "intruder", "-t", "x", "-m", "1")...)
			if err == nil || !strings.Contains(strings.ToLower(out), "refused") {
				t.Errorf("%s: err %v out %q, want a refused connection", name, err, out)
			}
		}
	})

	t.Run("client IDs belong to their device while the session lives", func(t *testing.T) {
		if out, err := run(t, pub, append(conn("dev1", "secret-1"), "-c", "-q", "1", "-i", "shared-p", "-t", "x", "-m", "1")...); err != nil {
			t.Fatalf("persistent session: %v %s", err, out)
		}
		if out, err := run(t, pub, append(conn("dev2", "secret-2"), "-i", "shared-p", "-t", "x", "-m", "1")...); err == nil {
			t.Errorf("dev2 took over dev1's persistent session: %s", out)
		}
		if out, err := run(t, pub, append(conn("dev1", "secret-1"), "-i", "shared-c", "-t", "x", "-m", "1")...); err != nil {
			t.Fatalf("clean session: %v %s", err, out)
		}
		if out, err := run(t, pub, append(conn("dev2", "secret-2"), "-i", "shared-c", "-t", "x", "-m", "1")...); err != nil {
			t.Errorf("a clean session's client ID stayed bound to its device: %v %s", err, out)
		}
	})

	t.Run("denied by the policy", func(t *testing.T) {
		// Ditto Protocol: the error comes on the reply topic.
		out, err := run(t, rr, append(conn("dev1", "secret-1"), "-i", "dev1-rr2", "-q", "1", "-t", mqtt.CommandTopic,
			"-e", "ditto/reply/dev1-rr2", "-W", "10",
			"-m", `{"topic":"t/other/things/twin/commands/modify","headers":{"correlation-id":"m-2"},"path":"/attributes/a","value":2}`)...)
		if err != nil {
			t.Fatalf("mosquitto_rr: %v %s", err, out)
		}
		var env ditto.Envelope
		if err := json.Unmarshal([]byte(out), &env); err != nil || env.Status < 400 || !strings.Contains(env.Topic, "errors") {
			t.Fatalf("want an error response, got %q (%v)", out, err)
		}
		// MQTT 5 plain value at QoS 1: the PUBACK carries "not authorized".
		out, err = run(t, pub, append(conn("dev1", "secret-1"), "-V", "mqttv5", "-i", "dev1-pub5", "-q", "1",
			"-t", "things/t:other/attributes/a", "-m", "3")...)
		if !strings.Contains(strings.ToLower(out), "not authori") {
			t.Errorf("MQTT 5 publish: err %v out %q, want a not-authorized PUBACK", err, out)
		}
		// dev2 may read desired properties of t:dev1 but not write them.
		out, err = run(t, pub, append(conn("dev2", "secret-2"), "-V", "mqttv5", "-i", "dev2-pub", "-q", "1",
			"-t", "things/t:dev1/features/lamp/desiredProperties/on", "-m", "true")...)
		if !strings.Contains(strings.ToLower(out), "not authori") {
			t.Errorf("dev2 write: err %v out %q", err, out)
		}
		expectJSON(t, c.do("GET", "/api/2/things/t:other/attributes/a", ""), "1")
		expectStatus(t, c.do("GET", "/api/2/things/t:dev1/features/lamp/desiredProperties", ""), 404)
	})

	t.Run("desired property made over HTTP", func(t *testing.T) {
		// A change of t:other first: dev1 may not read it and must not get it.
		expectStatus(t, c.do("PUT", "/api/2/things/t:other/attributes/a", "5"), 204)
		expectStatus(t, c.do("PUT", "/api/2/things/t:dev1/features/lamp/desiredProperties/on", "true"), 201)
		ev := events.next(t, 10*time.Second, "desiredProperties")
		if !strings.HasPrefix(ev, "things/t:dev1/events/features/lamp/desiredProperties/on ") || !strings.Contains(ev, `"value":true`) {
			t.Errorf("dev1 event %s", ev)
		}
		// dev2 reads only desired properties: it gets this event and none
		// of the earlier ones.
		ev = desired.next(t, 10*time.Second, "things/t:dev1/events/")
		if !strings.Contains(ev, "desiredProperties/on") {
			t.Errorf("dev2 got %s first", ev)
		}
	loop:
		for {
			select {
			case s := <-events.ch:
				if strings.Contains(s, "t:other") {
					t.Errorf("dev1 got an event it may not read: %s", s)
				}
			default:
				break loop
			}
		}
	})
}

// expectJSON checks a 200 response's body.
func expectJSON(t *testing.T, r response, want string) {
	t.Helper()
	if r.status != 200 || strings.TrimSpace(string(r.body)) != want {
		t.Fatalf("got %d %s, want 200 %s", r.status, r.body, want)
	}
}

// TestMQTTAuthRateLimit: repeated failures from one address block it, even
// for the right password, until the block ends.
func TestMQTTAuthRateLimit(t *testing.T) {
	pub := mosquittoBin(t, "mosquitto_pub")
	n, c := startMQTTNode(t, t.TempDir(), func(c *Config) {
		c.MQTT.AuthFailures = 3
		c.MQTT.AuthBlock = time.Hour
	})
	setupMQTTFixture(t, c)
	h, p := hostPort(t, n.MQTTAddr(mqtt.ListenerTCP))
	for i := range 3 {
		if out, err := run(t, pub, "-h", h, "-p", p, "-u", "dev1", "-P", "wrong", "-i", "x", "-t", "x", "-m", "1"); err == nil {
			t.Fatalf("attempt %d accepted: %s", i, out)
		}
	}
	out, err := run(t, pub, "-h", h, "-p", p, "-u", "dev1", "-P", "secret-1", "-i", "x", "-t", "x", "-m", "1")
	if err == nil {
		t.Fatalf("blocked address accepted: %s", out)
	}
	st := n.mqtt.Stats()
	if st["authBlocked"].(int64) < 1 || st["authFailures"].(int64) < 3 {
		t.Errorf("stats %v", st)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mosquittoBin returns the path of a mosquitto client; the test skips
// without it unless DITTONODE_REQUIRE_MOSQUITTO is set (CI sets it).
func mosquittoBin(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("DITTONODE_REQUIRE_MOSQUITTO") != "" {
			t.Fatalf("%s is required: %v", name, err)
		}
		t.Skipf("%s not installed (apt-get install mosquitto-clients)", name)
	}
	return p
}

func runTool(t *testing.T, d time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

func httpDo(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth("ditto", "ditto")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestKill9MQTT runs the real binary with its broker: a persistent MQTT
// session goes away, twin changes happen meanwhile, a device changes the
// twin with a QoS 1 plain value and the process is killed with SIGKILL
// right after the PUBACK. After a restart on the same data the change is
// there and the persistent session gets the events queued while it was
// away.
func TestKill9MQTT(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	pub := mosquittoBin(t, "mosquitto_pub")
	sub := mosquittoBin(t, "mosquitto_sub")
	dir := t.TempDir()
	p := startProcess(t, dir, "--dev", "--mqtt", "127.0.0.1:0")
	if p.mqttAddr == "" {
		t.Fatal("the node did not report its MQTT address")
	}
	base := "http://" + p.addr + "/api/2/things/e2e:t1"
	if code, b := httpDo(t, "PUT", base, `{"attributes":{"n":0}}`); code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	host, port, _ := net.SplitHostPort(p.mqttAddr)
	login := []string{"-h", host, "-p", port, "-u", "ditto", "-P", "ditto"}

	// The persistent session subscribes at QoS 1 and goes away.
	out, err := runTool(t, 20*time.Second, sub, append(login, "-c", "-i", "away-1", "-q", "1",
		"-t", "things/e2e:t1/events/#", "-W", "5")...)
	if err != nil && !strings.Contains(out, "Timed out") && out != "" {
		t.Logf("mosquitto_sub: %v %s", err, out)
	}
	// Two changes while it is away; /health counts an event once it is
	// durable in the session's queue.
	for i := 1; i <= 2; i++ {
		if code, b := httpDo(t, "PUT", base+"/attributes/away", fmt.Sprint(i)); code/100 != 2 {
			t.Fatalf("modify %d: %d %s", i, code, b)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, b := httpDo(t, "GET", "http://"+p.addr+"/health", "")
		var h struct {
			MQTT struct {
				EventsSent int `json:"eventsSent"`
			} `json:"mqtt"`
		}
		_ = json.Unmarshal(b, &h)
		if h.MQTT.EventsSent >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events not queued: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A QoS 1 plain value: mosquitto_pub exits after the PUBACK; kill -9
	// at once.
	if out, err := runTool(t, 20*time.Second, pub, append(login, "-i", "dev-1", "-q", "1",
		"-t", "things/e2e:t1/attributes/n", "-m", "42")...); err != nil {
		t.Fatalf("mosquitto_pub: %v %s", err, out)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()

	p2 := startProcess(t, dir, "--dev", "--mqtt", "127.0.0.1:0")
	code, b := httpDo(t, "GET", "http://"+p2.addr+"/api/2/things/e2e:t1/attributes/n", "")
	if code != 200 || strings.TrimSpace(string(b)) != "42" {
		t.Fatalf("after kill -9: %d %s, want the acknowledged 42", code, b)
	}
	host, port, _ = net.SplitHostPort(p2.mqttAddr)
	login = []string{"-h", host, "-p", port, "-u", "ditto", "-P", "ditto"}
	// The queued messages are re-sent right after the CONNACK, in no
	// particular order within one second, and the event of the device's
	// own change may or may not have been queued durably before the kill:
	// read for a while instead of counting. mosquitto_sub subscribes again
	// with packet ID 1, which one of the re-sent messages also carries: the
	// broker grants it (mqtt/packetid.go).
	out, err = runTool(t, 30*time.Second, sub, append(login, "-c", "-i", "away-1", "-q", "1", "-v",
		"-t", "things/e2e:t1/events/#", "-W", "4")...)
	if err != nil && out == "" {
		t.Fatalf("reconnect: %v", err)
	}
	if strings.Contains(out, "denied") {
		t.Errorf("the re-subscription was refused:\n%s", out)
	}
	for i := 1; i <= 2; i++ {
		if !strings.Contains(out, fmt.Sprintf(`"path":"/attributes/away","value":%d`, i)) {
			t.Errorf("queued event %d missing after the restart:\n%s", i, out)
		}
	}
}

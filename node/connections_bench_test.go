package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// BenchmarkConnectionMQTTInbound measures device messages per second that
// become durable twin changes through an mqtt connection: a device
// publishes QoS 1 commands to mosquitto, the connection consumes them in
// order (acknowledging each after its command committed).
func BenchmarkConnectionMQTTInbound(b *testing.B) {
	broker := startMosquitto(b)
	cfg := DefaultConfig()
	cfg.DataDir = b.TempDir()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.Users = map[string]string{"ditto": "ditto"}
	cfg.Connectivity.Admins = []string{"nginx:ditto"}
	cfg.Connectivity.Runtime.ReconcileInterval = 100 * time.Millisecond
	n, err := New(cfg, Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, "http://"+n.HTTPAddr().String()+path, strings.NewReader(body))
		req.SetBasicAuth("ditto", "ditto")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(rb)
	}
	poll := func(d time.Duration, f func() bool) {
		for deadline := time.Now().Add(d); !f(); {
			if time.Now().After(deadline) {
				b.Fatal("timed out")
			}
			time.Sleep(10 * time.Millisecond) // polling interval
		}
	}
	if code, body := do("PUT", "/api/2/things/org.test:bench", thingWithPolicy); code != 201 {
		b.Fatalf("%d %s", code, body)
	}
	def := fmt.Sprintf(`{"id":"bench","connectionType":"mqtt","connectionStatus":"open","uri":"tcp://%s",
  "sources":[{"addresses":["bench/+"],"qos":1,"authorizationContext":["integration:devices"]}]}`, broker)
	if code, body := do("POST", "/api/2/connections", def); code != 201 {
		b.Fatalf("%d %s", code, body)
	}
	poll(15*time.Second, func() bool {
		_, body := do("GET", "/api/2/connections/bench/status", "")
		return strings.Contains(body, `"liveStatus":"open"`)
	})
	dev := newDevice(b, broker, "bench-dev")
	b.ResetTimer()
	for i := range b.N {
		dev.publish("bench/dev", fmt.Sprintf(`{"topic":"org.test/bench/things/twin/commands/modify","headers":{"response-required":false},"path":"/attributes/counter","value":%d}`, i+1))
	}
	want := fmt.Sprint(b.N)
	poll(5*time.Minute, func() bool {
		_, body := do("GET", "/api/2/things/org.test:bench/attributes/counter", "")
		return body == want
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

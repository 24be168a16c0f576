package node

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConnectionsPlacement: in a three-node cluster an open connection
// runs on exactly one node, and moves to a survivor when that node dies;
// device messages keep becoming twin changes.
func TestConnectionsPlacement(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	broker := startMosquitto(t)
	cb := func(c *Config) {
		c.Connectivity.Admins = []string{"nginx:ditto"}
		c.Connectivity.Runtime.ReconcileInterval = 100 * time.Millisecond
	}
	n1 := mustMeshNode(t, t.TempDir(), testSecret, cb)
	join := n1.P2PAddrs()
	nodes := []*Node{n1, nil, nil}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := 1; i < 3; i++ {
		wg.Go(func() {
			nodes[i], errs[i] = meshNode(t, t.TempDir(), testSecret, nil, func(c *Config) { cb(c); c.Mesh.Join = join[:1] })
		})
	}
	wg.Wait()
	for _, err := range errs[1:] {
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, func() error { return converged(nodes, 3) })

	thing := "org.test:placed"
	waitFor(t, 10*time.Second, func() error {
		code, _, body, err := call(n1, "PUT", "/api/2/things/"+thing, thingWithPolicy)
		if err != nil || code != 201 {
			return fmt.Errorf("%d %s %v", code, body, err)
		}
		return nil
	})
	def := fmt.Sprintf(`{"id":"placed","connectionType":"mqtt","connectionStatus":"open","uri":"tcp://%s",
  "sources":[{"addresses":["placed/+"],"qos":1,"authorizationContext":["integration:devices"]}]}`, broker)
	if code, _, body, err := call(n1, "POST", "/api/2/connections", def); err != nil || code != 201 {
		t.Fatalf("%d %s %v", code, body, err)
	}
	runningOn := func(alive []*Node) ([]int, error) {
		var on []int
		for i, n := range alive {
			if slices.Contains(n.connRuntime.Running(), "placed") {
				on = append(on, i)
			}
		}
		if len(on) != 1 {
			return on, fmt.Errorf("running on %v", on)
		}
		return on, nil
	}
	var owner int
	waitFor(t, 15*time.Second, func() error {
		on, err := runningOn(nodes)
		if err == nil {
			owner = on[0]
		}
		return err
	})
	dev := newDevice(t, broker, "placed-dev")
	send := func(v int, via *Node) {
		t.Helper()
		cmd := fmt.Sprintf(`{"topic":"org.test/placed/things/twin/commands/modify","headers":{},"path":"/attributes/counter","value":%d}`, v)
		waitFor(t, 20*time.Second, func() error {
			dev.publish("placed/dev", cmd)
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				_, _, body, err := call(via, "GET", "/api/2/things/"+thing+"/attributes/counter", "")
				if err == nil && string(body) == fmt.Sprint(v) {
					return nil
				}
				time.Sleep(50 * time.Millisecond) // polling interval
			}
			return fmt.Errorf("counter is not %d", v)
		})
	}
	send(1, nodes[(owner+1)%3])
	// Any node answers status, metrics and logs from the owner.
	other := nodes[(owner+2)%3]
	code, _, body, err := call(other, "GET", "/api/2/connections/placed/status", "")
	if err != nil || code != 200 || !strings.Contains(string(body), `"liveStatus":"open"`) || !strings.Contains(string(body), nodes[owner].ID()) {
		t.Errorf("status via another node: %d %s %v", code, body, err)
	}
	code, _, body, err = call(other, "GET", "/api/2/connections/placed/metrics", "")
	if err != nil || code != 200 || !strings.Contains(string(body), `"consumed":{"failure":{"PT1H":0,"PT1M":0,"PT24H":0},"success":{"PT1H":`) || strings.Contains(string(body), `"consumed":{"failure":{"PT1H":0,"PT1M":0,"PT24H":0},"success":{"PT1H":0`) {
		t.Errorf("metrics via another node: %d %s %v", code, body, err)
	}

	// The owner dies: a survivor takes the connection over.
	if err := nodes[owner].Close(); err != nil {
		t.Fatal(err)
	}
	alive := slices.Delete(slices.Clone(nodes), owner, owner+1)
	waitFor(t, 20*time.Second, func() error {
		_, err := runningOn(alive)
		return err
	})
	send(2, alive[0])
}

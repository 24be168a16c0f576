package testnet

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/dittonode/dittonode/node"
)

// TestCrossGroupRead: a thing and its policy live in two Raft groups. A
// thing created through one node must be readable (and writable) through
// every other node at once with a default (linearizable) read, even when
// that node applies the policies group later than the things group.
func TestCrossGroupRead(t *testing.T) {
	net := New(t, Options{Nodes: 3, Seed: 3})
	c := newClient(t, 10*time.Second)
	l := net.WaitLeader(node.GroupPolicies, 10*time.Second)
	f := (l + 1) % 3 // a follower of the policies group
	other := (l + 2) % 3
	// The policy entries reach f 200 ms late; the thing entries do not.
	net.DelayGroup(l, f, node.GroupPolicies, 200*time.Millisecond)
	defer net.Heal()
	for i := range 3 {
		thing := fmt.Sprintf("/api/2/things/org.testnet:cross-%d", i)
		via := []int{l, other}[i%2]
		c.mustDo(t, http.StatusCreated, http.MethodPut, net.URL(via)+thing, `{"attributes":{"v":1}}`)
		code, hdr, b, err := available(c, http.MethodGet, net.URL(f)+thing, "")
		if err != nil || code != http.StatusOK {
			t.Fatalf("read through node %d right after the create through node %d: %d %s %v", f, via, code, b, err)
		}
		if etag := hdr.Get("ETag"); etag != `"rev:1"` {
			t.Fatalf("read through node %d: ETag %s, want \"rev:1\"", f, etag)
		}
		thing2 := thing + "-w"
		c.mustDo(t, http.StatusCreated, http.MethodPut, net.URL(via)+thing2, `{"attributes":{"v":1}}`)
		code, _, b, err = available(c, http.MethodPut, net.URL(f)+thing2+"/attributes/v", `2`)
		if err != nil || code != http.StatusNoContent {
			t.Fatalf("write through node %d right after the create through node %d: %d %s %v", f, via, code, b, err)
		}
	}
}

// available sends an idempotent request again while the cluster answers
// 503 or 408 (a leader change under load: no answer about consistency),
// for up to 10 s, and returns the first other answer.
func available(c *client, method, url, body string) (int, http.Header, []byte, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, hdr, b, err := c.do(context.Background(), method, url, body)
		if err != nil || (code != http.StatusServiceUnavailable && code != http.StatusRequestTimeout) || time.Now().After(deadline) {
			return code, hdr, b, err
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

package testnet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dittonode/dittonode/node"
)

// client is a small HTTP client for the tests of this package.
type client struct{ http *http.Client }

func newClient(t testing.TB, timeout time.Duration) *client {
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{http: &http.Client{Timeout: timeout, Transport: tr}}
}

// do sends one request; hdr holds extra headers as name, value pairs.
func (c *client) do(ctx context.Context, method, url, body string, hdr ...string) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.SetBasicAuth(User, Password)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

func (c *client) mustDo(t *testing.T, want int, method, url, body string, hdr ...string) []byte {
	t.Helper()
	code, _, b, err := c.do(context.Background(), method, url, body, hdr...)
	if err != nil || code != want {
		t.Fatalf("%s %s: %d %s %v, want %d", method, url, code, b, err, want)
	}
	return b
}

func attrV(t *testing.T, body []byte) float64 {
	t.Helper()
	var th struct {
		Attributes struct{ V float64 } `json:"attributes"`
	}
	if err := json.Unmarshal(body, &th); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return th.Attributes.V
}

func TestNetFaults(t *testing.T) {
	net := New(t, Options{Nodes: 3, Seed: 1})
	c := newClient(t, 5*time.Second)
	thing := "/api/2/things/org.testnet:faults"
	c.mustDo(t, http.StatusCreated, http.MethodPut, net.URL(0)+thing, `{"attributes":{"v":1}}`)
	// A write acknowledged through node 0 reads back through node 2 at
	// once, with the same revision (the default read passes the barriers
	// of the things and the policies group).
	code, hdr, b, err := c.do(context.Background(), http.MethodGet, net.URL(2)+thing, "")
	if err != nil || code != http.StatusOK || hdr.Get("ETag") != `"rev:1"` {
		t.Fatalf("read through node 2 right after the create: %d %s %s %v", code, hdr.Get("ETag"), b, err)
	}
	if v := attrV(t, b); v != 1 {
		t.Fatalf("read through node 2: v=%v", v)
	}

	t.Run("partitioned leader", func(t *testing.T) {
		l := net.WaitLeader(node.GroupThings, 10*time.Second)
		net.Isolate(l)
		defer net.Heal()
		other := (l + 1) % 3
		// The majority elects a new leader and takes writes again.
		err := net.Await(20*time.Second, func() error {
			code, _, b, err := c.do(context.Background(), http.MethodPut, net.URL(other)+thing+"/attributes/v?timeout=2s", `2`)
			if err != nil || code != http.StatusNoContent {
				return fmt.Errorf("write through the majority: %d %s %v", code, b, err)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, net.describe())
		}
		// The isolated node cannot serve a linearizable read, but a local one.
		code, _, b, err := c.do(context.Background(), http.MethodGet, net.URL(l)+thing+"?timeout=1s", "")
		if err == nil && code == http.StatusOK {
			t.Fatalf("linearizable read in a minority partition succeeded: %s", b)
		}
		if v := attrV(t, c.mustDo(t, http.StatusOK, http.MethodGet, net.URL(l)+thing, "", "consistency", "local")); v != 1 {
			t.Fatalf("local read in the minority: v=%v, want the old 1", v)
		}
		net.Heal()
		net.WaitConverged(20 * time.Second)
		if v := attrV(t, c.mustDo(t, http.StatusOK, http.MethodGet, net.URL(l)+thing, "")); v != 2 {
			t.Fatalf("read after heal: v=%v", v)
		}
	})

	t.Run("pause and resume", func(t *testing.T) {
		net.Pause(1)
		defer net.Resume(1)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if code, _, _, err := c.do(ctx, http.MethodGet, net.URL(1)+thing, "", "consistency", "local"); err == nil {
			t.Fatalf("paused node answered %d", code)
		}
		// Node 1 may lead the group (the election after the heal above can
		// land anywhere): the others elect a new leader first.
		err := net.Await(20*time.Second, func() error {
			code, _, b, err := c.do(context.Background(), http.MethodPut, net.URL(0)+thing+"/attributes/v?timeout=2s", `3`)
			if err != nil || code != http.StatusNoContent {
				return fmt.Errorf("write while node 1 is paused: %d %s %v", code, b, err)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, net.describe())
		}
		net.Resume(1)
		net.WaitConverged(20 * time.Second)
		if v := attrV(t, c.mustDo(t, http.StatusOK, http.MethodGet, net.URL(1)+thing, "", "consistency", "local")); v != 3 {
			t.Fatalf("resumed node: v=%v", v)
		}
	})

	t.Run("drop and delay", func(t *testing.T) {
		for i := range 3 {
			for j := range 3 {
				if i != j {
					net.Drop(i, j, 0.05)
				}
			}
		}
		net.SetLatency(5 * time.Millisecond)
		defer net.Heal()
		err := net.Await(20*time.Second, func() error {
			code, _, b, err := c.do(context.Background(), http.MethodPut, net.URL(2)+thing+"/attributes/v?timeout=3s", `4`)
			if err != nil || code != http.StatusNoContent {
				return fmt.Errorf("write over lossy links: %d %s %v", code, b, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		net.Heal()
		net.WaitConverged(20 * time.Second)
	})

	t.Run("kill and restart", func(t *testing.T) {
		l := net.WaitLeader(node.GroupThings, 10*time.Second)
		net.Kill(l)
		other := (l + 1) % 3
		err := net.Await(10*time.Second, func() error {
			code, _, b, err := c.do(context.Background(), http.MethodPut, net.URL(other)+thing+"/attributes/v?timeout=2s", `5`)
			if err != nil || code != http.StatusNoContent {
				return fmt.Errorf("write after kill: %d %s %v", code, b, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		id := net.Node(other).ID()
		net.Restart(l)
		net.WaitConverged(20 * time.Second)
		if v := attrV(t, c.mustDo(t, http.StatusOK, http.MethodGet, net.URL(l)+thing, "", "consistency", "local")); v != 5 {
			t.Fatalf("restarted node: v=%v", v)
		}
		if net.Node(other).ID() != id {
			t.Fatal("identity changed")
		}
	})

	t.Run("wipe", func(t *testing.T) {
		old := net.Node(2).ID()
		net.Wipe(2)
		if net.Node(2).ID() == old {
			t.Fatal("wiped node kept its identity")
		}
		net.WaitConverged(30 * time.Second)
		st, err := net.Status(0)
		if err != nil {
			t.Fatal(err)
		}
		if ids := memberIDs(st); len(ids) != 3 || contains(ids, old) {
			t.Fatalf("members after wipe: %v (old %s)", ids, old)
		}
		if v := attrV(t, c.mustDo(t, http.StatusOK, http.MethodGet, net.URL(2)+thing, "")); v != 5 {
			t.Fatalf("wiped node: v=%v", v)
		}
	})
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

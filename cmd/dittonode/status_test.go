package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dittonode/dittonode/node"
)

// startInProcess runs a real node on loopback ports in a temporary
// directory.
func startInProcess(t *testing.T, cb func(*node.Config)) *node.Node {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.Users = map[string]string{"ditto": "ditto"}
	cfg.Raft.NoSync = true
	cfg.Mesh.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}
	cfg.Mesh.MDNS = false
	if cb != nil {
		cb(&cfg)
	}
	n, err := node.New(cfg, node.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, env(nil), &out, &errb)
	return out.String(), err
}

func TestStatusSingleNode(t *testing.T) {
	n := startInProcess(t, func(c *node.Config) {
		c.NodeName = "hall-a"
		c.Mesh.ClusterSecret = "status-secret"
	})
	out, err := runCmd(t, "status", "--http", "http://"+n.HTTPAddr().String(), "--user", "ditto:ditto")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dittonode status:\n%s", out)
	label := "hall-a (" + n.ID() + ")"
	for _, re := range []string{
		`(?m)^node ` + regexp.QuoteMeta(label) + `$`,
		`(?m)^members:$`,
		`(?m)^\s+ID\s+NAME\s+REACHABLE\s+SUFFRAGE\s+ADDRESSES$`,
		`(?m)^\s+` + n.ID() + `\s+hall-a\s+self\s+connectivity=Voter,policies=Voter,things=Voter\s+/ip4/127\.0\.0\.1/`,
		`(?m)^groups:$`,
		`(?m)^\s+GROUP\s+LEADER\s+STATE\s+TERM\s+COMMIT\s+APPLIED$`,
		`(?m)^\s+connectivity\s+` + regexp.QuoteMeta(label) + `\s+Leader\s+\d+\s+\d+\s+\d+$`,
		`(?m)^\s+policies\s+` + regexp.QuoteMeta(label) + `\s+Leader\s+\d+\s+\d+\s+\d+$`,
		`(?m)^\s+things\s+` + regexp.QuoteMeta(label) + `\s+Leader\s+\d+\s+\d+\s+\d+$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status output does not match %s", re)
		}
	}
	if _, err := runCmd(t, "status", "--http", n.HTTPAddr().String()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("status without credentials: %v", err)
	}
	if _, err := runCmd(t, "status", "--http", n.HTTPAddr().String(), "--user", "nopassword"); err == nil {
		t.Error("malformed --user accepted")
	}
}

func TestStatusWithoutMesh(t *testing.T) {
	n := startInProcess(t, nil)
	out, err := runCmd(t, "status", "--http", n.HTTPAddr().String(), "--user", "ditto:ditto")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s+things\s+\S+ \(` + n.ID() + `\)\s+Leader\s+\d+\s+\d+\s+\d+$`).MatchString(out) {
		t.Errorf("status of a node without mesh:\n%s", out)
	}
}

// members reads the member IDs from GET /cluster.
func members(a adminFlags) ([]string, error) {
	body, err := clusterRequest(context.Background(), a, "GET", "/cluster")
	if err != nil {
		return nil, err
	}
	var st clusterStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, err
	}
	var ids []string
	for _, m := range st.Members {
		if len(m.Suffrage) == 3 {
			ids = append(ids, m.ID)
		}
	}
	return ids, nil
}

func waitFor(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

func TestRemoveCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two nodes")
	}
	const secret = "remove-secret"
	n1 := startInProcess(t, func(c *node.Config) { c.Mesh.ClusterSecret = secret })
	n2 := startInProcess(t, func(c *node.Config) {
		c.Mesh.ClusterSecret = secret
		c.Mesh.Join = n1.P2PAddrs()[:1]
	})
	a := adminFlags{http: n1.HTTPAddr().String(), user: "ditto:ditto"}
	waitFor(t, 10*time.Second, func() error {
		ids, err := members(a)
		if err != nil {
			return err
		}
		if len(ids) != 2 {
			return fmt.Errorf("members in every group: %v", ids)
		}
		return nil
	})
	if _, err := runCmd(t, "remove", "--http", a.http, "--user", a.user); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("remove without a peer ID: %v", err)
	}
	out, err := runCmd(t, "remove", "--http", a.http, "--user", a.user, n2.ID())
	if err != nil {
		t.Fatal(err)
	}
	if out != "removed "+n2.ID()+"\n" {
		t.Errorf("remove output %q", out)
	}
	waitFor(t, 5*time.Second, func() error {
		ids, err := members(a)
		if err != nil {
			return err
		}
		if len(ids) != 1 || ids[0] != n1.ID() {
			return fmt.Errorf("members after the removal: %v", ids)
		}
		return nil
	})
	if _, err := runCmd(t, "remove", "--http", a.http, "--user", a.user, n2.ID()); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("removing a removed node again: %v", err)
	}
}

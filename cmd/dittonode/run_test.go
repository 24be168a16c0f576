package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/dittonode/dittonode/node"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseRun(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(cfgFile, []byte("data: /var/lib/dittonode\nhttp: 127.0.0.1:9000\nusers: [\"carol:pw\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		wantData  string
		wantHTTP  string
		wantUsers []string
		wantErr   string
	}{
		{name: "dev defaults", args: []string{"--dev"}, wantData: "./data", wantHTTP: "127.0.0.1:8080", wantUsers: []string{"ditto"}},
		{name: "flags", args: []string{"--data", "d", "--http", "127.0.0.1:1", "--user", "a:x", "--user", "b:y"}, wantData: "d", wantHTTP: "127.0.0.1:1", wantUsers: []string{"a", "b"}},
		{name: "env users", args: nil, env: map[string]string{"DITTONODE_USERS": "a:x,b:y"}, wantData: "./data", wantHTTP: "127.0.0.1:8080", wantUsers: []string{"a", "b"}},
		{name: "config file", args: []string{"--config", cfgFile}, wantData: "/var/lib/dittonode", wantHTTP: "127.0.0.1:9000", wantUsers: []string{"carol"}},
		{name: "flag beats file", args: []string{"--config", cfgFile, "--http", "127.0.0.1:7"}, wantData: "/var/lib/dittonode", wantHTTP: "127.0.0.1:7", wantUsers: []string{"carol"}},
		{name: "no users", args: nil, wantErr: "no users"},
		{name: "bad user", args: []string{"--user", "nopassword"}, wantErr: "NAME:PASSWORD"},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cfg, _, err := parseRun(tt.args, env(tt.env), &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.DataDir != tt.wantData || cfg.HTTP.Addr != tt.wantHTTP {
				t.Errorf("data %q http %q", cfg.DataDir, cfg.HTTP.Addr)
			}
			if len(cfg.HTTP.Users) != len(tt.wantUsers) {
				t.Fatalf("users %v, want %v", cfg.HTTP.Users, tt.wantUsers)
			}
			for _, u := range tt.wantUsers {
				if _, ok := cfg.HTTP.Users[u]; !ok {
					t.Errorf("user %s missing", u)
				}
			}
		})
	}
}

func TestVersionAndUnknownCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"version"}, env(nil), &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "dittonode ") {
		t.Errorf("version output %q", out.String())
	}
	if err := run(context.Background(), []string{"frobnicate"}, env(nil), &out, &errb); err == nil {
		t.Error("unknown command accepted")
	}
}

func TestParseRunMesh(t *testing.T) {
	const pid = "12D3KooWCrNujZT13nCTDpnRt13vDPh2R95tpsJTYobH371yNaBg"
	joinAddr := "/ip4/192.0.2.1/udp/4001/quic-v1/p2p/" + pid
	cfgFile := filepath.Join(t.TempDir(), "mesh.yaml")
	file := "users: [\"carol:pw\"]\nnode-name: hall-a\np2p: [\"/ip4/0.0.0.0/tcp/4101\"]\njoin: [\"" + joinAddr + "\"]\n" +
		"bootstrap-expect: 3\ncluster-secret: from-file\nmdns: false\nremove-after: 5m\n"
	if err := os.WriteFile(cfgFile, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	badFile := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badFile, []byte("users: [\"carol:pw\"]\nremove-after: soon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	defaults := node.DefaultConfig()
	type mesh struct {
		Name        string
		Listen      []string
		Join        []string
		Expect      int
		Secret      string
		MDNS        bool
		RemoveAfter time.Duration
	}
	def := mesh{Listen: defaults.Mesh.Listen, Expect: 1, MDNS: true}
	with := func(f func(*mesh)) mesh { m := def; f(&m); return m }
	secretEnv := map[string]string{"DITTONODE_CLUSTER_SECRET": "from-env"}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    mesh
		wantErr string
	}{
		{name: "defaults", args: []string{"--dev"}, want: def},
		{name: "secret from env", args: []string{"--dev"}, env: secretEnv, want: with(func(m *mesh) { m.Secret = "from-env" })},
		{name: "secret flag beats env", args: []string{"--dev", "--cluster-secret", "from-flag"}, env: secretEnv,
			want: with(func(m *mesh) { m.Secret = "from-flag" })},
		{name: "all mesh flags", env: secretEnv, args: []string{"--dev", "--node-name", "n1",
			"--p2p", "/ip4/127.0.0.1/udp/4101/quic-v1", "--p2p", "/ip4/127.0.0.1/tcp/4101",
			"--join", joinAddr, "--join", "/ip4/192.0.2.2/tcp/4001/p2p/" + pid,
			"--bootstrap-expect", "3", "--no-mdns", "--remove-after", "10m"},
			want: mesh{Name: "n1", Listen: []string{"/ip4/127.0.0.1/udp/4101/quic-v1", "/ip4/127.0.0.1/tcp/4101"},
				Join: []string{joinAddr, "/ip4/192.0.2.2/tcp/4001/p2p/" + pid}, Expect: 3, Secret: "from-env", RemoveAfter: 10 * time.Minute}},
		{name: "mdns=false", args: []string{"--dev", "--mdns=false"}, want: with(func(m *mesh) { m.MDNS = false })},
		{name: "config file", args: []string{"--config", cfgFile}, env: secretEnv,
			want: mesh{Name: "hall-a", Listen: []string{"/ip4/0.0.0.0/tcp/4101"}, Join: []string{joinAddr}, Expect: 3,
				Secret: "from-file", RemoveAfter: 5 * time.Minute}},
		{name: "flags beat the file", args: []string{"--config", cfgFile, "--node-name", "n2", "--p2p", "/ip4/127.0.0.1/tcp/1",
			"--bootstrap-expect", "5", "--cluster-secret", "s", "--mdns", "--remove-after", "1h"},
			want: mesh{Name: "n2", Listen: []string{"/ip4/127.0.0.1/tcp/1"}, Join: []string{joinAddr}, Expect: 5, Secret: "s",
				MDNS: true, RemoveAfter: time.Hour}},
		{name: "join needs a secret", args: []string{"--dev", "--join", joinAddr}, wantErr: "cluster secret"},
		{name: "bootstrap-expect needs a secret", args: []string{"--dev", "--bootstrap-expect", "3"}, wantErr: "cluster secret"},
		{name: "join without peer ID", args: []string{"--dev", "--join", "/ip4/192.0.2.1/tcp/4001"}, env: secretEnv, wantErr: "/p2p/"},
		{name: "negative remove-after", args: []string{"--dev", "--remove-after", "-1m"}, wantErr: "remove-after"},
		{name: "bad remove-after in file", args: []string{"--config", badFile}, wantErr: "remove-after"},
		{name: "bad remove-after flag", args: []string{"--dev", "--remove-after", "soon"}, wantErr: "remove-after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cfg, _, err := parseRun(tt.args, env(tt.env), &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error()+stderr.String(), tt.wantErr) {
					t.Fatalf("err %v (%s), want %q", err, stderr.String(), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := mesh{Name: cfg.NodeName, Listen: cfg.Mesh.Listen, Join: cfg.Mesh.Join, Expect: cfg.Mesh.BootstrapExpect,
				Secret: cfg.Mesh.ClusterSecret, MDNS: cfg.Mesh.MDNS, RemoveAfter: cfg.Mesh.RemoveAfter}
			if d := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("mesh config (-want +got):\n%s", d)
			}
		})
	}
}

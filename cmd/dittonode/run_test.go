package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dittonode/dittonode/node"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"0", 0, false},
		{"1048576", 1 << 20, false},
		{"200MiB", 200 << 20, false},
		{"1.5GiB", 3 << 29, false},
		{"250MB", 250e6, false},
		{" 64 KiB ", 64 << 10, false},
		{"10B", 10, false},
		{"", 0, true},
		{"MiB", 0, true},
		{"-1MiB", 0, true},
		{"lots", 0, true},
		{"1e30GiB", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSize(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseSize(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseRunMemoryLimit(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(cfgFile, []byte("memory-limit: 1GiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		want    int64
		wantErr string
	}{
		{"default", []string{"--dev"}, node.DefaultMemoryLimit, ""},
		{"flag", []string{"--dev", "--memory-limit", "300MiB"}, 300 << 20, ""},
		{"off", []string{"--dev", "--memory-limit", "0"}, 0, ""},
		{"file", []string{"--dev", "--config", cfgFile}, 1 << 30, ""},
		{"flag beats file", []string{"--dev", "--config", cfgFile, "--memory-limit", "2GiB"}, 2 << 30, ""},
		{"bad", []string{"--dev", "--memory-limit", "much"}, 0, "memory-limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, ok := parseRunCase(t, tc.args, tc.wantErr)
			if ok && cfg.MemoryLimit != tc.want {
				t.Errorf("MemoryLimit = %d, want %d", cfg.MemoryLimit, tc.want)
			}
		})
	}
}

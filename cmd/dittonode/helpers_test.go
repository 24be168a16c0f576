package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dittonode/dittonode/node"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// parseRunCase runs parseRun on args without environment. With wantErr it
// checks that parsing failed naming it, and reports false; else it fails
// the test on an error.
func parseRunCase(t *testing.T, args []string, wantErr string) (node.Config, bool) {
	t.Helper()
	cfg, _, err := parseRun(args, env(nil), &bytes.Buffer{})
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err %v, want %q", err, wantErr)
		}
		return cfg, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return cfg, true
}

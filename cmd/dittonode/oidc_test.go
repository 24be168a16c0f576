package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dittonode/dittonode/services/gateway"
)

func TestParseRunOIDC(t *testing.T) {
	dir := t.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwks, []byte(`{"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", `
oidc:
  - prefix: google
    issuer: accounts.google.com
    jwks-url: https://www.googleapis.com/oauth2/v3/certs
    audience: my-client
    auth-subjects: ["{{ jwt:sub }}", "{{ jwt:email | fn:lower() }}"]
    prerequisite-conditions: ["{{ jwt:email_verified | fn:filter('eq','true') }}"]
  - prefix: local
    issuer: https://idp.local
    jwks-file: `+jwks+`
`)
	var stderr bytes.Buffer
	cfg, _, err := parseRun([]string{"--config", good}, env(nil), &stderr)
	if err != nil {
		t.Fatal(err)
	}
	want := []gateway.OIDCIssuer{
		{Prefix: "google", Issuer: "accounts.google.com", JWKSURL: "https://www.googleapis.com/oauth2/v3/certs", Audience: "my-client",
			AuthSubjects:           []string{"{{ jwt:sub }}", "{{ jwt:email | fn:lower() }}"},
			PrerequisiteConditions: []string{"{{ jwt:email_verified | fn:filter('eq','true') }}"}},
		{Prefix: "local", Issuer: "https://idp.local", JWKSFile: jwks},
	}
	if diff := cmp.Diff(want, cfg.HTTP.OIDC); diff != "" {
		t.Errorf("oidc (-want +got):\n%s", diff)
	}
	if len(cfg.HTTP.Users) != 0 {
		t.Errorf("users %v: OIDC alone needs no basic users", cfg.HTTP.Users)
	}

	for _, c := range []struct{ name, body, want string }{
		{"unknown key", "oidc:\n  - prefix: p\n    issuer: i\n    jwks-file: " + jwks + "\n    subjects: [x]\n", "subjects"},
		{"bad template", "oidc:\n  - prefix: p\n    issuer: i\n    jwks-file: " + jwks + "\n    auth-subjects: ['{{ jwt:sub | fn:nope() }}']\n", "unknown function"},
		{"plain http", "oidc:\n  - prefix: p\n    issuer: i\n    jwks-url: http://idp.example.com/keys\n", "loopback"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := parseRun([]string{"--config", write(c.name+".yaml", c.body)}, env(nil), &stderr)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
		})
	}
}

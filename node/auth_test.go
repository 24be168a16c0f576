package node

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/dittonode/dittonode/services/gateway"
)

const oidcIssuer = "https://idp.example.com"

// oidcNode starts a node that trusts oidcIssuer with an Ed25519 and an EC
// key from a JWKS file, under the subject prefix "idp".
func oidcNode(t *testing.T) (*Node, ed25519.PrivateKey, *ecdsa.PrivateKey) {
	t.Helper()
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecRaw, err := ec.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks, err := json.Marshal(map[string]any{"keys": []any{
		map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(ed.Public().(ed25519.PublicKey))},
		map[string]any{"kty": "EC", "crv": "P-256", "kid": "ec", "x": b64(ecRaw[1:33]), "y": b64(ecRaw[33:])},
	}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(path, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, filepath.Join(dir, "data"), func(c *Config) {
		c.HTTP.OIDC = []gateway.OIDCIssuer{{
			Prefix: "idp", Issuer: "idp.example.com", JWKSFile: path,
			AuthSubjects: []string{"{{ jwt:sub }}", "group-{{ jwt:groups }}", "{{ jwt:roles | fn:split(',') | fn:lower() }}"},
		}}
	})
	return n, ed, ec
}

func signed(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOIDCAuthentication(t *testing.T) {
	n, ed, ec := oidcNode(t)
	anon := newClient(t, n, "")
	exp := time.Now().Add(time.Hour).Unix()
	alice := signed(t, jwt.SigningMethodEdDSA, ed, "ed", jwt.MapClaims{
		"iss": oidcIssuer, "sub": "alice", "exp": exp, "groups": []string{"ops", "dev"}, "roles": "Admin,Viewer",
	})
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

	r := anon.do("GET", "/api/2/whoami", "", bearer(alice)...)
	expectStatus(t, r, 200)
	want := map[string]any{"defaultSubject": "idp:alice",
		"subjects": []any{"idp:alice", "idp:group-ops", "idp:group-dev", "idp:admin", "idp:viewer"}}
	if diff := cmp.Diff(want, r.json(t)); diff != "" {
		t.Errorf("whoami (-want +got):\n%s", diff)
	}

	// The default policy of a thing created with a JWT names its first subject.
	expectStatus(t, anon.do("PUT", "/api/2/things/org.acme:lamp", `{"attributes":{"on":true}}`, bearer(alice)...), 201)
	r = anon.do("GET", "/api/2/policies/org.acme:lamp/entries/DEFAULT/subjects", "", bearer(alice)...)
	expectStatus(t, r, 200)
	if _, ok := r.json(t)["idp:alice"]; !ok {
		t.Errorf("default policy subjects %s", r.body)
	}
	// Basic users are still who they are, and alice's thing is hidden from them.
	expectStatus(t, newClient(t, n, "ditto").do("GET", "/api/2/things/org.acme:lamp", ""), 404)

	ecTok := signed(t, jwt.SigningMethodES256, ec, "ec", jwt.MapClaims{"iss": oidcIssuer + "/", "sub": "alice", "exp": exp})
	expectStatus(t, anon.do("GET", "/api/2/things/org.acme:lamp", "", bearer(ecTok)...), 200)

	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, c := range []struct {
		name  string
		token string
		code  string
	}{
		{"expired", signed(t, jwt.SigningMethodEdDSA, ed, "ed", jwt.MapClaims{"iss": oidcIssuer, "sub": "alice", "exp": time.Now().Add(-time.Minute).Unix()}), "gateway:jwt.invalid"},
		{"wrong signature", signed(t, jwt.SigningMethodEdDSA, otherKey, "ed", jwt.MapClaims{"iss": oidcIssuer, "sub": "alice", "exp": exp}), "gateway:jwt.invalid"},
		{"unknown issuer", signed(t, jwt.SigningMethodEdDSA, ed, "ed", jwt.MapClaims{"iss": "https://other.example.com", "sub": "alice", "exp": exp}), "gateway:jwt.issuer.notsupported"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := anon.do("GET", "/api/2/things/org.acme:lamp", "", bearer(c.token)...)
			expectStatus(t, r, 401)
			if got := r.json(t)["error"]; got != c.code {
				t.Errorf("error %v, want %s", got, c.code)
			}
			if r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}

	t.Run("access_token", func(t *testing.T) {
		q := "?access_token=" + url.QueryEscape(alice)
		r := anon.do("GET", "/api/2/things/org.acme:lamp"+q, "")
		expectStatus(t, r, 401)
		r = anon.do("GET", "/api/2/whoami"+q, "", "Accept", "text/event-stream")
		expectStatus(t, r, 200)
		if r.json(t)["defaultSubject"] != "idp:alice" {
			t.Errorf("whoami over access_token: %s", r.body)
		}
	})
}

func TestCheckPermissionsNode(t *testing.T) {
	n, ed, _ := oidcNode(t)
	anon := newClient(t, n, "")
	exp := time.Now().Add(time.Hour).Unix()
	token := func(sub string) []string {
		return []string{"Authorization", "Bearer " + signed(t, jwt.SigningMethodEdDSA, ed, "ed", jwt.MapClaims{"iss": oidcIssuer, "sub": sub, "exp": exp})}
	}
	alice, bob := token("alice"), token("bob")

	expectStatus(t, anon.do("PUT", "/api/2/things/org.acme:lamp",
		`{"attributes":{"secret":1,"room":"hall"},"features":{"lamp":{"properties":{"on":true}}}}`, alice...), 201)
	expectStatus(t, anon.do("PUT", "/api/2/policies/org.acme:lamp/entries/observer", `{
		"subjects":{"idp:bob":{"type":"jwt"}},
		"resources":{
			"thing:/":{"grant":["READ"],"revoke":[]},
			"thing:/attributes/secret":{"grant":[],"revoke":["READ"]},
			"message:/features/lamp/inbox":{"grant":["WRITE"],"revoke":[]}}}`, alice...), 201)

	check := func(who []string, key, resource, entity string, perms ...string) bool {
		t.Helper()
		body, err := json.Marshal(map[string]any{key: map[string]any{"resource": resource, "entityId": entity, "hasPermissions": perms}})
		if err != nil {
			t.Fatal(err)
		}
		r := anon.do("POST", "/api/2/checkPermissions", string(body), who...)
		expectStatus(t, r, 200)
		v, ok := r.json(t)[key].(bool)
		if !ok {
			t.Fatalf("answer %s has no boolean %q", r.body, key)
		}
		return v
	}
	for _, c := range []struct {
		name     string
		who      []string
		resource string
		entity   string
		perms    []string
		want     bool
	}{
		{"owner reads and writes the thing", alice, "thing:/", "org.acme:lamp", []string{"READ", "WRITE"}, true},
		{"observer reads a feature", bob, "thing:/features/lamp/properties/on", "org.acme:lamp", []string{"READ"}, true},
		{"revoked deeper: not unrestricted at the root", bob, "thing:/", "org.acme:lamp", []string{"READ"}, false},
		{"revoked leaf", bob, "thing:/attributes/secret", "org.acme:lamp", []string{"READ"}, false},
		{"sibling of the revoked leaf", bob, "thing:/attributes/room", "org.acme:lamp", []string{"READ"}, true},
		{"observer cannot write", bob, "thing:/features", "org.acme:lamp", []string{"WRITE"}, false},
		{"one of two permissions missing", bob, "thing:/features", "org.acme:lamp", []string{"READ", "WRITE"}, false},
		{"message resource", bob, "message:/features/lamp/inbox/messages/toggle", "org.acme:lamp", []string{"WRITE"}, true},
		{"message resource elsewhere", bob, "message:/inbox", "org.acme:lamp", []string{"WRITE"}, false},
		{"missing thing", alice, "thing:/", "org.acme:nope", []string{"READ"}, false},
		{"policy resource, owner", alice, "policy:/entries", "org.acme:lamp", []string{"WRITE"}, true},
		{"policy resource, observer", bob, "policy:/", "org.acme:lamp", []string{"READ"}, false},
		{"missing policy", alice, "policy:/", "org.acme:gone", []string{"READ"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := check(c.who, "k", c.resource, c.entity, c.perms...); got != c.want {
				t.Errorf("checkPermissions = %v, want %v", got, c.want)
			}
		})
	}

	r := anon.do("POST", "/api/2/checkPermissions", `{"a":{"resource":"thing:/"}}`, alice...)
	expectStatus(t, r, 400)
}

package gateway

import (
	"crypto/rand"
	"crypto/rsa"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseJWKS(t *testing.T) {
	k := mustTestKeys(t)
	rsaJWK := publicJWK(t, kidRSA, &k.rsa.PublicKey)
	ecJWK := publicJWK(t, kidEC, &k.ec.PublicKey)
	edJWK := publicJWK(t, kidEd, k.ed.Public())
	with := func(base map[string]any, kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := parseJWKS(jwksOf(t,
		rsaJWK, ecJWK, edJWK,
		with(rsaJWK, "kid", "padded", "n", rsaJWK["n"].(string)+"=="),
		with(rsaJWK, "kid", "enc", "use", "enc"),
		with(rsaJWK, "kid", "small", "n", b64(small.N.Bytes())),
		with(rsaJWK, "kid", "bad-alg", "alg", "ES256"),
		with(ecJWK, "kid", "short-x", "x", b64([]byte{1, 2, 3})),
		with(ecJWK, "kid", "p-192", "crv", "P-192"),
		with(ecJWK, "kid", "off-curve", "y", ecJWK["x"]),
		with(edJWK, "kid", "x25519", "crv", "X25519"),
		map[string]any{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
		map[string]any{"kty": "RSA", "kid": "no-n", "e": "AQAB"},
	))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, k := range keys {
		got[k.kid] = k.algs
	}
	want := map[string][]string{
		kidRSA: {"RS256"}, kidEC: {"ES256"}, kidEd: {"EdDSA"}, "padded": {"RS256"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("usable keys (-want +got):\n%s", diff)
	}

	for _, c := range []struct{ name, doc, want string }{
		{"not JSON", `{`, "jwks"},
		{"no keys", `{"keys":[]}`, "no keys"},
		{"only unusable", `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`, "unsupported key type"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := parseJWKS([]byte(c.doc)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestCheckJWKSURL(t *testing.T) {
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"https://idp.example.com/keys", true},
		{"http://127.0.0.1:8080/keys", true},
		{"http://[::1]/keys", true},
		{"http://localhost/keys", true},
		{"http://10.0.0.1/keys", false},
		{"http://idp.example.com/keys", false},
		{"ftp://idp.example.com/keys", false},
		{"https:///keys", false},
		{"file:///etc/passwd", false},
	} {
		u, err := url.Parse(c.url)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkJWKSURL(u); (err == nil) != c.ok {
			t.Errorf("checkJWKSURL(%s) = %v, want ok=%v", c.url, err, c.ok)
		}
	}
}

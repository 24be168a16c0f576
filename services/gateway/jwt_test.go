package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

const testIssuer = "https://issuer.example.com/"

// oidcServer starts a gateway trusting testIssuer (JWKS file with the three
// test keys) under the prefix "test", with the given subject templates.
func oidcServer(t *testing.T, mod func(*OIDCIssuer), clock func() time.Time) *testEnv {
	t.Helper()
	path := writeFile(t, t.TempDir(), "jwks.json", testJWKS(t))
	return mustServer(t, func(c *Config, d *Deps) {
		iss := OIDCIssuer{Prefix: "test", Issuer: "issuer.example.com", JWKSFile: path}
		if mod != nil {
			mod(&iss)
		}
		c.OIDC = []OIDCIssuer{iss}
		d.Clock = clock
	})
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

type whoami struct {
	DefaultSubject string   `json:"defaultSubject"`
	Subjects       []string `json:"subjects"`
}

func mustWhoami(t *testing.T, r resp) whoami {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("whoami: status %d, body %s", r.status, r.body)
	}
	var w whoami
	if err := json.Unmarshal(r.body, &w); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestJWTSubjects(t *testing.T) {
	env := oidcServer(t, func(o *OIDCIssuer) {
		o.AuthSubjects = []string{
			"{{ jwt:sub }}",
			"group-{{ jwt:extra/groups }}",
			"{{ jwt:scope | fn:split(' ') | fn:upper() }}",
			"{{ jwt:email | fn:substring-after('@') }}@{{ jwt:aud }}",
			"{{ jwt:nickname | fn:default(jwt:sub) | fn:lower() }}",
			"{{ jwt:missing }}",
		}
	}, nil)
	k := mustTestKeys(t)
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": testIssuer, "sub": "Alice", "exp": now.Add(time.Hour).Unix(), "aud": []string{"app1", "app2"},
		"scope": "openid  email", "email": "alice@acme.org", "extra": map[string]any{"groups": []any{"admins", "ops", 7}},
	}
	want := []string{
		"test:Alice", "test:group-admins", "test:group-ops", "test:group-7", "test:OPENID", "test:EMAIL",
		"test:acme.org@app1", "test:acme.org@app2", "test:alice",
	}
	for _, c := range []struct {
		name   string
		method jwt.SigningMethod
		key    any
		kid    string
	}{
		{"RS256", jwt.SigningMethodRS256, k.rsa, kidRSA},
		{"ES256", jwt.SigningMethodES256, k.ec, kidEC},
		{"EdDSA", jwt.SigningMethodEdDSA, k.ed, kidEd},
		{"EdDSA without kid", jwt.SigningMethodEdDSA, k.ed, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := mint(t, c.method, c.key, c.kid, claims)
			w := mustWhoami(t, env.do(t, req{method: "GET", path: "/api/2/whoami", noAuth: true, headers: bearer(tok)}))
			if diff := cmp.Diff(whoami{DefaultSubject: "test:Alice", Subjects: want}, w); diff != "" {
				t.Errorf("whoami (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJWTRejected(t *testing.T) {
	k := mustTestKeys(t)
	other := otherRSA()
	now := time.Now()
	valid := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"iss": testIssuer, "sub": "alice", "aud": "app", "exp": now.Add(time.Hour).Unix(), "tenant": "acme"}
		for k, v := range extra {
			if v == nil {
				delete(c, k)
				continue
			}
			c[k] = v
		}
		return c
	}
	env := oidcServer(t, func(o *OIDCIssuer) {
		o.Audience = "app"
		o.PrerequisiteConditions = []string{"{{ jwt:tenant | fn:filter('eq','acme') }}"}
	}, nil)
	for _, c := range []struct {
		name   string
		token  string
		status int
		code   string
	}{
		{"expired", mint(t, jwt.SigningMethodRS256, k.rsa, kidRSA, valid(jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()})), 401, "gateway:jwt.invalid"},
		{"not yet valid", mint(t, jwt.SigningMethodRS256, k.rsa, kidRSA, valid(jwt.MapClaims{"nbf": now.Add(time.Minute).Unix()})), 401, "gateway:jwt.invalid"},
		{"no exp", mint(t, jwt.SigningMethodRS256, k.rsa, kidRSA, valid(jwt.MapClaims{"exp": nil})), 401, "gateway:jwt.invalid"},
		{"wrong signature", mint(t, jwt.SigningMethodRS256, other, kidRSA, valid(nil)), 401, "gateway:jwt.invalid"},
		{"alg not allowed by the JWK", mint(t, jwt.SigningMethodPS256, k.rsa, kidRSA, valid(nil)), 401, "gateway:jwt.invalid"},
		{"key of another type", mint(t, jwt.SigningMethodES256, k.ec, kidRSA, valid(nil)), 401, "gateway:jwt.invalid"},
		{"unknown kid", mint(t, jwt.SigningMethodRS256, k.rsa, "nope", valid(nil)), 401, "gateway:jwt.invalid"},
		{"HMAC", mint(t, jwt.SigningMethodHS256, []byte("secret"), kidRSA, valid(nil)), 401, "gateway:jwt.invalid"},
		{"alg none", mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", valid(nil)), 401, "gateway:jwt.invalid"},
		{"unknown issuer", mint(t, jwt.SigningMethodRS256, k.rsa, kidRSA, valid(jwt.MapClaims{"iss": "https://evil.example.com"})), 401, "gateway:jwt.issuer.notsupported"},
		{"no issuer", mint(t, jwt.SigningMethodRS256, k.rsa, kidRSA, valid(jwt.MapClaims{"iss": nil})), 401, "gateway:jwt.issuer.notsupported"},
		{"wrong audience", mint(t, jwt.SigningMethodRS256, k.rsa, kidRSA, valid(jwt.MapClaims{"aud": "other"})), 401, "gateway:jwt.invalid"},
		{"prerequisite not met", mint(t, jwt.SigningMethodRS256, k.rsa, kidRSA, valid(jwt.MapClaims{"tenant": "evil"})), 401, "gateway:jwt.condition.failed"},
		{"no subject", mint(t, jwt.SigningMethodRS256, k.rsa, kidRSA, valid(jwt.MapClaims{"sub": nil})), 401, "gateway:jwt.invalid"},
		{"garbage", "not.a.jwt", 401, "gateway:jwt.invalid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := env.do(t, req{method: "GET", path: "/api/2/whoami", noAuth: true, headers: bearer(c.token)})
			mustDittoError(t, r, c.status, c.code)
			if got := r.header.Values("WWW-Authenticate"); !cmp.Equal(got, hdrBearerInvalid) {
				t.Errorf("WWW-Authenticate = %q", got)
			}
		})
	}
	t.Run("within clock skew", func(t *testing.T) {
		tok := mint(t, jwt.SigningMethodRS256, k.rsa, kidRSA, valid(jwt.MapClaims{"exp": now.Add(-3 * time.Second).Unix()}))
		mustWhoami(t, env.do(t, req{method: "GET", path: "/api/2/whoami", noAuth: true, headers: bearer(tok)}))
	})
	t.Run("no credentials", func(t *testing.T) {
		r := env.do(t, req{method: "GET", path: "/api/2/whoami", noAuth: true})
		mustDittoError(t, r, 401, "gateway:authentication.failed")
		if got := r.header.Values("WWW-Authenticate"); !cmp.Equal(got, hdrBasicBearer) {
			t.Errorf("WWW-Authenticate = %q", got)
		}
	})
	t.Run("basic still works", func(t *testing.T) {
		w := mustWhoami(t, env.do(t, req{method: "GET", path: "/api/2/whoami"}))
		if w.DefaultSubject != "nginx:ditto" {
			t.Errorf("whoami %+v", w)
		}
	})
}

func TestAccessToken(t *testing.T) {
	env := oidcServer(t, nil, nil)
	k := mustTestKeys(t)
	tok := mint(t, jwt.SigningMethodEdDSA, k.ed, kidEd, jwt.MapClaims{"iss": testIssuer, "sub": "bob", "exp": time.Now().Add(time.Hour).Unix()})
	q := "?access_token=" + url.QueryEscape(tok)

	r := env.do(t, req{method: "GET", path: "/api/2/whoami" + q, noAuth: true})
	mustDittoError(t, r, 401, "gateway:authentication.failed")

	w := mustWhoami(t, env.do(t, req{method: "GET", path: "/api/2/whoami" + q, noAuth: true,
		headers: map[string]string{"Accept": "text/event-stream"}}))
	if w.DefaultSubject != "test:bob" {
		t.Errorf("whoami %+v", w)
	}
	r = env.do(t, req{method: "POST", path: "/api/2/whoami" + q, noAuth: true,
		headers: map[string]string{"Accept": "text/event-stream"}})
	mustDittoError(t, r, 401, "gateway:authentication.failed")

	for _, c := range []struct {
		name, method, target, accept string
		applies                      bool
		failed                       bool
	}{
		{"websocket", "GET", "/ws/2" + q, "", true, false},
		{"sse", "GET", "/api/2/things" + q, "application/json, text/event-stream", true, false},
		{"plain GET", "GET", "/api/2/things" + q, "application/json", true, true},
		{"no token", "GET", "/ws/2", "", false, false},
		{"other param", "GET", "/ws/2?access_tokens=x", "", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			hr := httptest.NewRequest(c.method, c.target, nil)
			if c.accept != "" {
				hr.Header.Set("Accept", c.accept)
			}
			got, applies, derr := bearerToken(hr)
			if applies != c.applies || (derr != nil) != c.failed {
				t.Fatalf("bearerToken = %q, %v, %v", got, applies, derr)
			}
			if c.applies && !c.failed && got != tok {
				t.Errorf("token %q", got)
			}
		})
	}
}

func TestAuthenticateToken(t *testing.T) {
	env := oidcServer(t, nil, nil)
	k := mustTestKeys(t)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	tok := mint(t, jwt.SigningMethodES256, k.ec, kidEC, jwt.MapClaims{"iss": testIssuer, "sub": "carol", "exp": exp.Unix()})
	auth, gotExp, err := env.srv.authenticateToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if auth.Default() != "test:carol" || !gotExp.Equal(exp) {
		t.Errorf("auth %+v, exp %v (want %v)", auth, gotExp, exp)
	}
	if _, _, err := env.srv.authenticateToken("x.y.z"); err == nil {
		t.Error("a malformed token was accepted")
	}
	plain := New(Config{Users: map[string]string{"a": "b"}}, Deps{})
	if _, _, err := plain.authenticateToken(tok); err == nil {
		t.Error("a server without issuers accepted a token")
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestJWKSURL serves the JWKS over HTTP on loopback: keys are fetched on
// first use, a new kid is picked up by a refresh that is rate limited, and
// the cached keys survive an outage of the issuer.
func TestJWKSURL(t *testing.T) {
	k := mustTestKeys(t)
	var (
		mu      sync.Mutex
		doc     = jwksOf(t, publicJWK(t, kidRSA, &k.rsa.PublicKey))
		fetches atomic.Int32
		down    atomic.Bool
	)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}))
	t.Cleanup(jwks.Close)

	clock := &fakeClock{now: time.Now()}
	env := mustServer(t, func(c *Config, d *Deps) {
		c.OIDC = []OIDCIssuer{{Prefix: "url", Issuer: testIssuer, JWKSURL: jwks.URL + "/keys"}}
		d.Clock = clock.Now
	})
	whoamiWith := func(method jwt.SigningMethod, key any, kid string) resp {
		tok := mint(t, method, key, kid, jwt.MapClaims{"iss": testIssuer, "sub": "dave", "exp": clock.Now().Add(time.Hour).Unix()})
		return env.do(t, req{method: "GET", path: "/api/2/whoami", noAuth: true, headers: bearer(tok)})
	}
	if fetches.Load() != 0 {
		t.Fatalf("JWKS URL fetched %d times before the first token", fetches.Load())
	}
	mustWhoami(t, whoamiWith(jwt.SigningMethodRS256, k.rsa, kidRSA))
	mustWhoami(t, whoamiWith(jwt.SigningMethodRS256, k.rsa, kidRSA))
	if n := fetches.Load(); n != 1 {
		t.Fatalf("fetches after two tokens = %d, want 1 (cached)", n)
	}

	// The issuer rotates in an EC key. Within the rate limit an unknown kid
	// does not cause another fetch.
	mu.Lock()
	doc = jwksOf(t, publicJWK(t, kidRSA, &k.rsa.PublicKey), publicJWK(t, kidEC, &k.ec.PublicKey))
	mu.Unlock()
	mustDittoError(t, whoamiWith(jwt.SigningMethodES256, k.ec, kidEC), 401, "gateway:jwt.invalid")
	mustDittoError(t, whoamiWith(jwt.SigningMethodES256, k.ec, kidEC), 401, "gateway:jwt.invalid")
	if n := fetches.Load(); n != 1 {
		t.Fatalf("fetches within the rate limit = %d, want 1", n)
	}
	clock.Advance(jwksMinRefresh + time.Second)
	mustWhoami(t, whoamiWith(jwt.SigningMethodES256, k.ec, kidEC))
	if n := fetches.Load(); n != 2 {
		t.Fatalf("fetches after the rate limit = %d, want 2", n)
	}

	// The issuer goes down: cached keys keep working, even after max age.
	down.Store(true)
	clock.Advance(jwksMaxAge + time.Second)
	mustWhoami(t, whoamiWith(jwt.SigningMethodRS256, k.rsa, kidRSA))
	if n := fetches.Load(); n != 3 {
		t.Fatalf("fetches after max age = %d, want 3", n)
	}
}

func TestJWKSURLUnavailable(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	u := dead.URL
	dead.Close()
	k := mustTestKeys(t)
	env := mustServer(t, func(c *Config, d *Deps) {
		c.OIDC = []OIDCIssuer{{Prefix: "url", Issuer: testIssuer, JWKSURL: u}}
	})
	tok := mint(t, jwt.SigningMethodRS256, k.rsa, kidRSA, jwt.MapClaims{"iss": testIssuer, "sub": "x", "exp": time.Now().Add(time.Hour).Unix()})
	r := env.do(t, req{method: "GET", path: "/api/2/whoami", noAuth: true, headers: bearer(tok)})
	mustDittoError(t, r, 503, "gateway:authentication.provider.unavailable")
}

func TestOIDCConfigValidate(t *testing.T) {
	file := writeFile(t, t.TempDir(), "jwks.json", testJWKS(t))
	ok := OIDCIssuer{Prefix: "google", Issuer: "accounts.google.com", JWKSFile: file}
	for _, c := range []struct {
		name string
		mod  func(*OIDCIssuer)
		want string // substring of the error; "" = valid
	}{
		{"valid", func(*OIDCIssuer) {}, ""},
		{"https URL", func(o *OIDCIssuer) { o.JWKSFile, o.JWKSURL = "", "https://idp.example.com/jwks" }, ""},
		{"loopback http URL", func(o *OIDCIssuer) { o.JWKSFile, o.JWKSURL = "", "http://127.0.0.1:9000/jwks" }, ""},
		{"remote http URL", func(o *OIDCIssuer) { o.JWKSFile, o.JWKSURL = "", "http://idp.example.com/jwks" }, "loopback"},
		{"file and URL", func(o *OIDCIssuer) { o.JWKSURL = "https://idp.example.com/jwks" }, "exactly one"},
		{"no keys", func(o *OIDCIssuer) { o.JWKSFile = "" }, "exactly one"},
		{"bad prefix", func(o *OIDCIssuer) { o.Prefix = "a:b" }, "prefix"},
		{"no issuer", func(o *OIDCIssuer) { o.Issuer = "https://" }, "issuer"},
		{"bad template", func(o *OIDCIssuer) { o.AuthSubjects = []string{"{{ jwt:sub | fn:nope() }}"} }, "unknown function"},
		{"bad condition", func(o *OIDCIssuer) { o.PrerequisiteConditions = []string{"{{ header:x }}"} }, "unknown placeholder"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := ok
			c.mod(&o)
			err := Config{OIDC: []OIDCIssuer{o}}.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to mention %q", err, c.want)
			}
		})
	}
	t.Run("duplicate issuer", func(t *testing.T) {
		o2 := ok
		o2.Prefix, o2.Issuer = "other", "https://accounts.google.com/"
		if err := (Config{OIDC: []OIDCIssuer{ok, o2}}).Validate(); err == nil || !strings.Contains(err.Error(), "twice") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestStartFailsOnBadJWKSFile(t *testing.T) {
	path := writeFile(t, t.TempDir(), "jwks.json", []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`))
	s := New(Config{Addr: "127.0.0.1:0", OIDC: []OIDCIssuer{{Prefix: "p", Issuer: "i", JWKSFile: path}}}, Deps{})
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "unsupported key type") {
		t.Fatalf("Start = %v, want a JWKS error", err)
	}
}

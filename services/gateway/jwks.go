package gateway

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dittonode/dittonode/ditto"
)

// JWKS fetching and caching.
const (
	// jwksMaxBytes bounds a JWKS document.
	jwksMaxBytes = 1 << 20
	// jwksFetchTimeout bounds one fetch of a JWKS URL.
	jwksFetchTimeout = 5 * time.Second
	// jwksMinRefresh is the least time between two loads of one key set:
	// a token with an unknown kid triggers a reload at most this often.
	jwksMinRefresh = 30 * time.Second
	// jwksMaxAge is how long loaded keys are used before they are reloaded
	// (lazily, by the next token).
	jwksMaxAge = time.Hour
	// minRSABits is the smallest RSA modulus accepted.
	minRSABits = 2048
)

// Signature algorithms accepted per key type.
var (
	rsaAlgs   = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	curveAlgs = map[string]string{"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
	// jwtAlgs is every algorithm the parser accepts; never "none" or HMAC.
	jwtAlgs = append(append([]string{}, rsaAlgs...), "ES256", "ES384", "ES512", "EdDSA")
)

// jwk is one usable verification key of a JWKS.
type jwk struct {
	kid  string
	key  crypto.PublicKey
	algs []string // algorithms this key verifies (narrowed by the JWK's "alg")
}

// rawJWK is the JSON of a JWK (RFC 7517/7518/8037), public members only.
type rawJWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS parses a JWK set. Keys that are not for signatures, of an
// unsupported type or malformed are skipped; a set without any usable key
// is an error (the first problem is reported).
func parseJWKS(b []byte) ([]jwk, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	var keys []jwk
	var firstErr error
	for i, raw := range doc.Keys {
		var r rawJWK
		if err := json.Unmarshal(raw, &r); err != nil {
			firstErr = cmpErr(firstErr, fmt.Errorf("jwks key %d: %w", i, err))
			continue
		}
		k, err := r.parse()
		if err != nil {
			firstErr = cmpErr(firstErr, fmt.Errorf("jwks key %d (kid %q): %w", i, r.Kid, err))
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		if firstErr != nil {
			return nil, firstErr
		}
		return nil, errors.New("jwks: no keys")
	}
	return keys, nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func (r rawJWK) parse() (jwk, error) {
	if r.Use != "" && r.Use != "sig" {
		return jwk{}, fmt.Errorf("use %q is not sig", r.Use)
	}
	k := jwk{kid: r.Kid}
	switch r.Kty {
	case "RSA":
		n, err := b64Int(r.N)
		if err != nil {
			return jwk{}, fmt.Errorf("n: %w", err)
		}
		e, err := b64Int(r.E)
		if err != nil {
			return jwk{}, fmt.Errorf("e: %w", err)
		}
		if n.BitLen() < minRSABits {
			return jwk{}, fmt.Errorf("RSA modulus of %d bits is below %d", n.BitLen(), minRSABits)
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return jwk{}, errors.New("invalid RSA exponent")
		}
		k.key = &rsa.PublicKey{N: n, E: int(e.Int64())}
		k.algs = rsaAlgs
	case "EC":
		alg, ok := curveAlgs[r.Crv]
		if !ok {
			return jwk{}, fmt.Errorf("unsupported curve %q", r.Crv)
		}
		curve := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}[r.Crv]
		size := (curve.Params().BitSize + 7) / 8
		x, err1 := b64Bytes(r.X)
		y, err2 := b64Bytes(r.Y)
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return jwk{}, errors.New("invalid EC coordinates")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return jwk{}, fmt.Errorf("EC key: %w", err)
		}
		k.key = pub
		k.algs = []string{alg}
	case "OKP":
		if r.Crv != "Ed25519" {
			return jwk{}, fmt.Errorf("unsupported OKP curve %q", r.Crv)
		}
		x, err := b64Bytes(r.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return jwk{}, errors.New("invalid Ed25519 key")
		}
		k.key = ed25519.PublicKey(x)
		k.algs = []string{"EdDSA"}
	default:
		return jwk{}, fmt.Errorf("unsupported key type %q", r.Kty)
	}
	if r.Alg != "" {
		alg := r.Alg
		if alg == "Ed25519" {
			alg = "EdDSA"
		}
		if !slices.Contains(k.algs, alg) {
			return jwk{}, fmt.Errorf("alg %q does not fit key type %s", r.Alg, r.Kty)
		}
		k.algs = []string{alg}
	}
	return k, nil
}

func b64Bytes(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func b64Int(s string) (*big.Int, error) {
	b, err := b64Bytes(s)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, errors.New("empty")
	}
	return new(big.Int).SetBytes(b), nil
}

// keySet is the cached keys of one issuer, loaded from a file or a URL. It
// loads lazily on first use, reloads when a token names an unknown kid or
// the keys are older than jwksMaxAge, and never reloads more often than
// jwksMinRefresh. When a reload fails the previous keys stay in use.
type keySet struct {
	src   string // file path or URL (for messages)
	load  func(ctx context.Context) ([]byte, error)
	clock func() time.Time
	log   *slog.Logger

	fetchMu sync.Mutex // serializes loads

	mu        sync.Mutex
	keys      []jwk
	loadedAt  time.Time
	attempted time.Time // last load attempt, successful or not
	lastErr   error
	gen       uint64 // incremented by every load attempt
}

func newFileKeySet(path string, clock func() time.Time, log *slog.Logger) *keySet {
	return &keySet{src: path, clock: clock, log: log, load: func(context.Context) ([]byte, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readLimited(f)
	}}
}

func newURLKeySet(rawURL string, client *http.Client, clock func() time.Time, log *slog.Logger) *keySet {
	return &keySet{src: rawURL, clock: clock, log: log, load: func(ctx context.Context) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json, application/jwk-set+json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: status %d", rawURL, resp.StatusCode)
		}
		return readLimited(resp.Body)
	}}
}

func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, jwksMaxBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > jwksMaxBytes {
		return nil, fmt.Errorf("jwks larger than %d bytes", jwksMaxBytes)
	}
	return b, nil
}

// newJWKSClient is the bounded HTTP client for JWKS URLs. Redirects must
// stay on allowed URLs (https, or http on loopback). Keep-alives are off:
// fetches are rare and no idle connection outlives the gateway.
func newJWKSClient() *http.Client {
	tr := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DisableKeepAlives:      true,
		TLSHandshakeTimeout:    jwksFetchTimeout,
		ResponseHeaderTimeout:  jwksFetchTimeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   jwksFetchTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			return checkJWKSURL(req.URL)
		},
	}
}

// checkJWKSURL allows https URLs and http URLs on a loopback host.
func checkJWKSURL(u *url.URL) error {
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			return fmt.Errorf("jwks URL %q has no host", u.Redacted())
		}
		return nil
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("jwks URL %q: plain http is only allowed on loopback; use https", u.Redacted())
	}
	return fmt.Errorf("jwks URL %q: scheme must be https (or http on loopback)", u.Redacted())
}

// verificationKey returns the key (or key set, when the token has no kid)
// for a token's kid and alg. Unknown kids trigger a rate-limited reload.
func (ks *keySet) verificationKey(ctx context.Context, kid, alg string) (any, *ditto.Error) {
	now := ks.clock()
	ks.mu.Lock()
	found := ks.find(kid, alg)
	stale := ks.keys == nil || now.Sub(ks.loadedAt) >= jwksMaxAge
	gen := ks.gen
	ks.mu.Unlock()
	if len(found) > 0 && !stale {
		return keyOrSet(found), nil
	}
	ks.refresh(ctx, gen)
	ks.mu.Lock()
	found = ks.find(kid, alg)
	loaded := ks.keys != nil
	ks.mu.Unlock()
	switch {
	case len(found) > 0:
		return keyOrSet(found), nil
	case !loaded:
		return nil, ditto.ErrAuthProviderUnavailable.New("The keys of the JWT issuer could not be loaded.")
	case kid != "" && ks.hasKid(kid):
		return nil, ditto.ErrJWTInvalid.New("The key '%s' of the issuer does not verify the JWT's algorithm '%s'.", kid, alg)
	case kid != "":
		return nil, ditto.ErrJWTInvalid.New("The JWT was signed with the unknown key '%s'.", kid)
	}
	return nil, ditto.ErrJWTInvalid.New("The issuer has no key for the JWT's algorithm '%s'.", alg)
}

func keyOrSet(keys []crypto.PublicKey) any {
	if len(keys) == 1 {
		return keys[0]
	}
	set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(keys))}
	for i, k := range keys {
		set.Keys[i] = k
	}
	return set
}

// find returns the keys matching kid (any key when kid is "") that verify
// alg. Callers hold mu.
func (ks *keySet) find(kid, alg string) []crypto.PublicKey {
	var out []crypto.PublicKey
	for _, k := range ks.keys {
		if (kid == "" || k.kid == kid) && slices.Contains(k.algs, alg) {
			out = append(out, k.key)
		}
	}
	return out
}

func (ks *keySet) hasKid(kid string) bool {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return slices.ContainsFunc(ks.keys, func(k jwk) bool { return k.kid == kid })
}

// refresh reloads the keys unless another caller did so since gen was read
// or the last attempt is more recent than jwksMinRefresh.
func (ks *keySet) refresh(ctx context.Context, gen uint64) {
	ks.fetchMu.Lock()
	defer ks.fetchMu.Unlock()
	now := ks.clock()
	ks.mu.Lock()
	if ks.gen != gen || (!ks.attempted.IsZero() && now.Sub(ks.attempted) < jwksMinRefresh) {
		ks.mu.Unlock()
		return
	}
	ks.attempted = now
	ks.mu.Unlock()

	b, err := ks.load(ctx)
	var keys []jwk
	if err == nil {
		keys, err = parseJWKS(b)
	}
	ks.mu.Lock()
	ks.gen++
	ks.lastErr = err
	if err == nil {
		ks.keys = keys
		ks.loadedAt = now
	}
	ks.mu.Unlock()
	if err != nil {
		ks.log.Warn("gateway: loading JWKS failed", logKeyJWKS, ks.src, logKeyError, err)
	}
}

// preload loads the keys once (at Start) and reports a failure.
func (ks *keySet) preload(ctx context.Context) error {
	ks.mu.Lock()
	gen := ks.gen
	ks.mu.Unlock()
	ks.refresh(ctx, gen)
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.keys == nil {
		return fmt.Errorf("gateway: jwks %s: %w", ks.src, ks.lastErr)
	}
	return nil
}

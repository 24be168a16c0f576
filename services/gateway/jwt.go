package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dittonode/dittonode/ditto"
)

// jwtClockSkew is the leeway for exp and nbf, as Ditto's default.
const jwtClockSkew = 10 * time.Second

// defaultAuthSubject is the auth-subjects template used when none is set.
const defaultAuthSubject = "{{ jwt:sub }}"

// accessTokenParam carries the JWT of WebSocket and SSE requests from
// browsers, which cannot set an Authorization header there.
const accessTokenParam = "access_token"

const logKeyJWKS = "jwks"

// OIDCIssuer is one trusted OpenID Connect issuer (Ditto's
// oauth.openid-connect-issuers entry).
type OIDCIssuer struct {
	// Prefix is the subject issuer: subjects are "<prefix>:<value>" (e.g.
	// "google" gives "google:<sub>").
	Prefix string `json:"prefix" yaml:"prefix"`
	// Issuer is the "iss" claim of this issuer's tokens. As in Ditto it is
	// compared without the scheme (and without a trailing slash), so
	// "accounts.google.com" matches "https://accounts.google.com".
	Issuer string `json:"issuer" yaml:"issuer"`
	// JWKSFile is a file holding the issuer's JWK set. Exactly one of
	// JWKSFile and JWKSURL is set.
	JWKSFile string `json:"jwksFile" yaml:"jwksFile"`
	// JWKSURL is where the issuer publishes its JWK set: https, or http on
	// a loopback address.
	JWKSURL string `json:"jwksURL" yaml:"jwksURL"`
	// Audience, when set, must be one of the token's "aud" values.
	Audience string `json:"audience" yaml:"audience"`
	// AuthSubjects are the subject templates (default "{{ jwt:sub }}"):
	// {{ jwt:<claim-pointer> }} with the functions fn:default, fn:lower,
	// fn:upper, fn:split, fn:substring-before, fn:substring-after,
	// fn:replace, fn:filter and fn:delete. Unresolvable templates are
	// skipped; array claims and fn:split give several subjects.
	AuthSubjects []string `json:"authSubjects" yaml:"authSubjects"`
	// PrerequisiteConditions are templates that must all resolve for a
	// token to be accepted (e.g. "{{ jwt:aud | fn:filter('eq','app') }}").
	PrerequisiteConditions []string `json:"prerequisiteConditions" yaml:"prerequisiteConditions"`
}

var subjectPrefixRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// validate checks one issuer; templates are compiled to report errors.
func (o OIDCIssuer) validate() error {
	var errs []error
	if !subjectPrefixRE.MatchString(o.Prefix) {
		errs = append(errs, fmt.Errorf("prefix %q must match %s", o.Prefix, subjectPrefixRE))
	}
	if normalizeIssuer(o.Issuer) == "" {
		errs = append(errs, errors.New("issuer must be set"))
	}
	switch {
	case (o.JWKSFile == "") == (o.JWKSURL == ""):
		errs = append(errs, errors.New("exactly one of jwksFile and jwksURL must be set"))
	case o.JWKSURL != "":
		u, err := url.Parse(o.JWKSURL)
		if err != nil {
			errs = append(errs, fmt.Errorf("jwksURL: %w", err))
		} else if err := checkJWKSURL(u); err != nil {
			errs = append(errs, err)
		}
	}
	if _, _, err := compileTemplates(o); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func compileTemplates(o OIDCIssuer) (subjects, conditions []*subjectTemplate, err error) {
	srcs := o.AuthSubjects
	if len(srcs) == 0 {
		srcs = []string{defaultAuthSubject}
	}
	for _, src := range srcs {
		t, err := parseSubjectTemplate(src)
		if err != nil {
			return nil, nil, fmt.Errorf("auth subject: %w", err)
		}
		subjects = append(subjects, t)
	}
	for _, src := range o.PrerequisiteConditions {
		t, err := parseSubjectTemplate(src)
		if err != nil {
			return nil, nil, fmt.Errorf("prerequisite condition: %w", err)
		}
		conditions = append(conditions, t)
	}
	return subjects, conditions, nil
}

// validateOIDC checks every issuer and that no two share an issuer.
func validateOIDC(issuers []OIDCIssuer) error {
	var errs []error
	seen := map[string]bool{}
	for i, o := range issuers {
		if err := o.validate(); err != nil {
			errs = append(errs, fmt.Errorf("gateway: oidc issuer %d (%s): %w", i, o.Prefix, err))
		}
		n := normalizeIssuer(o.Issuer)
		if n != "" && seen[n] {
			errs = append(errs, fmt.Errorf("gateway: oidc issuer %q is configured twice", o.Issuer))
		}
		seen[n] = true
	}
	return errors.Join(errs...)
}

// normalizeIssuer strips the scheme and a trailing slash.
func normalizeIssuer(iss string) string {
	iss = strings.TrimSpace(iss)
	if i := strings.Index(iss, "://"); i >= 0 {
		iss = iss[i+3:]
	}
	return strings.TrimSuffix(iss, "/")
}

// oidcIssuer is a configured issuer, compiled.
type oidcIssuer struct {
	cfg        OIDCIssuer
	subjects   []*subjectTemplate
	conditions []*subjectTemplate
	keys       *keySet
}

// jwtAuth authenticates "Authorization: Bearer <jwt>" (and access_token on
// WebSocket and SSE requests) against the configured issuers.
type jwtAuth struct {
	issuers map[string]*oidcIssuer // by normalized issuer
	clock   func() time.Time
}

// newJWTAuth compiles the issuers. Issuers that fail to compile are left
// out and reported in the error (Config.Validate reports them earlier).
func newJWTAuth(cfgs []OIDCIssuer, clock func() time.Time, log *slog.Logger) (*jwtAuth, error) {
	j := &jwtAuth{issuers: make(map[string]*oidcIssuer, len(cfgs)), clock: clock}
	client := newJWKSClient()
	var errs []error
	for _, c := range cfgs {
		subjects, conditions, err := compileTemplates(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("gateway: oidc issuer %s: %w", c.Prefix, err))
			continue
		}
		iss := &oidcIssuer{cfg: c, subjects: subjects, conditions: conditions}
		if c.JWKSFile != "" {
			iss.keys = newFileKeySet(c.JWKSFile, clock, log)
		} else {
			iss.keys = newURLKeySet(c.JWKSURL, client, clock, log)
		}
		j.issuers[normalizeIssuer(c.Issuer)] = iss
	}
	return j, errors.Join(errs...)
}

// preload loads the JWKS files, so that a broken file fails start-up.
// URLs are fetched on first use: the issuer may not be reachable yet.
func (j *jwtAuth) preload(ctx context.Context) error {
	var errs []error
	for _, iss := range j.issuers {
		if iss.cfg.JWKSFile != "" {
			errs = append(errs, iss.keys.preload(ctx))
		}
	}
	return errors.Join(errs...)
}

// authenticate implements mechanism.
func (j *jwtAuth) authenticate(r *http.Request) ([]string, bool, *ditto.Error) {
	subjects, _, applies, derr := j.authenticateUntil(r)
	return subjects, applies, derr
}

// authenticateUntil implements expiringMechanism: the subjects and the
// token's expiry.
func (j *jwtAuth) authenticateUntil(r *http.Request) ([]string, time.Time, bool, *ditto.Error) {
	token, applies, derr := bearerToken(r)
	if !applies || derr != nil {
		return nil, time.Time{}, applies, derr
	}
	auth, exp, derr := j.verify(r.Context(), token)
	if derr != nil {
		return nil, time.Time{}, true, derr
	}
	return auth.Subjects, exp, true, nil
}

// bearerToken extracts the JWT of a request: the Authorization Bearer
// header, or the access_token query parameter on WebSocket and SSE
// requests only.
func bearerToken(r *http.Request) (string, bool, *ditto.Error) {
	if authz := r.Header.Get("Authorization"); authz != "" {
		if len(authz) < 7 || !strings.EqualFold(authz[:7], "bearer ") {
			return "", false, nil
		}
		token := strings.TrimSpace(authz[7:])
		if token == "" {
			return "", true, ditto.ErrJWTInvalid.New("The Authorization header carries an empty Bearer token.")
		}
		return token, true, nil
	}
	if !strings.Contains(r.URL.RawQuery, accessTokenParam) {
		return "", false, nil
	}
	q := r.URL.Query()
	if !q.Has(accessTokenParam) {
		return "", false, nil
	}
	if !streamRequest(r, q) {
		return "", true, ditto.ErrAuthFailed.New("The query parameter '%s' is only accepted for WebSocket and SSE requests; send 'Authorization: Bearer <JWT>' instead.", accessTokenParam)
	}
	token := q.Get(accessTokenParam)
	if token == "" {
		return "", true, ditto.ErrJWTInvalid.New("The query parameter '%s' is empty.", accessTokenParam)
	}
	return token, true, nil
}

// streamRequest reports whether r opens a WebSocket (/ws/2) or an SSE
// stream (GET with Accept: text/event-stream, as header or query param).
func streamRequest(r *http.Request, q url.Values) bool {
	if r.URL.Path == wsPath {
		return true
	}
	if r.Method != http.MethodGet {
		return false
	}
	for _, accept := range append(r.Header.Values("Accept"), q["accept"]...) {
		for part := range strings.SplitSeq(accept, ",") {
			if mediaType(part) == "text/event-stream" {
				return true
			}
		}
	}
	return false
}

// authenticateToken validates a JWT (e.g. from the WebSocket JWT-TOKEN
// message) and returns the requester and the token's expiry.
func (s *Server) authenticateToken(token string) (ditto.Auth, time.Time, error) {
	if s.jwt == nil || len(s.jwt.issuers) == 0 {
		return ditto.Auth{}, time.Time{}, ditto.ErrJWTIssuerNotSupported.New("No JWT issuer is configured.")
	}
	auth, exp, derr := s.jwt.verify(context.Background(), token)
	if derr != nil {
		return ditto.Auth{}, time.Time{}, derr
	}
	return auth, exp, nil
}

// verify checks the token's signature against its issuer's keys, its
// expiry (required) and not-before with 10 s of skew, the audience and the
// prerequisite conditions, and builds the subjects from the templates.
func (j *jwtAuth) verify(ctx context.Context, token string) (ditto.Auth, time.Time, *ditto.Error) {
	var iss *oidcIssuer
	var keyErr *ditto.Error
	claims := jwt.MapClaims{}
	parser := jwt.NewParser(
		jwt.WithValidMethods(jwtAlgs),
		jwt.WithLeeway(jwtClockSkew),
		jwt.WithTimeFunc(j.clock),
		jwt.WithExpirationRequired(),
		jwt.WithJSONNumber(),
	)
	_, err := parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		issuer, _ := claims["iss"].(string)
		iss = j.issuers[normalizeIssuer(issuer)]
		if iss == nil || issuer == "" {
			keyErr = ditto.ErrJWTIssuerNotSupported.New("The JWT issuer '%s' is not supported.", issuer)
			return nil, keyErr
		}
		kid, _ := t.Header["kid"].(string)
		key, derr := iss.keys.verificationKey(ctx, kid, t.Method.Alg())
		if derr != nil {
			keyErr = derr
			return nil, derr
		}
		return key, nil
	})
	if keyErr != nil {
		return ditto.Auth{}, time.Time{}, keyErr
	}
	if err != nil {
		return ditto.Auth{}, time.Time{}, jwtError(err)
	}
	if aud := iss.cfg.Audience; aud != "" {
		auds, _ := claims.GetAudience()
		if !slices.Contains(auds, aud) {
			return ditto.Auth{}, time.Time{}, ditto.ErrJWTInvalid.New("The JWT is not issued for the audience '%s'.", aud)
		}
	}
	for _, c := range iss.conditions {
		if len(c.resolve(claims, 1)) == 0 {
			return ditto.Auth{}, time.Time{}, ditto.ErrJWTConditionFailed.New("The JWT did not meet the prerequisite condition '%s'.", c.src)
		}
	}
	subjects, derr := iss.subjectsOf(claims)
	if derr != nil {
		return ditto.Auth{}, time.Time{}, derr
	}
	exp, _ := claims.GetExpirationTime() // required: present after Parse
	return ditto.Auth{Subjects: subjects}, exp.Time, nil
}

// subjectsOf evaluates the auth-subject templates: "<prefix>:<value>" for
// every value, in template order, without duplicates.
func (iss *oidcIssuer) subjectsOf(claims map[string]any) ([]string, *ditto.Error) {
	var subjects []string
	seen := map[string]bool{}
	for _, t := range iss.subjects {
		for _, v := range t.resolve(claims, maxSubjects+1) {
			sub := iss.cfg.Prefix + ":" + v
			if seen[sub] || hasControl(sub) {
				continue
			}
			seen[sub] = true
			subjects = append(subjects, sub)
			if len(subjects) > maxSubjects {
				return nil, ditto.ErrSubjectsTooLarge.New("The JWT yields more than %d authorization subjects.", maxSubjects)
			}
		}
	}
	if len(subjects) == 0 {
		return nil, ditto.ErrJWTInvalid.New("The JWT yields no authorization subject: none of the configured auth subjects could be resolved.")
	}
	return subjects[:len(subjects):len(subjects)], nil
}

// jwtError maps a parser error to gateway:jwt.invalid with a message that
// says what was wrong.
func jwtError(err error) *ditto.Error {
	msg := "The JWT could not be verified."
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		msg = "The JWT is malformed."
	case errors.Is(err, jwt.ErrTokenExpired):
		msg = "The JWT has expired."
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		msg = "The JWT is not valid yet."
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		msg = "The JWT lacks a required claim (exp)."
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		msg = "The signature of the JWT is invalid or its algorithm is not accepted."
	}
	return ditto.ErrJWTInvalid.New("%s", msg)
}

// challenge is the WWW-Authenticate value of a 401: Bearer with
// invalid_token (RFC 6750) when a JWT was rejected, else the schemes the
// gateway accepts.
func (s *Server) challenge(e *ditto.Error) []string {
	if strings.HasPrefix(e.Code, "gateway:jwt.") {
		return hdrBearerInvalid
	}
	if s.jwt != nil {
		return hdrBasicBearer
	}
	return hdrBasicRealm
}

var (
	hdrBearerInvalid = []string{`Bearer realm="dittonode", error="invalid_token"`}
	hdrBasicBearer   = []string{`Basic realm="dittonode"`, `Bearer realm="dittonode"`}
)

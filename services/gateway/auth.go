package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// HeaderPreAuthenticated carries the subject a trusted proxy authenticated.
const HeaderPreAuthenticated = "x-ditto-pre-authenticated"

// basicSubjectPrefix makes basic users look like Ditto's nginx users.
const basicSubjectPrefix = "nginx:"

// mechanism is one way to authenticate a request. applies is false when the
// request carries no credentials for it; then the next mechanism is tried.
// When it applies, err reports failed credentials. The returned subjects
// must not be modified by the caller.
type mechanism interface {
	authenticate(r *http.Request) (subjects []string, applies bool, err *ditto.Error)
}

// expiringMechanism is a mechanism whose credentials expire (JWT): it also
// returns the expiry, which ends WebSocket sessions.
type expiringMechanism interface {
	authenticateUntil(r *http.Request) (subjects []string, expiry time.Time, applies bool, err *ditto.Error)
}

// authenticate runs the mechanisms in order; the first that applies decides.
func (s *Server) authenticate(r *http.Request) (ditto.Auth, *ditto.Error) {
	auth, _, err := s.authenticateUntil(r)
	return auth, err
}

// authenticateUntil is authenticate plus the expiry of the credentials
// that decided (zero for credentials that do not expire: basic, pre-auth).
func (s *Server) authenticateUntil(r *http.Request) (ditto.Auth, time.Time, *ditto.Error) {
	for _, m := range s.mechanisms {
		var (
			subjects []string
			expiry   time.Time
			applies  bool
			err      *ditto.Error
		)
		if em, ok := m.(expiringMechanism); ok {
			subjects, expiry, applies, err = em.authenticateUntil(r)
		} else {
			subjects, applies, err = m.authenticate(r)
		}
		if !applies {
			continue
		}
		if err != nil {
			return ditto.Auth{}, time.Time{}, err
		}
		return ditto.Auth{Subjects: subjects}, expiry, nil
	}
	return ditto.Auth{}, time.Time{}, ditto.ErrAuthFailed.New("Unauthorized: the request carries no supported credentials.")
}

// preAuth accepts the subjects a trusted proxy put into
// x-ditto-pre-authenticated: "<issuer>:<subject>", several separated by
// commas (at most 100).
type preAuth struct{}

func (preAuth) authenticate(r *http.Request) ([]string, bool, *ditto.Error) {
	vs := r.Header.Values(HeaderPreAuthenticated)
	if len(vs) == 0 {
		return nil, false, nil
	}
	var subjects []string
	for _, v := range vs {
		for part := range strings.SplitSeq(v, ",") {
			sub := strings.TrimSpace(part)
			if i := strings.IndexByte(sub, ':'); i <= 0 || i == len(sub)-1 || hasControl(sub) {
				return nil, true, ditto.ErrAuthFailed.New("The pre-authenticated subject '%s' is not of the form '<issuer>:<subject>'.", sub)
			}
			subjects = append(subjects, sub)
			if len(subjects) > maxSubjects {
				return nil, true, ditto.ErrSubjectsTooLarge.New("The request carries more than %d authorization subjects.", maxSubjects)
			}
		}
	}
	return subjects[:len(subjects):len(subjects)], true, nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7F {
			return true
		}
	}
	return false
}

// basicAuth checks HTTP basic credentials against the configured users in
// constant time (the password is compared as a SHA-256 digest, and unknown
// users are compared against a dummy digest).
type basicAuth struct {
	users map[string]basicUser
	dummy [sha256.Size]byte
}

type basicUser struct {
	digest   [sha256.Size]byte
	subjects []string // full slice: appending copies
}

func newBasicAuth(users map[string]string) *basicAuth {
	b := &basicAuth{users: make(map[string]basicUser, len(users)), dummy: sha256.Sum256([]byte("dittonode-no-such-user"))}
	for name, pw := range users {
		subjects := []string{basicSubjectPrefix + name}
		b.users[name] = basicUser{digest: sha256.Sum256([]byte(pw)), subjects: subjects[:1:1]}
	}
	return b
}

func (b *basicAuth) authenticate(r *http.Request) ([]string, bool, *ditto.Error) {
	authz := r.Header.Get("Authorization")
	if len(authz) < 6 || !strings.EqualFold(authz[:6], "basic ") {
		return nil, false, nil
	}
	name, pw, ok := r.BasicAuth()
	if !ok {
		return nil, true, ditto.ErrAuthFailed.New("Unauthorized: the basic credentials are malformed.")
	}
	u, known := b.users[name]
	want := b.dummy
	if known {
		want = u.digest
	}
	got := sha256.Sum256([]byte(pw))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || !known {
		return nil, true, ditto.ErrAuthFailed.New("Unauthorized: the user name or password is wrong.")
	}
	return u.subjects, true, nil
}

package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/dittonode/dittonode/ditto"
)

// wsFrames reads a connection's frames into a channel until it fails; the
// read error (the close) is the last item.
type wsFrames struct {
	conn   *websocket.Conn
	frames chan string
	err    chan error
}

func readFrames(t *testing.T, conn *websocket.Conn) *wsFrames {
	t.Helper()
	f := &wsFrames{conn: conn, frames: make(chan string, 64), err: make(chan error, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, b, err := conn.Read(context.Background())
			if err != nil {
				f.err <- err
				return
			}
			f.frames <- string(b)
		}
	}()
	t.Cleanup(func() {
		_ = conn.CloseNow()
		<-done
	})
	return f
}

// next returns the next frame, failing after 10 s or when the session ends.
func (f *wsFrames) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-f.frames:
		return s
	case err := <-f.err:
		t.Fatalf("session ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no frame within 10s")
	}
	return ""
}

// closed waits for the end of the session and returns its close status.
func (f *wsFrames) closed(t *testing.T, within time.Duration) websocket.CloseError {
	t.Helper()
	for {
		select {
		case s := <-f.frames:
			t.Logf("frame before close: %s", s)
		case err := <-f.err:
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("session ended without a close frame: %v", err)
			}
			return ce
		case <-time.After(within):
			t.Fatalf("session still open after %s", within)
		}
	}
}

func dialJWT(t *testing.T, env *testEnv, token string, asQuery bool) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(env.base, "http") + wsPath
	opts := &websocket.DialOptions{HTTPHeader: http.Header{}}
	if asQuery {
		u += "?access_token=" + url.QueryEscape(token)
	} else {
		opts.HTTPHeader.Set("Authorization", "Bearer "+token)
	}
	conn, resp, err := websocket.Dial(ctx, u, opts)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	return conn
}

func wsToken(t *testing.T, sub string, exp time.Time) string {
	t.Helper()
	k := mustTestKeys(t)
	return mint(t, jwt.SigningMethodRS256, k.rsa, kidRSA, jwt.MapClaims{"iss": testIssuer, "sub": sub, "exp": exp.Unix()})
}

// TestWSJWTExpiry: a session authenticated with a JWT (Authorization header
// or access_token) closes with 1008 when the JWT expires; a JWT-TOKEN for
// another subject is refused and does not extend the session.
func TestWSJWTExpiry(t *testing.T) {
	env := oidcServer(t, nil, nil)
	for _, asQuery := range []bool{false, true} {
		name := "bearer"
		if asQuery {
			name = "access_token"
		}
		t.Run(name, func(t *testing.T) {
			exp := time.Now().Add(2 * time.Second).Truncate(time.Second)
			f := readFrames(t, dialJWT(t, env, wsToken(t, "alice", exp), asQuery))
			if err := f.conn.Write(t.Context(), websocket.MessageText, []byte("JWT-TOKEN?jwtToken="+wsToken(t, "mallory", time.Now().Add(time.Hour)))); err != nil {
				t.Fatal(err)
			}
			reply, err := ditto.DecodeEnvelope([]byte(f.next(t)))
			if err != nil || reply.Status != http.StatusUnauthorized {
				t.Fatalf("JWT-TOKEN of another subject: %+v %v", reply, err)
			}
			ce := f.closed(t, 10*time.Second)
			if ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, "expired") {
				t.Errorf("close %d %q, want 1008 with an expiry reason", ce.Code, ce.Reason)
			}
			if early := time.Until(exp); early > 50*time.Millisecond {
				t.Errorf("closed %s before the JWT expired", early)
			}
		})
	}
}

// TestWSJWTRefresh: JWT-TOKEN with a later expiry keeps the session open
// past the first token's expiry, and the session ends at the new one.
func TestWSJWTRefresh(t *testing.T) {
	env := oidcServer(t, nil, nil)
	first := time.Now().Add(2 * time.Second).Truncate(time.Second)
	f := readFrames(t, dialJWT(t, env, wsToken(t, "alice", first), false))
	second := first.Add(2 * time.Second)
	if err := f.conn.Write(t.Context(), websocket.MessageText, []byte("JWT-TOKEN?jwtToken="+wsToken(t, "alice", second))); err != nil {
		t.Fatal(err)
	}
	// The refresh is silent; a control frame's ACK shows it was handled.
	if err := f.conn.Write(t.Context(), websocket.MessageText, []byte("STOP-SEND-EVENTS")); err != nil {
		t.Fatal(err)
	}
	if got := f.next(t); got != "STOP-SEND-EVENTS:ACK" {
		t.Fatalf("reply %q", got)
	}
	// Past the first expiry the session still answers.
	select {
	case err := <-f.err:
		t.Fatalf("session ended at the first JWT's expiry: %v", err)
	case s := <-f.frames:
		t.Fatalf("unexpected frame %s", s)
	case <-time.After(time.Until(first) + 300*time.Millisecond):
	}
	if err := f.conn.Write(t.Context(), websocket.MessageText, []byte("STOP-SEND-EVENTS")); err != nil {
		t.Fatal(err)
	}
	if got := f.next(t); got != "STOP-SEND-EVENTS:ACK" {
		t.Fatalf("reply after the first expiry %q", got)
	}
	ce := f.closed(t, 10*time.Second)
	if ce.Code != websocket.StatusPolicyViolation || time.Until(second) > 50*time.Millisecond {
		t.Errorf("close %d %q %s before the second expiry", ce.Code, ce.Reason, time.Until(second))
	}
}

// TestWSBasicNoExpiry: a basic-auth session has no expiry.
func TestWSBasicNoExpiry(t *testing.T) {
	env := oidcServer(t, nil, nil)
	req, _ := http.NewRequest(http.MethodGet, env.base+wsPath, nil)
	req.SetBasicAuth(testUser, testPass)
	auth, exp, derr := env.srv.authenticateUntil(req)
	if derr != nil || len(auth.Subjects) == 0 || !exp.IsZero() {
		t.Fatalf("basic: %v %v %v", auth, exp, derr)
	}
	want := time.Now().Add(time.Hour).Truncate(time.Second)
	req.Header.Set("Authorization", "Bearer "+wsToken(t, "alice", want))
	auth, exp, derr = env.srv.authenticateUntil(req)
	if derr != nil || auth.Default() != "test:alice" || !exp.Equal(want) {
		t.Fatalf("bearer: %v %v %v", auth, exp, derr)
	}
}

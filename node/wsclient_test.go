package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dittonode/dittonode/ditto"
)

// wsClient is a real WebSocket client of /ws/2: a reader goroutine queues
// the frames it receives until the connection ends.
type wsClient struct {
	t      testing.TB
	conn   *websocket.Conn
	frames chan []byte
	end    chan error // the read error that ended the session
}

// dialWS opens /ws/2 as a basic-auth user (query: "?declared-acks=…").
func dialWS(t testing.TB, n *Node, user, query string) *wsClient {
	t.Helper()
	c := &wsClient{t: t, conn: dialRawWS(t, n, user, query), frames: make(chan []byte, 4096), end: make(chan error, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, b, err := c.conn.Read(context.Background())
			if err != nil {
				c.end <- err
				return
			}
			c.frames <- b
		}
	}()
	t.Cleanup(func() {
		_ = c.conn.CloseNow()
		<-done
	})
	return c
}

// dialRawWS opens /ws/2 without reading from it.
func dialRawWS(t testing.TB, n *Node, user, query string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequest(http.MethodGet, "http://x", nil)
	req.SetBasicAuth(user, user)
	h := http.Header{"Authorization": {req.Header.Get("Authorization")}}
	conn, resp, err := websocket.Dial(ctx, "ws://"+n.HTTPAddr().String()+"/ws/2"+query, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial /ws/2 as %s: %v (status %d)", user, err, status)
	}
	conn.SetReadLimit(1 << 24)
	t.Cleanup(func() { _ = conn.CloseNow() })
	return conn
}

func (c *wsClient) send(frame string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		c.t.Fatalf("write %.80q: %v", frame, err)
	}
}

// sendEnvelope sends a Ditto Protocol message.
func (c *wsClient) sendEnvelope(env ditto.Envelope) {
	c.t.Helper()
	c.send(string(ditto.EncodeEnvelope(env)))
}

// next returns the next frame, failing after 10 s or when the session ends.
func (c *wsClient) next() []byte {
	c.t.Helper()
	select {
	case b := <-c.frames:
		return b
	case err := <-c.end:
		c.t.Fatalf("session ended: %v", err)
	case <-time.After(10 * time.Second):
		c.t.Fatal("no frame within 10s")
	}
	return nil
}

// envelope returns the next frame as a Ditto Protocol message.
func (c *wsClient) envelope() ditto.Envelope {
	c.t.Helper()
	b := c.next()
	env, err := ditto.DecodeEnvelope(b)
	if err != nil {
		c.t.Fatalf("frame %.200q: %v", b, err)
	}
	return env
}

// start sends a START-SEND-* frame and waits for its ACK.
func (c *wsClient) start(frame string) {
	c.t.Helper()
	c.send(frame)
	name, _, _ := strings.Cut(frame, "?")
	if got := string(c.next()); got != name+":ACK" {
		c.t.Fatalf("reply to %q: %q", frame, got)
	}
}

// closed waits until the server ends the session and returns the close.
func (c *wsClient) closed(within time.Duration) websocket.CloseError {
	c.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case <-c.frames:
		case err := <-c.end:
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				c.t.Fatalf("session ended without a close frame: %v", err)
			}
			return ce
		case <-deadline:
			c.t.Fatalf("session still open after %s", within)
		}
	}
}

// decodeJSON decodes raw JSON for comparisons (numbers as float64).
func decodeJSON(t testing.TB, raw []byte) any {
	t.Helper()
	if len(raw) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("JSON %.200q: %v", raw, err)
	}
	return v
}

// wsWaitFor polls fn until it returns nil or d passes.
func wsWaitFor(t testing.TB, d time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", d, err)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

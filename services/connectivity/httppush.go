package connectivity

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// httpPushClient sends target signals as HTTP requests to the connection's
// URI; a target address is "VERB:/path". The headers http.path and
// http.query of a mapped message override path and query.
type httpPushClient struct {
	conn     *Connection
	base     *url.URL
	user     *url.Userinfo
	http     *http.Client
	tr       *http.Transport
	up       atomic.Bool
	maxReply int64
}

func newHTTPPushClient(c *Connection, _ *slog.Logger) (Client, error) {
	u, err := url.Parse(c.URI)
	if err != nil {
		return nil, err
	}
	user := u.User
	u.User = nil
	tc, err := tlsConfig(c, u)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		TLSClientConfig:     tc,
	}
	return &httpPushClient{conn: c, base: u, user: user, tr: tr, http: &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, maxReply: 64 << 10}, nil
}

// Connect checks that the endpoint accepts TCP connections (for https: TLS
// connections with the configured trust and client certificate).
func (h *httpPushClient) Connect(ctx context.Context) error {
	host := h.base.Host
	if h.base.Port() == "" {
		port := "80"
		if h.base.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(h.base.Hostname(), port)
	}
	var d interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	} = &net.Dialer{}
	if tc := h.tr.TLSClientConfig; tc != nil {
		// Check the server's certificate (and present ours) now, not at
		// the first event.
		d = &tls.Dialer{Config: tc}
	}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	_ = c.Close()
	h.up.Store(true)
	return nil
}

func (h *httpPushClient) Subscribe(context.Context, []string, int, Deliver) error {
	return fmt.Errorf("http-push connections have no sources")
}

func (h *httpPushClient) Publish(ctx context.Context, address string, _ int, msg External) error {
	method, path, err := parseHTTPAddress(address)
	if err != nil {
		return err
	}
	if p := msg.Headers["http.path"]; p != "" {
		path = "/" + strings.TrimPrefix(p, "/")
	}
	u := *h.base
	p, q, _ := strings.Cut(path, "?")
	u.Path = strings.TrimSuffix(u.Path, "/") + p
	u.RawQuery = q
	if v := msg.Headers["http.query"]; v != "" {
		u.RawQuery = v
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(msg.Payload))
	if err != nil {
		return err
	}
	for k, v := range msg.Headers {
		if strings.HasPrefix(k, "http.") || strings.HasPrefix(k, "mqtt.") {
			continue
		}
		req.Header.Set(k, v)
	}
	if msg.ContentType != "" {
		req.Header.Set("Content-Type", msg.ContentType)
	}
	if h.user != nil {
		pw, _ := h.user.Password()
		req.SetBasicAuth(h.user.Username(), pw)
	}
	resp, err := h.http.Do(req)
	if err != nil {
		h.up.Store(false)
		return err
	}
	h.up.Store(true)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, h.maxReply))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("http-push: %s %s answered %s", method, u.Redacted(), resp.Status)
	}
	return nil
}

func (h *httpPushClient) Connected() bool { return h.up.Load() }

func (h *httpPushClient) Close() error {
	h.tr.CloseIdleConnections()
	return nil
}

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"
)

// call is one request of the load: method, absolute URL and body (nil for
// none). Headers are the loader's: authorization, -header, and
// Content-Type: application/json when there is a body.
type call struct {
	method string
	url    string
	body   []byte
}

// doer sends calls and reports the response status; each implementation
// reuses keep-alive connections, up to -clients per target.
type doer interface {
	do(ctx context.Context, c call) (status int, err error)
	close()
}

// Client names for -client.
const (
	clientFast = "fast"
	clientStd  = "std"
)

// fastDoer is the default client: valyala/fasthttp, which reuses its
// request and response buffers, so the load tool spends as little of the
// machine's CPU as it can on each request and leaves the rest to the system
// under test. Responses are read whole (fixed length or chunked) and
// dropped.
type fastDoer struct {
	client  *fasthttp.Client
	headers []header // sent with every call
}

func newFastDoer(cfg config, dialer *net.Dialer, headers []header) *fastDoer {
	return &fastDoer{
		client: &fasthttp.Client{
			Dial:                          func(addr string) (net.Conn, error) { return dialer.Dial("tcp", addr) },
			MaxConnsPerHost:               cfg.clients,
			MaxIdleConnDuration:           90 * time.Second,
			ReadTimeout:                   cfg.timeout,
			WriteTimeout:                  cfg.timeout,
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: true,
			DisablePathNormalizing:        true,
			TLSConfig:                     &tls.Config{MinVersion: tls.VersionTLS12},
		},
		headers: headers,
	}
}

func (d *fastDoer) do(_ context.Context, c call) (int, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(c.url)
	req.Header.SetMethod(c.method)
	for _, h := range d.headers {
		req.Header.Add(h.name, h.value)
	}
	if c.body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(c.body)
	}
	resp.SkipBody = c.method == http.MethodHead
	// Do, not DoTimeout: the client's read and write timeouts bound the call
	// without a goroutine and a timer per request.
	if err := d.client.Do(req, resp); err != nil {
		return 0, err
	}
	return resp.StatusCode(), nil
}

func (d *fastDoer) close() { d.client.CloseIdleConnections() }

// stdDoer is net/http's client, for comparison with other Go clients.
type stdDoer struct {
	transport *http.Transport
	client    *http.Client
	header    http.Header // shared, read-only
	jsonHdr   http.Header // header plus Content-Type: application/json
}

func newStdDoer(cfg config, dialer *net.Dialer, headers []header) *stdDoer {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          cfg.clients * len(cfg.urls),
		MaxIdleConnsPerHost:   cfg.clients,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: cfg.timeout,
		DisableCompression:    true,
	}
	d := &stdDoer{transport: tr, header: http.Header{}, jsonHdr: http.Header{"Content-Type": {"application/json"}}}
	d.client = &http.Client{Transport: tr, Timeout: cfg.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, h := range headers {
		d.header.Add(h.name, h.value)
		d.jsonHdr.Add(h.name, h.value)
	}
	return d
}

// do sends c, drains and closes the body so the connection is reused. The
// body gets its own reader because the transport may still read it after
// Do has returned.
func (d *stdDoer) do(ctx context.Context, c call) (int, error) {
	var r io.Reader
	hdr := d.header
	if c.body != nil {
		r, hdr = bytes.NewReader(c.body), d.jsonHdr
	}
	req, err := http.NewRequestWithContext(ctx, c.method, c.url, r)
	if err != nil {
		return 0, err
	}
	req.Header = hdr
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	return resp.StatusCode, err
}

func (d *stdDoer) close() { d.transport.CloseIdleConnections() }

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// ErrNotLoopback is returned for any target or listen address outside
// 127.0.0.0/8, ::1 and localhost.
var ErrNotLoopback = errors.New("only loopback targets are allowed (127.0.0.0/8, ::1, localhost)")

var errHelpShown = errors.New("help shown")

// config is one command's parsed flags.
type config struct {
	mode     string
	url      string
	user     string
	things   int
	clients  int
	duration time.Duration
	timeout  time.Duration
	rate     float64
	prepare  bool
	json     bool
	listen   string
	filter   string
	option   string
	// urls are the targets; client i talks to urls[i%len(urls)]. -url
	// alone is one target, -urls replaces it.
	urls         []string
	headers      []header // -header, sent with every request
	serializable bool     // etcd-get: serializable instead of linearizable
	client       string   // clientFast or clientStd
}

// header is one -header name:value.
type header struct{ name, value string }

// headerFlag collects repeatable -header flags.
type headerFlag struct{ dst *[]header }

func (f headerFlag) String() string {
	if f.dst == nil {
		return ""
	}
	parts := make([]string, len(*f.dst))
	for i, h := range *f.dst {
		parts[i] = h.name + ": " + h.value
	}
	return strings.Join(parts, ", ")
}

func (f headerFlag) Set(s string) error {
	h, err := parseHeader(s)
	if err != nil {
		return err
	}
	*f.dst = append(*f.dst, h)
	return nil
}

// parseHeader parses "name:value" (spaces around either are trimmed). The
// name must be an HTTP token and the value must not hold control characters.
func parseHeader(s string) (header, error) {
	name, value, ok := strings.Cut(s, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !ok || name == "" {
		return header{}, fmt.Errorf("header %q: want name:value", s)
	}
	for _, c := range []byte(name) {
		if !isTokenChar(c) {
			return header{}, fmt.Errorf("header %q: invalid character %q in name", s, c)
		}
	}
	for _, c := range []byte(value) {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return header{}, fmt.Errorf("header %q: control character in value", s)
		}
	}
	return header{name: name, value: value}, nil
}

// isTokenChar reports whether c may appear in an HTTP field name (RFC 9110
// token).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// splitURLs splits a comma-separated -urls value, dropping empty entries.
func splitURLs(s string) []string {
	var urls []string
	for u := range strings.SplitSeq(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	return urls
}

// parseConfig parses the flags of command mode. On -h it prints the flags to
// stdout and returns errHelpShown.
func parseConfig(mode string, args []string, stdout io.Writer) (config, error) {
	cfg := config{mode: mode}
	fs := flag.NewFlagSet("dittoload "+mode, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	switch mode {
	case "hello":
		fs.StringVar(&cfg.listen, "listen", "127.0.0.1:9090", "loopback `addr:port` to serve on")
	case "put-property", "get-thing", "get", "search", "etcd-put", "etcd-get":
		defURL := "http://127.0.0.1:8080"
		switch mode {
		case "get":
			defURL = "http://127.0.0.1:9090/"
		case "etcd-put", "etcd-get":
			defURL = "http://127.0.0.1:2379"
			fs.IntVar(&cfg.things, "things", 100000, "number of keys load/thing-0..N-1")
			fs.BoolVar(&cfg.prepare, "prepare", false, "put every key once before the load phase")
			if mode == "etcd-get" {
				fs.BoolVar(&cfg.serializable, "serializable", false, "serializable ranges (local, no quorum round trip)")
			}
		default:
			fs.StringVar(&cfg.user, "user", "ditto:ditto", "basic auth `user:password` (empty: none)")
			fs.IntVar(&cfg.things, "things", 100000, "number of things load:thing-0..N-1")
			fs.BoolVar(&cfg.prepare, "prepare", false, "create the things before the load phase")
		}
		if mode == "search" {
			fs.StringVar(&cfg.filter, "filter", `eq(attributes/serialNo,"{i}")`, "RQL `filter`; {i} becomes a random thing number")
			fs.StringVar(&cfg.option, "option", "", "search `option`s, e.g. sort(-_modified),size(25)")
		}
		fs.StringVar(&cfg.url, "url", defURL, "target `URL` (loopback only)")
		fs.Func("urls", "comma-separated target `URLs`; client i uses the i-th modulo their number, -prepare the first", func(s string) error {
			cfg.urls = splitURLs(s)
			if len(cfg.urls) == 0 {
				return errors.New("no URL")
			}
			return nil
		})
		fs.Var(headerFlag{&cfg.headers}, "header", "`name:value` sent with every request (repeatable), e.g. consistency:local")
		fs.IntVar(&cfg.clients, "clients", 64, "concurrent workers and keep-alive connections")
		fs.DurationVar(&cfg.duration, "duration", 20*time.Second, "length of the load phase")
		fs.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "per-request timeout")
		fs.Float64Var(&cfg.rate, "rate", 0, "open-loop target requests/s (0: closed loop)")
		fs.BoolVar(&cfg.json, "json", false, "print the summary as JSON")
		fs.StringVar(&cfg.client, "client", clientFast, "HTTP client: fast (valyala/fasthttp, little CPU per request) or std (net/http)")
	default:
		return cfg, fmt.Errorf("unknown command %q\n%s", mode, usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprintf(stdout, "usage: dittoload %s [flags]\n", mode)
			fs.PrintDefaults()
			return cfg, errHelpShown
		}
		return cfg, err
	}
	if len(cfg.urls) == 0 && mode != "hello" {
		cfg.urls = []string{cfg.url}
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return cfg, cfg.validate()
}

func (c config) validate() error {
	if c.mode == "hello" {
		host, _, err := net.SplitHostPort(c.listen)
		if err != nil {
			return fmt.Errorf("-listen: %w", err)
		}
		if !isLoopback(host) {
			return fmt.Errorf("refusing to listen on %q: %w", c.listen, ErrNotLoopback)
		}
		return nil
	}
	for _, u := range c.urls {
		if err := checkTarget(u); err != nil {
			return err
		}
	}
	switch {
	case c.clients < 1 || c.clients > 4096:
		return fmt.Errorf("-clients %d: want 1..4096", c.clients)
	case c.duration <= 0 || c.duration > time.Hour:
		return fmt.Errorf("-duration %v: want (0, 1h]", c.duration)
	case c.timeout <= 0:
		return fmt.Errorf("-timeout %v: want > 0", c.timeout)
	case c.rate < 0 || c.rate > 1e6:
		return fmt.Errorf("-rate %v: want 0..1e6", c.rate)
	case c.mode != "get" && (c.things < 1 || c.things > 100_000_000):
		return fmt.Errorf("-things %d: want 1..1e8", c.things)
	case c.client != clientFast && c.client != clientStd:
		return fmt.Errorf("-client %q: want %s or %s", c.client, clientFast, clientStd)
	case c.user != "" && !strings.Contains(c.user, ":"):
		return fmt.Errorf("-user %q: want user:password", c.user)
	}
	return nil
}

// checkTarget accepts only http(s) URLs whose host is loopback.
func checkTarget(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("-url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("-url %q: want an http or https URL", raw)
	}
	if !isLoopback(u.Hostname()) {
		return fmt.Errorf("refusing target %q: %w", raw, ErrNotLoopback)
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

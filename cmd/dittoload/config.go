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
	case "put-property", "get-thing", "get", "search":
		defURL := "http://127.0.0.1:8080"
		if mode == "get" {
			defURL = "http://127.0.0.1:9090/"
		} else {
			fs.StringVar(&cfg.user, "user", "ditto:ditto", "basic auth `user:password` (empty: none)")
			fs.IntVar(&cfg.things, "things", 100000, "number of things load:thing-0..N-1")
			fs.BoolVar(&cfg.prepare, "prepare", false, "create the things before the load phase")
		}
		if mode == "search" {
			fs.StringVar(&cfg.filter, "filter", `eq(attributes/serialNo,"{i}")`, "RQL `filter`; {i} becomes a random thing number")
			fs.StringVar(&cfg.option, "option", "", "search `option`s, e.g. sort(-_modified),size(25)")
		}
		fs.StringVar(&cfg.url, "url", defURL, "target `URL` (loopback only)")
		fs.IntVar(&cfg.clients, "clients", 64, "concurrent workers and keep-alive connections")
		fs.DurationVar(&cfg.duration, "duration", 20*time.Second, "length of the load phase")
		fs.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "per-request timeout")
		fs.Float64Var(&cfg.rate, "rate", 0, "open-loop target requests/s (0: closed loop)")
		fs.BoolVar(&cfg.json, "json", false, "print the summary as JSON")
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
	if err := checkTarget(c.url); err != nil {
		return err
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

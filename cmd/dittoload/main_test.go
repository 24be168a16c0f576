package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeDitto mimics the three Ditto endpoints dittoload uses and records any
// request that is not exactly what dittoload should send.
type fakeDitto struct {
	creates, puts, gets, searches atomic.Int64

	mu       sync.Mutex
	things   map[string]bool
	problems []string
}

func (f *fakeDitto) fail(w http.ResponseWriter, status int, format string, args ...any) {
	f.mu.Lock()
	f.problems = append(f.problems, fmt.Sprintf(format, args...))
	f.mu.Unlock()
	http.Error(w, "bad", status)
}

func (f *fakeDitto) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u, p, ok := r.BasicAuth(); !ok || u != "ditto" || p != "ditto" {
		f.fail(w, http.StatusUnauthorized, "%s %s: bad auth", r.Method, r.URL.Path)
		return
	}
	body, _ := io.ReadAll(r.Body)
	if r.URL.Path == "/api/2/search/things" {
		n, ok := strings.CutPrefix(r.URL.Query().Get("filter"), `eq(attributes/serialNo,"`)
		if _, err := strconv.Atoi(strings.TrimSuffix(n, `")`)); !ok || err != nil || r.Method != http.MethodGet {
			f.fail(w, http.StatusBadRequest, "search %s", r.URL.RawQuery)
			return
		}
		f.searches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"items":[]}`)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/2/things/load:thing-")
	id, prop, _ := strings.Cut(rest, "/")
	if _, err := strconv.Atoi(id); !ok || err != nil {
		f.fail(w, http.StatusNotFound, "%s %s: bad path", r.Method, r.URL.Path)
		return
	}
	f.mu.Lock()
	exists := f.things[id]
	f.mu.Unlock()
	switch {
	case r.Method == http.MethodPut && prop == "":
		want := `{"attributes":{"manufacturer":"ACME","serialNo":"` + id +
			`"},"features":{"coffee-brewer":{"properties":{"brewed-coffees":0}}}}`
		if string(body) != want || r.Header.Get("Content-Type") != "application/json" {
			f.fail(w, http.StatusBadRequest, "create %s: body %s", id, body)
			return
		}
		f.mu.Lock()
		f.things[id] = true
		f.mu.Unlock()
		f.creates.Add(1)
		w.WriteHeader(http.StatusCreated)
	case r.Method == http.MethodPut && prop == "features/coffee-brewer/properties/brewed-coffees":
		if _, err := strconv.ParseUint(string(body), 10, 64); err != nil || !exists ||
			r.Header.Get("Content-Type") != "application/json" {
			f.fail(w, http.StatusBadRequest, "put %s: body %q exists %v", id, body, exists)
			return
		}
		f.puts.Add(1)
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && prop == "" && exists:
		f.gets.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"thingId":"load:thing-%s"}`, id)
	case r.Method == http.MethodGet && prop == "":
		http.Error(w, `{"status":404,"error":"things:thing.notfound"}`, http.StatusNotFound)
	default:
		f.fail(w, http.StatusNotFound, "%s %s: unexpected", r.Method, r.URL.Path)
	}
}

func mustFakeDitto(t *testing.T) (*fakeDitto, string) {
	t.Helper()
	f := &fakeDitto{things: map[string]bool{}}
	srv := httptest.NewServer(f) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, p := range f.problems[:min(len(f.problems), 5)] {
			t.Errorf("server saw: %s", p)
		}
	})
	return f, srv.URL
}

func mustRunJSON(t *testing.T, args ...string) summary {
	t.Helper()
	var out bytes.Buffer
	if err := run(t.Context(), append(args, "-json"), &out); err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	var s summary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("decode summary: %v\n%s", err, out.Bytes())
	}
	return s
}

func TestPrepareAndPutProperty(t *testing.T) {
	f, url := mustFakeDitto(t)
	s := mustRunJSON(t, "put-property", "-url", url, "-user", "ditto:ditto",
		"-things", "50", "-clients", "4", "-duration", "300ms", "-prepare")
	if s.Prepare == nil || s.Prepare.OK != 50 || len(s.Prepare.Errors) != 0 || f.creates.Load() != 50 {
		t.Fatalf("prepare = %+v, server creates %d; want 50 ok", s.Prepare, f.creates.Load())
	}
	if s.OK == 0 || len(s.Errors) != 0 || s.Requests != s.OK || int64(s.OK) != f.puts.Load() {
		t.Fatalf("load = %+v, server puts %d; want ok > 0 and no errors", s.result, f.puts.Load())
	}
	if s.Throughput <= 0 || s.Latency.P50 <= 0 || s.Latency.P50 > s.Latency.P99 || s.Latency.P99 > s.Latency.Max {
		t.Fatalf("implausible throughput/latency: %+v", s.result)
	}
}

func TestGetThing(t *testing.T) {
	f, url := mustFakeDitto(t)
	s := mustRunJSON(t, "get-thing", "-url", url+"/", "-things", "20", "-clients", "4",
		"-duration", "300ms", "-prepare")
	if s.OK == 0 || len(s.Errors) != 0 || int64(s.OK) != f.gets.Load() {
		t.Fatalf("load = %+v, server gets %d; want ok > 0 and no errors", s.result, f.gets.Load())
	}
}

func TestErrorsByStatus(t *testing.T) {
	_, url := mustFakeDitto(t)
	// No -prepare: every thing is missing, so every GET is a 404.
	s := mustRunJSON(t, "get-thing", "-url", url, "-things", "5", "-clients", "2", "-duration", "100ms")
	if s.OK != 0 || s.Errors["404"] == 0 || s.Errors["404"] != s.Requests {
		t.Fatalf("load = %+v; want only 404s", s.result)
	}
}

func TestOpenLoopRate(t *testing.T) {
	f, url := mustFakeDitto(t)
	s := mustRunJSON(t, "get-thing", "-url", url, "-things", "5", "-clients", "4",
		"-duration", "300ms", "-rate", "100", "-prepare")
	// 100 req/s for 300ms is 30 requests; allow for scheduling slack.
	if s.OK == 0 || s.Requests > 40 || int64(s.OK) != f.gets.Load() {
		t.Fatalf("load = %+v; want about 30 requests", s.result)
	}
}

func TestHelloAndGet(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"hello", "-listen", "127.0.0.1:0"}, pw) }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	url := strings.TrimSpace(strings.TrimPrefix(line, "hello: listening on "))

	var out bytes.Buffer
	if err := run(t.Context(), []string{"get", "-url", url, "-clients", "2", "-duration", "200ms"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"req/s", "errors    none", "p99"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("hello: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hello did not stop")
	}
}

func TestLoopbackGuard(t *testing.T) {
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"private-ip", []string{"get", "-url", "http://10.0.0.1"}, false},
		{"hostname", []string{"get", "-url", "http://example.com:8080/"}, false},
		{"unspecified", []string{"get", "-url", "http://0.0.0.0:8080/"}, false},
		{"mapped-private", []string{"get", "-url", "http://[::ffff:10.0.0.1]/"}, false},
		{"listen-any", []string{"hello", "-listen", ":9090"}, false},
		{"listen-private", []string{"hello", "-listen", "10.0.0.1:9090"}, false},
		{"v4-loopback", []string{"get", "-url", "http://127.0.0.2:1/"}, true},
		{"v6-loopback", []string{"get", "-url", "http://[::1]:1/"}, true},
		{"localhost", []string{"put-property", "-url", "http://LocalHost:1"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args[0], tt.args[1:], io.Discard)
			if tt.ok != (err == nil) || !tt.ok && !errors.Is(err, ErrNotLoopback) {
				t.Fatalf("parseConfig(%q) = %v, want ok %v", tt.args, err, tt.ok)
			}
		})
	}
	err := run(t.Context(), []string{"put-property", "-url", "http://10.0.0.1", "-prepare"}, io.Discard)
	if !errors.Is(err, ErrNotLoopback) || !strings.Contains(err.Error(), "10.0.0.1") {
		t.Fatalf("run against 10.0.0.1: %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"get", "-clients", "0"}, {"get", "-duration", "2h"}, {"get", "extra"}} {
		if err := run(t.Context(), args, io.Discard); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"get-thing", "-h"}, &out); err != nil || !strings.Contains(out.String(), "-things") {
		t.Errorf("help: %v\n%s", err, out.String())
	}
}

func TestInterruptStopsLoad(t *testing.T) {
	_, url := mustFakeDitto(t)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond) // stands in for ctrl-C
	defer cancel()
	var out bytes.Buffer
	start := time.Now()
	err := run(ctx, []string{"get-thing", "-url", url, "-things", "3", "-clients", "2", "-duration", "1h", "-json"}, &out)
	var s summary
	if err != nil || json.Unmarshal(out.Bytes(), &s) != nil || !s.Interrupted || time.Since(start) > 10*time.Second {
		t.Fatalf("run = %v after %v, summary %s", err, time.Since(start), out.Bytes())
	}
}

func TestSearchMode(t *testing.T) {
	f, url := mustFakeDitto(t)
	s := mustRunJSON(t, "search", "-url", url, "-things", "50", "-clients", "4", "-duration", "300ms")
	if s.OK == 0 || int64(s.OK) != f.searches.Load() {
		t.Fatalf("ok %d, server saw %d searches", s.OK, f.searches.Load())
	}
}

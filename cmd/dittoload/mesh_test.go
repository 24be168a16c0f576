package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeEtcd mimics the two v3 JSON gateway endpoints dittoload uses and
// records any request that is not exactly what dittoload should send.
type fakeEtcd struct {
	things int

	puts, zeros, ranges, serializable atomic.Int64 // zeros: puts of value 0 (prepare)

	mu       sync.Mutex
	kv       map[string]string
	problems []string
}

func (f *fakeEtcd) fail(w http.ResponseWriter, format string, args ...any) {
	f.mu.Lock()
	f.problems = append(f.problems, fmt.Sprintf(format, args...))
	f.mu.Unlock()
	http.Error(w, `{"error":"bad","code":3}`, http.StatusBadRequest)
}

func (f *fakeEtcd) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key          []byte `json:"key"` // encoding/json decodes base64 into []byte
		Value        []byte `json:"value"`
		Serializable bool   `json:"serializable"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || dec.Decode(&req) != nil {
		f.fail(w, "%s %s: not a JSON POST", r.Method, r.URL.Path)
		return
	}
	n, ok := strings.CutPrefix(string(req.Key), "load/thing-")
	if i, err := strconv.Atoi(n); !ok || err != nil || i < 0 || i >= f.things {
		f.fail(w, "key %q outside load/thing-0..%d", req.Key, f.things-1)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/v3/kv/put":
		if _, err := strconv.ParseUint(string(req.Value), 10, 64); err != nil || req.Serializable {
			f.fail(w, "put %q: value %q", req.Key, req.Value)
			return
		}
		f.mu.Lock()
		f.kv[string(req.Key)] = string(req.Value)
		f.mu.Unlock()
		f.puts.Add(1)
		if string(req.Value) == "0" {
			f.zeros.Add(1)
		}
		fmt.Fprint(w, `{"header":{"revision":"2"}}`)
	case "/v3/kv/range":
		if req.Value != nil {
			f.fail(w, "range %q with a value", req.Key)
			return
		}
		f.ranges.Add(1)
		if req.Serializable {
			f.serializable.Add(1)
		}
		f.mu.Lock()
		v, ok := f.kv[string(req.Key)]
		f.mu.Unlock()
		if !ok {
			fmt.Fprint(w, `{"header":{"revision":"2"}}`)
			return
		}
		fmt.Fprintf(w, `{"header":{"revision":"2"},"kvs":[{"key":%q,"value":%q}],"count":"1"}`,
			base64.StdEncoding.EncodeToString(req.Key), base64.StdEncoding.EncodeToString([]byte(v)))
	default:
		f.fail(w, "%s %s: unexpected", r.Method, r.URL.Path)
	}
}

func mustFakeEtcd(t *testing.T, things int) (*fakeEtcd, string) {
	t.Helper()
	f := &fakeEtcd{things: things, kv: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, p := range f.problems[:min(len(f.problems), 5)] {
			t.Errorf("etcd saw: %s", p)
		}
	})
	return f, srv.URL
}

func TestEtcdPutSpreadOverMembers(t *testing.T) {
	var fakes []*fakeEtcd
	var urls []string
	for range 3 {
		f, u := mustFakeEtcd(t, 40)
		fakes, urls = append(fakes, f), append(urls, u)
	}
	s := mustRunJSON(t, "etcd-put", "-urls", strings.Join(urls, ","), "-things", "40", "-clients", "6",
		"-duration", "300ms", "-prepare")
	if s.Prepare == nil || s.Prepare.OK != 40 || fakes[0].zeros.Load() != 40 || fakes[1].zeros.Load()+fakes[2].zeros.Load() != 0 {
		t.Fatalf("prepare = %+v, value-0 puts %d/%d/%d; want 40 through the first member", s.Prepare,
			fakes[0].zeros.Load(), fakes[1].zeros.Load(), fakes[2].zeros.Load())
	}
	var puts int64
	for i, f := range fakes {
		p := f.puts.Load() - f.zeros.Load() // load-phase values start at 1
		if p == 0 {
			t.Errorf("member %d got no load-phase put", i)
		}
		puts += p
	}
	if s.OK == 0 || len(s.Errors) != 0 || int64(s.OK) != puts || s.URL != strings.Join(urls, ",") {
		t.Fatalf("load = %+v, members saw %d puts; want ok > 0 and no errors", s.result, puts)
	}
}

func TestEtcdGet(t *testing.T) {
	for _, serializable := range []bool{false, true} {
		t.Run("serializable="+strconv.FormatBool(serializable), func(t *testing.T) {
			f, u := mustFakeEtcd(t, 10)
			args := []string{"etcd-get", "-url", u, "-things", "10", "-clients", "3", "-duration", "200ms", "-prepare"}
			if serializable {
				args = append(args, "-serializable")
			}
			s := mustRunJSON(t, args...)
			want := int64(0)
			if serializable {
				want = f.ranges.Load()
			}
			if s.OK == 0 || len(s.Errors) != 0 || int64(s.OK) != f.ranges.Load() || f.serializable.Load() != want {
				t.Fatalf("load = %+v, ranges %d serializable %d", s.result, f.ranges.Load(), f.serializable.Load())
			}
		})
	}
}

// TestURLsAndHeaders spreads get-thing over three fake nodes and checks that
// every client request carries the -header values.
func TestURLsAndHeaders(t *testing.T) {
	var urls []string
	var counts [3]atomic.Int64
	var missing atomic.Int64
	for i := range 3 {
		f, _ := mustFakeDitto(t)
		f.things = map[string]bool{"0": true, "1": true, "2": true, "3": true, "4": true}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Consistency") != "local" || !cmp.Equal(r.Header.Values("X-Test"), []string{"a b", "c:d"}) {
				missing.Add(1)
			}
			counts[i].Add(1)
			f.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	s := mustRunJSON(t, "get-thing", "-urls", " "+strings.Join(urls, " , ")+",", "-things", "5", "-clients", "3",
		"-duration", "300ms", "-header", "consistency: local", "-header", "X-Test:a b", "-header", "x-test: c:d")
	if s.OK == 0 || len(s.Errors) != 0 || missing.Load() != 0 {
		t.Fatalf("load = %+v, %d requests without the headers", s.result, missing.Load())
	}
	var total int64
	for i := range counts {
		if counts[i].Load() == 0 {
			t.Errorf("node %d got no request", i)
		}
		total += counts[i].Load()
	}
	if total != int64(s.Requests) {
		t.Errorf("nodes saw %d requests, summary says %d", total, s.Requests)
	}
}

func TestMeshFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"urls-one-remote", []string{"put-property", "-urls", "http://127.0.0.1:1,http://10.0.0.1:2"}},
		{"urls-empty", []string{"get-thing", "-urls", " , "}},
		{"etcd-remote", []string{"etcd-put", "-urls", "http://192.168.1.1:2379"}},
		{"header-no-colon", []string{"get-thing", "-header", "consistency"}},
		{"header-empty-name", []string{"get-thing", "-header", ":local"}},
		{"header-bad-name", []string{"get-thing", "-header", "a b:c"}},
		{"header-ctl-value", []string{"get-thing", "-header", "a:b\r\nX: y"}},
		{"serializable-not-etcd", []string{"get-thing", "-serializable"}},
		{"etcd-no-user", []string{"etcd-put", "-user", "a:b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseConfig(tt.args[0], tt.args[1:], io.Discard); err == nil {
				t.Fatalf("parseConfig(%q) succeeded", tt.args)
			}
		})
	}
	cfg, err := parseConfig("etcd-get", nil, io.Discard)
	if err != nil || !cmp.Equal(cfg.urls, []string{"http://127.0.0.1:2379"}) || cfg.user != "" {
		t.Fatalf("etcd-get defaults: %v, urls %q user %q", err, cfg.urls, cfg.user)
	}
}

func TestEtcdBodies(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"put", etcdPutBody(7, 1234), `{"key":"bG9hZC90aGluZy03","value":"MTIzNA=="}`},
		{"range", etcdRangeBody(0, false), `{"key":"bG9hZC90aGluZy0w"}`},
		{"range-serializable", etcdRangeBody(12, true), `{"key":"bG9hZC90aGluZy0xMg==","serializable":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, string(tt.got)); diff != "" {
				t.Fatalf("body (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParseHeader checks that an accepted -header can be sent as is: a
// token name and a value without control characters, both trimmed.
func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{"consistency:local", " a : b ", "x:", ":", "a b:c", "a:b\nc", "k:v:w"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseHeader(s)
		if err != nil {
			return
		}
		if h.name == "" || h.name != strings.TrimSpace(h.name) || h.value != strings.TrimSpace(h.value) {
			t.Fatalf("parseHeader(%q) = %+v: untrimmed or empty name", s, h)
		}
		for _, c := range []byte(h.name) {
			if !isTokenChar(c) {
				t.Fatalf("parseHeader(%q) name %q has %q", s, h.name, c)
			}
		}
		if strings.ContainsAny(h.value, "\r\n\x00") {
			t.Fatalf("parseHeader(%q) value %q has a control character", s, h.value)
		}
		req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
		req.Header.Add(h.name, h.value)
		if got := req.Header.Get(h.name); got != h.value {
			t.Fatalf("header %q round trip: %q", h.name, got)
		}
	})
}

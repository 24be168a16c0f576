package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

// benchRecorder is a minimal ResponseWriter that keeps nothing, so the
// benchmark measures the gateway rather than the recorder.
type benchRecorder struct {
	h      http.Header
	status int
}

func (r *benchRecorder) Header() http.Header         { return r.h }
func (r *benchRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *benchRecorder) WriteHeader(s int)           { r.status = s }

func (r *benchRecorder) reset() {
	clear(r.h)
	r.status = 0
}

// benchThings answers every command with the same result and records
// nothing (fakeThings' recording would dominate the measurement).
type benchThings struct{ res ditto.Result }

func (t benchThings) Handle(context.Context, ditto.Command) (ditto.Result, error) { return t.res, nil }
func (t benchThings) RetrieveMany(context.Context, []string, ditto.Command) ([]any, error) {
	return nil, nil
}

func benchServer(b *testing.B, things Things) http.Handler {
	b.Helper()
	return New(Config{Users: map[string]string{testUser: testPass}}, Deps{Things: things, Policies: &fakePolicies{}}).Handler()
}

func BenchmarkGetThing(b *testing.B) {
	raw := []byte(`{"thingId":"ns:t","policyId":"ns:t","attributes":{"manufacturer":"ACME","location":{"floor":3}},"features":{"lamp":{"properties":{"on":true}}}}`)
	h := benchServer(b, benchThings{ditto.Result{Status: 200, Raw: raw, ETag: `"rev:42"`}})
	r := httptest.NewRequest(http.MethodGet, "/api/2/things/ns:t", nil)
	r.SetBasicAuth(testUser, testPass)
	r.Header.Set("correlation-id", "bench")
	w := &benchRecorder{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		h.ServeHTTP(w, r)
		if w.status != 200 {
			b.Fatalf("status %d", w.status)
		}
	}
}

func BenchmarkPutProperty(b *testing.B) {
	h := benchServer(b, benchThings{ditto.Result{Status: 204, ETag: `"hash:1f"`}})
	body := strings.NewReader(`{"value":21.5,"unit":"C"}`)
	r := httptest.NewRequest(http.MethodPut, "/api/2/things/ns:t/features/temp/properties/current", nil)
	r.SetBasicAuth(testUser, testPass)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("correlation-id", "bench")
	w := &benchRecorder{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = body.Seek(0, io.SeekStart)
		r.Body = io.NopCloser(body)
		r.ContentLength = body.Size()
		w.reset()
		h.ServeHTTP(w, r)
		if w.status != 204 {
			b.Fatalf("status %d", w.status)
		}
	}
}

// BenchmarkGetThingHTTP measures a GET through a real loopback connection.
func BenchmarkGetThingHTTP(b *testing.B) {
	raw := []byte(`{"thingId":"ns:t","attributes":{"a":1}}`)
	ts := httptest.NewServer(benchServer(b, benchThings{ditto.Result{Status: 200, Raw: raw, ETag: `"rev:1"`}}))
	defer ts.Close()
	client := ts.Client()
	r, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/2/things/ns:t", nil)
	r.SetBasicAuth(testUser, testPass)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Do(r)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

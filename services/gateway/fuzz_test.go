package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzHandler throws arbitrary targets, methods, content types and bodies at
// the handler: it must never panic or answer 500, and every error must be a
// Ditto error JSON.
func FuzzHandler(f *testing.F) {
	for _, s := range []struct{ method, target, ctype, body string }{
		{"GET", "/api/2/things/ns:t", "", ""},
		{"PUT", "/api/2/things/ns:t/attributes/a", "application/json", "1"},
		{"PATCH", "/api/2/things/ns:t?timeout=1s", "application/merge-patch+json", `{"a":null}`},
		{"POST", "/api/2/things?namespace=a.b", "application/json", `{}`},
		{"GET", "/api/2/things?ids=ns:a,ns:b&fields=thingId", "", ""},
		{"PUT", "/api/2/policies/ns:p/entries/l/resources/thing:%2F", "application/json", `{"grant":["READ"]}`},
		{"DELETE", "/api/2/things/ns:t/policyId?response-required=false", "", ""},
		{"GET", "/api/2/things/%zz", "", ""},
		{"PUT", "/api/2/things/ns:t", "application/json", `{`},
	} {
		f.Add(s.method, s.target, s.ctype, s.body)
	}
	h := New(Config{Users: map[string]string{testUser: testPass}}, Deps{Things: benchThings{}, Policies: benchThings{}}).Handler()
	f.Fuzz(func(t *testing.T, method, target, ctype, body string) {
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\t#") {
			return
		}
		r, err := http.NewRequest(method, "http://gw"+target, strings.NewReader(body))
		if err != nil {
			return
		}
		r.SetBasicAuth(testUser, testPass)
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %s: status %d %s", method, target, w.Code, w.Body)
		}
		if w.Code >= 400 {
			var e struct {
				Status int    `json:"status"`
				Code   string `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Status != w.Code || e.Code == "" {
				t.Fatalf("%s %s: bad error body %q for %d", method, target, w.Body, w.Code)
			}
		}
	})
}

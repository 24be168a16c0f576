package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

const thingURL = "/api/2/things/ns:t"

func TestResultMapping(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		result     ditto.Result
		wantStatus int
		wantBody   string
		wantETag   string
		wantLoc    string
	}{
		{"retrieve value", "GET", thingURL, "", ditto.Result{Status: 200, Value: map[string]any{"thingId": "ns:t", "a": "<&>"}, ETag: `"rev:3"`}, 200, `{"a":"<&>","thingId":"ns:t"}`, `"rev:3"`, ""},
		{"retrieve raw", "GET", thingURL, "", ditto.Result{Status: 200, Value: json.RawMessage(`{"thingId":"ns:t"}`), ETag: `"rev:1"`}, 200, `{"thingId":"ns:t"}`, `"rev:1"`, ""},
		{"retrieve Raw field", "GET", thingURL, "", ditto.Result{Status: 200, Raw: []byte(`{"thingId":"ns:r"}`), Value: "ignored"}, 200, `{"thingId":"ns:r"}`, "", ""},
		{"created Raw", "PUT", thingURL, "{}", ditto.Result{Status: 201, Raw: []byte(`{"thingId":"ns:t"}`), ETag: `"rev:1"`}, 201, `{"thingId":"ns:t"}`, `"rev:1"`, thingURL},
		{"zero status with Raw", "GET", thingURL, "", ditto.Result{Raw: []byte(`false`)}, 200, `false`, "", ""},
		{"retrieve null", "GET", thingURL + "/attributes/x", "", ditto.Result{Status: 200}, 200, `null`, "", ""},
		{"created", "PUT", thingURL + "/attributes/x", "1", ditto.Result{Status: 201, Value: jsonNum("1"), ETag: `"hash:ab"`}, 201, `1`, `"hash:ab"`, thingURL + "/attributes/x"},
		{"created no value", "PUT", thingURL, "{}", ditto.Result{Status: 201, ETag: `"rev:1"`}, 201, ``, `"rev:1"`, thingURL},
		{"modified", "PUT", thingURL, "{}", ditto.Result{Status: 204, ETag: `"rev:2"`}, 204, ``, `"rev:2"`, ""},
		{"deleted", "DELETE", thingURL, "", ditto.Result{Status: 204}, 204, ``, "", ""},
		{"zero status with value", "GET", thingURL, "", ditto.Result{Value: "x"}, 200, `"x"`, "", ""},
		{"zero status without value", "DELETE", thingURL, "", ditto.Result{}, 204, ``, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := mustServer(t, nil)
			env.things.handle = func(context.Context, ditto.Command) (ditto.Result, error) { return tt.result, nil }
			r := req{method: tt.method, path: tt.path, body: tt.body}
			if tt.body != "" {
				r.ctype = "application/json"
			}
			got := env.do(t, r)
			if got.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", got.status, tt.wantStatus, got.body)
			}
			if string(got.body) != tt.wantBody {
				t.Errorf("body = %s, want %s", got.body, tt.wantBody)
			}
			if e := got.header.Get("ETag"); e != tt.wantETag {
				t.Errorf("ETag = %q, want %q", e, tt.wantETag)
			}
			wantLoc := tt.wantLoc
			if wantLoc != "" {
				wantLoc = env.base + wantLoc // absolute, as Ditto's
			}
			if l := got.header.Get("Location"); l != wantLoc {
				t.Errorf("Location = %q, want %q", l, wantLoc)
			}
			if tt.wantBody != "" && got.header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type = %q", got.header.Get("Content-Type"))
			}
		})
	}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		result     ditto.Result
		headers    map[string]string
		wantStatus int
		wantCode   string
		wantETag   string
	}{
		{"ditto error", ditto.ErrThingNotFound.New("The Thing with ID '%s' could not be found or requester had insufficient permissions to access it.", "ns:t"), ditto.Result{}, nil, 404, "things:thing.notfound", ""},
		{"wrapped ditto error", fmt.Errorf("things: modify: %w", ditto.ErrThingNotModifiable.New("no")), ditto.Result{}, nil, 403, "things:thing.notmodifiable", ""},
		{"deadline", fmt.Errorf("propose: %w", context.DeadlineExceeded), ditto.Result{}, nil, 408, "command.timeout", ""},
		{"unavailable sentinel", fmt.Errorf("not leader: %w", ErrUnavailable), ditto.Result{}, nil, 503, "things:thing.unavailable", ""},
		{"unavailable method", unavailableErr{}, ditto.Result{}, nil, 503, "things:thing.unavailable", ""},
		{"internal", errors.New("boom"), ditto.Result{}, nil, 500, "gateway:internal.error", ""},
		{"precondition failed", ditto.ErrThingPreconditionFailed.New("no"), ditto.Result{}, nil, 412, "things:precondition.failed", ""},
		{"not modified etag from result", ditto.ErrThingPreconditionNotMod.New("same"), ditto.Result{ETag: `"rev:7"`}, map[string]string{"If-None-Match": "*"}, 304, "", `"rev:7"`},
		{"not modified etag from header", ditto.ErrThingPreconditionNotMod.New("same"), ditto.Result{}, map[string]string{"If-None-Match": `"rev:8"`}, 304, "", `"rev:8"`},
		{"not modified etag from error", etagErr{ditto.ErrThingPreconditionNotMod.New("same"), `"rev:9"`}, ditto.Result{}, map[string]string{"If-None-Match": `"rev:1", "rev:9"`}, 304, "", `"rev:9"`},
	}
	env := mustServer(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env.things.handle = func(context.Context, ditto.Command) (ditto.Result, error) { return tt.result, tt.err }
			got := env.do(t, req{method: "GET", path: thingURL, headers: tt.headers})
			if tt.wantStatus == 304 {
				if got.status != 304 || len(got.body) != 0 {
					t.Fatalf("got %d %q, want 304 without body", got.status, got.body)
				}
				if e := got.header.Get("ETag"); e != tt.wantETag {
					t.Errorf("ETag = %q, want %q", e, tt.wantETag)
				}
				return
			}
			mustDittoError(t, got, tt.wantStatus, tt.wantCode)
		})
	}
	t.Run("policies unavailable", func(t *testing.T) {
		env.policies.handle = func(context.Context, ditto.Command) (ditto.Result, error) { return ditto.Result{}, ErrUnavailable }
		mustDittoError(t, env.do(t, req{method: "GET", path: "/api/2/policies/ns:p"}), 503, "policies:policy.unavailable")
	})
	t.Run("real timeout", func(t *testing.T) {
		env.things.handle = func(ctx context.Context, _ ditto.Command) (ditto.Result, error) {
			<-ctx.Done()
			return ditto.Result{}, ctx.Err()
		}
		mustDittoError(t, env.do(t, req{method: "GET", path: thingURL + "?timeout=50ms"}), 408, "command.timeout")
	})
	t.Run("panic", func(t *testing.T) {
		env.things.handle = func(context.Context, ditto.Command) (ditto.Result, error) { panic("service bug") }
		mustDittoError(t, env.do(t, req{method: "GET", path: thingURL}), 500, "gateway:internal.error")
	})
}

type unavailableErr struct{}

func (unavailableErr) Error() string     { return "no leader" }
func (unavailableErr) Unavailable() bool { return true }

type etagErr struct {
	err  *ditto.Error
	etag string
}

func (e etagErr) Error() string { return e.err.Error() }
func (e etagErr) ETag() string  { return e.etag }
func (e etagErr) Unwrap() error { return e.err }

func TestAuthentication(t *testing.T) {
	tests := []struct {
		name         string
		preAuth      bool
		noAuth       bool
		headers      map[string]string
		wantStatus   int
		wantSubjects []string
	}{
		{"basic ok", false, false, nil, 200, []string{"nginx:ditto"}},
		{"no credentials", false, true, nil, 401, nil},
		{"wrong password", false, true, map[string]string{"Authorization": "Basic ZGl0dG86d3Jvbmc="}, 401, nil},
		{"unknown user", false, true, map[string]string{"Authorization": "Basic bm9ib2R5OmRpdHRv"}, 401, nil},
		{"malformed basic", false, true, map[string]string{"Authorization": "Basic !!!"}, 401, nil},
		{"bearer unsupported", false, true, map[string]string{"Authorization": "Bearer abc"}, 401, nil},
		{"pre-auth off is ignored", false, true, map[string]string{"x-ditto-pre-authenticated": "nginx:ditto"}, 401, nil},
		{"pre-auth off with basic", false, false, map[string]string{"x-ditto-pre-authenticated": "nginx:admin"}, 200, []string{"nginx:ditto"}},
		{"pre-auth on", true, true, map[string]string{"x-ditto-pre-authenticated": "nginx:ditto"}, 200, []string{"nginx:ditto"}},
		{"pre-auth several", true, true, map[string]string{"x-ditto-pre-authenticated": "nginx:a, google:b"}, 200, []string{"nginx:a", "google:b"}},
		{"pre-auth malformed", true, true, map[string]string{"x-ditto-pre-authenticated": "nobody"}, 401, nil},
		{"pre-auth empty subject", true, true, map[string]string{"x-ditto-pre-authenticated": "nginx:"}, 401, nil},
		{"pre-auth too many", true, true, map[string]string{"x-ditto-pre-authenticated": strings.Repeat("a:b,", 100) + "a:b"}, 431, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := mustServer(t, func(c *Config, _ *Deps) { c.PreAuthentication = tt.preAuth })
			got := env.do(t, req{method: "GET", path: "/api/2/whoami", noAuth: tt.noAuth, headers: tt.headers})
			switch tt.wantStatus {
			case 401:
				mustDittoError(t, got, 401, "gateway:authentication.failed")
				if h := got.header.Get("WWW-Authenticate"); h != `Basic realm="dittonode"` {
					t.Errorf("WWW-Authenticate = %q", h)
				}
				return
			case 431:
				mustDittoError(t, got, 431, "gateway:authorization.subjects.toolarge")
				return
			}
			if got.status != 200 {
				t.Fatalf("status = %d (body %s)", got.status, got.body)
			}
			var who struct {
				DefaultSubject string   `json:"defaultSubject"`
				Subjects       []string `json:"subjects"`
			}
			if err := json.Unmarshal(got.body, &who); err != nil {
				t.Fatalf("whoami body %s: %v", got.body, err)
			}
			if who.DefaultSubject != tt.wantSubjects[0] || !reflect.DeepEqual(who.Subjects, tt.wantSubjects) {
				t.Errorf("whoami = %+v, want subjects %v", who, tt.wantSubjects)
			}
		})
	}
	t.Run("auth reaches command", func(t *testing.T) {
		env := mustServer(t, nil)
		env.do(t, req{method: "DELETE", path: thingURL})
		if got := env.things.last(t).Auth.Subjects; !reflect.DeepEqual(got, []string{"nginx:ditto"}) {
			t.Errorf("Auth.Subjects = %v", got)
		}
	})
	t.Run("every api route needs auth", func(t *testing.T) {
		env := mustServer(t, nil)
		for _, p := range []string{"/api/2/things?ids=ns:a", thingURL, "/api/2/policies/ns:p", "/api/2/whoami", "/api/2/nothing"} {
			mustDittoError(t, env.do(t, req{method: "GET", path: p, noAuth: true}), 401, "gateway:authentication.failed")
		}
		if env.things.count() != 0 {
			t.Error("an unauthenticated request reached the things service")
		}
	})
}

func TestBodies(t *testing.T) {
	env := mustServer(t, func(c *Config, _ *Deps) { c.MaxBodyBytes = 64 })
	big := `{"a":"` + strings.Repeat("x", 64) + `"}`
	tests := []struct {
		name   string
		method string
		path   string
		ctype  string
		body   string
		status int
		code   string
	}{
		{"put text/plain", "PUT", thingURL, "text/plain", "{}", 415, "mediatype.unsupported"},
		{"patch with json", "PATCH", thingURL, "application/json", "{}", 415, "mediatype.unsupported"},
		{"put merge-patch", "PUT", thingURL, "application/merge-patch+json", "{}", 415, "mediatype.unsupported"},
		{"put malformed", "PUT", thingURL, "application/json", "{", 400, "json.format.invalid"},
		{"put trailing garbage", "PUT", thingURL, "application/json", "{} x", 400, "json.format.invalid"},
		{"put empty", "PUT", thingURL, "application/json", "", 400, "json.format.invalid"},
		{"put too large thing", "PUT", thingURL, "application/json", big, 413, "things:thing.toolarge"},
		{"put too large policy", "PUT", "/api/2/policies/ns:p", "application/json", big, 413, "policies:policy.toolarge"},
		{"post with thingId", "POST", "/api/2/things", "application/json", `{"thingId":"ns:x"}`, 400, "things:id.notsettable"},
		{"post bad namespace", "POST", "/api/2/things?namespace=1bad", "application/json", `{}`, 400, "things:id.invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustDittoError(t, env.do(t, req{method: tt.method, path: tt.path, ctype: tt.ctype, body: tt.body}), tt.status, tt.code)
		})
	}
	if env.things.count() != 0 || len(env.policies.cmds) != 0 {
		t.Error("an invalid body reached a service")
	}
	okTests := []struct {
		name  string
		ctype string
	}{
		{"charset", "application/json; charset=utf-8"},
		{"upper case", "Application/JSON"},
		{"octet-stream extra", "application/octet-stream"},
		// Without a content-type a body is octet-stream to Ditto, accepted.
		{"no content type", ""},
	}
	for _, tt := range okTests {
		t.Run(tt.name, func(t *testing.T) {
			got := env.do(t, req{method: "PUT", path: thingURL, ctype: tt.ctype, body: `{"a":1}`})
			if got.status != 204 {
				t.Fatalf("status = %d (body %s)", got.status, got.body)
			}
		})
	}
	t.Run("merge-patch with charset", func(t *testing.T) {
		if got := env.do(t, req{method: "PATCH", path: thingURL, ctype: "application/merge-patch+json; charset=UTF-8", body: `{}`}); got.status != 204 {
			t.Fatalf("status = %d (body %s)", got.status, got.body)
		}
	})
	t.Run("chunked too large", func(t *testing.T) {
		// No Content-Length: the limit is enforced while reading.
		hr, err := http.NewRequestWithContext(t.Context(), "PUT", env.base+thingURL, strings.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		hr.ContentLength = -1
		hr.Header.Set("Content-Type", "application/json")
		hr.SetBasicAuth(testUser, testPass)
		hresp, err := env.client.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		hresp.Body.Close()
		if hresp.StatusCode != 413 {
			t.Fatalf("status = %d, want 413", hresp.StatusCode)
		}
	})
}

func TestCreateAndMultiGet(t *testing.T) {
	env := mustServer(t, nil)
	env.things.handle = func(_ context.Context, cmd ditto.Command) (ditto.Result, error) {
		return ditto.Result{Status: 201, Value: map[string]any{"thingId": cmd.Entity}, ETag: `"rev:1"`, Entity: cmd.Entity}, nil
	}
	t.Run("post default namespace", func(t *testing.T) {
		got := env.do(t, req{method: "POST", path: "/api/2/things", ctype: "application/json", body: `{"attributes":{"a":1}}`})
		const id = "org.eclipse.ditto:11111111-2222-4333-8444-555555555555"
		if got.status != 201 || got.header.Get("Location") != env.base+"/api/2/things/"+id || got.header.Get("ETag") != `"rev:1"` {
			t.Fatalf("got %d Location=%q ETag=%q", got.status, got.header.Get("Location"), got.header.Get("ETag"))
		}
		if string(got.body) != `{"thingId":"`+id+`"}` {
			t.Errorf("body = %s", got.body)
		}
		cmd := env.things.last(t)
		if cmd.Action != ditto.ActionCreate || cmd.Entity != id || cmd.Path != nil {
			t.Errorf("command = %+v", cmd)
		}
	})
	t.Run("post namespace without body", func(t *testing.T) {
		got := env.do(t, req{method: "POST", path: "/api/2/things?namespace=my.ns"})
		if got.status != 201 {
			t.Fatalf("status = %d (body %s)", got.status, got.body)
		}
		cmd := env.things.last(t)
		if !strings.HasPrefix(cmd.Entity, "my.ns:") || !reflect.DeepEqual(cmd.Value, map[string]any{}) {
			t.Errorf("command = %+v", cmd)
		}
	})
	t.Run("multi get", func(t *testing.T) {
		env.things.many = func(_ context.Context, ids []string, _ ditto.Command) ([]any, error) {
			return []any{json.RawMessage(`{"thingId":"ns:a"}`), map[string]any{"thingId": "ns:b"}}, nil
		}
		got := env.do(t, req{method: "GET", path: "/api/2/things?ids=ns:a,ns:b&fields=thingId"})
		if got.status != 200 || string(got.body) != `[{"thingId":"ns:a"},{"thingId":"ns:b"}]` {
			t.Fatalf("got %d %s", got.status, got.body)
		}
		if cmd := env.things.last(t); cmd.Fields != "thingId" || cmd.Action != ditto.ActionRetrieve {
			t.Errorf("command = %+v", cmd)
		}
		if ids := env.things.ids[len(env.things.ids)-1]; !reflect.DeepEqual(ids, []string{"ns:a", "ns:b"}) {
			t.Errorf("ids = %v", ids)
		}
	})
	t.Run("multi get none readable", func(t *testing.T) {
		env.things.many = func(context.Context, []string, ditto.Command) ([]any, error) { return nil, nil }
		if got := env.do(t, req{method: "GET", path: "/api/2/things?ids=ns:a"}); got.status != 200 || string(got.body) != `[]` {
			t.Fatalf("got %d %s", got.status, got.body)
		}
	})
	t.Run("multi get invalid id", func(t *testing.T) {
		mustDittoError(t, env.do(t, req{method: "GET", path: "/api/2/things?ids=ns:a,nocolon"}), 400, "things:id.invalid")
		mustDittoError(t, env.do(t, req{method: "GET", path: "/api/2/things?ids="}), 400, "things:id.invalid")
	})
	t.Run("list without ids", func(t *testing.T) {
		env.things.many = func(_ context.Context, ids []string, _ ditto.Command) ([]any, error) {
			if ids != nil {
				t.Errorf("ids = %v, want nil (a listing)", ids)
			}
			return []any{map[string]any{"thingId": "ns:a"}}, nil
		}
		if got := env.do(t, req{method: "GET", path: "/api/2/things"}); got.status != 200 || string(got.body) != `[{"thingId":"ns:a"}]` {
			t.Fatalf("got %d %s", got.status, got.body)
		}
	})
}

func TestHeaders(t *testing.T) {
	env := mustServer(t, nil)
	t.Run("translation", func(t *testing.T) {
		got := env.do(t, req{method: "GET", path: thingURL + "?fields=attributes&channel=twin&timeout=30&condition=eq(a,1)&requested-acks=twin-persisted",
			headers: map[string]string{
				"If-Match": `"rev:1"`, "If-None-Match": `"rev:2"`, "if-equal": "skip", "consistency": "local",
				"Condition": "eq(a,2)", "X-Custom": "v", "ditto-originator": "evil", "read-subjects": "x",
				"subject": "y", "raw-request-url": "z", "timeout-access": "w", "Ditto-Weak-Ack": "true",
			}})
		if got.status != 204 {
			t.Fatalf("status %d (body %s)", got.status, got.body)
		}
		cmd := env.things.last(t)
		want := ditto.Headers{
			"if-match": `"rev:1"`, "if-none-match": `"rev:2"`, "if-equal": "skip", "consistency": "local",
			"condition": "eq(a,1)", "x-custom": "v", "channel": "twin", "timeout": "30", "requested-acks": "twin-persisted",
			"correlation-id": got.header.Get("correlation-id"),
		}
		if !reflect.DeepEqual(cmd.Headers, want) {
			t.Errorf("headers\n got  %v\n want %v", cmd.Headers, want)
		}
		if cmd.Fields != "attributes" || cmd.Timeout != 30*time.Second {
			t.Errorf("fields %q timeout %v", cmd.Fields, cmd.Timeout)
		}
	})
	t.Run("correlation-id echo header", func(t *testing.T) {
		got := env.do(t, req{method: "GET", path: thingURL, headers: map[string]string{"correlation-id": "my-cid"}})
		if c := got.header.Get("correlation-id"); c != "my-cid" {
			t.Errorf("correlation-id = %q", c)
		}
		if c := env.things.last(t).Headers["correlation-id"]; c != "my-cid" {
			t.Errorf("command correlation-id = %q", c)
		}
	})
	t.Run("correlation-id echo query", func(t *testing.T) {
		got := env.do(t, req{method: "GET", path: thingURL + "?correlation-id=q-cid", headers: map[string]string{"correlation-id": "h-cid"}})
		if c := got.header.Get("correlation-id"); c != "q-cid" {
			t.Errorf("correlation-id = %q", c)
		}
	})
	t.Run("consistency as query parameter", func(t *testing.T) {
		env.do(t, req{method: "GET", path: thingURL + "?consistency=local"})
		if c := env.things.last(t).Headers[ditto.HeaderConsistency]; c != "local" {
			t.Errorf("command consistency = %q", c)
		}
	})
	t.Run("correlation-id generated", func(t *testing.T) {
		for _, r := range []req{{method: "GET", path: thingURL}, {method: "GET", path: "/nope"}, {method: "GET", path: "/health"}} {
			if c := env.do(t, r).header.Get("correlation-id"); c == "" {
				t.Errorf("%s: no correlation-id", r.path)
			}
		}
	})
	t.Run("headers too large", func(t *testing.T) {
		got := env.do(t, req{method: "GET", path: thingURL, headers: map[string]string{"X-Big": strings.Repeat("a", 6*1024)}})
		mustDittoError(t, got, 431, "headers.too.large")
	})
}

func TestTimeoutAndResponseRequired(t *testing.T) {
	env := mustServer(t, nil)
	tests := []struct {
		name        string
		method      string
		query       string
		wantStatus  int
		wantCode    string
		wantExec    bool
		wantTimeout time.Duration
	}{
		{"default", "DELETE", "", 204, "", true, 60 * time.Second},
		{"seconds", "DELETE", "?timeout=42", 204, "", true, 42 * time.Second},
		{"ms", "DELETE", "?timeout=250ms", 204, "", true, 250 * time.Millisecond},
		{"minute", "DELETE", "?timeout=1m", 204, "", true, time.Minute},
		{"too long", "DELETE", "?timeout=61s", 400, "timeout.invalid", false, 0},
		{"garbage", "DELETE", "?timeout=abc", 400, "timeout.invalid", false, 0},
		{"negative", "DELETE", "?timeout=-1", 400, "timeout.invalid", false, 0},
		{"zero write", "DELETE", "?timeout=0", 202, "", true, 60 * time.Second},
		{"no response write", "DELETE", "?response-required=false", 202, "", true, 60 * time.Second},
		{"no response query dropped", "GET", "?response-required=false", 202, "", false, 0},
		{"bad response-required", "GET", "?response-required=maybe", 400, "header.invalid", false, 0},
		{"zero with response", "DELETE", "?timeout=0&response-required=true", 400, "header.invalid", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := env.things.count()
			got := env.do(t, req{method: tt.method, path: thingURL + tt.query})
			if tt.wantCode != "" {
				mustDittoError(t, got, tt.wantStatus, tt.wantCode)
			} else if got.status != tt.wantStatus || (tt.wantStatus == 202 && len(got.body) != 0) {
				t.Fatalf("got %d %q, want %d", got.status, got.body, tt.wantStatus)
			}
			executed := env.things.count() > before
			if executed != tt.wantExec {
				t.Fatalf("executed = %v, want %v", executed, tt.wantExec)
			}
			if executed && env.things.last(t).Timeout != tt.wantTimeout {
				t.Errorf("cmd.Timeout = %v, want %v", env.things.last(t).Timeout, tt.wantTimeout)
			}
		})
	}
	t.Run("202 even when the command fails", func(t *testing.T) {
		env.things.handle = func(context.Context, ditto.Command) (ditto.Result, error) {
			return ditto.Result{}, ditto.ErrThingNotModifiable.New("no")
		}
		if got := env.do(t, req{method: "DELETE", path: thingURL + "?response-required=false"}); got.status != 202 {
			t.Fatalf("status = %d", got.status)
		}
	})
	t.Run("context deadline follows timeout", func(t *testing.T) {
		env.things.handle = func(ctx context.Context, _ ditto.Command) (ditto.Result, error) {
			dl, ok := ctx.Deadline()
			if !ok || time.Until(dl) > 5*time.Second {
				return ditto.Result{}, fmt.Errorf("deadline %v %v", dl, ok)
			}
			return ditto.Result{Status: 204}, nil
		}
		if got := env.do(t, req{method: "DELETE", path: thingURL + "?timeout=5"}); got.status != 204 {
			t.Fatalf("status = %d (body %s)", got.status, got.body)
		}
	})
}

func TestParseTimeout(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true}, {"42", 42 * time.Second, true}, {"42s", 42 * time.Second, true}, {"250ms", 250 * time.Millisecond, true},
		{"1m", time.Minute, true}, {"60", time.Minute, true}, {"60000ms", time.Minute, true},
		{"61", 0, false}, {"2m", 0, false}, {"", 0, false}, {"s", 0, false}, {"ms", 0, false}, {"1.5s", 0, false},
		{"1h", 0, false}, {"-1s", 0, false}, {" 1", 0, false}, {"99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTimeout(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("parseTimeout(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
			if err != nil && err.Code != "timeout.invalid" {
				t.Errorf("code = %s", err.Code)
			}
		})
	}
}

func FuzzParseTimeout(f *testing.F) {
	for _, s := range []string{"0", "42", "42s", "250ms", "1m", "61", "-1", "1e3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseTimeout(s)
		if err == nil && (d < 0 || d > MaxTimeout) {
			t.Fatalf("parseTimeout(%q) = %v", s, d)
		}
	})
}

func TestHealth(t *testing.T) {
	tests := []struct {
		name       string
		health     func(context.Context) (map[string]any, bool)
		wantStatus int
		wantBody   string
	}{
		{"no health func", nil, 200, `{"status":"UP"}`},
		{"up with details", func(context.Context) (map[string]any, bool) { return map[string]any{"leader": true}, true }, 200, `{"leader":true,"status":"UP"}`},
		{"down", func(context.Context) (map[string]any, bool) { return nil, false }, 503, `{"status":"DOWN"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := mustServer(t, func(_ *Config, d *Deps) { d.Health = tt.health })
			got := env.do(t, req{method: "GET", path: "/health", noAuth: true})
			if got.status != tt.wantStatus || string(got.body) != tt.wantBody {
				t.Fatalf("got %d %s, want %d %s", got.status, got.body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

func TestConcurrencyLimit(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	env := mustServer(t, func(c *Config, _ *Deps) { c.MaxConcurrentRequests = 1 })
	env.things.handle = func(context.Context, ditto.Command) (ditto.Result, error) {
		entered <- struct{}{}
		<-release
		return ditto.Result{Status: 204}, nil
	}
	done := make(chan int, 1)
	go func() {
		hr, _ := http.NewRequest("DELETE", env.base+thingURL, nil)
		hr.SetBasicAuth(testUser, testPass)
		hresp, err := env.client.Do(hr)
		if err != nil {
			done <- 0
			return
		}
		hresp.Body.Close()
		done <- hresp.StatusCode
	}()
	<-entered
	mustDittoError(t, env.do(t, req{method: "GET", path: thingURL}), 429, "too.many.requests")
	if got := env.do(t, req{method: "GET", path: "/health", noAuth: true}); got.status != 200 {
		t.Errorf("/health status %d while saturated", got.status)
	}
	close(release)
	if s := <-done; s != 204 {
		t.Fatalf("first request status = %d", s)
	}
}

func TestLifecycle(t *testing.T) {
	t.Run("close without start", func(t *testing.T) {
		s := New(Config{}, Deps{})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if s.Addr() != nil {
			t.Error("Addr before start")
		}
		if err := s.Start(t.Context()); err == nil {
			t.Error("Start after Close succeeded")
		}
	})
	t.Run("failed start", func(t *testing.T) {
		s := New(Config{Addr: "256.0.0.1:bad"}, Deps{})
		if err := s.Start(t.Context()); err == nil {
			t.Fatal("Start succeeded on a bad address")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("double start", func(t *testing.T) {
		env := mustServer(t, nil)
		if err := env.srv.Start(t.Context()); err == nil {
			t.Fatal("second Start succeeded")
		}
	})
	t.Run("ctx cancel stops", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		s := New(Config{Addr: "127.0.0.1:0"}, Deps{})
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		addr := s.Addr().String()
		cancel()
		waitFor(t, 5*time.Second, func() error {
			resp, err := http.Get("http://" + addr + "/health")
			if err == nil {
				resp.Body.Close()
				return errors.New("still serving")
			}
			return nil
		})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("nil services", func(t *testing.T) {
		env := mustServer(t, func(_ *Config, d *Deps) { d.Things, d.Policies = nil, nil })
		mustDittoError(t, env.do(t, req{method: "GET", path: thingURL}), 503, "things:thing.unavailable")
		mustDittoError(t, env.do(t, req{method: "GET", path: "/api/2/things?ids=ns:a"}), 503, "things:thing.unavailable")
		mustDittoError(t, env.do(t, req{method: "GET", path: "/api/2/policies/ns:p"}), 503, "policies:policy.unavailable")
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"default", DefaultConfig(), true},
		{"zero", Config{}, true},
		{"bad namespace", Config{DefaultNamespace: "1x"}, false},
		{"bad user", Config{Users: map[string]string{"a:b": "pw"}}, false},
		{"empty password", Config{Users: map[string]string{"a": ""}}, false},
		{"negative body", Config{MaxBodyBytes: -1}, false},
		{"negative timeout", Config{IdleTimeout: -1}, false},
		{"write timeout too short", Config{WriteTimeout: time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestNewUUID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		u := newUUID()
		if len(u) != 36 || u[14] != '4' || !strings.ContainsRune("89ab", rune(u[19])) || u[8] != '-' {
			t.Fatalf("bad uuid %q", u)
		}
		if seen[u] {
			t.Fatalf("duplicate uuid %q", u)
		}
		seen[u] = true
	}
}

// waitFor polls f until it returns nil or d passes.
func waitFor(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", d, err)
		}
		poll := time.NewTimer(5 * time.Millisecond) // poll interval, not synchronisation
		<-poll.C
	}
}

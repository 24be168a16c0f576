package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/dittonode/dittonode/ditto"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestThingRoutes sends every thing route and method over HTTP and checks
// the command that reaches the things service.
func TestThingRoutes(t *testing.T) {
	env := mustServer(t, nil)
	const id = "org.eclipse.ditto:fancy-thing"
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		want   ditto.Command
	}{
		{"get thing", "GET", "/things/" + id, "", ditto.Command{Action: ditto.ActionRetrieve, Entity: id}},
		{"put thing", "PUT", "/things/" + id, `{"attributes":{}}`, ditto.Command{Action: ditto.ActionModify, Entity: id, Value: map[string]any{"attributes": map[string]any{}}}},
		{"patch thing", "PATCH", "/things/" + id, `{"a":null}`, ditto.Command{Action: ditto.ActionMerge, Entity: id, Value: map[string]any{"a": nil}}},
		{"delete thing", "DELETE", "/things/" + id, "", ditto.Command{Action: ditto.ActionDelete, Entity: id}},
		{"thing trailing slash", "GET", "/things/" + id + "/", "", ditto.Command{Action: ditto.ActionRetrieve, Entity: id}},
		{"encoded id", "GET", "/things/ns:foo%20bar", "", ditto.Command{Action: ditto.ActionRetrieve, Entity: "ns:foo bar"}},
		{"get policyId", "GET", "/things/" + id + "/policyId", "", ditto.Command{Action: ditto.ActionRetrieve, Entity: id, Path: ditto.Pointer{"policyId"}}},
		{"put policyId", "PUT", "/things/" + id + "/policyId", `"ns:p"`, ditto.Command{Action: ditto.ActionModify, Entity: id, Path: ditto.Pointer{"policyId"}, Value: "ns:p"}},
		{"patch policyId", "PATCH", "/things/" + id + "/policyId", `"ns:p"`, ditto.Command{Action: ditto.ActionMerge, Entity: id, Path: ditto.Pointer{"policyId"}, Value: "ns:p"}},
		{"get definition", "GET", "/things/" + id + "/definition", "", ditto.Command{Action: ditto.ActionRetrieve, Entity: id, Path: ditto.Pointer{"definition"}}},
		{"delete definition", "DELETE", "/things/" + id + "/definition", "", ditto.Command{Action: ditto.ActionDelete, Entity: id, Path: ditto.Pointer{"definition"}}},
		{"get attributes", "GET", "/things/" + id + "/attributes", "", ditto.Command{Action: ditto.ActionRetrieve, Entity: id, Path: ditto.Pointer{"attributes"}}},
		{"put attribute deep", "PUT", "/things/" + id + "/attributes/location/floor", `3`, ditto.Command{Action: ditto.ActionModify, Entity: id, Path: ditto.Pointer{"attributes", "location", "floor"}, Value: jsonNumber("3")}},
		{"encoded attribute key", "GET", "/things/" + id + "/attributes/a%20b/%C3%BC", "", ditto.Command{Action: ditto.ActionRetrieve, Entity: id, Path: ditto.Pointer{"attributes", "a b", "ü"}}},
		{"tilde key", "GET", "/things/" + id + "/attributes/a~0b", "", ditto.Command{Action: ditto.ActionRetrieve, Entity: id, Path: ditto.Pointer{"attributes", "a~b"}}},
		{"patch attribute", "PATCH", "/things/" + id + "/attributes/x", `{"y":1}`, ditto.Command{Action: ditto.ActionMerge, Entity: id, Path: ditto.Pointer{"attributes", "x"}, Value: map[string]any{"y": jsonNumber("1")}}},
		{"delete attribute", "DELETE", "/things/" + id + "/attributes/x", "", ditto.Command{Action: ditto.ActionDelete, Entity: id, Path: ditto.Pointer{"attributes", "x"}}},
		{"get features", "GET", "/things/" + id + "/features", "", ditto.Command{Action: ditto.ActionRetrieve, Entity: id, Path: ditto.Pointer{"features"}}},
		{"get feature", "GET", "/things/" + id + "/features/lamp", "", ditto.Command{Action: ditto.ActionRetrieve, Entity: id, Path: ditto.Pointer{"features", "lamp"}}},
		{"put feature definition", "PUT", "/things/" + id + "/features/lamp/definition", `["a:b:1"]`, ditto.Command{Action: ditto.ActionModify, Entity: id, Path: ditto.Pointer{"features", "lamp", "definition"}, Value: []any{"a:b:1"}}},
		{"get properties", "GET", "/things/" + id + "/features/lamp/properties", "", ditto.Command{Action: ditto.ActionRetrieve, Entity: id, Path: ditto.Pointer{"features", "lamp", "properties"}}},
		{"put property", "PUT", "/things/" + id + "/features/lamp/properties/on", `true`, ditto.Command{Action: ditto.ActionModify, Entity: id, Path: ditto.Pointer{"features", "lamp", "properties", "on"}, Value: true}},
		{"delete desired property", "DELETE", "/things/" + id + "/features/lamp/desiredProperties/a/b", "", ditto.Command{Action: ditto.ActionDelete, Entity: id, Path: ditto.Pointer{"features", "lamp", "desiredProperties", "a", "b"}}},
		{"get desired properties", "GET", "/things/" + id + "/features/lamp/desiredProperties", "", ditto.Command{Action: ditto.ActionRetrieve, Entity: id, Path: ditto.Pointer{"features", "lamp", "desiredProperties"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req{method: tt.method, path: "/api/2" + tt.path, body: tt.body}
			switch tt.method {
			case "PUT":
				r.ctype = "application/json"
			case "PATCH":
				r.ctype = "application/merge-patch+json"
			}
			got := env.do(t, r)
			if got.status != http.StatusNoContent {
				t.Fatalf("status = %d, want 204 (body %s)", got.status, got.body)
			}
			assertCommand(t, env.things.last(t), tt.want)
		})
	}
}

// TestPolicyRoutes does the same for policies.
func TestPolicyRoutes(t *testing.T) {
	env := mustServer(t, nil)
	const id = "my.ns:policy-a"
	tests := []struct {
		name   string
		method string
		path   string
		want   ditto.Command
	}{
		{"get policy", "GET", "", ditto.Command{Action: ditto.ActionRetrieve, Entity: id}},
		{"put policy", "PUT", "", ditto.Command{Action: ditto.ActionModify, Entity: id, Value: map[string]any{}}},
		{"delete policy", "DELETE", "", ditto.Command{Action: ditto.ActionDelete, Entity: id}},
		{"entries", "PUT", "/entries", ditto.Command{Action: ditto.ActionModify, Entity: id, Path: ditto.Pointer{"entries"}, Value: map[string]any{}}},
		{"entry", "DELETE", "/entries/owner", ditto.Command{Action: ditto.ActionDelete, Entity: id, Path: ditto.Pointer{"entries", "owner"}}},
		{"subjects", "GET", "/entries/owner/subjects", ditto.Command{Action: ditto.ActionRetrieve, Entity: id, Path: ditto.Pointer{"entries", "owner", "subjects"}}},
		{"subject", "PUT", "/entries/owner/subjects/google:the%20sub", ditto.Command{Action: ditto.ActionModify, Entity: id, Path: ditto.Pointer{"entries", "owner", "subjects", "google:the sub"}, Value: map[string]any{}}},
		{"resources", "GET", "/entries/owner/resources", ditto.Command{Action: ditto.ActionRetrieve, Entity: id, Path: ditto.Pointer{"entries", "owner", "resources"}}},
		{"resource encoded", "GET", "/entries/owner/resources/thing:%2Ffeatures%2Fx", ditto.Command{Action: ditto.ActionRetrieve, Entity: id, Path: ditto.Pointer{"entries", "owner", "resources", "thing:/features/x"}}},
		{"resource plain", "DELETE", "/entries/owner/resources/thing:/features/x", ditto.Command{Action: ditto.ActionDelete, Entity: id, Path: ditto.Pointer{"entries", "owner", "resources", "thing:/features/x"}}},
		{"resource root", "PUT", "/entries/owner/resources/thing:/", ditto.Command{Action: ditto.ActionModify, Entity: id, Path: ditto.Pointer{"entries", "owner", "resources", "thing:/"}, Value: map[string]any{}}},
		{"namespaces", "PUT", "/entries/owner/namespaces", ditto.Command{Action: ditto.ActionModify, Entity: id, Path: ditto.Pointer{"entries", "owner", "namespaces"}, Value: map[string]any{}}},
		{"importable", "GET", "/entries/owner/importable", ditto.Command{Action: ditto.ActionRetrieve, Entity: id, Path: ditto.Pointer{"entries", "owner", "importable"}}},
		{"allowedAdditions", "GET", "/entries/owner/allowedAdditions", ditto.Command{Action: ditto.ActionRetrieve, Entity: id, Path: ditto.Pointer{"entries", "owner", "allowedAdditions"}}},
		{"references", "DELETE", "/entries/owner/references", ditto.Command{Action: ditto.ActionDelete, Entity: id, Path: ditto.Pointer{"entries", "owner", "references"}}},
		{"imports", "DELETE", "/imports", ditto.Command{Action: ditto.ActionDelete, Entity: id, Path: ditto.Pointer{"imports"}}},
		{"import", "PUT", "/imports/ns:tmpl", ditto.Command{Action: ditto.ActionModify, Entity: id, Path: ditto.Pointer{"imports", "ns:tmpl"}, Value: map[string]any{}}},
		{"import entries", "GET", "/imports/ns:tmpl/entries", ditto.Command{Action: ditto.ActionRetrieve, Entity: id, Path: ditto.Pointer{"imports", "ns:tmpl", "entries"}}},
		{"import transitive", "PUT", "/imports/ns:tmpl/transitiveImports", ditto.Command{Action: ditto.ActionModify, Entity: id, Path: ditto.Pointer{"imports", "ns:tmpl", "transitiveImports"}, Value: map[string]any{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req{method: tt.method, path: "/api/2/policies/" + id + tt.path}
			if tt.method == "PUT" {
				r.ctype, r.body = "application/json", "{}"
			}
			got := env.do(t, r)
			if got.status != http.StatusNoContent {
				t.Fatalf("status = %d, want 204 (body %s)", got.status, got.body)
			}
			assertCommand(t, env.policies.last(t), tt.want)
		})
	}
}

// TestRouteErrors covers unknown paths, bad pointers and wrong methods.
func TestRouteErrors(t *testing.T) {
	env := mustServer(t, nil)
	tests := []struct {
		name   string
		method string
		path   string
		status int
		code   string
		allow  string
	}{
		{"unknown root", "GET", "/api/2/nothing", 404, "gateway:resource.notfound", ""},
		{"outside api", "GET", "/api/1/things", 404, "gateway:resource.notfound", ""},
		{"unknown thing sub", "GET", "/api/2/things/ns:t/foo", 404, "gateway:resource.notfound", ""},
		{"policyId child", "GET", "/api/2/things/ns:t/policyId/x", 404, "gateway:resource.notfound", ""},
		{"feature unknown sub", "GET", "/api/2/things/ns:t/features/f/other", 404, "gateway:resource.notfound", ""},
		{"feature definition child", "GET", "/api/2/things/ns:t/features/f/definition/x", 404, "gateway:resource.notfound", ""},
		{"policies collection", "GET", "/api/2/policies", 404, "gateway:resource.notfound", ""},
		{"policy unknown sub", "GET", "/api/2/policies/ns:p/foo", 404, "gateway:resource.notfound", ""},
		{"entry unknown sub", "GET", "/api/2/policies/ns:p/entries/l/foo", 404, "gateway:resource.notfound", ""},
		{"import too deep", "GET", "/api/2/policies/ns:p/imports/ns:i/entries/x", 404, "gateway:resource.notfound", ""},
		{"empty pointer segment", "GET", "/api/2/things/ns:t/attributes/a//b", 400, "json.pointer.invalid", ""},
		{"encoded slash in key", "GET", "/api/2/things/ns:t/attributes/a%2Fb", 400, "json.key.invalid", ""},
		{"control char key", "GET", "/api/2/things/ns:t/attributes/a%01", 400, "json.pointer.invalid", ""},
		// Ditto does not merge double slashes: an empty ID is no resource (ThingsIT).
		{"empty thing id", "GET", "/api/2/things//attributes", 404, "gateway:resource.notfound", ""},
		{"empty policy id", "GET", "/api/2/policies//entries", 404, "gateway:resource.notfound", ""},
		// The method is checked before the pointer (AttributesIT: 405, not 400).
		{"post on malformed pointer", "POST", "/api/2/things/ns:t/attributes//", 405, "gateway:method.notallowed", "GET, PUT, PATCH, DELETE"},
		{"patch policy", "PATCH", "/api/2/policies/ns:p", 405, "gateway:method.notallowed", "GET, PUT, DELETE"},
		{"post thing", "POST", "/api/2/things/ns:t", 405, "gateway:method.notallowed", "GET, PUT, PATCH, DELETE"},
		{"delete things", "DELETE", "/api/2/things", 405, "gateway:method.notallowed", "GET, POST"},
		{"delete entries", "DELETE", "/api/2/policies/ns:p/entries", 405, "gateway:method.notallowed", "GET, PUT"},
		{"delete policyId", "DELETE", "/api/2/things/ns:t/policyId", 400, "things:policyId.notdeletable", ""},
		{"post whoami", "POST", "/api/2/whoami", 405, "gateway:method.notallowed", "GET"},
		{"post health", "POST", "/health", 405, "gateway:method.notallowed", "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := env.do(t, req{method: tt.method, path: tt.path})
			mustDittoError(t, got, tt.status, tt.code)
			if a := got.header.Get("Allow"); a != tt.allow {
				t.Errorf("Allow = %q, want %q", a, tt.allow)
			}
		})
	}
	if n := env.things.count(); n != 0 {
		t.Errorf("%d commands reached the things service, want 0", n)
	}
}

// assertCommand compares the interesting fields of a command.
func assertCommand(t *testing.T, got, want ditto.Command) {
	t.Helper()
	got.Headers, got.Auth, got.Timeout = nil, ditto.Auth{}, 0
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("command mismatch (-want +got):\n%s", diff)
	}
}

func jsonNumber(s string) any { return jsonNum(s) }

// FuzzParseRoute: parseRoute must never panic, and what it accepts must be
// a well-formed route.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{
		"/things", "/things/ns:t", "/things/ns:t/attributes/a/b", "/things/ns:t/features/f/properties/x/y",
		"/things/ns:t/features/f/definition", "/policies/ns:p/entries/l/resources/thing:%2F", "/policies/ns:p/entries/l/resources/thing:/a/",
		"/policies/ns:p/imports/ns:i/entries", "/things/%zz", "//", "/things/ns:t/attributes/%2F", "/things/ns:t/attributes/~0~1", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rt, err := parseRoute(s)
		if err != nil {
			if err.Status != 400 && err.Status != 404 {
				t.Fatalf("parseRoute(%q) status %d", s, err.Status)
			}
			return
		}
		if rt.methods == 0 || (rt.res != resThings && rt.res != resPolicies) {
			t.Fatalf("parseRoute(%q) = %+v: incomplete route", s, rt)
		}
		if !rt.collection && rt.entity == "" {
			t.Fatalf("parseRoute(%q): empty entity", s)
		}
		for _, seg := range rt.path {
			if seg == "" || strings.ContainsAny(seg, "\x00\x01\x7f") {
				t.Fatalf("parseRoute(%q): bad segment %q in %v", s, seg, rt.path)
			}
		}
	})
}

package gateway

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dittonode/dittonode/ditto"
)

// fakeEnforcers hands out fakeEnforcers per policy; it records the lookups.
type fakeEnforcers struct {
	mu       sync.Mutex
	policies map[string]fakeEnforcer
	lookups  []string // "policyID@namespace"
}

func (f *fakeEnforcers) EnforcerFor(policyID, ns string) (ditto.Enforcer, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups = append(f.lookups, policyID+"@"+ns)
	e, ok := f.policies[policyID]
	return e, ok
}

// fakeEnforcer grants unrestricted(type:path, perm) to the subjects listed
// under "type:/path perm".
type fakeEnforcer struct {
	unrestricted func(resType string, path ditto.Pointer, subjects []string, perms ...string) bool
}

func (e fakeEnforcer) Unrestricted(resType string, path ditto.Pointer, subjects []string, perms ...string) bool {
	return e.unrestricted(resType, path, subjects, perms...)
}

func (e fakeEnforcer) Partial(string, ditto.Pointer, []string, ...string) bool { return false }

func (e fakeEnforcer) View(string, ditto.Pointer, any, []string) (any, bool) { return nil, false }

// grantTable is an enforcer answering from "type:/path PERM" -> subjects.
func grantTable(grants map[string][]string) fakeEnforcer {
	return fakeEnforcer{unrestricted: func(resType string, path ditto.Pointer, subjects []string, perms ...string) bool {
		for _, p := range perms {
			allowed := grants[fmt.Sprintf("%s:%s %s", resType, path, p)]
			if !slices.ContainsFunc(subjects, func(s string) bool { return slices.Contains(allowed, s) }) {
				return false
			}
		}
		return true
	}}
}

func checkPermsServer(t *testing.T) (*testEnv, *fakeEnforcers) {
	enf := &fakeEnforcers{policies: map[string]fakeEnforcer{
		"ns:pol": grantTable(map[string][]string{
			"thing:/features/lamp READ":  {"nginx:ditto"},
			"thing:/features/lamp WRITE": {"nginx:ditto"},
			"message:/inbox WRITE":       {"nginx:other"},
			"policy:/ READ":              {"nginx:ditto"},
		}),
	}}
	things := map[string]string{"ns:lamp": "ns:pol", "other.ns:lamp": "ns:pol"}
	env := mustServer(t, func(c *Config, d *Deps) {
		d.Enforcers = enf
		d.ThingState = func(id string) ([]byte, string, bool) { p, ok := things[id]; return []byte(`{}`), p, ok }
	})
	return env, enf
}

func TestCheckPermissions(t *testing.T) {
	env, enf := checkPermsServer(t)
	body := `{
		"z-read": {"resource":"thing:/features/lamp","entityId":"ns:lamp","hasPermissions":["READ"]},
		"a-readwrite": {"resource":"thing:/features/lamp/","entityId":"ns:lamp","hasPermissions":["READ","WRITE"]},
		"exec": {"resource":"thing:/features/lamp","entityId":"ns:lamp","hasPermissions":["READ","EXECUTE"]},
		"message": {"resource":"message:/inbox","entityId":"ns:lamp","hasPermissions":["WRITE"]},
		"missing-thing": {"resource":"thing:/","entityId":"ns:nope","hasPermissions":["READ"]},
		"policy": {"resource":"policy:/","entityId":"ns:pol","hasPermissions":["READ"]},
		"missing-policy": {"resource":"policy:/","entityId":"ns:gone","hasPermissions":["READ"]},
		"other-ns": {"resource":"thing:/features/lamp","entityId":"other.ns:lamp","hasPermissions":["READ"]}
	}`
	r := env.do(t, req{method: "POST", path: "/api/2/checkPermissions", body: body, ctype: "application/json"})
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	want := `{"z-read":true,"a-readwrite":true,"exec":false,"message":false,"missing-thing":false,"policy":true,"missing-policy":false,"other-ns":true}`
	if string(r.body) != want {
		t.Errorf("body\n got %s\nwant %s", r.body, want)
	}
	wantLookups := []string{"ns:pol@ns", "ns:pol@ns", "ns:pol@ns", "ns:pol@ns", "ns:pol@ns", "ns:gone@ns", "ns:pol@other.ns"}
	if diff := cmp.Diff(wantLookups, enf.lookups); diff != "" {
		t.Errorf("enforcer lookups (-want +got):\n%s", diff)
	}

	r = env.do(t, req{method: "POST", path: "/api/2/checkPermissions", body: `{}`, ctype: "application/json"})
	if r.status != 200 || string(r.body) != "{}" {
		t.Errorf("empty check: %d %s", r.status, r.body)
	}
}

func TestCheckPermissionsInvalid(t *testing.T) {
	env, _ := checkPermsServer(t)
	ok := `"resource":"thing:/","entityId":"ns:lamp","hasPermissions":["READ"]`
	for _, c := range []struct {
		name, method, ctype, body string
		status                    int
		code                      string
	}{
		{"GET", "GET", "", "", 405, "gateway:method.notallowed"},
		{"media type", "POST", "text/plain", `{}`, 415, "mediatype.unsupported"},
		{"not JSON", "POST", "application/json", `{`, 400, "json.format.invalid"},
		{"array", "POST", "application/json", `[]`, 400, "json.format.invalid"},
		{"check not object", "POST", "application/json", `{"a":1}`, 400, "json.format.invalid"},
		{"missing resource", "POST", "application/json", `{"a":{"entityId":"ns:lamp","hasPermissions":["READ"]}}`, 400, "json.field.missing"},
		{"missing permissions", "POST", "application/json", `{"a":{"resource":"thing:/","entityId":"ns:lamp"}}`, 400, "json.field.missing"},
		{"empty permissions", "POST", "application/json", `{"a":{"resource":"thing:/","entityId":"ns:lamp","hasPermissions":[]}}`, 400, "json.format.invalid"},
		{"bad resource type", "POST", "application/json", `{"a":{"resource":"device:/","entityId":"ns:lamp","hasPermissions":["READ"]}}`, 400, "policies:resource.invalid"},
		{"no resource type", "POST", "application/json", `{"a":{"resource":"/features","entityId":"ns:lamp","hasPermissions":["READ"]}}`, 400, "policies:resource.invalid"},
		{"bad pointer", "POST", "application/json", `{"a":{"resource":"thing:/a//b","entityId":"ns:lamp","hasPermissions":["READ"]}}`, 400, "policies:resource.invalid"},
		{"bad entity", "POST", "application/json", `{"a":{"resource":"thing:/","entityId":"nope","hasPermissions":["READ"]}}`, 400, "entity.id.invalid"},
		{"duplicate key", "POST", "application/json", `{"a":{` + ok + `},"a":{` + ok + `}}`, 400, "json.format.invalid"},
		{"trailing data", "POST", "application/json", `{"a":{` + ok + `}} {}`, 400, "json.format.invalid"},
		{"too large", "POST", "application/json", `{"a":"` + strings.Repeat("x", DefaultMaxBodyBytes) + `"}`, 413, "gateway:request.toolarge"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := env.do(t, req{method: c.method, path: "/api/2/checkPermissions", body: c.body, ctype: c.ctype})
			mustDittoError(t, r, c.status, c.code)
		})
	}
}

func TestCheckPermissionsUnwired(t *testing.T) {
	env := mustServer(t, nil)
	r := env.do(t, req{method: "POST", path: "/api/2/checkPermissions", body: `{}`, ctype: "application/json"})
	mustDittoError(t, r, 503, "gateway:service.unavailable")
}

// FuzzCheckPermissionsBody: the body parser never panics and accepts only
// well-formed checks.
func FuzzCheckPermissionsBody(f *testing.F) {
	for _, s := range []string{
		`{"a":{"resource":"thing:/features/x","entityId":"ns:t","hasPermissions":["READ","WRITE"]}}`,
		`{"a":{"resource":"policy:/entries","entityId":"ns:p","hasPermissions":["READ"]},"b":{}}`,
		`{}`, `[]`, `{"a":null}`, `{"a":{"resource":7}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		checks, derr := parsePermissionChecks([]byte(body))
		if derr != nil {
			if derr.Status != 400 {
				t.Fatalf("status %d", derr.Status)
			}
			return
		}
		for _, c := range checks {
			if len(c.perms) == 0 || c.entityID.Namespace == "" && c.entityID.Name == "" {
				t.Fatalf("accepted an incomplete check %+v", c)
			}
		}
	})
}

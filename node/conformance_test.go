package node

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The conformance suite checks the single node's HTTP API for things and
// policies row by row against ditto-spec.md §1–3 and §9 and against Ditto's
// own system tests (ditto-testing: ThingsIT, AttributesIT, MergeIT,
// ThingsWithCopiedPoliciesIT, ConditionalHeaders*IT). Each group starts one
// real node; the rows of a group run in order and build on each other.

// row is one request and what Ditto answers to it.
type row struct {
	name   string
	user   string // basic user; "" means ditto, "-" means no credentials
	method string
	path   string // below /api/2
	body   string
	hdr    []string // header name, value pairs (Content-Type overrides the default)
	status int
	code   string // the error code of a Ditto error body
	// etag is the expected ETag header: exact, "hash" for any "hash:" tag,
	// "rev" for any "rev:" tag, "-" for none; "" is not checked.
	etag string
	// loc is the expected suffix of the Location header; "-" for none.
	loc string
	// want is the exact JSON body (compared decoded); "" is not checked.
	want string
	// check runs further assertions.
	check func(t *testing.T, r response)
}

type conformance struct {
	t       *testing.T
	n       *Node
	clients map[string]client
	// etags remembers ETags of earlier rows by row name (for If-Match rows).
	etags map[string]string
}

func newConformance(t *testing.T, cb func(*Config)) *conformance {
	t.Helper()
	n := startNode(t, t.TempDir(), cb)
	c := &conformance{t: t, n: n, clients: map[string]client{}, etags: map[string]string{}}
	for _, u := range []string{"ditto", "bob"} {
		c.clients[u] = newClient(t, n, u)
	}
	c.clients["-"] = client{t: t, base: "http://" + n.HTTPAddr().String()}
	return c
}

// run sends the rows in order as subtests.
func (c *conformance) run(rows []row) {
	c.t.Helper()
	for _, rw := range rows {
		c.t.Run(rw.name, func(t *testing.T) {
			user := rw.user
			if user == "" {
				user = "ditto"
			}
			cl := c.clients[user]
			cl.t = t
			r := cl.do(rw.method, "/api/2"+rw.path, rw.body, rw.hdr...)
			if et := r.header.Get("ETag"); et != "" {
				c.etags[rw.name] = et
			}
			if r.status != rw.status {
				t.Fatalf("%s %s: status %d, want %d; body %s", rw.method, rw.path, r.status, rw.status, r.body)
			}
			if rw.code != "" {
				checkErrorBody(t, r, rw.status, rw.code)
			}
			checkETag(t, r, rw.etag)
			switch {
			case rw.loc == "-":
				if l := r.header.Get("Location"); l != "" {
					t.Errorf("Location %q, want none", l)
				}
			case rw.loc != "":
				if l := r.header.Get("Location"); !strings.HasSuffix(l, rw.loc) {
					t.Errorf("Location %q, want suffix %q", l, rw.loc)
				}
			}
			if rw.want != "" {
				checkJSON(t, r.body, rw.want)
			}
			if r.header.Get("correlation-id") == "" {
				t.Errorf("no correlation-id in the response")
			}
			if rw.check != nil {
				rw.check(t, r)
			}
		})
	}
}

func checkErrorBody(t *testing.T, r response, status int, code string) {
	t.Helper()
	var e struct {
		Status  int    `json:"status"`
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	if e.Status != status || e.Error != code || e.Message == "" {
		t.Errorf("error body %s, want status %d and error %q", r.body, status, code)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error Content-Type %q", ct)
	}
}

func checkETag(t *testing.T, r response, want string) {
	t.Helper()
	got := r.header.Get("ETag")
	switch want {
	case "":
	case "-":
		if got != "" {
			t.Errorf("ETag %q, want none", got)
		}
	case "hash", "rev":
		if !strings.HasPrefix(got, `"`+want+":") || !strings.HasSuffix(got, `"`) {
			t.Errorf("ETag %q, want a %s tag", got, want)
		}
	default:
		if got != want {
			t.Errorf("ETag %q, want %q", got, want)
		}
	}
}

func checkJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %q: %v", want, err)
	}
	if d := cmp.Diff(w, g); d != "" {
		t.Errorf("body mismatch (-want +got):\n%s", d)
	}
}

// keys asserts the exact top-level keys of a JSON object body.
func keys(want ...string) func(t *testing.T, r response) {
	return func(t *testing.T, r response) {
		t.Helper()
		m := r.json(t)
		got := make([]string, 0, len(m))
		for k := range m {
			got = append(got, k)
		}
		if d := cmp.Diff(want, got, cmpSorted); d != "" {
			t.Errorf("keys (-want +got):\n%s\nbody %s", d, r.body)
		}
	}
}

var cmpSorted = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
})

func emptyBody(t *testing.T, r response) {
	t.Helper()
	if len(r.body) != 0 {
		t.Errorf("body %q, want none", r.body)
	}
}

const (
	thingT1 = "/things/org.acme:t1"
	ownerRW = `{"grant":["READ","WRITE"],"revoke":[]}`
)

// TestConformanceThings covers ditto-spec §1 and §3.1: every thing path and
// method, 201 vs 204, Location, ETag, bodies, field selectors, multi-get,
// POST, special fields and the 404 codes of missing sub-resources.
func TestConformanceThings(t *testing.T) {
	c := newConformance(t, nil)
	c.run([]row{
		{name: "create thing", method: "PUT", path: thingT1,
			body:   `{"attributes":{"manufacturer":"ACME","location":{"floor":3}},"features":{"lamp":{"properties":{"on":true,"color":"red"}},"fan":{"properties":{"on":false,"rpm":5}}}}`,
			status: 201, etag: `"rev:1"`, loc: "/api/2/things/org.acme:t1",
			want: `{"thingId":"org.acme:t1","policyId":"org.acme:t1","attributes":{"manufacturer":"ACME","location":{"floor":3}},"features":{"lamp":{"properties":{"on":true,"color":"red"}},"fan":{"properties":{"on":false,"rpm":5}}}}`},
		{name: "get thing: five keys, no special fields", method: "GET", path: thingT1, status: 200, etag: `"rev:1"`,
			check: keys("thingId", "policyId", "attributes", "features")},
		{name: "default policy", method: "GET", path: "/policies/org.acme:t1", status: 200, etag: `"rev:1"`,
			want: `{"policyId":"org.acme:t1","entries":{"DEFAULT":{"subjects":{"nginx:ditto":{"type":"generated"}},"resources":{"thing:/":` + ownerRW + `,"policy:/":` + ownerRW + `,"message:/":` + ownerRW + `}}}}`},
		{name: "put existing thing", method: "PUT", path: thingT1,
			body:   `{"policyId":"org.acme:t1","attributes":{"manufacturer":"ACME","location":{"floor":3}},"features":{"lamp":{"properties":{"on":true,"color":"red"}},"fan":{"properties":{"on":false,"rpm":5}}}}`,
			status: 204, etag: `"rev:2"`, loc: "-", check: emptyBody},
		{name: "put thing without policyId keeps it", method: "PUT", path: thingT1,
			body:   `{"attributes":{"manufacturer":"ACME","location":{"floor":3}},"features":{"lamp":{"properties":{"on":true,"color":"red"}},"fan":{"properties":{"on":false,"rpm":5}}}}`,
			status: 204, etag: `"rev:3"`},
		{name: "get policyId", method: "GET", path: thingT1 + "/policyId", status: 200, want: `"org.acme:t1"`, etag: "hash"},
		{name: "delete policyId not allowed", method: "DELETE", path: thingT1 + "/policyId", status: 400, code: "things:policyId.notdeletable"},
		{name: "put new attribute", method: "PUT", path: thingT1 + "/attributes/serial", body: `"S-1"`,
			status: 201, etag: "hash", loc: "/api/2/things/org.acme:t1/attributes/serial", want: `"S-1"`},
		{name: "put existing attribute", method: "PUT", path: thingT1 + "/attributes/serial", body: `"S-2"`,
			status: 204, etag: "hash", loc: "-", check: emptyBody},
		{name: "get attribute", method: "GET", path: thingT1 + "/attributes/serial", status: 200, want: `"S-2"`,
			check: func(t *testing.T, r response) {
				if got, want := r.header.Get("ETag"), c.etags["put existing attribute"]; got != want {
					t.Errorf("GET ETag %q, want the ETag of the write %q", got, want)
				}
			}},
		{name: "get nested attribute", method: "GET", path: thingT1 + "/attributes/location/floor", status: 200, want: `3`, etag: "hash"},
		{name: "put attribute null", method: "PUT", path: thingT1 + "/attributes/serial", body: `null`, status: 204},
		{name: "get null attribute", method: "GET", path: thingT1 + "/attributes/serial", status: 200, want: `null`},
		{name: "get missing attribute", method: "GET", path: thingT1 + "/attributes/nope", status: 404, code: "things:attribute.notfound"},
		{name: "get attribute of missing thing", method: "GET", path: "/things/org.acme:missing/attributes/a", status: 404, code: "things:thing.notfound"},
		{name: "get attributes of missing thing", method: "GET", path: "/things/org.acme:missing/attributes", status: 404, code: "things:thing.notfound"},
		{name: "put attribute of missing thing", method: "PUT", path: "/things/org.acme:missing/attributes/a", body: `1`, status: 404, code: "things:thing.notfound"},
		{name: "delete missing thing", method: "DELETE", path: "/things/org.acme:missing", status: 404, code: "things:thing.notfound"},
		{name: "special chars attribute key", method: "PUT", path: thingT1 + "/attributes/" + "%21%22%23%24%25%26%27%2A%2B%3A%3B%3D%3F%40%5B%5D%7B%7C%7D%20aZ0", body: `42`, status: 201},
		{name: "special chars fields", method: "GET", path: thingT1 + "?fields=attributes(%21%22%23%24%25%26%27%2A%2B%3A%3B%3D%3F%40%5B%5D%7B%7C%7D%20aZ0)", status: 200,
			want: `{"attributes":{"!\"#$%&'*+:;=?@[]{|} aZ0":42}}`},
		{name: "double slash in attribute path", method: "GET", path: thingT1 + "/attributes//", status: 400,
			check: func(t *testing.T, r response) {
				if !strings.Contains(string(r.body), "Consecutive slashes in JSON pointers are not supported") {
					t.Errorf("body %s", r.body)
				}
			}},
		{name: "double slash in attribute key", method: "PUT", path: thingT1 + "/attributes/sla//shes", body: `13`, status: 400},
		{name: "POST on attributes is 405 first", method: "POST", path: thingT1 + "/attributes//", body: `{}`, status: 405},
		{name: "double slash thing id", method: "GET", path: "/things//org.acme:t1", status: 404},
		{name: "double slash things", method: "POST", path: "/things//", body: `{}`, status: 404},
		{name: "attribute key with slash in body", method: "PUT", path: thingT1 + "/attributes", body: `{"valid":{"not/valid":true}}`, status: 400, code: "json.key.invalid"},
		{name: "put attributes existing", method: "PUT", path: thingT1 + "/attributes", body: `{"manufacturer":"ACME","location":{"floor":3},"x":1}`, status: 204, etag: "hash"},
		{name: "delete attributes", method: "DELETE", path: thingT1 + "/attributes", status: 204, etag: "-", check: emptyBody},
		{name: "get deleted attributes", method: "GET", path: thingT1 + "/attributes", status: 404, code: "things:attributes.notfound"},
		{name: "put attributes new", method: "PUT", path: thingT1 + "/attributes", body: `{"manufacturer":"ACME","location":{"floor":3}}`,
			status: 201, etag: "hash", loc: "/api/2/things/org.acme:t1/attributes", want: `{"manufacturer":"ACME","location":{"floor":3}}`},
		{name: "put definition new", method: "PUT", path: thingT1 + "/definition", body: `"org.acme:model:1.0.0"`, status: 201, loc: "/api/2/things/org.acme:t1/definition", want: `"org.acme:model:1.0.0"`, etag: "hash"},
		{name: "get definition", method: "GET", path: thingT1 + "/definition", status: 200, want: `"org.acme:model:1.0.0"`},
		{name: "put definition existing", method: "PUT", path: thingT1 + "/definition", body: `"org.acme:model:2.0.0"`, status: 204},
		{name: "put invalid definition", method: "PUT", path: thingT1 + "/definition", body: `"no-definition"`, status: 400, code: "things:definition.identifier.invalid"},
		{name: "patch definition", method: "PATCH", path: thingT1 + "/definition", body: `"org.acme:model:3.0.0"`, status: 204},
		{name: "delete definition", method: "DELETE", path: thingT1 + "/definition", status: 204},
		{name: "get deleted definition", method: "GET", path: thingT1 + "/definition", status: 404, code: "things:definition.notfound"},
		{name: "get features", method: "GET", path: thingT1 + "/features", status: 200, etag: "hash",
			want: `{"lamp":{"properties":{"on":true,"color":"red"}},"fan":{"properties":{"on":false,"rpm":5}}}`},
		{name: "get feature", method: "GET", path: thingT1 + "/features/lamp", status: 200, want: `{"properties":{"on":true,"color":"red"}}`},
		{name: "get missing feature", method: "GET", path: thingT1 + "/features/nope", status: 404, code: "things:feature.notfound"},
		{name: "get property of missing feature", method: "GET", path: thingT1 + "/features/nope/properties/x", status: 404, code: "things:feature.notfound"},
		{name: "put property of missing feature", method: "PUT", path: thingT1 + "/features/nope/properties/x", body: `1`, status: 404, code: "things:feature.notfound"},
		{name: "get missing property", method: "GET", path: thingT1 + "/features/lamp/properties/nope", status: 404, code: "things:feature.property.notfound"},
		{name: "put new property", method: "PUT", path: thingT1 + "/features/lamp/properties/dim", body: `50`, status: 201,
			loc: "/api/2/things/org.acme:t1/features/lamp/properties/dim", want: `50`, etag: "hash"},
		{name: "delete property", method: "DELETE", path: thingT1 + "/features/lamp/properties/dim", status: 204, check: emptyBody},
		{name: "get deleted property", method: "GET", path: thingT1 + "/features/lamp/properties/dim", status: 404, code: "things:feature.property.notfound"},
		{name: "delete deleted property", method: "DELETE", path: thingT1 + "/features/lamp/properties/dim", status: 404, code: "things:feature.property.notfound"},
		{name: "put feature new", method: "PUT", path: thingT1 + "/features/heater", body: `{}`, status: 201, loc: "/api/2/things/org.acme:t1/features/heater", want: `{}`},
		{name: "get properties of empty feature", method: "GET", path: thingT1 + "/features/heater/properties", status: 404, code: "things:feature.properties.notfound"},
		{name: "put feature definition", method: "PUT", path: thingT1 + "/features/heater/definition", body: `["org.acme:heater:1.0.0"]`, status: 201, want: `["org.acme:heater:1.0.0"]`},
		{name: "get feature definition", method: "GET", path: thingT1 + "/features/heater/definition", status: 200, want: `["org.acme:heater:1.0.0"]`},
		{name: "put desired properties", method: "PUT", path: thingT1 + "/features/heater/desiredProperties", body: `{"t":20}`, status: 201, want: `{"t":20}`},
		{name: "put desired property", method: "PUT", path: thingT1 + "/features/heater/desiredProperties/t", body: `21`, status: 204},
		{name: "get desired property", method: "GET", path: thingT1 + "/features/heater/desiredProperties/t", status: 200, want: `21`},
		{name: "delete desired properties", method: "DELETE", path: thingT1 + "/features/heater/desiredProperties", status: 204},
		{name: "get deleted desired properties", method: "GET", path: thingT1 + "/features/heater/desiredProperties", status: 404, code: "things:feature.desiredProperties.notfound"},
		{name: "get missing desired property", method: "GET", path: thingT1 + "/features/heater/desiredProperties/t", status: 404, code: "things:feature.desiredProperty.notfound"},
		{name: "delete feature definition", method: "DELETE", path: thingT1 + "/features/heater/definition", status: 204},
		{name: "get deleted feature definition", method: "GET", path: thingT1 + "/features/heater/definition", status: 404, code: "things:feature.definition.notfound"},
		{name: "delete feature", method: "DELETE", path: thingT1 + "/features/heater", status: 204},
		{name: "feature id star", method: "PUT", path: thingT1 + "/features/*", body: `{}`, status: 400, code: "json.key.invalid"},

		// Field selectors.
		{name: "fields thingId,attributes", method: "GET", path: thingT1 + "?fields=thingId,attributes", status: 200,
			want: `{"thingId":"org.acme:t1","attributes":{"manufacturer":"ACME","location":{"floor":3}}}`},
		{name: "fields group", method: "GET", path: thingT1 + "?fields=attributes(location/floor)", status: 200,
			want: `{"attributes":{"location":{"floor":3}}}`},
		{name: "fields feature wildcard", method: "GET", path: thingT1 + "?fields=features/*/properties/on", status: 200,
			want: `{"features":{"lamp":{"properties":{"on":true}},"fan":{"properties":{"on":false}}}}`},
		{name: "fields special", method: "GET", path: thingT1 + "?fields=thingId,_revision,_namespace,_created,_modified", status: 200,
			check: func(t *testing.T, r response) {
				m := r.json(t)
				if m["_namespace"] != "org.acme" || m["thingId"] != "org.acme:t1" {
					t.Errorf("body %s", r.body)
				}
				if rev, ok := m["_revision"].(float64); !ok || rev < 10 {
					t.Errorf("_revision %v", m["_revision"])
				}
				for _, k := range []string{"_created", "_modified"} {
					if s, _ := m[k].(string); !strings.HasSuffix(s, "Z") {
						t.Errorf("%s = %v, want an ISO-8601 UTC timestamp", k, m[k])
					}
				}
				keys("thingId", "_revision", "_namespace", "_created", "_modified")(t, r)
			}},
		{name: "fields _policy", method: "GET", path: thingT1 + "?fields=_policy", status: 200,
			check: func(t *testing.T, r response) {
				p, _ := r.json(t)["_policy"].(map[string]any)
				if p["policyId"] != "org.acme:t1" || p["entries"] == nil {
					t.Errorf("body %s", r.body)
				}
			}},
		{name: "fields on sub-resource", method: "GET", path: thingT1 + "/attributes?fields=location", status: 200, want: `{"location":{"floor":3}}`},
		{name: "fields invalid root", method: "GET", path: thingT1 + "?fields=nope", status: 400, code: "things:field.selection.invalid"},

		// Multi-get, listing and POST.
		{name: "post thing", method: "POST", path: "/things?namespace=org.post", body: `{"attributes":{"a":1}}`, status: 201, etag: `"rev:1"`,
			check: func(t *testing.T, r response) {
				id, _ := r.json(t)["thingId"].(string)
				if !strings.HasPrefix(id, "org.post:") || len(id) != len("org.post:")+36 {
					t.Errorf("thingId %q", id)
				}
				if l := r.header.Get("Location"); !strings.HasSuffix(l, "/api/2/things/"+id) {
					t.Errorf("Location %q", l)
				}
			}},
		{name: "post thing without body", method: "POST", path: "/things", status: 201,
			check: func(t *testing.T, r response) {
				if id, _ := r.json(t)["thingId"].(string); !strings.HasPrefix(id, "org.eclipse.ditto:") {
					t.Errorf("body %s", r.body)
				}
			}},
		{name: "post thing with thingId", method: "POST", path: "/things", body: `{"thingId":"org.acme:x"}`, status: 400, code: "things:id.notsettable"},
		{name: "post invalid json", method: "POST", path: "/things", body: `{ "some" invalid "json" }`, status: 400, code: "json.format.invalid"},
		{name: "post invalid namespace", method: "POST", path: "/things?namespace=-bad", body: `{}`, status: 400, code: "things:id.invalid"},
		{name: "multi get", method: "GET", path: "/things?ids=org.acme:t1,org.acme:missing&fields=thingId,policyId", status: 200,
			want: `[{"thingId":"org.acme:t1","policyId":"org.acme:t1"}]`},
		{name: "multi get unknown", method: "GET", path: "/things?ids=unknown:ThingId1,unknown:ThingId2", status: 200, want: `[]`},
		{name: "multi get empty ids", method: "GET", path: "/things?ids=", status: 400},
		{name: "multi get without permission", user: "bob", method: "GET", path: "/things?ids=org.acme:t1", status: 200, want: `[]`},
		{name: "list without ids", method: "GET", path: "/things?fields=thingId", status: 200},
		{name: "thingId mismatch", method: "PUT", path: thingT1, body: `{"thingId":"org.acme:other"}`, status: 400, code: "things:id.notsettable"},
		{name: "invalid thing id", method: "PUT", path: "/things/invalidThingId", body: `{}`, status: 400, code: "things:id.invalid"},
		{name: "too long thing id", method: "GET", path: "/things/org.acme:" + strings.Repeat("x", 250), status: 400, code: "things:id.invalid"},
		{name: "encoded thing id", method: "PUT", path: "/things/org.acme:foo%20bar", body: `{}`, status: 201, loc: "/api/2/things/org.acme:foo%20bar"},
		{name: "get encoded thing id", method: "GET", path: "/things/org.acme:foo%20bar?fields=thingId", status: 200, want: `{"thingId":"org.acme:foo bar"}`},
		{name: "delete thing", method: "DELETE", path: "/things/org.acme:foo%20bar", status: 204, etag: "-", check: emptyBody},
		{name: "get deleted thing", method: "GET", path: "/things/org.acme:foo%20bar", status: 404, code: "things:thing.notfound"},
		{name: "policy survives thing delete", method: "GET", path: "/policies/org.acme:foo%20bar", status: 200},
		{name: "recreate deleted thing", method: "PUT", path: "/things/org.acme:foo%20bar", body: `{"policyId":"org.acme:foo bar"}`, status: 201, etag: "rev"},
		{name: "unknown resource", method: "GET", path: thingT1 + "/nothing", status: 404},
		{name: "unknown method", method: "POST", path: thingT1, body: `{}`, status: 405},
	})
}

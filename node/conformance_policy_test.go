package node

import (
	"strings"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

const (
	policyP1 = "/policies/org.acme:p1"
	ownerRes = `{"thing:/":` + ownerRW + `,"policy:/":` + ownerRW + `,"message:/":` + ownerRW + `}`
	// ownerEntry grants nginx:ditto everything.
	ownerEntry = `{"subjects":{"nginx:ditto":{"type":"nginx basic auth user"}},"resources":` + ownerRes + `}`
)

// TestConformancePolicies covers ditto-spec §3.2 (every policy path and
// method), §2.2 (403 vs 404) and lockout prevention.
func TestConformancePolicies(t *testing.T) {
	c := newConformance(t, nil)
	c.run([]row{
		{name: "create policy", method: "PUT", path: policyP1, body: `{"entries":{"owner":` + ownerEntry + `}}`,
			status: 201, etag: `"rev:1"`, loc: "/api/2/policies/org.acme:p1",
			want: `{"policyId":"org.acme:p1","entries":{"owner":` + ownerEntry + `}}`},
		{name: "modify policy", method: "PUT", path: policyP1, body: `{"policyId":"org.acme:p1","entries":{"owner":` + ownerEntry + `}}`,
			status: 204, etag: `"rev:2"`, loc: "-", check: emptyBody},
		{name: "get policy", method: "GET", path: policyP1, status: 200, etag: `"rev:2"`,
			want: `{"policyId":"org.acme:p1","entries":{"owner":` + ownerEntry + `}}`},
		{name: "get policy fields", method: "GET", path: policyP1 + "?fields=policyId,_revision", status: 200, want: `{"policyId":"org.acme:p1","_revision":2}`},
		{name: "resolved view has no tag", method: "GET", path: policyP1 + "?policy-view=resolved", hdr: []string{"If-None-Match", `"rev:2"`}, status: 200,
			want: `{"policyId":"org.acme:p1","entries":{"owner":` + ownerEntry + `}}`, check: func(t *testing.T, r response) {
				if e := r.header.Get("ETag"); e != "" {
					t.Errorf("ETag %s on the resolved view", e)
				}
			}},
		{name: "unknown policy-view", method: "GET", path: policyP1, hdr: []string{"policy-view", "bogus"}, status: 400, code: "header.invalid"},
		{name: "policy at its current revision", method: "GET", path: policyP1 + "?at-historical-revision=2", status: 200},
		{name: "policy at an earlier revision", method: "GET", path: policyP1 + "?at-historical-revision=1", status: 404, code: "policies:policy.history.notfound"},
		{name: "get policy times", method: "GET", path: policyP1 + "?fields=_created,_modified", status: 200,
			check: func(t *testing.T, r response) {
				m := r.json(t)
				created, _ := m["_created"].(string)
				modified, _ := m["_modified"].(string)
				for _, s := range []string{created, modified} {
					if ts, err := time.Parse(ditto.TimeFormat, s); err != nil || ditto.FormatTime(ts) != s {
						t.Errorf("time %q is not in %s", s, ditto.TimeFormat)
					}
				}
				if created > modified {
					t.Errorf("_created %s after _modified %s", created, modified)
				}
				keys("_created", "_modified")(t, r)
			}},
		{name: "policyId mismatch", method: "PUT", path: policyP1, body: `{"policyId":"org.acme:other","entries":{}}`, status: 400, code: "policies:id.notsettable"},
		{name: "patch policy not allowed", method: "PATCH", path: policyP1, body: `{}`, status: 405},
		{name: "get entries", method: "GET", path: policyP1 + "/entries", status: 200, etag: "hash", want: `{"owner":` + ownerEntry + `}`},
		{name: "put entries", method: "PUT", path: policyP1 + "/entries", body: `{"owner":` + ownerEntry + `}`, status: 204, etag: "hash"},
		{name: "put new entry", method: "PUT", path: policyP1 + "/entries/reader",
			body:   `{"subjects":{"nginx:bob":{"type":"basic"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}}`,
			status: 201, loc: "/api/2/policies/org.acme:p1/entries/reader", etag: "hash",
			want: `{"subjects":{"nginx:bob":{"type":"basic"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}}`},
		{name: "put existing entry", method: "PUT", path: policyP1 + "/entries/reader",
			body:   `{"subjects":{"nginx:bob":{"type":"basic"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]},"policy:/entries/reader":{"grant":["READ"],"revoke":[]}}}`,
			status: 204},
		{name: "get entry", method: "GET", path: policyP1 + "/entries/reader/subjects", status: 200, want: `{"nginx:bob":{"type":"basic"}}`},
		{name: "get missing entry", method: "GET", path: policyP1 + "/entries/nope", status: 404, code: "policies:entry.notfound"},
		{name: "entry namespaces default", method: "GET", path: policyP1 + "/entries/reader/namespaces", status: 200, want: `[]`},
		{name: "entry importable default", method: "GET", path: policyP1 + "/entries/reader/importable", status: 200, want: `"implicit"`},
		{name: "put entry importable", method: "PUT", path: policyP1 + "/entries/reader/importable", body: `"never"`, status: 204},
		{name: "label imported is invalid", method: "PUT", path: policyP1 + "/entries/importedX", body: ownerEntry, status: 400, code: "policies:label.invalid"},
		{name: "label nsimported- is invalid", method: "PUT", path: policyP1 + "/entries/nsimported-x", body: ownerEntry, status: 400, code: "policies:label.invalid"},
		{name: "put subjects", method: "PUT", path: policyP1 + "/entries/reader/subjects", body: `{"nginx:bob":{"type":"basic"}}`, status: 204},
		{name: "put new subject", method: "PUT", path: policyP1 + "/entries/reader/subjects/nginx:carol", body: `{"type":"basic"}`,
			status: 201, loc: "/api/2/policies/org.acme:p1/entries/reader/subjects/nginx:carol", want: `{"type":"basic"}`},
		{name: "put existing subject", method: "PUT", path: policyP1 + "/entries/reader/subjects/nginx:carol", body: `{"type":"other"}`, status: 204},
		{name: "get subject", method: "GET", path: policyP1 + "/entries/reader/subjects/nginx:carol", status: 200, want: `{"type":"other"}`, etag: "hash"},
		{name: "delete subject", method: "DELETE", path: policyP1 + "/entries/reader/subjects/nginx:carol", status: 204, check: emptyBody},
		{name: "get deleted subject", method: "GET", path: policyP1 + "/entries/reader/subjects/nginx:carol", status: 404, code: "policies:subject.notfound"},
		{name: "invalid subject id", method: "PUT", path: policyP1 + "/entries/reader/subjects/nocolon", body: `{"type":"x"}`, status: 400, code: "policies:subjectid.invalid"},
		{name: "put resources", method: "PUT", path: policyP1 + "/entries/reader/resources", body: `{"thing:/":{"grant":["READ"],"revoke":[]},"policy:/entries/reader":{"grant":["READ"],"revoke":[]}}`, status: 204},
		{name: "put new resource url-encoded", method: "PUT", path: policyP1 + "/entries/reader/resources/thing:%2Ffeatures%2Flamp",
			body: `{"grant":["READ"],"revoke":["WRITE"]}`, status: 201, want: `{"grant":["READ"],"revoke":["WRITE"]}`,
			loc: "/api/2/policies/org.acme:p1/entries/reader/resources/thing:%2Ffeatures%2Flamp"},
		{name: "get resource by plain path", method: "GET", path: policyP1 + "/entries/reader/resources/thing:/features/lamp", status: 200, want: `{"grant":["READ"],"revoke":["WRITE"]}`},
		{name: "put existing resource", method: "PUT", path: policyP1 + "/entries/reader/resources/thing:%2Ffeatures%2Flamp", body: `{"grant":["READ"],"revoke":[]}`, status: 204},
		{name: "delete resource", method: "DELETE", path: policyP1 + "/entries/reader/resources/thing:%2Ffeatures%2Flamp", status: 204},
		{name: "get deleted resource", method: "GET", path: policyP1 + "/entries/reader/resources/thing:%2Ffeatures%2Flamp", status: 404, code: "policies:resource.notfound"},
		{name: "invalid resource permission", method: "PUT", path: policyP1 + "/entries/reader/resources/thing:%2F", body: `{"grant":["FLY"],"revoke":[]}`, status: 400, code: "policies:resource.invalid"},
		{name: "get imports", method: "GET", path: policyP1 + "/imports", status: 200, want: `{}`},

		// 403 vs 404 for another user.
		{name: "bob reads policy partially", user: "bob", method: "GET", path: policyP1 + "/entries/reader", status: 200},
		{name: "bob cannot read owner entry", user: "bob", method: "GET", path: policyP1 + "/entries/owner", status: 404, code: "policies:entry.notfound"},
		{name: "bob cannot modify entry", user: "bob", method: "PUT", path: policyP1 + "/entries/bob", body: ownerEntry, status: 403, code: "policies:entry.notmodifiable"},
		{name: "bob cannot delete policy", user: "bob", method: "DELETE", path: policyP1, status: 403},
		{name: "bob cannot read a foreign policy", user: "bob", method: "GET", path: "/policies/org.acme:missing", status: 404, code: "policies:policy.notfound"},

		// Lockout prevention.
		{name: "lockout on entry delete", method: "DELETE", path: policyP1 + "/entries/owner", status: 403, code: "policies:entry.modificationinvalid"},
		{name: "lockout on subject delete", method: "DELETE", path: policyP1 + "/entries/owner/subjects/nginx:ditto", status: 403, code: "policies:entry.modificationinvalid"},
		{name: "lockout on policy put", method: "PUT", path: policyP1, body: `{"entries":{"reader":{"subjects":{"nginx:bob":{"type":"b"}},"resources":{"thing:/":` + ownerRW + `}}}}`, status: 403, code: "policies:policy.modificationinvalid"},
		{name: "create policy without own write", method: "PUT", path: "/policies/org.acme:p2", body: `{"entries":{"x":{"subjects":{"nginx:bob":{"type":"b"}},"resources":` + ownerRes + `}}}`, status: 403, code: "policies:policy.notcreatable"},
		{name: "create policy with allow-policy-lockout", method: "PUT", path: "/policies/org.acme:p2?allow-policy-lockout=true", body: `{"entries":{"x":{"subjects":{"nginx:bob":{"type":"b"}},"resources":` + ownerRes + `}}}`, status: 201},
		{name: "bob owns p2 now", user: "bob", method: "DELETE", path: "/policies/org.acme:p2/entries/x", status: 403, code: "policies:entry.modificationinvalid"},
		{name: "the header does not lift lockout prevention", user: "bob", method: "DELETE", path: "/policies/org.acme:p2/entries/x", hdr: []string{"allow-policy-lockout", "true"}, status: 403, code: "policies:entry.modificationinvalid"},
		{name: "nor create a policy nobody may write", method: "PUT", path: "/policies/org.acme:p3?allow-policy-lockout=true", body: `{"entries":{}}`, status: 403, code: "policies:policy.modificationinvalid"},
		{name: "subject expiry in the past", user: "bob", method: "PUT", path: "/policies/org.acme:p2/entries/x/subjects/nginx:eve", body: `{"type":"t","expiry":"2020-01-01T00:00:00Z"}`, status: 400, code: "policies:subjectexpiry.invalid"},

		{name: "policy too large", method: "PUT", path: "/policies/org.acme:big", body: `{"entries":{"owner":` + ownerEntry + `,"big":{"subjects":{"nginx:x":{"type":"` + strings.Repeat("x", 101*1024) + `"}},"resources":{}}}}`, status: 413, code: "policies:policy.toolarge"},
		{name: "delete policy", method: "DELETE", path: policyP1, status: 204, check: emptyBody},
		{name: "get deleted policy", method: "GET", path: policyP1, status: 404, code: "policies:policy.notfound"},
		{name: "delete missing policy", method: "DELETE", path: policyP1, status: 404, code: "policies:policy.notfound"},
	})
}

// TestConformanceThingPolicies covers ditto-spec §2.2 and §2.3: the policy
// of a new thing (_policy, _copyPolicyFrom, policyId, default), compensation
// and 403 vs 404 for other users.
func TestConformanceThingPolicies(t *testing.T) {
	c := newConformance(t, nil)
	inline := `{"entries":{"owner":{"subjects":{"{{ request:subjectId }}":{"type":"me"}},"resources":` + ownerRes + `},` +
		`"partial":{"subjects":{"nginx:bob":{"type":"b"}},"resources":{"thing:/attributes/public":{"grant":["READ","WRITE"],"revoke":[]},"thing:/features":{"grant":["WRITE"],"revoke":[]}}}}}`
	c.run([]row{
		{name: "inline policy", method: "PUT", path: "/things/org.acme:i1", body: `{"_policy":` + inline + `,"attributes":{"public":1,"secret":2},"features":{"f":{"properties":{"x":1}}}}`,
			status: 201, check: func(t *testing.T, r response) {
				if m := r.json(t); m["policyId"] != "org.acme:i1" || m["_policy"] != nil {
					t.Errorf("body %s", r.body)
				}
			}},
		{name: "inline policy subject placeholder resolved", method: "GET", path: "/policies/org.acme:i1/entries/owner/subjects", status: 200, want: `{"nginx:ditto":{"type":"me"}}`},
		// ditto-spec section 9: conditional headers do not apply to _policy.
		{name: "if-none-match ignored for _policy", method: "GET", path: "/things/org.acme:i1?fields=thingId,_policy", hdr: []string{"If-None-Match", `"rev:1"`}, status: 200},
		{name: "if-match ignored for _policy", method: "GET", path: "/things/org.acme:i1?fields=thingId,_policy", hdr: []string{"If-Match", `"rev:9"`}, status: 200},
		{name: "if-none-match applies without _policy", method: "GET", path: "/things/org.acme:i1?fields=thingId", hdr: []string{"If-None-Match", `"rev:1"`}, status: 304},
		// Header syntax Ditto validates.
		{name: "if-match not an entity tag", method: "GET", path: "/things/org.acme:i1", hdr: []string{"If-Match", `rev:1`}, status: 400, code: "header.invalid"},
		{name: "if-none-match not an entity tag", method: "PUT", path: "/things/org.acme:i1/attributes/public", body: `1`, hdr: []string{"If-None-Match", `garbage`}, status: 400, code: "header.invalid"},
		{name: "weak entity tag is valid syntax", method: "GET", path: "/things/org.acme:i1", hdr: []string{"If-None-Match", `W/"rev:7", "rev:8"`}, status: 200},
		{name: "weak if-match never matches", method: "GET", path: "/things/org.acme:i1", hdr: []string{"If-Match", `W/"rev:1"`}, status: 412, code: "things:precondition.failed"},
		{name: "weak if-match on a write", method: "PUT", path: "/things/org.acme:i1/attributes/public", body: `1`, hdr: []string{"If-Match", `W/"rev:1"`}, status: 412, code: "things:precondition.failed"},
		{name: "strong tag beside a weak one", method: "GET", path: "/things/org.acme:i1", hdr: []string{"If-Match", `W/"rev:1", "rev:1"`}, status: 200},
		{name: "weak if-match on a policy", method: "GET", path: "/policies/org.acme:i1", hdr: []string{"If-Match", `W/"rev:1"`}, status: 412, code: "policies:precondition.failed"},
		// A node keeps the current revision only.
		{name: "historical: the current revision", method: "GET", path: "/things/org.acme:i1?at-historical-revision=1", status: 200},
		{name: "historical: an earlier revision", method: "GET", path: "/things/org.acme:i1/attributes?at-historical-revision=0", status: 404, code: "things:thing.history.notfound"},
		{name: "historical: not a revision", method: "GET", path: "/things/org.acme:i1?at-historical-revision=abc", status: 400, code: "header.invalid"},
		{name: "historical: an instant before the last change", method: "GET", path: "/things/org.acme:i1", hdr: []string{"at-historical-timestamp", "2000-01-01T00:00:00Z"}, status: 404, code: "things:thing.history.notfound"},
		{name: "historical: an instant since the last change", method: "GET", path: "/things/org.acme:i1", hdr: []string{"at-historical-timestamp", "2999-01-01T00:00:00Z"}, status: 200},
		{name: "historical: not an instant", method: "GET", path: "/things/org.acme:i1", hdr: []string{"at-historical-timestamp", "yesterday"}, status: 400, code: "header.invalid"},
		{name: "historical: a reader without access", user: "bob", method: "GET", path: "/things/org.acme:i1/attributes/secret?at-historical-revision=0", status: 404, code: "things:attribute.notfound"},
		{name: "query that does not decode", method: "GET", path: "/search/things?filter=eq(thingId,%ZZ)", status: 400, code: "gateway:query.parameter.invalid"},
		{name: "unknown channel", method: "GET", path: "/things/org.acme:i1?channel=foo", status: 400, code: "header.invalid"},
		{name: "allow-policy-lockout not a boolean", method: "PUT", path: "/things/org.acme:apl?allow-policy-lockout=maybe", body: `{}`, status: 400, code: "header.invalid"},
		{name: "partial reader keeps thingId", user: "bob", method: "GET", path: "/things/org.acme:i1", status: 200,
			want: `{"thingId":"org.acme:i1","attributes":{"public":1}}`},
		{name: "partial reader special fields", user: "bob", method: "GET", path: "/things/org.acme:i1?fields=thingId,_revision,attributes", status: 200,
			want: `{"thingId":"org.acme:i1","_revision":1,"attributes":{"public":1}}`},
		{name: "partial reader denied attribute is 404", user: "bob", method: "GET", path: "/things/org.acme:i1/attributes/secret", status: 404, code: "things:attribute.notfound"},
		{name: "partial writer denied attribute is 403", user: "bob", method: "PUT", path: "/things/org.acme:i1/attributes/secret", body: `3`, status: 403, code: "things:attribute.notmodifiable"},
		{name: "partial writer delete thing is 403", user: "bob", method: "DELETE", path: "/things/org.acme:i1", status: 403, code: "things:thing.notdeletable"},
		{name: "partial writer merge denied", user: "bob", method: "PATCH", path: "/things/org.acme:i1", body: `{"attributes":{"secret":4}}`, status: 403, code: "things:thing.notmodifiable"},
		{name: "partial writer merge allowed leaf", user: "bob", method: "PATCH", path: "/things/org.acme:i1", body: `{"attributes":{"public":5}}`, status: 204},
		// No leaves, nothing to deny (Ditto's calculateLeaves).
		{name: "partial writer merge of an empty object", user: "bob", method: "PATCH", path: "/things/org.acme:i1", body: `{"attributes":{}}`, status: 204},
		{name: "condition on unreadable field", user: "bob", method: "PUT", path: "/things/org.acme:i1/features/f/properties/x", body: `2`,
			hdr: []string{"condition", "eq(attributes/secret,2)"}, status: 412, code: "things:condition.failed"},
		{name: "condition on unreadable field without it", user: "bob", method: "PUT", path: "/things/org.acme:i1/features/f/properties/x", body: `2`, status: 204},
		{name: "nobody: 404 on read", user: "bob", method: "GET", path: "/things/org.acme:nobody", status: 404, code: "things:thing.notfound"},
		{name: "_policy on existing thing", method: "PUT", path: "/things/org.acme:i1", body: `{"_policy":` + inline + `}`, status: 400, code: "things:policy.notallowed"},
		{name: "_policy and _copyPolicyFrom", method: "PUT", path: "/things/org.acme:i2", body: `{"_policy":` + inline + `,"_copyPolicyFrom":"org.acme:i1"}`, status: 400, code: "things:policy.conflicting"},
		{name: "invalid inline policy", method: "PUT", path: "/things/org.acme:i3", body: `{"_policy":{"entries":"nope"}}`, status: 400, code: "things:policy.invalid"},
		{name: "inline policy without the requester", method: "PUT", path: "/things/org.acme:i4", body: `{"_policy":{"entries":{"x":{"subjects":{"nginx:bob":{"type":"b"}},"resources":` + ownerRes + `}}}}`, status: 400},
		{name: "no policy left behind (i4)", method: "GET", path: "/policies/org.acme:i4", status: 404},
		{name: "inline policy without thing write", method: "PUT", path: "/things/org.acme:i5",
			body:   `{"_policy":{"entries":{"x":{"subjects":{"nginx:ditto":{"type":"b"}},"resources":{"policy:/":` + ownerRW + `,"thing:/":{"grant":["READ"],"revoke":[]}}}}}}`,
			status: 403, code: "things:thing.notmodifiable"},
		{name: "compensated policy (i5)", method: "GET", path: "/policies/org.acme:i5", status: 404, code: "policies:policy.notfound"},
		{name: "compensated thing (i5)", method: "GET", path: "/things/org.acme:i5", status: 404, code: "things:thing.notfound"},
		{name: "copy policy by id", method: "PUT", path: "/things/org.acme:c1", body: `{"_copyPolicyFrom":"org.acme:i1"}`, status: 201,
			check: func(t *testing.T, r response) {
				if r.json(t)["policyId"] != "org.acme:c1" {
					t.Errorf("body %s", r.body)
				}
			}},
		{name: "copied policy", method: "GET", path: "/policies/org.acme:c1/entries/owner/subjects", status: 200, want: `{"nginx:ditto":{"type":"me"}}`},
		{name: "copy policy by reference into policyId", method: "POST", path: "/things", body: `{"policyId":"org.acme:c2p","_copyPolicyFrom":"{{ ref:things/org.acme:i1/policyId }}"}`, status: 201,
			check: func(t *testing.T, r response) {
				if r.json(t)["policyId"] != "org.acme:c2p" {
					t.Errorf("body %s", r.body)
				}
			}},
		{name: "copy missing policy", method: "PUT", path: "/things/org.acme:c3", body: `{"_copyPolicyFrom":"org.acme:missing"}`, status: 404, code: "policies:policy.notfound"},
		{name: "copy unreadable policy", user: "bob", method: "PUT", path: "/things/org.acme:c3", body: `{"_copyPolicyFrom":"org.acme:i1"}`, status: 404, code: "policies:policy.notfound"},
		{name: "copy from missing thing", method: "PUT", path: "/things/org.acme:c3", body: `{"_copyPolicyFrom":"{{ ref:things/org.acme:missing/policyId }}"}`, status: 404, code: "things:thing.notfound"},
		{name: "copy unsupported reference", method: "POST", path: "/things", body: `{"_copyPolicyFrom":"{{ ref:topologies/some:id/policyId }}"}`, status: 400, code: "placeholder:placeholder.reference.notsupported"},
		{name: "existing policyId", method: "PUT", path: "/things/org.acme:e1", body: `{"policyId":"org.acme:i1"}`, status: 201,
			check: func(t *testing.T, r response) {
				if r.json(t)["policyId"] != "org.acme:i1" {
					t.Errorf("body %s", r.body)
				}
			}},
		{name: "no default policy for explicit policyId", method: "GET", path: "/policies/org.acme:e1", status: 404},
		{name: "missing policyId", method: "PUT", path: "/things/org.acme:e2", body: `{"policyId":"org.acme:nope"}`, status: 400, code: "things:thing.notcreatable"},
		{name: "default policy id taken", method: "PUT", path: "/things/org.acme:i1x", body: `{"_policy":` + inline + `,"policyId":"org.acme:taken"}`, status: 201},
		{name: "thing on an existing policy id", method: "PUT", path: "/things/org.acme:taken", body: `{}`, status: 400, code: "things:thing.notcreatable"},
		{name: "change policyId of a thing", method: "PUT", path: "/things/org.acme:e1/policyId", body: `"org.acme:c1"`, status: 204},
		{name: "changed policyId", method: "GET", path: "/things/org.acme:e1/policyId", status: 200, want: `"org.acme:c1"`},
		{name: "deleting the thing keeps its policy", method: "DELETE", path: "/things/org.acme:c1", status: 204},
		{name: "kept policy", method: "GET", path: "/policies/org.acme:c1", status: 200},
		{name: "thing with too large inline policy", method: "PUT", path: "/things/org.acme:big",
			body:   `{"_policy":{"entries":{"owner":` + ownerEntry + `,"big":{"subjects":{"nginx:x":{"type":"` + strings.Repeat("y", 100*1024) + `"}},"resources":{}}}}}`,
			status: 413},
		{name: "no thing after too large policy", method: "GET", path: "/things/org.acme:big", status: 404},
		{name: "no policy after too large policy", method: "GET", path: "/policies/org.acme:big", status: 404},
	})
}

// TestConformanceMerge covers ditto-spec §3.4 and Ditto's MergeIT.
func TestConformanceMerge(t *testing.T) {
	c := newConformance(t, nil)
	const m1 = "/things/org.acme:m1"
	c.run([]row{
		{name: "patch creates thing", method: "PATCH", path: m1, body: `{"attributes":{"a":1,"n":null,"arr":[1,2]},"features":{"f":{"properties":{"2022-01":1,"2022-02":2,"2023-01":3}}}}`,
			status: 201, etag: `"rev:1"`, loc: "/api/2/things/org.acme:m1",
			want: `{"thingId":"org.acme:m1","policyId":"org.acme:m1","attributes":{"a":1,"arr":[1,2]},"features":{"f":{"properties":{"2022-01":1,"2022-02":2,"2023-01":3}}}}`},
		{name: "patch empty object on missing thing", method: "PATCH", path: "/things/org.acme:m2", body: `{}`, status: 400, code: "things:merge.invalid"},
		{name: "patch null on missing thing", method: "PATCH", path: "/things/org.acme:m2", body: `null`, status: 400, code: "things:merge.invalid"},
		{name: "patch sub-resource of missing thing", method: "PATCH", path: "/things/org.acme:m2/attributes", body: `{}`, status: 404, code: "things:thing.notfound"},
		{name: "patch with application/json", method: "PATCH", path: m1, body: `{}`, hdr: []string{"Content-Type", "application/json"}, status: 415, code: "mediatype.unsupported"},
		{name: "patch merges", method: "PATCH", path: m1, body: `{"attributes":{"b":2,"arr":[3],"a":null}}`, status: 204, etag: `"rev:2"`, check: emptyBody},
		{name: "merged attributes", method: "GET", path: m1 + "/attributes", status: 200, want: `{"b":2,"arr":[3]}`},
		{name: "regex delete", method: "PATCH", path: m1 + "/features/f/properties", body: `{"{{ ~2022-.*~ }}":null,"2022-05":5}`, status: 204},
		{name: "after regex delete", method: "GET", path: m1 + "/features/f/properties", status: 200, want: `{"2022-05":5,"2023-01":3}`},
		{name: "patch missing sub-resource creates it with 204", method: "PATCH", path: m1 + "/attributes/new", body: `{"x":1}`, status: 204},
		{name: "patch null deletes", method: "PATCH", path: m1 + "/attributes/new", body: `null`, status: 204},
		{name: "deleted by patch", method: "GET", path: m1 + "/attributes/new", status: 404, code: "things:attribute.notfound"},
		{name: "patch thingId null", method: "PATCH", path: m1, body: `{"thingId":null}`, status: 400, code: "things:id.notdeletable"},
		{name: "patch other thingId", method: "PATCH", path: m1, body: `{"thingId":"org.acme:other"}`, status: 400, code: "things:id.notsettable"},
		{name: "patch same thingId", method: "PATCH", path: m1, body: `{"thingId":"org.acme:m1"}`, status: 204},
		{name: "patch policyId null", method: "PATCH", path: m1, body: `{"policyId":null}`, status: 400, code: "things:policyId.notdeletable"},
		{name: "patch invalid policyId", method: "PATCH", path: m1 + "/policyId", body: `"invalid"`, status: 400},
		{name: "patch invalid definition", method: "PATCH", path: m1 + "/definition", body: `"invalid"`, status: 400, code: "things:definition.identifier.invalid"},
		{name: "patch attributes with a number", method: "PATCH", path: m1 + "/attributes", body: `3.14`, status: 400},
		{name: "if-equal skip-minimizing-merge no-op", method: "PATCH", path: m1, body: `{"attributes":{"b":2}}`, hdr: []string{"if-equal", "skip-minimizing-merge"}, status: 412},
	})
}

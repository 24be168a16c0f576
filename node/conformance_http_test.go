package node

import (
	"encoding/json"
	"fmt"
	"testing"
)

// TestConformanceHTTPEdges covers HTTP details of ditto-spec section 3
// where Ditto's gateway decides: bodies without a content-type, the size
// limit on compact JSON, repeated query parameters, fields on values,
// channel spelling, inline policies in a creating merge, live creates.
func TestConformanceHTTPEdges(t *testing.T) {
	c := newConformance(t, nil)
	attrs := map[string]int{}
	for i := range 3000 {
		attrs[fmt.Sprintf("k%d", i)] = i
	}
	pretty, _ := json.MarshalIndent(map[string]any{"attributes": attrs}, "", "            ")
	if len(pretty) <= 100*1024 {
		t.Fatalf("the pretty body is %d bytes, want more than 100 kB", len(pretty))
	}
	policy := `{"entries":{"o":{"subjects":{"nginx:ditto":{"type":"x"}},"resources":{"thing:/":{"grant":["READ","WRITE"],"revoke":[]},"policy:/":{"grant":["READ","WRITE"],"revoke":[]}}}}}`
	c.run([]row{
		{name: "PUT without a content-type", method: "PUT", path: "/things/org.acme:e1", body: `{"attributes":{"a":1}}`, hdr: []string{"Content-Type", ""}, status: 201},
		{name: "the 100 kB limit is on compact JSON", method: "PUT", path: "/things/org.acme:e2", body: string(pretty), status: 201},
		{name: "objects in arrays keep any keys", method: "PUT", path: "/things/org.acme:e1/attributes/list", body: `[{"http://x/y":1}]`, status: 201},
		{name: "repeated ids add up", method: "GET", path: "/things?ids=org.acme:e1&ids=org.acme:e2&fields=thingId", status: 200,
			want: `[{"thingId":"org.acme:e1"},{"thingId":"org.acme:e2"}]`},
		{name: "repeated fields add up", method: "GET", path: "/things/org.acme:e1?fields=thingId&fields=policyId", status: 200,
			want: `{"thingId":"org.acme:e1","policyId":"org.acme:e1"}`},
		{name: "fields on a value is ignored", method: "GET", path: "/things/org.acme:e1/policyId?fields=thingId", status: 200, want: `"org.acme:e1"`},
		{name: "channel in capitals", method: "GET", path: "/things/org.acme:e1/attributes/a?channel=TWIN", status: 200, want: `1`},
		{name: "a creating merge with an inline policy", method: "PATCH", path: "/things/org.acme:e3", body: `{"_policy":` + policy + `,"attributes":{"a":1}}`,
			hdr: []string{"Content-Type", "application/merge-patch+json"}, status: 201},
		{name: "no create on the live channel", method: "POST", path: "/things?channel=live", body: `{}`, status: 405, code: "things:thing.notcreatable"},
		{name: "an invalid ID links to the naming rules", method: "GET", path: "/things/bad", status: 400, code: "things:id.invalid",
			check: func(t *testing.T, r response) {
				if href, _ := r.json(t)["href"].(string); href != "https://www.eclipse.dev/ditto/basic-namespaces-and-names.html#namespaced-id" {
					t.Errorf("href %q", href)
				}
			}},
		{name: "an empty feature definition", method: "PUT", path: "/things/org.acme:e1/features/f", body: `{"definition":[]}`, status: 400, code: "things:feature.definition.empty"},
	})
}

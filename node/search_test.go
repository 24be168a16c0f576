package node

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestSearchOverHTTP checks the search API end to end: things written
// through the HTTP API are immediately searchable, results respect each
// requester's policy, and cursor paging walks every match exactly once.
func TestSearchOverHTTP(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	ditto := newClient(t, n, "ditto")
	bob := newClient(t, n, "bob")

	for i := 0; i < 30; i++ {
		body := fmt.Sprintf(`{"attributes":{"manufacturer":"ACME","serial":%d,"tags":["t%d","all"]},"features":{"brewer":{"properties":{"cups":%d}}}}`, i, i%3, i*10)
		expectStatus(t, ditto.do("PUT", fmt.Sprintf("/api/2/things/org.acme:c-%02d", i), body), 201)
	}
	// bob owns three things of his own.
	for i := 0; i < 3; i++ {
		expectStatus(t, bob.do("PUT", fmt.Sprintf("/api/2/things/org.bob:b-%d", i), `{"attributes":{"manufacturer":"ACME","serial":100}}`), 201)
	}

	search := func(c client, params url.Values) map[string]any {
		t.Helper()
		r := c.do("GET", "/api/2/search/things?"+params.Encode(), "")
		expectStatus(t, r, 200)
		return r.json(t)
	}
	ids := func(page map[string]any) []string {
		var out []string
		for _, it := range page["items"].([]any) {
			out = append(out, it.(map[string]any)["thingId"].(string))
		}
		return out
	}

	page := search(ditto, url.Values{"filter": {`eq(attributes/serial,7)`}})
	if got := ids(page); len(got) != 1 || got[0] != "org.acme:c-07" {
		t.Errorf("eq serial 7: %v", got)
	}
	page = search(ditto, url.Values{"filter": {`and(ge(features/brewer/properties/cups,100),eq(attributes/tags,"t1"))`}, "option": {"sort(-attributes/serial),size(3)"}})
	if got := ids(page); strings.Join(got, ",") != "org.acme:c-28,org.acme:c-25,org.acme:c-22" {
		t.Errorf("and/sort/size: %v", got)
	}
	// Everyone sees only what they may read.
	page = search(bob, url.Values{"filter": {`eq(attributes/manufacturer,"ACME")`}})
	if got := ids(page); len(got) != 3 {
		t.Errorf("bob sees %v", got)
	}
	r := bob.do("GET", "/api/2/search/things/count?filter="+url.QueryEscape(`eq(attributes/manufacturer,"ACME")`), "")
	expectStatus(t, r, 200)
	if strings.TrimSpace(string(r.body)) != "3" {
		t.Errorf("bob count %s", r.body)
	}

	// Cursor paging visits every match once.
	seen := map[string]bool{}
	params := url.Values{"filter": {`like(thingId,"org.acme:*")`}, "option": {"size(7)"}}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		page = search(ditto, params)
		for _, id := range ids(page) {
			if seen[id] {
				t.Errorf("%s twice", id)
			}
			seen[id] = true
		}
		c, _ := page["cursor"].(string)
		if c == "" {
			break
		}
		params.Set("option", "size(7),cursor("+c+")")
	}
	if len(seen) != 30 {
		t.Errorf("paged through %d things, want 30", len(seen))
	}

	// A change is searchable as soon as it is acknowledged.
	expectStatus(t, ditto.do("PUT", "/api/2/things/org.acme:c-03/attributes/serial", "333"), 204)
	if got := ids(search(ditto, url.Values{"filter": {`eq(attributes/serial,333)`}})); len(got) != 1 {
		t.Errorf("fresh change not found: %v", got)
	}

	// POST with a form body, and errors.
	r = ditto.do("POST", "/api/2/search/things", "filter="+url.QueryEscape(`eq(attributes/serial,8)`), "Content-Type", "application/x-www-form-urlencoded")
	expectStatus(t, r, 200)
	expectStatus(t, ditto.do("GET", "/api/2/search/things?filter="+url.QueryEscape("eq(attributes/serial"), ""), 400)
	expectStatus(t, ditto.do("GET", "/api/2/search/things?option=size(500)", ""), 400)

	// GET /things without ids lists the readable things page by page, as
	// Ditto does: a bare array, the next page in a Link header, no filter.
	r = bob.do("GET", "/api/2/things?option=size(2)&filter="+url.QueryEscape(`eq(thingId,"org.bob:b-2")`), "")
	expectStatus(t, r, 200)
	var listing []map[string]any
	if err := json.Unmarshal(r.body, &listing); err != nil || len(listing) != 2 || listing[0]["thingId"] != "org.bob:b-0" {
		t.Fatalf("bob's first page: %s (%v)", r.body, err)
	}
	links := r.header.Values("Link")
	if len(links) != 2 || !strings.HasSuffix(links[0], `rel="canonical"`) || !strings.HasPrefix(links[1], "</api/2/things?option=cursor(") || !strings.HasSuffix(links[1], `rel="next"`) {
		t.Fatalf("Link headers %q", links)
	}
	next := strings.TrimSuffix(strings.TrimPrefix(links[1], "<"), `>; rel="next"`)
	r = bob.do("GET", next, "")
	expectStatus(t, r, 200)
	if err := json.Unmarshal(r.body, &listing); err != nil || len(listing) != 1 || listing[0]["thingId"] != "org.bob:b-2" || len(r.header.Values("Link")) != 1 {
		t.Fatalf("bob's second page: %s %q (%v)", r.body, r.header.Values("Link"), err)
	}
}

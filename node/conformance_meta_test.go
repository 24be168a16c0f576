package node

import (
	"testing"
)

// TestConformanceMetadata covers thing metadata over HTTP (ditto-spec
// section 11): put-metadata, get-metadata with the ditto-metadata response
// header, delete-metadata, the _metadata field and the header errors.
func TestConformanceMetadata(t *testing.T) {
	c := newConformance(t, nil)
	metaHeader := func(want string) func(*testing.T, response) {
		return func(t *testing.T, r response) {
			t.Helper()
			if got := r.header.Get("ditto-metadata"); got != want {
				t.Errorf("ditto-metadata %q, want %q", got, want)
			}
		}
	}
	lamp := "/things/org.acme:lamp"
	c.run([]row{
		{name: "create with put-metadata", method: "PUT", path: lamp, body: `{"features":{"lamp":{"properties":{"color":{"r":1,"g":2}}}}}`,
			hdr: []string{"put-metadata", `[{"key":"features/lamp/properties/color/description","value":"RGB"},{"key":"features/*/properties/*/unit","value":"rgb"}]`}, status: 201},
		{name: "metadata is not returned unless selected", method: "GET", path: lamp, status: 200,
			want: `{"thingId":"org.acme:lamp","policyId":"org.acme:lamp","features":{"lamp":{"properties":{"color":{"r":1,"g":2}}}}}`},
		{name: "_metadata field", method: "GET", path: lamp + "?fields=_metadata", status: 200,
			want: `{"_metadata":{"features":{"lamp":{"properties":{"color":{"description":"RGB","unit":"rgb"}}}}}}`},
		{name: "put-metadata on a property, relative key", method: "PUT", path: lamp + "/features/lamp/properties/color/r", body: `5`,
			hdr: []string{"put-metadata", `[{"key":"changedBy","value":"ditto"}]`}, status: 204},
		{name: "get-metadata relative to the resource", method: "GET", path: lamp + "/features/lamp/properties", hdr: []string{"get-metadata", "color/r,color/unit"}, status: 200,
			check: metaHeader(`{"color":{"r":{"changedBy":"ditto"},"unit":"rgb"}}`)},
		{name: "get-metadata as a query parameter", method: "GET", path: lamp + "/features/lamp/properties/color?get-metadata=*", status: 200,
			check: metaHeader(`{"description":"RGB","r":{"changedBy":"ditto"},"unit":"rgb"}`)},
		{name: "get-metadata of nothing", method: "GET", path: lamp, hdr: []string{"get-metadata", "attributes"}, status: 200, check: metaHeader(`{}`)},
		{name: "delete-metadata", method: "PATCH", path: lamp, body: `{"attributes":{"on":true}}`,
			hdr: []string{"Content-Type", "application/merge-patch+json", "delete-metadata", "features/lamp/properties/color/description"}, status: 204},
		{name: "deleting a value deletes its metadata", method: "DELETE", path: lamp + "/features/lamp/properties/color/r", status: 204},
		{name: "what is left", method: "GET", path: lamp + "?fields=_metadata", status: 200,
			want: `{"_metadata":{"features":{"lamp":{"properties":{"color":{"unit":"rgb"}}}}}}`},
		{name: "two metadata headers", method: "PUT", path: lamp + "/attributes/x", body: `1`,
			hdr: []string{"put-metadata", `[{"key":"k","value":1}]`, "delete-metadata", "k"}, status: 400, code: "things:metadata.headersconflict"},
		{name: "put-metadata not JSON", method: "PUT", path: lamp + "/attributes/x", body: `1`, hdr: []string{"put-metadata", `nope`}, status: 400, code: "header.invalid"},
		{name: "wildcard the resource does not take", method: "PUT", path: lamp + "/attributes/x", body: `1`,
			hdr: []string{"put-metadata", `[{"key":"features/*/k","value":1}]`}, status: 400, code: "header.invalid"},
		{name: "inline _metadata and put-metadata", method: "PUT", path: "/things/org.acme:lamp2", body: `{"_metadata":{"attributes":{}}}`,
			hdr: []string{"put-metadata", `[{"key":"k","value":1}]`}, status: 400, code: "things:metadata.notmodifiable"},
		{name: "inline _metadata on create", method: "PUT", path: "/things/org.acme:lamp3", body: `{"attributes":{"a":1},"_metadata":{"attributes":{"a":{"unit":"m"}}}}`, status: 201},
		{name: "search by metadata", method: "GET", path: `/search/things?filter=eq(_metadata/features/lamp/properties/color/unit,"rgb")`, status: 200,
			want: `{"items":[{"thingId":"org.acme:lamp","policyId":"org.acme:lamp","attributes":{"on":true},"features":{"lamp":{"properties":{"color":{"g":2}}}}}]}`},
		{name: "search selects _metadata", method: "GET", path: `/search/things?filter=exists(_metadata)&fields=thingId,_metadata`, status: 200,
			want: `{"items":[{"thingId":"org.acme:lamp","_metadata":{"features":{"lamp":{"properties":{"color":{"unit":"rgb"}}}}}},` +
				`{"thingId":"org.acme:lamp3","_metadata":{"attributes":{"a":{"unit":"m"}}}}]}`},
		{name: "fields with the wildcard feature ID", method: "GET", path: "/things/org.acme:lamp?fields=_metadata/features/*/properties/color/unit", status: 200,
			want: `{"_metadata":{"features":{"lamp":{"properties":{"color":{"unit":"rgb"}}}}}}`},
		{name: "inline _metadata stored", method: "GET", path: "/things/org.acme:lamp3?fields=_metadata", status: 200,
			want: `{"_metadata":{"attributes":{"a":{"unit":"m"}}}}`},
	})
}

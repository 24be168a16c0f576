package things

import (
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

// TestHandleCreatedNullValue pins what the Eclipse Ditto JavaScript client
// relies on: creating a sub-resource with the JSON value null is a 201 whose
// value is null (the client's PutResponse tells created from updated by a
// non-null body only for non-null values, and reads "null" as null), and the
// replace is a 204 without a value.
func TestHandleCreatedNullValue(t *testing.T) {
	cases := []struct{ name, base, path string }{
		{"attribute", `{}`, "/attributes/nothing"},
		{"property", `{"features":{"f":{}}}`, "/features/f/properties/nothing"},
		{"desiredProperty", `{"features":{"f":{}}}`, "/features/f/desiredProperties/nothing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, DefaultConfig())
			mustOK(t)(env.do(ditto.ActionModify, tid, "/", mustJSON(t, tc.base), owner))

			res := mustOK(t)(env.do(ditto.ActionModify, tid, tc.path, nil, owner))
			if res.Status != 201 || resultJSON(res) != "null" {
				t.Fatalf("create null: status %d value %q, want 201 null", res.Status, resultJSON(res))
			}
			res = mustOK(t)(env.do(ditto.ActionModify, tid, tc.path, nil, owner))
			if res.Status != 204 || resultJSON(res) != "" {
				t.Fatalf("replace null: status %d value %q, want 204 without value", res.Status, resultJSON(res))
			}
			res = mustOK(t)(env.do(ditto.ActionRetrieve, tid, tc.path, nil, owner))
			if res.Status != 200 || resultJSON(res) != "" || res.Value != nil {
				t.Fatalf("retrieve: status %d value %q, want 200 null", res.Status, resultJSON(res))
			}
		})
	}
}

package search

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dittonode/dittonode/ditto"
)

// TestSortWalkMatchesReference pages with small pages through sorts on
// fields with mixed types, arrays, objects, nulls, partly visible and
// missing values, so the walk of the sort field resumes at cursors inside
// and between groups of equal values. The results must equal the
// brute-force reference, and the big queries must walk.
func TestSortWalkMatchesReference(t *testing.T) {
	w := newWorld(t)
	w.populate(61, 500)
	s := w.start(t, DefaultConfig())
	w.populate(62, 100)
	sorts := []string{"+attributes/count", "-attributes/count", "-attributes/tags",
		"+attributes/location", "-attributes/flag", "+attributes/items/x", "-attributes/secret",
		"+features/lamp/properties/brightness,-thingId", "-attributes/location/floor,+attributes/serialNo", "+_revision",
		"-attributes/nothing"}
	filters := []string{"", `ge(attributes/count,3)`, `and(gt(attributes/count,2),lt(attributes/count,9))`,
		`lt(attributes/manufacturer,"Z")`, `or(eq(attributes/flag,true),exists(attributes/tags))`}
	if raceEnabled || testing.Short() {
		sorts, filters = sorts[1:7:7], filters[:3] // the race detector is slow: keep the mixed-type sorts
	}
	walked := 0
	for _, srt := range sorts {
		for _, filter := range filters {
			for _, user := range []string{"part", "both"} {
				t.Run(fmt.Sprintf("%s/%s/%s", srt, user, filter), func(t *testing.T) {
					q := Query{Filter: filter, Auth: ditto.Auth{Subjects: testUsers[user]}}
					want := ids(w.refSearch(t, q, srt))
					got := ids(searchAll(t, s, q, "sort("+srt+"),size(11)"))
					if !slices.Equal(want, got) {
						t.Fatalf("order differs (-want +got):\n%s", cmp.Diff(want, got))
					}
					q.Options = "sort(" + srt + "),size(11)"
					_, ex, err := s.SearchExplain(context.Background(), q)
					if err != nil {
						t.Fatal(err)
					}
					if strings.Contains(ex.Plan, "sortwalk") {
						walked++
					}
				})
			}
		}
	}
	if walked < len(sorts)*len(filters) {
		t.Fatalf("only %d queries walked the sort field", walked)
	}
}

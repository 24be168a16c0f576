package search

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/services/policies"
)

// Things with a policy of their own: what PUT /api/2/things/{id} without a
// policy creates. Every thing has its own default policy (policy ID = thing
// ID); the policies are distinct records of equal content, so the real
// policies service hands out one interned enforcer for all of them.

// applyLog is a policies.Log that applies each proposal to the policies
// state machine at once, in order, as a single-node Raft group does.
type applyLog struct {
	mu    sync.Mutex
	fsm   interface{ Apply(uint64, []byte) any }
	index uint64
}

func (l *applyLog) Propose(_ context.Context, cmd []byte) (any, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.index++
	return l.fsm.Apply(l.index, cmd), nil
}

func (l *applyLog) ReadBarrier(context.Context) error { return nil }

// perThingUser is the subject of the HTTP user "ditto" (basic auth).
const perThingUser = "nginx:ditto"

// defaultPolicyOf is the policy the things service creates for a thing
// created by subject without a policy (services/things defaultPolicy).
func defaultPolicyOf(subject string) map[string]any {
	rw := func() map[string]any {
		return map[string]any{"grant": []any{ditto.PermRead, ditto.PermWrite}, "revoke": []any{}}
	}
	return map[string]any{"entries": map[string]any{"DEFAULT": map[string]any{
		"subjects":  map[string]any{subject: map[string]any{"type": "generated"}},
		"resources": map[string]any{"thing:/": rw(), "policy:/": rw(), "message:/": rw()},
	}}}
}

// newPolicyService returns a real policies service holding one policy per
// ID, created through its command handling and applied by its FSM.
func newPolicyService(tb testing.TB, ids []string, policyOf func(i int) map[string]any) *policies.Service {
	tb.Helper()
	log := &applyLog{}
	ps := policies.New(policies.DefaultConfig(), policies.Deps{Log: log})
	log.fsm = ps.FSM()
	ctx := context.Background()
	for i, id := range ids {
		p := policyOf(i)
		p["policyId"] = id
		cmd := ditto.Command{Action: ditto.ActionCreate, Entity: id, Path: ditto.Pointer{}, Value: p,
			Headers: ditto.Headers{}, Auth: ditto.Auth{Subjects: []string{perThingUser}}}
		if _, err := ps.Handle(ctx, cmd); err != nil {
			tb.Fatalf("create policy %s: %v", id, err)
		}
	}
	return ps
}

// perThingID is the ID of the i-th load-test thing.
func perThingID(i int) string { return "load:thing-" + strconv.Itoa(i) }

// newPerThingSource returns n things in the shape of the HTTP load test,
// each governed by the policy with its own ID.
func newPerThingSource(n int) (*benchSource, []string) {
	src := &benchSource{things: make([]ThingState, n)}
	pids := make([]string, n)
	for i := range n {
		id := perThingID(i)
		body := map[string]any{
			"attributes": map[string]any{"manufacturer": "ACME", "serialNo": strconv.Itoa(i)},
			"features":   map[string]any{"coffee-brewer": map[string]any{"properties": map[string]any{"brewed-coffees": jsonNumber(0)}}},
		}
		pids[i] = id
		src.things[i] = ThingState{ID: id, PolicyID: id, Revision: 1, Created: "2026-01-01T00:00:00.000Z",
			Modified: "2026-01-01T00:00:00.000Z", JSON: ditto.EncodeJSON(body)}
	}
	return src, pids
}

// startSearch starts a search service over src and waits for its index.
func startSearch(tb testing.TB, src Source, enfs Enforcers) *Service {
	tb.Helper()
	s := New(DefaultConfig(), Deps{Source: src, Enforcers: enfs})
	if err := s.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	if err := s.WaitReady(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return s
}

var (
	perThingOnce sync.Once
	perThingSvc  *Service
)

// perThingService is the shared service over benchThings things with a
// default policy each.
func perThingService(tb testing.TB) *Service {
	perThingOnce.Do(func() {
		src, ids := newPerThingSource(benchThings)
		ps := newPolicyService(tb, ids, func(int) map[string]any { return defaultPolicyOf(perThingUser) })
		perThingSvc = startSearch(tb, src, ps)
	})
	return perThingSvc
}

// perThingQueries are the query shapes of the per-thing-policy benchmarks;
// %d is replaced by a varying thing number.
var perThingQueries = []struct {
	name, filter, options string
	count                 bool
}{
	{name: "SortedRange", filter: `ge(attributes/serialNo,"%d")`, options: "sort(+attributes/serialNo),size(25)"},
	{name: "SortedRangeDesc", filter: `le(attributes/serialNo,"%d")`, options: "sort(-attributes/serialNo),size(25)"},
	{name: "SortedAll", filter: ``, options: "sort(+attributes/serialNo),size(25)"},
	{name: "RangeByID", filter: `ge(attributes/serialNo,"%d")`, options: "size(25)"},
	{name: "EqAttribute", filter: `eq(attributes/serialNo,"%d")`},
	{name: "EqThingID", filter: `eq(thingId,"load:thing-%d")`},
	{name: "AndManufacturerSerial", filter: `and(eq(attributes/manufacturer,"ACME"),eq(attributes/serialNo,"%d"))`},
	{name: "LikeThingID", filter: `like(thingId,"load:thing-%d*")`, options: "size(25)"},
	{name: "CountRange", filter: `ge(attributes/serialNo,"%d")`, count: true},
	{name: "CountEq", filter: `eq(attributes/serialNo,"%d")`, count: true},
}

// perThingArg is the n-th argument of a query shape.
func perThingArg(name string, n int) int {
	if name == "LikeThingID" {
		return 100 + (n*7919)%900 // 111 things each
	}
	return (n * 7919) % benchThings
}

func benchPerThing(b *testing.B, name string) {
	s := perThingService(b)
	auth := ditto.Auth{Subjects: []string{perThingUser}}
	ctx := context.Background()
	for _, pq := range perThingQueries {
		if pq.name != name {
			continue
		}
		b.ReportAllocs()
		b.ResetTimer()
		n := 0
		for b.Loop() {
			q := Query{Filter: pq.filter, Options: pq.options, Auth: auth, RawItems: true}
			if q.Filter != "" {
				q.Filter = fmt.Sprintf(pq.filter, perThingArg(name, n))
			}
			n++
			if pq.count {
				if c, err := s.Count(ctx, q); err != nil || c == 0 {
					b.Fatalf("count %q: %d, %v", q.Filter, c, err)
				}
				continue
			}
			p, err := s.Search(ctx, q)
			if err != nil || len(p.Items) == 0 {
				b.Fatalf("search %q: %v, %d items", q.Filter, err, len(p.Items))
			}
		}
		return
	}
	b.Fatalf("no query %s", name)
}

func BenchmarkPerThingSortedRange(b *testing.B)           { benchPerThing(b, "SortedRange") }
func BenchmarkPerThingSortedRangeDesc(b *testing.B)       { benchPerThing(b, "SortedRangeDesc") }
func BenchmarkPerThingSortedAll(b *testing.B)             { benchPerThing(b, "SortedAll") }
func BenchmarkPerThingRangeByID(b *testing.B)             { benchPerThing(b, "RangeByID") }
func BenchmarkPerThingEqAttribute(b *testing.B)           { benchPerThing(b, "EqAttribute") }
func BenchmarkPerThingEqThingID(b *testing.B)             { benchPerThing(b, "EqThingID") }
func BenchmarkPerThingAndManufacturerSerial(b *testing.B) { benchPerThing(b, "AndManufacturerSerial") }
func BenchmarkPerThingLikeThingID(b *testing.B)           { benchPerThing(b, "LikeThingID") }
func BenchmarkPerThingCountRange(b *testing.B)            { benchPerThing(b, "CountRange") }
func BenchmarkPerThingCountEq(b *testing.B)               { benchPerThing(b, "CountEq") }

// mixedPolicy is the i-th policy of TestPerThingPoliciesMatchReference:
// full, partial (the sort fields hidden), nothing and partial again, for
// the user "ditto" and a second reader.
func mixedPolicy(i int) map[string]any {
	grant := func(perms ...string) map[string]any {
		g := make([]any, len(perms))
		for j, p := range perms {
			g[j] = p
		}
		return map[string]any{"grant": g, "revoke": []any{}}
	}
	revoke := map[string]any{"grant": []any{}, "revoke": []any{ditto.PermRead}}
	entry := func(subject string, res map[string]any) map[string]any {
		return map[string]any{"subjects": map[string]any{subject: map[string]any{"type": "test"}}, "resources": res}
	}
	admin := entry(perThingUser, map[string]any{"policy:/": grant(ditto.PermRead, ditto.PermWrite)})
	var ditto2, reader map[string]any
	switch i % 5 {
	case 0, 1:
		return defaultPolicyOf(perThingUser)
	case 2:
		ditto2 = entry(perThingUser, map[string]any{"thing:/attributes": grant(ditto.PermRead), "thing:/attributes/count": revoke})
		reader = entry(perThingReader, map[string]any{"thing:/": grant(ditto.PermRead)})
	case 3:
		ditto2 = entry(perThingUser, map[string]any{"thing:/definition": revoke})
		reader = entry(perThingReader, map[string]any{"thing:/features": grant(ditto.PermRead)})
	default:
		ditto2 = entry(perThingUser, map[string]any{"thing:/": grant(ditto.PermRead), "thing:/features": revoke})
		reader = entry(perThingReader, map[string]any{"thing:/attributes/count": grant(ditto.PermRead)})
	}
	return map[string]any{"entries": map[string]any{"ADMIN": admin, "DITTO": ditto2, "READER": reader}}
}

// perThingReader is a second subject of mixedPolicy.
const perThingReader = "nginx:reader"

// TestPerThingPoliciesMatchReference pages through sorted searches over
// things that each have their own policy (real policies service; equal
// contents share an enforcer), with full, partial and no access mixed, so
// the sort walk decides access lazily and meets partial readers whose view
// hides the sort value. Every page sequence must equal the brute-force
// reference, and Count its length.
func TestPerThingPoliciesMatchReference(t *testing.T) {
	const n = 500
	r := rand.New(rand.NewPCG(71, 7))
	type gen struct {
		id   string
		body map[string]any
	}
	things := make([]gen, n)
	pids := make([]string, n)
	for i := range things {
		id, _, body := genThing(r, i)
		things[i], pids[i] = gen{id, body}, id
	}
	w := newWorld(t)
	w.policies = newPolicyService(t, pids, mixedPolicy)
	for _, g := range things[:n/2] {
		w.put(g.id, g.id, g.body)
	}
	s := w.start(t, DefaultConfig())
	for _, g := range things[n/2:] {
		w.put(g.id, g.id, g.body)
	}
	sorts := []string{"+attributes/count", "-attributes/count", "+attributes/serialNo", "-attributes/serialNo",
		"+attributes/location/floor,-thingId", "-features/lamp/properties/brightness"}
	filters := []string{"", `ge(attributes/serialNo,"2")`, `and(gt(attributes/count,2),lt(attributes/count,9))`,
		`exists(attributes/count)`, `like(thingId,"ns.a:*")`}
	if raceEnabled || testing.Short() {
		sorts = sorts[:3]
	}
	users := map[string][]string{"ditto": {perThingUser}, "reader": {perThingReader}, "both": {perThingUser, perThingReader}}
	for _, srt := range sorts {
		for _, filter := range filters {
			for user, subjects := range users {
				t.Run(fmt.Sprintf("%s/%s/%s", srt, user, filter), func(t *testing.T) {
					q := Query{Filter: filter, Auth: ditto.Auth{Subjects: subjects}}
					want := ids(w.refSearch(t, q, srt))
					got := ids(searchAll(t, s, q, "sort("+srt+"),size(7)"))
					if !slices.Equal(want, got) {
						t.Fatalf("order differs (-want +got):\n%s", cmp.Diff(want, got))
					}
					c, err := s.Count(context.Background(), q)
					if err != nil || c != len(want) {
						t.Fatalf("count = %d, %v; want %d", c, err, len(want))
					}
				})
			}
		}
	}
}

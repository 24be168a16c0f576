package search

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/ditto/rql"
)

// fakeSource is the applied things state, as the things service holds it.
type fakeSource struct {
	mu     sync.Mutex
	things map[string]ThingState
}

func (f *fakeSource) RangeThings(fn func(ThingState) bool) {
	f.mu.Lock()
	all := slices.Collect(maps.Values(f.things))
	f.mu.Unlock()
	for _, t := range all {
		if !fn(t) {
			return
		}
	}
}

func (f *fakeSource) snapshot() map[string]ThingState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.things)
}

// world is a things state with a bus and a search service on it.
type world struct {
	src  *fakeSource
	bus  *ditto.Bus
	enfs testEnforcers
	// policies, when set, replaces enfs (for the service and the
	// reference).
	policies Enforcers
	svc      *Service
	now      time.Time
	revs     map[string]int64 // last revision per thing, kept across deletes
	mu       sync.Mutex       // serializes writes, like the FSM's apply loop
	// ref caches the decoded things for refSearch; put and del reset it.
	ref []refDoc
}

type refDoc struct {
	st   ThingState
	ns   string
	full map[string]any
}

// refDocs decodes the source's things (cached until the next write).
func (w *world) refDocs() []refDoc {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ref != nil {
		return w.ref
	}
	for _, st := range w.src.snapshot() {
		v, _ := ditto.DecodeJSON(st.JSON)
		full := v.(map[string]any)
		eid, _ := ditto.ParseEntityID(st.ID)
		full["thingId"], full["policyId"], full["_namespace"] = st.ID, st.PolicyID, eid.Namespace
		full["_revision"] = json.Number(strconv.FormatInt(st.Revision, 10))
		full["_created"], full["_modified"] = st.Created, st.Modified
		w.ref = append(w.ref, refDoc{st: st, ns: eid.Namespace, full: full})
	}
	return w.ref
}

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newWorld(t testing.TB) *world {
	t.Helper()
	w := &world{src: &fakeSource{things: map[string]ThingState{}}, bus: ditto.NewBus(), enfs: testPolicies(), now: testNow, revs: map[string]int64{}}
	return w
}

// enforcers is what the service and the reference authorize with.
func (w *world) enforcers() Enforcers {
	if w.policies != nil {
		return w.policies
	}
	return w.enfs
}

// start creates and starts the service.
func (w *world) start(t testing.TB, cfg Config) *Service {
	t.Helper()
	w.svc = New(cfg, Deps{Source: w.src, Enforcers: w.enforcers(), Bus: w.bus, Clock: func() time.Time { return w.now }})
	if err := w.svc.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = w.svc.Close() })
	return w.svc
}

// put creates or replaces a thing: it changes the source, then publishes
// the event, as the things FSM does.
func (w *world) put(id, policyID string, body map[string]any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ref = nil
	w.revs[id]++
	rev := w.revs[id]
	ts := ditto.FormatTime(w.now.Add(time.Duration(rev) * time.Second))
	raw := ditto.EncodeJSON(body)
	w.src.mu.Lock()
	old, existed := w.src.things[id]
	st := ThingState{ID: id, PolicyID: policyID, Revision: rev, Created: ts, Modified: ts, JSON: raw}
	if existed {
		st.Created = old.Created
	}
	w.src.things[id] = st
	w.src.mu.Unlock()
	action := "modified"
	if !existed {
		action = "created"
	}
	w.bus.Publish(ditto.Signal{Envelope: ditto.Envelope{Topic: topicOf(id, action), Timestamp: ts, Revision: rev},
		EntityID: id, PolicyID: policyID, Revision: rev, State: raw})
}

func (w *world) del(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ref = nil
	w.src.mu.Lock()
	old, ok := w.src.things[id]
	delete(w.src.things, id)
	w.src.mu.Unlock()
	if !ok {
		return
	}
	w.revs[id]++
	w.bus.Publish(ditto.Signal{Envelope: ditto.Envelope{Topic: topicOf(id, "deleted")}, EntityID: id, PolicyID: old.PolicyID, Revision: w.revs[id]})
}

func topicOf(id, action string) string {
	ns, name, _ := strings.Cut(id, ":")
	return ns + "/" + name + "/things/twin/events/" + action
}

var (
	testNamespaces = []string{"ns.a", "ns.b", "other"}
	testPolicyIDs  = []string{"pol:open", "pol:open", "pol:partial", "pol:hidden", "pol:revoked"}
	manufacturers  = []string{"ACME", "Bosch", "acme", "Acme Corp", "Zeiss", ""}
	colors         = []string{"red", "green", "blue", "Red"}
)

// genThing returns a thing with a varied shape.
func genThing(r *rand.Rand, i int) (id, policyID string, body map[string]any) {
	id = fmt.Sprintf("%s:thing-%04d", testNamespaces[r.IntN(len(testNamespaces))], i)
	policyID = testPolicyIDs[r.IntN(len(testPolicyIDs))]
	attrs := map[string]any{}
	maybe := func(p int) bool { return r.IntN(100) < p }
	if maybe(90) {
		attrs["manufacturer"] = manufacturers[r.IntN(len(manufacturers))]
	}
	attrs["serialNo"] = strconv.Itoa(r.IntN(500))
	if maybe(80) {
		switch r.IntN(4) {
		case 0:
			attrs["count"] = json.Number(strconv.Itoa(r.IntN(20)))
		case 1:
			attrs["count"] = json.Number(strconv.Itoa(r.IntN(20)) + ".0")
		case 2:
			attrs["count"] = json.Number(strconv.FormatFloat(r.Float64()*20, 'f', 2, 64))
		default:
			attrs["count"] = strconv.Itoa(r.IntN(20)) // a string: type strictness
		}
	}
	if maybe(50) {
		attrs["flag"] = maybe(50)
	}
	if maybe(20) {
		attrs["nullv"] = nil
	}
	if maybe(60) {
		n := r.IntN(4)
		tags := make([]any, n)
		for j := range tags {
			tags[j] = colors[r.IntN(len(colors))]
		}
		attrs["tags"] = tags
	}
	if maybe(60) {
		loc := map[string]any{"floor": json.Number(strconv.Itoa(r.IntN(5)))}
		if maybe(50) {
			loc["room"] = fmt.Sprintf("r%d", r.IntN(10))
		}
		attrs["location"] = loc
	}
	if maybe(40) {
		attrs["items"] = []any{map[string]any{"x": json.Number(strconv.Itoa(r.IntN(3)))}, map[string]any{"x": "a", "y": true}}
	}
	if maybe(30) {
		attrs["secret"] = fmt.Sprintf("s%d", r.IntN(5))
	}
	if maybe(10) {
		attrs["emptyStr"] = ""
		attrs["emptyObj"] = map[string]any{}
		attrs["emptyArr"] = []any{}
	}
	body = map[string]any{"attributes": attrs}
	if maybe(50) {
		body["definition"] = fmt.Sprintf("org.example:def%d:1.0.0", r.IntN(3))
	}
	feats := map[string]any{}
	if maybe(70) {
		feats["lamp"] = map[string]any{
			"definition":        []any{"org.example:lamp:1.0.0"},
			"properties":        map[string]any{"on": maybe(50), "brightness": json.Number(strconv.Itoa(r.IntN(100)))},
			"desiredProperties": map[string]any{"on": maybe(50)},
		}
	}
	for j := range r.IntN(3) {
		p := map[string]any{}
		if maybe(80) {
			p["temp"] = json.Number(strconv.Itoa(r.IntN(40) - 5))
		} else {
			p["temp"] = "hot"
		}
		if maybe(30) {
			p["on"] = true
		}
		feats[fmt.Sprintf("sensor-%d", j)] = map[string]any{"properties": p}
	}
	if len(feats) > 0 || maybe(50) {
		body["features"] = feats
	}
	return id, policyID, body
}

// populate puts n generated things.
func (w *world) populate(seed uint64, n int) {
	r := rand.New(rand.NewPCG(seed, 7))
	for i := range n {
		id, pol, body := genThing(r, i)
		w.put(id, pol, body)
	}
}

// refSearch is the brute-force reference: every thing of the source whose
// view matches, sorted, projected.
func (w *world) refSearch(t testing.TB, q Query, sortSpec string) []any {
	t.Helper()
	var filter rql.Node
	if q.Filter != "" {
		filter = rql.MustParse(q.Filter)
	}
	keys := refSortKeys(sortSpec)
	type res struct {
		id   string
		view map[string]any
		keys []any
	}
	var out []res
	for _, rd := range w.refDocs() {
		st, full := rd.st, rd.full
		eid := ditto.EntityID{Namespace: rd.ns}
		pol, ok := w.enforcers().EnforcerFor(st.PolicyID, rd.ns)
		if !ok {
			continue
		}
		var view map[string]any
		switch {
		case pol.Unrestricted("thing", nil, q.Auth.Subjects, "READ"):
			view = full
		case pol.Partial("thing", nil, q.Auth.Subjects, "READ"):
			vv, ok := pol.View("thing", nil, full, q.Auth.Subjects)
			if !ok {
				continue
			}
			view = maps.Clone(vv.(map[string]any))
			// ditto-spec 2.1: partial readers keep these.
			view["thingId"], view["_namespace"] = st.ID, eid.Namespace
			view["_revision"], view["_created"], view["_modified"] = full["_revision"], full["_created"], full["_modified"]
		default:
			continue
		}
		if len(q.Namespaces) > 0 && !slices.Contains(q.Namespaces, eid.Namespace) {
			continue
		}
		if !rql.Match(filter, view, rql.Env{Now: w.now}) {
			continue
		}
		r := res{id: st.ID, view: view}
		for _, k := range keys {
			x, ok := ditto.GetAt(view, k.path)
			if !ok {
				x = nil
			}
			r.keys = append(r.keys, x)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b res) int {
		for i, k := range keys {
			c := refCmp(a.keys[i], b.keys[i])
			if k.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return strings.Compare(a.id, b.id)
	})
	var sel ditto.FieldSelector
	if q.Fields != "" {
		var err error
		if sel, err = ditto.ParseFieldSelector(q.Fields); err != nil {
			t.Fatal(err)
		}
	}
	items := make([]any, len(out))
	for i, r := range out {
		if q.Fields != "" {
			items[i] = sel.Apply(r.view)
			continue
		}
		m := map[string]any{}
		for _, k := range []string{"thingId", "policyId", "definition", "attributes", "features"} {
			if x, ok := r.view[k]; ok {
				m[k] = x
			}
		}
		items[i] = m
	}
	return items
}

type refKey struct {
	path ditto.Pointer
	desc bool
}

func refSortKeys(spec string) []refKey {
	if spec == "" {
		return []refKey{{path: ditto.Pointer{"thingId"}}}
	}
	var keys []refKey
	for _, f := range strings.Split(spec, ",") {
		k := refKey{desc: strings.HasPrefix(f, "-")}
		k.path = ditto.MustPointer(strings.TrimLeft(f, "+-"))
		keys = append(keys, k)
	}
	return keys
}

// refCmp orders JSON values as MongoDB does: null/missing, numbers,
// strings, objects, arrays, booleans.
func refCmp(a, b any) int {
	order := func(v any) int {
		switch v.(type) {
		case nil:
			return 0
		case json.Number:
			return 1
		case string:
			return 2
		case map[string]any:
			return 3
		case []any:
			return 4
		}
		return 5
	}
	if c := cmp.Compare(order(a), order(b)); c != 0 {
		return c
	}
	switch x := a.(type) {
	case json.Number:
		f, _ := x.Float64()
		g, _ := b.(json.Number).Float64()
		return cmp.Compare(f, g)
	case string:
		return strings.Compare(x, b.(string))
	case bool:
		y := b.(bool)
		if x == y {
			return 0
		}
		if !x {
			return -1
		}
		return 1
	case nil:
		return 0
	}
	return strings.Compare(string(ditto.EncodeJSON(a)), string(ditto.EncodeJSON(b)))
}

// searchAll follows cursors until the last page.
func searchAll(t testing.TB, s *Service, q Query, opts string) []any {
	t.Helper()
	var all []any
	cursor := ""
	for range 10000 {
		q.Options = opts
		if cursor != "" {
			q.Options = opts + ",cursor(" + cursor + ")"
			if opts == "" {
				q.Options = "cursor(" + cursor + ")"
			}
		}
		p, err := s.Search(context.Background(), q)
		if err != nil {
			t.Fatalf("search %q %q: %v", q.Filter, q.Options, err)
		}
		for _, it := range p.Items {
			if raw, ok := it.(json.RawMessage); ok {
				v, err := ditto.DecodeJSON(raw)
				if err != nil {
					t.Fatalf("raw item %s: %v", raw, err)
				}
				it = v
			}
			all = append(all, it)
		}
		if p.Cursor == "" {
			return all
		}
		cursor = p.Cursor
	}
	t.Fatal("too many pages")
	return nil
}

func ids(items []any) []string {
	out := make([]string, len(items))
	for i, it := range items {
		if m, ok := it.(map[string]any); ok {
			out[i], _ = m["thingId"].(string)
		}
	}
	return out
}

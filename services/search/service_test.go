package search

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dittonode/dittonode/ditto"
)

// dump renders an index as thingId -> document JSON, plus its key count.
func dump(x *index) (map[string]string, Stats) {
	out := map[string]string{}
	for _, d := range x.docs {
		if d == nil {
			continue
		}
		full, err := d.full()
		if err != nil {
			panic(err)
		}
		out[d.id] = fmt.Sprintf("rev=%d policy=%s %s", d.rev, d.policyID, ditto.EncodeJSON(full))
	}
	st := x.stats()
	st.IndexBytes = 0 // capacities differ with history
	return out, st
}

func (s *Service) dumpIndex() (map[string]string, Stats) {
	if err := s.WaitReady(context.Background()); err != nil {
		panic(err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return dump(s.idx)
}

func TestRebuildEqualsIncremental(t *testing.T) {
	w := newWorld(t)
	inc := w.start(t, DefaultConfig()) // empty at start: everything arrives as events
	w.populate(11, 800)
	w.populate(12, 400) // overwrites and new shapes for many of the same IDs
	for i := 0; i < 800; i += 7 {
		w.del(fmt.Sprintf("ns.a:thing-%04d", i))
	}
	fresh := New(DefaultConfig(), Deps{Source: w.src, Enforcers: w.enfs})
	if err := fresh.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	gotDocs, gotStats := inc.dumpIndex()
	wantDocs, wantStats := fresh.dumpIndex()
	if diff := cmp.Diff(wantDocs, gotDocs); diff != "" {
		t.Fatalf("documents differ (-rebuilt +incremental):\n%s", diff)
	}
	if wantStats != gotStats {
		t.Fatalf("stats: rebuilt %+v, incremental %+v", wantStats, gotStats)
	}
	for _, f := range testFilters[:20] {
		q := Query{Filter: f, Auth: ditto.Auth{Subjects: []string{subjAll}}}
		a, b := searchAll(t, inc, q, "size(200)"), searchAll(t, fresh, q, "size(200)")
		if !sameJSON(a, b) {
			t.Fatalf("%s: results differ", f)
		}
	}
}

// TestStartRaceWithWrites starts the service while things are written: the
// index must end equal to a rebuild of the final state.
func TestStartRaceWithWrites(t *testing.T) {
	w := newWorld(t)
	w.populate(21, 2000)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.populate(22, 1500)
		for i := 0; i < 2000; i += 3 {
			w.del(fmt.Sprintf("ns.b:thing-%04d", i))
		}
		w.populate(23, 1000)
	}()
	s := w.start(t, DefaultConfig())
	wg.Wait()
	fresh := New(DefaultConfig(), Deps{Source: w.src, Enforcers: w.enfs})
	if err := fresh.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	gotDocs, gotStats := s.dumpIndex()
	wantDocs, wantStats := fresh.dumpIndex()
	if diff := cmp.Diff(wantDocs, gotDocs); diff != "" {
		t.Fatalf("documents differ (-rebuilt +live):\n%s", diff)
	}
	if wantStats != gotStats {
		t.Fatalf("stats: rebuilt %+v, live %+v", wantStats, gotStats)
	}
}

func TestRestoredSignalRebuilds(t *testing.T) {
	w := newWorld(t)
	w.populate(31, 300)
	s := w.start(t, DefaultConfig())
	// The FSM replaces its whole state, then announces it.
	w.src.mu.Lock()
	w.src.things = map[string]ThingState{
		"ns.a:only": {ID: "ns.a:only", PolicyID: "pol:open", Revision: 9, Created: "2026-01-01T00:00:00.000Z",
			Modified: "2026-01-02T00:00:00.000Z", JSON: []byte(`{"attributes":{"a":1}}`)},
	}
	w.src.mu.Unlock()
	w.bus.Publish(ditto.Signal{Envelope: ditto.Envelope{Topic: restoredTopic}})
	p, err := s.Search(context.Background(), Query{Auth: ditto.Auth{Subjects: []string{subjAdmin}}, Fields: "thingId,_revision,_created"})
	if err != nil {
		t.Fatal(err)
	}
	want := []any{map[string]any{"thingId": "ns.a:only", "_revision": jsonNum("9"), "_created": "2026-01-01T00:00:00.000Z"}}
	if diff := cmp.Diff(want, p.Items); diff != "" {
		t.Fatal(diff)
	}
}

func jsonNum(s string) any { v, _ := ditto.DecodeJSON([]byte(s)); return v }

func TestPolicyChangeTakesEffectImmediately(t *testing.T) {
	w := newWorld(t)
	w.put("ns.a:t1", "pol:x", map[string]any{"attributes": map[string]any{"a": 1}})
	s := w.start(t, DefaultConfig())
	q := Query{Filter: `eq(attributes/a,1)`, Auth: ditto.Auth{Subjects: []string{subjNobody}}}
	count := func() int {
		n, err := s.Count(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 0 {
		t.Fatalf("count before the policy exists = %d", n)
	}
	w.enfs["pol:x"] = &testPolicy{rules: map[string]map[string]bool{subjNobody: grants("/attributes")}}
	if n := count(); n != 1 {
		t.Fatalf("count after grant = %d", n)
	}
	w.enfs["pol:x"] = &testPolicy{rules: map[string]map[string]bool{subjNobody: grants("/features")}}
	if n := count(); n != 0 {
		t.Fatalf("count after the grant moved = %d", n)
	}
}

func TestIgnoresOtherSignals(t *testing.T) {
	w := newWorld(t)
	s := w.start(t, DefaultConfig())
	for _, topic := range []string{"ns/p/policies/events/modified", "ns/t/things/live/events/modified", "ns/t/things/twin/commands/modify", "garbage"} {
		w.bus.Publish(ditto.Signal{Envelope: ditto.Envelope{Topic: topic}, EntityID: "ns:t", State: []byte(`{}`), Revision: 1})
	}
	if st := s.IndexStats(); st.Things != 0 {
		t.Fatalf("indexed %d things from non-event signals", st.Things)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// gatedSource holds RangeThings back while block is set, so a test can act
// while a build is running.
type gatedSource struct {
	src     Source
	block   atomic.Bool
	entered chan struct{} // receives once per held-back RangeThings
	release chan struct{}
}

func newGatedSource(src Source) *gatedSource {
	return &gatedSource{src: src, entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (g *gatedSource) RangeThings(fn func(ThingState) bool) {
	if g.block.Load() {
		g.entered <- struct{}{}
		<-g.release
	}
	g.src.RangeThings(fn)
}

// expectSearchTimeout asserts that a count gives up with Ditto's search
// timeout while the index is incomplete.
func expectSearchTimeout(t *testing.T, s *Service) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := s.Count(ctx, Query{Auth: ditto.Auth{Subjects: []string{subjAdmin}}})
	var de *ditto.Error
	if !errors.As(err, &de) || de.Code != ditto.ErrSearchTimeout.Code {
		t.Fatalf("count during the build: %v, want %s", err, ditto.ErrSearchTimeout.Code)
	}
}

// TestQueriesWaitForTheBuild starts the service with a build held back:
// Start returns at once, queries wait for the complete index, and writes
// made during the build are in it once it is ready.
func TestQueriesWaitForTheBuild(t *testing.T) {
	w := newWorld(t)
	w.populate(41, 300)
	src := newGatedSource(w.src)
	src.block.Store(true)
	s := New(DefaultConfig(), Deps{Source: src, Enforcers: w.enfs, Bus: w.bus})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	<-src.entered
	if s.Ready() {
		t.Fatal("ready before the build read the things")
	}
	// Acknowledged during the build: recorded and replayed onto it.
	w.populate(42, 200)
	for i := 0; i < 300; i += 5 {
		w.del(fmt.Sprintf("ns.a:thing-%04d", i))
	}
	expectSearchTimeout(t, s)
	src.block.Store(false)
	close(src.release)
	n, err := s.Count(context.Background(), Query{Auth: ditto.Auth{Subjects: []string{subjAdmin}}})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Ready() {
		t.Fatal("a query returned before the index was ready")
	}
	want := 0
	for _, ts := range w.src.snapshot() {
		if _, ok := w.enfs[ts.PolicyID]; ok {
			want++
		}
	}
	if n != want {
		t.Fatalf("count %d after the build, want %d", n, want)
	}
	fresh := New(DefaultConfig(), Deps{Source: w.src, Enforcers: w.enfs})
	if err := fresh.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	gotDocs, _ := s.dumpIndex()
	wantDocs, _ := fresh.dumpIndex()
	if diff := cmp.Diff(wantDocs, gotDocs); diff != "" {
		t.Fatalf("documents differ (-rebuilt +built during writes):\n%s", diff)
	}
}

// TestRestoreBuildsInBackground checks that a restore signal returns to
// the publisher (the state machine) at once while the index is rebuilt,
// and that queries wait for the rebuilt index.
func TestRestoreBuildsInBackground(t *testing.T) {
	w := newWorld(t)
	w.populate(43, 100)
	src := newGatedSource(w.src)
	s := New(DefaultConfig(), Deps{Source: src, Enforcers: w.enfs, Bus: w.bus})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.WaitReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	src.block.Store(true)
	w.src.mu.Lock()
	w.src.things = map[string]ThingState{
		"ns.a:only": {ID: "ns.a:only", PolicyID: "pol:open", Revision: 4, Created: "2026-01-01T00:00:00.000Z",
			Modified: "2026-01-02T00:00:00.000Z", JSON: []byte(`{"attributes":{"a":1}}`)},
	}
	w.src.mu.Unlock()
	w.bus.Publish(ditto.Signal{Envelope: ditto.Envelope{Topic: restoredTopic}})
	<-src.entered
	if s.Ready() {
		t.Fatal("ready while the restored state is being read")
	}
	expectSearchTimeout(t, s)
	src.block.Store(false)
	close(src.release)
	p, err := s.Search(context.Background(), Query{Auth: ditto.Auth{Subjects: []string{subjAdmin}}, Fields: "thingId,_revision"})
	if err != nil {
		t.Fatal(err)
	}
	want := []any{map[string]any{"thingId": "ns.a:only", "_revision": jsonNum("4")}}
	if diff := cmp.Diff(want, p.Items); diff != "" {
		t.Fatal(diff)
	}
}

// TestCloseDuringBuild checks that Close releases waiting queries and
// waits for the build goroutine.
func TestCloseDuringBuild(t *testing.T) {
	w := newWorld(t)
	w.populate(44, 50)
	src := newGatedSource(w.src)
	src.block.Store(true)
	s := New(DefaultConfig(), Deps{Source: src, Enforcers: w.enfs, Bus: w.bus})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-src.entered
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	if err := s.WaitReady(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitReady during Close: %v, want ErrClosed", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while the build still ran", err)
	default:
	}
	close(src.release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if s.Ready() {
		t.Fatal("ready after Close cut the build short")
	}
}

// TestEventAction checks the topic parser against strings.Split.
func TestEventAction(t *testing.T) {
	ref := func(topic string) (string, bool) {
		p := strings.Split(topic, "/")
		if len(p) != 6 || p[2] != "things" || p[3] != "twin" || p[4] != "events" {
			return "", false
		}
		return p[5], true
	}
	for _, topic := range []string{
		"ns/name/things/twin/events/modified", "ns/name/things/twin/events/", "ns/name/things/twin/events",
		"ns/name/things/twin/events/modified/x", "ns/name/things/live/events/modified", "", "/////",
		"a/b/things/twin/events/created", "ns/name/policies/twin/events/created", "//things/twin/events/deleted",
	} {
		a, ok := eventAction(topic)
		ra, rok := ref(topic)
		if a != ra || ok != rok {
			t.Errorf("eventAction(%q) = %q, %v; want %q, %v", topic, a, ok, ra, rok)
		}
	}
}

// TestSubResourceDeleteKeepsThing: the "deleted" event of an attribute
// carries the thing that remains, which stays searchable; only a thing's
// own deletion (no state) removes it.
func TestSubResourceDeleteKeepsThing(t *testing.T) {
	w := newWorld(t)
	s := w.start(t, DefaultConfig())
	id := "ns.a:kept"
	w.put(id, "pol:open", map[string]any{"attributes": map[string]any{"a": 1, "b": 2}})
	rest := []byte(`{"attributes":{"b":2}}`)
	w.bus.Publish(ditto.Signal{Envelope: ditto.Envelope{Topic: topicOf(id, "deleted"), Path: "/attributes/a", Timestamp: ditto.FormatTime(testNow), Revision: 2},
		EntityID: id, PolicyID: "pol:open", Revision: 2, State: rest})
	q := Query{Filter: "eq(attributes/b,2)", Auth: ditto.Auth{Subjects: []string{subjAll}}}
	if n, err := s.Count(context.Background(), q); err != nil || n != 1 {
		t.Fatalf("after deleting an attribute: count %d, %v", n, err)
	}
	q.Filter = "exists(attributes/a)"
	if n, err := s.Count(context.Background(), q); err != nil || n != 0 {
		t.Fatalf("the deleted attribute is still indexed: count %d, %v", n, err)
	}
	w.bus.Publish(ditto.Signal{Envelope: ditto.Envelope{Topic: topicOf(id, "deleted"), Timestamp: ditto.FormatTime(testNow), Revision: 3},
		EntityID: id, PolicyID: "pol:open", Revision: 3})
	if st := s.IndexStats(); st.Things != 0 {
		t.Fatalf("deleted thing still indexed: %d things", st.Things)
	}
}

package policies

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/dittonode/dittonode/ditto"
)

// defaultPolicy is the policy the things service creates for a thing
// without one (services/things defaultPolicy).
func defaultPolicy(id string) string {
	return `{"policyId":"` + id + `","entries":{"DEFAULT":{"subjects":{"nginx:ditto":{"type":"generated"}},"resources":{
		"thing:/":{"grant":["READ","WRITE"],"revoke":[]},"policy:/":{"grant":["READ","WRITE"],"revoke":[]},
		"message:/":{"grant":["READ","WRITE"],"revoke":[]}}}}}`
}

func thingPolicyID(i int) string { return fmt.Sprintf("ns:thing-%06d", i) }

// createDefault creates policy id as the creator of a default policy.
func (h *harness) createDefault(t testing.TB, id, policy string) {
	t.Helper()
	h.mustDo(t, req{action: ditto.ActionModify, id: id, value: policy, subjects: []string{"nginx:ditto"}})
}

// defaultSnapshot returns the snapshot of n default policies as Apply
// stores them: one is created through Apply, the others are its stored
// bytes with their own ID (creating 100k through Apply takes a minute).
func defaultSnapshot(t testing.TB, n int) []byte {
	t.Helper()
	s := newFSMService()
	first := thingPolicyID(0)
	res := s.FSM().Apply(1, policyCommand(t, policyCmd{Action: ditto.ActionCreate, ID: first, Value: mustJSON(t, defaultPolicy(first)), Subjects: []string{"nginx:ditto"}}))
	if r, ok := res.(ditto.Result); !ok || r.Status != 201 {
		t.Fatalf("create = %#v", res)
	}
	tmpl := s.current(first)
	quoted := `"` + first + `"`
	if bytes.Count(tmpl.raw(), []byte(quoted)) != 1 {
		t.Fatalf("stored policy %s does not hold its ID once", tmpl.raw())
	}
	s.mu.Lock()
	for i := 1; i < n; i++ {
		id := thingPolicyID(i)
		raw := bytes.Replace(tmpl.raw(), []byte(quoted), []byte(`"`+id+`"`), 1)
		s.state[id] = newRecord(id, raw, 1, tmpl.Created, tmpl.Modified)
	}
	s.mu.Unlock()
	return snapshotOf(t, s)
}

func restored(t testing.TB, data []byte) *Service {
	t.Helper()
	s := newFSMService()
	if err := s.FSM().Restore(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return s
}

func heapAlloc() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestHeap100kDefaultPolicies measures the heap that 100k restored default
// policies keep, before and after every one was enforced.
func TestHeap100kDefaultPolicies(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("heap measurement: not under -short or -race")
	}
	const n = 100_000
	data := defaultSnapshot(t, n)
	before := heapAlloc()
	start := time.Now()
	s := restored(t, data)
	took := time.Since(start)
	restoredHeap := float64(heapAlloc()-before) / 1e6
	for i := range n {
		if _, ok := s.EnforcerFor(thingPolicyID(i), "ns"); !ok {
			t.Fatalf("no enforcer for %s", thingPolicyID(i))
		}
	}
	enforcedHeap := float64(heapAlloc()-before) / 1e6
	t.Logf("100k default policies: snapshot %d bytes, restore %v, heap %.1f MB restored, %.1f MB after enforcing all, %d compiled enforcers",
		len(data), took, restoredHeap, enforcedHeap, s.enforcers.len())
	// ~12 MB: per policy a 64-byte record, its ID and its map entry, and
	// one interned body for all (48 MB when each record held its own JSON,
	// 18 MB with times as strings and a separate memo).
	if restoredHeap > 15 || enforcedHeap > 15 {
		t.Errorf("heap %.1f MB / %.1f MB, want < 15 MB", restoredHeap, enforcedHeap)
	}
	if got := s.enforcers.len(); got != 1 {
		t.Errorf("%d compiled enforcers for equal policies, want 1", got)
	}
	runtime.KeepAlive(data) // measured without it: the heap it takes counts before and after
	runtime.KeepAlive(s)
}

// TestRecordSize keeps a policy record in the 64-byte size class: every
// node holds one per thing.
func TestRecordSize(t *testing.T) {
	if n := unsafe.Sizeof(record{}); n > 64 {
		t.Errorf("a record takes %d bytes, want at most 64", n)
	}
}

func BenchmarkRestore100k(b *testing.B) {
	data := defaultSnapshot(b, 100_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		s := newFSMService()
		if err := s.FSM().Restore(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnforcerFor100k enforces round-robin over 100k restored default
// policies: per-record memos and one shared enforcer.
func BenchmarkEnforcerFor100k(b *testing.B) {
	const n = 100_000
	s := restored(b, defaultSnapshot(b, n))
	ids := make([]string, n)
	for i := range ids {
		ids[i] = thingPolicyID(i)
		s.EnforcerFor(ids[i], "ns")
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.EnforcerFor(ids[i], "ns"); !ok {
			b.Fatal("no enforcer")
		}
		i = (i + 1) % n
	}
}

func TestEnforcersInternedByContent(t *testing.T) {
	h := newHarness(t, Config{})
	for i := range 20 {
		h.createDefault(t, thingPolicyID(i), defaultPolicy(thingPolicyID(i)))
	}
	first, _ := h.s.EnforcerFor(thingPolicyID(0), "ns")
	for i := 1; i < 20; i++ {
		if e, _ := h.s.EnforcerFor(thingPolicyID(i), "other"); e != first {
			t.Fatalf("policy %d of equal content has its own enforcer", i)
		}
	}
	// Other content, and namespaces in use: separate enforcers.
	h.create(t, "ns:owner", ownerPolicy)
	if e, _ := h.s.EnforcerFor("ns:owner", "ns"); e == first {
		t.Error("policies of different content share an enforcer")
	}
	withNS := `{"entries":{"owner":` + ownerEntry + `,"acme":{"subjects":{"x:acme":{"type":"t"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}},"namespaces":["com.acme"]}}}`
	h.create(t, "ns:n1", withNS)
	h.create(t, "ns:n2", withNS)
	n1, _ := h.s.EnforcerFor("ns:n1", "com.acme")
	n2, _ := h.s.EnforcerFor("ns:n2", "com.acme")
	other, _ := h.s.EnforcerFor("ns:n2", "org.other")
	if n1 != n2 || n1 == other {
		t.Error("namespace-restricted enforcers not keyed by namespace")
	}
	if !n1.Partial(ditto.ResourceThing, nil, []string{"x:acme"}, ditto.PermRead) || other.Partial(ditto.ResourceThing, nil, []string{"x:acme"}, ditto.PermRead) {
		t.Error("namespaces not applied")
	}
}

func TestEnforcerCacheBounded(t *testing.T) {
	h := newHarness(t, Config{})
	h.s.enforcers = newEnforcerCache(4)
	const n = 12
	for i := range n {
		// Each policy grants its own subject: distinct contents.
		p := strings.Replace(defaultPolicy(thingPolicyID(i)), `{"type":"generated"}`, fmt.Sprintf(`{"type":"generated"},"x:%d":{"type":"t"}`, i), 1)
		h.createDefault(t, thingPolicyID(i), p)
	}
	for round := range 3 {
		for i := range n {
			e, ok := h.s.EnforcerFor(thingPolicyID(i), "ns")
			if !ok {
				t.Fatal("no enforcer")
			}
			for j := range n {
				if got := e.Unrestricted(ditto.ResourceThing, nil, []string{fmt.Sprintf("x:%d", j)}, ditto.PermRead); got != (i == j) {
					t.Fatalf("round %d: policy %d grants x:%d = %v", round, i, j, got)
				}
			}
			if l := h.s.enforcers.len(); l > 4 {
				t.Fatalf("%d cached enforcers, bound 4", l)
			}
		}
	}
}

// TestEnforcerFollowsImports changes an imported policy back and forth: an
// enforcer made of one content must never serve another.
func TestEnforcerFollowsImports(t *testing.T) {
	h := newHarness(t, Config{})
	tmpl := func(sub string) string {
		return `{"entries":{"owner":` + ownerEntry + `,"shared":{"subjects":{"` + sub + `":{"type":"t"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}}}}`
	}
	h.create(t, "ns:tmpl", tmpl("x:one"))
	h.create(t, "ns:user1", `{"imports":{"ns:tmpl":{}},"entries":{"owner":`+ownerEntry+`}}`)
	h.create(t, "ns:user2", `{"imports":{"ns:tmpl":{}},"entries":{"owner":`+ownerEntry+`}}`)
	reads := func(id, sub string) bool {
		e, ok := h.s.EnforcerFor(id, "ns")
		return ok && e.Unrestricted(ditto.ResourceThing, nil, []string{sub}, ditto.PermRead)
	}
	for i, sub := range []string{"x:one", "x:two", "x:one", "x:two"} {
		if i > 0 {
			h.create(t, "ns:tmpl", tmpl(sub))
		}
		for _, id := range []string{"ns:user1", "ns:user2"} {
			other := map[string]string{"x:one": "x:two", "x:two": "x:one"}[sub]
			if !reads(id, sub) || reads(id, other) {
				t.Fatalf("step %d: %s does not follow the import (%s)", i, id, sub)
			}
		}
	}
	a, _ := h.s.EnforcerFor("ns:user1", "ns")
	b, _ := h.s.EnforcerFor("ns:user2", "ns")
	if a != b {
		t.Error("equal importing policies do not share an enforcer")
	}
	h.mustDo(t, req{action: ditto.ActionDelete, id: "ns:tmpl"})
	if reads("ns:user1", "x:two") {
		t.Error("entries of a deleted import still apply")
	}
}

// TestSharedEnforcerExpiry: policies sharing an enforcer lose an expired
// subject together, at the expiry.
func TestSharedEnforcerExpiry(t *testing.T) {
	h := newHarness(t, Config{})
	expiry := testNow.Add(time.Hour).Truncate(time.Hour)
	p := `{"entries":{"owner":` + ownerEntry + `,"temp":{"subjects":{"x:temp":{"type":"t","expiry":"` + expiry.Format(time.RFC3339) + `"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}}}}`
	h.create(t, "ns:e1", p)
	h.create(t, "ns:e2", p)
	reads := func(id string) bool {
		e, _ := h.s.EnforcerFor(id, "ns")
		return e.Unrestricted(ditto.ResourceThing, nil, []string{"x:temp"}, ditto.PermRead)
	}
	if !reads("ns:e1") || !reads("ns:e2") {
		t.Fatal("subject not granted before expiry")
	}
	h.clock.Advance(expiry.Sub(h.clock.Now()) - time.Millisecond)
	if !reads("ns:e2") {
		t.Fatal("subject not granted just before expiry")
	}
	h.clock.Advance(time.Millisecond)
	if reads("ns:e1") || reads("ns:e2") {
		t.Error("expired subject still granted")
	}
	if !h.s.current("ns:e1").expiredAt(h.clock.Now()) || h.s.current("ns:e1").expiredAt(expiry.Add(-time.Second)) {
		t.Error("expiredAt wrong around the expiry")
	}
}

func TestRetrieveNotShared(t *testing.T) {
	h := newHarness(t, Config{})
	h.create(t, testPolicyID, ownerPolicy)
	res := h.mustDo(t, req{action: ditto.ActionRetrieve})
	res.Value.(map[string]any)["entries"].(map[string]any)["owner"].(map[string]any)["subjects"] = "scribbled"
	again := h.mustDo(t, req{action: ditto.ActionRetrieve})
	if _, ok := again.Value.(map[string]any)["entries"].(map[string]any)["owner"].(map[string]any)["subjects"].(map[string]any); !ok {
		t.Error("a retrieved value shares state with the stored policy")
	}
}

// hasExpired is the plain definition expiredAt must agree with.
func hasExpired(policy map[string]any, now time.Time) bool {
	entries, _ := policy["entries"].(map[string]any)
	for _, e := range entries {
		subjects, _ := e.(map[string]any)["subjects"].(map[string]any)
		for _, sv := range subjects {
			if subjectExpired(sv, now) {
				return true
			}
		}
	}
	return false
}

func TestFacts(t *testing.T) {
	exp := testNow.Truncate(time.Hour).Format(time.RFC3339)
	later := testNow.Add(3 * time.Hour).Truncate(time.Hour).Format(time.RFC3339)
	tests := []struct {
		name, id, policy     string
		usesNS, imports, exp bool
	}{
		{name: "default", id: "ns:a", policy: defaultPolicy("ns:a")},
		{name: "escaped ID", id: `ns:a"b\c`, policy: `{"entries":{"e":{"subjects":{"a:b":{"type":"t"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}}}}`},
		{name: "namespaces", id: "ns:a", policy: `{"entries":{"e":{"subjects":{"a:b":{"type":"t"}},"resources":{},"namespaces":["x"]}}}`, usesNS: true},
		{name: "empty namespaces", id: "ns:a", policy: `{"entries":{"e":{"subjects":{"a:b":{"type":"t"}},"resources":{},"namespaces":[]}}}`},
		{name: "imports", id: "ns:a", policy: `{"imports":{"ns:b":{}},"entries":{}}`, imports: true},
		{name: "expiry", id: "ns:a", policy: `{"entries":{"e":{"subjects":{"a:b":{"type":"t","expiry":"` + later + `"},"a:c":{"type":"t","expiry":"` + exp + `"}},"resources":{}}}}`, exp: true},
		{name: "marker in a label", id: "ns:a", policy: `{"entries":{"expiry":{"subjects":{"a:b":{"type":"t"}},"resources":{}}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustJSON(t, tt.policy).(map[string]any)
			m["policyId"] = tt.id
			raw := ditto.EncodeJSON(m)
			rec := newRecord(tt.id, raw, 1, 0, 0)
			if !bytes.Equal(rec.raw(), raw) || rec.rawLen() != len(raw) {
				t.Fatalf("raw() = %s, want %s", rec.raw(), raw)
			}
			f := deriveFacts(rec)
			if f.usesNS != tt.usesNS || f.imports != tt.imports || f.hasExpiry != tt.exp {
				t.Errorf("facts = %+v", f)
			}
			if tt.exp && f.minExpiry.Format(time.RFC3339) != exp {
				t.Errorf("minExpiry = %v, want %s", f.minExpiry, exp)
			}
			// The same content under another ID has the same sum, whether
			// or not the ID needs escapes.
			m["policyId"] = "other:id"
			other := newRecord("other:id", ditto.EncodeJSON(m), 1, 0, 0)
			if g := deriveFacts(other); g.sum != f.sum {
				t.Error("sum depends on the policy ID")
			}
			// Equal content but for a plain ID: one interned body.
			if rec.cut() && other.body != rec.body {
				t.Error("equal policies of other IDs do not share their body")
			}
			for _, d := range []time.Duration{-time.Hour, 0, time.Hour, 5 * time.Hour} {
				now := testNow.Truncate(time.Hour).Add(d)
				if got, want := rec.expiredAt(now), hasExpired(rec.policy(), now); got != want {
					t.Errorf("expiredAt(%v) = %v, want %v", now, got, want)
				}
			}
		})
	}
}

func TestSnapshotFormat(t *testing.T) {
	s := newFSMService()
	s.FSM().Apply(1, policyCommand(t, policyCmd{Action: ditto.ActionModify, ID: "ns:a", Value: mustJSON(t, ownerPolicy), Subjects: a}))
	rec := s.current("ns:a").withAnnounced(map[string]string{"owner\x00nginx:a": "2030-01-02T05:00:00Z", "b\x00c:d": "x"})
	s.store(rec)
	data := snapshotOf(t, s)
	r := restored(t, data)
	got := r.current("ns:a")
	if !bytes.Equal(got.raw(), rec.raw()) || got.Announced["b\x00c:d"] != "x" || len(got.Announced) != 2 || got.Created != rec.Created || got.Modified != rec.Modified {
		t.Errorf("restored %+v, want %+v", got, rec)
	}
	if again := snapshotOf(t, r); !bytes.Equal(again, data) {
		t.Error("snapshot of the restored state differs")
	}
	old := append([]byte("dnpol1\n"), data[len(snapshotMagic):]...)
	for name, bad := range map[string][]byte{
		"old format":     old,
		"trailing data":  append(bytes.Clone(data), 0),
		"count too high": append([]byte(snapshotMagic), 0x05),
		"not an object":  append([]byte(snapshotMagic), 1, 4, 'n', 's', ':', 'x', 2, 0, 0, 2, '[', ']', 0),
		"short time":     append([]byte(snapshotMagic), 1, 4, 'n', 's', ':', 'x', 2, 0x80),
		"v2 bad time":    append([]byte(snapshotMagicV2), 1, 4, 'n', 's', ':', 'x', 2, 1, 'x', 0, 0, 0),
		"v2 empty time":  append([]byte(snapshotMagicV2), 1, 4, 'n', 's', ':', 'x', 2, 0, 0, 0, 0),
		"v2 long time":   append([]byte(snapshotMagicV2), 1, 4, 'n', 's', ':', 'x', 2, 0xff, 0xff, 0x7f),
	} {
		t.Run(name, func(t *testing.T) {
			err := newFSMService().FSM().Restore(bytes.NewReader(bad))
			if !errors.Is(err, ErrBadSnapshot) {
				t.Errorf("Restore = %v, want ErrBadSnapshot", err)
			}
			if name == "old format" && !strings.Contains(err.Error(), "dnpol1") {
				t.Errorf("error %q does not name the format", err)
			}
		})
	}
}

// writeV2 writes the records of s in snapshot format dnpol2 as dittonode
// wrote it before times were kept as Unix milliseconds: the times as
// ditto.TimeFormat strings.
func writeV2(t testing.TB, s *Service) []byte {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := slices.Sorted(maps.Keys(s.state))
	var b []byte
	str := func(v string) { b = append(binary.AppendUvarint(b, uint64(len(v))), v...) }
	b = append(b, "dnpol2\n"...)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		r := s.state[id]
		str(r.ID)
		b = binary.AppendVarint(b, r.Revision)
		str(ditto.FormatTime(r.Created.Time()))
		str(ditto.FormatTime(r.Modified.Time()))
		str(string(r.raw()))
		keys := slices.Sorted(maps.Keys(r.Announced))
		b = binary.AppendUvarint(b, uint64(len(keys)))
		for _, k := range keys {
			str(k)
			str(r.Announced[k])
		}
	}
	return b
}

// TestRestoreV2 restores a snapshot of format dnpol2 (gateways in the field
// have them) into the state it was taken of; the next snapshot is of the
// current format and holds the same.
func TestRestoreV2(t *testing.T) {
	s := newFSMService()
	t0 := testNow.Add(-time.Hour)
	stamp := func(d time.Duration) string { return ditto.FormatTime(t0.Add(d)) }
	apply := func(i uint64, c policyCmd) {
		t.Helper()
		if err, ok := s.FSM().Apply(i, policyCommand(t, c)).(error); ok {
			t.Fatalf("command %d: %v", i, err)
		}
	}
	apply(1, policyCmd{Action: ditto.ActionCreate, ID: "ns:a", Value: mustJSON(t, ownerPolicy), Subjects: a, Time: stamp(0)})
	apply(2, policyCmd{Action: ditto.ActionModify, ID: "ns:a", Path: []string{"entries", "owner", "subjects", "x:y"}, Value: map[string]any{"type": "t"}, Subjects: a, Time: stamp(1500 * time.Millisecond)})
	apply(3, policyCmd{Action: ditto.ActionCreate, ID: "ns:b", Value: mustJSON(t, ownerPolicy), Subjects: a, Time: stamp(2 * time.Second)})
	apply(4, policyCmd{Action: ditto.ActionDelete, ID: "ns:b", Subjects: a, Time: stamp(time.Minute + 7*time.Millisecond)})
	apply(5, policyCmd{Action: ditto.ActionCreate, ID: "ns:c", Value: mustJSON(t, defaultPolicy("ns:c")), Subjects: []string{"nginx:ditto"}, Time: stamp(time.Hour)})
	s.store(s.current("ns:c").withAnnounced(map[string]string{"DEFAULT\x00nginx:ditto": "2030-01-02T05:00:00Z"}))

	v2 := writeV2(t, s)
	r := restored(t, v2)
	if d1, d2 := dump(s), dump(r); d1 != d2 {
		t.Fatalf("restored from dnpol2:\n%s\nwant\n%s", d2, d1)
	}
	if a := r.current("ns:a"); a.Created.String() != stamp(0) || a.Modified.String() != stamp(1500*time.Millisecond) {
		t.Errorf("ns:a created %s modified %s", a.Created, a.Modified)
	}
	if b := r.current("ns:b"); b.live() || b.Revision != 2 || b.Modified.String() != stamp(time.Minute+7*time.Millisecond) {
		t.Errorf("ns:b = %+v, want the tombstone of revision 2", b)
	}
	if got := r.current("ns:c").Announced; len(got) != 1 {
		t.Errorf("ns:c announced %v", got)
	}
	v3 := snapshotOf(t, r)
	if !bytes.HasPrefix(v3, []byte(snapshotMagic)) || !bytes.Equal(v3, snapshotOf(t, s)) {
		t.Error("the snapshot of the restored state differs from the original's")
	}
	if len(v3) >= len(v2) {
		t.Errorf("%s snapshot of %d bytes, %s of %d: not smaller", snapshotMagic[:6], len(v3), snapshotMagicV2[:6], len(v2))
	}
}

func FuzzRestore(f *testing.F) {
	s := newFSMService()
	s.FSM().Apply(1, policyCommand(f, policyCmd{Action: ditto.ActionModify, ID: "ns:a", Value: mustJSON(f, ownerPolicy), Subjects: a}))
	s.FSM().Apply(2, policyCommand(f, policyCmd{Action: ditto.ActionModify, ID: "ns:b", Value: mustJSON(f, ownerPolicy), Subjects: a}))
	s.FSM().Apply(3, policyCommand(f, policyCmd{Action: ditto.ActionDelete, ID: "ns:b", Subjects: a}))
	data := snapshotOf(f, s)
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add([]byte(snapshotMagic))
	f.Add([]byte("dnpol1\n"))
	f.Add(writeV2(f, s))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := newFSMService()
		if err := r.FSM().Restore(bytes.NewReader(b)); err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Restore = %v, want ErrBadSnapshot", err)
			}
			return
		}
		// Whatever restores persists to the same state again.
		again := restored(t, snapshotOf(t, r))
		if d1, d2 := dump(r), dump(again); d1 != d2 {
			t.Fatalf("round trip differs:\n%s\nvs\n%s", d1, d2)
		}
	})
}

// BenchmarkApplyCreateDefault creates default policies through Apply, as
// the things service does for each new thing.
func BenchmarkApplyCreateDefault(b *testing.B) {
	s := newFSMService()
	f := s.FSM()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		id := thingPolicyID(i)
		cmd := policyCommand(b, policyCmd{Action: ditto.ActionCreate, ID: id, Value: mustJSON(b, defaultPolicy(id)), Subjects: []string{"nginx:ditto"}})
		if r, ok := f.Apply(uint64(i+1), cmd).(ditto.Result); !ok || r.Status != 201 {
			b.Fatalf("create %s failed", id)
		}
		i++
	}
}

package policies

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

func newFSMService() *Service {
	return New(Config{}, Deps{Clock: func() time.Time { return testNow }})
}

func policyCommand(t testing.TB, c policyCmd) []byte {
	t.Helper()
	if c.Time == "" {
		c.Time = ditto.FormatTime(testNow)
	}
	return encodeCommand(cmdPolicy, c)
}

// dump renders the whole state deterministically.
func dump(s *Service) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := make([]string, 0, len(s.state))
	for id := range s.state {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b strings.Builder
	for _, id := range ids {
		r := s.state[id]
		fmt.Fprintf(&b, "%s rev=%d c=%s m=%s %s\n", id, r.Revision, r.Created, r.Modified, r.raw())
	}
	return b.String()
}

func TestApplyWithoutRaft(t *testing.T) {
	s := newFSMService()
	f := s.FSM()
	res := f.Apply(1, policyCommand(t, policyCmd{Action: ditto.ActionCreate, ID: testPolicyID, Value: mustJSON(t, ownerPolicy), Subjects: a}))
	r, ok := res.(ditto.Result)
	if !ok || r.Status != 201 || r.Revision != 1 || r.ETag != `"rev:1"` {
		t.Fatalf("create = %#v", res)
	}
	res = f.Apply(2, policyCommand(t, policyCmd{Action: ditto.ActionCreate, ID: testPolicyID, Value: mustJSON(t, ownerPolicy), Subjects: a}))
	if e, ok := res.(*ditto.Error); !ok || e.Code != "policies:policy.conflict" {
		t.Fatalf("second create = %#v", res)
	}
	res = f.Apply(3, policyCommand(t, policyCmd{Action: ditto.ActionDelete, ID: testPolicyID, Subjects: b}))
	if e, ok := res.(*ditto.Error); !ok || e.Code != "policies:policy.notmodifiable" {
		t.Fatalf("delete by reader = %#v", res)
	}
	res = f.Apply(4, policyCommand(t, policyCmd{Action: ditto.ActionModify, ID: testPolicyID, Path: []string{"entries", "x"}, Value: "nope", Subjects: a}))
	if e, ok := res.(*ditto.Error); !ok || e.Code != "policies:entry.invalid" {
		t.Fatalf("invalid entry = %#v", res)
	}
	if f.Apply(5, encodeCommand(cmdIgnore|0x33, map[string]int{})) != nil {
		t.Error("ignorable unknown command was not ignored")
	}
	if f.Apply(6, []byte{cmdIgnore | cmdPolicy, 9, '{'}) != nil {
		t.Error("ignorable command of an unknown version was not ignored")
	}
	if r := dump(s); !strings.Contains(r, "rev=1 ") {
		t.Errorf("state after failed commands: %s", r)
	}
}

// TestApplyBadTime applies commands whose time does not parse (the leader
// never writes one; an old or damaged log might hold one): every member
// skips them alike, without a panic and without a change.
func TestApplyBadTime(t *testing.T) {
	s := newFSMService()
	f := s.FSM()
	f.Apply(1, policyCommand(t, policyCmd{Action: ditto.ActionModify, ID: testPolicyID, Value: mustJSON(t, ownerPolicy), Subjects: a}))
	before := dump(s)
	for i, stamp := range []string{"yesterday", "", "2026-11-27T10:00:00Z", "2026-11-27T10:00:00.1234Z", "2026-11-27T10:00:00.123+01:00"} {
		idx := uint64(2 + 5*i)
		// Encoded by hand: policyCommand stamps an empty time.
		res := f.Apply(idx, encodeCommand(cmdPolicy, policyCmd{Action: ditto.ActionModify, ID: "ns:new", Value: mustJSON(t, ownerPolicy), Subjects: a, Time: stamp}))
		if e, ok := res.(*ditto.Error); !ok || e.Status != 500 {
			t.Errorf("create at time %q = %#v, want a 500 error", stamp, res)
		}
		f.Apply(idx+1, policyCommand(t, policyCmd{Action: ditto.ActionDelete, ID: testPolicyID, Subjects: a, Time: stamp + "x"}))
		for j, cmd := range [][]byte{
			encodeCommand(cmdCompensate, compensateCmd{ID: testPolicyID, Revision: 1, Time: stamp}),
			encodeCommand(cmdExpire, expireCmd{ID: testPolicyID, Time: stamp}),
			encodeCommand(cmdAnnounce, announceCmd{ID: testPolicyID, Time: stamp}),
		} {
			if res := f.Apply(idx+2+uint64(j), cmd); res != nil {
				t.Errorf("command %d at time %q = %#v, want nil", j, stamp, res)
			}
		}
	}
	if after := dump(s); after != before {
		t.Errorf("state after commands with bad times:\n%s\nwant\n%s", after, before)
	}
}

func TestApplyPanics(t *testing.T) {
	tests := []struct {
		name string
		cmd  []byte
	}{
		{"unknown type", []byte{0x33, cmdVersion, '{', '}'}},
		{"unknown version", []byte{cmdPolicy, 9, '{', '}'}},
		{"short", []byte{cmdPolicy}},
		{"undecodable", []byte{cmdPolicy, cmdVersion, '{'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			newFSMService().FSM().Apply(1, tt.cmd)
		})
	}
}

func snapshotOf(t testing.TB, s *Service) []byte {
	t.Helper()
	snap, err := s.FSM().Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var buf bytes.Buffer
	if err := snap.Persist(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSnapshotRestore(t *testing.T) {
	s := newFSMService()
	f := s.FSM()
	f.Apply(1, policyCommand(t, policyCmd{Action: ditto.ActionModify, ID: "ns:a", Value: mustJSON(t, ownerPolicy), Subjects: a}))
	f.Apply(2, policyCommand(t, policyCmd{Action: ditto.ActionModify, ID: "ns:b", Value: mustJSON(t, ownerPolicy), Subjects: a}))
	f.Apply(3, policyCommand(t, policyCmd{Action: ditto.ActionDelete, ID: "ns:b", Subjects: a}))
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Changes after the capture must not show up in it.
	f.Apply(4, policyCommand(t, policyCmd{Action: ditto.ActionModify, ID: "ns:c", Value: mustJSON(t, ownerPolicy), Subjects: a}))
	var buf bytes.Buffer
	if err := snap.Persist(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	r := newFSMService()
	if _, ok := r.Enforcer("ns:a"); ok {
		t.Fatal("fresh service has a policy")
	}
	if err := r.FSM().Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Enforcer("ns:a"); !ok {
		t.Error("restored policy missing")
	}
	if _, ok := r.Enforcer("ns:c"); ok {
		t.Error("policy created after the snapshot was restored")
	}
	want := strings.TrimSpace(strings.Join(strings.Split(dump(s), "\n")[:2], "\n"))
	if got := strings.TrimSpace(dump(r)); got != want {
		t.Errorf("restored state:\n%s\nwant:\n%s", got, want)
	}
	// The tombstone keeps the revision.
	res := r.FSM().Apply(5, policyCommand(t, policyCmd{Action: ditto.ActionModify, ID: "ns:b", Value: mustJSON(t, ownerPolicy), Subjects: a}))
	if rr, ok := res.(ditto.Result); !ok || rr.Revision != 3 {
		t.Errorf("recreate after restore = %#v", res)
	}

	for name, data := range map[string][]byte{
		"empty":     nil,
		"bad magic": []byte("nope\n"),
		"truncated": buf.Bytes()[:len(buf.Bytes())-3],
	} {
		t.Run(name, func(t *testing.T) {
			if err := newFSMService().FSM().Restore(bytes.NewReader(data)); !errors.Is(err, ErrBadSnapshot) {
				t.Errorf("Restore = %v, want ErrBadSnapshot", err)
			}
		})
	}
}

// randomCommand builds one of many interesting commands.
func randomCommand(t testing.TB, rng *rand.Rand, now time.Time) []byte {
	ids := []string{"ns:a", "ns:b", "ns:c"}
	id := ids[rng.Intn(len(ids))]
	ts := ditto.FormatTime(now)
	switch rng.Intn(10) {
	case 0:
		return encodeCommand(cmdCompensate, compensateCmd{ID: id, Revision: int64(rng.Intn(5)), Time: ts})
	case 1:
		return encodeCommand(cmdExpire, expireCmd{ID: id, Time: ts})
	}
	exp := now.Add(time.Duration(rng.Intn(4)) * time.Hour).Format(time.RFC3339)
	values := []struct {
		path  []string
		value string
	}{
		{nil, ownerPolicy},
		{nil, `{"entries":{"x":{"subjects":{"nginx:b":{"type":"t"}},"resources":{"policy:/":{"grant":["WRITE"],"revoke":[]}}}}}`},
		{nil, `{"imports":{"ns:a":{}},"entries":{}}`},
		{[]string{"entries", "tmp"}, `{"subjects":{"nginx:c":{"type":"t","expiry":"` + exp + `"}},"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}}`},
		{[]string{"entries", "owner", "subjects", "nginx:b"}, `{"type":"t"}`},
		{[]string{"entries", "owner", "resources", "policy:/"}, `{"grant":["READ"],"revoke":[]}`},
		{[]string{"entries", "reader"}, `{"subjects":{"nginx:b":{"type":"t"}},"resources":{"policy:/":{"grant":["WRITE"],"revoke":[]}}}`},
		{[]string{"imports", "ns:b"}, `{"entries":["x"]}`},
		{[]string{"entries", "owner", "namespaces"}, `["ns"]`},
	}
	v := values[rng.Intn(len(values))]
	c := policyCmd{ID: id, Path: v.path, Subjects: [][]string{a, b, ab}[rng.Intn(3)], AllowLockout: rng.Intn(4) == 0, Time: ts}
	switch rng.Intn(4) {
	case 0:
		c.Action = ditto.ActionDelete
		if rng.Intn(2) == 0 {
			c.Path = nil
		}
	case 1:
		c.Action = ditto.ActionCreate
		c.Path = nil
		c.Value = mustJSON(t, ownerPolicy)
	default:
		c.Action = ditto.ActionModify
		c.Value = mustJSON(t, v.value)
	}
	if rng.Intn(6) == 0 {
		c.IfMatch = fmt.Sprintf(`"rev:%d"`, rng.Intn(6))
	}
	return encodeCommand(cmdPolicy, c)
}

func TestDeterminism(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			one, two := newFSMService(), newFSMService()
			now := testNow
			const n = 300
			for i := 1; i <= n; i++ {
				now = now.Add(time.Duration(rng.Intn(40)) * time.Minute)
				cmd := randomCommand(t, rng, now)
				r1 := one.FSM().Apply(uint64(i), cmd)
				r2 := two.FSM().Apply(uint64(i), cmd)
				if fmt.Sprintf("%#v", r1) != fmt.Sprintf("%#v", r2) && jsonString(r1) != jsonString(r2) {
					t.Fatalf("command %d: results differ: %#v vs %#v", i, r1, r2)
				}
				if i == n/2 {
					data := snapshotOf(t, two)
					two = newFSMService()
					if err := two.FSM().Restore(bytes.NewReader(data)); err != nil {
						t.Fatal(err)
					}
				}
				// Readers warm the caches on one side only; that must not matter.
				if rng.Intn(3) == 0 {
					one.EnforcerFor("ns:a", "ns")
				}
			}
			if d1, d2 := dump(one), dump(two); d1 != d2 {
				t.Fatalf("states differ:\n%s\nvs\n%s", d1, d2)
			}
		})
	}
}

// applyOutcome renders what the FSM's Apply returned: the error code, or
// the status of the result.
func applyOutcome(res any) string {
	if e, ok := res.(*ditto.Error); ok {
		return e.Code
	}
	return fmt.Sprint(res.(ditto.Result).Status)
}

// TestRulesReplay: a command replays under the rules it was proposed with.
// Commands of earlier releases (Rules 0) let allow-policy-lockout lift
// lockout prevention and accepted subject expiries in the past; new ones
// do neither.
func TestRulesReplay(t *testing.T) {
	past := `{"type":"t","expiry":"2001-01-01T00:00:00Z"}`
	for _, rules := range []uint8{0, policyRules} {
		s := newFSMService()
		f := s.FSM()
		f.Apply(1, policyCommand(t, policyCmd{Action: ditto.ActionCreate, ID: testPolicyID, Value: mustJSON(t, ownerPolicy), Subjects: a, Rules: rules}))
		expire := f.Apply(2, policyCommand(t, policyCmd{Action: ditto.ActionModify, ID: testPolicyID,
			Path: []string{"entries", "owner", "subjects", "nginx:z"}, Value: mustJSON(t, past), Subjects: a, Rules: rules}))
		lockout := f.Apply(3, policyCommand(t, policyCmd{Action: ditto.ActionModify, ID: testPolicyID,
			Path: []string{"entries"}, Value: map[string]any{}, Subjects: a, AllowLockout: true, Rules: rules}))
		want := [2]string{"201", "204"}
		if rules > 0 {
			want = [2]string{"policies:subjectexpiry.invalid", "policies:policy.modificationinvalid"}
		}
		if got := [2]string{applyOutcome(expire), applyOutcome(lockout)}; got != want {
			t.Errorf("rules %d: past expiry, lockout with the header = %v, want %v", rules, got, want)
		}
	}
}

// TestRulesReplayReferences: before rules 3 references were not evaluated,
// and a command of those rules is decided as it was then, so an old log
// replays as it applied; a rules-3 command sees the reference.
func TestRulesReplayReferences(t *testing.T) {
	dave := []string{"nginx:dave"}
	policy := mustJSON(t, `{"entries":{"owner":`+ownerEntry+`,
		"admin":{"subjects":{},"resources":{"policy:/":{"grant":["READ","WRITE"],"revoke":[]}}},
		"dave":{"subjects":{"nginx:dave":{"type":"t"}},"resources":{},"references":[{"entry":"admin"}]}}}`)
	for rules, want := range map[uint8]string{2: "policies:entry.notmodifiable", 3: "201"} {
		s := newFSMService()
		f := s.FSM()
		f.Apply(1, policyCommand(t, policyCmd{Action: ditto.ActionCreate, ID: testPolicyID, Value: policy, Subjects: a, Rules: policyRules}))
		res := f.Apply(2, policyCommand(t, policyCmd{Action: ditto.ActionModify, ID: testPolicyID,
			Path: []string{"entries", "new"}, Value: mustJSON(t, `{"subjects":{"nginx:e":{"type":"t"}},"resources":{}}`), Subjects: dave, Rules: rules}))
		if got := applyOutcome(res); got != want {
			t.Errorf("rules %d: dave's write through the reference = %s, want %s", rules, got, want)
		}
	}
}

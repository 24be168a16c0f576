package policies

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dittonode/dittonode/ditto"
)

// announced is what a test sees of an announcement signal.
type announced struct {
	Topic      string
	DeleteAt   string
	SubjectIDs []string
}

// nextAnnouncement returns the next announcement on sub, skipping policy
// events, or fails when none is queued.
func nextAnnouncement(t *testing.T, sub *ditto.Subscription) (announced, bool) {
	t.Helper()
	for {
		select {
		case sig := <-sub.C():
			t2, err := ditto.ParseTopic(sig.Envelope.Topic)
			if err != nil || t2.Criterion != ditto.CriterionAnnouncements {
				continue
			}
			var v struct {
				DeleteAt   string   `json:"deleteAt"`
				SubjectIDs []string `json:"subjectIds"`
			}
			if err := json.Unmarshal(sig.Envelope.Value, &v); err != nil {
				t.Fatalf("announcement value %s: %v", sig.Envelope.Value, err)
			}
			if sig.Envelope.Path != "/" || sig.Envelope.Headers[ditto.HeaderCorrelationID] == "" {
				t.Errorf("announcement path %q, headers %v", sig.Envelope.Path, sig.Envelope.Headers)
			}
			return announced{Topic: sig.Envelope.Topic, DeleteAt: v.DeleteAt, SubjectIDs: v.SubjectIDs}, true
		default:
			return announced{}, false
		}
	}
}

func expiringPolicy(expiry time.Time, announcement string) string {
	return `{"entries":{"owner":` + ownerEntry + `,
		"temp":{"subjects":{"x:temp":{"type":"t","expiry":"` + expiry.Format(time.RFC3339) + `","announcement":` + announcement + `},
			"x:other":{"type":"t"}},
			"resources":{"thing:/":{"grant":["READ"],"revoke":[]}}}}}`
}

func TestAnnouncementValidation(t *testing.T) {
	h := newHarness(t, Config{})
	expiry := testNow.Add(2 * time.Hour).Truncate(time.Hour)
	for _, tc := range []struct {
		name, announcement, code string
	}{
		{"valid", `{"beforeExpiry":"1h","whenDeleted":true,"requestedAcks":{"labels":["my-ack"],"timeout":"10s"},"randomizationInterval":"5m"}`, ""},
		{"milliseconds", `{"beforeExpiry":"1500ms"}`, ""},
		{"not an object", `"1h"`, "policies:subjectannouncement.invalid"},
		{"no unit", `{"beforeExpiry":"10"}`, "policies:subjectannouncement.invalid"},
		{"negative", `{"beforeExpiry":"-1h"}`, "policies:subjectannouncement.invalid"},
		{"zero", `{"beforeExpiry":"0s"}`, "policies:subjectannouncement.invalid"},
		{"days", `{"beforeExpiry":"1d"}`, "policies:subjectannouncement.invalid"},
		{"number", `{"beforeExpiry":3600}`, "policies:subjectannouncement.invalid"},
		{"whenDeleted string", `{"whenDeleted":"yes"}`, "policies:subjectannouncement.invalid"},
		{"bad ack label", `{"requestedAcks":{"labels":["x"]}}`, "policies:subjectannouncement.invalid"},
		{"bad ack timeout", `{"requestedAcks":{"timeout":"soon"}}`, "policies:subjectannouncement.invalid"},
		{"bad randomization", `{"randomizationInterval":"5 minutes"}`, "policies:subjectannouncement.invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.do(t, req{action: mod, value: expiringPolicy(expiry, tc.announcement)})
			if code, _ := errCode(err); code != tc.code {
				t.Errorf("error = %q, want %q", code, tc.code)
			}
		})
	}
}

func TestAnnouncementBeforeExpiry(t *testing.T) {
	h := newHarness(t, Config{})
	sub := h.bus.Subscribe(64)
	defer sub.Close()
	expiry := testNow.Add(3 * time.Hour).Truncate(time.Hour)
	h.create(t, testPolicyID, expiringPolicy(expiry, `{"beforeExpiry":"1h"}`))
	ctx := context.Background()

	if n := h.s.Sweep(ctx); n != 0 {
		t.Fatalf("swept %d commands 3 h before expiry", n)
	}
	h.clock.Advance(expiry.Sub(testNow) - time.Hour - time.Second)
	if n := h.s.Sweep(ctx); n != 0 {
		t.Fatalf("swept %d commands a second before the announcement is due", n)
	}
	if a, ok := nextAnnouncement(t, sub); ok {
		t.Fatalf("early announcement %+v", a)
	}
	h.clock.Advance(time.Second)
	if n := h.s.Sweep(ctx); n != 1 {
		t.Fatalf("swept %d commands when the announcement is due, want 1", n)
	}
	want := announced{Topic: "ns/pol/policies/announcements/subjectDeletion", DeleteAt: expiry.Format(time.RFC3339), SubjectIDs: []string{"x:temp"}}
	got, ok := nextAnnouncement(t, sub)
	if !ok {
		t.Fatal("no announcement")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("announcement (-want +got):\n%s", diff)
	}
	if rev := h.s.current(testPolicyID).Revision; rev != 1 {
		t.Errorf("announcing changed the revision to %d", rev)
	}

	// Once per expiry: later sweeps, a snapshot restore and a re-applied
	// command do not announce again.
	h.clock.Advance(10 * time.Minute)
	if n := h.s.Sweep(ctx); n != 0 {
		t.Errorf("swept %d commands after announcing", n)
	}
	h.s.apply(100, encodeCommand(cmdAnnounce, announceCmd{ID: testPolicyID, Time: ditto.FormatTime(h.clock.Now())}))
	if a, ok := nextAnnouncement(t, sub); ok {
		t.Errorf("announced twice: %+v", a)
	}
	restored := snapshotRestore(t, h.s)
	if due := dueAnnouncements(restored.current(testPolicyID), h.clock.Now()); len(due) != 0 {
		t.Errorf("after restore still due: %+v", due)
	}

	// Changing another subject keeps the mark; a new expiry is announced
	// again.
	h.mustDo(t, req{action: mod, path: ptr("entries", "temp", "subjects", "x:other"), value: `{"type":"changed"}`})
	if n := h.s.Sweep(ctx); n != 0 {
		t.Errorf("swept %d commands after an unrelated change", n)
	}
	later := expiry.Add(time.Hour)
	h.mustDo(t, req{action: mod, path: ptr("entries", "temp", "subjects", "x:temp"),
		value: `{"type":"t","expiry":"` + later.Format(time.RFC3339) + `","announcement":{"beforeExpiry":"2h"}}`})
	if n := h.s.Sweep(ctx); n != 1 {
		t.Fatalf("swept %d commands for the new expiry, want 1", n)
	}
	got, ok = nextAnnouncement(t, sub)
	if !ok || got.DeleteAt != later.Format(time.RFC3339) {
		t.Errorf("announcement of the new expiry = %+v, %v", got, ok)
	}
}

func TestAnnouncementWhenDeleted(t *testing.T) {
	h := newHarness(t, Config{})
	sub := h.bus.Subscribe(64)
	defer sub.Close()
	expiry := testNow.Add(2 * time.Hour).Truncate(time.Hour)
	ctx := context.Background()

	t.Run("explicit delete", func(t *testing.T) {
		h.create(t, testPolicyID, expiringPolicy(expiry, `{"whenDeleted":true}`))
		h.mustDo(t, req{action: del, path: ptr("entries", "temp", "subjects", "x:temp")})
		got, ok := nextAnnouncement(t, sub)
		want := announced{Topic: "ns/pol/policies/announcements/subjectDeletion", DeleteAt: "2030-01-02T03:04:05Z", SubjectIDs: []string{"x:temp"}}
		if diff := cmp.Diff(want, got); !ok || diff != "" {
			t.Errorf("announcement (-want +got):\n%s", diff)
		}
	})
	t.Run("policy deleted", func(t *testing.T) {
		h.create(t, "ns:gone", expiringPolicy(expiry, `{"whenDeleted":true}`))
		h.mustDo(t, req{action: del, id: "ns:gone"})
		got, ok := nextAnnouncement(t, sub)
		if !ok || got.Topic != "ns/gone/policies/announcements/subjectDeletion" || !cmp.Equal(got.SubjectIDs, []string{"x:temp"}) {
			t.Errorf("announcement = %+v, %v", got, ok)
		}
	})
	t.Run("expired", func(t *testing.T) {
		h.create(t, "ns:exp", expiringPolicy(expiry, `{"whenDeleted":true,"beforeExpiry":"30m"}`))
		h.clock.Advance(expiry.Sub(h.clock.Now()))
		if n := h.s.Sweep(ctx); n != 2 {
			t.Fatalf("swept %d commands at expiry, want announce and expire", n)
		}
		for i, want := range []string{expiry.Format(time.RFC3339), expiry.Format(time.RFC3339)} {
			got, ok := nextAnnouncement(t, sub)
			if !ok || got.DeleteAt != want || !cmp.Equal(got.SubjectIDs, []string{"x:temp"}) {
				t.Errorf("announcement %d = %+v, %v", i, got, ok)
			}
		}
	})
	t.Run("no whenDeleted", func(t *testing.T) {
		h.create(t, "ns:quiet", expiringPolicy(h.clock.Now().Add(2*time.Hour).Truncate(time.Hour), `{"beforeExpiry":"1h"}`))
		h.mustDo(t, req{action: del, id: "ns:quiet", path: ptr("entries", "temp", "subjects", "x:temp")})
		if a, ok := nextAnnouncement(t, sub); ok {
			t.Errorf("announcement without whenDeleted: %+v", a)
		}
	})
}

func TestAnnouncementRandomization(t *testing.T) {
	expiry := testNow.Add(24 * time.Hour).Truncate(time.Hour)
	var offsets []time.Duration
	for _, sid := range []string{"a:1", "a:2", "a:3", "a:4", "a:5", "a:6"} {
		rec := newRecord(testPolicyID, []byte(`{"entries":{"e":{"subjects":{"`+sid+`":{"type":"t","expiry":"`+
			expiry.Format(time.RFC3339)+`","announcement":{"beforeExpiry":"1h","randomizationInterval":"30m"}}}}}}`), 1, 0, 0)
		// Find the first second at which the announcement is due.
		lo, hi := expiry.Add(-91*time.Minute), expiry.Add(-time.Hour)
		if len(dueAnnouncements(rec, lo)) != 0 || len(dueAnnouncements(rec, hi)) != 1 {
			t.Fatalf("%s: not due within [expiry-90m, expiry-60m]", sid)
		}
		for hi.Sub(lo) > time.Second {
			mid := lo.Add(hi.Sub(lo) / 2)
			if len(dueAnnouncements(rec, mid)) == 1 {
				hi = mid
			} else {
				lo = mid
			}
		}
		offsets = append(offsets, expiry.Add(-time.Hour).Sub(hi).Round(time.Second))
		if got := len(dueAnnouncements(rec, hi)); got != 1 {
			t.Fatalf("%s: not deterministic", sid)
		}
	}
	distinct := map[time.Duration]bool{}
	for _, o := range offsets {
		distinct[o] = true
	}
	if len(distinct) < 3 {
		t.Errorf("offsets %v are not spread", offsets)
	}
}

// snapshotRestore persists s and restores it into a fresh service.
func snapshotRestore(t *testing.T, s *Service) *Service {
	t.Helper()
	snap, err := s.FSM().Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.Persist(&buf); err != nil {
		t.Fatal(err)
	}
	fresh := New(Config{}, Deps{Log: &fakeLog{}})
	if err := fresh.FSM().Restore(&buf); err != nil {
		t.Fatal(err)
	}
	return fresh
}

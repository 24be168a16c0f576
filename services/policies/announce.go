package policies

import (
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Policy announcements (ditto-spec §2, §11). A subject may carry
//
//	"announcement": {"beforeExpiry":"1h", "whenDeleted":true,
//	                 "requestedAcks":{"labels":[…],"timeout":"10s"},
//	                 "randomizationInterval":"5m"}
//
// and then gets a subjectDeletion announcement
// (<ns>/<name>/policies/announcements/subjectDeletion, value
// {"deleteAt","subjectIds"}) once per expiry, beforeExpiry before it
// expires, and (whenDeleted) once when it is removed from the policy.
//
// Who announces what is replicated state: the sweeper on the leader
// proposes cmdAnnounce with its time; Apply computes the due subjects from
// the policy and that time, records them in the record's Announced set
// (key label+"\x00"+subject, value the expiry announced) and publishes the
// announcement on the node's bus. Every replica applies the same entry, so
// every node tells its own WebSocket sessions exactly once, and a new
// leader does not announce again. A changed expiry is a new key value and
// is announced again. Deletion announcements are published by the Apply
// that removes the subject.
//
// randomizationInterval moves the announcement earlier by an offset in
// [0, interval) that is a hash of policy, label, subject and expiry: it
// spreads announcements like Ditto's random offset but stays deterministic.
//
// Not done: requestedAcks are validated and kept, but announcements are
// sent once, without waiting for acknowledgements or re-sending.

// Announcement names and value keys.
const (
	announcementSubjectDeletion = "subjectDeletion"
	annBeforeExpiry             = "beforeExpiry"
	annWhenDeleted              = "whenDeleted"
	annRequestedAcks            = "requestedAcks"
	annRandomization            = "randomizationInterval"
)

// announcement is a subject's parsed announcement settings.
type announcement struct {
	beforeExpiry  time.Duration
	whenDeleted   bool
	randomization time.Duration
}

// parseDuration parses Ditto's short durations: a positive integer
// followed by ms, s, m or h.
func parseDuration(s string) (time.Duration, bool) {
	unit := time.Duration(0)
	num := s
	switch {
	case strings.HasSuffix(s, "ms"):
		num, unit = s[:len(s)-2], time.Millisecond
	case strings.HasSuffix(s, "s"):
		num, unit = s[:len(s)-1], time.Second
	case strings.HasSuffix(s, "m"):
		num, unit = s[:len(s)-1], time.Minute
	case strings.HasSuffix(s, "h"):
		num, unit = s[:len(s)-1], time.Hour
	default:
		return 0, false
	}
	if num == "" || num[0] < '0' || num[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > int64((1<<62)/unit) {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// normAnnouncement validates a subject's announcement and returns it as
// stored (unknown fields are kept, as Ditto's JSON objects keep them).
func normAnnouncement(sid string, v any) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, ditto.ErrPolicyAnnouncementBad.New("The announcement of subject '%s' must be an object.", sid)
	}
	bad := func(field string, val any) error {
		return ditto.ErrPolicyAnnouncementBad.New("The '%s' value '%v' of the announcement of subject '%s' is not valid.", field, val, sid)
	}
	for _, field := range []string{annBeforeExpiry, annRandomization} {
		if raw, has := m[field]; has {
			s, ok := raw.(string)
			if _, ok2 := parseDuration(s); !ok || !ok2 {
				return nil, bad(field, raw)
			}
		}
	}
	if raw, has := m[annWhenDeleted]; has {
		if _, ok := raw.(bool); !ok {
			return nil, bad(annWhenDeleted, raw)
		}
	}
	if raw, has := m[annRequestedAcks]; has {
		acks, ok := raw.(map[string]any)
		if !ok {
			return nil, bad(annRequestedAcks, raw)
		}
		if labels, has := acks["labels"]; has {
			list, ok := labels.([]any)
			if !ok {
				return nil, bad(annRequestedAcks+"/labels", labels)
			}
			for _, l := range list {
				if s, ok := l.(string); !ok || !ditto.ValidAckLabel(s) {
					return nil, bad(annRequestedAcks+"/labels", l)
				}
			}
		}
		if t, has := acks["timeout"]; has {
			s, ok := t.(string)
			if _, ok2 := parseDuration(s); !ok || !ok2 {
				return nil, bad(annRequestedAcks+"/timeout", t)
			}
		}
	}
	return ditto.DeepCopy(m).(map[string]any), nil
}

// announcementOf returns a stored subject's announcement settings.
func announcementOf(subject map[string]any) (announcement, bool) {
	m, ok := subject["announcement"].(map[string]any)
	if !ok {
		return announcement{}, false
	}
	var a announcement
	if s, ok := m[annBeforeExpiry].(string); ok {
		a.beforeExpiry, _ = parseDuration(s)
	}
	if s, ok := m[annRandomization].(string); ok {
		a.randomization, _ = parseDuration(s)
	}
	a.whenDeleted, _ = m[annWhenDeleted].(bool)
	return a, true
}

// subjectRef is one subject of one entry.
type subjectRef struct {
	label, id string
	value     map[string]any
}

func (r subjectRef) key() string { return r.label + "\x00" + r.id }

// subjectsOf lists the subjects of a policy, sorted by label and ID.
func subjectsOf(policy map[string]any) []subjectRef {
	entries, _ := policy["entries"].(map[string]any)
	var out []subjectRef
	for _, label := range sortedKeys(entries) {
		em, _ := entries[label].(map[string]any)
		subjects, _ := em["subjects"].(map[string]any)
		for _, sid := range sortedKeys(subjects) {
			sm, _ := subjects[sid].(map[string]any)
			out = append(out, subjectRef{label: label, id: sid, value: sm})
		}
	}
	return out
}

// dueAnnouncement is a subject whose expiry is to be announced now.
type dueAnnouncement struct {
	key, subject, expiry string
	deleteAt             time.Time
}

// dueAnnouncements returns the subjects of rec whose beforeExpiry
// announcement is due at now and not yet made for their current expiry.
// It is pure: Sweep uses it to decide whether to propose, Apply to decide
// what to announce.
func dueAnnouncements(rec *record, now time.Time) []dueAnnouncement {
	// Most policies announce nothing: skip decoding them.
	if !rec.contains(`"` + annBeforeExpiry + `"`) {
		return nil
	}
	var out []dueAnnouncement
	for _, ref := range subjectsOf(rec.policy()) {
		exp, ok := ref.value["expiry"].(string)
		if !ok {
			continue
		}
		a, ok := announcementOf(ref.value)
		if !ok || a.beforeExpiry <= 0 || rec.Announced[ref.key()] == exp {
			continue
		}
		at, err := time.Parse(time.RFC3339, exp)
		if err != nil {
			continue
		}
		announceAt := at.Add(-a.beforeExpiry - spread(rec.ID, ref, exp, a.randomization))
		if now.Before(announceAt) {
			continue
		}
		out = append(out, dueAnnouncement{key: ref.key(), subject: ref.id, expiry: exp, deleteAt: at})
	}
	return out
}

// spread is the deterministic offset in [0, interval) of one subject's
// announcement.
func spread(policyID string, ref subjectRef, expiry string, interval time.Duration) time.Duration {
	if interval <= 0 {
		return 0
	}
	h := fnv.New64a()
	for _, s := range []string{policyID, ref.label, ref.id, expiry} {
		_, _ = h.Write([]byte(s)) // hash writes never fail
		_, _ = h.Write([]byte{0})
	}
	return time.Duration(h.Sum64() % uint64(interval))
}

// keptAnnounced returns the announced marks of old that still hold in
// policy: the subject exists with the expiry that was announced.
func keptAnnounced(old *record, policy map[string]any) map[string]string {
	if old == nil || len(old.Announced) == 0 || policy == nil {
		return nil
	}
	var out map[string]string
	for _, ref := range subjectsOf(policy) {
		exp, _ := ref.value["expiry"].(string)
		if v, ok := old.Announced[ref.key()]; ok && v == exp {
			if out == nil {
				out = map[string]string{}
			}
			out[ref.key()] = v
		}
	}
	return out
}

// announceCmd asks Apply to record and publish the announcements due at
// Time for policy ID.
type announceCmd struct {
	ID   string `json:"id"`
	Time string `json:"t"`
}

// applyAnnounce records and publishes the announcements due at the
// command's time. The policy's revision does not change: announcing is not
// a change of the policy.
func (s *Service) applyAnnounce(index uint64, c *announceCmd) any {
	ts, ok := s.parseStamp(index, c.Time)
	if !ok {
		return nil
	}
	now := ts.Time()
	rec := s.current(c.ID)
	due := dueAnnouncements(rec, now)
	if len(due) == 0 {
		return nil
	}
	nr := rec.withAnnounced(make(map[string]string, len(rec.Announced)+len(due)))
	for k, v := range rec.Announced {
		nr.Announced[k] = v
	}
	byTime := map[time.Time][]string{}
	var times []time.Time
	for _, d := range due {
		nr.Announced[d.key] = d.expiry
		if _, ok := byTime[d.deleteAt]; !ok {
			times = append(times, d.deleteAt)
		}
		byTime[d.deleteAt] = append(byTime[d.deleteAt], d.subject)
	}
	s.store(nr)
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	for i, t := range times {
		s.publishAnnouncement(index, i, c.ID, t, byTime[t])
	}
	return nil
}

// announceDeleted publishes the whenDeleted announcement for the subjects
// of old that next no longer has (next nil: the policy was deleted) at
// time ts.
func (s *Service) announceDeleted(index uint64, id string, old, next map[string]any, ts ditto.Millis) {
	if old == nil || s.deps.Bus == nil {
		return
	}
	kept := map[string]bool{}
	for _, ref := range subjectsOf(next) {
		kept[ref.key()] = true
	}
	var gone []string
	for _, ref := range subjectsOf(old) {
		if kept[ref.key()] {
			continue
		}
		if a, ok := announcementOf(ref.value); ok && a.whenDeleted {
			gone = append(gone, ref.id)
		}
	}
	if len(gone) == 0 {
		return
	}
	// The deletion announcement comes after any beforeExpiry one of the
	// same entry (sequence 0), hence sequence 1000.
	s.publishAnnouncement(index, 1000, id, ts.Time(), gone)
}

// publishAnnouncement publishes one subjectDeletion announcement. Its
// correlation-id is derived from the log index, so that all replicas send
// the same announcement.
func (s *Service) publishAnnouncement(index uint64, seq int, id string, deleteAt time.Time, subjects []string) {
	if s.deps.Bus == nil {
		return
	}
	slices.Sort(subjects)
	subjects = slices.Compact(subjects)
	ids := make([]any, len(subjects))
	for i, sid := range subjects {
		ids[i] = sid
	}
	ns, name, _ := strings.Cut(id, ":")
	env := ditto.Envelope{
		Topic: ns + "/" + name + "/policies/" + ditto.CriterionAnnouncements + "/" + announcementSubjectDeletion,
		Headers: ditto.Headers{
			ditto.HeaderCorrelationID: "policy-announcement:" + id + ":" + strconv.FormatUint(index, 10) + "-" + strconv.Itoa(seq),
		},
		Path:  "/",
		Value: ditto.EncodeJSON(map[string]any{"deleteAt": deleteAt.UTC().Format(time.RFC3339Nano), "subjectIds": ids}),
	}
	s.deps.Bus.Publish(ditto.Signal{Envelope: env, EntityID: id, PolicyID: id, Index: index})
}

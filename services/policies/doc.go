// Package policies is the policies role of dittonode: the Ditto policy model
// and its validation, the replicated state machine of the "policies" Raft
// group, the compiled policy enforcer (trie evaluation with inherited
// weights, Ditto's "deepest statement wins, revoke wins ties") and the full
// set of policy commands behind Service.Handle.
//
// Writes are enforced and validated before they are proposed and again,
// authoritatively and deterministically, inside FSM.Apply (existence,
// If-Match/If-None-Match, permissions, lockout prevention, sizes), so that
// conditional and permission-checked writes are linearizable. The leader
// stamps time into every command; Apply never reads a clock.
//
// Subjects with an "announcement" get subjectDeletion announcements on the
// bus before they expire and when they are deleted; which ones were sent
// is replicated state (announce.go).
//
// It imports ditto and consensus only (plus the standard library); never
// services/things, services/gateway, node, mqtt or any other sibling.
package policies

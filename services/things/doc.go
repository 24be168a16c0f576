// Package things is the things service role: the thing model, the replicated
// state machine of the "things" consensus group and every thing command of
// the Ditto API (retrieve, create, modify, merge, delete on every thing
// path) behind one Handle method, enforced against policies.
//
// Write path: Handle validates the command, enforces it against the applied
// policy (through the Policies interface), creates a default, inline or
// copied policy for a thing create, stamps the time, encodes a log entry and
// proposes it. The FSM applies entries deterministically: it re-checks
// existence, If-Match/If-None-Match, if-equal and condition preconditions,
// assigns the revision, swaps the thing's immutable Record and publishes
// exactly one Ditto event per change on the signal bus.
//
// Things are stored as immutable Records holding the thing's canonical JSON
// (no special fields); Apply replaces a record copy-on-write, so snapshots
// and readers never see a partial change.
//
// It imports only the standard library, ditto, ditto/rql and consensus; it
// must not import other services, node, gateway, mqtt, sync or libp2p.
package things

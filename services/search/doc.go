// Package search is the things-search service role: a node-local index over
// every field of every thing and the query engine behind Ditto's search API
// (GET|POST /api/2/search/things and /count, the paged GET /api/2/things
// listing and the Ditto Protocol search protocol, ditto-spec.md section 6).
//
// # Index
//
// The index is a local projection of the applied things. Service.Start
// registers a synchronous observer on the node's signal bus first and then
// rebuilds the index from Source; signals that arrive during the rebuild are
// replayed onto the fresh index with a per-thing revision check, so nothing
// is lost or applied out of order. Because observers run inside the publish
// of the applied change, the index is never behind the applied state once a
// write has been acknowledged. A "_/_/things/twin/restored" signal (snapshot
// restore) rebuilds the index from Source synchronously.
//
// Every leaf of a thing (special fields thingId, policyId, _namespace,
// _revision, _created, _modified, then definition, attributes, features and
// _metadata when present) is indexed under its path with a typed key (null,
// bool, number, string) in an ordered B-tree per path; array elements are
// indexed under the array's path and objects inside arrays under their nested
// path. Every path that is present (leaves and inner objects) also gets a
// presence entry, and every features/<id>/... path is indexed a second time
// as features/*/... so wildcard queries use the index. Postings are sorted
// slices of document slots.
//
// # Planner
//
// eq and in look up postings; gt/ge/lt/le iterate the ordered value range
// (numbers by float64 value, strings bytewise, bounds inclusive so the
// candidate set is a superset); like with a literal prefix iterates the
// prefix range, like with a leading wildcard and ilike iterate the field's
// string values and test each; exists and ne use presence postings. and()
// turns a lower and an upper bound on one field into one range, then
// intersects the smallest estimated posting with those of similar size
// (much larger ones are left to Match); or() unions its children. not, empty, time:now comparisons and or() with such a child
// cannot be answered from the index: they scan all things (in sort order, so
// a thingId-sorted page stops after size+1 hits). Every candidate is then
// verified with rql.Match against the requester's view of the thing: the
// index only narrows, correctness (arrays, type strictness, partial
// visibility, ne/not on hidden fields) is decided by Match.
//
// # Authorization
//
// Authorization is evaluated at query time through Enforcers, so policy
// changes take effect immediately; policy signals on the bus are ignored. A
// thing is a result only if the requester has partial READ on thing:/. The
// filter is matched against, sorted by and projected from the requester's
// view; thingId and _namespace are always part of a readable thing's view.
//
// # Sorting and paging
//
// Sort keys come from the requester's view. As in Ditto (MongoDB order), a
// missing field or null sorts first ascending and last descending; then
// numbers, strings, objects, arrays and booleans. Ties are broken by
// thingId ascending. Cursors are keyset cursors: they carry the sort key of
// the last item and a hash of filter, sort and namespaces, and the next page
// holds the items strictly after that key, so paging is stable under
// concurrent writes.
//
// search imports only the standard library, github.com/google/btree, ditto
// and ditto/rql. It must not import other services, consensus, node, gateway,
// mqtt, sync, libp2p or testing.
package search

// Package search is the things-search service role: a node-local index over
// every field of every thing and the query engine behind Ditto's search API
// (GET|POST /api/2/search/things and /count, the paged GET /api/2/things
// listing and the Ditto Protocol search protocol, ditto-spec.md section 6).
//
// # Index
//
// The index is a local projection of the applied things. Service.Start
// registers a synchronous observer on the node's signal bus first and then
// builds the index from Source in a background goroutine, so a node serves
// thing reads while the index builds. Signals that arrive during the build
// are recorded and replayed onto the fresh index with a per-thing revision
// check, so nothing is lost or applied out of order. Queries (and the pages
// of search subscriptions) wait until the index is complete, bounded by the
// query timeout (then thing-search:search.timeout); WaitReady and Ready
// expose the same gate. Because observers run inside the publish of the
// applied change, the complete index is never behind the applied state once
// a write has been acknowledged. A "_/_/things/twin/restored" signal
// (snapshot restore) makes the index incomplete again and rebuilds it in the
// background; the publishing state machine never waits for a build. A build
// indexes the things in thingId order (Source yields them unordered), which
// keeps B-tree inserts on recently used nodes.
//
// Every leaf of a thing (special fields thingId, policyId, _namespace,
// _revision, _created, _modified, then definition, attributes, features and
// _metadata when present) is indexed under its path with a typed key (null,
// bool, number, string) in an ordered B-tree per path; array elements are
// indexed under the array's path and objects inside arrays under their nested
// path. Every path that is present (leaves and inner objects) also gets a
// presence key, and a path holding an object or an array, or lying inside an
// array, gets an "irregular" key (its sort value is not one scalar). Every
// features/<id>/... path is indexed a second time as features/*/... so
// wildcard queries use the index. The thingId field doubles as the ID index
// (lookup and thingId order).
//
// # Memory
//
// The index keeps no decoded documents. Per thing it holds a small record
// (ID, policy, revision, timestamps, a dense uint32 slot) and the slice of
// its JSON as received (ThingState.JSON, Signal.State): that slice is the
// immutable one the things store holds, so it costs nothing extra (Stats
// reports it as RawJSONBytes). Keys are walked straight from those bytes
// without building a document; paths are interned as one field per path.
// A key's posting (posting.go) is its one slot held in the key's entry
// (most keys of fields unique per thing: thingId, _modified, a serial
// number), a sorted slice of slots for a few things, and a bitmap over the
// slot space once at least 1024 things and one slot in 64 hold it
// (_revision 1, a manufacturer): adding or removing a slot there is O(1),
// not a memmove of a list of every thing. An update recomputes the old keys
// from the old JSON instead of storing key lists. A candidate is decoded
// from its JSON (a reflection-free decoder producing what ditto.DecodeJSON
// does) only to be verified and projected. 100k things of Ditto's
// benchmark shape take about 33 MB of index heap besides their 19 MB of
// JSON (TestIndexMemory100k asserts at most 40 MB); 100k things of the HTTP
// benchmark after 100k property writes, whose keys are mostly unique, 74
// MB with their JSON (TestIndexMemoryLoadThings100k: at most 80 MB).
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
// Some plans are exact: eq and in with strings or booleans, ge and le with
// strings, like and ilike, exists, and and/or of exact children that are
// all used. Their posting is precisely the set of things whose full view
// matches, except for things whose value at the field is irregular (the
// tIrr key: objects, arrays, values inside arrays, where the index
// flattens nested arrays and Match does not) and "odd" things (JSON with
// duplicate keys or keys holding '/', whose keys say more than the decoded
// document; the things store never produces them). A candidate of an
// exact plan that the requester may read completely, outside those, is a
// match without being decoded: counts and thingId-sorted pages of such
// queries decode nothing (a query without filter neither). This holds
// only for documents resolved under the same read lock as the plan.
//
// A thingId-sorted page whose candidates exceed idWalkOver (4096) does not
// build them: it walks the thingId order and verifies each thing, which
// finds a page after a few dozen verifications when matches are spread
// out; after idWalkBudget (256) verifications without a full page (matches
// that follow the thingIds, like serial numbers equal to the ID suffix)
// it builds the candidates and continues the walk over them.
//
// Items: with Query.RawItems (the HTTP API), an item of a requester who
// may read the whole thing, without a field selector, is copied from the
// stored JSON as a json.RawMessage (thingId, policyId, then definition,
// attributes and features as stored) instead of being decoded, projected
// and encoded again.
//
// # Authorization
//
// Authorization is evaluated at query time through Enforcers, so policy
// changes take effect immediately; policy signals on the bus are ignored. A
// thing is a result only if the requester has partial READ on thing:/. The
// filter is matched against, sorted by and projected from the requester's
// view; thingId and _namespace are always part of a readable thing's view.
// A query decides access once per enforcer (things whose policies have
// equal content share one interned enforcer, so 100k default policies cost
// one decision) and only for the things it verifies; what remains per
// thing is one EnforcerFor lookup.
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
// A thingId sort walks the ID order and stops after size+1 hits (or, with
// few candidates, sorts them). Any other
// sort with many candidates walks the first sort field's ordered keys from
// the cursor's value (and within the filter's bounds on that field), one
// group of equal values at a time, and stops once the page is full. When
// the filter bounds the sort field with many candidates, the walk does not
// build the candidate set: it enumerates the things within the bounds
// itself. Access is decided for the things the walk reaches, not for every
// candidate; things whose value there is not one scalar are verified up
// front and merged in. Only an unbounded walk that comes to the missing
// values (first when ascending) first looks up the access of every
// candidate holding the field, to find partial readers whose view hides
// it (sortwalk.go).
//
// search imports only the standard library, github.com/google/btree, ditto
// and ditto/rql. It must not import other services, consensus, node, gateway,
// mqtt, sync, libp2p or testing.
package search

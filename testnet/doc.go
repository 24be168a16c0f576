// Package testnet runs a cluster of real dittonode nodes inside one test
// process and injects faults into it.
//
// Every node is a complete node.Node: real Raft groups on a t.TempDir data
// directory, a real libp2p host on 127.0.0.1 (TCP and QUIC) and the HTTP
// gateway on 127.0.0.1:0 behind a small TCP proxy owned by the harness, so
// that a node's URL stays the same across restarts and a paused node stops
// answering without closing its sockets.
//
// Link faults (Partition, Heal, Drop, Delay, SetLatency) are injected
// through node.Deps.Links, which the node consults on every mesh dial and
// stream write of the raft, rpc and join protocols: a cut link fails dials
// and resets open streams, as a lost connection would. Faults are per
// direction. Kill closes a node after cutting all its links (no leadership
// transfer, no goodbye; the data directory is kept), Restart starts it
// again on the same data and ports, Wipe removes its member through the
// cluster API and starts it with an empty data directory and a new
// identity, so it joins as a new member. Pause cuts every link of a node and
// holds its HTTP traffic without closing anything; Resume lets both flow
// again.
//
// The package is for tests only: production packages must not import it
// (node/deps_test.go enforces that). New skips the test under -short.
package testnet

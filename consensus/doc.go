// Package consensus runs one hashicorp/raft instance per stateful service
// (things, policies, connectivity): a Group. A Group owns its log and stable
// store (raft-boltdb, <dir>/raft.db), its snapshot store (<dir>/snapshots)
// and its transport, and drives a service's deterministic FSM.
//
// Writes go through Group.Propose, which returns the FSM's result once the
// entry was applied on this node; with a Forwarder (Deps) a follower
// forwards the command to the leader (Group.AcceptForwarded there) and
// waits for its own apply. Linearizable reads use Group.ReadBarrier: on
// the leader concurrent callers share one leadership check; on a follower
// with a Forwarder they share one read-index round trip to the leader
// (Group.LeaderReadIndex there) and wait for it locally; ReadBarrierAll
// asks one leader for several groups' read indexes at once (ReadIndexer).
// The leader's answers name a committed entry, which the follower hands
// its raft as a commit hint so it need not wait for the leader's next
// append (commithint.go). Forwarded entries carry an origin header that
// lets every node drop duplicates the same way (DESIGN.md). The transport is pluggable through
// StreamLayer; without one a Group is a single node on an in-memory
// transport.
//
// No hashicorp/raft type appears in the exported API. This package imports
// only the standard library, github.com/hashicorp/raft,
// github.com/hashicorp/raft-boltdb/v2, its go.etcd.io/bbolt (for the log
// database's options) and github.com/hashicorp/go-hclog;
// it must not import any other dittonode package (see imports_test.go).
package consensus

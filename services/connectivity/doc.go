// Package connectivity is the connectivity role's replicated state: Ditto
// connection definitions, kept in the "connectivity" Raft group. The state
// machine is deterministic and snapshots cheaply; Service.Handle validates
// and proposes changes and reads the applied state.
//
// It imports ditto and consensus only; never gateway, mqtt, node or
// another service.
package connectivity

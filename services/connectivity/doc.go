// Package connectivity implements Ditto connections to external systems.
//
// The definitions are replicated state in the "connectivity" Raft group: the
// state machine is deterministic and snapshots cheaply; Service validates
// (model.go, placeholder.go, mapping definitions) and proposes changes and
// reads the applied state. Runtime runs the open connections this node owns
// (rendezvous placement over the live members): a Client per connection
// from the ClientFactory of its type (MQTT 3.1.1, MQTT 5, HTTP push),
// sources turned into commands through the consumer-side Dispatcher, targets
// fed from the bus and the live router through Views. API is the
// /api/2/connections logic the gateway serves.
//
// The connection "embedded" (embedded.go) is the node's own MQTT broker:
// it runs on every node that has one, for the devices connected there,
// with the devices' subjects.
//
// It imports ditto, ditto/rql and consensus only; never gateway, mqtt, node
// or another service. It alone imports the paho MQTT clients and goja.
package connectivity

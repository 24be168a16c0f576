// Package mqtt is the MQTT broker embedded in every dittonode: a mochi-mqtt
// v2 server with TCP, WebSocket, TLS and QUIC listeners, device
// authentication against the identities of the connectivity group, the
// topic conventions of the default "embedded" connection (Ditto Protocol
// JSON in, responses and twin events out, plain values on path-shaped
// topics) and persistence of sessions, retained messages and in-flight
// QoS 1/2 state under <data>/mqtt/.
//
// Every twin command a device publishes goes through the gateway's
// protocol API (Protocol), so it is enforced against the thing's policy
// with the device's subjects exactly like an HTTP request; twin events go
// out only to devices that may read them (Protocol.EventView). Devices
// that subscribe to message or live topics are subscribers of the node's
// live router (Live): they receive the messages, live commands and live
// events they may READ, and their answers published to ditto/command go
// back to the router (live.go).
//
// The broker is the endpoint of the node's "embedded" Ditto connection
// (connection.go): the conventions are on while that connection is open,
// and its sources (topic filters on ordinary topics) and targets (twin
// events to the subscribers that may read them) run here.
//
// Only this package imports mochi (as mochi). It imports ditto and its
// third-party stacks; never gateway, connectivity, node or another service:
// node plugs the concrete types into the consumer-side interfaces below.
package mqtt

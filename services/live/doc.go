// Package live is the node's live-signal router: Ditto messages, live
// commands, live events and the acknowledgements requested for them and for
// twin events (ditto-spec.md sections 7 and 8).
//
// The router is a router, not a broker. Router.Send authorizes a live
// signal against the thing's policy, fans it out to every subscriber of its
// kind that is connected at that moment and may READ it (no retention,
// at-most-once), and waits for the requested acknowledgements: the built-in
// live-response (the first response with the signal's correlation-id and
// topic wins, the others are dropped) and custom labels that subscribers
// declared. Router.Respond takes responses and acknowledgements back.
//
// Subscribers are WebSocket sessions, devices on the embedded MQTT broker
// (package mqtt, subscriber ID "mqtt/<clientId>") and Go code in tests. A subscriber
// has an ID, its authorization subjects, the kinds of signals it receives
// (messages, live-commands, live-events, acks) and the acknowledgement
// labels it declared; labels are unique across subscriber IDs (409
// acknowledgement:label.not.unique). One ID may hold several subscriptions
// (a session subscribes per START-SEND-*); its labels are released with the
// last one. deliver callbacks must not block.
//
// Twin events. Custom acknowledgements of twin commands are requested with
// Router.ExpectAcks before the command runs. The router observes the signal
// bus (Router.TwinEvent, registered by node as a synchronous observer): the
// twin event of that command (same thing, same correlation-id) gets the
// still pending custom labels in its "requested-acks" header before any bus
// subscriber sees it, so the WebSocket sessions that deliver twin events
// from the bus forward it as is. Sessions answer with an ack message
// (topic <ns>/<name>/things/twin/acks/<label>) through Router.Respond.
// A subscriber with kind "acks" that declared a pending label but may not
// READ the event is weakly acknowledged by the router (200, header
// ditto-weak-ack: true); a session that filters an event out for another
// reason (RQL, namespaces) sends that weak ack itself through Respond.
//
// Responders are identified by the internal header "ditto-origin" (the
// subscriber ID): an acknowledgement is accepted only from the subscriber
// that declared its label. Signals whose "ditto-origin" is a subscriber's
// ID are not delivered back to that subscriber.
//
// Decisions where Ditto leaves room:
//   - A missing live-response alone is 408 command.timeout (Ditto's
//     answer); a missing ack among several is 408
//     acknowledgement:request.timeout in the aggregation, for messages as
//     for live commands.
//   - Receivers need unrestricted READ on message:<path> for messages and
//     partial READ on thing:<path> for live commands and events; partial
//     readers get live events as the policy's JSON view.
//   - Send waits at most until ctx ends, or DefaultTimeout when ctx has no
//     deadline; callers apply the "timeout" header (claim allows 600 s).
//
// Across a cluster (Deps.Peers, plugged in by node over libp2p): Send
// offers every live signal to the other members' routers as well
// (Router.Offered delivers it to their subscribers and weakly acknowledges
// their labels that may not READ it); a subscriber's response or
// acknowledgement on another node goes back to the origin router
// (Router.Replied) by correlation-id, as long as the origin waits. Twin
// commands announce their custom labels to every member before they run
// (ExpectAcks, Router.Expected), so a session anywhere can acknowledge the
// twin event that every node applies. The remembered signals of other
// nodes are bounded and expire with the origin's timeout. Label uniqueness
// (409) is checked per node only.
//
// The router owns no goroutines: waiting happens in the caller's goroutine.
//
// Imports: the standard library and ditto only; the policies and things
// services are reached through the consumer-side interfaces Enforcers and
// Things that node plugs in.
package live

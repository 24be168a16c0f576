// Package gateway is dittonode's HTTP API v2: /api/2/things and
// /api/2/policies with Eclipse Ditto's exact routes, statuses, headers and
// error JSON, plus /api/2/whoami, POST /api/2/checkPermissions and /health.
//
// The gateway holds no thing or policy logic. It authenticates the request
// (HTTP basic users, optionally a trusted proxy's x-ditto-pre-authenticated
// header, and JWTs of configured OIDC issuers: jwt.go, jwks.go and the
// auth-subjects templates in jwttemplate.go), enforces the request limits (header and body sizes, concurrency,
// timeouts), translates the request into a ditto.Command, hands it to the
// services through the consumer-side interfaces Things and Policies, and
// translates the ditto.Result or error back into HTTP.
//
// Decisions where Ditto leaves room:
//   - Internal headers sent by clients (ditto-*, read-subjects, subject,
//     raw-request-url, timeout-access) are stripped silently, as Ditto's
//     header translator does; they never reach a command.
//   - x-ditto-pre-authenticated is ignored (not rejected) unless
//     Config.PreAuthentication is on; the request must then authenticate
//     another way.
//   - response-required=false and timeout=0 run the command to completion in
//     the request goroutine (nothing is lost, and the client gets
//     back-pressure) and then answer 202 with an empty body. A retrieve with
//     response-required=false is dropped, as in Ditto.
//   - Errors the services return that are not *ditto.Error: a context
//     deadline maps to 408 command.timeout, ErrUnavailable (or an error with
//     an Unavailable() bool method reporting true) to 503, anything else to
//     500 gateway:internal.error, logged with its correlation-id.
//
// Live twins: /ws/2 (ws.go, ws_session.go, ws_protocol.go) carries Ditto
// Protocol commands, START-SEND-*/STOP-SEND-* subscriptions, the search
// protocol and, through the Live router interface, messages, live commands,
// live events and acks. GET /api/2/things[/{id}[/path]] with Accept:
// text/event-stream streams changes as SSE (sse.go); message paths stream
// the readable messages (sse_messages.go) and /api/2/search/things all
// results (sse_search.go). A retrieve with live-channel-condition goes to
// the device when the condition holds on the twin (messages.go). fanout.go authorizes
// each twin event per subscriber: the full event for unrestricted readers
// of the changed path, the policy's JSON view for partial readers, nothing
// for others; then namespaces, RQL filter and extraFields apply. A session
// never receives events of its own commands. WebSocket sessions get twin
// events from one fan-out per server (ws_fanout.go): one bus subscription,
// READ decided once per subject set, each distinct view encoded once,
// bounded per-session queues that cut slow sessions off; the session writer
// corks the connection while it writes a batch (ws_cork.go).
//
// Imports: the standard library and ditto only (plus ditto/rql,
// github.com/coder/websocket for the streams and github.com/golang-jwt/jwt/v5
// for JWT verification). It must not import any other
// dittonode package (services/things, services/policies, consensus, node...):
// node plugs the concrete services in through Deps.
package gateway

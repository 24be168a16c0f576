package gateway

import (
	"context"

	"github.com/dittonode/dittonode/ditto"
)

// Live is the live-signal router (services/live implements it).
type Live interface {
	// Subscribe registers a consumer of live signals. kinds ⊆ {"messages","live-commands","live-events","acks"}; deliver is called for every live signal the router routes to this subscriber (already authorized by the router against auth: READ on the message/thing resource); it must not block (queue, drop-and-close on overflow). declaredAcks are the custom ack labels this consumer may issue; an error (acknowledgement:label.not.unique 409) means another subscriber declared one of them. cancel unregisters.
	Subscribe(id string, auth ditto.Auth, kinds []string, declaredAcks []string, deliver func(ditto.Envelope)) (cancel func(), err error)
	// Send routes a live signal (message, live command, live event) from a WS session to subscribers and, when a response is required, waits for it (ctx bounds the wait) and returns it as an envelope (the response, an aggregated acks envelope, or an error envelope).
	Send(ctx context.Context, env ditto.Envelope, auth ditto.Auth) (ditto.Envelope, bool /*has response*/, error)
	// Respond hands the router a response, live-response or acknowledgement envelope a consumer sent back (matched by correlation-id).
	Respond(env ditto.Envelope, auth ditto.Auth) error
}

// Kinds of live signals a session subscribes to (Live.Subscribe).
const (
	LiveKindMessages     = "messages"
	LiveKindLiveCommands = "live-commands"
	LiveKindLiveEvents   = "live-events"
	LiveKindAcks         = "acks"
)

package connectivity

import (
	"context"
	"hash/fnv"
	"log/slog"
)

// Client is one running connection's link to an external system. Each
// connection type has a ClientFactory; the runtime drives the client and
// knows nothing of the protocol.
type Client interface {
	// Connect opens the link and returns once it is up or failed. After a
	// successful Connect the client keeps the link up (reconnecting and
	// resubscribing) until Close.
	Connect(ctx context.Context) error
	// Subscribe consumes addresses with qos; deliver runs for every message
	// and the message is acknowledged to the external system after it
	// returned, unless it asked for redelivery: then the client withholds
	// the acknowledgement and reconnects (after its reconnectForRedelivery
	// delay) so that the external system delivers the message again.
	Subscribe(ctx context.Context, addresses []string, qos int, deliver Deliver) error
	// Publish sends msg to address and returns once the external system
	// accepted it (broker ack for QoS 1/2, 2xx for HTTP).
	Publish(ctx context.Context, address string, qos int, msg External) error
	// Connected reports whether the link is up right now.
	Connected() bool
	// Close ends the link; it is idempotent.
	Close() error
}

// Deliver handles one consumed message: the address (topic) it arrived on
// and the message. It returns true when the message must not be
// acknowledged but delivered again (see Client.Subscribe).
type Deliver func(ctx context.Context, address string, msg External) (redeliver bool)

// ClientFactory builds the client of a connection. It only allocates.
type ClientFactory func(c *Connection, log *slog.Logger) (Client, error)

// DefaultClientFactories are the connection types this package runs:
// external MQTT 3.1.1 and MQTT 5 brokers and HTTP push. The node may add
// its own (the embedded broker) in RuntimeDeps.Factories.
func DefaultClientFactories() map[string]ClientFactory {
	return map[string]ClientFactory{
		TypeMQTT:     newMQTT3Client,
		TypeMQTT5:    newMQTT5Client,
		TypeHTTPPush: newHTTPPushClient,
	}
}

// Owner returns the member that runs connection id: rendezvous (highest
// random weight) hashing over the live members, so that a member's death
// moves only the connections it ran, and every node computes the same
// owner from the same member list.
func Owner(id string, members []string) string {
	var best string
	var bestScore uint64
	for _, m := range members {
		h := fnv.New64a()
		_, _ = h.Write([]byte(id))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(m))
		s := mix64(h.Sum64())
		if best == "" || s > bestScore || (s == bestScore && m < best) {
			best, bestScore = m, s
		}
	}
	return best
}

// mix64 is a finalizer that spreads FNV's output over all bits.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb3e98ccbb9e3
	x ^= x >> 33
	return x
}

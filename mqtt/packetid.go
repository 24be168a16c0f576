package mqtt

import (
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// MQTT packet identifiers are chosen by each side for its own packets:
// the client numbers its SUBSCRIBEs and PUBLISHes, the broker numbers the
// messages it sends. mochi checks a SUBSCRIBE's ID against all of the
// session's in-flight entries, the broker's own outbound messages
// included, and refuses it with "packet identifier in use". A persistent
// session reconnecting with queued messages hit that at once: the broker
// re-sends the queue as 1, 2, 3… and clients number their first
// SUBSCRIBE 1, so mosquitto_sub printed "All subscription requests were
// denied" and exited. OnSubscribe sets a clashing outbound entry aside
// for the check and OnSubscribed, which mochi calls before it writes the
// SUBACK, puts it back; both run on the client's read goroutine, so no
// acknowledgement of that message can arrive in between. A clash with the
// client's own in-flight QoS 2 publish (a PUBREC entry) is a real reuse
// and stays refused.

// serverInitiated reports whether an in-flight entry is a message the
// broker sent (a PUBLISH waiting for its PUBACK/PUBREC, or a PUBREL
// waiting for its PUBCOMP).
func serverInitiated(pk packets.Packet) bool {
	return pk.FixedHeader.Type == packets.Publish || pk.FixedHeader.Type == packets.Pubrel
}

// OnSubscribe sets aside the broker's outbound in-flight message whose ID
// the SUBSCRIBE reuses.
func (h *hook) OnSubscribe(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if in, ok := cl.State.Inflight.Get(pk.PacketID); ok && serverInitiated(in) {
		if cl.State.Inflight.Delete(pk.PacketID) {
			h.b.setAside.Store(cl.ID, in)
		}
	}
	return pk
}

// restoreSetAside puts back what OnSubscribe set aside.
func (b *Broker) restoreSetAside(cl *mochi.Client) {
	if v, ok := b.setAside.LoadAndDelete(cl.ID); ok {
		cl.State.Inflight.Set(v.(packets.Packet))
	}
}

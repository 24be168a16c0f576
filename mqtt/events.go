package mqtt

import (
	"errors"
	"strings"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/dittonode/dittonode/ditto"
)

// pumpEvents forwards twin events from the bus to the devices subscribed
// to their event topics. A bus subscription that falls behind is cut off
// by the bus (counted in eventCutoffs) and taken up again, so the broker
// never holds an unbounded backlog.
func (b *Broker) pumpEvents(sub *ditto.Subscription) {
	for {
		select {
		case <-b.ctx.Done():
			sub.Close()
			return
		case <-sub.Done():
			if errors.Is(sub.Err(), ditto.ErrSlowSubscriber) {
				b.stats.eventCutoffs.Add(1)
				b.log.Warn("mqtt: event queue overflowed; events were lost for MQTT subscribers")
			}
			if b.ctx.Err() != nil {
				return
			}
			sub = b.deps.Bus.Subscribe(b.cfg.EventQueue)
		case sig := <-sub.C():
			// Forward what is queued, then make the in-flight copies
			// durable once for the whole batch: an event counted in
			// eventsSent survives a crash in every persistent session it
			// was queued for.
			sent := b.forwardEvent(sig)
		batch:
			for range 255 {
				select {
				case sig := <-sub.C():
					sent += b.forwardEvent(sig)
				default:
					break batch
				}
			}
			if sent > 0 && b.store != nil {
				b.store.flush()
			}
			b.stats.eventsSent.Add(int64(sent))
		}
	}
}

// forwardEvent sends one twin event to its subscribers: one publish of the
// stored event to every unrestricted reader, one publish of the JSON view
// to each partial reader, nothing to the others.
func (b *Broker) forwardEvent(sig ditto.Signal) int {
	if !strings.Contains(sig.Envelope.Topic, "/things/twin/events/") || !b.conventionsOn() {
		return 0
	}
	topic, ok := eventTopic(sig.EntityID, sig.Envelope.Path)
	if !ok {
		return 0
	}
	subs := b.srv.Topics.Subscribers(topic)
	if len(subs.Subscriptions) == 0 && len(subs.Shared) == 0 {
		return 0
	}
	ids := make(map[string]struct{}, len(subs.Subscriptions))
	for id := range subs.Subscriptions {
		ids[id] = struct{}{}
	}
	for _, group := range subs.Shared {
		for id := range group {
			ids[id] = struct{}{}
		}
	}
	var full map[string]bool
	var fullEnv []byte
	type view struct {
		id      string
		payload []byte
	}
	var views []view
	for id := range ids {
		auth, ok := b.auth(id)
		if !ok {
			continue
		}
		env, isFull, ok := b.deps.Protocol.EventView(sig, auth)
		if !ok {
			continue
		}
		if isFull {
			if full == nil {
				full = map[string]bool{}
				fullEnv = ditto.EncodeEnvelope(env)
			}
			full[id] = true
			continue
		}
		views = append(views, view{id, ditto.EncodeEnvelope(env)})
	}
	props := packets.Properties{ContentType: "application/vnd.eclipse.ditto+json"}
	if full != nil {
		b.publish(topic, fullEnv, props, 1, func(id string) bool { return full[id] })
	}
	for _, v := range views {
		b.publish(topic, v.payload, props, 1, func(id string) bool { return id == v.id })
	}
	return len(full) + len(views)
}

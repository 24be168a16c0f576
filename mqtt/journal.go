package mqtt

import (
	"strconv"
	"sync"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The publish journal makes a QoS 1/2 publish durable before the
// publisher gets its PUBACK (PUBREC).
//
// mochi acknowledges a publish first and only then hands it to the
// subscribers, which is when a persistent session's queued copy and a
// retained message reach the store; the store commits them a few
// milliseconds later. A crash in between would lose a message the
// publisher was told was delivered. So when a publish must outlive the
// process (it is retained, or a persistent session subscribes to its
// topic), OnPublish first commits it under a journal key and waits for
// the commit; OnPublished deletes the key after the subscribers' copies
// were queued, in the same ordered write queue. A journal entry found at
// start is published again, so a message is delivered at least once, as
// QoS 1 promises. Publishes nobody durable waits for (clean sessions
// only) cost no disk write, as before.

const journalPrefix = "JOURNAL"

// journalKey names the journal entry of a client's publish; mochi
// handles one client's packets one after another, so the packet ID is
// unique while the entry exists.
func journalKey(clientID string, packetID uint16) string {
	return journalPrefix + "_" + clientID + ":" + strconv.Itoa(int(packetID))
}

// journal is the store's state for the publish journal.
type journal struct {
	srv     *mochi.Server
	mu      sync.Mutex
	pending map[string]struct{}
}

// OnPublish journals a durable publish and waits until it is committed.
// It runs after the broker's own hook, so it sees only plain publishes
// that mochi will deliver.
func (s *store) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || pk.FixedHeader.Qos == 0 || s.journal.srv == nil {
		return pk, nil
	}
	if !pk.FixedHeader.Retain && !s.persistentSubscriber(pk.TopicName) {
		return pk, nil
	}
	key := journalKey(cl.ID, pk.PacketID)
	m := message(cl.ID, pk)
	m.ID, m.T = key, journalPrefix
	s.journal.mu.Lock()
	s.journal.pending[key] = struct{}{}
	s.journal.mu.Unlock()
	s.put(key, m)
	s.flush()
	return pk, nil
}

// OnPublished drops the journal entry once the subscribers' copies (and
// the retained message) are queued behind it.
func (s *store) OnPublished(cl *mochi.Client, pk packets.Packet) {
	if cl.Net.Inline || pk.FixedHeader.Qos == 0 {
		return
	}
	key := journalKey(cl.ID, pk.PacketID)
	s.journal.mu.Lock()
	_, ok := s.journal.pending[key]
	delete(s.journal.pending, key)
	s.journal.mu.Unlock()
	if ok {
		s.del(key)
	}
}

// persistentSubscriber reports whether a persistent session subscribes to
// topic (directly or in a shared subscription).
func (s *store) persistentSubscriber(topic string) bool {
	subs := s.journal.srv.Topics.Subscribers(topic)
	durable := func(id string) bool {
		cl, ok := s.journal.srv.Clients.Get(id)
		return ok && persistent(cl)
	}
	for id := range subs.Subscriptions {
		if durable(id) {
			return true
		}
	}
	for _, group := range subs.Shared {
		for id := range group {
			if durable(id) {
				return true
			}
		}
	}
	return false
}

// replayJournal publishes again every journaled message of a previous run
// whose delivery to the subscribers may not have been committed, then
// deletes the entries. It runs once, right after mochi restored the
// sessions and started serving; the broker's publish lock keeps it apart
// from event publishing.
func (b *Broker) replayJournal() {
	if b.store == nil {
		return
	}
	msgs, err := iterate[storage.Message](b.store, journalPrefix)
	if err != nil {
		b.log.Error("mqtt: read the publish journal", logKeyError, err)
		return
	}
	if len(msgs) == 0 {
		return
	}
	b.pubMu.Lock()
	for _, m := range msgs {
		pk := m.ToPacket()
		pk.FixedHeader.Type = packets.Publish
		if err := b.srv.InjectPacket(b.inline, pk); err != nil {
			b.log.Warn("mqtt: replay a journaled publish", "topic", pk.TopicName, logKeyError, err)
		}
		b.store.del(m.ID)
	}
	b.pubMu.Unlock()
	b.store.flush()
	b.stats.journalReplayed.Add(int64(len(msgs)))
	b.log.Info("mqtt: published journaled messages again after a restart", "messages", len(msgs))
}

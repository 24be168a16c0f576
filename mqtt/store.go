package mqtt

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"
)

// store persists the broker's sessions, subscriptions, retained messages
// and in-flight QoS 1/2 messages in <dir>/broker.db (bbolt).
//
// mochi calls the storage hooks synchronously on its hot paths (every QoS
// 1 message sets and clears an in-flight entry), so writes are group
// committed: hooks queue the change, one writer goroutine applies every
// queued change in one synced transaction, and a put followed by a delete
// of the same key within one batch never reaches the disk. The queue is
// bounded: when it is full, hooks wait (back-pressure instead of
// unbounded memory). A change is durable once its batch committed, a few
// milliseconds after the hook returned; Close flushes everything queued.
type store struct {
	mochi.HookBase
	path   string
	noSync bool
	log    *slog.Logger
	onUser func(clientID, username string)

	db     *bbolt.DB
	ops    chan storeOp
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
	errors atomic.Int64

	journal journal // journal.go
}

type storeOp struct {
	key   string
	value []byte // nil: delete
	flush chan struct{}
}

var bucket = []byte("mqtt")

const storeQueue = 16384

func newStore(dir string, noSync bool, log *slog.Logger, onUser func(string, string)) *store {
	return &store{path: filepath.Join(dir, "broker.db"), noSync: noSync, log: log, onUser: onUser,
		ops: make(chan storeOp, storeQueue), done: make(chan struct{}), journal: journal{pending: map[string]struct{}{}}}
}

func (s *store) ID() string { return "dittonode-store" }

func (s *store) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mochi.OnSessionEstablished,
		mochi.OnDisconnect,
		mochi.OnPublish,
		mochi.OnPublished,
		mochi.OnSubscribed,
		mochi.OnUnsubscribed,
		mochi.OnRetainMessage,
		mochi.OnWillSent,
		mochi.OnQosPublish,
		mochi.OnQosComplete,
		mochi.OnQosDropped,
		mochi.OnClientExpired,
		mochi.OnRetainedExpired,
		mochi.StoredClients,
		mochi.StoredInflightMessages,
		mochi.StoredRetainedMessages,
		mochi.StoredSubscriptions,
	}, []byte{b})
}

// Init opens the database and starts the writer.
func (s *store) Init(any) error {
	db, err := bbolt.Open(s.path, 0o600, &bbolt.Options{Timeout: time.Second, NoSync: s.noSync, NoFreelistSync: true})
	if err != nil {
		return fmt.Errorf("open %s: %w", s.path, err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		_ = db.Close()
		return err
	}
	s.db = db
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.writer()
	}()
	return nil
}

// Stop is called by mochi when the server closes; the broker closes the
// store itself after mochi stopped every client.
func (s *store) Stop() error { return nil }

// close flushes the queue and closes the database.
func (s *store) close() error {
	var err error
	s.once.Do(func() {
		if s.db == nil {
			return
		}
		close(s.done)
		s.wg.Wait()
		err = s.db.Close()
	})
	return err
}

// writer applies queued changes in batches until done, then drains.
func (s *store) writer() {
	batch := map[string][]byte{}
	var flushes []chan struct{}
	add := func(op storeOp) {
		if op.flush != nil {
			flushes = append(flushes, op.flush)
			return
		}
		batch[op.key] = op.value
	}
	commit := func() {
		if len(batch) > 0 {
			if err := s.db.Update(func(tx *bbolt.Tx) error {
				bk := tx.Bucket(bucket)
				for k, v := range batch {
					var err error
					if v == nil {
						err = bk.Delete([]byte(k))
					} else {
						err = bk.Put([]byte(k), v)
					}
					if err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				s.errors.Add(1)
				s.log.Error("mqtt: store write failed", logKeyError, err)
			}
			clear(batch)
		}
		for _, f := range flushes {
			close(f)
		}
		flushes = flushes[:0]
	}
	for {
		select {
		case op := <-s.ops:
			add(op)
		drain:
			for len(batch) < 4096 {
				select {
				case op := <-s.ops:
					add(op)
				default:
					break drain
				}
			}
			commit()
		case <-s.done:
			for {
				select {
				case op := <-s.ops:
					add(op)
				default:
					commit()
					return
				}
			}
		}
	}
}

func (s *store) put(key string, v storage.Serializable) {
	b, err := v.MarshalBinary()
	if err != nil {
		s.errors.Add(1)
		return
	}
	s.enqueue(storeOp{key: key, value: b})
}

func (s *store) del(key string) { s.enqueue(storeOp{key: key}) }

func (s *store) enqueue(op storeOp) {
	select {
	case s.ops <- op:
	case <-s.done:
		s.errors.Add(1) // a change after close is lost; counted
	}
}

// flush waits until everything queued so far is committed.
func (s *store) flush() {
	ch := make(chan struct{})
	s.enqueue(storeOp{flush: ch})
	select {
	case <-ch:
	case <-s.done:
	}
}

func clientKey(id string) string { return storage.ClientKey + "_" + id }
func subscriptionKey(id, filter string) string {
	return storage.SubscriptionKey + "_" + id + ":" + filter
}
func retainedKey(topic string) string { return storage.RetainedKey + "_" + topic }
func inflightKey(id string, pk packets.Packet) string {
	return storage.InflightKey + "_" + id + ":" + pk.FormatID()
}

// persistent reports whether a client's session outlives its connection
// (MQTT 5: a session expiry interval; 3.1.1: clean session off). Only
// those sessions, their subscriptions and in-flight messages are stored:
// the state of a clean session ends with its connection anyway, so its
// QoS 1 traffic costs no disk writes.
func persistent(cl *mochi.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

func (s *store) OnSessionEstablished(cl *mochi.Client, _ packets.Packet) { s.putClient(cl) }
func (s *store) OnWillSent(cl *mochi.Client, _ packets.Packet)           { s.putClient(cl) }

func (s *store) putClient(cl *mochi.Client) {
	if !persistent(cl) {
		// A clean session replaces whatever was stored under its ID.
		s.del(clientKey(cl.ID))
		return
	}
	props := cl.Properties.Props.Copy(false)
	s.put(clientKey(cl.ID), &storage.Client{
		ID: cl.ID, T: storage.ClientKey, Remote: cl.Net.Remote, Listener: cl.Net.Listener,
		Username: cl.Properties.Username, Clean: cl.Properties.Clean, ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval: props.SessionExpiryInterval, AuthenticationMethod: props.AuthenticationMethod,
			AuthenticationData: props.AuthenticationData, RequestProblemInfo: props.RequestProblemInfo,
			RequestResponseInfo: props.RequestResponseInfo, ReceiveMaximum: props.ReceiveMaximum,
			TopicAliasMaximum: props.TopicAliasMaximum, User: props.User, MaximumPacketSize: props.MaximumPacketSize,
		},
		Will: storage.ClientWill(cl.Properties.Will),
	})
}

// OnDisconnect forgets a session that ends with the connection (clean
// session, or session expiry 0).
func (s *store) OnDisconnect(cl *mochi.Client, _ error, expire bool) {
	if !expire || errors.Is(cl.StopCause(), packets.ErrSessionTakenOver) {
		return
	}
	s.del(clientKey(cl.ID))
}

func (s *store) OnClientExpired(cl *mochi.Client) { s.del(clientKey(cl.ID)) }

func (s *store) OnSubscribed(cl *mochi.Client, pk packets.Packet, codes []byte) {
	if !persistent(cl) {
		return
	}
	for i, f := range pk.Filters {
		if i >= len(codes) || codes[i] >= 0x80 {
			continue
		}
		s.put(subscriptionKey(cl.ID, f.Filter), &storage.Subscription{
			ID: subscriptionKey(cl.ID, f.Filter), T: storage.SubscriptionKey, Client: cl.ID, Qos: codes[i],
			Filter: f.Filter, Identifier: f.Identifier, NoLocal: f.NoLocal, RetainHandling: f.RetainHandling,
			RetainAsPublished: f.RetainAsPublished,
		})
	}
}

func (s *store) OnUnsubscribed(cl *mochi.Client, pk packets.Packet) {
	if !persistent(cl) {
		return
	}
	for _, f := range pk.Filters {
		s.del(subscriptionKey(cl.ID, f.Filter))
	}
}

func (s *store) OnRetainMessage(cl *mochi.Client, pk packets.Packet, r int64) {
	if r == -1 {
		s.del(retainedKey(pk.TopicName))
		return
	}
	m := message(cl.ID, pk)
	m.ID, m.T = retainedKey(pk.TopicName), storage.RetainedKey
	s.put(m.ID, m)
}

func (s *store) OnRetainedExpired(topic string) { s.del(retainedKey(topic)) }

func (s *store) OnQosPublish(cl *mochi.Client, pk packets.Packet, sent int64, _ int) {
	// The pending PUBACK of a received QoS 1 message means nothing after
	// a restart (the client resends what it has no PUBACK for).
	if !persistent(cl) || pk.FixedHeader.Type == packets.Puback {
		return
	}
	m := message(cl.ID, pk)
	m.ID, m.T, m.Sent = inflightKey(cl.ID, pk), storage.InflightKey, sent
	s.put(m.ID, m)
}

func (s *store) OnQosComplete(cl *mochi.Client, pk packets.Packet) {
	if persistent(cl) {
		s.del(inflightKey(cl.ID, pk))
	}
}

func (s *store) OnQosDropped(cl *mochi.Client, pk packets.Packet) {
	if persistent(cl) {
		s.del(inflightKey(cl.ID, pk))
	}
}

func message(clientID string, pk packets.Packet) *storage.Message {
	props := pk.Properties.Copy(false)
	return &storage.Message{
		Client: clientID, Origin: pk.Origin, FixedHeader: pk.FixedHeader, TopicName: pk.TopicName,
		Payload: pk.Payload, Created: pk.Created, PacketID: pk.PacketID,
		Properties: storage.MessageProperties{
			PayloadFormat: props.PayloadFormat, MessageExpiryInterval: props.MessageExpiryInterval,
			ContentType: props.ContentType, ResponseTopic: props.ResponseTopic, CorrelationData: props.CorrelationData,
			SubscriptionIdentifier: props.SubscriptionIdentifier, TopicAlias: props.TopicAlias, User: props.User,
		},
	}
}

// iterate decodes every stored value with the given prefix.
func iterate[T any, P interface {
	*T
	UnmarshalBinary([]byte) error
}](s *store, prefix string) ([]T, error) {
	var out []T
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		p := []byte(prefix + "_")
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			var t T
			if err := P(&t).UnmarshalBinary(v); err != nil {
				return fmt.Errorf("decode %s: %w", k, err)
			}
			out = append(out, t)
		}
		return nil
	})
	return out, err
}

// StoredClients restores the sessions; the broker learns which device owns
// each client ID.
func (s *store) StoredClients() ([]storage.Client, error) {
	v, err := iterate[storage.Client](s, storage.ClientKey)
	for _, c := range v {
		if len(c.Username) > 0 {
			s.onUser(c.ID, string(c.Username))
		}
	}
	return v, err
}

func (s *store) StoredSubscriptions() ([]storage.Subscription, error) {
	return iterate[storage.Subscription](s, storage.SubscriptionKey)
}

func (s *store) StoredRetainedMessages() ([]storage.Message, error) {
	return iterate[storage.Message](s, storage.RetainedKey)
}

func (s *store) StoredInflightMessages() ([]storage.Message, error) {
	return iterate[storage.Message](s, storage.InflightKey)
}

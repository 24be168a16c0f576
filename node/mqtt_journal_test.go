package node

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"

	"github.com/dittonode/dittonode/mqtt"
)

// persistentClient connects an MQTT 5 client whose session outlives the
// connection (session expiry one hour).
func persistentClient(t *testing.T, addr, id, user, pw string) (*paho.Client, *inbox) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	expiry := uint32(3600)
	c, in, err := pahoConnect(t, conn, &paho.Connect{ClientID: id, KeepAlive: 30, Username: user, UsernameFlag: true,
		Password: []byte(pw), PasswordFlag: true, Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	if err != nil {
		t.Fatal(err)
	}
	return c, in
}

// brokerDBHolds reports, from a copy of the broker's database taken now,
// whether a message stored under one of the key prefixes has payload want.
func brokerDBHolds(t *testing.T, dir string, want []byte, prefixes ...string) bool {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "mqtt", "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(cp, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	found := false
	_ = db.View(func(tx *bbolt.Tx) error {
		bk := tx.Bucket([]byte("mqtt"))
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(k, v []byte) error {
			for _, p := range prefixes {
				var m storage.Message
				if strings.HasPrefix(string(k), p) && m.UnmarshalBinary(v) == nil && bytes.Equal(m.Payload, want) {
					found = true
				}
			}
			return nil
		})
	})
	return found
}

// TestMQTTPublishJournal: a QoS 1 publish that a persistent session
// subscribes to is durable when its PUBACK arrives (the session's queued
// copy or the publish journal is on disk), and a journal entry left by a
// crash is delivered after the restart.
func TestMQTTPublishJournal(t *testing.T) {
	dir := t.TempDir()
	n, c := startMQTTNode(t, dir, nil)
	setupMQTTFixture(t, c)
	addr := n.MQTTAddr(mqtt.ListenerTCP)

	// The persistent session subscribes and goes away.
	away, _ := persistentClient(t, addr, "keep-1", "dev1", "secret-1")
	pahoSubscribe(t, away, "plant/#")
	_ = away.Disconnect(&paho.Disconnect{})

	pub, _ := persistentClient(t, addr, "pub-1", "dev1", "secret-1")
	defer func() { _ = pub.Disconnect(&paho.Disconnect{}) }()
	for i, msg := range []string{"reading-1", "reading-2", "reading-3"} {
		if err := pahoPublish(pub, &paho.Publish{Topic: "plant/line1/temp", QoS: 1, Payload: []byte(msg)}); err != nil {
			t.Fatal(err)
		}
		// Right after the PUBACK: either the journal entry or the
		// session's queued copy is committed.
		if !brokerDBHolds(t, dir, []byte(msg), "JOURNAL_", storage.InflightKey+"_keep-1:") {
			t.Fatalf("publish %d acknowledged before it was durable", i+1)
		}
	}
	// A retained message with no persistent subscriber is journaled too.
	if err := pahoPublish(pub, &paho.Publish{Topic: "status/line1", QoS: 1, Retain: true, Payload: []byte("running")}); err != nil {
		t.Fatal(err)
	}
	if !brokerDBHolds(t, dir, []byte("running"), "JOURNAL_", storage.RetainedKey+"_status/line1") {
		t.Fatal("retained publish acknowledged before it was durable")
	}
	_ = pub.Disconnect(&paho.Disconnect{})
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	// What a crash after a PUBACK and before the delivery was committed
	// leaves behind: a journal entry.
	db, err := bbolt.Open(filepath.Join(dir, "mqtt", "broker.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m := storage.Message{ID: "JOURNAL_pub-1:77", T: "JOURNAL", Client: "pub-1", Origin: "pub-1", TopicName: "plant/line1/temp",
		Payload: []byte("reading-crash"), FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 77,
		Created: time.Now().Unix()}
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte("mqtt")).Put([]byte(m.ID), b) }); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()

	n2, c2 := startMQTTNode(t, dir, nil)
	back, got := persistentClient(t, n2.MQTTAddr(mqtt.ListenerTCP), "keep-1", "dev1", "secret-1")
	defer func() { _ = back.Disconnect(&paho.Disconnect{}) }()
	seen := map[string]bool{}
	for len(seen) < 4 {
		p := receive(t, got, "plant/line1/temp")
		seen[string(p.Payload)] = true
	}
	for _, msg := range []string{"reading-1", "reading-2", "reading-3", "reading-crash"} {
		if !seen[msg] {
			t.Errorf("%s not delivered after the restart (got %v)", msg, seen)
		}
	}
	var h struct {
		MQTT struct {
			JournalReplayed int `json:"journalReplayed"`
		} `json:"mqtt"`
	}
	if err := json.Unmarshal(c2.do("GET", "/health", "").body, &h); err != nil || h.MQTT.JournalReplayed != 1 {
		t.Errorf("journalReplayed = %d (%v), want 1", h.MQTT.JournalReplayed, err)
	}
	// The retained message survived too.
	sub, got2 := persistentClient(t, n2.MQTTAddr(mqtt.ListenerTCP), "late-1", "dev1", "secret-1")
	defer func() { _ = sub.Disconnect(&paho.Disconnect{}) }()
	pahoSubscribe(t, sub, "status/#")
	if p := receive(t, got2, "status/line1"); string(p.Payload) != "running" {
		t.Errorf("retained %q", p.Payload)
	}
}

// TestMQTTResubscribeWithQueuedMessages: a persistent session that comes
// back to queued messages may subscribe again with a packet ID the broker
// uses for one of the messages it re-sends (both start at 1); the
// SUBSCRIBE is granted, as the MQTT ID spaces of the two sides are
// separate, and the queued messages arrive.
func TestMQTTResubscribeWithQueuedMessages(t *testing.T) {
	sub := mosquittoBin(t, "mosquitto_sub")
	pub := mosquittoBin(t, "mosquitto_pub")
	n, c := startMQTTNode(t, t.TempDir(), nil)
	setupMQTTFixture(t, c)
	h, p := hostPort(t, n.MQTTAddr(mqtt.ListenerTCP))
	login := []string{"-h", h, "-p", p, "-u", "dev1", "-P", "secret-1"}
	for _, v := range []string{"", "mqttv5"} {
		id := "keep-sub-" + v
		args := append([]string{}, login...)
		if v != "" {
			args = append(args, "-V", v, "-x", "3600")
		}
		// Subscribe once and go away.
		_, _ = run(t, sub, append(args, "-c", "-i", id, "-q", "1", "-t", "line/#", "-W", "1")...)
		for _, m := range []string{"q-1", "q-2"} {
			if out, err := run(t, pub, append(login, "-q", "1", "-t", "line/"+m, "-m", m)...); err != nil {
				t.Fatalf("publish: %v %s", err, out)
			}
		}
		out, _ := run(t, sub, append(args, "-c", "-i", id, "-q", "1", "-t", "line/#", "-W", "2", "-v")...)
		if strings.Contains(out, "denied") {
			t.Errorf("%s: the SUBSCRIBE after reconnecting was refused: %q", id, out)
		}
		for _, m := range []string{"q-1", "q-2"} {
			if !strings.Contains(out, "line/"+m+" "+m) {
				t.Errorf("%s: queued %s missing: %q", id, m, out)
			}
		}
	}
}

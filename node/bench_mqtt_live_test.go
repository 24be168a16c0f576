package node

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/mqtt"
)

// withBenchMQTT turns the broker on and lets ditto manage devices.
func withBenchMQTT(c *Config) {
	c.MQTT.Addr = "127.0.0.1:0"
	c.HTTP.DeviceAdmins = []string{"nginx:ditto"}
	c.Connectivity.DeviceHashCost = 4
}

// BenchmarkMQTTMessageRoundTrip measures HTTP message round trips through
// an MQTT 5 device on the embedded broker: 32 concurrent HTTP clients POST
// messages that one device (subscribed to the thing's inbox topic) answers
// on ditto/command.
//
//	go test -run '^$' -bench BenchmarkMQTTMessageRoundTrip -benchtime 5000x ./node/
func BenchmarkMQTTMessageRoundTrip(b *testing.B) {
	n := startBenchNode(b, withBenchMQTT)
	messageRoundTrips(b, n, n, mqttResponder(n))
}

// BenchmarkMQTTMessageRoundTripAcrossNodes is the same with the HTTP
// clients on node 1 and the device on node 3's broker.
//
//	go test -run '^$' -bench BenchmarkMQTTMessageRoundTripAcrossNodes -benchtime 5000x ./node/
func BenchmarkMQTTMessageRoundTripAcrossNodes(b *testing.B) {
	nodes := startBenchCluster(b, withBenchMQTT)
	messageRoundTrips(b, nodes[0], nodes[2], mqttResponder(nodes[0]))
}

// mqttResponder registers the device bench-dev (acting as nginx:ditto)
// through admin and answers the ping messages from an MQTT 5 client on n.
func mqttResponder(admin *Node) func(*testing.B, *Node) func() {
	return func(b *testing.B, n *Node) func() {
		req, _ := http.NewRequest("PUT", "http://"+admin.HTTPAddr().String()+"/api/2/devices/bench-dev",
			strings.NewReader(`{"password":"bench-pw","subjects":["nginx:ditto"]}`))
		req.SetBasicAuth("ditto", "ditto")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode >= 300 {
			b.Fatalf("register device: %v %v", resp, err)
		}
		resp.Body.Close()
		answers := make(chan *paho.Publish, 4096)
		var c *paho.Client
		deadline := time.Now().Add(15 * time.Second)
		for {
			conn, err := net.Dial("tcp", n.MQTTAddr(mqtt.ListenerTCP))
			if err != nil {
				b.Fatal(err)
			}
			c = paho.NewClient(paho.ClientConfig{Conn: conn,
				OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
					answers <- pr.Packet
					return true, nil
				}}})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err = c.Connect(ctx, &paho.Connect{ClientID: "bench-dev", CleanStart: true, KeepAlive: 30,
				Username: "bench-dev", UsernameFlag: true, Password: []byte("bench-pw"), PasswordFlag: true})
			cancel()
			if err == nil {
				break
			}
			_ = conn.Close()
			if time.Now().After(deadline) {
				b.Fatalf("device cannot connect: %v", err)
			}
			time.Sleep(200 * time.Millisecond) // the device record replicates
		}
		ctx, cancel := context.WithCancel(context.Background())
		if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "things/bench:msg/inbox/messages/#", QoS: 0}}}); err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-ctx.Done():
					return
				case p := <-answers:
					msg, err := ditto.DecodeEnvelope(p.Payload)
					if err != nil {
						continue
					}
					out := ditto.Envelope{Topic: msg.Topic, Path: "/outbox/messages/ping", Status: http.StatusOK, Value: msg.Value,
						Headers: ditto.Headers{ditto.HeaderCorrelationID: msg.Headers[ditto.HeaderCorrelationID], ditto.HeaderContentType: "text/plain"}}
					// QoS 0: the answer needs no PUBACK round trip.
					if _, err := c.Publish(ctx, &paho.Publish{Topic: mqtt.CommandTopic, QoS: 0, Payload: ditto.EncodeEnvelope(out)}); err != nil && ctx.Err() == nil {
						b.Errorf("answer: %v", err)
						return
					}
				}
			}
		}()
		return func() {
			cancel()
			<-done
			_ = c.Disconnect(&paho.Disconnect{})
		}
	}
}

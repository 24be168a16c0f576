package connectivity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// selfSigned returns a PEM certificate and PEM key.
func selfSigned(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "c"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestSpecificConfigAndTLSValidation(t *testing.T) {
	cert, key := selfSigned(t)
	good := `{"id":"c","connectionType":"mqtt-5","connectionStatus":"open","uri":"ssl://h:8883",
	  "ca":` + jsonString(cert) + `,"validateCertificates":true,
	  "credentials":{"type":"client-cert","cert":` + jsonString(cert) + `,"key":` + jsonString(key) + `},
	  "specificConfig":{"clientId":"my-client","reconnectForRedelivery":true,"cleanSession":false,"separatePublisherClient":true,
	    "publisherId":"my-pub","reconnectForRedeliveryDelay":"5s","keepAlive":"30s","lastWillTopic":"my/will","lastWillQos":1,
	    "lastWillRetain":false,"lastWillMessage":"connection lost"}}`
	c, err := ParseConnection([]byte(good), allTypes)
	if err != nil {
		t.Fatalf("Ditto's documented example: %v", err)
	}
	set, err := parseMQTTSettings(c)
	if err != nil {
		t.Fatal(err)
	}
	if set.clientID != "my-client" || !set.reconnectForRedelivery || set.redeliveryDelay != 5*time.Second || set.keepAlive != 30*time.Second ||
		!set.separatePublisher || set.publisherID != "my-pub" || set.will == nil || set.will.topic != "my/will" || set.will.qos != 1 ||
		string(set.will.message) != "connection lost" || set.tls == nil || len(set.tls.Certificates) != 1 || set.tls.RootCAs == nil {
		t.Fatalf("settings %+v", set)
	}
	d, _ := ParseConnection([]byte(`{"id":"d","connectionType":"mqtt","connectionStatus":"open","uri":"tcp://h:1","specificConfig":{"reconnectForRedeliveryDelay":"10ms"}}`), allTypes)
	if ds, _ := parseMQTTSettings(d); ds.redeliveryDelay != time.Second || ds.keepAlive != 60*time.Second || ds.clientID != "d" || ds.cleanSession {
		t.Fatalf("defaults: %+v", ds)
	}

	base := `"id":"c","connectionStatus":"open",`
	bad := map[string]string{
		"bool not bool":         `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","specificConfig":{"cleanSession":"maybe"}}`,
		"keepAlive text":        `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","specificConfig":{"keepAlive":"soon"}}`,
		"will qos 3":            `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","specificConfig":{"lastWillTopic":"w","lastWillQos":3}}`,
		"will wildcard":         `{` + base + `"connectionType":"mqtt-5","uri":"tcp://h:1","specificConfig":{"lastWillTopic":"w/#"}}`,
		"will without topic":    `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","specificConfig":{"lastWillMessage":"bye"}}`,
		"publisher = client":    `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","specificConfig":{"separatePublisherClient":true,"publisherId":"c"}}`,
		"object value":          `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","specificConfig":{"clientId":{"a":1}}}`,
		"ca not pem":            `{` + base + `"connectionType":"mqtt","uri":"ssl://h:1","ca":"hello"}`,
		"ca without tls":        `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","ca":` + jsonString(cert) + `}`,
		"cert without tls":      `{` + base + `"connectionType":"http-push","uri":"http://h:1","credentials":{"type":"client-cert","cert":` + jsonString(cert) + `,"key":` + jsonString(key) + `}}`,
		"credentials type":      `{` + base + `"connectionType":"http-push","uri":"https://h:1","credentials":{"type":"plain","username":"u"}}`,
		"key mismatch":          `{` + base + `"connectionType":"mqtt","uri":"ssl://h:1","credentials":{"type":"client-cert","cert":` + jsonString(cert) + `,"key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}}`,
		"include unresolvable":  `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","sources":[{"addresses":["a"],"qos":1,"authorizationContext":["s:x"],"acknowledgementRequests":{"includes":["{{ header:x }}"]}}]}`,
		"declared without id":   `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","sources":[{"addresses":["a"],"qos":1,"authorizationContext":["s:x"],"declaredAcks":["other:ack"]}]}`,
		"declared built-in":     `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","sources":[{"addresses":["a"],"qos":1,"authorizationContext":["s:x"],"declaredAcks":["twin-persisted"]}]}`,
		"bad ack filter":        `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","sources":[{"addresses":["a"],"qos":1,"authorizationContext":["s:x"],"acknowledgementRequests":{"filter":"fn:filter(header:a,'gt','0')"}}]}`,
		"cloudevents bad mode":  `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","mappingDefinitions":{"ce":{"mappingEngine":"CloudEvents","options":{"outboundMode":"both"}}}}`,
		"live response headers": `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","mappingDefinitions":{"u":{"mappingEngine":"UpdateTwinWithLiveResponse","options":{"dittoHeadersForMerge":"if-match: *"}}}}`,
	}
	for name, def := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := ParseConnection([]byte(def), allTypes)
			var de *ditto.Error
			if !errors.As(err, &de) || de.Status != 400 || de.Code != ditto.ErrConnectionInvalid.Code {
				t.Fatalf("got %v, want connectivity:connection.configuration.invalid", err)
			}
		})
	}
	ok := `{` + base + `"connectionType":"mqtt","uri":"tcp://h:1","sources":[{"addresses":["a"],"qos":1,"authorizationContext":["s:x"],
	  "acknowledgementRequests":{"includes":["twin-persisted","{{connection:id}}:custom"],"filter":"fn:filter(header:mqtt.qos,'ne','0')"},
	  "declaredAcks":["{{connection:id}}:my-ack"]}]}`
	if _, err := ParseConnection([]byte(ok), allTypes); err != nil {
		t.Fatalf("Ditto's acknowledgement example: %v", err)
	}
}

func TestSourceAckRequests(t *testing.T) {
	c, err := ParseConnection([]byte(`{"id":"c","connectionType":"mqtt","connectionStatus":"open","uri":"tcp://h:1","sources":[
	  {"addresses":["default"],"qos":1,"authorizationContext":["s:x"]},
	  {"addresses":["qos0"],"qos":0,"authorizationContext":["s:x"]},
	  {"addresses":["custom"],"qos":1,"authorizationContext":["s:x"],"acknowledgementRequests":{"includes":["twin-persisted","{{connection:id}}:custom"]}},
	  {"addresses":["none"],"qos":1,"authorizationContext":["s:x"],"acknowledgementRequests":{"includes":[],"filter":"fn:filter(header:never,'exists')"}}]}`), allTypes)
	if err != nil {
		t.Fatal(err)
	}
	twin := func() *ditto.Envelope {
		return &ditto.Envelope{Topic: "org.x/t/things/twin/commands/modify", Path: "/attributes/a", Headers: ditto.Headers{}}
	}
	hdr := func(qos string) Resolver {
		return func(prefix, name string) (string, bool) { return qos, prefix == "header" && name == "mqtt.qos" }
	}
	cases := []struct {
		src  int
		qos  string
		env  *ditto.Envelope
		want string
	}{
		{0, "1", twin(), "twin-persisted"},
		{0, "0", twin(), ""}, // a QoS 0 message on a QoS 1 source
		{1, "0", twin(), ""},
		{2, "1", twin(), "twin-persisted,c:custom"},
		{3, "1", twin(), ""},
		{0, "1", &ditto.Envelope{Topic: "org.x/t/things/live/messages/hello", Path: "/inbox/messages/hello", Headers: ditto.Headers{}}, "live-response"},
		{0, "1", &ditto.Envelope{Topic: "org.x/t/things/twin/acks/c:x", Path: "/", Headers: ditto.Headers{}}, ""},
	}
	for i, tc := range cases {
		sa := compileSourceAcks(c, c.Sources[tc.src])
		got := strings.Join(sa.requested(tc.env, hdr(tc.qos)), ",")
		if got != tc.want || tc.env.Headers.Get(ditto.HeaderRequestedAcks) != tc.want {
			t.Errorf("case %d: requested %q (header %q), want %q", i, got, tc.env.Headers.Get(ditto.HeaderRequestedAcks), tc.want)
		}
	}
	for st, want := range map[int]bool{403: false, 400: false, 404: false, 408: true, 424: true, 500: true, 503: true} {
		if redeliverable(st) != want {
			t.Errorf("redeliverable(%d) = %v", st, !want)
		}
	}
	if ackStatus(ditto.Envelope{Status: 412}, true) != 200 || ackStatus(ditto.Envelope{}, false) != 408 {
		t.Error("412 counts as success, no response as a timeout")
	}
}

package connectivity

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SpecificConfig is a connection's specificConfig. Ditto's examples write
// its values as JSON strings, booleans and numbers ("cleanSession": false,
// "lastWillQos": 1); each is kept as its text ("false", "1").
type SpecificConfig map[string]string

// UnmarshalJSON accepts strings, booleans and numbers as values.
func (s *SpecificConfig) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if raw == nil {
		*s = nil
		return nil
	}
	out := make(SpecificConfig, len(raw))
	for k, v := range raw {
		v = bytes.TrimSpace(v)
		switch {
		case len(v) > 0 && v[0] == '"':
			var str string
			if err := json.Unmarshal(v, &str); err != nil {
				return err
			}
			out[k] = str
		case bytes.Equal(v, []byte("null")):
			// absent
		case bytes.Equal(v, []byte("true")), bytes.Equal(v, []byte("false")):
			out[k] = string(v)
		case len(v) > 0 && (v[0] == '-' || v[0] >= '0' && v[0] <= '9'):
			var n json.Number
			if err := json.Unmarshal(v, &n); err != nil {
				return err
			}
			out[k] = n.String()
		default:
			return fmt.Errorf("specificConfig %q must be a string, boolean or number", k)
		}
	}
	*s = out
	return nil
}

// Credentials authenticate the node at the external system. The only type
// is "client-cert": a PEM certificate (chain) and its PEM private key for
// TLS client authentication.
type Credentials struct {
	Type string `json:"type"`
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
}

// CredentialsClientCert is the type of client-certificate credentials.
const CredentialsClientCert = "client-cert"

// tlsScheme reports whether a connection URI scheme runs over TLS.
func tlsScheme(scheme string) bool {
	return scheme == "ssl" || scheme == "wss" || scheme == "https" || scheme == "tls"
}

// tlsConfig builds the TLS client configuration of c: the trusted ca
// (PEM; the system roots without it), validateCertificates (default true)
// and client-cert credentials. It returns nil for a URI without TLS. Every
// error is connectivity:connection.configuration.invalid.
func tlsConfig(c *Connection, u *url.URL) (*tls.Config, error) {
	if !tlsScheme(u.Scheme) {
		if c.CA != "" {
			return nil, invalid("The connection has a 'ca' but its uri '%s' does not use TLS (use ssl://, wss:// or https://).", redactURI(c.URI))
		}
		if c.Credentials != nil {
			return nil, invalid("The connection has client-certificate credentials but its uri '%s' does not use TLS (use ssl://, wss:// or https://).", redactURI(c.URI))
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
	if c.ValidateCertificates != nil && !*c.ValidateCertificates {
		cfg.InsecureSkipVerify = true //nolint:gosec // the user turned validation off explicitly
	}
	if c.CA != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(c.CA)) {
			return nil, invalid("The 'ca' of the connection is not a PEM encoded X.509 certificate.")
		}
		cfg.RootCAs = pool
	}
	if cr := c.Credentials; cr != nil {
		if cr.Type != CredentialsClientCert {
			return nil, invalid("The credentials type '%s' is not supported; use '%s'.", clip(cr.Type), CredentialsClientCert)
		}
		if cr.Cert == "" || cr.Key == "" {
			return nil, invalid("Client-certificate credentials need 'cert' and 'key' (PEM).")
		}
		pair, err := tls.X509KeyPair([]byte(cr.Cert), []byte(cr.Key))
		if err != nil {
			return nil, invalid("The client certificate credentials are not valid: %s", clip(err.Error()))
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// mqttSettings are the specificConfig options both MQTT clients honour.
type mqttSettings struct {
	broker       *url.URL // without user info
	username     string
	password     string
	clientID     string
	cleanSession bool
	keepAlive    time.Duration
	tls          *tls.Config

	// reconnectForRedelivery: a consumed message whose requested
	// acknowledgements failed in a way that may succeed later is not
	// acknowledged; the client reconnects after redeliveryDelay so the
	// broker delivers it again.
	reconnectForRedelivery bool
	redeliveryDelay        time.Duration

	// separatePublisher publishes through a second client with
	// publisherID, so a reconnect for redelivery does not lose publishes.
	separatePublisher bool
	publisherID       string

	// will is the last will the broker publishes when the client goes
	// away without disconnecting (nil: none).
	will *mqttWill
}

type mqttWill struct {
	topic   string
	qos     byte
	retain  bool
	message []byte
}

// Defaults of the MQTT specificConfig (Ditto's).
const (
	defaultKeepAlive       = 60 * time.Second
	defaultRedeliveryDelay = 2 * time.Second
	minRedeliveryDelay     = time.Second
)

// mqttKnownKeys are the specificConfig keys an MQTT connection reads.
var mqttKnownKeys = []string{"clientId", "cleanSession", "keepAlive", "reconnectForRedelivery", "reconnectForRedeliveryDelay",
	"separatePublisherClient", "publisherId", "lastWillTopic", "lastWillQos", "lastWillRetain", "lastWillMessage"}

func specificBool(c *Connection, key string, def bool) (bool, error) {
	v, ok := c.SpecificConfig[key]
	if !ok || v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return def, invalid("The specificConfig '%s' must be true or false, not '%s'.", key, clip(v))
	}
	return b, nil
}

// specificDuration reads a duration ("60s", "1m") or a number of seconds.
func specificDuration(c *Connection, key string, def time.Duration) (time.Duration, error) {
	v := c.SpecificConfig[key]
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseFloat(v, 64)
		if nerr != nil {
			return def, invalid("The specificConfig '%s' must be a duration like '60s' or a number of seconds, not '%s'.", key, clip(v))
		}
		d = time.Duration(n * float64(time.Second))
	}
	if d < 0 {
		return def, invalid("The specificConfig '%s' must not be negative.", key)
	}
	return d, nil
}

// parseMQTTSettings reads an MQTT connection's URI, TLS options and
// specificConfig. Its errors are configuration errors (400), so
// validation runs it too.
func parseMQTTSettings(c *Connection) (mqttSettings, error) {
	u, err := url.Parse(c.URI)
	if err != nil {
		return mqttSettings{}, invalid("The uri '%s' is not a valid URI with a host.", redactURI(c.URI))
	}
	s := mqttSettings{clientID: c.ID}
	if u.User != nil {
		s.username = u.User.Username()
		s.password, _ = u.User.Password()
		u.User = nil
	}
	s.broker = u
	if v := c.SpecificConfig["clientId"]; v != "" {
		if len(v) > 65535 {
			return s, invalid("The specificConfig 'clientId' is too long.")
		}
		s.clientID = v
	}
	if s.cleanSession, err = specificBool(c, "cleanSession", false); err != nil {
		return s, err
	}
	if s.keepAlive, err = specificDuration(c, "keepAlive", defaultKeepAlive); err != nil {
		return s, err
	}
	if s.keepAlive > 65535*time.Second {
		return s, invalid("The specificConfig 'keepAlive' must be at most 65535 seconds.")
	}
	if s.reconnectForRedelivery, err = specificBool(c, "reconnectForRedelivery", false); err != nil {
		return s, err
	}
	if s.redeliveryDelay, err = specificDuration(c, "reconnectForRedeliveryDelay", defaultRedeliveryDelay); err != nil {
		return s, err
	}
	s.redeliveryDelay = max(s.redeliveryDelay, minRedeliveryDelay) // Ditto's minimum
	if s.separatePublisher, err = specificBool(c, "separatePublisherClient", false); err != nil {
		return s, err
	}
	s.publisherID = c.SpecificConfig["publisherId"]
	if s.publisherID == "" {
		s.publisherID = s.clientID + "p"
	}
	if s.separatePublisher && s.publisherID == s.clientID {
		return s, invalid("The specificConfig 'publisherId' must differ from the client ID '%s'.", clip(s.clientID))
	}
	if topic := c.SpecificConfig["lastWillTopic"]; topic != "" {
		if strings.ContainsAny(topic, "+#\x00") || len(topic) > 65535 {
			return s, invalid("The specificConfig 'lastWillTopic' '%s' must be an MQTT topic name without wildcards.", clip(topic))
		}
		w := &mqttWill{topic: topic, message: []byte(c.SpecificConfig["lastWillMessage"])}
		if v := c.SpecificConfig["lastWillQos"]; v != "" {
			q, err := strconv.Atoi(v)
			if err != nil || q < 0 || q > 2 {
				return s, invalid("The specificConfig 'lastWillQos' must be 0, 1 or 2, not '%s'.", clip(v))
			}
			w.qos = byte(q)
		}
		if w.retain, err = specificBool(c, "lastWillRetain", false); err != nil {
			return s, err
		}
		s.will = w
	} else {
		for _, k := range []string{"lastWillQos", "lastWillRetain", "lastWillMessage"} {
			if _, ok := c.SpecificConfig[k]; ok {
				return s, invalid("The specificConfig '%s' needs a 'lastWillTopic'.", k)
			}
		}
	}
	if s.tls, err = tlsConfig(c, u); err != nil {
		return s, err
	}
	return s, nil
}

// publisherSettings are the settings of the separate publisher client: its
// own client ID, no last will (the consumer's will stands for the
// connection) and no redelivery.
func (s mqttSettings) publisherSettings() mqttSettings {
	p := s
	p.clientID = s.publisherID
	p.will = nil
	p.reconnectForRedelivery = false
	p.separatePublisher = false
	return p
}

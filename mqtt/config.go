package mqtt

import (
	"errors"
	"time"
)

// Config of the embedded broker. Empty listener addresses turn that
// listener off; zero limits take their defaults in New.
type Config struct {
	// Addr is the plain TCP listener, host:port ("" = off).
	Addr string `json:"addr" yaml:"addr"`
	// WSAddr is the WebSocket listener, host:port ("" = off).
	WSAddr string `json:"wsAddr" yaml:"ws-addr"`
	// TLSAddr is the TLS listener, host:port ("" = off); it needs
	// TLSCertFile and TLSKeyFile.
	TLSAddr string `json:"tlsAddr" yaml:"tls-addr"`
	// QUICAddr is the MQTT-over-QUIC listener (UDP host:port, ALPN "mqtt",
	// one bidirectional stream per client connection; "" = off). It uses
	// the TLS certificate, or a self-signed one kept in Dir.
	QUICAddr string `json:"quicAddr" yaml:"quic-addr"`
	// TLSCertFile and TLSKeyFile are the server certificate (PEM) of the
	// TLS and QUIC listeners.
	TLSCertFile string `json:"tlsCertFile" yaml:"tls-cert"`
	TLSKeyFile  string `json:"tlsKeyFile" yaml:"tls-key"`
	// TLSClientCAFile enables client-certificate identities on the TLS and
	// QUIC listeners: a certificate signed by one of these CAs
	// authenticates as the device named by its subject CN.
	TLSClientCAFile string `json:"tlsClientCAFile" yaml:"tls-client-ca"`

	// Dir holds the broker's persistent state (sessions, subscriptions,
	// retained messages, in-flight QoS 1/2 messages); "" keeps it in
	// memory only.
	Dir string `json:"-" yaml:"-"`
	// NoSync skips fsync of the broker store (tests and benchmarks only).
	NoSync bool `json:"-" yaml:"-"`

	// MaxInflight bounds the QoS 1/2 messages held per client (in flight
	// or queued for an offline persistent session); more are dropped and
	// counted.
	MaxInflight int `json:"maxInflight" yaml:"max-inflight"`
	// MaxPending bounds the messages queued for writing to one connected
	// client; a slow client loses what does not fit, counted. It is at
	// least MaxInflight, so QoS 1/2 traffic alone (at most MaxInflight
	// messages per client) never overflows it.
	MaxPending int `json:"maxPending" yaml:"max-pending"`
	// SessionExpiry caps how long a disconnected persistent session is
	// kept.
	SessionExpiry time.Duration `json:"sessionExpiry" yaml:"session-expiry"`
	// EventQueue is the broker's queue of twin events from the signal bus.
	EventQueue int `json:"eventQueue" yaml:"event-queue"`

	// AuthFailures failed logins from one client address within
	// AuthWindow block that address for AuthBlock.
	AuthFailures int           `json:"authFailures" yaml:"auth-failures"`
	AuthWindow   time.Duration `json:"authWindow" yaml:"auth-window"`
	AuthBlock    time.Duration `json:"authBlock" yaml:"auth-block"`
}

// DefaultConfig is MQTT on 127.0.0.1:1883, the other listeners off.
func DefaultConfig() Config {
	return Config{
		Addr:          "127.0.0.1:1883",
		MaxInflight:   1024,
		MaxPending:    1024,
		SessionExpiry: 7 * 24 * time.Hour,
		EventQueue:    16384,
		AuthFailures:  5,
		AuthWindow:    time.Minute,
		AuthBlock:     time.Minute,
	}
}

// Enabled reports whether any listener is configured.
func (c Config) Enabled() bool {
	return c.Addr != "" || c.WSAddr != "" || c.TLSAddr != "" || c.QUICAddr != ""
}

// Validate reports the first configuration error.
func (c Config) Validate() error {
	switch {
	case c.TLSAddr != "" && (c.TLSCertFile == "" || c.TLSKeyFile == ""):
		return errors.New("the MQTT TLS listener needs a certificate and a key file")
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return errors.New("give both the MQTT TLS certificate and key file")
	case c.TLSClientCAFile != "" && c.TLSAddr == "" && c.QUICAddr == "":
		return errors.New("a client CA needs the MQTT TLS or QUIC listener")
	case c.MaxInflight < 0 || c.MaxInflight > 65535:
		return errors.New("mqtt max-inflight must be between 0 and 65535")
	case c.MaxPending < 0 || c.EventQueue < 0 || c.AuthFailures < 0:
		return errors.New("mqtt limits must not be negative")
	}
	return nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxInflight == 0 {
		c.MaxInflight = d.MaxInflight
	}
	if c.MaxPending < c.MaxInflight {
		c.MaxPending = c.MaxInflight
	}
	if c.SessionExpiry == 0 {
		c.SessionExpiry = d.SessionExpiry
	}
	if c.EventQueue == 0 {
		c.EventQueue = d.EventQueue
	}
	if c.AuthFailures == 0 {
		c.AuthFailures = d.AuthFailures
	}
	if c.AuthWindow == 0 {
		c.AuthWindow = d.AuthWindow
	}
	if c.AuthBlock == 0 {
		c.AuthBlock = d.AuthBlock
	}
	return c
}

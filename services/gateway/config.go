package gateway

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Defaults of Config.
const (
	DefaultAddr                  = "127.0.0.1:8080"
	DefaultNamespace             = "org.eclipse.ditto"
	DefaultMaxBodyBytes          = 256 * 1024
	DefaultMaxHeaderBytes        = 5 * 1024
	DefaultMaxConcurrentRequests = 4096
	DefaultReadHeaderTimeout     = 10 * time.Second
	DefaultReadTimeout           = 30 * time.Second
	// DefaultWriteTimeout is above the 60 s command timeout so that a command
	// that takes its whole budget still gets its 408 written.
	DefaultWriteTimeout    = 75 * time.Second
	DefaultIdleTimeout     = 120 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
)

// MaxTimeout is the longest (and the default) command timeout.
const MaxTimeout = 60 * time.Second

// maxSubjects is the most authorization subjects one request may carry.
const maxSubjects = 100

// Config configures the HTTP gateway. Zero fields take their defaults in New.
type Config struct {
	// Addr is the listen address, host:port.
	Addr string `json:"addr" yaml:"addr"`
	// Users are the HTTP basic users, name -> password. A user authenticates
	// as the subject "nginx:<name>", as behind Ditto's default nginx.
	Users map[string]string `json:"users" yaml:"users"`
	// PreAuthentication accepts "x-ditto-pre-authenticated: <issuer>:<subject>"
	// from a trusted proxy. Off by default; when off the header is ignored.
	PreAuthentication bool `json:"preAuthentication" yaml:"preAuthentication"`
	// OIDC are the trusted OpenID Connect issuers: requests may carry
	// "Authorization: Bearer <JWT>" (WebSocket and SSE also ?access_token=)
	// signed by one of them.
	OIDC []OIDCIssuer `json:"oidc" yaml:"oidc"`
	// DefaultNamespace is the namespace of things created by POST /things
	// without ?namespace=.
	DefaultNamespace string `json:"defaultNamespace" yaml:"defaultNamespace"`
	// MaxBodyBytes limits request bodies on the wire (413). The size limits
	// of things and policies (100 kB) apply to their compact JSON in the
	// services, as in Ditto, so a body may be larger in whitespace or
	// escapes.
	MaxBodyBytes int `json:"maxBodyBytes" yaml:"maxBodyBytes"`
	// MaxHeaderBytes limits the total size of the request headers (431).
	MaxHeaderBytes int `json:"maxHeaderBytes" yaml:"maxHeaderBytes"`
	// MaxConcurrentRequests bounds the API requests in flight; more get 429.
	MaxConcurrentRequests int `json:"maxConcurrentRequests" yaml:"maxConcurrentRequests"`
	// AdditionalMediaTypes are accepted for PUT and POST bodies besides
	// application/json (Ditto's default: application/octet-stream).
	AdditionalMediaTypes []string `json:"additionalMediaTypes" yaml:"additionalMediaTypes"`
	// DeviceAdmins are the subjects (e.g. nginx:admin) that may manage
	// the MQTT device identities on /api/2/devices; empty: nobody.
	DeviceAdmins []string `json:"deviceAdmins" yaml:"deviceAdmins"`

	ReadHeaderTimeout time.Duration `json:"readHeaderTimeout" yaml:"readHeaderTimeout"`
	ReadTimeout       time.Duration `json:"readTimeout" yaml:"readTimeout"`
	WriteTimeout      time.Duration `json:"writeTimeout" yaml:"writeTimeout"`
	IdleTimeout       time.Duration `json:"idleTimeout" yaml:"idleTimeout"`
	// ShutdownTimeout bounds the graceful part of Close; connections still
	// busy after it are closed.
	ShutdownTimeout time.Duration `json:"shutdownTimeout" yaml:"shutdownTimeout"`
	// Streams configures WebSocket sessions and SSE streams.
	Streams StreamConfig `json:"streams" yaml:"streams"`
}

// DefaultConfig returns the default configuration (no users).
func DefaultConfig() Config {
	return Config{
		Addr:                  DefaultAddr,
		DefaultNamespace:      DefaultNamespace,
		MaxBodyBytes:          DefaultMaxBodyBytes,
		MaxHeaderBytes:        DefaultMaxHeaderBytes,
		MaxConcurrentRequests: DefaultMaxConcurrentRequests,
		AdditionalMediaTypes:  []string{"application/octet-stream"},
		ReadHeaderTimeout:     DefaultReadHeaderTimeout,
		ReadTimeout:           DefaultReadTimeout,
		WriteTimeout:          DefaultWriteTimeout,
		IdleTimeout:           DefaultIdleTimeout,
		ShutdownTimeout:       DefaultShutdownTimeout,
	}
}

// Validate reports configuration errors. Zero values are valid (defaulted).
func (c Config) Validate() error {
	var errs []error
	if c.DefaultNamespace != "" && !ditto.ValidNamespace(c.DefaultNamespace) {
		errs = append(errs, fmt.Errorf("gateway: invalid default namespace %q", c.DefaultNamespace))
	}
	for name, pw := range c.Users {
		if name == "" || strings.ContainsAny(name, ":\x00") {
			errs = append(errs, fmt.Errorf("gateway: invalid basic user name %q", name))
		}
		if pw == "" {
			errs = append(errs, fmt.Errorf("gateway: user %q has an empty password", name))
		}
	}
	if err := validateOIDC(c.OIDC); err != nil {
		errs = append(errs, err)
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"maxBodyBytes", c.MaxBodyBytes}, {"maxHeaderBytes", c.MaxHeaderBytes}, {"maxConcurrentRequests", c.MaxConcurrentRequests}} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("gateway: %s must not be negative", n.name))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"readHeaderTimeout", c.ReadHeaderTimeout}, {"readTimeout", c.ReadTimeout}, {"writeTimeout", c.WriteTimeout},
		{"idleTimeout", c.IdleTimeout}, {"shutdownTimeout", c.ShutdownTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("gateway: %s must not be negative", d.name))
		}
	}
	if c.WriteTimeout > 0 && c.WriteTimeout <= MaxTimeout {
		errs = append(errs, fmt.Errorf("gateway: writeTimeout %s must exceed the command timeout %s", c.WriteTimeout, MaxTimeout))
	}
	if err := c.Streams.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	c.Streams = c.Streams.withDefaults()
	d := DefaultConfig()
	if c.Addr == "" {
		c.Addr = d.Addr
	}
	if c.DefaultNamespace == "" {
		c.DefaultNamespace = d.DefaultNamespace
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if c.MaxConcurrentRequests == 0 {
		c.MaxConcurrentRequests = d.MaxConcurrentRequests
	}
	if c.AdditionalMediaTypes == nil {
		c.AdditionalMediaTypes = d.AdditionalMediaTypes
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = d.ReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = d.ShutdownTimeout
	}
	return c
}

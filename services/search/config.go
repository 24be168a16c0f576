package search

import (
	"errors"
	"log/slog"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Config is the search configuration.
type Config struct {
	// DefaultPageSize is the page size without size(n) (default 25).
	DefaultPageSize int `json:"defaultPageSize" yaml:"defaultPageSize"`
	// MaxPageSize is the largest size(n) accepted (default 200).
	MaxPageSize int `json:"maxPageSize" yaml:"maxPageSize"`
	// Timeout bounds one query (default 10 s); a query that runs longer
	// fails with thing-search:search.timeout.
	Timeout time.Duration `json:"timeout" yaml:"timeout"`
	// IdleTimeout ends a search-protocol subscription that waits this long
	// for a request (default 60 s, as Ditto's search-idle-timeout) with
	// failed thing-search:subscription.timeout.
	IdleTimeout time.Duration `json:"idleTimeout" yaml:"idleTimeout"`
}

// DefaultConfig returns the defaults: pages of 25, at most 200, 10 s per
// query, subscriptions idle for at most 60 s.
func DefaultConfig() Config {
	return Config{DefaultPageSize: 25, MaxPageSize: 200, Timeout: 10 * time.Second, IdleTimeout: time.Minute}
}

// Validate reports a configuration that cannot work. Zero fields are valid
// (New defaults them).
func (c Config) Validate() error {
	if c.DefaultPageSize < 0 || c.MaxPageSize < 0 || c.Timeout < 0 || c.IdleTimeout < 0 {
		return errors.New("search: page sizes and timeouts must not be negative")
	}
	if c.DefaultPageSize > 0 && c.MaxPageSize > 0 && c.DefaultPageSize > c.MaxPageSize {
		return errors.New("search: default page size exceeds the maximum")
	}
	return nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.DefaultPageSize <= 0 {
		c.DefaultPageSize = d.DefaultPageSize
	}
	if c.MaxPageSize <= 0 {
		c.MaxPageSize = d.MaxPageSize
	}
	if c.DefaultPageSize > c.MaxPageSize {
		c.DefaultPageSize = c.MaxPageSize
	}
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	return c
}

// ThingState is one applied thing as the index reads it from Source.
type ThingState struct {
	ID       string
	PolicyID string
	Revision int64
	// Created and Modified are ISO-8601 UTC timestamps (ditto.TimeFormat).
	Created, Modified string
	// JSON is the thing's canonical JSON without special fields. It must
	// never be modified: the index keeps the slice (shared with the things
	// store, not copied) and decodes it again to verify search candidates.
	JSON []byte
}

// Source is the applied things state the index is rebuilt from (the things
// service, adapted in node). The index needs no lookup by ID: it keeps the
// JSON slice of each thing it received (from Source or a signal's State).
type Source interface {
	// RangeThings calls fn for every existing thing until fn returns false.
	RangeThings(fn func(ThingState) bool)
}

// Enforcers finds the enforcer of a thing's policy (the policies service).
// The enforcers it returns must be comparable (pointers, as the policies
// service's are): a query memoises its access decisions per enforcer, so
// one enforcer value must give the same answers throughout a query.
type Enforcers interface {
	EnforcerFor(policyID, entityNamespace string) (ditto.Enforcer, bool)
}

// Deps are the collaborators of the Service.
type Deps struct {
	Source    Source
	Enforcers Enforcers
	Bus       *ditto.Bus
	// Clock is the time of time:now in filters (default time.Now).
	Clock func() time.Time
	// Logger defaults to discarding.
	Logger *slog.Logger
}

package consensus

import (
	"errors"
	"sync"

	"github.com/hashicorp/raft"
)

// errStableClosed is what a read of the stable store returns after Close.
var errStableClosed = errors.New("consensus: stable store closed")

// closableStable guards raft's stable store (current term, vote) across
// Close. hashicorp/raft answers heartbeats on the transport's goroutines,
// outside its main loop, and a heartbeat already read when Shutdown
// returned may still save a newer term; raft panics when that save fails
// ("failed to save current term: database not open"). After close, writes
// are dropped instead: the instance is shut down, and a term it did not
// persist is learned again after a restart (a heartbeat is no vote).
type closableStable struct {
	mu     sync.RWMutex
	closed bool
	s      raft.StableStore
}

func (c *closableStable) close(fn func() error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return fn()
}

func (c *closableStable) Set(k, v []byte) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil
	}
	return c.s.Set(k, v)
}

func (c *closableStable) Get(k []byte) ([]byte, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, errStableClosed
	}
	return c.s.Get(k)
}

func (c *closableStable) SetUint64(k []byte, v uint64) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil
	}
	return c.s.SetUint64(k, v)
}

func (c *closableStable) GetUint64(k []byte) (uint64, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return 0, errStableClosed
	}
	return c.s.GetUint64(k)
}

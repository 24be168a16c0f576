package consensus

import (
	"sync"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// pagedStore is a group's log and stable store (raft-boltdb) that gives
// back the resident pages of its database file after every log
// compaction.
//
// Bolt reads its file through a read-only shared memory map, and every
// page a commit reads or a reader visits stays mapped into the process:
// the log database of a group that took 100k creates keeps more than 10 MB
// resident long after its log was compacted to a few thousand entries,
// and so does an idle group's. After DeleteRange (raft compacts the log
// behind a snapshot) the store drops the mapping's pages (dropMappedPages):
// the data stays in the kernel's page cache, and the pages the next commit
// or read needs map in again on first touch.
//
// Dropping pages of a mapping is safe only while the mapping stays where it
// is. Bolt remaps its file only in a write transaction that grows it, and
// unmaps it in Close, so every write and Close shares mu, and the drop
// holds it alone.
type pagedStore struct {
	*raftboltdb.BoltStore
	path string

	mu     sync.RWMutex
	closed bool
	// drop is dropMappedPages; tests count the drops through it.
	drop func(path string) error
}

var (
	_ raft.LogStore    = (*pagedStore)(nil)
	_ raft.StableStore = (*pagedStore)(nil)
)

func newPagedStore(s *raftboltdb.BoltStore, path string) *pagedStore {
	return &pagedStore{BoltStore: s, path: path, drop: dropMappedPages}
}

func (p *pagedStore) StoreLog(l *raft.Log) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.BoltStore.StoreLog(l)
}

func (p *pagedStore) StoreLogs(logs []*raft.Log) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.BoltStore.StoreLogs(logs)
}

func (p *pagedStore) Set(k, v []byte) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.BoltStore.Set(k, v)
}

func (p *pagedStore) SetUint64(k []byte, v uint64) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.BoltStore.SetUint64(k, v)
}

// DeleteRange deletes the entries min..max and then drops the file's
// resident pages. A failed drop costs memory, not data: it is not an error
// of the deletion.
func (p *pagedStore) DeleteRange(lo, hi uint64) error {
	p.mu.RLock()
	err := p.BoltStore.DeleteRange(lo, hi)
	p.mu.RUnlock()
	if err != nil {
		return err
	}
	p.dropPages()
	return nil
}

// dropPages gives back the resident pages of the database file's mapping.
func (p *pagedStore) dropPages() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	return p.drop(p.path)
}

func (p *pagedStore) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	return p.BoltStore.Close()
}

package consensus

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	waltypes "github.com/hashicorp/raft-wal/types"
)

// Log store kinds (Config.LogStore).
const (
	// LogStoreWAL is an append-only segmented write-ahead log
	// (hashicorp/raft-wal, <dir>/wal): one write and one fsync per batch
	// of entries, head truncation by deleting whole segment files.
	LogStoreWAL = "wal"
	// LogStoreBolt is raft-boltdb (<dir>/raft.db): a B+tree with two
	// fsyncs per batch. Directories created before the WAL keep it.
	LogStoreBolt = "bolt"
)

const (
	boltFile = "raft.db"
	walDir   = "wal"
	// walSegmentSize is the size of one WAL segment file. The tail segment
	// is scanned on start, so a smaller one restarts faster; rolling to a
	// new segment costs one small metadata transaction.
	walSegmentSize = 16 << 20
)

// logStore is a group's log and stable store.
type logStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// HasLogStore reports whether dir holds a group's log store of either kind.
func HasLogStore(dir string) bool {
	for _, name := range []string{boltFile, filepath.Join(walDir, metadb.FileName)} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

// storeKind decides which log store a group opens in dir: an existing one
// wins, so a directory written by an older version keeps its bolt store
// (there is no migration); a new directory gets want.
func storeKind(dir, want string) string {
	if _, err := os.Stat(filepath.Join(dir, walDir, metadb.FileName)); err == nil {
		return LogStoreWAL
	}
	if _, err := os.Stat(filepath.Join(dir, boltFile)); err == nil {
		return LogStoreBolt
	}
	return want
}

// openLogStore opens (or creates) the log store of cfg.Dir.
func openLogStore(cfg Config, log hclog.Logger) (logStore, string, error) {
	kind := storeKind(cfg.Dir, cfg.LogStore)
	switch kind {
	case LogStoreBolt:
		s, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, boltFile), NoSync: cfg.NoSync})
		if err != nil {
			return nil, kind, fmt.Errorf("open bolt log store: %w", err)
		}
		return s, kind, nil
	case LogStoreWAL:
		s, err := openWAL(filepath.Join(cfg.Dir, walDir), cfg.NoSync, log)
		if err != nil {
			return nil, kind, fmt.Errorf("open wal log store: %w", err)
		}
		return s, kind, nil
	}
	return nil, kind, fmt.Errorf("unknown log store %q", kind)
}

// walStore is a raft-wal WAL plus the metadata database it does not close
// itself (WAL.Close leaves it open, and its file lock with it).
type walStore struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

func openWAL(dir string, noSync bool, log hclog.Logger) (*walStore, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	var vfs waltypes.VFS = walfs.New()
	if noSync {
		vfs = noSyncVFS{vfs}
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir,
		wal.WithLogger(log),
		wal.WithSegmentSize(walSegmentSize),
		wal.WithMetaStore(meta),
		wal.WithSegmentFiler(segment.NewFiler(dir, vfs)),
	)
	if err != nil {
		return nil, errors.Join(err, meta.Close())
	}
	return &walStore{WAL: w, meta: meta}, nil
}

func (s *walStore) Close() error {
	return errors.Join(s.WAL.Close(), s.meta.Close())
}

// noSyncVFS is the WAL's file system without fsync of segment files, for
// tests only (Config.NoSync): a crash loses acknowledged writes.
type noSyncVFS struct{ waltypes.VFS }

func (v noSyncVFS) Create(dir, name string, size uint64) (waltypes.WritableFile, error) {
	f, err := v.VFS.Create(dir, name, size)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

func (v noSyncVFS) OpenWriter(dir, name string) (waltypes.WritableFile, error) {
	f, err := v.VFS.OpenWriter(dir, name)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

type noSyncFile struct{ waltypes.WritableFile }

func (noSyncFile) Sync() error { return nil }

package consensus

import (
	"errors"
	"path/filepath"
	"testing"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// TestClosableStable: after Close a late term save (a heartbeat handled
// on the transport's goroutine) is dropped instead of failing, which
// would make raft panic; reads say the store is closed.
func TestClosableStable(t *testing.T) {
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(t.TempDir(), "raft.db")})
	if err != nil {
		t.Fatal(err)
	}
	c := &closableStable{s: store}
	if err := c.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	if v, err := c.GetUint64([]byte("CurrentTerm")); err != nil || v != 3 {
		t.Fatalf("get = %d %v", v, err)
	}
	if err := c.close(store.Close); err != nil {
		t.Fatal(err)
	}
	if err := store.SetUint64([]byte("CurrentTerm"), 4); err == nil {
		t.Fatal("the closed bolt store took a write: the guard is not needed")
	}
	if err := c.SetUint64([]byte("CurrentTerm"), 4); err != nil {
		t.Fatalf("set after close: %v", err)
	}
	if err := c.Set([]byte("LastVoteCand"), []byte("x")); err != nil {
		t.Fatalf("set after close: %v", err)
	}
	if _, err := c.GetUint64([]byte("CurrentTerm")); !errors.Is(err, errStableClosed) {
		t.Fatalf("get after close: %v", err)
	}
}

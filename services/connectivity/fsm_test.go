package connectivity

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

// applyLog is an in-process Log that applies proposals directly to the FSM,
// so Service can be tested without Raft.
type applyLog struct {
	fsm   *fsm
	index uint64
}

func (l *applyLog) Propose(_ context.Context, cmd []byte) (any, error) {
	l.index++
	return l.fsm.Apply(l.index, cmd), nil
}
func (l *applyLog) ReadBarrier(context.Context) error { return nil }

func newTestService() *Service {
	s := New(DefaultConfig(), Deps{})
	s.deps.Log = &applyLog{fsm: s.fsm}
	return s
}

func conn(id string) map[string]any {
	return map[string]any{"id": id, "connectionType": "mqtt", "connectionStatus": "open", "uri": "tcp://127.0.0.1:1883"}
}

func TestPutRetrieveDelete(t *testing.T) {
	s := newTestService()
	ctx := context.Background()
	r, created, err := s.Put(ctx, conn("c1"), true, false)
	if err != nil || !created || r.Revision != 1 {
		t.Fatalf("create: %v %v %+v", err, created, r)
	}
	var de *ditto.Error
	if _, _, err := s.Put(ctx, conn("c1"), true, false); !errors.As(err, &de) || de.Status != 409 {
		t.Fatalf("second create: %v", err)
	}
	r, created, err = s.Put(ctx, conn("c1"), false, true)
	if err != nil || created || r.Revision != 2 {
		t.Fatalf("modify: %v %v %+v", err, created, r)
	}
	if _, _, err := s.Put(ctx, conn("c2"), false, true); !errors.As(err, &de) || de.Status != 404 {
		t.Fatalf("modify missing: %v", err)
	}
	if got, err := s.Retrieve(ctx, "c1", false); err != nil || got.Revision != 2 {
		t.Fatalf("retrieve: %v %+v", err, got)
	}
	if err := s.Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Retrieve(ctx, "c1", true); !errors.As(err, &de) || de.Status != 404 {
		t.Fatalf("retrieve deleted: %v", err)
	}
}

func TestValidation(t *testing.T) {
	s := newTestService()
	bad := []map[string]any{
		{"connectionType": "mqtt", "connectionStatus": "open", "uri": "x"},
		{"id": "bad id!", "connectionType": "mqtt", "connectionStatus": "open", "uri": "x"},
		{"id": "c", "connectionType": "smtp", "connectionStatus": "open", "uri": "x"},
		{"id": "c", "connectionType": "mqtt", "connectionStatus": "half", "uri": "x"},
	}
	for _, def := range bad {
		var de *ditto.Error
		if _, _, err := s.Put(context.Background(), def, true, false); !errors.As(err, &de) || de.Status != 400 {
			t.Errorf("%v: got %v, want a 400", def, err)
		}
	}
}

func TestSnapshotRestore(t *testing.T) {
	s := newTestService()
	for _, id := range []string{"a", "b", "c"} {
		if _, _, err := s.Put(context.Background(), conn(id), true, false); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := s.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.Persist(&buf); err != nil {
		t.Fatal(err)
	}
	f2 := newFSM()
	if err := f2.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if got := len(f2.list()); got != 3 {
		t.Fatalf("restored %d connections", got)
	}
	if r, _ := f2.lookup("b"); string(r.JSON) != string(ditto.EncodeJSON(conn("b"))) {
		t.Errorf("restored %s", r.JSON)
	}
}

func TestUnknownCommand(t *testing.T) {
	f := newFSM()
	if res := f.Apply(1, []byte{cmdIgnorable | 0x33, cmdVersion}); res != nil {
		t.Errorf("ignorable unknown command returned %v", res)
	}
	defer func() {
		if recover() == nil {
			t.Error("unknown command did not panic")
		}
	}()
	f.Apply(2, []byte{0x33, cmdVersion})
}

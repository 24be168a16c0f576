package connectivity

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

func newDeviceService() *Service {
	c := DefaultConfig()
	c.DeviceHashCost = 4
	s := New(c, Deps{})
	s.deps.Log = &applyLog{fsm: s.fsm}
	return s
}

func TestDevices(t *testing.T) {
	s := newDeviceService()
	ctx := context.Background()
	d, created, err := s.PutDevice(ctx, "dev1", "pw-1", nil)
	if err != nil || !created || d.Revision != 1 || len(d.Subjects) != 1 || d.Subjects[0] != "mqtt:dev1" {
		t.Fatalf("create: %v %v %+v", err, created, d)
	}
	if strings.Contains(d.Hash, "pw-1") || !strings.HasPrefix(d.Hash, "$2") {
		t.Fatalf("stored %q, want a bcrypt hash", d.Hash)
	}
	if subs, ok := s.AuthenticateDevice("dev1", "pw-1"); !ok || subs[0] != "mqtt:dev1" {
		t.Errorf("right password: %v %v", subs, ok)
	}
	if _, ok := s.AuthenticateDevice("dev1", "pw-1"); !ok {
		t.Error("cached right password refused")
	}
	for _, c := range []struct{ user, pw string }{{"dev1", "pw-2"}, {"dev1", ""}, {"nobody", "pw-1"}} {
		if _, ok := s.AuthenticateDevice(c.user, c.pw); ok {
			t.Errorf("%s/%s accepted", c.user, c.pw)
		}
	}
	// Replacing the device changes the password; the cache must not keep
	// the old one valid.
	d, created, err = s.PutDevice(ctx, "dev1", "pw-2", []string{"nginx:ditto", "mqtt:dev1"})
	if err != nil || created || d.Revision != 2 {
		t.Fatalf("replace: %v %v %+v", err, created, d)
	}
	if _, ok := s.AuthenticateDevice("dev1", "pw-1"); ok {
		t.Error("old password still accepted")
	}
	if subs, ok := s.AuthenticateDevice("dev1", "pw-2"); !ok || len(subs) != 2 {
		t.Errorf("new password: %v %v", subs, ok)
	}
	var de *ditto.Error
	for name, c := range map[string]struct {
		user, pw string
		subs     []string
	}{
		"bad username": {"a b", "pw", nil},
		"no password":  {"dev2", "", nil},
		"long":         {"dev2", strings.Repeat("x", 73), nil},
		"bad subject":  {"dev2", "pw", []string{"nocolon"}},
	} {
		if _, _, err := s.PutDevice(ctx, c.user, c.pw, c.subs); !errors.As(err, &de) || de.Status != 400 {
			t.Errorf("%s: %v, want 400", name, err)
		}
	}
	if err := s.DeleteDevice(ctx, "dev1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDevice(ctx, "dev1"); !errors.As(err, &de) || de.Status != 404 {
		t.Errorf("second delete: %v", err)
	}
	if _, ok := s.AuthenticateDevice("dev1", "pw-2"); ok {
		t.Error("deleted device accepted")
	}
}

// TestDevicesSnapshot: devices and connections survive snapshot/restore
// side by side.
func TestDevicesSnapshot(t *testing.T) {
	s := newDeviceService()
	ctx := context.Background()
	if _, _, err := s.Put(ctx, conn("c1"), true, false); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"a", "b"} {
		if _, _, err := s.PutDevice(ctx, u, "pw-"+u, nil); err != nil {
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
	s2 := newDeviceService()
	if err := s2.fsm.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if got := len(s2.fsm.list()); got != 1 {
		t.Errorf("%d connections restored", got)
	}
	if got := len(s2.fsm.deviceList()); got != 2 {
		t.Errorf("%d devices restored", got)
	}
	if _, ok := s2.AuthenticateDevice("b", "pw-b"); !ok {
		t.Error("restored device refused")
	}
}

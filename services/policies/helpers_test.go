package policies

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dittonode/dittonode/consensus"
	"github.com/dittonode/dittonode/ditto"
)

// fakeLog is an in-process Log that applies proposals directly to an FSM.
// The function fields, when set, replace the default behaviour.
type fakeLog struct {
	mu       sync.Mutex
	fsm      consensus.FSM
	index    uint64
	barriers int
	proposed int

	ProposeErr func(cmd []byte) error
	BarrierErr func() error
	Leader     func() bool
}

func (l *fakeLog) Propose(ctx context.Context, cmd []byte) (any, error) {
	if l.ProposeErr != nil {
		if err := l.ProposeErr(cmd); err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.index++
	l.proposed++
	return l.fsm.Apply(l.index, cmd), nil
}

func (l *fakeLog) ReadBarrier(ctx context.Context) error {
	l.mu.Lock()
	l.barriers++
	l.mu.Unlock()
	if l.BarrierErr != nil {
		return l.BarrierErr()
	}
	return nil
}

func (l *fakeLog) IsLeader() bool { return l.Leader == nil || l.Leader() }

func (l *fakeLog) counts() (proposed, barriers int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.proposed, l.barriers
}

// fakeClock is an injected clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type harness struct {
	s     *Service
	log   *fakeLog
	clock *fakeClock
	bus   *ditto.Bus
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	h := &harness{log: &fakeLog{}, clock: &fakeClock{now: testNow}, bus: ditto.NewBus()}
	h.s = New(cfg, Deps{Log: h.log, Bus: h.bus, Clock: h.clock.Now})
	h.log.fsm = h.s.FSM()
	t.Cleanup(func() {
		if err := h.s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return h
}

const testPolicyID = "ns:pol"

// ownerPolicy grants subA everything and subB READ on thing:/.
const ownerPolicy = `{"entries":{
	"owner":{"subjects":{"nginx:a":{"type":"t"}},"resources":{
		"thing:/":{"grant":["READ","WRITE"],"revoke":[]},
		"policy:/":{"grant":["READ","WRITE"],"revoke":[]},
		"message:/":{"grant":["READ","WRITE"],"revoke":[]}}},
	"reader":{"subjects":{"nginx:b":{"type":"t"}},"resources":{
		"thing:/":{"grant":["READ"],"revoke":[]},
		"policy:/entries/reader":{"grant":["READ"],"revoke":[]}}}}}`

type req struct {
	action   ditto.Action
	id       string
	path     ditto.Pointer
	value    string
	fields   string
	subjects []string
	headers  ditto.Headers
}

func (h *harness) do(t testing.TB, r req) (ditto.Result, error) {
	t.Helper()
	cmd := ditto.Command{Action: r.action, Entity: r.id, Path: r.path, Fields: r.fields, Headers: r.headers, Auth: ditto.Auth{Subjects: r.subjects}}
	if cmd.Entity == "" {
		cmd.Entity = testPolicyID
	}
	if cmd.Auth.Subjects == nil {
		cmd.Auth.Subjects = a
	}
	if r.value != "" {
		cmd.Value = mustJSON(t, r.value)
	}
	return h.s.Handle(context.Background(), cmd)
}

func (h *harness) mustDo(t testing.TB, r req) ditto.Result {
	t.Helper()
	res, err := h.do(t, r)
	if err != nil {
		t.Fatalf("%s %s %s: %v", r.action, r.id, r.path, err)
	}
	return res
}

func (h *harness) create(t testing.TB, id, policy string) ditto.Result {
	t.Helper()
	return h.mustDo(t, req{action: ditto.ActionModify, id: id, value: policy})
}

// errCode returns the Ditto error code and status of err ("" for nil).
func errCode(err error) (string, int) {
	var de *ditto.Error
	if errors.As(err, &de) {
		return de.Code, de.Status
	}
	if err != nil {
		return "other: " + err.Error(), 0
	}
	return "", 0
}

func ptr(segs ...string) ditto.Pointer { return ditto.Pointer(segs) }

// waitFor polls fn until it returns nil or d passes.
func waitFor(t testing.TB, d time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", d, err)
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
}

func jsonString(v any) string { return strings.TrimSpace(string(ditto.EncodeJSON(v))) }

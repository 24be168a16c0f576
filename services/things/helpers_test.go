package things

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

// localLog is the in-process Log: Propose applies the entry to the FSM
// directly, as a single-node group would.
type localLog struct {
	mu    sync.Mutex
	fsm   consensus.FSM
	index uint64
	// fail, when set, fails Propose without applying.
	fail error
	// before, when set, returns entries applied ahead of the proposed one
	// (a competing proposal that won the race).
	before func() [][]byte
}

func (l *localLog) Propose(_ context.Context, cmd []byte) (any, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return nil, l.fail
	}
	if l.before != nil {
		for _, c := range l.before() {
			l.index++
			l.fsm.Apply(l.index, c)
		}
	}
	l.index++
	return l.fsm.Apply(l.index, cmd), nil
}

func (l *localLog) ReadBarrier(context.Context) error { return nil }

// fakePolicies is a hand-written Policies with function fields; the
// defaults keep policies in a map and compile them with testEnforcer.
type fakePolicies struct {
	mu          sync.Mutex
	policies    map[string]map[string]any
	revisions   map[string]int64
	compensated []string
	created     []string
	compiled    map[string]*testEnforcer

	handle func(ctx context.Context, cmd ditto.Command) (ditto.Result, error)
}

func newFakePolicies() *fakePolicies {
	return &fakePolicies{policies: map[string]map[string]any{}, revisions: map[string]int64{}}
}

func (p *fakePolicies) put(id string, policy map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.policies[id] = policy
	p.revisions[id]++
	delete(p.compiled, id)
}

func (p *fakePolicies) Handle(ctx context.Context, cmd ditto.Command) (ditto.Result, error) {
	if p.handle != nil {
		return p.handle(ctx, cmd)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch cmd.Action {
	case ditto.ActionCreate:
		if _, ok := p.policies[cmd.Entity]; ok {
			return ditto.Result{}, ditto.ErrPolicyConflict.New("The Policy with ID '%s' already exists", cmd.Entity)
		}
		m, ok := cmd.Value.(map[string]any)
		if !ok || m["entries"] == nil {
			return ditto.Result{}, ditto.ErrPolicyInvalid.New("no entries")
		}
		p.policies[cmd.Entity] = m
		p.revisions[cmd.Entity] = 1
		p.created = append(p.created, cmd.Entity)
		return ditto.Result{Status: 201, Value: m, Revision: 1, Entity: cmd.Entity}, nil
	case ditto.ActionRetrieve:
		m, ok := p.policies[cmd.Entity]
		if !ok || !compile(m).Partial(ditto.ResourcePolicy, nil, cmd.Auth.Subjects, ditto.PermRead) {
			return ditto.Result{}, ditto.ErrPolicyNotFound.New("The Policy with ID '%s' could not be found", cmd.Entity)
		}
		return ditto.Result{Status: 200, Raw: ditto.EncodeJSON(m), Revision: p.revisions[cmd.Entity]}, nil
	}
	return ditto.Result{}, errors.New("fake policies: unsupported")
}

func (p *fakePolicies) EnforcerFor(policyID, _ string) (ditto.Enforcer, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.policies[policyID]
	if !ok {
		return nil, false
	}
	if e, ok := p.compiled[policyID]; ok {
		return e, true
	}
	if p.compiled == nil {
		p.compiled = map[string]*testEnforcer{}
	}
	p.compiled[policyID] = compile(m)
	return p.compiled[policyID], true
}

func (p *fakePolicies) Compensate(_ context.Context, policyID string, revision int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.revisions[policyID] == revision {
		delete(p.policies, policyID)
		delete(p.revisions, policyID)
		delete(p.compiled, policyID)
	}
	p.compensated = append(p.compensated, policyID)
	return nil
}

// testEnforcer is a small policy evaluator for tests: per subject, grants
// and revokes on "type:/path" resources; the deepest statement wins and
// revoke wins ties.
type testEnforcer struct {
	grants  map[string]map[string]map[string]bool // subject -> resource -> perm
	revokes map[string]map[string]map[string]bool
}

func compile(policy map[string]any) *testEnforcer {
	e := &testEnforcer{grants: map[string]map[string]map[string]bool{}, revokes: map[string]map[string]map[string]bool{}}
	entries, _ := policy["entries"].(map[string]any)
	for _, ev := range entries {
		entry, _ := ev.(map[string]any)
		subjects, _ := entry["subjects"].(map[string]any)
		resources, _ := entry["resources"].(map[string]any)
		for subj := range subjects {
			for res, rv := range resources {
				r, _ := rv.(map[string]any)
				key := normRes(res)
				for _, list := range []struct {
					name string
					into map[string]map[string]map[string]bool
				}{{"grant", e.grants}, {"revoke", e.revokes}} {
					perms, _ := r[list.name].([]any)
					for _, pv := range perms {
						if list.into[subj] == nil {
							list.into[subj] = map[string]map[string]bool{}
						}
						if list.into[subj][key] == nil {
							list.into[subj][key] = map[string]bool{}
						}
						list.into[subj][key][pv.(string)] = true
					}
				}
			}
		}
	}
	return e
}

func normRes(res string) string {
	typ, path, _ := strings.Cut(res, ":")
	p, _ := ditto.ParsePointer(path)
	return typ + ":" + p.String()
}

func resKey(typ string, p ditto.Pointer) string { return typ + ":" + p.String() }

// allowed evaluates one subject set at one resource.
func (e *testEnforcer) allowed(typ string, p ditto.Pointer, subjects []string, perm string) bool {
	ok := false
	for i := 0; i <= len(p); i++ {
		key := resKey(typ, p[:i])
		granted, revoked := false, false
		for _, s := range subjects {
			granted = granted || e.grants[s][key][perm]
			revoked = revoked || e.revokes[s][key][perm]
		}
		switch {
		case revoked:
			ok = false
		case granted:
			ok = true
		}
	}
	return ok
}

func (e *testEnforcer) below(typ string, p ditto.Pointer, subjects []string, m map[string]map[string]map[string]bool, perm string) []string {
	prefix := resKey(typ, p)
	var out []string
	for _, s := range subjects {
		for key, perms := range m[s] {
			if perms[perm] && key != prefix && (strings.HasPrefix(key, strings.TrimSuffix(prefix, "/")+"/")) {
				out = append(out, key)
			}
		}
	}
	return out
}

func (e *testEnforcer) Unrestricted(typ string, p ditto.Pointer, subjects []string, perms ...string) bool {
	for _, perm := range perms {
		if !e.allowed(typ, p, subjects, perm) || len(e.below(typ, p, subjects, e.revokes, perm)) > 0 {
			return false
		}
	}
	return true
}

func (e *testEnforcer) Partial(typ string, p ditto.Pointer, subjects []string, perms ...string) bool {
	for _, perm := range perms {
		if e.allowed(typ, p, subjects, perm) {
			continue
		}
		found := false
		for _, key := range e.below(typ, p, subjects, e.grants, perm) {
			_, path, _ := strings.Cut(key, ":")
			if e.allowed(typ, ditto.MustPointer(path), subjects, perm) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func (e *testEnforcer) View(typ string, p ditto.Pointer, v any, subjects []string) (any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return v, e.allowed(typ, p, subjects, ditto.PermRead)
	}
	out := map[string]any{}
	for k, c := range m {
		if cv, ok := e.View(typ, p.Append(k), c, subjects); ok {
			out[k] = cv
		}
	}
	if len(out) > 0 || e.allowed(typ, p, subjects, ditto.PermRead) {
		return out, true
	}
	return nil, false
}

// ownerPolicy grants subject READ and WRITE on everything.
func ownerPolicy(pid, subject string) map[string]any { return defaultPolicy(pid, subject) }

// testEnv is a service on a local log with fake policies and a bus.
type testEnv struct {
	svc      *Service
	log      *localLog
	policies *fakePolicies
	bus      *ditto.Bus
	now      time.Time
	mu       sync.Mutex
	events   []ditto.Signal
}

const owner = "nginx:owner"

func newEnv(t testing.TB, cfg Config) *testEnv {
	t.Helper()
	env := &testEnv{policies: newFakePolicies(), bus: ditto.NewBus(), now: time.Date(2026, 11, 27, 6, 0, 0, 123e6, time.UTC)}
	env.log = &localLog{}
	env.svc = New(cfg, Deps{Log: env.log, Policies: env.policies, Bus: env.bus, Clock: env.clock})
	env.log.fsm = env.svc.FSM()
	env.bus.Observe(func(s ditto.Signal) {
		env.mu.Lock()
		env.events = append(env.events, s)
		env.mu.Unlock()
	})
	return env
}

func (env *testEnv) clock() time.Time {
	env.mu.Lock()
	defer env.mu.Unlock()
	env.now = env.now.Add(time.Second)
	return env.now
}

func (env *testEnv) takeEvents() []ditto.Signal {
	env.mu.Lock()
	defer env.mu.Unlock()
	ev := env.events
	env.events = nil
	return ev
}

// do runs a command as subject.
func (env *testEnv) do(action ditto.Action, id, path string, value any, subject string, headers ...string) (ditto.Result, error) {
	h := ditto.Headers{}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	cmd := ditto.Command{Action: action, Entity: id, Path: ditto.MustPointer(path), Value: value, Headers: h, Auth: ditto.Auth{Subjects: []string{subject}}}
	if f := h.Get("fields"); f != "" {
		cmd.Fields = f
		delete(h, "fields")
	}
	return env.svc.Handle(context.Background(), cmd)
}

func mustJSON(t testing.TB, s string) any {
	t.Helper()
	v, err := ditto.DecodeJSON([]byte(s))
	if err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return v
}

func errCode(err error) string {
	var de *ditto.Error
	if errors.As(err, &de) {
		return de.Code
	}
	if err != nil {
		return "other:" + err.Error()
	}
	return ""
}

// resultJSON returns the result value as canonical JSON.
func resultJSON(res ditto.Result) string {
	if res.Raw != nil {
		return string(res.Raw)
	}
	if res.Value == nil {
		return ""
	}
	return string(ditto.EncodeJSON(res.Value))
}

func canon(t testing.TB, s string) string {
	t.Helper()
	return string(ditto.EncodeJSON(mustJSON(t, s)))
}

// mustOK fails the test on err.
func mustOK(t testing.TB) func(ditto.Result, error) ditto.Result {
	return func(res ditto.Result, err error) ditto.Result {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return res
	}
}

// commands numbers cmds from first on, as consecutive log entries.
func commands(first uint64, cmds [][]byte) []consensus.Command {
	out := make([]consensus.Command, len(cmds))
	for i, c := range cmds {
		out[i] = consensus.Command{Index: first + uint64(i), Data: c}
	}
	return out
}

package gateway

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"

	"github.com/dittonode/dittonode/ditto"
)

// eventFanout delivers twin events and policy announcements from one bus
// subscription to every WebSocket session that subscribed to them.
//
// The state machines publish on the bus without ever waiting for it; the
// fan-out goroutine takes each signal once, parses its topic and path
// once, looks the enforcer up once, decides READ once per distinct set of
// subjects and encodes each distinct view once: every unrestricted reader
// without a filter or extra fields gets the same bytes, every partial
// reader with the same subjects the same view. Sessions with an RQL filter
// or extra fields are served one by one (their view depends on the
// session). The frames go into each session's bounded event queue without
// waiting; a session whose queue is full is cut off (close 1008) and never
// holds up the others.
//
// Goroutines: one, started with the first subscribed session and owned by
// the Server (stopped in Close).
type eventFanout struct {
	srv   *Server
	queue int // bus queue of the fan-out

	mu       sync.Mutex
	sessions map[*wsSession]struct{}
	started  bool
	stopped  bool
	sub      *ditto.Subscription
	stop     chan struct{}
	wg       sync.WaitGroup
	// list is the copy-on-write snapshot of sessions the goroutine reads.
	list atomic.Pointer[[]*wsSession]

	cut atomic.Int64 // sessions cut off for a full event queue
}

// fanoutQueue is the bus queue of the fan-out goroutine: a burst of this
// many signals may wait for it. If even that overflows, every subscribed
// session is cut off (they would miss events) and the fan-out subscribes
// again.
const fanoutQueue = 4096

func newEventFanout(s *Server) *eventFanout {
	return &eventFanout{srv: s, queue: max(fanoutQueue, s.cfg.Streams.EventQueue), sessions: map[*wsSession]struct{}{}, stop: make(chan struct{})}
}

// add registers ss for twin events and announcements, starting the
// fan-out on first use. It reports false when the fan-out is stopped.
func (f *eventFanout) add(ss *wsSession) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped || f.srv.deps.Bus == nil {
		return false
	}
	f.sessions[ss] = struct{}{}
	f.publishLocked()
	if !f.started {
		f.started = true
		f.sub = f.srv.deps.Bus.Subscribe(f.queue)
		f.wg.Add(1)
		go f.run()
	}
	return true
}

// remove unregisters ss.
func (f *eventFanout) remove(ss *wsSession) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sessions[ss]; ok {
		delete(f.sessions, ss)
		f.publishLocked()
	}
}

func (f *eventFanout) publishLocked() {
	list := make([]*wsSession, 0, len(f.sessions))
	for ss := range f.sessions {
		list = append(list, ss)
	}
	f.list.Store(&list)
}

// close stops the fan-out goroutine and waits for it.
func (f *eventFanout) close() {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return
	}
	f.stopped = true
	close(f.stop)
	f.mu.Unlock()
	f.wg.Wait()
	f.mu.Lock()
	if f.sub != nil {
		f.sub.Close()
	}
	f.mu.Unlock()
}

func (f *eventFanout) run() {
	defer f.wg.Done()
	f.mu.Lock()
	sub := f.sub
	f.mu.Unlock()
	for {
		select {
		case <-f.stop:
			return
		case <-sub.Done():
			if !errors.Is(sub.Err(), ditto.ErrSlowSubscriber) {
				return
			}
			// The fan-out itself fell behind: every session would miss
			// events, so each is told and cut off.
			f.srv.log.Warn("gateway: event fan-out fell behind the bus; cutting off all event sessions")
			for _, ss := range *f.list.Load() {
				f.cutOff(ss, "event queue overflowed: node too slow")
			}
			f.mu.Lock()
			if f.stopped {
				f.mu.Unlock()
				return
			}
			f.sub = f.srv.deps.Bus.Subscribe(f.queue)
			sub = f.sub
			f.mu.Unlock()
		case sig := <-sub.C():
			f.dispatch(sig)
		}
	}
}

func (f *eventFanout) cutOff(ss *wsSession, reason string) {
	f.cut.Add(1)
	ss.fail(websocket.StatusPolicyViolation, reason)
}

// enqueue hands a frame to a session's event queue without waiting.
func (f *eventFanout) enqueue(ss *wsSession, frame []byte) {
	select {
	case ss.events <- frame:
	default:
		if ss.ctx.Err() == nil {
			f.cutOff(ss, "event queue overflowed: consumer too slow")
		}
	}
}

// access is the READ decision of one set of subjects on a twin event.
type access struct {
	unrestricted, partial bool
	// view is the encoded event for a partial reader (nil until needed;
	// empty when the view is empty and nothing is delivered).
	view    []byte
	viewSet bool
}

// dispatch delivers one bus signal to the subscribed sessions.
func (f *eventFanout) dispatch(sig ditto.Signal) {
	list := *f.list.Load()
	if len(list) == 0 {
		return
	}
	t, err := ditto.ParseTopic(sig.Envelope.Topic)
	if err != nil {
		return
	}
	switch {
	case t.Group == ditto.GroupThings && t.Channel == ditto.ChannelTwin && t.Criterion == ditto.CriterionEvents:
		f.twinEvent(list, sig, t)
	case t.Group == ditto.GroupPolicies && t.Criterion == ditto.CriterionAnnouncements:
		var frame []byte
		for _, ss := range list {
			v := ss.streams.Load()
			spec := v.specs[kindAnnouncements]
			if spec == nil || !spec.inNamespaces(t.Namespace) || !announcementFor(sig.Envelope, v.auth) {
				continue
			}
			if frame == nil {
				env := sig.Envelope
				env.Headers = outboundHeaders(env.Headers)
				frame = ditto.EncodeEnvelope(env)
			}
			f.enqueue(ss, frame)
		}
	}
	// Policy events are never pushed to sessions (ditto-spec §4).
}

func (f *eventFanout) twinEvent(list []*wsSession, sig ditto.Signal, t ditto.Topic) {
	origin := sig.Envelope.Headers[HeaderOrigin]
	var (
		enf      ditto.Enforcer
		path     ditto.Pointer
		resolved bool
		usable   bool
		full     []byte // the event as every unrestricted reader gets it
		byAuth   map[string]*access
	)
	resolve := func() bool {
		if !resolved {
			resolved = true
			if f.srv.deps.Enforcers == nil {
				return false
			}
			var found bool
			if enf, found = f.srv.deps.Enforcers.EnforcerFor(sig.PolicyID, t.Namespace); !found {
				return false
			}
			p, err := ditto.ParsePointer(sig.Envelope.Path)
			if err != nil {
				return false
			}
			path, usable = p, true
		}
		return usable
	}
	for _, ss := range list {
		v := ss.streams.Load()
		spec := v.specs[kindEvents]
		if spec == nil {
			continue
		}
		if origin == ss.id {
			// A session never receives the events of its own commands.
			ss.weakAck(sig, t)
			continue
		}
		if !spec.inNamespaces(t.Namespace) || !resolve() {
			ss.weakAck(sig, t)
			continue
		}
		if spec.filter != nil || !spec.extra.IsEmpty() {
			// The view depends on this session: the general path.
			ev, ok := f.srv.viewTwinEvent(sig, t, v.auth, spec, false)
			if !ok {
				ss.weakAck(sig, t)
				continue
			}
			f.enqueue(ss, ditto.EncodeEnvelope(eventEnvelope(sig, ev)))
			continue
		}
		if byAuth == nil {
			byAuth = make(map[string]*access, 4)
		}
		a := byAuth[v.authKey]
		if a == nil {
			a = &access{unrestricted: enf.Unrestricted(ditto.ResourceThing, path, v.auth.Subjects, ditto.PermRead)}
			if !a.unrestricted {
				a.partial = enf.Partial(ditto.ResourceThing, path, v.auth.Subjects, ditto.PermRead)
			}
			byAuth[v.authKey] = a
		}
		switch {
		case a.unrestricted:
			if full == nil {
				full = ditto.EncodeEnvelope(eventEnvelope(sig, twinEvent{}))
			}
			f.enqueue(ss, full)
		case a.partial:
			if !a.viewSet {
				a.viewSet = true
				if ev, ok := f.srv.viewTwinEvent(sig, t, v.auth, spec, false); ok {
					a.view = ditto.EncodeEnvelope(eventEnvelope(sig, ev))
				}
			}
			if a.view == nil {
				ss.weakAck(sig, t)
				continue
			}
			f.enqueue(ss, a.view)
		default:
			ss.weakAck(sig, t)
		}
	}
}

// streamView is what the fan-out reads of a session: its subjects and the
// specs of its event and announcement streams. Sessions replace it
// whenever one of them changes.
type streamView struct {
	auth    ditto.Auth
	authKey string // the subjects, joined: equal keys get equal views
	specs   [numKinds]*streamSpec
}

func authKey(a ditto.Auth) string { return strings.Join(a.Subjects, "\x00") }

// SlowSessions counts the WebSocket sessions cut off because their event
// queue overflowed (or the fan-out itself fell behind the bus).
func (s *Server) SlowSessions() int64 { return s.fanout.cut.Load() }

package live

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Kinds of signals a subscriber receives.
const (
	KindMessages     = "messages"
	KindLiveCommands = "live-commands"
	KindLiveEvents   = "live-events"
	// KindAcks marks a subscriber that acknowledges twin events: the router
	// issues weak acks for its declared labels when it may not READ the event.
	KindAcks = "acks"
)

// Built-in acknowledgement labels.
const (
	LabelTwinPersisted   = "twin-persisted"
	LabelLiveResponse    = "live-response"
	LabelSearchPersisted = "search-persisted"
)

// Internal headers the router reads or writes.
const (
	// HeaderOrigin is the ID of the subscriber (session) a signal or a
	// response comes from.
	HeaderOrigin = "ditto-origin"
	// HeaderWeakAck marks an acknowledgement issued for a subscriber that
	// filtered the signal out.
	HeaderWeakAck = "ditto-weak-ack"
)

// Enforcers gives the compiled enforcer of an applied policy
// (services/policies.Service implements it).
type Enforcers interface {
	EnforcerFor(policyID, entityNamespace string) (ditto.Enforcer, bool)
}

// Things gives the policy of an applied thing (node adapts
// services/things.Service.Lookup).
type Things interface {
	ThingPolicy(thingID string) (policyID string, ok bool)
}

// Config configures the router.
type Config struct {
	// DefaultTimeout bounds a wait for responses and acknowledgements when
	// the caller's context has no deadline.
	DefaultTimeout time.Duration `json:"defaultTimeout" yaml:"defaultTimeout"`
}

// DefaultConfig returns Ditto's default: 60 s.
func DefaultConfig() Config { return Config{DefaultTimeout: ditto.MaxTimeout} }

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.DefaultTimeout < 0 {
		return errors.New("live: defaultTimeout must not be negative")
	}
	return nil
}

// Deps are the router's collaborators.
type Deps struct {
	Enforcers Enforcers
	Things    Things
	Logger    *slog.Logger
	// NewID generates correlation IDs for signals sent without one; defaults
	// to 16 random bytes in hex.
	NewID func() string
	// Peers carries signals to the other members' routers; nil on a node
	// alone.
	Peers Peers
}

// kindSet is a set of subscription kinds.
type kindSet uint8

const (
	kMessages kindSet = 1 << iota
	kCommands
	kEvents
	kAcks
)

var kindNames = map[string]kindSet{
	KindMessages: kMessages, KindLiveCommands: kCommands, KindLiveEvents: kEvents, KindAcks: kAcks,
}

// subscription is one Subscribe call.
type subscription struct {
	id      string
	auth    ditto.Auth
	kinds   kindSet
	deliver func(ditto.Envelope)
}

// owner holds a declared acknowledgement label for one subscriber ID.
type owner struct {
	id   string
	refs int
}

// Router routes live signals between senders and the subscribers connected
// now. It is safe for concurrent use.
type Router struct {
	cfg    Config
	enf    Enforcers
	things Things
	log    *slog.Logger
	newID  func() string
	peers  Peers

	mu     sync.RWMutex
	subs   map[*subscription]struct{}
	labels map[string]*owner
	live   map[string]*pending // by correlation-id
	twin   map[string]*pending // by correlation-id
	// Signals and twin commands of other nodes whose answers go back there,
	// by correlation-id.
	remote     map[string]*remoteEntry
	remoteTwin map[string]*remoteEntry
	swept      time.Time // last sweep of expired remote entries
}

// New returns a router; it only allocates. Zero Config fields take their
// defaults.
func New(cfg Config, deps Deps) *Router {
	if cfg.DefaultTimeout == 0 {
		cfg.DefaultTimeout = DefaultConfig().DefaultTimeout
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.NewID == nil {
		deps.NewID = randomID
	}
	return &Router{
		cfg: cfg, enf: deps.Enforcers, things: deps.Things, log: deps.Logger, newID: deps.NewID, peers: deps.Peers,
		subs:       map[*subscription]struct{}{},
		labels:     map[string]*owner{},
		live:       map[string]*pending{},
		twin:       map[string]*pending{},
		remote:     map[string]*remoteEntry{},
		remoteTwin: map[string]*remoteEntry{},
	}
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// Subscribe registers a subscriber: deliver gets every signal of the given
// kinds the subscriber may READ until cancel is called. declaredAcks are
// the custom labels the subscriber issues; a label declared by another
// subscriber ID is 409 acknowledgement:label.not.unique. kinds may be empty
// (only declaring labels). deliver must not block.
func (r *Router) Subscribe(id string, auth ditto.Auth, kinds []string, declaredAcks []string, deliver func(ditto.Envelope)) (func(), error) {
	if id == "" || deliver == nil {
		return nil, errors.New("live: subscribe needs an ID and a deliver function")
	}
	var ks kindSet
	for _, k := range kinds {
		bit, ok := kindNames[k]
		if !ok {
			return nil, ditto.ErrHeaderInvalid.New("The subscription kind '%s' is unknown.", k)
		}
		ks |= bit
	}
	labels := make([]string, 0, len(declaredAcks))
	for _, l := range declaredAcks {
		if !ditto.ValidAckLabel(l) || builtinLabel(l) {
			return nil, ditto.ErrAckLabelInvalid.New("The declared acknowledgement label '%s' is invalid.", l)
		}
		if !slices.Contains(labels, l) {
			labels = append(labels, l)
		}
	}
	sub := &subscription{id: id, auth: auth, kinds: ks, deliver: deliver}
	r.mu.Lock()
	for _, l := range labels {
		if o := r.labels[l]; o != nil && o.id != id {
			r.mu.Unlock()
			return nil, ditto.ErrAckLabelNotUnique.New("The acknowledgement label '%s' is already declared by another subscriber.", l)
		}
	}
	for _, l := range labels {
		o := r.labels[l]
		if o == nil {
			o = &owner{id: id}
			r.labels[l] = o
		}
		o.refs++
	}
	r.subs[sub] = struct{}{}
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			delete(r.subs, sub)
			for _, l := range labels {
				if o := r.labels[l]; o != nil && o.id == id {
					if o.refs--; o.refs == 0 {
						delete(r.labels, l)
					}
				}
			}
		})
	}, nil
}

func builtinLabel(l string) bool {
	return l == LabelTwinPersisted || l == LabelLiveResponse || l == LabelSearchPersisted
}

// target is one delivery of a signal.
type target struct {
	sub *subscription
	env ditto.Envelope
}

// Send routes a live signal (message, live command or live event) sent by
// auth. It authorizes the signal, delivers it to every subscriber of its
// kind that may READ it and waits for the requested acknowledgements.
//
// It returns ok=false when nothing was to be waited for (response-required
// false or timeout 0 without custom acks: the caller answers 202). When only
// live-response was requested it returns the responder's response as is;
// otherwise the aggregated acknowledgements (topic <ns>/<name>/things/live/
// acks, value {label:{status,payload,headers}}, status 200 if all are 2xx,
// else 424; a single ack gives its own status). A missing live-response
// alone is the error 408 command.timeout, as in Ditto.
func (r *Router) Send(ctx context.Context, env ditto.Envelope, auth ditto.Auth) (ditto.Envelope, bool, error) {
	sig, err := r.classify(env)
	if err != nil {
		return ditto.Envelope{}, false, err
	}
	if err := sig.authorizeSend(env, auth); err != nil {
		return ditto.Envelope{}, false, err
	}
	req, err := parseAckRequest(env.Headers, sig.kind != kEvents)
	if err != nil {
		return ditto.Envelope{}, false, err
	}
	cid := env.Headers.Get(ditto.HeaderCorrelationID)
	if cid == "" {
		cid = r.newID()
	}
	out := env
	out.Headers = forwardHeaders(env.Headers, cid, auth, req.custom)

	var p *pending
	if labels := req.labels(); len(labels) > 0 {
		p = newPending(cid, sig, auth, labels)
		r.mu.Lock()
		if r.live[cid] != nil {
			r.mu.Unlock()
			return ditto.Envelope{}, false, ditto.ErrHeaderInvalid.New("The correlation-id '%s' is already used by a pending live signal.", cid)
		}
		r.live[cid] = p
		r.mu.Unlock()
	}
	timeout := r.timeoutOf(ctx)
	sender := env.Headers.Get(HeaderOrigin)
	if r.peers != nil {
		r.peers.Offer(Offer{Envelope: out, Sender: sender, Custom: req.custom, Await: p != nil, Timeout: timeout})
	}
	targets, weak := r.targets(sig, out, sender, req.custom)
	if p != nil && len(weak) > 0 {
		r.mu.Lock()
		for _, l := range weak {
			p.ack(l, weakAck(sig.topic, l, cid))
		}
		r.mu.Unlock()
	}
	for _, t := range targets {
		t.sub.deliver(t.env)
	}
	if p == nil {
		return ditto.Envelope{}, false, nil
	}
	acks := r.wait(ctx, timeout, r.live, p)
	if len(acks) == 1 && p.labels[0] == LabelLiveResponse {
		if !acks[0].received {
			// Ditto's answer to a response that never came.
			return ditto.Envelope{}, false, ditto.ErrCommandTimeout.New("The Command reached the specified timeout of %dms.", timeout.Milliseconds()).
				WithDescription("Try increasing the command timeout.")
		}
		return acks[0].env, true, nil
	}
	return aggregate(sig.topic, ditto.ChannelLive, cid, p.labels, acks), true, nil
}

// targets selects the deliveries of a signal and the custom labels to
// acknowledge weakly (their issuer may not READ the signal).
func (r *Router) targets(sig *signal, env ditto.Envelope, origin string, custom []string) ([]target, []string) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []target
	var weak []string
	for sub := range r.subs {
		if sub.kinds&sig.kind == 0 || (origin != "" && sub.id == origin) {
			continue
		}
		e, ok := sig.receivable(env, sub.auth)
		if ok {
			e.Headers = e.Headers.Clone()
			out = append(out, target{sub: sub, env: e})
			continue
		}
		for _, l := range custom {
			if o := r.labels[l]; o != nil && o.id == sub.id && !slices.Contains(weak, l) {
				weak = append(weak, l)
			}
		}
	}
	return out, weak
}

// timeoutOf is how long a wait under ctx lasts at most.
func (r *Router) timeoutOf(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), 0)
	}
	return r.cfg.DefaultTimeout
}

// forwardHeaders builds the headers a receiver gets: the sender's headers
// without internal ones, the correlation-id, ditto-originator and the
// pending custom labels in requested-acks.
func forwardHeaders(h ditto.Headers, cid string, auth ditto.Auth, custom []string) ditto.Headers {
	out := make(ditto.Headers, len(h)+2)
	for k, v := range h {
		if internalHeader(k) || k == ditto.HeaderRequestedAcks {
			continue
		}
		out[k] = v
	}
	out[ditto.HeaderCorrelationID] = cid
	if s := auth.Default(); s != "" {
		out[ditto.HeaderOriginator] = s
	}
	if len(custom) > 0 {
		out[ditto.HeaderRequestedAcks] = joinLabels(custom)
	}
	return out
}

// internalHeader reports whether a header is internal to Ditto and never
// forwarded to receivers.
func internalHeader(name string) bool {
	switch name {
	case "read-subjects", "subject", "raw-request-url", "timeout-access":
		return true
	}
	return len(name) > 6 && name[:6] == "ditto-"
}

func joinLabels(ls []string) string {
	n := 0
	for _, l := range ls {
		n += len(l) + 1
	}
	b := make([]byte, 0, n)
	for i, l := range ls {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, l...)
	}
	return string(b)
}

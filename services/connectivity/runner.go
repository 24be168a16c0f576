package connectivity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// runner is one open connection running on this node.
type runner struct {
	rt    *Runtime
	conn  *Connection
	rev   int64
	stats *stats

	client  Client
	sources []*sourceRT
	targets []*targetRT

	cancel context.CancelFunc
	wg     sync.WaitGroup

	// redelivery is the connection's reconnectForRedelivery setting.
	redelivery struct {
		enabled bool
		delay   time.Duration
	}

	mu        sync.Mutex
	state     string // connecting, open, failed
	details   string
	since     time.Time
	connected time.Time
}

type sourceRT struct {
	src          Source
	qos          int
	auth         []*Template
	enfInput     *Template
	enfFilters   []*Template
	headers      map[string]*Template
	mappers      []Mapper
	reply        bool
	replyAddr    *Template
	replyHeaders map[string]*Template
	replyTypes   map[string]bool
	acks         sourceAcks
}

type targetRT struct {
	index    int
	t        Target
	qos      int
	auth     ditto.Auth
	address  *Template
	headers  map[string]*Template
	mappers  []Mapper
	twin     []View
	live     []liveTopic
	announce bool
	ackLabel *Template
	// label is the resolved issuedAcknowledgementLabel and ackID the live
	// subscriber that declared it ("" without one).
	label, ackID string
}

type liveTopic struct {
	kind string // messages, live-commands, live-events
	view func(ditto.Envelope, ditto.Auth) (ditto.Envelope, bool)
}

func compileHeaders(hm map[string]string, scope Scope) map[string]*Template {
	out := make(map[string]*Template, len(hm))
	for k, v := range hm {
		out[strings.ToLower(k)] = mustTemplate(v, scope)
	}
	return out
}

// mappersOf builds the mappers named by a payloadMapping (default Ditto).
func (r *Runtime) mappersOf(c *Connection, ids []string) ([]Mapper, error) {
	if len(ids) == 0 {
		return []Mapper{dittoMapper{}}, nil
	}
	out := make([]Mapper, 0, len(ids))
	for _, id := range ids {
		md, ok := c.MappingDefinitions[id]
		if !ok {
			md = MappingDefinition{MappingEngine: id}
		}
		m, err := newMapper(id, md, r.mcfg)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func (r *Runtime) newRunner(c *Connection, rev int64) (*runner, error) {
	f := r.factory(c)
	if f == nil {
		return nil, fmt.Errorf("no client for connection type %s", c.ConnectionType)
	}
	rn := &runner{rt: r, conn: c, rev: rev, stats: r.statsOf(c.ID), state: "connecting", since: r.deps.Clock()}
	if c.isMQTT() {
		set, err := parseMQTTSettings(c)
		if err != nil {
			return nil, err
		}
		rn.redelivery.enabled, rn.redelivery.delay = set.reconnectForRedelivery, set.redeliveryDelay
	}
	for _, s := range c.Sources {
		srt := &sourceRT{src: s, headers: compileHeaders(s.HeaderMapping, scopeInbound), acks: compileSourceAcks(c, s)}
		if s.QoS != nil {
			srt.qos = *s.QoS
		}
		for _, a := range s.AuthorizationContext {
			srt.auth = append(srt.auth, mustTemplate(a, scopeSourceAuth))
		}
		if e := s.Enforcement; e != nil {
			srt.enfInput = mustTemplate(e.Input, scopeEnforcementInput)
			for _, fl := range e.Filters {
				srt.enfFilters = append(srt.enfFilters, mustTemplate(fl, scopeEnforcementFilter))
			}
		}
		var err error
		if srt.mappers, err = r.mappersOf(c, s.PayloadMapping); err != nil {
			return nil, err
		}
		if rt := s.ReplyTarget; rt != nil && (rt.Enabled == nil || *rt.Enabled) && rt.Address != "" {
			srt.reply = true
			srt.replyAddr = mustTemplate(rt.Address, scopeOutbound)
			srt.replyHeaders = compileHeaders(rt.HeaderMapping, scopeOutbound)
			srt.replyTypes = map[string]bool{}
			for _, t := range rt.ExpectedResponseTypes {
				srt.replyTypes[t] = true
			}
			if len(srt.replyTypes) == 0 {
				srt.replyTypes = map[string]bool{"response": true, "error": true, "nack": true}
			}
		}
		rn.sources = append(rn.sources, srt)
	}
	for i, t := range c.Targets {
		trt := &targetRT{index: i, t: t, auth: ditto.Auth{Subjects: t.AuthorizationContext},
			address: mustTemplate(t.Address, scopeOutbound), headers: compileHeaders(t.HeaderMapping, scopeOutbound)}
		if t.QoS != nil {
			trt.qos = *t.QoS
		}
		if t.IssuedAcknowledgementLabel != "" {
			trt.ackLabel = mustTemplate(t.IssuedAcknowledgementLabel, scopeOutbound)
		}
		var err error
		if trt.mappers, err = r.mappersOf(c, t.PayloadMapping); err != nil {
			return nil, err
		}
		for _, raw := range t.Topics {
			tt, err := ParseTargetTopic(raw)
			if err != nil {
				return nil, err
			}
			switch tt.Topic {
			case topicTwinEvents:
				if r.deps.Views == nil {
					return nil, errors.New("no event views on this node")
				}
				v, err := r.deps.Views.TwinEventView(tt.Query)
				if err != nil {
					return nil, err
				}
				trt.twin = append(trt.twin, v)
			case topicLiveMessages, topicLiveCommands, topicLiveEvents:
				if r.deps.Views == nil {
					return nil, errors.New("no live views on this node")
				}
				v, err := r.deps.Views.LiveSignalView(tt.Query)
				if err != nil {
					return nil, err
				}
				kind := map[string]string{topicLiveMessages: "messages", topicLiveCommands: "live-commands", topicLiveEvents: "live-events"}[tt.Topic]
				trt.live = append(trt.live, liveTopic{kind: kind, view: v})
			case topicConnAnnounce:
				trt.announce = true
			}
		}
		rn.targets = append(rn.targets, trt)
	}
	cl, err := f(c, r.log.With("connection", c.ID))
	if err != nil {
		return nil, err
	}
	rn.client = cl
	return rn, nil
}

func (rn *runner) setState(state, details string) {
	now := rn.rt.deps.Clock()
	rn.mu.Lock()
	if rn.state != state {
		rn.since = now
	}
	rn.state, rn.details = state, details
	if state == "open" && rn.connected.IsZero() {
		rn.connected = now
	}
	rn.mu.Unlock()
}

func (rn *runner) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	rn.cancel = cancel
	rn.stats.enableLogs(rn.rt.deps.Clock(), rn.rt.cfg.LogDuration)
	rn.wg.Add(1)
	go func() {
		defer rn.wg.Done()
		rn.run(ctx)
	}()
}

func (rn *runner) stop() error {
	if rn.cancel != nil {
		rn.cancel()
	}
	err := rn.client.Close()
	rn.wg.Wait()
	return err
}

// run connects (with backoff), subscribes the sources and pumps signals to
// the targets until ctx ends.
func (rn *runner) run(ctx context.Context) {
	cfg := rn.rt.cfg
	// Declare the labels of acknowledgements the sources consume before
	// the first message can arrive.
	for i, s := range rn.sources {
		if cancel := rn.declareSourceAcks(i, s); cancel != nil {
			defer cancel()
		}
	}
	delay := 500 * time.Millisecond
	for {
		err := rn.connect(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		rn.setState("failed", err.Error())
		rn.logEntry("connection", "connected", false, "", "", fmt.Sprintf("Connecting failed: %v; retrying in %s.", err, delay))
		rn.rt.log.Warn("connectivity: connect failed", "connection", rn.conn.ID, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, cfg.MaxReconnectDelay)
	}
	// Subscribe every target before the connection reports open, so
	// that nothing applied after that is missed.
	for _, t := range rn.targets {
		for _, lt := range t.live {
			rn.startLive(ctx, t, lt)
		}
		if cancel := rn.declareAck(t); cancel != nil {
			defer cancel()
		}
	}
	var sub *ditto.Subscription
	if rn.hasTwinTargets() && rn.rt.deps.Bus != nil {
		sub = rn.rt.deps.Bus.Subscribe(rn.rt.cfg.SignalQueue)
	}
	rn.setState("open", "connected")
	rn.logEntry("connection", "connected", true, "", "", "Connected to "+redactURI(rn.conn.URI)+".")
	rn.announce(ctx, "opened", "openedAt")
	if sub != nil {
		rn.pumpTwin(ctx, sub)
	}
	<-ctx.Done()
}

func (rn *runner) connect(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, rn.rt.cfg.ConnectTimeout)
	defer cancel()
	if err := rn.client.Connect(cctx); err != nil {
		return err
	}
	for _, s := range rn.sources {
		s := s
		if err := rn.client.Subscribe(cctx, s.src.Addresses, s.qos, func(mctx context.Context, addr string, msg External) bool {
			return rn.inbound(mctx, s, addr, msg)
		}); err != nil {
			return fmt.Errorf("subscribe %v: %w", s.src.Addresses, err)
		}
	}
	return nil
}

func (rn *runner) hasTwinTargets() bool {
	for _, t := range rn.targets {
		if len(t.twin) > 0 {
			return true
		}
	}
	return false
}

func (rn *runner) logEntry(category, typ string, ok bool, cid, address, msg string) {
	level := "success"
	if !ok {
		level = "failure"
	}
	rn.stats.log(LogEntry{Category: category, Type: typ, Level: level, CorrelationID: cid, Address: address, Message: msg}, rn.rt.deps.Clock())
}

func (rn *runner) count(name string, ok bool) { rn.stats.count(name, ok, rn.rt.deps.Clock()) }

// status renders the runner's part of GET /status.
func (rn *runner) status(node string) map[string]any {
	rn.mu.Lock()
	state, details, since, connected := rn.state, rn.details, rn.since, rn.connected
	rn.mu.Unlock()
	if state == "open" && !rn.client.Connected() {
		state, details = "failed", "The link to the external system is down; the client reconnects."
	}
	live := state
	if state == "connecting" {
		live = "unknown"
	}
	out := map[string]any{"liveStatus": live}
	if !connected.IsZero() {
		out["connectedSince"] = ditto.FormatTime(connected)
	}
	st := func(typ string, extra map[string]any) map[string]any {
		m := map[string]any{"type": typ, "client": node, "status": live, "statusDetails": details, "inStateSince": ditto.FormatTime(since)}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	out["clientStatus"] = []any{st("client", nil)}
	var src, tgt []any
	for _, s := range rn.sources {
		for _, a := range s.src.Addresses {
			src = append(src, st("source", map[string]any{"address": a}))
		}
	}
	for _, t := range rn.targets {
		tgt = append(tgt, st("target", map[string]any{"address": t.t.Address}))
	}
	if src == nil {
		src = []any{}
	}
	if tgt == nil {
		tgt = []any{}
	}
	out["sourceStatus"], out["targetStatus"] = src, tgt
	return out
}

// inboundResolver resolves placeholders of a consumed message: its
// headers, the address it came from and the connection; with env, also
// the thing and topic of the mapped signal.
func (rn *runner) inboundResolver(addr string, headers map[string]string, env *ditto.Envelope) Resolver {
	now := rn.rt.deps.Clock()
	var topic ditto.Topic
	var topicOK bool
	if env != nil {
		t, err := ditto.ParseTopic(env.Topic)
		topic, topicOK = t, err == nil
	}
	return func(prefix, name string) (string, bool) {
		switch prefix {
		case "header":
			v, ok := headers[strings.ToLower(name)]
			return v, ok
		case "source":
			return addr, name == "address"
		case "connection":
			return rn.conn.ID, name == "id"
		case "time":
			return timePlaceholder(name, now)
		case "thing", "entity", "policy", "topic", "feature", "request":
			if env == nil || !topicOK {
				return "", false
			}
			return signalPlaceholder(prefix, name, topic, *env)
		}
		return "", false
	}
}

// signalPlaceholder resolves thing:, entity:, policy:, feature:, topic:,
// resource: and request: of a signal.
func signalPlaceholder(prefix, name string, t ditto.Topic, env ditto.Envelope) (string, bool) {
	switch prefix {
	case "thing", "entity", "policy":
		if prefix == "thing" && t.Group != ditto.GroupThings || prefix == "policy" && t.Group != ditto.GroupPolicies {
			return "", false
		}
		if t.Namespace == ditto.TopicPlaceholder || t.Name == ditto.TopicPlaceholder {
			return "", false
		}
		switch name {
		case "id":
			return t.Entity(), true
		case "namespace":
			return t.Namespace, true
		case "name":
			return t.Name, true
		}
	case "feature":
		p, err := ditto.ParsePointer(env.Path)
		if err == nil && len(p) >= 2 && p[0] == "features" {
			return p[1], true
		}
	case "topic":
		return placeholderOfTopic(t, name)
	case "resource":
		switch name {
		case "type":
			if t.Criterion == ditto.CriterionMessages {
				return "message", true
			}
			return t.Group[:len(t.Group)-1], true
		case "path":
			return env.Path, true
		}
	case "request":
		if name == "subjectId" {
			if s := env.Headers.Get("ditto-originator"); s != "" {
				return s, true
			}
		}
	}
	return "", false
}

func placeholderOfTopic(t ditto.Topic, name string) (string, bool) {
	switch name {
	case "full":
		return t.String(), true
	case "namespace":
		return t.Namespace, true
	case "entityName":
		return t.Name, true
	case "group":
		return t.Group, true
	case "channel":
		return t.Channel, t.Channel != ""
	case "criterion":
		return t.Criterion, true
	case "action":
		return t.Action, t.Action != "" && t.Criterion != ditto.CriterionMessages
	case "subject":
		return t.Action, t.Criterion == ditto.CriterionMessages
	case "action-subject":
		return t.Action, t.Action != ""
	}
	return "", false
}

// inbound runs one consumed message: authorization context, mapping,
// enforcement, header mapping, the command, and the reply. It reports
// whether the message must be redelivered rather than acknowledged.
func (rn *runner) inbound(ctx context.Context, s *sourceRT, addr string, msg External) bool {
	rn.count(mInConsumed, true)
	cid := msg.Headers[ditto.HeaderCorrelationID]
	res := rn.inboundResolver(addr, msg.Headers, nil)
	auth := ditto.Auth{}
	for _, t := range s.auth {
		vals, ok, _ := t.Resolve(res)
		if !ok {
			rn.count(mInDropped, false)
			rn.logEntry("source", "consumed", false, cid, addr, fmt.Sprintf("The authorization subject '%s' could not be resolved; the message was dropped.", clip(t.String())))
			return false
		}
		auth.Subjects = append(auth.Subjects, vals...)
	}
	auth = senderAuth(ctx, auth) // a device's publish on the embedded broker
	msg.subjects = auth.Subjects
	var envs []ditto.Envelope
	for _, m := range s.mappers {
		out, err := m.Inbound(msg)
		if err != nil {
			rn.count(mInMapped, false)
			rn.logEntry("source", "mapped", false, cid, addr, err.Error())
			rn.replyError(ctx, s, addr, msg, nil, asDitto(err))
			return false
		}
		envs = append(envs, out...)
	}
	rn.count(mInMapped, true)
	if len(envs) == 0 {
		rn.count(mInDropped, true)
		rn.logEntry("source", "dropped", true, cid, addr, "The payload mapping dropped the message.")
		return false
	}
	var o ackOutcome
	for _, env := range envs {
		if env.Headers == nil {
			env.Headers = ditto.Headers{}
		}
		o.merge(rn.command(ctx, s, addr, msg, env, auth))
	}
	return rn.settle(addr, o)
}

func asDitto(err error) *ditto.Error {
	var de *ditto.Error
	if errors.As(err, &de) {
		return de
	}
	return ditto.ErrMappingFailed.New("%v", err)
}

// command runs one signal of a consumed message and reports the outcome of
// the acknowledgements it requested.
func (rn *runner) command(ctx context.Context, s *sourceRT, addr string, msg External, env ditto.Envelope, auth ditto.Auth) ackOutcome {
	// Internal headers never come from outside.
	for k := range env.Headers {
		if strings.HasPrefix(k, "ditto-") && k != "ditto-message-subject" || k == "read-subjects" || k == "subject" && !strings.Contains(env.Topic, "/messages/") {
			delete(env.Headers, k)
		}
	}
	res := rn.inboundResolver(addr, msg.Headers, &env)
	if s.enfInput != nil {
		in, ok := s.enfInput.ResolveOne(res)
		match := false
		for _, f := range s.enfFilters {
			if v, fok := f.ResolveOne(res); ok && fok && v == in {
				match = true
				break
			}
		}
		rn.count(mInEnforced, match)
		if !match {
			err := ditto.ErrEnforcementFailed.New("The input '%s' of the message on '%s' does not match the filters of the source for topic '%s'.", clip(in), clip(addr), clip(env.Topic))
			rn.logEntry("source", "enforced", false, env.Headers.Get(ditto.HeaderCorrelationID), addr, err.Message)
			rn.replyError(ctx, s, addr, msg, &env, err)
			return ackOutcome{}
		}
	}
	for k, t := range s.headers {
		vals, ok, deleted := t.Resolve(res)
		switch {
		case deleted:
			delete(env.Headers, k)
		case ok && len(vals) > 0:
			env.Headers[k] = vals[0]
		}
	}
	cid := env.Headers.Get(ditto.HeaderCorrelationID)
	if cid == "" {
		cid = newCorrelationID()
		env.Headers[ditto.HeaderCorrelationID] = cid
	}
	s.markAckOrigin(&env)
	labels := s.acks.requested(&env, res)
	cctx, cancel := context.WithTimeout(ctx, rn.rt.cfg.CommandTimeout)
	defer cancel()
	waitAcks, cancelAcks := rn.expectCustom(cctx, env, labels)
	defer cancelAcks()
	resp, has, err := rn.rt.deps.Dispatcher.Dispatch(cctx, env, auth)
	if err != nil {
		rn.logEntry("source", "dispatched", false, cid, addr, err.Error())
		rn.replyError(ctx, s, addr, msg, &env, asDitto(err))
		o := ackOutcome{requested: labels != nil, cid: cid}
		for _, l := range labels {
			o.failures = append(o.failures, ackFailure{label: l, status: asDitto(err).Status})
		}
		return o
	}
	o := ackOutcome{requested: labels != nil, failures: builtinFailures(labels, resp, has), cid: cid}
	if ackStatus(resp, has) < 300 {
		o.failures = append(o.failures, waitAcks(cctx)...)
	} else {
		for _, l := range labels {
			if !builtinAck(l) {
				o.failures = append(o.failures, ackFailure{label: l, status: ackStatus(resp, has)})
			}
		}
	}
	ok := !has || resp.Status < 400
	msgText := "The command was executed."
	if !ok {
		msgText = fmt.Sprintf("The command failed with status %d: %s", resp.Status, clip(string(resp.Value)))
	}
	rn.logEntry("source", "dispatched", ok, cid, addr, msgText)
	if has {
		rn.reply(ctx, s, addr, msg, env, resp)
	}
	return o
}

func (rn *runner) replyError(ctx context.Context, s *sourceRT, addr string, msg External, env *ditto.Envelope, derr *ditto.Error) {
	h := ditto.Headers{}
	t := ditto.Topic{Namespace: ditto.TopicPlaceholder, Name: ditto.TopicPlaceholder, Group: ditto.GroupThings, Channel: ditto.ChannelTwin}
	if env != nil {
		h = env.Headers.Clone()
		if pt, err := ditto.ParseTopic(env.Topic); err == nil {
			t = pt
		}
	} else if cid := msg.Headers[ditto.HeaderCorrelationID]; cid != "" {
		h[ditto.HeaderCorrelationID] = cid
	}
	cmd := ditto.Envelope{Headers: h, Topic: t.String()}
	rn.reply(ctx, s, addr, msg, cmd, ditto.ErrorEnvelope(t, h, derr))
}

// reply publishes a command's response to the source's reply target.
func (rn *runner) reply(ctx context.Context, s *sourceRT, addr string, msg External, cmd, resp ditto.Envelope) {
	if !s.reply || cmd.Headers.Get(ditto.HeaderResponseRequired) == "false" {
		return
	}
	kind := "response"
	if resp.Status >= 400 {
		kind = "error"
	}
	if !s.replyTypes[kind] {
		return
	}
	if resp.Headers == nil {
		resp.Headers = ditto.Headers{}
	}
	if cid := cmd.Headers.Get(ditto.HeaderCorrelationID); cid != "" {
		resp.Headers[ditto.HeaderCorrelationID] = cid
	}
	headers := make(map[string]string, len(msg.Headers)+len(cmd.Headers))
	for k, v := range msg.Headers {
		headers[k] = v
	}
	for k, v := range cmd.Headers {
		headers[k] = v
	}
	res := rn.outboundResolver(resp, nil, headers)
	address, ok := s.replyAddr.ResolveOne(res)
	if !ok || address == "" {
		rn.logEntry("response", "dropped", false, resp.Headers.Get(ditto.HeaderCorrelationID), addr, "The reply target address could not be resolved; the response was dropped.")
		return
	}
	rn.publish(ctx, s.mappers, s.replyHeaders, address, s.qos, resp, res, "response")
}

// outboundResolver resolves placeholders of an outgoing signal; headers
// overrides the signal's headers for header: (reply targets see the
// command's headers).
func (rn *runner) outboundResolver(env ditto.Envelope, state []byte, headers map[string]string) Resolver {
	now := rn.rt.deps.Clock()
	t, terr := ditto.ParseTopic(env.Topic)
	var doc any
	return func(prefix, name string) (string, bool) {
		switch prefix {
		case "header":
			if headers != nil {
				v, ok := headers[strings.ToLower(name)]
				return v, ok
			}
			v, ok := env.Headers[strings.ToLower(name)]
			return v, ok
		case "connection":
			return rn.conn.ID, name == "id"
		case "time":
			return timePlaceholder(name, now)
		case "thing-json":
			if state == nil {
				return "", false
			}
			if doc == nil {
				d, err := ditto.DecodeJSON(state)
				if err != nil {
					return "", false
				}
				doc = d
			}
			p, err := ditto.ParsePointer("/" + strings.TrimPrefix(name, "/"))
			if err != nil {
				return "", false
			}
			v, ok := ditto.GetAt(doc, p)
			if !ok {
				return "", false
			}
			if s, isStr := v.(string); isStr {
				return s, true
			}
			return string(ditto.EncodeJSON(v)), true
		}
		if terr != nil {
			return "", false
		}
		return signalPlaceholder(prefix, name, t, env)
	}
}

// publish maps env with mappers and sends the results to address, applying
// the header mapping; MQTT headers mqtt.topic, mqtt.qos and mqtt.retain of
// the mapped message override address and qos.
func (rn *runner) publish(ctx context.Context, mappers []Mapper, hm map[string]*Template, address string, qos int, env ditto.Envelope, res Resolver, category string) bool {
	cid := env.Headers.Get(ditto.HeaderCorrelationID)
	var msgs []External
	for _, m := range mappers {
		out, err := m.Outbound(env)
		if err != nil {
			rn.count(mOutMapped, false)
			rn.logEntry(category, "mapped", false, cid, address, err.Error())
			return false
		}
		msgs = append(msgs, out...)
	}
	rn.count(mOutMapped, true)
	if len(msgs) == 0 {
		rn.count(mOutDropped, true)
		rn.logEntry(category, "dropped", true, cid, address, "The payload mapping dropped the signal.")
		return true
	}
	allOK := true
	for _, m := range msgs {
		if m.Headers == nil {
			m.Headers = map[string]string{}
		}
		for k, t := range hm {
			vals, ok, deleted := t.Resolve(res)
			switch {
			case deleted:
				delete(m.Headers, k)
			case ok && len(vals) > 0:
				m.Headers[k] = vals[0]
			}
		}
		if cid != "" && m.Headers[ditto.HeaderCorrelationID] == "" && rn.conn.ConnectionType != TypeMQTT {
			m.Headers[ditto.HeaderCorrelationID] = cid
		}
		addr, q := address, qos
		if v := m.Headers["mqtt.topic"]; v != "" && rn.conn.isMQTT() {
			addr = v
		}
		if v := m.Headers["mqtt.qos"]; v != "" && rn.conn.isMQTT() {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= 2 {
				q = n
			}
		}
		pctx, cancel := context.WithTimeout(ctx, rn.rt.cfg.PublishTimeout)
		err := rn.client.Publish(pctx, addr, q, m)
		cancel()
		rn.count(mOutPublished, err == nil)
		if err != nil {
			allOK = false
			rn.logEntry(category, "published", false, cid, addr, err.Error())
			continue
		}
		rn.logEntry(category, "published", true, cid, addr, "Published "+env.Topic+".")
	}
	return allOK
}

// pumpTwin delivers the node's twin events to the twin targets. A cut-off
// subscription (the external system was too slow) is logged and counted,
// then renewed.
func (rn *runner) pumpTwin(ctx context.Context, sub *ditto.Subscription) {
	for ctx.Err() == nil {
		if sub == nil {
			sub = rn.rt.deps.Bus.Subscribe(rn.rt.cfg.SignalQueue)
		}
		func() {
			defer sub.Close()
			for {
				select {
				case <-ctx.Done():
					return
				case <-sub.Done():
					rn.count(mOutDropped, false)
					rn.logEntry("target", "dropped", false, "", "", "The targets fell behind the twin events and missed some: "+fmt.Sprint(sub.Err()))
					rn.rt.log.Warn("connectivity: targets missed twin events", "connection", rn.conn.ID, "error", sub.Err())
					return
				case sig := <-sub.C():
					rn.twinSignal(ctx, sig)
				}
			}
		}()
		sub = nil
	}
}

func (rn *runner) twinSignal(ctx context.Context, sig ditto.Signal) {
	t, err := ditto.ParseTopic(sig.Envelope.Topic)
	if err != nil || t.Group != ditto.GroupThings || t.Channel != ditto.ChannelTwin || t.Criterion != ditto.CriterionEvents {
		return
	}
	for _, tg := range rn.targets {
		if len(tg.twin) == 0 {
			continue
		}
		if ac, ok := rn.client.(AudienceClient); ok {
			rn.twinAudience(ctx, ac, tg, sig)
			continue
		}
		rn.count(mOutDispatch, true)
		var env ditto.Envelope
		ok := false
		for _, v := range tg.twin {
			if env, ok = v(sig, tg.auth); ok {
				break
			}
		}
		wantsAck := rn.ackRequested(tg, sig.Envelope.Headers)
		if !ok {
			rn.count(mOutFiltered, true)
			if wantsAck {
				rn.issueAck(tg, t, sig.Envelope.Headers, 200, true)
			}
			continue
		}
		delivered := rn.toTarget(ctx, tg, env, sig.State)
		if wantsAck {
			status := http.StatusOK
			if !delivered {
				status = http.StatusServiceUnavailable
			}
			rn.issueAck(tg, t, sig.Envelope.Headers, status, false)
		}
	}
}

// toTarget resolves the target address for env and publishes it; it
// reports whether every publish succeeded.
func (rn *runner) toTarget(ctx context.Context, tg *targetRT, env ditto.Envelope, state []byte) bool {
	res := rn.outboundResolver(env, state, nil)
	vals, ok, _ := tg.address.Resolve(res)
	if !ok || len(vals) == 0 {
		rn.count(mOutDropped, true)
		rn.logEntry("target", "dropped", true, env.Headers.Get(ditto.HeaderCorrelationID), tg.t.Address,
			"The target address could not be resolved for "+env.Topic+"; the signal was dropped.")
		return false
	}
	all := true
	for _, a := range vals {
		all = rn.publish(ctx, tg.mappers, tg.headers, a, tg.qos, env, res, "target") && all
	}
	return all
}

// declareAck declares the target's issuedAcknowledgementLabel at the live
// router, so that its acknowledgements count for commands that requested
// the label. The label may use connection:id only.
func (rn *runner) declareAck(tg *targetRT) func() {
	live := rn.rt.deps.Live
	if tg.ackLabel == nil || live == nil {
		return nil
	}
	label, ok := tg.ackLabel.ResolveOne(func(prefix, name string) (string, bool) {
		return rn.conn.ID, prefix == "connection" && name == "id"
	})
	if !ok || !ditto.ValidAckLabel(label) {
		rn.logEntry("target", "acknowledged", false, "", tg.t.Address, "The issuedAcknowledgementLabel does not resolve to a valid label with the connection's ID alone.")
		return nil
	}
	id := fmt.Sprintf("connection:%s:acks:%d", rn.conn.ID, tg.index)
	cancel, err := live.Subscribe(id, tg.auth, nil, []string{label}, func(ditto.Envelope) {})
	if err != nil {
		rn.logEntry("target", "acknowledged", false, "", tg.t.Address, err.Error())
		return nil
	}
	tg.label, tg.ackID = label, id
	return cancel
}

func (rn *runner) ackRequested(tg *targetRT, h ditto.Headers) bool {
	if tg.label == "" {
		return false
	}
	raw := h.Get(ditto.HeaderRequestedAcks)
	if raw == "" {
		return false
	}
	labels, err := ditto.ParseAckLabels(raw)
	return err == nil && slices.Contains(labels, tg.label)
}

// issueAck acknowledges a twin event with the target's label: 200 when it
// was published (or weakly, when the target filtered it out), 503 when the
// external system did not accept it.
func (rn *runner) issueAck(tg *targetRT, t ditto.Topic, h ditto.Headers, status int, weak bool) {
	cid := h.Get(ditto.HeaderCorrelationID)
	ah := ditto.Headers{ditto.HeaderCorrelationID: cid, ditto.HeaderOrigin: tg.ackID}
	if weak {
		ah["ditto-weak-ack"] = "true"
	}
	ack := ditto.Envelope{Topic: t.Namespace + "/" + t.Name + "/things/twin/acks/" + tg.label, Headers: ah, Path: "/", Status: status}
	if err := rn.rt.deps.Live.Respond(ack, tg.auth); err != nil {
		rn.logEntry("target", "acknowledged", false, cid, tg.t.Address, err.Error())
	}
}

// startLive subscribes a target to live signals of one kind; the router's
// deliveries queue up (bounded) for a goroutine that publishes them.
func (rn *runner) startLive(ctx context.Context, tg *targetRT, lt liveTopic) {
	live := rn.rt.deps.Live
	if live == nil {
		return
	}
	q := make(chan ditto.Envelope, rn.rt.cfg.SignalQueue)
	cancelSub, err := live.Subscribe(fmt.Sprintf("connection:%s:target:%d:%s", rn.conn.ID, tg.index, lt.kind), tg.auth, []string{lt.kind}, nil, func(env ditto.Envelope) {
		select {
		case q <- env:
		default:
			rn.count(mOutDropped, false)
			rn.logEntry("target", "dropped", false, env.Headers.Get(ditto.HeaderCorrelationID), tg.t.Address, "The target fell behind the live signals; one was dropped.")
		}
	})
	if err != nil {
		rn.logEntry("target", "subscribed", false, "", tg.t.Address, err.Error())
		return
	}
	rn.wg.Add(1)
	go func() {
		defer rn.wg.Done()
		defer cancelSub()
		for {
			select {
			case <-ctx.Done():
				return
			case env := <-q:
				rn.count(mOutDispatch, true)
				out, ok := lt.view(env, tg.auth)
				if !ok {
					rn.count(mOutFiltered, true)
					continue
				}
				rn.toTarget(ctx, tg, out, nil)
			}
		}
	}()
}

// announce publishes a connection announcement to the targets that
// subscribed _/_/connections/announcements.
func (rn *runner) announce(ctx context.Context, action, field string) {
	env := ditto.Envelope{Topic: "_/" + rn.conn.ID + "/connections/announcements/" + action, Path: "/",
		Headers: ditto.Headers{"content-type": "application/json"},
		Value:   ditto.EncodeJSON(map[string]any{field: ditto.FormatTime(rn.rt.deps.Clock())})}
	for _, tg := range rn.targets {
		if !tg.announce {
			continue
		}
		res := rn.outboundResolver(env, nil, nil)
		a, ok := tg.address.ResolveOne(res)
		if !ok {
			continue
		}
		rn.publish(ctx, []Mapper{dittoMapper{}}, tg.headers, a, tg.qos, env, res, "target")
	}
}

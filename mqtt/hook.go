package mqtt

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/dittonode/dittonode/ditto"
)

// hook is the broker's mochi hook: device authentication, topic ACLs and
// the twin commands devices publish.
type hook struct {
	mochi.HookBase
	b *Broker
}

func (h *hook) ID() string { return "dittonode" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mochi.OnConnectAuthenticate,
		mochi.OnACLCheck,
		mochi.OnPublish,
		mochi.OnPublishDropped,
		mochi.OnQosDropped,
		mochi.OnClientExpired,
		mochi.OnDisconnect,
		mochi.OnSessionEstablished,
		mochi.OnSubscribe,
		mochi.OnSubscribed,
		mochi.OnUnsubscribed,
	}, []byte{b})
}

// OnConnectAuthenticate admits a client with a device's credentials, or
// with a client certificate (TLS/QUIC listeners with a client CA) whose CN
// names a device. Nothing is anonymous. A client ID that belongs to
// another device's session is refused, so a device cannot take over
// another's session. Repeated failures from one address are blocked for a
// while without checking the password.
func (h *hook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	b := h.b
	host := remoteHost(cl.Net.Remote)
	if !b.limit.allowed(host) {
		b.stats.authBlocked.Add(1)
		return false
	}
	username, ok := "", false
	if cn, hasCert := certCN(cl.Net.Conn); hasCert {
		if _, exists := b.deps.Devices.DeviceSubjects(cn); exists {
			username, ok = cn, true
		}
	} else if len(pk.Connect.Username) > 0 {
		username = string(pk.Connect.Username)
		_, ok = b.deps.Devices.AuthenticateDevice(username, string(pk.Connect.Password))
	}
	if ok {
		if owner, known := b.ident(cl.ID); known && owner != username {
			ok = false
		}
	}
	// mochi publishes a will without ACL check or OnPublish, so a will
	// may only go to an ordinary topic: never a forged event or reply, and
	// no command that would bypass enforcement.
	if ok && pk.Connect.WillFlag && parseInbound(pk.Connect.WillTopic).kind != inboundPlain {
		b.log.Info("mqtt: refused a will on a reserved topic", logKeyClient, cl.ID, "topic", pk.Connect.WillTopic)
		return false
	}
	if !ok {
		b.stats.authFailures.Add(1)
		b.limit.failed(host)
		b.log.Info("mqtt: refused connect", logKeyClient, cl.ID, logKeyAddr, cl.Net.Remote)
		return false
	}
	b.rememberIdent(cl.ID, username)
	return true
}

// certCN is the subject CN of a verified client certificate.
func certCN(c net.Conn) (string, bool) {
	tc, ok := c.(interface {
		ConnectionState() tls.ConnectionState
	})
	if !ok {
		return "", false
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return "", false
	}
	cn := st.VerifiedChains[0][0].Subject.CommonName
	return cn, cn != ""
}

func remoteHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// OnACLCheck: devices may publish to the command and value topics and to
// ordinary topics, never to the reply and event topics (only the broker
// publishes there). Deliveries of the broker's own publishes go only to
// the clients they are meant for: replies to their requester, events to
// the devices that may read them.
func (h *hook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	if write {
		return parseInbound(topic).kind != inboundReserved
	}
	if d := h.b.cur.Load(); d != nil && d.topic == topic {
		return d.allow(cl.ID)
	}
	return true
}

// OnDisconnect forgets the owner of a session that ends with its
// connection, so the client ID is free for any device again.
func (h *hook) OnDisconnect(cl *mochi.Client, _ error, expire bool) {
	h.b.dropPipeline(cl)
	h.b.dropLive(cl)
	if expire && !errors.Is(cl.StopCause(), packets.ErrSessionTakenOver) {
		h.b.forgetIdent(cl.ID)
	}
}

// OnSessionEstablished registers a resumed session's live subscriptions
// with the live router.
func (h *hook) OnSessionEstablished(cl *mochi.Client, _ packets.Packet) { h.b.syncLive(cl) }

// OnSubscribed and OnUnsubscribed keep the client's registration with the
// live router in step with its subscriptions.
func (h *hook) OnSubscribed(cl *mochi.Client, _ packets.Packet, _ []byte) {
	h.b.restoreSetAside(cl)
	h.b.syncLive(cl)
}

func (h *hook) OnUnsubscribed(cl *mochi.Client, _ packets.Packet) { h.b.syncLive(cl) }

// OnClientExpired forgets the owner of an expired session.
func (h *hook) OnClientExpired(cl *mochi.Client) { h.b.forgetIdent(cl.ID) }

// OnPublishDropped counts messages lost because a client's write queue
// was full.
func (h *hook) OnPublishDropped(cl *mochi.Client, pk packets.Packet) {
	h.b.stats.publishDropped.Add(1)
}

// OnQosDropped counts QoS 1/2 messages given up (expired in flight).
func (h *hook) OnQosDropped(cl *mochi.Client, pk packets.Packet) {
	h.b.stats.qosDropped.Add(1)
}

// OnPublish runs the twin command of a device publish before mochi
// acknowledges it: mochi sends the PUBACK (QoS 1) or PUBREC (QoS 2) only
// after this returns, so an acknowledged command has committed. Command
// and value publishes are not forwarded to subscribers. A failed command
// goes to the reply topic as a Ditto error; an MQTT 5 client with QoS > 0
// also gets the reason code in its PUBACK.
func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	b := h.b
	in := parseInbound(pk.TopicName)
	var src *source
	if in.kind == inboundPlain {
		// Ordinary pub/sub, unless a source of the embedded connection
		// consumes the topic.
		if src = b.sourceFor(pk.TopicName); src == nil {
			return pk, nil
		}
	}
	b.stats.commands.Add(1)
	// Failures found before running anything still go through the
	// pipeline (key ""), so their PUBACK keeps its place in the order.
	var run func() error
	key := ""
	auth, ok := b.auth(cl.ID)
	switch {
	case !ok:
		run = func() error {
			return h.fail(cl, pk, ditto.ErrAuthFailed.New("The device of this MQTT client no longer exists."), nil)
		}
	case src != nil:
		key = "source/" + pk.TopicName
		run = func() error { return h.consume(cl, pk, src, auth) }
	case !b.conventionsOn():
		run = func() error { return h.fail(cl, pk, closedError(), nil) }
	case in.kind == inboundCommand:
		env, err := ditto.DecodeEnvelope(pk.Payload)
		if err != nil {
			var de *ditto.Error
			if !errors.As(err, &de) {
				de = ditto.ErrJSONInvalid.New("%v", err)
			}
			run = func() error { return h.fail(cl, pk, de, nil) }
			break
		}
		key = "protocol"
		t, err := ditto.ParseTopic(env.Topic)
		if err == nil {
			key = t.Group + "/" + t.Entity()
		}
		run = func() error { return h.command(cl, pk, auth, env) }
		if err == nil && isLiveSignal(t) {
			// Live signals do not wait for the thing's twin commands, nor
			// they for a live signal waiting for its answer.
			key = "live/" + env.Headers.Get(ditto.HeaderCorrelationID)
			run = func() error { return h.live(cl, pk, auth, t, env) }
		}
	case in.kind == inboundValue:
		key = ditto.GroupThings + "/" + in.thingID
		run = func() error { return h.value(cl, pk, in, auth) }
	default:
		return pk, packets.ErrRejectPacket
	}
	if pk.FixedHeader.Qos > 1 {
		// QoS 2 keeps mochi's own flow: the PUBREC follows this call.
		return pk, run()
	}
	// QoS 0 and 1 run in the client's pipeline: several commands of one
	// device at once, one after another per entity, PUBACKs in arrival
	// order once each command committed. mochi does nothing more with
	// the packet.
	h.b.pipeline(cl).submit(h.b, cl, pk, key, run)
	return pk, packets.ErrRejectPacket
}

// command executes a Ditto Protocol message.
func (h *hook) command(cl *mochi.Client, pk packets.Packet, auth ditto.Auth, env ditto.Envelope) error {
	b := h.b
	resp, respond := b.deps.Protocol.ExecuteProtocol(b.ctx, env, auth, cl.ID)
	if resp.Status >= 400 {
		b.stats.commandErrors.Add(1)
		h.reply(cl, pk, resp, true)
		return ackCode(cl, pk, resp.Status)
	}
	if respond {
		h.reply(cl, pk, resp, false)
	}
	return packets.CodeSuccessIgnore
}

// value turns a plain value on a path-shaped topic into a modify.
func (h *hook) value(cl *mochi.Client, pk packets.Packet, in inbound, auth ditto.Auth) error {
	b := h.b
	v, ok := plainValue(pk.Payload)
	if !ok {
		return h.fail(cl, pk, ditto.ErrJSONInvalid.New("The payload published to '%s' is neither JSON nor UTF-8 text.", pk.TopicName), nil)
	}
	headers := ditto.Headers{}
	for _, p := range pk.Properties.User {
		headers.Set(p.Key, p.Val)
	}
	cmd := ditto.Command{Action: ditto.ActionModify, Entity: in.thingID, Path: in.path, Value: v, Headers: headers, Auth: auth}
	cmd.Headers[ditto.HeaderOrigin] = cl.ID
	res, derr := b.deps.Protocol.ExecuteThingCommand(b.ctx, cmd)
	t := thingTopic(in.thingID, "modify")
	if derr != nil {
		return h.fail(cl, pk, derr, &t)
	}
	if pk.Properties.ResponseTopic != "" {
		if res.Value == nil && res.Raw != nil {
			res.Value = json.RawMessage(res.Raw)
		}
		h.reply(cl, pk, ditto.ResponseEnvelope(cmd, t, res), false)
	}
	return packets.CodeSuccessIgnore
}

func thingTopic(id, action string) ditto.Topic {
	t := ditto.Topic{Group: ditto.GroupThings, Channel: ditto.ChannelTwin, Criterion: ditto.CriterionCommands, Action: action}
	if e, err := ditto.ParseThingID(id); err == nil {
		t.Namespace, t.Name = e.Namespace, e.Name
	}
	return t
}

// fail sends a Ditto error to the reply topic and returns the
// acknowledgement outcome.
func (h *hook) fail(cl *mochi.Client, pk packets.Packet, derr *ditto.Error, t *ditto.Topic) error {
	h.b.stats.commandErrors.Add(1)
	topic := ditto.Topic{}
	if t != nil {
		topic = *t
	}
	h.reply(cl, pk, ditto.ErrorEnvelope(topic, ditto.Headers{}, derr), true)
	return ackCode(cl, pk, derr.Status)
}

// ackCode is what OnPublish returns for a failed command: an MQTT 5 reason
// code in the PUBACK for QoS > 0 (mochi sends it instead of success), else
// an ordinary acknowledgement without forwarding (3.1.1 has no negative
// PUBACK; the error is on the reply topic).
func ackCode(cl *mochi.Client, pk packets.Packet, status int) error {
	if cl.Properties.ProtocolVersion != 5 || pk.FixedHeader.Qos == 0 {
		return packets.CodeSuccessIgnore
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusNotFound:
		// 404: Ditto answers a thing the requester may not see as not
		// found; MQTT has no closer reason.
		return packets.ErrNotAuthorized
	case status == http.StatusRequestEntityTooLarge:
		return packets.ErrPacketTooLarge
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		return packets.ErrServerBusy
	case status >= 400 && status < 500:
		return packets.ErrPayloadFormatInvalid
	}
	return packets.ErrImplementationSpecificError
}

// reply publishes a response or error to the requester: to the MQTT 5
// response topic (with its correlation data), else to the reply-to header
// of the Ditto Protocol message, else to ditto/reply/{clientId}. Only the
// requesting client receives it.
func (h *hook) reply(cl *mochi.Client, pk packets.Packet, env ditto.Envelope, isErr bool) {
	topic := pk.Properties.ResponseTopic
	if topic == "" {
		if rt := replyToHeader(pk.Payload); rt != "" {
			topic = rt
		} else {
			topic = ReplyPrefix + cl.ID
		}
	}
	if !mochi.IsValidFilter(topic, true) {
		return
	}
	props := packets.Properties{CorrelationData: pk.Properties.CorrelationData, ContentType: "application/vnd.eclipse.ditto+json"}
	id := cl.ID
	qos := pk.FixedHeader.Qos
	if qos > 1 {
		qos = 1
	}
	h.b.publish(topic, ditto.EncodeEnvelope(env), props, qos, func(c string) bool { return c == id })
}

// replyToHeader is the reply-to header of a Ditto Protocol payload.
func replyToHeader(payload []byte) string {
	if !bytes.Contains(payload, []byte(ditto.HeaderReplyTo)) {
		return ""
	}
	env, err := ditto.DecodeEnvelope(payload)
	if err != nil {
		return ""
	}
	return env.Headers.Get(ditto.HeaderReplyTo)
}

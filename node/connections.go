package node

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/services/connectivity"
	"github.com/dittonode/dittonode/services/gateway"
)

var (
	_ connectivity.Dispatcher = connDispatcher{}
	_ connectivity.Views      = connViews{}
	_ connectivity.LiveSource = liveSource{}
	_ gateway.Connections     = (*connectivity.API)(nil)
)

// startConnections starts the runtime of the connections this node owns.
// It needs the gateway (event views) and the live router.
func (n *Node) startConnections(ctx context.Context, log *slog.Logger) error {
	deps := connectivity.RuntimeDeps{
		Service:    n.connectivity,
		Dispatcher: connDispatcher{n},
		Views:      connViews{n.gateway},
		Live:       liveSource{n},
		Acks:       n.live,
		Bus:        n.bus,
		Members:    n.connectionMembers,
		Remote:     connRemote{n},
		Logger:     log.With("service", "connections"),
		Clock:      n.deps.Clock,
	}
	if n.cfg.MQTT.Enabled() {
		deps.Embedded = n.newEmbeddedClient
	}
	n.connRuntime = connectivity.NewRuntime(n.cfg.Connectivity, deps)
	if n.mesh != nil {
		n.mesh.host.SetStreamHandler(protoConnections, n.mesh.guard(protoConnections, n.serveConnectionOp))
	}
	return n.connRuntime.Start(ctx)
}

// protoConnections asks the node that runs a connection for its status,
// metrics or logs, or to reset them. One request per stream:
// {"op","id"} from the caller, then {"value"} or {"error"} back.
const protoConnections = "/dittonode/connections/1"

const (
	maxConnOpRequest  = 4 << 10
	maxConnOpResponse = 4 << 20
	connOpTimeout     = 10 * time.Second
)

type connOpRequest struct {
	Op string `json:"op"`
	ID string `json:"id"`
}

type connOpResponse struct {
	Value json.RawMessage `json:"value,omitempty"`
	Error *ditto.Error    `json:"error,omitempty"`
}

func (n *Node) serveConnectionOp(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(connOpTimeout))
	var req connOpRequest
	if err := json.NewDecoder(io.LimitReader(s, maxConnOpRequest)).Decode(&req); err != nil {
		_ = s.Reset()
		return
	}
	var resp connOpResponse
	v, err := n.connRuntime.Local(req.Op, req.ID)
	if err != nil {
		resp.Error = dittoError(err)
	} else {
		resp.Value = ditto.EncodeJSON(v)
	}
	_ = json.NewEncoder(s).Encode(resp) // the caller went away: nothing to tell it
}

// connRemote asks other nodes over protoConnections.
type connRemote struct{ n *Node }

func (r connRemote) Ask(ctx context.Context, node, op, id string) (json.RawMessage, error) {
	if r.n.mesh == nil {
		return nil, errors.New("no mesh")
	}
	p, err := peer.Decode(node)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, connOpTimeout)
	defer cancel()
	s, err := r.n.mesh.host.NewStream(ctx, p, protoConnections)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if err := json.NewEncoder(s).Encode(connOpRequest{Op: op, ID: id}); err != nil {
		return nil, err
	}
	_ = s.CloseWrite()
	var resp connOpResponse
	if err := json.NewDecoder(io.LimitReader(s, maxConnOpResponse)).Decode(&resp); err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	return resp.Value, nil
}

// connectionMembers is the member list connections are placed on: this
// node and the members it reaches. A node whose connectivity group has no
// leader (it is cut off from the majority) owns nothing, so a partition
// does not run a connection twice for longer than the leader lease.
func (n *Node) connectionMembers() (string, []string) {
	self := n.id.ID
	if n.mesh == nil {
		return self, []string{self}
	}
	if g := n.mesh.group(GroupConnectivity); g != nil {
		if leader, _ := g.Leader(); leader == "" {
			return self, nil
		}
	}
	return self, n.mesh.reachableMembers()
}

// reachableMembers lists this node and the members it is connected to,
// from the membership the mesh loop keeps current.
func (c *cluster) reachableMembers() []string {
	c.mu.Lock()
	peers := make([]peer.ID, 0, len(c.members))
	for p := range c.members {
		peers = append(peers, p)
	}
	c.mu.Unlock()
	live := []string{c.self.String()}
	for _, p := range peers {
		if p != c.self && c.host.Network().Connectedness(p) == network.Connected {
			live = append(live, p.String())
		}
	}
	return live
}

// connDispatcher runs the commands a connection's sources produce as the
// source's subjects: twin commands through the things and policies
// services, live signals through the live router.
type connDispatcher struct{ n *Node }

func (d connDispatcher) Dispatch(ctx context.Context, env ditto.Envelope, auth ditto.Auth) (ditto.Envelope, bool, error) {
	t, err := ditto.ParseTopic(env.Topic)
	if err != nil {
		return ditto.ErrorEnvelope(ditto.Topic{}, env.Headers, dittoError(err)), true, nil
	}
	switch {
	case t.Group == ditto.GroupThings && (t.Channel == ditto.ChannelLive || t.Criterion == ditto.CriterionMessages || t.Criterion == ditto.CriterionAcks):
		if t.Criterion == ditto.CriterionAcks || env.Status != 0 {
			if err := d.n.live.Respond(env, auth); err != nil {
				return ditto.ErrorEnvelope(t, env.Headers, dittoError(err)), true, nil
			}
			return ditto.Envelope{}, false, nil
		}
		resp, has, err := d.n.live.Send(ctx, env, auth)
		if err != nil {
			return ditto.ErrorEnvelope(t, env.Headers, dittoError(err)), true, nil
		}
		return resp, has, nil
	case t.Criterion == ditto.CriterionCommands && (t.Group == ditto.GroupPolicies || t.Channel == ditto.ChannelTwin):
		cmd, err := ditto.CommandFromEnvelope(env)
		if err != nil {
			return ditto.ErrorEnvelope(t, env.Headers, dittoError(err)), true, nil
		}
		cmd.Auth = auth
		if dl, ok := ctx.Deadline(); ok {
			cmd.Timeout = time.Until(dl)
		}
		var res ditto.Result
		if t.Group == ditto.GroupPolicies {
			res, err = d.n.policies.Handle(ctx, cmd)
		} else {
			res, err = d.n.things.Handle(ctx, cmd)
		}
		if err != nil {
			return ditto.ErrorEnvelope(t, cmd.Headers, dittoError(err)), true, nil
		}
		if res.Value == nil && res.Raw != nil {
			res.Value = json.RawMessage(res.Raw)
		}
		return ditto.ResponseEnvelope(cmd, t, res), true, nil
	}
	return ditto.ErrorEnvelope(t, env.Headers, ditto.ErrTopicInvalid.New("The topic '%s' cannot be sent through a connection.", env.Topic)), true, nil
}

// dittoError turns a service failure into the Ditto error a client sees.
func dittoError(err error) *ditto.Error {
	var de *ditto.Error
	switch {
	case errors.As(err, &de):
		return de
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return ditto.ErrCommandTimeout.New("The command did not complete within its timeout.")
	}
	return ditto.ErrInternal.New("The command failed: %v", err)
}

// connViews gives connection targets the gateway's authorized event views.
type connViews struct{ gw *gateway.Server }

func (v connViews) TwinEventView(q url.Values) (connectivity.View, error) {
	ev, err := gateway.ParseEventView(q)
	if err != nil {
		return nil, err
	}
	return func(sig ditto.Signal, auth ditto.Auth) (ditto.Envelope, bool) {
		return v.gw.ViewTwinEvent(sig, auth, ev)
	}, nil
}

func (v connViews) LiveSignalView(q url.Values) (func(ditto.Envelope, ditto.Auth) (ditto.Envelope, bool), error) {
	ev, err := gateway.ParseEventView(q)
	if err != nil {
		return nil, err
	}
	return func(env ditto.Envelope, auth ditto.Auth) (ditto.Envelope, bool) {
		return v.gw.ViewLiveSignal(env, auth, ev)
	}, nil
}

// liveSource subscribes live targets at the node's live router.
type liveSource struct{ n *Node }

func (l liveSource) Subscribe(id string, auth ditto.Auth, kinds, declaredAcks []string, deliver func(ditto.Envelope)) (func(), error) {
	return l.n.live.Subscribe(id, auth, kinds, declaredAcks, deliver)
}

func (l liveSource) Respond(env ditto.Envelope, auth ditto.Auth) error {
	return l.n.live.Respond(env, auth)
}

package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/dittonode/dittonode/consensus"
	"github.com/dittonode/dittonode/ditto"
	"github.com/dittonode/dittonode/mqtt"
	"github.com/dittonode/dittonode/services/connectivity"
	"github.com/dittonode/dittonode/services/gateway"
	"github.com/dittonode/dittonode/services/live"
	"github.com/dittonode/dittonode/services/policies"
	"github.com/dittonode/dittonode/services/search"
	"github.com/dittonode/dittonode/services/things"
)

// Deps are the node's injected collaborators.
type Deps struct {
	Logger *slog.Logger
	Clock  func() time.Time
	// Links injects faults on the mesh links to other nodes (testnet
	// only; nil in production).
	Links LinkFaults
}

// Group names of the stateful services; each is its own Raft group.
const (
	GroupPolicies     = "policies"
	GroupThings       = "things"
	GroupConnectivity = "connectivity"
)

// Node is one running dittonode.
type Node struct {
	cfg  Config
	deps Deps

	id  Identity
	bus *ditto.Bus

	policies     *policies.Service
	things       *things.Service
	connectivity *connectivity.Service
	connRuntime  *connectivity.Runtime // nil until started
	search       *search.Service
	gateway      *gateway.Server
	mesh         *cluster // nil without a cluster secret
	live         *live.Router
	livePeers    *livePeers   // nil without the mesh
	mqtt         *mqtt.Broker // nil when every MQTT listener is off
	embedded     *brokerSlot  // the started broker, for the embedded connection

	groups []*consensus.Group // in start order

	closeOnce sync.Once
	closeErr  error
	started   time.Time
}

// New validates cfg and allocates a node; it starts nothing.
func New(cfg Config, deps Deps) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = DefaultConfig().StartTimeout
	}
	return &Node{cfg: cfg, deps: deps, bus: ditto.NewBus(), embedded: newBrokerSlot()}, nil
}

// Start opens the data directory, starts the Raft groups and services and
// finally the HTTP gateway. On error everything started is closed again.
func (n *Node) Start(ctx context.Context) (err error) {
	n.started = time.Now()
	defer func() {
		if err != nil {
			_ = n.Close()
		}
	}()
	if err := os.MkdirAll(n.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	// ctx bounds start-up only; the node's parts live until Close.
	life := context.WithoutCancel(ctx)
	if n.id, err = loadIdentity(n.cfg.DataDir); err != nil {
		return err
	}
	if n.cfg.NodeName == "" {
		n.cfg.NodeName = n.id.ID[len(n.id.ID)-8:]
	}
	log := n.deps.Logger.With("node", n.cfg.NodeName)
	voters, err := n.startMesh(ctx, log)
	if err != nil {
		return err
	}

	// Services and their groups refer to each other (a service proposes to
	// its group, the group applies to the service's FSM), so the services
	// get a reference that the group fills in.
	policyLog := &groupRef{unavailable: ditto.ErrPolicyUnavailable}
	// A thing is read through its policy, which lives in the policies
	// group: a linearizable thing read also passes the policies group's
	// barrier, or a node that applied a new thing before its policy would
	// answer 404 for a thing created through another node.
	thingLog := &groupRef{unavailable: ditto.ErrThingUnavailable, with: []*groupRef{policyLog}}
	connLog := &groupRef{unavailable: ditto.ErrUnavailable}
	n.policies = policies.New(n.cfg.Policies, policies.Deps{
		Log: policyLog, Bus: n.bus, Clock: n.deps.Clock, Logger: log.With("service", "policies"),
	})
	n.things = things.New(n.cfg.Things, things.Deps{
		Log: thingLog, Policies: n.policies, Bus: n.bus, Clock: n.deps.Clock, Logger: log.With("service", "things"),
	})
	// The live router observes the bus to stamp requested-acks on the twin
	// events of commands that wait for custom acknowledgements.
	// In a cluster, live signals and their answers cross nodes over the
	// mesh (node/live.go).
	liveDeps := live.Deps{Enforcers: n.policies, Things: thingPolicies{n.things}, Logger: log.With("service", "live")}
	if n.mesh != nil {
		n.livePeers = newLivePeers(n.mesh, log)
		liveDeps.Peers = n.livePeers
	}
	n.live = live.New(n.cfg.Live, liveDeps)
	if n.livePeers != nil {
		n.livePeers.start(n.live)
	}
	n.bus.Observe(n.live.TwinEvent)
	n.connectivity = connectivity.New(n.cfg.Connectivity, connectivity.Deps{
		Log: connLog, Clock: n.deps.Clock, Logger: log.With("service", "connectivity"),
	})
	for _, s := range []struct {
		name string
		ref  *groupRef
		fsm  consensus.FSM
	}{
		{GroupPolicies, policyLog, n.policies.FSM()},
		{GroupThings, thingLog, n.things.FSM()},
		{GroupConnectivity, connLog, n.connectivity.FSM()},
	} {
		g, err := n.newGroup(s.name, s.fsm, voters)
		if err != nil {
			return err
		}
		if n.mesh != nil {
			n.mesh.addGroup(s.name, g)
		}
		s.ref.g = g
		n.groups = append(n.groups, g)
		if err := g.Start(life); err != nil {
			return fmt.Errorf("start raft group %s: %w", s.name, err)
		}
	}
	if err := n.policies.Start(life); err != nil {
		return err
	}
	restored := time.Since(n.started)
	n.waitLeaders(ctx)
	log.Info("raft groups replayed", "restore", restored.Round(time.Millisecond).String(),
		"replayed", time.Since(n.started).Round(time.Millisecond).String())
	// The search index starts once the groups replayed their logs, so its
	// build does not compete with the replay. It observes the bus before it
	// reads the applied things, so it never misses a change, and builds in
	// the background: thing reads are served at once, searches wait until
	// the index is complete.
	n.search = search.New(n.cfg.Search, search.Deps{
		Source: thingSource{n.things}, Enforcers: n.policies, Bus: n.bus,
		Clock: n.deps.Clock, Logger: log.With("service", "search"),
	})
	if err := n.search.Start(life); err != nil {
		return fmt.Errorf("start search: %w", err)
	}

	n.gateway = gateway.New(n.cfg.HTTP, gateway.Deps{
		Things:   n.things,
		Policies: n.policies,
		Logger:   log.With("service", "gateway"),
		Health:   n.health,
		Live:     n.live,
		Acks:     n.live,
		Search:   searchAdapter{n.search},
		// Live twins: WebSocket and SSE fan-out of authorized events.
		Bus:            n.bus,
		Enforcers:      n.policies,
		ThingState:     thingJSON{n.things}.lookup,
		SearchProtocol: searchProtocol{n.search},
		Cluster:        clusterView{n},
		Devices:        deviceRegistry{n.connectivity},
	})
	if err := n.startConnections(life, log); err != nil {
		return fmt.Errorf("start connections: %w", err)
	}
	n.gateway.SetConnections(connectivity.NewAPI(n.connectivity, n.connRuntime))
	if err := n.gateway.Start(life); err != nil {
		return err
	}
	if err := n.startMQTT(life); err != nil {
		return err
	}
	log.Info("node started", "id", n.id.ID, "http", n.gateway.Addr().String(), "data", n.cfg.DataDir,
		"startup", time.Since(n.started).Round(time.Millisecond).String())
	return nil
}

// newGroup builds the Raft group name; voters, when not empty, is the
// first configuration this node bootstraps a new cluster with (peer IDs,
// which are also the members' addresses).
func (n *Node) newGroup(name string, fsm consensus.FSM, voters []string) (*consensus.Group, error) {
	c := consensus.DefaultConfig()
	c.Name = name
	c.Dir = filepath.Join(n.cfg.DataDir, "raft", name)
	c.NodeID = n.id.ID
	c.Bootstrap = len(voters) > 0
	if len(voters) > 1 {
		for _, v := range voters {
			c.BootstrapServers = append(c.BootstrapServers, consensus.Server{ID: v, Address: v, Suffrage: "Voter"})
		}
	}
	c.NoSync = n.cfg.Raft.NoSync
	if n.cfg.Raft.SnapshotThreshold > 0 {
		c.SnapshotThreshold = n.cfg.Raft.SnapshotThreshold
	}
	if n.cfg.Raft.SnapshotInterval > 0 {
		c.SnapshotInterval = n.cfg.Raft.SnapshotInterval
	}
	if n.cfg.Raft.TrailingLogs > 0 {
		c.TrailingLogs = n.cfg.Raft.TrailingLogs
	}
	deps := consensus.Deps{Logger: n.deps.Logger.With("node", n.cfg.NodeName)}
	if n.mesh != nil {
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = meshHeartbeat, meshElection, meshLease
		deps.Stream, deps.Forwarder = n.mesh.stream(name), n.mesh.forwarder()
	}
	return consensus.New(c, fsm, deps)
}

// waitLeaders waits, bounded by StartTimeout, until every group has a
// leader and has applied its whole committed log, so that the first
// requests neither meet an election nor see a half-replayed state.
func (n *Node) waitLeaders(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.StartTimeout)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for _, g := range n.groups {
		for {
			if id, _ := g.Leader(); id != "" {
				break
			}
			select {
			case <-ctx.Done():
				n.deps.Logger.Warn("raft group has no leader yet; serving anyway", "group", g.Status().Name)
				return
			case <-t.C:
			}
		}
		// Replay the local log before serving: a read must not find a
		// thing whose policy the policies group has not replayed yet. A
		// follower catches up to the leader's commit index (a restarted
		// follower would otherwise enforce writes against policies it has
		// not applied yet and answer 403).
		if err := g.ReadBarrier(ctx); err != nil {
			n.deps.Logger.Warn("raft group did not catch up before serving", "group", g.Status().Name, "err", err)
		}
	}
}

// groupRef lets a service be built before the Raft group that replicates
// its state machine.
// It also turns the group's availability errors into the Ditto 503 of the
// service.
type groupRef struct {
	g           *consensus.Group
	unavailable ditto.ErrorDef
	// with are the groups whose state this group's reads depend on;
	// ReadBarrier passes their barriers too.
	with []*groupRef
}

func (r *groupRef) Propose(ctx context.Context, cmd []byte) (any, error) {
	res, err := r.g.Propose(ctx, cmd)
	return res, r.translate(err)
}

// ReadBarrier returns once this node applied everything its group, and
// every group in with, committed before the call (consensus.ReadBarrierAll:
// one round trip when one other node leads them all, else concurrent
// barriers). Groups in with have no with of their own.
func (r *groupRef) ReadBarrier(ctx context.Context) error {
	if len(r.with) == 0 {
		return r.translate(r.g.ReadBarrier(ctx))
	}
	gs := make([]*consensus.Group, 0, 1+len(r.with))
	gs = append(gs, r.g)
	for _, w := range r.with {
		gs = append(gs, w.g)
	}
	return r.translate(consensus.ReadBarrierAll(ctx, gs...))
}

func (r *groupRef) translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, consensus.ErrNotLeader), errors.Is(err, consensus.ErrNotApplied), errors.Is(err, consensus.ErrClosed):
		return r.unavailable.New("The %s service has no reachable leader right now (%v).", r.g.Status().Name, err)
	case errors.Is(err, consensus.ErrLeadershipLost):
		return r.unavailable.New("The %s service lost its leader while the command was in flight; it may or may not have been applied. Read the resource before retrying a non-idempotent change.", r.g.Status().Name)
	case errors.Is(err, consensus.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return ditto.ErrCommandTimeout.New("The command did not complete in time.")
	}
	return err
}

func (n *Node) health(ctx context.Context) (map[string]any, bool) {
	ok := true
	groups := map[string]any{}
	for _, g := range n.groups {
		st := g.Status()
		up := st.LeaderID != ""
		ok = ok && up
		groups[st.Name] = map[string]any{"state": st.State, "leader": up, "applied": st.AppliedIndex}
	}
	// The search index builds in the background after a start or a
	// restore; searches wait for it, everything else is served meanwhile.
	search := map[string]any{"ready": n.search != nil && n.search.Ready()}
	h := map[string]any{"node": n.cfg.NodeName, "id": n.id.ID, "groups": groups, "search": search}
	if n.mqtt != nil {
		h["mqtt"] = n.mqtt.Stats()
	}
	return h, ok
}

// HTTPAddr is the address the gateway listens on (useful with port 0).
func (n *Node) HTTPAddr() net.Addr { return n.gateway.Addr() }

// ID is the node's peer ID.
func (n *Node) ID() string { return n.id.ID }

// Bus is the node-local signal bus.
func (n *Node) Bus() *ditto.Bus { return n.bus }

// SlowSubscribers counts the subscribers cut off for falling behind: bus
// subscriptions (SSE streams, search) and WebSocket sessions whose event
// queue overflowed.
func (n *Node) SlowSubscribers() int64 {
	cut := n.bus.Dropped()
	if n.gateway != nil {
		cut += n.gateway.SlowSessions()
	}
	return cut
}

// LiveFramesDropped counts the live-signal frames (signals, answers,
// acknowledgements) that another member could not take in time and that
// were dropped; 0 on a node alone.
func (n *Node) LiveFramesDropped() int64 {
	if n.livePeers == nil {
		return 0
	}
	return n.livePeers.Dropped()
}

// Live is the node's live-signal router (messages, live commands and
// events, acknowledgements).
func (n *Node) Live() *live.Router { return n.live }

// Run starts the node, serves until ctx ends, then shuts down.
func (n *Node) Run(ctx context.Context) error {
	if err := n.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return n.Close()
}

// Close stops the node in reverse start order: ingress first, then the
// services, then the Raft groups. It is idempotent and safe after a failed
// Start.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.connRuntime != nil {
			errs = append(errs, n.connRuntime.Close())
		}
		if n.mqtt != nil {
			errs = append(errs, n.mqtt.Close())
		}
		if n.gateway != nil {
			errs = append(errs, n.gateway.Close())
		}
		if n.search != nil {
			errs = append(errs, n.search.Close())
		}
		if n.policies != nil {
			errs = append(errs, n.policies.Close())
		}
		if n.livePeers != nil {
			n.livePeers.close()
		}
		for i := len(n.groups) - 1; i >= 0; i-- {
			errs = append(errs, n.groups[i].Close())
		}
		if n.mesh != nil {
			errs = append(errs, n.mesh.close())
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

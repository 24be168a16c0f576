package node

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/dittonode/dittonode/mqtt"
	"github.com/dittonode/dittonode/services/connectivity"
	"github.com/dittonode/dittonode/services/gateway"
)

// Where the broker meets the services.
var (
	_ mqtt.Protocol   = (*gateway.Server)(nil)
	_ mqtt.Devices    = (*connectivity.Service)(nil)
	_ gateway.Devices = deviceRegistry{}
)

// startMQTT starts the embedded broker (unless every listener is off)
// once the gateway, whose protocol API it uses, is up.
func (n *Node) startMQTT(ctx context.Context) error {
	if !n.cfg.MQTT.Enabled() {
		return nil
	}
	for _, d := range n.cfg.Devices {
		if _, ok := n.connectivity.DeviceSubjects(d.Username); ok {
			continue
		}
		if _, _, err := n.connectivity.PutDevice(ctx, d.Username, d.Password, d.Subjects); err != nil {
			return fmt.Errorf("create device %s: %w", d.Username, err)
		}
	}
	// The embedded connection exists once the cluster has it; a node that
	// cannot create it now (no leader) leaves it to the connection runtime,
	// which retries.
	if n.hasLeader(GroupConnectivity) {
		ectx, cancel := context.WithTimeout(ctx, embeddedCreateTimeout)
		if err := n.connectivity.EnsureEmbedded(ectx); err != nil {
			n.deps.Logger.Info("the embedded connection is not created yet; retrying in the background", "node", n.cfg.NodeName, logKeyErr, err)
		}
		cancel()
	}
	cfg := n.cfg.MQTT
	cfg.Dir = filepath.Join(n.cfg.DataDir, "mqtt")
	cfg.NoSync = n.cfg.Raft.NoSync
	n.mqtt = mqtt.New(cfg, mqtt.Deps{
		Protocol: n.gateway,
		Devices:  n.connectivity,
		Bus:      n.bus,
		Live:     n.live,
		Embedded: &embeddedConventions{svc: n.connectivity, rev: -1},
		Logger:   n.deps.Logger.With("node", n.cfg.NodeName, "service", "mqtt"),
		Clock:    n.deps.Clock,
	})
	if err := n.mqtt.Start(ctx); err != nil {
		return err
	}
	n.embedded.set(n.mqtt)
	return nil
}

// hasLeader reports whether the Raft group name has a leader now.
func (n *Node) hasLeader(name string) bool {
	for _, g := range n.groups {
		if g.Status().Name == name {
			id, _ := g.Leader()
			return id != ""
		}
	}
	return false
}

// embeddedCreateTimeout bounds the attempt at start-up to create the
// default embedded connection.
const embeddedCreateTimeout = 2 * time.Second

// MQTTAddr is the address of a broker listener (mqtt.ListenerTCP, …), nil
// when it is off.
func (n *Node) MQTTAddr(listener string) string {
	if n.mqtt == nil {
		return ""
	}
	if a := n.mqtt.Addr(listener); a != nil {
		return a.String()
	}
	return ""
}

// deviceRegistry serves the gateway's /api/2/devices from the
// connectivity group.
type deviceRegistry struct{ c *connectivity.Service }

func (d deviceRegistry) PutDevice(ctx context.Context, username, password string, subjects []string) (map[string]any, bool, error) {
	dev, created, err := d.c.PutDevice(ctx, username, password, subjects)
	if err != nil {
		return nil, false, err
	}
	return dev.JSON(), created, nil
}

func (d deviceRegistry) Device(ctx context.Context, username string) (map[string]any, error) {
	dev, err := d.c.Device(ctx, username)
	if err != nil {
		return nil, err
	}
	return dev.JSON(), nil
}

func (d deviceRegistry) Devices(ctx context.Context) ([]map[string]any, error) {
	list, err := d.c.Devices(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, len(list))
	for i, dev := range list {
		out[i] = dev.JSON()
	}
	return out, nil
}

func (d deviceRegistry) DeleteDevice(ctx context.Context, username string) error {
	return d.c.DeleteDevice(ctx, username)
}

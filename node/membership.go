package node

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dittonode/dittonode/consensus"
	"github.com/dittonode/dittonode/ditto"
)

// Membership of the Raft groups: how a joiner is added (voter or
// non-voter), how members leave (on request, automatically after
// RemoveAfter) and how every node notices that a member left.

// departed lists the peers of before that are in none of the group
// configurations of after: they were removed. Only a complete reading of
// every group counts, so a group that failed to answer removes no one.
func departed(before, after map[peer.ID]struct{}) []peer.ID {
	var out []peer.ID
	for p := range before {
		if _, ok := after[p]; !ok {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// departed reacts to a member that left every group: every node forgets a
// removed peer, and a node that sees itself removed stops looking for the
// cluster (its groups keep their data but no longer take part).
func (c *cluster) departed(p peer.ID) {
	if p != c.self {
		c.log.Info("member left the cluster", logKeyPeer, p.String())
		c.forget(p)
		return
	}
	c.mu.Lock()
	already := c.removed
	c.removed = true
	c.mu.Unlock()
	if !already {
		c.log.Warn("this node was removed from the cluster; it serves only local reads of its last state. " +
			"Stop it, and wipe its data directory before it joins again")
	}
}

// Suffrage decisions for a joiner.
const (
	suffrageNone     = iota // already a member
	suffrageVoter           // add as a voter
	suffrageNonvoter        // add as a non-voter
)

// joinSuffrage decides how id joins a group with configuration ss: a voter
// while the group has fewer than maxVoters voters, else a non-voter
// (Raft's quorum round trips grow with every voter; five survive two
// failures). A member is left as it is.
func joinSuffrage(ss []consensus.Server, id string) int {
	voters := 0
	for _, s := range ss {
		if s.ID == id {
			return suffrageNone
		}
		if s.Suffrage == "Voter" {
			voters++
		}
	}
	if voters < maxVoters {
		return suffrageVoter
	}
	return suffrageNonvoter
}

// promotion picks the non-voter to promote when a group has fewer than
// maxVoters voters (after a removal): the lowest peer ID among the
// reachable non-voters, or "" for none.
func promotion(ss []consensus.Server, reachable func(id string) bool) string {
	voters := 0
	var best string
	for _, s := range ss {
		switch s.Suffrage {
		case "Voter":
			voters++
		case "Nonvoter":
			if reachable(s.ID) && (best == "" || s.ID < best) {
				best = s.ID
			}
		}
	}
	if voters >= maxVoters {
		return ""
	}
	return best
}

// promoteVoters, on the leader of each group, turns a reachable non-voter
// into a voter while the group has fewer than maxVoters voters.
func (c *cluster) promoteVoters() {
	c.mu.Lock()
	order := slices.Clone(c.groupOrder)
	servers := c.servers
	c.mu.Unlock()
	reachable := func(id string) bool {
		p, err := peer.Decode(id)
		return err == nil && c.host.Network().Connectedness(p) == network.Connected
	}
	for _, name := range order {
		g := c.group(name)
		id := promotion(servers[name], reachable)
		if id == "" || !g.IsLeader() || !c.due("promote/"+name+"/"+id, memberRetry) {
			continue
		}
		c.log.Info("promoting non-voter to voter", logKeyPeer, id, "group", name)
		ctx, cancel := context.WithTimeout(c.life, membershipWait)
		if err := g.AddVoter(ctx, id, id); err != nil {
			c.log.Debug("promotion failed", logKeyPeer, id, "group", name, logKeyErr, err)
		}
		cancel()
		c.mu.Lock()
		c.refreshedAt = time.Time{}
		c.mu.Unlock()
	}
}

// removeLocal removes p from g on the leader. The peer is forgotten once
// it left every group (refreshMembers), on every node alike.
func (c *cluster) removeLocal(ctx context.Context, g *consensus.Group, p peer.ID) error {
	c.log.Info("removing member", logKeyPeer, p.String(), "group", g.Status().Name)
	c.mu.Lock()
	now := c.now()
	for q, at := range c.leaving {
		if now.Sub(at) >= removedDenyFor {
			delete(c.leaving, q)
		}
	}
	c.leaving[p] = now
	c.mu.Unlock()
	err := g.RemoveServer(ctx, p.String())
	c.mu.Lock()
	c.refreshedAt = time.Time{}
	c.mu.Unlock()
	return err
}

// removedDenyFor is how long a removed member is refused at the
// transport: long enough that an orphan coming back after automatic
// removal does not mingle with the cluster it was removed from.
const removedDenyFor = time.Hour

// removedGrace is how long a removed member's connections stay open: the
// group leaders' last appends to it carry the configuration that removes
// it, and only with that entry does the removed node learn it is out.
// Cut at once, it went on believing it was a voter.
const removedGrace = 3 * time.Second

// forget drops a removed member: not admitted and not dialled at once,
// disconnected and refused after removedGrace. It is no member any more,
// so the stream handlers refuse it meanwhile, and the leaders that removed
// it do not add it again (leaving).
func (c *cluster) forget(p peer.ID) {
	if p == c.self {
		return
	}
	c.mu.Lock()
	delete(c.admitted, p)
	delete(c.goneSince, p)
	delete(c.found, p)
	c.refreshedAt = time.Time{}
	c.mu.Unlock()
	c.book.remove(p.String())
	c.host.ConnManager().Unprotect(p, "dittonode")
	time.AfterFunc(removedGrace, func() {
		c.gater.denyPeer(p, removedDenyFor)
		if c.life.Err() == nil {
			_ = c.host.Network().ClosePeer(p)
		}
	})
}

// autoRemove removes, on the leader of each group, members unreachable for
// longer than RemoveAfter (off when zero). Reachability is tracked per
// member on every node, so a new leader knows how long a member is gone.
func (c *cluster) autoRemove() {
	if c.cfg.RemoveAfter <= 0 {
		return
	}
	now := c.now()
	c.mu.Lock()
	order := slices.Clone(c.groupOrder)
	servers := c.servers
	gone := map[string]time.Duration{}
	for p := range c.members {
		if p == c.self {
			continue
		}
		// Gone since the first sweep that found it unreachable, never
		// since the last that found it connected: a member is removed only
		// after RemoveAfter has surely passed, not up to a sweep earlier.
		if c.host.Network().Connectedness(p) == network.Connected {
			delete(c.goneSince, p)
			continue
		}
		if _, ok := c.goneSince[p]; !ok {
			c.goneSince[p] = now
		}
		if d := now.Sub(c.goneSince[p]); removeDue(d, c.cfg.RemoveAfter) {
			gone[p.String()] = d
		}
	}
	c.mu.Unlock()
	for _, name := range order {
		g := c.group(name)
		if !g.IsLeader() {
			continue
		}
		for _, s := range servers[name] {
			d, ok := gone[s.ID]
			if !ok || !c.due("autoremove/"+name+"/"+s.ID, memberRetry) {
				continue
			}
			p, err := peer.Decode(s.ID)
			if err != nil {
				continue
			}
			c.log.Warn("removing member gone too long", logKeyPeer, s.ID, "group", name,
				"gone", d.Round(time.Second).String(), "removeAfter", c.cfg.RemoveAfter.String())
			ctx, cancel := context.WithTimeout(c.life, membershipWait)
			if err := c.removeLocal(ctx, g, p); err != nil {
				c.log.Warn("automatic removal failed", logKeyPeer, s.ID, "group", name, logKeyErr, err)
			}
			cancel()
		}
	}
}

// removeDue: a member unreachable for gone is removed automatically with
// the setting after (0: never).
func removeDue(gone, after time.Duration) bool { return after > 0 && gone > after }

// removeMember removes the member id from every group through each
// group's leader.
func (c *cluster) removeMember(ctx context.Context, id string) error {
	p, err := peer.Decode(id)
	if err != nil {
		return ditto.ErrResourceNotFound.New("'%s' is not a peer ID.", id)
	}
	if p == c.self {
		return ditto.ErrMethodNotAllowed.New("A node cannot remove itself; ask another member to remove it.")
	}
	c.refreshMembers()
	c.mu.Lock()
	_, member := c.members[p]
	order := slices.Clone(c.groupOrder)
	c.mu.Unlock()
	if !member {
		return ditto.ErrResourceNotFound.New("The node '%s' is not a member of the cluster.", id)
	}
	payload, _ := json.Marshal(memberRequest{ID: id})
	for _, name := range order {
		g := c.group(name)
		if g.IsLeader() {
			err = c.removeLocal(ctx, g, p)
		} else if leader, _ := g.Leader(); leader != "" {
			_, err = c.call(ctx, leader, rpcRequest{op: opRemoveMember, group: name, payload: payload})
		} else {
			err = consensus.ErrNotLeader
		}
		if err != nil {
			return ditto.ErrUnavailable.New("Removing '%s' from group %s failed: %v.", id, name, err)
		}
	}
	// Raft's last append to the removed peer is best effort (one attempt,
	// and the commit of its removal follows later), so it may go on
	// believing it is a voter: say it, while its connection is still open.
	nctx, cancel := context.WithTimeout(ctx, removedGrace)
	if _, err := c.call(nctx, id, rpcRequest{op: opRemoved}); err != nil {
		c.log.Info("could not tell the removed member", logKeyPeer, id, logKeyErr, err)
	}
	cancel()
	c.forget(p)
	c.log.Info("removed member", logKeyPeer, id)
	return nil
}

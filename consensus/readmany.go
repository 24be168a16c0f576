package consensus

import (
	"context"
	"fmt"

	"github.com/hashicorp/raft"
)

// ReadIndexer is what a Forwarder may add to ask one leader for the read
// indexes of several groups in one round trip. A follower's read that
// depends on several groups led by the same node (things and their
// policies, usually) then costs one round trip instead of one per group.
// Implementations share a round between concurrent callers.
type ReadIndexer interface {
	// ReadIndexes returns, for each of groups in order, what its
	// Group.LeaderReadIndex on the node leaderID returned, or an error
	// when any of them failed.
	ReadIndexes(ctx context.Context, leaderID, leaderAddr string, groups []string) ([]Committed, error)
}

// ReadBarrierAll is ReadBarrier for several groups of this node (which
// share one Forwarder): it returns once this node applied, in every group, everything acknowledged in it before the
// call. When one other node leads them all and the groups' Forwarder is a
// ReadIndexer, one round trip fetches every read index; otherwise the
// groups pass their own ReadBarrier concurrently. Each read index is taken
// after the call started, so any order of the groups is linearizable.
func ReadBarrierAll(ctx context.Context, groups ...*Group) error {
	switch len(groups) {
	case 0:
		return nil
	case 1:
		return groups[0].ReadBarrier(ctx)
	}
	if leasedReads(ctx, groups) {
		return nil
	}
	if indexes, ok, err := sharedReadIndexes(ctx, groups); ok {
		if err == nil {
			for i, g := range groups {
				if err := g.WaitApplied(ctx, indexes[i].Index); err != nil {
					return err
				}
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctxError(ctx)
		}
		// A refusal, a leader change or a failed round trip: each group
		// tries on its own, with ReadBarrier's retries.
	}
	errs := make(chan error, len(groups)-1)
	for _, g := range groups[1:] {
		go func() { errs <- g.ReadBarrier(ctx) }()
	}
	err := groups[0].ReadBarrier(ctx)
	for range groups[1:] {
		if gerr := <-errs; err == nil {
			err = gerr
		}
	}
	return err
}

// leasedReads serves ReadBarrierAll without a round and without a
// goroutine per group when this node leads every group under a read lease:
// it reports whether it did (each group then applied its read index).
func leasedReads(ctx context.Context, groups []*Group) bool {
	if ctx.Err() != nil {
		return false
	}
	idx := make([]Committed, 0, 4)
	for _, g := range groups {
		r, err := g.raft()
		if err != nil {
			return false
		}
		c, ok := g.leaseReadIndex(r)
		if !ok {
			return false
		}
		idx = append(idx, c)
	}
	for i, g := range groups {
		if g.WaitApplied(ctx, idx[i].Index) != nil {
			return false // ReadBarrier reports the error, or retries
		}
	}
	return true
}

// sharedReadIndexes runs the single round trip of ReadBarrierAll; ok is
// false when its conditions do not hold (then nothing was sent). A leader
// change seen by any of the groups cancels the round.
func sharedReadIndexes(ctx context.Context, groups []*Group) (indexes []Committed, ok bool, err error) {
	fwd := groups[0].fwd
	ri, isRI := fwd.(ReadIndexer)
	if !isRI {
		return nil, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, remoteReadTimeout)
	defer cancel()
	names := make([]string, len(groups))
	addrs := make([]string, len(groups))
	var leaderID, leaderAddr string
	for i, g := range groups {
		if g.fwd == nil {
			return nil, false, nil
		}
		r, err := g.raft()
		if err != nil || r.State() == raft.Leader {
			return nil, false, nil
		}
		// Register before looking up the leader so no change slips
		// between.
		defer g.leaderSeen.onChange(cancel)()
		id, addr := g.Leader()
		switch {
		case id == "" || id == g.cfg.NodeID:
			return nil, false, nil
		case i == 0:
			leaderID, leaderAddr = id, addr
		case id != leaderID:
			return nil, false, nil
		}
		names[i], addrs[i] = g.cfg.Name, addr
	}
	indexes, err = ri.ReadIndexes(ctx, leaderID, leaderAddr, names)
	if err == nil && len(indexes) != len(groups) {
		err = fmt.Errorf("%d read indexes for %d groups", len(indexes), len(groups))
	}
	if err == nil {
		for i, g := range groups {
			g.learnCommit(leaderID, addrs[i], indexes[i])
		}
	}
	return indexes, true, err
}

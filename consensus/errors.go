package consensus

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

var (
	// ErrNotLeader means the call needs the group leader and this node is
	// not it. Errors returned for it are *NotLeaderError values, which
	// carry the leader as this node knows it.
	ErrNotLeader = errors.New("not the leader")
	// ErrClosed means the group is not running: it was closed, or it was
	// never started.
	ErrClosed = errors.New("consensus group closed")
	// ErrTimeout means the context deadline passed first. For Propose the
	// command may still be applied later.
	ErrTimeout = errors.New("consensus timeout")
	// ErrLeadershipLost means the outcome of a proposed command is
	// unknown: leadership changed while it was in flight, or the leader it
	// was forwarded to failed after receiving it. It may or may not be
	// applied.
	ErrLeadershipLost = errors.New("leadership lost while the command was in flight")
	// ErrNotApplied means the command was not appended to the log and
	// never will be (or the log dropped it deterministically on every
	// node): it has no effect, and retrying is safe. *NotLeaderError
	// values match it too. A transport that could not deliver a forwarded
	// command at all (dial failed) wraps it.
	ErrNotApplied = errors.New("command not applied")
	// ErrMalformed means a forwarded command or read request was not
	// produced by a Group (bad header). Nothing was appended; a retry
	// fails the same way.
	ErrMalformed = errors.New("malformed forwarded command")
)

// NotLeaderError is ErrNotLeader with the leader this node knows of; both
// fields are empty when it knows none. errors.Is(err, ErrNotLeader) holds.
type NotLeaderError struct {
	LeaderID   string
	LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" && e.LeaderAddr == "" {
		return ErrNotLeader.Error() + ": leader unknown"
	}
	return fmt.Sprintf("%s: leader is %s at %s", ErrNotLeader, e.LeaderID, e.LeaderAddr)
}

// Is makes errors.Is(err, ErrNotLeader) and errors.Is(err, ErrNotApplied)
// true: a node that is not the leader appends nothing.
func (e *NotLeaderError) Is(target error) bool {
	return target == ErrNotLeader || target == ErrNotApplied
}

// ctxError turns a finished context into the error the caller receives.
func ctxError(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}

// notLeader describes the current leader of r.
func notLeader(r *raft.Raft) error {
	addr, id := r.LeaderWithID()
	return &NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
}

// raftError maps an error of a raft future to this package's errors.
func raftError(r *raft.Raft, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return notLeader(r)
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrLeadershipLost
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return ErrTimeout
	default:
		return fmt.Errorf("raft: %w", err)
	}
}

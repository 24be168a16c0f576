package consensus

import (
	"context"
	"errors"
)

// Error codes carry this package's errors across a node's RPC layer: the
// serving side sends ErrorCode(err) and err.Error(), the calling side
// rebuilds the error with ErrorFromCode, and errors.Is then answers as it
// would for the original. The leader hint of a *NotLeaderError is not
// carried: the caller learns the new leader from its own raft instance.
const (
	CodeNotLeader      = "not-leader"      // ErrNotLeader: nothing appended
	CodeNotApplied     = "not-applied"     // ErrNotApplied: nothing appended
	CodeMalformed      = "malformed"       // ErrMalformed: nothing appended, do not retry
	CodeLeadershipLost = "leadership-lost" // ErrLeadershipLost: outcome unknown
	CodeTimeout        = "timeout"         // ErrTimeout: outcome unknown
	CodeCanceled       = "canceled"        // context.Canceled: outcome unknown
	CodeClosed         = "closed"          // ErrClosed: the serving group is not running
	CodeInternal       = "internal"        // anything else: outcome unknown
)

// ErrorCode returns the code for err: "" for nil, CodeInternal for an error
// this package does not define.
func ErrorCode(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrNotLeader):
		return CodeNotLeader
	case errors.Is(err, ErrNotApplied):
		return CodeNotApplied
	case errors.Is(err, ErrMalformed):
		return CodeMalformed
	case errors.Is(err, ErrLeadershipLost):
		return CodeLeadershipLost
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return CodeTimeout
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	case errors.Is(err, ErrClosed):
		return CodeClosed
	default:
		return CodeInternal
	}
}

// ErrorFromCode rebuilds an error sent as code and message: nil for "",
// otherwise a *RemoteError that matches (errors.Is) the sentinels of its
// code. An unknown code matches none of them.
func ErrorFromCode(code, msg string) error {
	if code == "" {
		return nil
	}
	return &RemoteError{Code: code, Msg: msg}
}

// RemoteError is an error a peer's Group returned, rebuilt from its code.
type RemoteError struct {
	Code string
	Msg  string
}

func (e *RemoteError) Error() string {
	if e.Msg == "" {
		return "remote: " + e.Code
	}
	return "remote: " + e.Msg
}

// Is matches the sentinels of e's code.
func (e *RemoteError) Is(target error) bool {
	switch e.Code {
	case CodeNotLeader:
		return target == ErrNotLeader || target == ErrNotApplied
	case CodeNotApplied:
		return target == ErrNotApplied
	case CodeMalformed:
		return target == ErrMalformed
	case CodeLeadershipLost:
		return target == ErrLeadershipLost
	case CodeTimeout:
		return target == ErrTimeout
	case CodeCanceled:
		return target == context.Canceled
	case CodeClosed:
		return target == ErrClosed
	}
	return false
}

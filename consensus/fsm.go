package consensus

import "io"

// FSM is the replicated state machine of one group. Apply runs on every node
// for every committed command, in log order, on one goroutine. It must be
// deterministic: no clock, randomness, I/O, goroutines or map-order output.
type FSM interface {
	// Apply applies the command committed at index and returns its result,
	// which the proposer receives from Propose. index is unique and grows
	// with every command: the raft index of its entry times 1024 plus the
	// command's place in the entry (entries may pack several commands).
	Apply(index uint64, cmd []byte) any
	// Snapshot captures the current state cheaply; the capture is written
	// out later, concurrently with further Applies.
	Snapshot() (Snapshot, error)
	// Restore replaces the whole state with the snapshot read from r.
	Restore(r io.Reader) error
}

// BatchFSM is an FSM that applies several committed commands at once; a
// group uses ApplyBatch when the FSM implements it. The result slice has one
// entry per command.
type BatchFSM interface {
	FSM
	ApplyBatch(cmds []Command) []any
}

// Command is one committed command and its index (see FSM.Apply).
type Command struct {
	Index uint64
	Data  []byte
}

// Snapshot is a point-in-time capture of an FSM.
type Snapshot interface {
	// Persist writes the capture to w.
	Persist(w io.Writer) error
	// Release frees the capture.
	Release()
}

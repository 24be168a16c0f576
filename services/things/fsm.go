package things

import (
	"errors"
	"fmt"
	"io"
	"maps"

	"github.com/dittonode/dittonode/consensus"
	"github.com/dittonode/dittonode/ditto"
)

// fsm is the Service's state machine as the consensus group sees it.
type fsm struct{ s *Service }

var _ consensus.BatchFSM = fsm{}

// Apply applies one committed entry. The result is a ditto.Result or a
// *ditto.Error (a validation or precondition failure); nil for an ignored
// entry.
func (f fsm) Apply(index uint64, cmd []byte) any {
	e, err := decodeEntry(cmd)
	if errors.Is(err, errIgnored) {
		return nil
	}
	if err != nil {
		panic(fmt.Sprintf("things: undecodable log entry at index %d: %v", index, err))
	}
	s := f.s
	s.mu.Lock()
	out, sig := s.applyLocked(index, e)
	s.mu.Unlock()
	if sig != nil {
		s.publish(sig)
	}
	return out
}

// ApplyBatch applies committed commands in chunks of applyChunk, each
// under one lock, and publishes each chunk's events after it, in order. A
// follower catching up gets thousands of commands at once (entries pack
// many); chunks keep readers from waiting for all of them.
func (f fsm) ApplyBatch(cmds []consensus.Command) []any {
	out := make([]any, len(cmds))
	for i := 0; i < len(cmds); i += applyChunk {
		j := min(i+applyChunk, len(cmds))
		f.applyChunk(cmds[i:j], out[i:j])
	}
	return out
}

// applyChunk is the most commands applied under one lock.
const applyChunk = 256

func (f fsm) applyChunk(cmds []consensus.Command, out []any) {
	entries := make([]*entry, len(cmds))
	for i, c := range cmds {
		e, err := decodeEntry(c.Data)
		if err != nil && !errors.Is(err, errIgnored) {
			panic(fmt.Sprintf("things: undecodable log entry at index %d: %v", c.Index, err))
		}
		entries[i] = e
	}
	sigs := make([]*ditto.Signal, 0, len(cmds))
	s := f.s
	s.mu.Lock()
	for i, e := range entries {
		if e == nil {
			continue
		}
		var sig *ditto.Signal
		out[i], sig = s.applyLocked(cmds[i].Index, e)
		if sig != nil {
			sigs = append(sigs, sig)
		}
	}
	s.mu.Unlock()
	for _, sig := range sigs {
		s.publish(sig)
	}
}

// Snapshot captures the current records: a copy of the map of pointers to
// immutable records.
func (f fsm) Snapshot() (consensus.Snapshot, error) {
	s := f.s
	s.mu.RLock()
	recs := make([]*Record, 0, len(s.things))
	for _, r := range s.things {
		recs = append(recs, r)
	}
	s.mu.RUnlock()
	return &snapshot{recs: recs}, nil
}

// Restore replaces the whole state with a snapshot.
func (f fsm) Restore(r io.Reader) error {
	things, err := readRecords(r)
	if err != nil {
		return fmt.Errorf("restore things: %w", err)
	}
	s := f.s
	s.mu.Lock()
	s.things = things
	s.mu.Unlock()
	s.logger.Info("things restored from snapshot", logKeyCount, len(things))
	s.publish(&ditto.Signal{Envelope: ditto.Envelope{Topic: ditto.RestoredTopic, Headers: ditto.Headers{}, Path: "/"}})
	return nil
}

type snapshot struct{ recs []*Record }

func (s *snapshot) Persist(w io.Writer) error { return writeRecords(w, s.recs) }
func (s *snapshot) Release()                  { s.recs = nil }

// cloneState returns a copy of the state map (tests).
func (s *Service) cloneState() map[string]*Record {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.things)
}

package testnet

import (
	"fmt"
	"math"
	"sync"

	"github.com/anishathalye/porcupine"
)

// The register-with-revision model: each key (a thing) holds a value
// (attribute v) and the thing's revision. A write sets the value and
// increments the revision; a conditional write (If-Match: "rev:N") does so
// only when the revision is N and fails with 412 otherwise; a read returns
// both. Revisions make lost or duplicated writes visible even when two
// writes store equal values (they never do: every written value is
// unique).

type opKind int

const (
	opRead opKind = iota
	opWrite
	opCAS
)

func (k opKind) String() string {
	return [...]string{"read", "write", "cas"}[k]
}

type regInput struct {
	Key    int
	Kind   opKind
	Value  int64 // written value
	Expect int64 // expected revision of a conditional write
	Node   int   // the node the client asked (for reports)
}

type regOutput struct {
	Value int64
	Rev   int64
	// OK is false for a conditional write answered 412.
	OK bool
	// Unknown: the write failed or timed out; it may or may not have
	// been applied (porcupine: return time is infinity, and the model
	// accepts it either way).
	Unknown bool
}

type regState struct{ Value, Rev int64 }

// unknownReturn is the return time of an operation with an unknown
// outcome: it may take effect at any time after its call.
const unknownReturn = math.MaxInt64

func registerModel(initial regState) porcupine.Model {
	return porcupine.Model{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[int][]porcupine.Operation{}
			var keys []int
			for _, op := range h {
				k := op.Input.(regInput).Key
				if _, ok := byKey[k]; !ok {
					keys = append(keys, k)
				}
				byKey[k] = append(byKey[k], op)
			}
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, byKey[k])
			}
			return out
		},
		Init: func() any { return initial },
		Step: func(state, input, output any) (bool, any) {
			s, in, out := state.(regState), input.(regInput), output.(regOutput)
			next := regState{Value: in.Value, Rev: s.Rev + 1}
			switch in.Kind {
			case opRead:
				return out.Value == s.Value && out.Rev == s.Rev, s
			case opWrite:
				if out.Unknown {
					return true, next
				}
				return out.Rev == next.Rev, next
			default: // opCAS
				match := s.Rev == in.Expect
				switch {
				case out.Unknown && match:
					return true, next
				case out.Unknown:
					return true, s
				case !out.OK:
					return !match, s
				}
				return match && out.Rev == next.Rev, next
			}
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(regInput), output.(regOutput)
			switch {
			case in.Kind == opRead:
				return fmt.Sprintf("n%d read k%d -> %d@%d", in.Node, in.Key, out.Value, out.Rev)
			case out.Unknown:
				return fmt.Sprintf("n%d %s k%d %d (if rev %d) -> unknown", in.Node, in.Kind, in.Key, in.Value, in.Expect)
			case !out.OK:
				return fmt.Sprintf("n%d cas k%d %d if rev %d -> 412", in.Node, in.Key, in.Value, in.Expect)
			}
			return fmt.Sprintf("n%d %s k%d %d (if rev %d) -> rev %d", in.Node, in.Kind, in.Key, in.Value, in.Expect, out.Rev)
		},
		DescribeState: func(state any) string {
			s := state.(regState)
			return fmt.Sprintf("%d@%d", s.Value, s.Rev)
		},
	}
}

// history collects operations from concurrent clients.
type history struct {
	mu  sync.Mutex
	ops []porcupine.Operation
}

func (h *history) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

func (h *history) all() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

// applyKey is one revision of one key.
type applyKey struct {
	key int
	rev int64
}

// applied records, from every node's signal bus and over every
// incarnation, which value each revision of each key was applied with:
// the history of the replicated state. Replicas that apply different
// values at one revision are a safety violation.
type applied struct {
	mu        sync.Mutex
	values    map[applyKey]int64
	byValue   map[int64]applyKey // written values are unique (except the initial 0)
	conflicts []string
}

func newApplied() *applied {
	return &applied{values: map[applyKey]int64{}, byValue: map[int64]applyKey{}}
}

func (a *applied) record(node, key int, rev, value int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := applyKey{key, rev}
	if v, ok := a.values[k]; ok && v != value {
		if len(a.conflicts) < 20 {
			a.conflicts = append(a.conflicts, fmt.Sprintf("k%d rev %d applied as %d and as %d (node %d)", key, rev, v, value, node))
		}
		return
	}
	a.values[k] = value
	if prev, ok := a.byValue[value]; ok && prev != k && value != 0 && len(a.conflicts) < 20 {
		a.conflicts = append(a.conflicts, fmt.Sprintf("value %d applied twice: k%d rev %d and k%d rev %d (node %d)",
			value, prev.key, prev.rev, key, rev, node))
	}
	a.byValue[value] = k
}

// where reports the key and revision value was applied at.
func (a *applied) where(value int64) (applyKey, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k, ok := a.byValue[value]
	return k, ok
}

// resolve settles the unknown outcomes of a history from the applied log
// (every entry any replica applied was published on its bus once the
// cluster converged): a write whose value was applied took effect at that
// revision (its return time stays unknown); a write whose value no replica
// ever applied had no effect and is left out. This is exact because every
// written value is unique, and it keeps porcupine's search small.
func (a *applied) resolve(ops []porcupine.Operation) (out []porcupine.Operation, applied, dropped int, errs []string) {
	for _, op := range ops {
		in, o := op.Input.(regInput), op.Output.(regOutput)
		if in.Kind == opRead || !o.Unknown {
			out = append(out, op)
			continue
		}
		at, ok := a.where(in.Value)
		switch {
		case !ok:
			dropped++
			continue
		case at.key != in.Key:
			errs = append(errs, fmt.Sprintf("value %d written to k%d was applied to k%d", in.Value, in.Key, at.key))
		}
		applied++
		op.Output = regOutput{Rev: at.rev, OK: true}
		out = append(out, op)
	}
	return out, applied, dropped, errs
}

func (a *applied) lookup(key int, rev int64) (int64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v, ok := a.values[applyKey{key, rev}]
	return v, ok
}

func (a *applied) divergences() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.conflicts...)
}

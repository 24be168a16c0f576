package consensus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// The leader packs concurrent proposals into one log entry. Every entry
// costs raft and the log store work of its own (encoding, a cache slot, a
// future, an append request slot), and the disk's fsyncs are shared by
// whatever one log write holds. A packer therefore keeps at most
// Config.PackDepth entries of its own in flight (appended, not yet applied);
// proposals arriving meanwhile wait and go out together in the next entry.
// With nothing in flight a proposal goes out at once, so a lone client pays
// no delay; under load the entries grow with the load instead of the log
// writes multiplying.
//
// A packed entry is marked by packExtensions in raft.Log.Extensions; its
// Data holds the commands, each with the forwarding header it came with
// (dedup.go; empty for the leader's own proposals):
//
//	count uvarint | count × (len(hdr) uvarint | hdr | len(cmd) uvarint | cmd)
//
// An entry of a single proposal is written as before packing: the command
// as Data, its header as Extensions.
//
// Every command's FSM index is its entry's raft index times packSlots plus
// its place in the entry (0 for an unpacked entry), so the indexes the FSM
// sees stay unique and increasing (signals carry them, SSE resumes by
// them).
const (
	packTag   byte = 2
	packShift      = 10
	packSlots      = 1 << packShift
	// maxPackCommands and maxPackBytes bound one packed entry (a
	// single command may be larger). Raft bounds its append requests by
	// entries (MaxAppendEntries), not bytes, so the bytes of an entry
	// multiply into every request a lagging follower needs.
	maxPackCommands = 256
	maxPackBytes    = 64 << 10
	// packQueue is how many proposals may wait for the packer before
	// proposers block (bounded by their context).
	packQueue = 4096
	// packEnqueueTimeout bounds the packer's hand-over to raft, whose
	// apply channel has room for every entry the packer keeps in flight.
	packEnqueueTimeout = 10 * time.Second
)

var packExtensions = []byte{packTag}

func isPacked(ext []byte) bool { return len(ext) == 1 && ext[0] == packTag }

// fsmIndex is the index the FSM sees for the command at pos in the entry
// at raft index idx.
func fsmIndex(idx uint64, pos int) uint64 { return idx<<packShift | uint64(pos) }

// packResult is the FSM's answer to a packed entry: one result per command,
// in order (nil for a command dropped as a duplicate).
type packResult []any

// packItem is one proposal waiting in the packer.
type packItem struct {
	ctx      context.Context
	hdr, cmd []byte

	done      chan struct{} // closed once the fields below are set
	res       any
	err       error // raft's error, unmapped
	committed Committed
	notLeader error // the leader as known when raft refused, for err
}

// packer is a group's leader-side proposal queue; loop runs it.
type packer struct {
	in     chan *packItem
	freed  chan struct{} // one per finished entry; room for depth
	depth  int
	writes writeCount
}

func (p *packer) init(depth int) {
	p.in = make(chan *packItem, packQueue)
	p.freed = make(chan struct{}, depth)
	p.depth = depth
	p.writes.signal = make(chan struct{}, 1)
}

// writeCount counts the log store's writes, started and finished, and
// signals each finished one.
type writeCount struct {
	started, done atomic.Uint64
	signal        chan struct{}
}

func (w *writeCount) finish() {
	w.done.Add(1)
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// packPropose appends cmd (with forwarding header hdr, or none) through this
// node's raft and waits until the entry is applied here. The error is
// raft's own (unmapped) or a context / ErrClosed error.
func (g *Group) packPropose(ctx context.Context, hdr, cmd []byte) (*packItem, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotApplied, ctxError(ctx))
	}
	it := &packItem{ctx: ctx, hdr: hdr, cmd: cmd, done: make(chan struct{})}
	select {
	case g.pack.in <- it:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrNotApplied, ctxError(ctx))
	case <-g.done:
		return nil, ErrClosed
	}
	select {
	case <-it.done:
		return it, nil
	case <-ctx.Done():
		return nil, ctxError(ctx)
	case <-g.done:
		return nil, ErrClosed
	}
}

// packLoop owns the packer. It appends the proposals waiting as one entry
// once the entry before it is written to this node's log and fewer than
// depth entries are in flight (appended, not applied): what arrives while
// the log writes one entry goes into the next, and the next write can
// overlap with applying the entries before it.
func (g *Group) packLoop(r *raft.Raft) {
	defer g.wg.Done()
	p := &g.pack
	var pending []*packItem
	inflight := 0
	var unwritten uint64 // the write that takes the last entry appended, or 0
	for {
		if unwritten != 0 && p.writes.done.Load() >= unwritten {
			unwritten = 0
		}
		if len(pending) > 0 && inflight < p.depth && unwritten == 0 {
			// The first write raft starts from now on takes the entry
			// (or one just before it does; then the next entry goes a
			// write early, which costs batching, not correctness).
			next := p.writes.started.Load() + 1
			var appended bool
			if pending, appended = g.appendPack(r, pending); appended {
				inflight++
				unwritten = next
			}
			continue
		}
		in := p.in
		if len(pending) >= maxPackCommands {
			in = nil
		}
		select {
		case it := <-in:
			pending = append(pending, it)
			// Take whatever else is queued now.
			for len(pending) < maxPackCommands {
				select {
				case it := <-p.in:
					pending = append(pending, it)
					continue
				default:
				}
				break
			}
		case <-p.freed:
			inflight--
			if inflight == 0 {
				unwritten = 0 // failed before its write, or written
			}
		case <-p.writes.signal:
		case <-g.done:
			for _, it := range pending {
				it.err = raft.ErrRaftShutdown
				close(it.done)
			}
			// Proposers still queued in p.in see g.done themselves.
			return
		}
	}
}

// appendPack appends the first pending proposals as one entry and starts
// its waiter; it returns the proposals left for the next entry, and false
// when none was left to append.
func (g *Group) appendPack(r *raft.Raft, pending []*packItem) ([]*packItem, bool) {
	// Drop proposals whose callers gave up before they were appended:
	// they were told the outcome is unknown, and not applying is one.
	live := pending[:0]
	for _, it := range pending {
		if it.ctx.Err() != nil {
			it.err = raft.ErrEnqueueTimeout
			close(it.done)
			continue
		}
		live = append(live, it)
	}
	clear(pending[len(live):])
	pending = live
	if len(pending) == 0 {
		return nil, false
	}
	n, size := 0, 0
	for n < len(pending) && n < maxPackCommands {
		s := len(pending[n].hdr) + len(pending[n].cmd) + 2*binary.MaxVarintLen32
		if n > 0 && size+s > maxPackBytes {
			break
		}
		size += s
		n++
	}
	// The waiter gets its own slice: the rest of pending keeps the
	// backing array, which must not keep answered proposals alive.
	items := slices.Clone(pending[:n])
	clear(pending[:n])
	var l raft.Log
	if n == 1 {
		l = raft.Log{Data: items[0].cmd, Extensions: items[0].hdr}
	} else {
		data := make([]byte, 0, size+binary.MaxVarintLen32)
		data = binary.AppendUvarint(data, uint64(n))
		for _, it := range items {
			data = binary.AppendUvarint(data, uint64(len(it.hdr)))
			data = append(data, it.hdr...)
			data = binary.AppendUvarint(data, uint64(len(it.cmd)))
			data = append(data, it.cmd...)
		}
		l = raft.Log{Data: data, Extensions: packExtensions}
	}
	g.stats.packed(n)
	// A leader appends in its own term; if the term is unchanged once the
	// entry applied, the entry has it.
	term := r.CurrentTerm()
	f := r.ApplyLog(l, packEnqueueTimeout)
	g.wg.Add(1)
	go g.awaitPack(r, f, term, items)
	if n == len(pending) {
		return nil, true
	}
	return pending[n:], true
}

// awaitPack hands the outcome of one appended entry to its proposers.
func (g *Group) awaitPack(r *raft.Raft, f raft.ApplyFuture, term uint64, items []*packItem) {
	defer g.wg.Done()
	// As in await: raft answers every future except one it drops while
	// shutting down; that helper stays blocked, this waiter does not.
	ch := make(chan error, 1)
	go func() { ch <- f.Error() }()
	var err error
	select {
	case err = <-ch:
	case <-g.done:
		err = raft.ErrRaftShutdown
	}
	var c Committed
	var nl error
	var results packResult
	switch {
	case err == nil:
		if r.CurrentTerm() == term {
			c = Committed{Index: f.Index(), Term: term}
		}
		if len(items) == 1 {
			results = packResult{f.Response()}
		} else if pr, ok := f.Response().(packResult); ok && len(pr) == len(items) {
			results = pr
		} else {
			err = fmt.Errorf("%w: packed entry answered %T", ErrLeadershipLost, f.Response())
		}
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		nl = notLeader(r)
	}
	for i, it := range items {
		it.err, it.committed, it.notLeader = err, c, nl
		if results != nil {
			it.res = results[i]
		}
		close(it.done)
	}
	g.pack.freed <- struct{}{}
}

// packedCommands calls fn for every command of a packed entry's data, with
// its place; it reports false when data is not a well-formed packed entry.
func packedCommands(data []byte, fn func(pos int, hdr, cmd []byte)) bool {
	n, k := binary.Uvarint(data)
	if k <= 0 || n == 0 || n >= packSlots {
		return false
	}
	data = data[k:]
	next := func() ([]byte, bool) {
		l, k := binary.Uvarint(data)
		if k <= 0 || l > uint64(len(data)-k) {
			return nil, false
		}
		b := data[k : k+int(l)]
		data = data[k+int(l):]
		return b, true
	}
	for pos := range int(n) {
		hdr, ok := next()
		if !ok {
			return false
		}
		cmd, ok := next()
		if !ok {
			return false
		}
		if fn != nil {
			fn(pos, hdr, cmd)
		}
	}
	return len(data) == 0
}

// packedCount is the number of commands in a packed entry (0 if malformed).
func packedCount(data []byte) int {
	n, k := binary.Uvarint(data)
	if k <= 0 || n >= packSlots {
		return 0
	}
	return int(n)
}

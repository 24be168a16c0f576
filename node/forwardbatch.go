package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dittonode/dittonode/consensus"
)

// Forwarded proposals travel in batches. A follower's concurrent proposals
// to one group leader queue in a forwardQueue; up to maxBatchSenders
// requests per leader and group are in flight, and each takes everything
// queued when it starts (up to maxBatchCommands, maxBatchBytes): one
// stream and one round trip for many commands, without waiting to fill a
// batch. The leader appends the commands of a batch concurrently, so raft
// writes them in one append, and answers once each is applied or failed.
//
//	opForwardBatch payload:  count uvarint | count × (timeout-ms uvarint | len uvarint | command)
//
// A command's timeout is what its caller has left, at most
// rpcDefaultTimeout.
//	response message:        count uvarint | count × (code-len uvarint | code | msg-len uvarint | msg | index uvarint | term uvarint)
//
// index and term name a command's committed entry (consensus.Committed,
// zero when unknown or failed): the follower learns the commit from them.
// The response's own code is set only when the whole batch failed (an
// unknown group); then it is every command's error.

const (
	maxBatchSenders  = 4
	maxBatchCommands = 256
	maxBatchBytes    = 4 << 20
)

// fwdKey identifies a forward queue.
type fwdKey struct{ leader, group string }

// forwardQueue returns the queue of forwards to leader for group.
func (c *cluster) forwardQueue(leader, group string) *fwdQueue {
	c.fwdMu.Lock()
	defer c.fwdMu.Unlock()
	k := fwdKey{leader, group}
	q := c.fwdQueues[k]
	if q == nil {
		if c.fwdQueues == nil {
			c.fwdQueues = map[fwdKey]*fwdQueue{}
		}
		q = &fwdQueue{c: c, key: k}
		c.fwdQueues[k] = q
	}
	return q
}

// fwdQueue batches the forwards to one leader and group. A queue whose
// leader is gone stays empty (and its senders exit); there is one per
// leader and group this node ever forwarded to.
type fwdQueue struct {
	c   *cluster
	key fwdKey

	mu      sync.Mutex
	waiting []*fwdCall
	senders int

	// Counters for ForwardStats.
	batches, commands, rttNanos atomic.Uint64
}

// ForwardStats counts a node's forwarded proposals to one group's
// leaders: requests (batches) sent, the commands they carried, and the
// time from sending a request to its answer, summed over requests.
type ForwardStats struct {
	Batches   uint64        `json:"batches"`
	Commands  uint64        `json:"commands"`
	RoundTrip time.Duration `json:"roundTripTime"`
}

// forwardStats sums the counters of every queue of group.
func (c *cluster) forwardStats(group string) ForwardStats {
	c.fwdMu.Lock()
	defer c.fwdMu.Unlock()
	var st ForwardStats
	for k, q := range c.fwdQueues {
		if k.group == group {
			st.Batches += q.batches.Load()
			st.Commands += q.commands.Load()
			st.RoundTrip += time.Duration(q.rttNanos.Load())
		}
	}
	return st
}

// fwdCall is one queued command and, once done is closed, its outcome.
type fwdCall struct {
	cmd      []byte
	deadline time.Time // zero: none
	done     chan struct{}
	err      error
	entry    consensus.Committed
}

// forward queues cmd and waits for the leader's answer or ctx.
func (q *fwdQueue) forward(ctx context.Context, cmd []byte) (consensus.Committed, error) {
	call := &fwdCall{cmd: cmd, done: make(chan struct{})}
	call.deadline, _ = ctx.Deadline()
	q.mu.Lock()
	q.waiting = append(q.waiting, call)
	start := q.senders < maxBatchSenders
	if start {
		q.senders++
		q.c.wg.Add(1)
	}
	q.mu.Unlock()
	if start {
		go q.send()
	}
	select {
	case <-call.done:
		return call.entry, call.err
	case <-ctx.Done():
		// The command may still be sent and applied: an unknown outcome,
		// which the caller reports from ctx.
		return consensus.Committed{}, ctx.Err()
	}
}

// send runs batches until the queue is empty.
func (q *fwdQueue) send() {
	defer q.c.wg.Done()
	for {
		q.mu.Lock()
		batch := q.take()
		if len(batch) == 0 {
			q.senders--
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		q.sendBatch(batch)
	}
}

// take removes the next batch from the queue; q.mu is held.
func (q *fwdQueue) take() []*fwdCall {
	n, size := 0, 0
	for n < len(q.waiting) && n < maxBatchCommands {
		size += len(q.waiting[n].cmd)
		if n > 0 && size > maxBatchBytes {
			break
		}
		n++
	}
	batch := q.waiting[:n:n]
	q.waiting = q.waiting[n:]
	if len(q.waiting) == 0 {
		q.waiting = nil // release the backing array
	}
	return batch
}

func (q *fwdQueue) sendBatch(batch []*fwdCall) {
	now := time.Now()
	var last time.Time
	live := batch[:0:0]
	for _, call := range batch {
		if !call.deadline.IsZero() && !call.deadline.After(now) {
			// Its caller gave up before anything was sent.
			call.finish(fmt.Errorf("%w: %w", consensus.ErrNotApplied, consensus.ErrTimeout))
			continue
		}
		if call.deadline.IsZero() {
			last = now.Add(rpcDefaultTimeout)
		} else if call.deadline.After(last) {
			last = call.deadline
		}
		live = append(live, call)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithDeadline(q.c.life, last)
	defer cancel()
	payload := encodeForwardBatch(live, now)
	q.batches.Add(1)
	q.commands.Add(uint64(len(live)))
	_, code, msg, err := q.c.roundTrip(ctx, q.key.leader, rpcRequest{op: opForwardBatch, group: q.key.group, payload: payload})
	q.rttNanos.Add(uint64(time.Since(now)))
	if err == nil && code != "" {
		err = consensus.ErrorFromCode(code, msg)
	}
	if err != nil {
		for _, call := range live {
			call.finish(err)
		}
		return
	}
	results, derr := decodeForwardResults(msg, len(live))
	for i, call := range live {
		switch {
		case derr != nil:
			call.finish(fmt.Errorf("forward batch response from %s: %w", q.key.leader, derr))
		default:
			call.entry = results[i].entry
			call.finish(results[i].err)
		}
	}
}

func (c *fwdCall) finish(err error) {
	c.err = err
	close(c.done)
}

func encodeForwardBatch(calls []*fwdCall, now time.Time) []byte {
	size := binary.MaxVarintLen64
	for _, call := range calls {
		size += 2*binary.MaxVarintLen64 + len(call.cmd)
	}
	b := make([]byte, 0, size)
	b = binary.AppendUvarint(b, uint64(len(calls)))
	for _, call := range calls {
		timeout := rpcDefaultTimeout
		if !call.deadline.IsZero() {
			timeout = min(max(call.deadline.Sub(now), time.Millisecond), rpcDefaultTimeout)
		}
		b = binary.AppendUvarint(b, uint64(timeout/time.Millisecond))
		b = binary.AppendUvarint(b, uint64(len(call.cmd)))
		b = append(b, call.cmd...)
	}
	return b
}

// forwardedCmd is one command of a received batch.
type forwardedCmd struct {
	timeout time.Duration
	cmd     []byte
}

var errBadBatch = errors.New("malformed forward batch")

func decodeForwardBatch(b []byte) ([]forwardedCmd, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > maxBatchCommands {
		return nil, errBadBatch
	}
	b = b[k:]
	out := make([]forwardedCmd, 0, n)
	for range n {
		ms, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, errBadBatch
		}
		ms = min(ms, uint64(rpcDefaultTimeout/time.Millisecond))
		b = b[k:]
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, errBadBatch
		}
		b = b[k:]
		out = append(out, forwardedCmd{timeout: max(time.Duration(ms)*time.Millisecond, time.Millisecond), cmd: b[:l:l]})
		b = b[l:]
	}
	if len(b) != 0 {
		return nil, errBadBatch
	}
	return out, nil
}

// forwardResult is the outcome of one command of a batch.
type forwardResult struct {
	err   error
	entry consensus.Committed
}

func encodeForwardResults(results []forwardResult) []byte {
	b := binary.AppendUvarint(nil, uint64(len(results)))
	for _, r := range results {
		var code, msg string
		if r.err != nil {
			code, msg = consensus.ErrorCode(r.err), r.err.Error()
		}
		b = binary.AppendUvarint(b, uint64(len(code)))
		b = append(b, code...)
		b = binary.AppendUvarint(b, uint64(len(msg)))
		b = append(b, msg...)
		b = binary.AppendUvarint(b, r.entry.Index)
		b = binary.AppendUvarint(b, r.entry.Term)
	}
	return b
}

func decodeForwardResults(s string, want int) ([]forwardResult, error) {
	b := []byte(s)
	n, k := binary.Uvarint(b)
	if k <= 0 || n != uint64(want) {
		return nil, errBadBatch
	}
	b = b[k:]
	out := make([]forwardResult, 0, n)
	for range n {
		var fields [2]string
		for f := range fields {
			l, k := binary.Uvarint(b)
			if k <= 0 || l > uint64(len(b)-k) {
				return nil, errBadBatch
			}
			fields[f] = string(b[k : k+int(l)])
			b = b[k+int(l):]
		}
		var r forwardResult
		var nums [2]uint64
		for f := range nums {
			v, k := binary.Uvarint(b)
			if k <= 0 {
				return nil, errBadBatch
			}
			nums[f] = v
			b = b[k:]
		}
		if fields[0] == "" {
			r.entry = consensus.Committed{Index: nums[0], Term: nums[1]}
		} else {
			r.err = consensus.ErrorFromCode(fields[0], fields[1])
		}
		out = append(out, r)
	}
	if len(b) != 0 {
		return nil, errBadBatch
	}
	return out, nil
}

// acceptBatch is the leader's side of opForwardBatch: it appends every
// command concurrently (raft batches them into one append) and answers
// with each one's outcome.
func (c *cluster) acceptBatch(ctx context.Context, req rpcRequest) []byte {
	g := c.group(req.group)
	if g == nil {
		err := fmt.Errorf("unknown group %q: %w", req.group, consensus.ErrClosed)
		return encodeRPCResponse(0, consensus.ErrorCode(err), err.Error())
	}
	cmds, err := decodeForwardBatch(req.payload)
	if err != nil {
		err = fmt.Errorf("%w: %w", consensus.ErrMalformed, err)
		return encodeRPCResponse(0, consensus.ErrorCode(err), err.Error())
	}
	results := make([]forwardResult, len(cmds))
	var wg sync.WaitGroup
	for i, fc := range cmds {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, fc.timeout)
			defer cancel()
			results[i].entry, results[i].err = g.AcceptForwarded(cctx, fc.cmd)
		})
	}
	wg.Wait()
	return encodeRPCResponse(0, "", string(encodeForwardResults(results)))
}

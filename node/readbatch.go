package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/dittonode/dittonode/consensus"
)

// Read indexes of several groups travel together. A follower's
// linearizable read of a thing needs the read indexes of the things and
// the policies group; when one node leads both, one opReadIndexes request
// asks for both. Concurrent readers share requests: per leader one is in
// flight, and the callers that arrive meanwhile join the next, which asks
// for the union of their groups.
//
//	opReadIndexes payload:  count uvarint | count × (len uvarint | group)
//	response message:       count × (index u64 | term uvarint | code-len uvarint | code | msg-len uvarint | msg)
//
// index and term are the group's read index and its entry's term
// (consensus.Committed): the follower takes them as a commit hint. The
// response's own code is set only when the whole request failed.

// maxReadGroups bounds the groups of one opReadIndexes request.
const maxReadGroups = 16

// readRoundTimeout bounds one shared round; callers stop waiting sooner
// when their ctx ends.
const readRoundTimeout = 5 * time.Second

// ReadIndexes asks the leader for the read indexes of groups in one round
// trip shared with concurrent callers.
func (f rpcClient) ReadIndexes(ctx context.Context, leaderID, _ string, groups []string) ([]consensus.Committed, error) {
	if len(groups) > maxReadGroups {
		return nil, fmt.Errorf("%d groups in one read round exceed %d", len(groups), maxReadGroups)
	}
	rd := f.c.readQueue(leaderID).join(groups)
	select {
	case <-rd.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if rd.err != nil {
		return nil, rd.err
	}
	out := make([]consensus.Committed, len(groups))
	for i, g := range groups {
		j := slices.Index(rd.groups, g)
		if err := rd.errs[j]; err != nil {
			return nil, err
		}
		out[i] = rd.indexes[j]
	}
	return out, nil
}

var _ consensus.ReadIndexer = rpcClient{}

func (c *cluster) readQueue(leader string) *readQueue {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	q := c.readQueues[leader]
	if q == nil {
		if c.readQueues == nil {
			c.readQueues = map[string]*readQueue{}
		}
		q = &readQueue{c: c, leader: leader}
		c.readQueues[leader] = q
	}
	return q
}

// readQueue runs the shared read rounds to one leader, one at a time.
type readQueue struct {
	c      *cluster
	leader string

	mu      sync.Mutex
	next    *readRound // not started yet
	running bool       // a sender goroutine owns the queue
}

// readRound is one opReadIndexes request and, once done is closed, its
// outcome: err for the whole round, else indexes and errs by position in
// groups.
type readRound struct {
	groups  []string
	done    chan struct{}
	err     error
	indexes []consensus.Committed
	errs    []error
}

// join adds groups to the round that has not started yet and returns it.
func (q *readQueue) join(groups []string) *readRound {
	q.mu.Lock()
	defer q.mu.Unlock()
	rd := q.next
	if rd == nil {
		rd = &readRound{done: make(chan struct{})}
		q.next = rd
	}
	for _, g := range groups {
		if !slices.Contains(rd.groups, g) {
			rd.groups = append(rd.groups, g)
		}
	}
	if !q.running {
		q.running = true
		q.c.wg.Add(1)
		go q.send()
	}
	return rd
}

// send runs rounds until none waits.
func (q *readQueue) send() {
	defer q.c.wg.Done()
	for {
		q.mu.Lock()
		rd := q.next
		q.next = nil
		if rd == nil {
			q.running = false
		}
		q.mu.Unlock()
		if rd == nil {
			return
		}
		q.run(rd)
	}
}

func (q *readQueue) run(rd *readRound) {
	defer close(rd.done)
	if len(rd.groups) > maxReadGroups {
		rd.err = fmt.Errorf("%d groups in one read round exceed %d", len(rd.groups), maxReadGroups)
		return
	}
	ctx, cancel := context.WithTimeout(q.c.life, readRoundTimeout)
	defer cancel()
	_, code, msg, err := q.c.roundTrip(ctx, q.leader, rpcRequest{op: opReadIndexes, payload: encodeReadGroups(rd.groups)})
	if err == nil && code != "" {
		err = consensus.ErrorFromCode(code, msg)
	}
	if err == nil {
		rd.indexes, rd.errs, err = decodeReadResults(msg, len(rd.groups))
	}
	rd.err = err
}

func encodeReadGroups(groups []string) []byte {
	b := binary.AppendUvarint(nil, uint64(len(groups)))
	for _, g := range groups {
		b = binary.AppendUvarint(b, uint64(len(g)))
		b = append(b, g...)
	}
	return b
}

var errBadReadRequest = errors.New("malformed read-index request")

func decodeReadGroups(b []byte) ([]string, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > maxReadGroups {
		return nil, errBadReadRequest
	}
	b = b[k:]
	out := make([]string, 0, n)
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) || l > 255 {
			return nil, errBadReadRequest
		}
		out = append(out, string(b[k:k+int(l)]))
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return nil, errBadReadRequest
	}
	return out, nil
}

func encodeReadResults(indexes []consensus.Committed, errs []error) []byte {
	var b []byte
	for i, c := range indexes {
		var code, msg string
		if errs[i] != nil {
			code, msg = consensus.ErrorCode(errs[i]), errs[i].Error()
		}
		b = binary.BigEndian.AppendUint64(b, c.Index)
		b = binary.AppendUvarint(b, c.Term)
		b = binary.AppendUvarint(b, uint64(len(code)))
		b = append(b, code...)
		b = binary.AppendUvarint(b, uint64(len(msg)))
		b = append(b, msg...)
	}
	return b
}

func decodeReadResults(s string, want int) ([]consensus.Committed, []error, error) {
	b := []byte(s)
	indexes := make([]consensus.Committed, 0, want)
	errs := make([]error, 0, want)
	for range want {
		if len(b) < 8 {
			return nil, nil, errBadReadRequest
		}
		c := consensus.Committed{Index: binary.BigEndian.Uint64(b)}
		b = b[8:]
		term, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, nil, errBadReadRequest
		}
		c.Term = term
		b = b[k:]
		indexes = append(indexes, c)
		var fields [2]string
		for f := range fields {
			l, k := binary.Uvarint(b)
			if k <= 0 || l > uint64(len(b)-k) {
				return nil, nil, errBadReadRequest
			}
			fields[f] = string(b[k : k+int(l)])
			b = b[k+int(l):]
		}
		if fields[0] == "" {
			errs = append(errs, nil)
		} else {
			errs = append(errs, consensus.ErrorFromCode(fields[0], fields[1]))
		}
	}
	if len(b) != 0 {
		return nil, nil, errBadReadRequest
	}
	return indexes, errs, nil
}

// acceptReadIndexes is the leader's side of opReadIndexes: every group's
// LeaderReadIndex, concurrently (each joins its group's shared confirm
// round).
func (c *cluster) acceptReadIndexes(ctx context.Context, req rpcRequest) []byte {
	names, err := decodeReadGroups(req.payload)
	if err != nil {
		err = fmt.Errorf("%w: %w", consensus.ErrMalformed, err)
		return encodeRPCResponse(0, consensus.ErrorCode(err), err.Error())
	}
	indexes := make([]consensus.Committed, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		g := c.group(name)
		if g == nil {
			errs[i] = fmt.Errorf("unknown group %q: %w", name, consensus.ErrClosed)
			continue
		}
		if i == len(names)-1 {
			indexes[i], errs[i] = g.LeaderReadIndex(ctx)
			continue
		}
		wg.Go(func() { indexes[i], errs[i] = g.LeaderReadIndex(ctx) })
	}
	wg.Wait()
	return encodeRPCResponse(0, "", string(encodeReadResults(indexes, errs)))
}

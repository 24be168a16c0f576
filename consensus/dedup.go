package consensus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Forwarded entries carry a header in raft.Log.Extensions: which node
// proposed them (origin) and that node's proposal sequence number. The FSM
// payload in Data stays the caller's bytes, untouched.
//
//	header = tag(1) | len(origin)(1) | origin | seq (8, big-endian)
const (
	headerTag    byte = 1
	maxOriginLen      = 255
	headerFixed       = 1 + 1 + 8
)

func headerLen(origin string) int { return headerFixed + len(origin) }

// appendHeader appends the header for origin and seq to b. origin must be
// 1 to maxOriginLen bytes (Config.Validate checks NodeID).
func appendHeader(b []byte, origin string, seq uint64) []byte {
	b = append(b, headerTag, byte(len(origin)))
	b = append(b, origin...)
	return binary.BigEndian.AppendUint64(b, seq)
}

// parseHeader reads a header at the start of b. It returns the origin
// (aliasing b), the sequence number and the header's length; ok is false
// when b does not start with a valid header.
func parseHeader(b []byte) (origin []byte, seq uint64, n int, ok bool) {
	if len(b) < headerFixed || b[0] != headerTag {
		return nil, 0, 0, false
	}
	l := int(b[1])
	n = headerFixed + l
	if l == 0 || len(b) < n {
		return nil, 0, 0, false
	}
	seq = binary.BigEndian.Uint64(b[2+l : n])
	if seq == 0 {
		return nil, 0, 0, false
	}
	return b[2 : 2+l], seq, n, true
}

// The dedup table is part of the replicated state: it is derived from the
// log content alone, in log order, so every node drops the same entries,
// and it is saved in and restored from every snapshot.
const (
	// dedupWindow is how many sequence numbers below an origin's highest
	// admitted one stay distinguishable: entries reordered by less than
	// this apply once each; an entry further behind is dropped (stale).
	dedupWindow = 8192
	// maxDedupOrigins bounds the table; past it the origin whose latest
	// entry is oldest in the log is forgotten.
	maxDedupOrigins = 1024
)

// originState is the high-water mark of one origin and a ring of bits for
// the dedupWindow sequence numbers at and below it.
type originState struct {
	hwm  uint64                   // highest admitted seq
	last uint64                   // log index of the latest admitted entry
	bits [dedupWindow / 64]uint64 // bit seq%dedupWindow: seq admitted
}

func (s *originState) bit(seq uint64) (int, uint64) {
	i := seq % dedupWindow
	return int(i / 64), 1 << (i % 64)
}

func (s *originState) has(seq uint64) bool {
	w, m := s.bit(seq)
	return s.bits[w]&m != 0
}

func (s *originState) set(seq uint64) {
	w, m := s.bit(seq)
	s.bits[w] |= m
}

// advance moves the high-water mark up to seq, forgetting the sequence
// numbers that leave the window.
func (s *originState) advance(seq uint64) {
	if seq-s.hwm >= dedupWindow {
		clear(s.bits[:])
	} else {
		for x := s.hwm + 1; x <= seq; x++ {
			w, m := s.bit(x)
			s.bits[w] &^= m
		}
	}
	s.hwm = seq
}

type verdict uint8

const (
	admitted verdict = iota
	duplicate
	stale
)

// dedupTable decides, per forwarded entry, whether it applies.
type dedupTable struct {
	m map[string]*originState
}

// admit records (origin, seq) at log index and says whether the entry
// applies.
func (t *dedupTable) admit(origin []byte, seq, index uint64) verdict {
	st := t.m[string(origin)]
	switch {
	case st == nil:
		if t.m == nil {
			t.m = make(map[string]*originState)
		}
		if len(t.m) >= maxDedupOrigins {
			t.evict()
		}
		st = &originState{hwm: seq}
		t.m[string(origin)] = st
	case seq > st.hwm:
		st.advance(seq)
	case st.hwm-seq >= dedupWindow:
		return stale
	case st.has(seq):
		return duplicate
	}
	st.set(seq)
	st.last = index
	return admitted
}

// state reports what the table knows of (origin, seq): admitted before,
// too old to tell (stale), or neither (it may still come).
func (t *dedupTable) state(origin string, seq uint64) (seen, old bool) {
	st := t.m[origin]
	if st == nil || seq > st.hwm {
		return false, false
	}
	if st.hwm-seq >= dedupWindow {
		return false, true
	}
	return st.has(seq), false
}

// evict forgets the origin whose latest entry is oldest in the log; the
// choice depends on log content only.
func (t *dedupTable) evict() {
	var victim string
	var oldest uint64
	first := true
	for o, st := range t.m {
		if first || st.last < oldest || (st.last == oldest && o < victim) {
			victim, oldest, first = o, st.last, false
		}
	}
	delete(t.m, victim)
}

// clone copies the table for a snapshot.
func (t *dedupTable) clone() dedupTable {
	c := dedupTable{m: make(map[string]*originState, len(t.m))}
	for o, st := range t.m {
		cp := *st
		c.m[o] = &cp
	}
	return c
}

// The encoding is canonical: origins sorted, fixed-width fields.
//
//	table  = count (4) | origin*
//	origin = len(1) | bytes | hwm (8) | last (8) | bits (dedupWindow/8)
func (t *dedupTable) writeTo(w io.Writer) error {
	origins := make([]string, 0, len(t.m))
	for o := range t.m {
		origins = append(origins, o)
	}
	slices.Sort(origins)
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(origins)*(1+maxOriginLen+16+dedupWindow/8)), uint32(len(origins)))
	for _, o := range origins {
		st := t.m[o]
		buf = append(buf, byte(len(o)))
		buf = append(buf, o...)
		buf = binary.BigEndian.AppendUint64(buf, st.hwm)
		buf = binary.BigEndian.AppendUint64(buf, st.last)
		for _, word := range st.bits {
			buf = binary.BigEndian.AppendUint64(buf, word)
		}
	}
	_, err := w.Write(buf)
	return err
}

var errBadDedupTable = errors.New("bad dedup table")

// readDedupTable reads a table written by writeTo, rejecting any encoding
// writeTo would not produce.
func readDedupTable(r io.Reader) (dedupTable, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return dedupTable{}, errors.Join(errBadDedupTable, err)
	}
	count := binary.BigEndian.Uint32(n[:])
	if count > maxDedupOrigins {
		return dedupTable{}, fmt.Errorf("%w: %d origins", errBadDedupTable, count)
	}
	t := dedupTable{m: make(map[string]*originState, count)}
	var prev string
	fixed := make([]byte, 16+dedupWindow/8)
	for i := range count {
		var l [1]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return dedupTable{}, errors.Join(errBadDedupTable, err)
		}
		name := make([]byte, l[0])
		if _, err := io.ReadFull(r, name); err != nil {
			return dedupTable{}, errors.Join(errBadDedupTable, err)
		}
		o := string(name)
		if o == "" || (i > 0 && o <= prev) {
			return dedupTable{}, fmt.Errorf("%w: origins not sorted and unique", errBadDedupTable)
		}
		prev = o
		if _, err := io.ReadFull(r, fixed); err != nil {
			return dedupTable{}, errors.Join(errBadDedupTable, err)
		}
		st := &originState{hwm: binary.BigEndian.Uint64(fixed[:8]), last: binary.BigEndian.Uint64(fixed[8:16])}
		for w := range st.bits {
			st.bits[w] = binary.BigEndian.Uint64(fixed[16+8*w:])
		}
		t.m[o] = st
	}
	return t, nil
}

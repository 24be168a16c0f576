package policies

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/dittonode/dittonode/consensus"
	"github.com/dittonode/dittonode/ditto"
)

// Snapshot captures the state: a copy of the map of immutable records.
func (f fsm) Snapshot() (consensus.Snapshot, error) {
	f.s.mu.RLock()
	defer f.s.mu.RUnlock()
	recs := make([]*record, 0, len(f.s.state))
	for _, r := range f.s.state {
		recs = append(recs, r)
	}
	return &snapshot{recs: recs}, nil
}

type snapshot struct{ recs []*record }

// Snapshot format: the magic, the number of records as a uvarint, then per
// record, sorted by ID:
//
//	ID         uvarint length, bytes
//	Revision   varint
//	Created    varint, Unix milliseconds
//	Modified   varint, milliseconds after Created
//	Raw        uvarint length, the stored policy JSON as it is (0: tombstone)
//	Announced  uvarint count, then per key in order: key, value (each
//	           uvarint length, bytes)
//
// Restore keeps the policy bytes as they are and decodes nothing. Raft
// checksums snapshot files; the count catches a truncated one. Restore
// also reads the previous format "dnpol2", which differs only in the
// times: Created and Modified as strings (uvarint length, bytes) in
// ditto.TimeFormat; one that does not parse fails the restore. A snapshot
// of another format (the JSON records of "dnpol1") is rejected.
const (
	snapshotMagic   = "dnpol3\n"
	snapshotMagicV2 = "dnpol2\n"
)

// Bounds of one field when reading a snapshot, so that corrupt lengths fail
// instead of allocating.
const (
	maxSnapString = 1 << 16
	maxSnapRaw    = 1 << 28
)

// Persist writes the records sorted by ID.
func (sn *snapshot) Persist(w io.Writer) error {
	sort.Slice(sn.recs, func(i, j int) bool { return sn.recs[i].ID < sn.recs[j].ID })
	sw := snapWriter{w: bufio.NewWriterSize(w, 1<<16)}
	sw.write([]byte(snapshotMagic))
	sw.uvarint(uint64(len(sn.recs)))
	for _, r := range sn.recs {
		sw.str(r.ID)
		sw.varint(r.Revision)
		sw.varint(int64(r.Created))
		sw.varint(int64(r.Modified - r.Created))
		sw.uvarint(uint64(r.rawLen()))
		sw.raw = r.appendRaw(sw.raw[:0])
		sw.write(sw.raw)
		keys := make([]string, 0, len(r.Announced))
		for k := range r.Announced {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		sw.uvarint(uint64(len(keys)))
		for _, k := range keys {
			sw.str(k)
			sw.str(r.Announced[k])
		}
	}
	if sw.err == nil {
		sw.err = sw.w.Flush()
	}
	if sw.err != nil {
		return fmt.Errorf("persist policies: %w", sw.err)
	}
	return nil
}

// Release frees nothing: records are shared and immutable.
func (sn *snapshot) Release() {}

// snapWriter writes snapshot fields and keeps the first error.
type snapWriter struct {
	w   *bufio.Writer
	buf [binary.MaxVarintLen64]byte
	raw []byte // a policy's JSON, rebuilt from its record
	err error
}

func (sw *snapWriter) write(b []byte) {
	if sw.err == nil {
		_, sw.err = sw.w.Write(b)
	}
}

func (sw *snapWriter) uvarint(n uint64) { sw.write(sw.buf[:binary.PutUvarint(sw.buf[:], n)]) }

func (sw *snapWriter) varint(n int64) { sw.write(sw.buf[:binary.PutVarint(sw.buf[:], n)]) }

func (sw *snapWriter) str(s string) {
	sw.uvarint(uint64(len(s)))
	if sw.err == nil {
		_, sw.err = sw.w.WriteString(s)
	}
}

// ErrBadSnapshot is returned by Restore for data that is not a policies
// snapshot of this format.
var ErrBadSnapshot = errors.New("policies: corrupt snapshot")

// Restore replaces the state with the snapshot from r, atomically. Compiled
// enforcers are kept: they are keyed by content, so they stay exact.
func (f fsm) Restore(r io.Reader) error {
	state, err := readSnapshot(r)
	if err != nil {
		return err
	}
	f.s.mu.Lock()
	f.s.state = state
	f.s.mu.Unlock()
	return nil
}

func readSnapshot(r io.Reader) (map[string]*record, error) {
	sr := snapReader{r: bufio.NewReaderSize(r, 1<<16)}
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(sr.r, magic); err != nil {
		return nil, fmt.Errorf("%w: no header", ErrBadSnapshot)
	}
	switch string(magic) {
	case snapshotMagic:
	case snapshotMagicV2:
		sr.v2 = true
	default:
		return nil, fmt.Errorf("%w: format %q, want %q", ErrBadSnapshot, bytes.TrimSpace(magic), strings.TrimSpace(snapshotMagic))
	}
	n, err := binary.ReadUvarint(sr.r)
	if err != nil {
		return nil, fmt.Errorf("%w: record count: %v", ErrBadSnapshot, err)
	}
	state := make(map[string]*record, min(n, 1<<20))
	for i := uint64(0); i < n; i++ {
		rec, err := sr.record()
		if err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrBadSnapshot, i, err)
		}
		if _, dup := state[rec.ID]; dup || rec.ID == "" {
			return nil, fmt.Errorf("%w: record %d: ID %q twice or empty", ErrBadSnapshot, i, rec.ID)
		}
		state[rec.ID] = rec
	}
	if _, err := sr.r.ReadByte(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after %d records", ErrBadSnapshot, n)
	}
	return state, nil
}

// snapReader reads snapshot fields.
type snapReader struct {
	r       *bufio.Reader
	scratch []byte
	v2      bool // the snapshot is in format dnpol2: times as strings
}

// next reads a length-prefixed field of at most max bytes into the scratch
// buffer; the result is valid until the next call.
func (sr *snapReader) next(max uint64) ([]byte, error) {
	n, err := binary.ReadUvarint(sr.r)
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, fmt.Errorf("field of %d bytes", n)
	}
	if uint64(cap(sr.scratch)) < n {
		sr.scratch = make([]byte, n)
	}
	b := sr.scratch[:n]
	if _, err := io.ReadFull(sr.r, b); err != nil {
		return nil, err
	}
	return b, nil
}

func (sr *snapReader) str() (string, error) {
	b, err := sr.next(maxSnapString)
	return string(b), err
}

// timeV2 reads a time of format dnpol2: a string in ditto.TimeFormat.
func (sr *snapReader) timeV2() (ditto.Millis, error) {
	b, err := sr.next(maxSnapString)
	if err != nil {
		return 0, err
	}
	m, err := ditto.ParseMillis(string(b))
	if err != nil {
		return 0, fmt.Errorf("time %q", b)
	}
	return m, nil
}

func (sr *snapReader) record() (*record, error) {
	rec := &record{}
	var err error
	if rec.ID, err = sr.str(); err != nil {
		return nil, err
	}
	if rec.Revision, err = binary.ReadVarint(sr.r); err != nil {
		return nil, err
	}
	if sr.v2 {
		if rec.Created, err = sr.timeV2(); err != nil {
			return nil, err
		}
		if rec.Modified, err = sr.timeV2(); err != nil {
			return nil, err
		}
	} else {
		c, err := binary.ReadVarint(sr.r)
		if err != nil {
			return nil, err
		}
		d, err := binary.ReadVarint(sr.r)
		if err != nil {
			return nil, err
		}
		rec.Created, rec.Modified = ditto.Millis(c), ditto.Millis(c+d)
	}
	n, err := binary.ReadUvarint(sr.r)
	if err != nil {
		return nil, err
	}
	if n > maxSnapRaw {
		return nil, fmt.Errorf("policy of %d bytes", n)
	}
	if n > 0 {
		if uint64(cap(sr.scratch)) < n {
			sr.scratch = make([]byte, n)
		}
		raw := sr.scratch[:n]
		if _, err := io.ReadFull(sr.r, raw); err != nil {
			return nil, err
		}
		if n < 2 || raw[0] != '{' || raw[n-1] != '}' {
			return nil, errors.New("policy is not a JSON object")
		}
		rec.setRaw(raw)
	}
	k, err := binary.ReadUvarint(sr.r)
	if err != nil {
		return nil, err
	}
	if k > maxSnapString {
		return nil, fmt.Errorf("%d announced subjects", k)
	}
	if k > 0 {
		rec.Announced = make(map[string]string, k)
		for range k {
			key, err := sr.str()
			if err != nil {
				return nil, err
			}
			if rec.Announced[key], err = sr.str(); err != nil {
				return nil, err
			}
		}
	}
	return rec, nil
}

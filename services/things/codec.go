package things

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dittonode/dittonode/ditto"
)

// Log entry envelope: a type byte, a version byte, then the payload. A type
// with the ignore bit set may be skipped by a node that does not know it;
// any other unknown type, or a payload that does not decode, is divergence
// and panics in Apply.
const (
	entryThingCommand byte = 0x01
	entryIgnoreBit    byte = 0x80
	entryVersion      byte = 1
)

// op is the write operation of a thing command entry.
type op uint8

const (
	opCreate op = iota + 1 // create the thing; 409 if it exists
	opModify               // PUT; the root may create when entry.mayCreate
	opMerge                // merge patch; the root may create when entry.mayCreate
	opDelete
)

const (
	flagMayCreate byte = 1 << iota // the proposer prepared a policy; a missing thing is created
	flagHasValue
	// flagHasSession: the entry ends with the sending session's ID
	// (ditto-origin). Entries without it decode as before.
	flagHasSession
	// flagHasMeta: after that come put-metadata and delete-metadata
	// (metadata.go). Entries without it decode as before.
	flagHasMeta
)

// entry is one proposed thing write. Everything that decides its outcome
// travels inside it: the leader-stamped time and the conditional headers.
type entry struct {
	op        op
	mayCreate bool
	id        string
	path      ditto.Pointer
	value     []byte // canonical JSON of the value or patch; nil for none
	time      int64  // stamped time, Unix milliseconds
	corrID    string
	origin    string // ditto-originator (first auth subject)
	session   string // ditto-origin: the WebSocket session that sent the command
	ifMatch   string
	ifNone    string
	ifEqual   string
	condition string
	putMeta   string // put-metadata, canonical JSON ("" for none)
	delMeta   string // delete-metadata as given ("" for none)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encode renders e as a log entry.
func (e *entry) encode() []byte {
	n := 32 + len(e.id) + len(e.value) + len(e.corrID) + len(e.origin) + len(e.session) + len(e.ifMatch) + len(e.ifNone) + len(e.ifEqual) + len(e.condition) + len(e.putMeta) + len(e.delMeta)
	for _, s := range e.path {
		n += len(s) + 2
	}
	b := make([]byte, 0, n)
	var flags byte
	if e.mayCreate {
		flags |= flagMayCreate
	}
	if e.value != nil {
		flags |= flagHasValue
	}
	if e.session != "" {
		flags |= flagHasSession
	}
	hasMeta := e.putMeta != "" || e.delMeta != ""
	if hasMeta {
		flags |= flagHasMeta
	}
	b = append(b, entryThingCommand, entryVersion, byte(e.op), flags)
	b = appendString(b, e.id)
	b = binary.AppendUvarint(b, uint64(len(e.path)))
	for _, s := range e.path {
		b = appendString(b, s)
	}
	if e.value != nil {
		b = binary.AppendUvarint(b, uint64(len(e.value)))
		b = append(b, e.value...)
	}
	b = binary.AppendVarint(b, e.time)
	for _, s := range [...]string{e.corrID, e.origin, e.ifMatch, e.ifNone, e.ifEqual, e.condition} {
		b = appendString(b, s)
	}
	if e.session != "" {
		b = appendString(b, e.session)
	}
	if hasMeta {
		b = appendString(appendString(b, e.putMeta), e.delMeta)
	}
	return b
}

var errShortEntry = errors.New("truncated entry")

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShortEntry
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errShortEntry
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errShortEntry
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string { return string(r.bytes()) }

// errIgnored marks an unknown entry type with the ignore bit set.
var errIgnored = errors.New("ignorable entry")

// decodeEntry parses a log entry. It returns errIgnored for an unknown
// ignorable type and another error for anything it cannot parse.
func decodeEntry(b []byte) (*entry, error) {
	if len(b) == 0 {
		return nil, errShortEntry
	}
	if b[0] != entryThingCommand {
		if b[0]&entryIgnoreBit != 0 {
			return nil, errIgnored
		}
		return nil, fmt.Errorf("unknown entry type 0x%02x", b[0])
	}
	if len(b) < 4 {
		return nil, errShortEntry
	}
	if b[1] != entryVersion {
		return nil, fmt.Errorf("unknown entry version %d", b[1])
	}
	e := &entry{op: op(b[2])}
	if e.op < opCreate || e.op > opDelete {
		return nil, fmt.Errorf("unknown op %d", b[2])
	}
	flags := b[3]
	e.mayCreate = flags&flagMayCreate != 0
	r := &reader{b: b[4:]}
	e.id = r.string()
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		return nil, errShortEntry
	}
	e.path = make(ditto.Pointer, 0, n)
	for i := uint64(0); i < n && r.err == nil; i++ {
		e.path = append(e.path, r.string())
	}
	if flags&flagHasValue != 0 {
		e.value = r.bytes()
	}
	e.time = r.varint()
	e.corrID = r.string()
	e.origin = r.string()
	e.ifMatch = r.string()
	e.ifNone = r.string()
	e.ifEqual = r.string()
	e.condition = r.string()
	if flags&flagHasSession != 0 {
		e.session = r.string()
	}
	if flags&flagHasMeta != 0 {
		e.putMeta = r.string()
		e.delMeta = r.string()
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, errors.New("trailing bytes in entry")
	}
	return e, nil
}

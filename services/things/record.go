package things

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/dittonode/dittonode/ditto"
)

// Record is the applied state of one thing. Records are immutable: Apply
// replaces a thing's record, it never changes one, so a reader may keep and
// use a Record without locks.
type Record struct {
	ID       string
	PolicyID string
	// Revision is the thing's revision: 1 after the create, +1 per change.
	Revision int64
	Created  Millis
	Modified Millis
	// JSON is the canonical thing JSON without special fields (thingId,
	// policyId, definition, attributes, features; keys sorted). It must not
	// be modified.
	JSON []byte
	// Meta is the thing's metadata (_metadata) as canonical JSON, "" for
	// none (metadata.go).
	Meta string
}

// Millis is a time in Unix milliseconds, as the leader stamps it into a
// command: 8 bytes per timestamp of every record instead of a time.Time's
// 24.
type Millis = ditto.Millis

// deleted reports whether r is the tombstone of a deleted thing; tombstones
// keep the revision so that a re-created thing continues the history.
// sharedPolicyID returns pid, as the same string as id when they are
// equal: most things use a policy of their own ID (the default policy),
// and the record, the index and events then hold the ID once.
func sharedPolicyID(id, pid string) string {
	if pid == id {
		return id
	}
	return pid
}

func (r *Record) deleted() bool { return r.JSON == nil }

// FullJSON is the thing's JSON as search and enrichment see it: JSON with
// the metadata as "_metadata" when the thing has any. Without metadata it
// is JSON itself; else a fresh slice. It must not be modified.
func (r *Record) FullJSON() []byte {
	if r.Meta == "" || len(r.JSON) < 2 {
		return r.JSON
	}
	b := make([]byte, 0, len(r.JSON)+len(r.Meta)+14)
	b = append(b, `{"_metadata":`...)
	b = append(b, r.Meta...)
	if r.JSON[1] != '}' {
		b = append(b, ',') // canonical JSON: no space after '{'
	}
	return append(b, r.JSON[1:]...)
}

// specialDoc decodes the record and adds the special fields, as RQL
// conditions and field selection see the thing.
func (r *Record) specialDoc() map[string]any {
	v, err := ditto.DecodeJSON(r.JSON)
	if err != nil {
		panic(fmt.Sprintf("things: stored JSON of %s does not decode: %v", r.ID, err))
	}
	m := v.(map[string]any)
	addSpecial(m, r)
	return m
}

// addSpecial sets _namespace, _revision, _created and _modified in m.
func addSpecial(m map[string]any, r *Record) {
	ns := ""
	if id, ok := ditto.ParseEntityID(r.ID); ok {
		ns = id.Namespace
	}
	m["_namespace"] = ns
	m["_revision"] = jsonInt(r.Revision)
	m["_created"] = ditto.FormatTime(r.Created.Time())
	m["_modified"] = ditto.FormatTime(r.Modified.Time())
	if r.Meta != "" {
		m[keyMetadata] = decodeMeta(r.Meta)
	}
}

// Snapshot stream: magic, then per record a uvarint length and the record
// bytes, then a zero length as the end marker. A record's state byte is 0
// for a tombstone, 1 when the JSON follows, 2 when the metadata (a
// length-prefixed string) and then the JSON follow. Snapshots holding
// metadata carry the second magic, so a release that does not know state
// 2 refuses them instead of reading such things as deleted.
var (
	snapshotMagic     = []byte("DNTHINGS1\n")
	snapshotMagicMeta = []byte("DNTHINGS2\n")
)

func appendRecord(b []byte, r *Record) []byte {
	b = appendString(b, r.ID)
	if r.PolicyID == r.ID {
		b = append(b, 1)
	} else {
		b = append(b, 0)
		b = appendString(b, r.PolicyID)
	}
	b = binary.AppendVarint(b, r.Revision)
	b = binary.AppendVarint(b, int64(r.Created))
	b = binary.AppendVarint(b, int64(r.Modified))
	switch {
	case r.JSON == nil:
		return append(b, 0)
	case r.Meta != "":
		b = appendString(append(b, 2), r.Meta)
	default:
		b = append(b, 1)
	}
	return append(b, r.JSON...)
}

func writeRecords(w io.Writer, recs []*Record) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	magic := snapshotMagic
	for _, r := range recs {
		if r.Meta != "" {
			magic = snapshotMagicMeta
			break
		}
	}
	if _, err := bw.Write(magic); err != nil {
		return err
	}
	var buf, lenBuf []byte
	for _, r := range recs {
		buf = appendRecord(buf[:0], r)
		lenBuf = binary.AppendUvarint(lenBuf[:0], uint64(len(buf)))
		if _, err := bw.Write(lenBuf); err != nil {
			return err
		}
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	if err := bw.WriteByte(0); err != nil {
		return err
	}
	return bw.Flush()
}

// maxRecordBytes bounds one snapshot record, so a corrupt length cannot make
// Restore allocate unbounded memory.
const maxRecordBytes = 64 << 20

func readRecords(r io.Reader) (map[string]*Record, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil {
		return nil, fmt.Errorf("read snapshot header: %w", err)
	}
	if string(magic) != string(snapshotMagic) && string(magic) != string(snapshotMagicMeta) {
		return nil, errors.New("not a things snapshot")
	}
	out := make(map[string]*Record)
	var buf []byte
	for {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, fmt.Errorf("read snapshot record length: %w", err)
		}
		if n == 0 {
			return out, nil
		}
		if n > maxRecordBytes {
			return nil, fmt.Errorf("snapshot record of %d bytes is too large", n)
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, fmt.Errorf("read snapshot record: %w", err)
		}
		rec, err := parseRecord(buf)
		if err != nil {
			return nil, err
		}
		out[rec.ID] = rec
	}
}

// isJSONObject reports whether s is a JSON object, as a record's Meta
// must be.
func isJSONObject(s string) bool {
	v, err := ditto.DecodeJSON([]byte(s))
	_, ok := v.(map[string]any)
	return err == nil && ok
}

func parseRecord(b []byte) (*Record, error) {
	rd := &reader{b: b}
	rec := &Record{ID: rd.string()}
	if rd.err != nil || len(rd.b) == 0 {
		return nil, errors.New("corrupt snapshot record")
	}
	same := rd.b[0]
	rd.b = rd.b[1:]
	if same == 1 {
		rec.PolicyID = rec.ID
	} else {
		rec.PolicyID = rd.string()
	}
	rec.Revision = rd.varint()
	rec.Created = Millis(rd.varint())
	rec.Modified = Millis(rd.varint())
	if rd.err != nil || len(rd.b) == 0 {
		return nil, errors.New("corrupt snapshot record")
	}
	switch state := rd.b[0]; state {
	case 0:
	case 1, 2:
		rd.b = rd.b[1:]
		if state == 2 {
			if rec.Meta = rd.string(); rd.err != nil || !isJSONObject(rec.Meta) {
				return nil, errors.New("corrupt snapshot record")
			}
		}
		rec.JSON = append(make([]byte, 0, len(rd.b)), rd.b...)
	default:
		return nil, errors.New("corrupt snapshot record")
	}
	return rec, nil
}

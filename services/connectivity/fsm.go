package connectivity

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/dittonode/dittonode/consensus"
	"github.com/dittonode/dittonode/ditto"
)

// Command types of the connectivity log. The high bit marks a type that
// older nodes may ignore.
const (
	cmdPut    byte = 1
	cmdDelete byte = 2

	cmdIgnorable byte = 0x80
	cmdVersion   byte = 1
)

// Record is one applied connection definition. Records are immutable.
type Record struct {
	ID       string          `json:"id"`
	Revision int64           `json:"revision"`
	Created  string          `json:"created"`
	Modified string          `json:"modified"`
	JSON     json.RawMessage `json:"json"`
}

type putCmd struct {
	ID         string          `json:"id"`
	JSON       json.RawMessage `json:"json"`
	Time       string          `json:"time"`
	CreateOnly bool            `json:"createOnly,omitempty"`
	MustExist  bool            `json:"mustExist,omitempty"`
}

type deleteCmd struct {
	ID string `json:"id"`
}

// applyResult is what Apply returns to the proposer.
type applyResult struct {
	Created bool
	Record  *Record
	Err     *ditto.Error
}

type fsm struct {
	mu      sync.RWMutex
	conns   map[string]*Record
	devices map[string]*Device // devices.go

	watchMu  sync.Mutex
	watchers []func() // told after every applied change; must not block
}

// watch registers fn to run after every applied change or restore.
func (f *fsm) watch(fn func()) {
	f.watchMu.Lock()
	f.watchers = append(f.watchers, fn)
	f.watchMu.Unlock()
}

func (f *fsm) notify() {
	f.watchMu.Lock()
	ws := f.watchers
	f.watchMu.Unlock()
	for _, fn := range ws {
		fn()
	}
}

func newFSM() *fsm { return &fsm{conns: map[string]*Record{}, devices: map[string]*Device{}} }

func encodeCommand(typ byte, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("connectivity: encode command: " + err.Error())
	}
	return append([]byte{typ, cmdVersion}, b...)
}

func (f *fsm) Apply(_ uint64, cmd []byte) any {
	if len(cmd) < 2 {
		panic("connectivity: short command")
	}
	typ, payload := cmd[0], cmd[2:]
	switch typ &^ cmdIgnorable {
	case cmdPut:
		var c putCmd
		mustDecode(payload, &c)
		return f.put(c)
	case cmdDelete:
		var c deleteCmd
		mustDecode(payload, &c)
		return f.delete(c)
	case cmdDevicePut, cmdDeviceDelete:
		return f.applyDevice(typ&^cmdIgnorable, payload)
	}
	if typ&cmdIgnorable != 0 {
		return nil
	}
	panic(fmt.Sprintf("connectivity: unknown command type %d", typ))
}

func mustDecode(b []byte, v any) {
	if err := json.Unmarshal(b, v); err != nil {
		panic("connectivity: decode command: " + err.Error())
	}
}

func (f *fsm) put(c putCmd) applyResult {
	defer f.notify()
	f.mu.Lock()
	defer f.mu.Unlock()
	old, exists := f.conns[c.ID]
	if exists && c.CreateOnly {
		return applyResult{Err: ditto.ErrConnectionConflict.New("The connection with ID '%s' already exists.", c.ID)}
	}
	if !exists && c.MustExist {
		return applyResult{Err: ditto.ErrConnectionNotFound.New("The connection with ID '%s' could not be found.", c.ID)}
	}
	r := &Record{ID: c.ID, Revision: 1, Created: c.Time, Modified: c.Time, JSON: c.JSON}
	if exists {
		r.Revision = old.Revision + 1
		r.Created = old.Created
	}
	f.conns[c.ID] = r
	return applyResult{Created: !exists, Record: r}
}

func (f *fsm) delete(c deleteCmd) applyResult {
	defer f.notify()
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.conns[c.ID]
	if !ok {
		return applyResult{Err: ditto.ErrConnectionNotFound.New("The connection with ID '%s' could not be found.", c.ID)}
	}
	delete(f.conns, c.ID)
	return applyResult{Record: old}
}

func (f *fsm) lookup(id string) (*Record, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, ok := f.conns[id]
	return r, ok
}

func (f *fsm) list() []*Record {
	f.mu.RLock()
	out := make([]*Record, 0, len(f.conns))
	for _, r := range f.conns {
		out = append(out, r)
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Snapshot captures the map of immutable records.
func (f *fsm) Snapshot() (consensus.Snapshot, error) {
	return &snapshot{records: f.list(), devices: f.deviceList()}, nil
}

// Restore replaces the state with a persisted snapshot.
func (f *fsm) Restore(r io.Reader) error {
	conns := map[string]*Record{}
	devices := map[string]*Device{}
	br := bufio.NewReader(r)
	for {
		n, err := binary.ReadUvarint(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("connectivity: read snapshot: %w", err)
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(br, buf); err != nil {
			return fmt.Errorf("connectivity: read snapshot: %w", err)
		}
		var rec snapshotEntry
		if err := json.Unmarshal(buf, &rec); err != nil {
			return fmt.Errorf("connectivity: decode snapshot record: %w", err)
		}
		if rec.Device != nil {
			devices[rec.Device.Username] = rec.Device
			continue
		}
		conns[rec.ID] = &rec.Record
	}
	f.mu.Lock()
	f.conns, f.devices = conns, devices
	f.mu.Unlock()
	f.notify()
	return nil
}

type snapshot struct {
	records []*Record
	devices []*Device
}

func (s *snapshot) Persist(w io.Writer) error {
	bw := bufio.NewWriter(w)
	var lenBuf [binary.MaxVarintLen64]byte
	entries := make([]any, 0, len(s.records)+len(s.devices))
	for _, r := range s.records {
		entries = append(entries, r)
	}
	for _, d := range s.devices {
		entries = append(entries, snapshotEntry{Device: d})
	}
	for _, r := range entries {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		n := binary.PutUvarint(lenBuf[:], uint64(len(b)))
		if _, err := bw.Write(lenBuf[:n]); err != nil {
			return err
		}
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func (s *snapshot) Release() {}

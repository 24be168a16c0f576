package connectivity

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/dittonode/dittonode/ditto"
)

// Command types of device identities (see fsm.go for the others).
const (
	cmdDevicePut    byte = 3
	cmdDeviceDelete byte = 4
)

// Device is one applied device identity of the embedded MQTT broker: a
// username, the bcrypt hash of its password (salted by bcrypt) and the
// Ditto subjects the device acts as. Devices are immutable.
type Device struct {
	Username string   `json:"username"`
	Hash     string   `json:"hash"`
	Subjects []string `json:"subjects"`
	Revision int64    `json:"revision"`
	Created  string   `json:"created"`
	Modified string   `json:"modified"`
}

// JSON is the device as the HTTP API shows it: never the hash.
func (d *Device) JSON() map[string]any {
	subs := make([]any, len(d.Subjects))
	for i, s := range d.Subjects {
		subs[i] = s
	}
	return map[string]any{"username": d.Username, "subjects": subs, "_revision": d.Revision,
		"_created": d.Created, "_modified": d.Modified}
}

type devicePutCmd struct {
	Username string   `json:"username"`
	Hash     string   `json:"hash"`
	Subjects []string `json:"subjects"`
	Time     string   `json:"time"`
}

type deviceDeleteCmd struct {
	Username string `json:"username"`
}

type deviceResult struct {
	Created bool
	Device  *Device
	Err     *ditto.Error
}

// applyDevice applies a device command (called from fsm.Apply).
func (f *fsm) applyDevice(typ byte, payload []byte) deviceResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.devices == nil {
		f.devices = map[string]*Device{}
	}
	switch typ {
	case cmdDevicePut:
		var c devicePutCmd
		mustDecode(payload, &c)
		old, exists := f.devices[c.Username]
		d := &Device{Username: c.Username, Hash: c.Hash, Subjects: c.Subjects, Revision: 1, Created: c.Time, Modified: c.Time}
		if exists {
			d.Revision, d.Created = old.Revision+1, old.Created
		}
		f.devices[c.Username] = d
		return deviceResult{Created: !exists, Device: d}
	default: // cmdDeviceDelete
		var c deviceDeleteCmd
		mustDecode(payload, &c)
		old, ok := f.devices[c.Username]
		if !ok {
			return deviceResult{Err: ditto.ErrDeviceNotFound.New("The device '%s' does not exist.", c.Username)}
		}
		delete(f.devices, c.Username)
		return deviceResult{Device: old}
	}
}

func (f *fsm) device(username string) (*Device, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	d, ok := f.devices[username]
	return d, ok
}

func (f *fsm) deviceList() []*Device {
	f.mu.RLock()
	out := make([]*Device, 0, len(f.devices))
	for _, d := range f.devices {
		out = append(out, d)
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	return out
}

// Usernames are what MQTT clients send in CONNECT; subjects follow Ditto's
// <issuer>:<subject> form.
var (
	usernameRE = regexp.MustCompile(`^[a-zA-Z0-9._@:\-]{1,128}$`)
	subjectRE  = regexp.MustCompile(`^[a-zA-Z0-9._\-]+:[^\s]{1,256}$`)
)

// bcryptCost is the bcrypt work factor of device passwords.
const bcryptCost = 10

// DeviceSubjectPrefix is the issuer of a device's default subject
// (mqtt:<username>).
const DeviceSubjectPrefix = "mqtt:"

// PutDevice creates or replaces a device identity. The password is hashed
// here (bcrypt, salted) before it is proposed: the log and the state
// machine hold only the hash. Empty subjects mean mqtt:<username>.
func (s *Service) PutDevice(ctx context.Context, username, password string, subjects []string) (*Device, bool, error) {
	if !usernameRE.MatchString(username) {
		return nil, false, ditto.ErrDeviceInvalid.New("The device username '%s' is not valid: use 1 to 128 of [a-zA-Z0-9._@:-].", truncate(username, 140))
	}
	if n := len(password); n < 1 || n > 72 {
		return nil, false, ditto.ErrDeviceInvalid.New("The device password must be 1 to 72 bytes long.")
	}
	if len(subjects) == 0 {
		subjects = []string{DeviceSubjectPrefix + username}
	}
	if len(subjects) > 16 {
		return nil, false, ditto.ErrDeviceInvalid.New("A device may have at most 16 subjects.")
	}
	for _, sub := range subjects {
		if !subjectRE.MatchString(sub) {
			return nil, false, ditto.ErrDeviceInvalid.New("The subject '%s' is not of the form <issuer>:<subject>.", truncate(sub, 300))
		}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.cfg.DeviceHashCost)
	if err != nil {
		return nil, false, fmt.Errorf("connectivity: hash password: %w", err)
	}
	cmd := encodeCommand(cmdDevicePut, devicePutCmd{Username: username, Hash: string(hash), Subjects: subjects,
		Time: ditto.FormatTime(s.deps.Clock())})
	return s.proposeDevice(ctx, cmd)
}

// DeleteDevice removes a device identity.
func (s *Service) DeleteDevice(ctx context.Context, username string) error {
	_, _, err := s.proposeDevice(ctx, encodeCommand(cmdDeviceDelete, deviceDeleteCmd{Username: username}))
	return err
}

// Device returns the applied device, after a linearizable read fence.
func (s *Service) Device(ctx context.Context, username string) (*Device, error) {
	if err := s.deps.Log.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	d, ok := s.fsm.device(username)
	if !ok {
		return nil, ditto.ErrDeviceNotFound.New("The device '%s' does not exist.", truncate(username, 140))
	}
	return d, nil
}

// Devices returns every applied device, ordered by username.
func (s *Service) Devices(ctx context.Context) ([]*Device, error) {
	if err := s.deps.Log.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	return s.fsm.deviceList(), nil
}

// DeviceSubjects returns the subjects of an applied device (local state,
// no read fence: the broker asks on every message).
func (s *Service) DeviceSubjects(username string) ([]string, bool) {
	d, ok := s.fsm.device(username)
	if !ok {
		return nil, false
	}
	return d.Subjects, true
}

// AuthenticateDevice checks a device's password against the applied hash
// and returns its subjects. bcrypt is deliberately slow, so a successful
// check is remembered (a SHA-256 of hash and password, per username) until
// the device changes; a wrong password always takes the bcrypt path.
func (s *Service) AuthenticateDevice(username, password string) ([]string, bool) {
	d, ok := s.fsm.device(username)
	if !ok {
		// Spend the same time as a wrong password, so usernames cannot be
		// probed by timing.
		_ = bcrypt.CompareHashAndPassword(s.dummyHash(), []byte(password))
		return nil, false
	}
	sum := sha256.Sum256([]byte(d.Hash + "\x00" + password))
	if s.verified.ok(username, d.Hash, sum) {
		return d.Subjects, true
	}
	// Many clients of one device reconnecting at once (a gateway restart)
	// must not each pay for bcrypt: identical checks in flight share one.
	ok = s.verified.check(username, sum, func() bool {
		return bcrypt.CompareHashAndPassword([]byte(d.Hash), []byte(password)) == nil
	})
	if !ok {
		return nil, false
	}
	s.verified.store(username, d.Hash, sum)
	return d.Subjects, true
}

// dummyHash is a hash of the service's cost to compare unknown usernames
// against.
func (s *Service) dummyHash() []byte {
	s.dummyOnce.Do(func() {
		s.dummy, _ = bcrypt.GenerateFromPassword([]byte("not a device password"), s.cfg.DeviceHashCost)
	})
	return s.dummy
}

// verifiedCache remembers the last successful password check per device.
// It holds at most one entry per applied device (entries of a changed
// device are replaced by the next check; a bound guards against churn).
type verifiedCache struct {
	mu       sync.Mutex
	m        map[string]verifiedEntry
	inflight map[verifyKey]*verifyCall
}

type verifyKey struct {
	username string
	sum      [32]byte
}

type verifyCall struct {
	done chan struct{}
	ok   bool
}

// check runs fn once for concurrent identical checks and gives all of them
// its result.
func (c *verifiedCache) check(username string, sum [32]byte, fn func() bool) bool {
	k := verifyKey{username, sum}
	c.mu.Lock()
	if call, ok := c.inflight[k]; ok {
		c.mu.Unlock()
		<-call.done
		return call.ok
	}
	if c.inflight == nil {
		c.inflight = map[verifyKey]*verifyCall{}
	}
	call := &verifyCall{done: make(chan struct{})}
	c.inflight[k] = call
	c.mu.Unlock()
	call.ok = fn()
	c.mu.Lock()
	delete(c.inflight, k)
	c.mu.Unlock()
	close(call.done)
	return call.ok
}

type verifiedEntry struct {
	hash string
	sum  [32]byte
}

const maxVerified = 100_000

func (c *verifiedCache) ok(username, hash string, sum [32]byte) bool {
	c.mu.Lock()
	e, found := c.m[username]
	c.mu.Unlock()
	return found && e.hash == hash && subtle.ConstantTimeCompare(e.sum[:], sum[:]) == 1
}

func (c *verifiedCache) store(username, hash string, sum [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxVerified {
		c.m = map[string]verifiedEntry{}
	}
	c.m[username] = verifiedEntry{hash: hash, sum: sum}
}

func (s *Service) proposeDevice(ctx context.Context, cmd []byte) (*Device, bool, error) {
	res, err := s.deps.Log.Propose(ctx, cmd)
	if err != nil {
		return nil, false, err
	}
	r, ok := res.(deviceResult)
	if !ok {
		return nil, false, fmt.Errorf("connectivity: unexpected apply result %T", res)
	}
	if r.Err != nil {
		return nil, false, r.Err
	}
	return r.Device, r.Created, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// snapshotEntry is one record of a snapshot: a connection, or (with
// Device set) a device identity.
type snapshotEntry struct {
	Record
	Device *Device `json:"device,omitempty"`
}

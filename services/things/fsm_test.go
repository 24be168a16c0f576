package things

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

var t0 = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC).UnixMilli()

func newFSMService() *Service { return New(DefaultConfig(), Deps{}) }

func createEntry(id, body string) *entry {
	return &entry{op: opCreate, id: id, path: ditto.Pointer{}, value: []byte(body), time: t0}
}

func TestFSMApply(t *testing.T) {
	s := newFSMService()
	f := s.FSM()
	steps := []struct {
		name   string
		e      *entry
		status int
		code   string
		rev    int64
	}{
		{"create", createEntry("ns:a", `{"thingId":"ns:a","policyId":"ns:a","features":{"f":{"properties":{"n":0}}}}`), 201, "", 1},
		{"create again", createEntry("ns:a", `{"thingId":"ns:a","policyId":"ns:a"}`), 0, "things:thing.conflict", 0},
		{"create without policy", createEntry("ns:b", `{"thingId":"ns:b"}`), 0, "things:thing.notcreatable", 0},
		{"modify property", &entry{op: opModify, id: "ns:a", path: ditto.MustPointer("/features/f/properties/n"), value: []byte(`1`), time: t0 + 1}, 204, "", 2},
		{"modify new property", &entry{op: opModify, id: "ns:a", path: ditto.MustPointer("/features/f/properties/m"), value: []byte(`1`), time: t0 + 2}, 201, "", 3},
		{"modify missing thing", &entry{op: opModify, id: "ns:x", path: ditto.MustPointer("/attributes/a"), value: []byte(`1`), time: t0}, 0, "things:thing.notfound", 0},
		{"stale if-match", &entry{op: opModify, id: "ns:a", path: ditto.Pointer{}, value: []byte(`{"thingId":"ns:a"}`), ifMatch: `"rev:1"`, time: t0 + 3}, 0, "things:precondition.failed", 0},
		{"delete property", &entry{op: opDelete, id: "ns:a", path: ditto.MustPointer("/features/f/properties/m"), time: t0 + 4}, 204, "", 4},
		{"delete missing property", &entry{op: opDelete, id: "ns:a", path: ditto.MustPointer("/features/f/properties/m"), time: t0 + 4}, 0, "things:feature.property.notfound", 0},
		{"delete thing", &entry{op: opDelete, id: "ns:a", path: ditto.Pointer{}, time: t0 + 5}, 204, "", 5},
		{"modify deleted", &entry{op: opModify, id: "ns:a", path: ditto.MustPointer("/attributes"), value: []byte(`{}`), time: t0 + 6}, 0, "things:thing.notfound", 0},
		{"re-create", createEntry("ns:a", `{"thingId":"ns:a","policyId":"ns:a"}`), 201, "", 6},
	}
	for i, st := range steps {
		out := f.Apply(uint64(i+1), st.e.encode())
		switch v := out.(type) {
		case ditto.Result:
			if st.code != "" || v.Status != st.status || v.Revision != st.rev {
				t.Fatalf("%s: got %+v, want status %d rev %d code %q", st.name, v, st.status, st.rev, st.code)
			}
		case error:
			if errCode(v) != st.code {
				t.Fatalf("%s: got %v, want %q", st.name, v, st.code)
			}
			// A precondition failure carries the current entity tag.
			if et, ok := v.(interface{ ETag() string }); st.code == "things:precondition.failed" && (!ok || et.ETag() == "") {
				t.Fatalf("%s: precondition failure without the current ETag", st.name)
			}
		default:
			t.Fatalf("%s: result %T", st.name, out)
		}
	}
	rec, ok := s.Lookup("ns:a")
	if !ok || int64(rec.Created) != t0 || string(rec.JSON) != `{"policyId":"ns:a","thingId":"ns:a"}` {
		t.Fatalf("record %+v %s", rec, rec.JSON)
	}
}

func TestFSMEntryEnvelope(t *testing.T) {
	f := newFSMService().FSM()
	if out := f.Apply(1, []byte{0x80 | 0x05, 1, 2, 3}); out != nil {
		t.Fatalf("ignorable entry result %v", out)
	}
	for name, b := range map[string][]byte{
		"unknown type": {0x05, 1, 2, 0},
		"bad version":  {entryThingCommand, 9, 1, 0},
		"truncated":    createEntry("ns:a", `{}`).encode()[:10],
		"bad op":       {entryThingCommand, entryVersion, 99, 0},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f.Apply(2, b)
		})
	}
}

func TestEntryRoundTrip(t *testing.T) {
	e := &entry{op: opMerge, mayCreate: true, id: "ns:a", path: ditto.MustPointer("/features/f~0x/properties"), value: []byte(`{"a":null}`),
		time: -5, corrID: "c", origin: "nginx:x", ifMatch: `"rev:1"`, ifNone: "*", ifEqual: "skip", condition: "eq(a,1)"}
	meta := &entry{op: opModify, id: "ns:a", path: ditto.MustPointer("/attributes/x"), value: []byte(`1`), session: "ws-1",
		putMeta: `[{"key":"/unit","value":"m"}]`, delMeta: "a,b"}
	for _, e := range []*entry{e, meta} {
		got, err := decodeEntry(e.encode())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("got %+v\nwant %+v", got, e)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(createEntry("ns:a", `{"thingId":"ns:a","policyId":"ns:a"}`).encode())
	f.Add((&entry{op: opDelete, id: "ns:a", path: ditto.MustPointer("/attributes/x")}).encode())
	f.Add((&entry{op: opModify, id: "ns:a", path: ditto.MustPointer("/attributes/x"), value: []byte(`1`), session: "ws-1"}).encode())
	f.Add((&entry{op: opModify, id: "ns:a", path: ditto.Pointer{}, value: []byte(`{}`), putMeta: `[{"key":"*/k","value":1}]`}).encode())
	f.Add((&entry{op: opMerge, id: "ns:a", path: ditto.Pointer{}, value: []byte(`{}`), delMeta: "*"}).encode())
	f.Add([]byte{entryThingCommand, entryVersion, 2, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil {
			return
		}
		again, err := decodeEntry(e.encode())
		if err != nil || !reflect.DeepEqual(again, e) {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

// randomEntries builds a reproducible stream of thing writes over a few
// things, including failing ones.
func randomEntries(seed uint64, n int) [][]byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ids := []string{"ns:a", "ns:b", "ns:c", "ns:d"}
	paths := []string{"/attributes/x", "/attributes/y/z", "/features/f/properties/p", "/features/g", "/definition", "/attributes"}
	out := make([][]byte, n)
	for i := range out {
		id := ids[rng.IntN(len(ids))]
		e := &entry{id: id, path: ditto.Pointer{}, time: t0 + int64(i)}
		switch rng.IntN(7) {
		case 0:
			e.op, e.value = opCreate, []byte(fmt.Sprintf(`{"thingId":%q,"policyId":%q,"features":{"f":{}}}`, id, id))
		case 1:
			e.op = opDelete
			if rng.IntN(2) == 0 {
				e.path = ditto.MustPointer(paths[rng.IntN(len(paths))])
			}
		case 2:
			e.op, e.value = opMerge, []byte(fmt.Sprintf(`{"attributes":{"x":%d,"y":null}}`, rng.IntN(3)))
		default:
			e.op = opModify
			e.path = ditto.MustPointer(paths[rng.IntN(len(paths))])
			switch e.path.String() {
			case "/definition":
				e.value = []byte(`"a:b:1"`)
			case "/features/g", "/attributes":
				e.value = []byte(fmt.Sprintf(`{"v":%d}`, rng.IntN(3)))
			default:
				e.value = []byte(fmt.Sprintf(`%d`, rng.IntN(3)))
			}
			if rng.IntN(4) == 0 {
				e.ifEqual = ifEqualSkip
			}
			if rng.IntN(5) == 0 {
				e.ifMatch = fmt.Sprintf(`"rev:%d"`, rng.IntN(6))
			}
			if rng.IntN(6) == 0 {
				e.condition = fmt.Sprintf("eq(attributes/x,%d)", rng.IntN(3))
			}
			switch rng.IntN(6) {
			case 0:
				e.putMeta = fmt.Sprintf(`[{"key":"*/by","value":%d},{"key":"u","value":"m"}]`, i)
			case 1:
				e.delMeta = "u"
			}
		}
		out[i] = e.encode()
	}
	return out
}

func applyAll(t *testing.T, s *Service, first uint64, cmds [][]byte, batch bool) []string {
	t.Helper()
	var outs []any
	if batch {
		outs = s.FSM().(fsm).ApplyBatch(commands(first, cmds))
	} else {
		for i, c := range cmds {
			outs = append(outs, s.FSM().Apply(first+uint64(i), c))
		}
	}
	res := make([]string, len(outs))
	for i, o := range outs {
		res[i] = fmt.Sprintf("%v", o)
	}
	return res
}

// TestFSMDeterminism feeds the same random stream to several FSMs, one of
// them restored from a snapshot taken midway, and compares the states.
func TestFSMDeterminism(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			cmds := randomEntries(seed, 400)
			half := len(cmds) / 2
			a, b, c := newFSMService(), newFSMService(), newFSMService()
			resA := applyAll(t, a, 1, cmds, false)
			applyAll(t, b, 1, cmds[:half], true)
			snap, err := b.FSM().Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			applyAll(t, b, uint64(half+1), cmds[half:], true) // the capture must not change
			var buf bytes.Buffer
			if err := snap.Persist(&buf); err != nil {
				t.Fatal(err)
			}
			snap.Release()
			if err := c.FSM().Restore(&buf); err != nil {
				t.Fatal(err)
			}
			resC := applyAll(t, c, uint64(half+1), cmds[half:], false)
			if !reflect.DeepEqual(resA[half:], resC) {
				t.Fatal("results differ after restore")
			}
			for name, s := range map[string]*Service{"batch": b, "restored": c} {
				if !reflect.DeepEqual(a.cloneState(), s.cloneState()) {
					t.Fatalf("%s state differs", name)
				}
			}
			ok := 0
			for _, r := range resA {
				if strings.HasPrefix(r, "{") {
					ok++
				}
			}
			if ok < 50 {
				t.Fatalf("only %d successful commands; the stream tests too little", ok)
			}
		})
	}
}

func TestRestoreRejectsGarbage(t *testing.T) {
	s := newFSMService()
	for name, b := range map[string]string{"empty": "", "magic": "nope-nope-nope", "truncated": string(snapshotMagic) + "\x05ab"} {
		t.Run(name, func(t *testing.T) {
			if err := s.FSM().Restore(strings.NewReader(b)); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestApplyBatchEvents(t *testing.T) {
	bus := ditto.NewBus()
	var got []ditto.Signal
	bus.Observe(func(s ditto.Signal) { got = append(got, s) })
	s := New(DefaultConfig(), Deps{Bus: bus})
	p := ditto.MustPointer("/attributes/n")
	cmds := [][]byte{
		createEntry("ns:a", `{"thingId":"ns:a","policyId":"ns:a"}`).encode(),
		{0x80 | 0x07, 1},
		(&entry{op: opModify, id: "ns:a", path: p, value: []byte(`1`), time: t0 + 1, corrID: "c2"}).encode(),
		(&entry{op: opModify, id: "ns:a", path: p, value: []byte(`1`), time: t0 + 2, ifEqual: ifEqualSkip}).encode(),
		(&entry{op: opModify, id: "ns:a", path: p, value: []byte(`2`), time: t0 + 3}).encode(),
	}
	outs := s.FSM().(fsm).ApplyBatch(commands(10, cmds))
	if outs[1] != nil {
		t.Fatalf("ignored entry result %v", outs[1])
	}
	if err, ok := outs[3].(error); !ok || errCode(err) != "things:precondition.failed" {
		t.Fatalf("skip result %v", outs[3])
	}
	want := []struct {
		topic string
		rev   int64
		index uint64
		value string
	}{
		{"ns/a/things/twin/events/created", 1, 10, `{"policyId":"ns:a","thingId":"ns:a"}`},
		{"ns/a/things/twin/events/created", 2, 12, `1`},
		{"ns/a/things/twin/events/modified", 3, 14, `2`},
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Envelope.Topic != w.topic || g.Revision != w.rev || g.Index != w.index || string(g.Envelope.Value) != w.value || g.EntityID != "ns:a" {
			t.Fatalf("event %d: %+v", i, g)
		}
	}
	if got[1].Envelope.Headers[ditto.HeaderCorrelationID] != "c2" || got[1].Envelope.Timestamp != ditto.FormatTime(time.UnixMilli(t0+1)) {
		t.Fatalf("event headers %+v", got[1].Envelope)
	}
}

// TestModifyLeafMatchesFullRewrite checks the in-place write of existing
// attributes and properties (modifyLeaf) against decoding the thing,
// setting the value and encoding it again.
func TestModifyLeafMatchesFullRewrite(t *testing.T) {
	s := newFSMService()
	f := s.FSM()
	body := `{"thingId":"ns:a","policyId":"ns:a","attributes":{"a":1,"b":{"c":"x\"y","d":[1,2]},"k\"q":{"z":1},"ü":true},` +
		`"features":{"f":{"properties":{"n":0,"o":{"p":null}},"desiredProperties":{"n":5}},"g":{}}}`
	if out := f.Apply(1, createEntry("ns:a", body).encode()); out.(ditto.Result).Status != 201 {
		t.Fatalf("create: %v", out)
	}
	writes := []struct{ path, value string }{
		{"/features/f/properties/n", `42`},
		{"/features/f/properties/n", `{"z":1,"a":[true,"é\u2028<"]}`},
		{"/features/f/properties/o/p", `"v"`},
		{"/features/f/desiredProperties/n", `-1.5e3`},
		{"/attributes/a", `null`},
		{"/attributes/b/c", `"\\u0000 \t"`},
		{"/attributes/b/d", `[]`},
		{"/attributes/ü", `false`},
		{"/attributes/k\"q/z", `2`}, // escaped key on the path: the general path
		{"/attributes/new", `1`},    // a new value: the general path
	}
	for i, w := range writes {
		prev, _ := s.Lookup("ns:a")
		doc, err := ditto.DecodeJSON(prev.JSON)
		if err != nil {
			t.Fatal(err)
		}
		p := ditto.MustPointer(w.path)
		v := mustJSON(t, w.value)
		want := ditto.EncodeJSON(ditto.SetAt(doc, p, v))
		out := f.Apply(uint64(i+2), (&entry{op: opModify, id: "ns:a", path: p, value: []byte(w.value), time: t0 + int64(i)}).encode())
		res, ok := out.(ditto.Result)
		if !ok || res.Revision != prev.Revision+1 {
			t.Fatalf("%s: %v", w.path, out)
		}
		if res.Status == 204 && res.ETag != ditto.HashETag(v) {
			t.Errorf("%s: etag %s, want %s", w.path, res.ETag, ditto.HashETag(v))
		}
		rec, _ := s.Lookup("ns:a")
		if string(rec.JSON) != string(want) || rec.PolicyID != "ns:a" || rec.Created != prev.Created {
			t.Fatalf("%s = %s:\ngot  %s\nwant %s", w.path, w.value, rec.JSON, want)
		}
	}
	// Preconditions on the in-place path: a stale If-Match, and if-equal.
	p := ditto.MustPointer("/features/f/properties/n")
	stale := &entry{op: opModify, id: "ns:a", path: p, value: []byte(`1`), ifMatch: `"hash:0"`, time: t0}
	if err, ok := f.Apply(20, stale.encode()).(error); !ok || errCode(err) != "things:precondition.failed" {
		t.Fatalf("stale If-Match: %v", err)
	}
	same := &entry{op: opModify, id: "ns:a", path: p, value: []byte(`{"a":[true,"é\u2028<"],"z":1}`), ifEqual: ifEqualSkip, time: t0}
	if err, ok := f.Apply(21, same.encode()).(error); !ok || errCode(err) != "things:precondition.failed" {
		t.Fatalf("if-equal skip: %v", err)
	}
	big := &entry{op: opModify, id: "ns:a", path: p, value: []byte(`"` + strings.Repeat("x", DefaultConfig().MaxThingBytes) + `"`), time: t0}
	if err, ok := f.Apply(22, big.encode()).(error); !ok || errCode(err) != "things:thing.toolarge" {
		t.Fatalf("too large: %v", err)
	}
}

// TestApplyBatchChunks: a batch larger than one chunk applies every
// command and publishes the events in log order.
func TestApplyBatchChunks(t *testing.T) {
	bus := ditto.NewBus()
	var got []uint64
	bus.Observe(func(s ditto.Signal) { got = append(got, s.Index) })
	s := New(DefaultConfig(), Deps{Bus: bus})
	const n = 2*applyChunk + 37
	cmds := make([][]byte, n)
	for i := range cmds {
		id := fmt.Sprintf("ns:c%d", i)
		cmds[i] = createEntry(id, fmt.Sprintf(`{"thingId":%q,"policyId":%q}`, id, id)).encode()
	}
	outs := s.FSM().(fsm).ApplyBatch(commands(100, cmds))
	for i, o := range outs {
		if _, ok := o.(ditto.Result); !ok {
			t.Fatalf("command %d: %v", i, o)
		}
	}
	if len(got) != n {
		t.Fatalf("%d events for %d commands", len(got), n)
	}
	for i, idx := range got {
		if idx != 100+uint64(i) {
			t.Fatalf("event %d has index %d, want %d", i, idx, 100+i)
		}
	}
}

package node

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/dittonode/dittonode/consensus"
)

func TestForwardBatchFrames(t *testing.T) {
	now := time.Now()
	calls := []*fwdCall{
		{cmd: []byte("first"), deadline: now.Add(1500 * time.Millisecond)},
		{cmd: []byte("patient"), deadline: now.Add(time.Hour)}, // capped
		{cmd: []byte{}},
		{cmd: bytes.Repeat([]byte("x"), 300), deadline: now.Add(-time.Second)}, // floored to 1 ms
	}
	got, err := decodeForwardBatch(encodeForwardBatch(calls, now))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(calls) {
		t.Fatalf("%d commands, want %d", len(got), len(calls))
	}
	for i, want := range []time.Duration{1500 * time.Millisecond, rpcDefaultTimeout, rpcDefaultTimeout, time.Millisecond} {
		if got[i].timeout != want || !bytes.Equal(got[i].cmd, calls[i].cmd) {
			t.Errorf("command %d: %v %q, want %v %q", i, got[i].timeout, got[i].cmd, want, calls[i].cmd)
		}
	}
	results := []forwardResult{
		{entry: consensus.Committed{Index: 1 << 40, Term: 7}},
		{err: consensus.ErrNotApplied},
		{err: &consensus.NotLeaderError{}},
	}
	back, err := decodeForwardResults(string(encodeForwardResults(results)), len(results))
	if err != nil {
		t.Fatal(err)
	}
	if back[0].err != nil || back[0].entry != results[0].entry ||
		!errors.Is(back[1].err, consensus.ErrNotApplied) || !errors.Is(back[2].err, consensus.ErrNotLeader) {
		t.Fatalf("results %v", back)
	}
	if _, err := decodeForwardResults(string(encodeForwardResults(results)), 2); err == nil {
		t.Fatal("a response for another batch size was accepted")
	}
	for name, b := range map[string][]byte{
		"empty":    {},
		"no cmds":  {0},
		"too long": {1, 5, 9, 'a'},
		"trailing": append(encodeForwardBatch(calls[:1], now), 0),
	} {
		if _, err := decodeForwardBatch(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzForwardBatchDecode(f *testing.F) {
	now := time.Now()
	f.Add(encodeForwardBatch([]*fwdCall{{cmd: []byte("a"), deadline: now.Add(time.Second)}, {cmd: []byte("bc")}}, now))
	f.Add(encodeForwardResults([]forwardResult{{entry: consensus.Committed{Index: 9, Term: 2}}, {err: consensus.ErrTimeout}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if cmds, err := decodeForwardBatch(b); err == nil {
			if len(cmds) == 0 || len(cmds) > maxBatchCommands {
				t.Fatalf("%d commands", len(cmds))
			}
			for _, c := range cmds {
				if c.timeout < time.Millisecond || c.timeout > rpcDefaultTimeout {
					t.Fatalf("timeout %v", c.timeout)
				}
			}
		}
		_, _ = decodeForwardResults(string(b), 2)
	})
}

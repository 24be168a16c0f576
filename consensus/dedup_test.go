package consensus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"
)

func TestDedupTable(t *testing.T) {
	const w = dedupWindow
	steps := []struct {
		origin string
		seq    uint64
		want   verdict
	}{
		{"a", 5, admitted},
		{"a", 5, duplicate},
		{"a", 7, admitted},
		{"a", 6, admitted}, // reordered within the window
		{"a", 6, duplicate},
		{"a", 1, admitted}, // below the first one seen, still in the window
		{"b", 5, admitted}, // origins are independent
		{"a", 7 + w, admitted},
		{"a", 7, stale}, // fell out of the window
		{"a", 8, admitted},
		{"a", 8, duplicate},
		{"a", 7 + 1<<32, admitted}, // a restart's fresh block clears the window
		{"a", 7 + w, stale},
	}
	var tbl dedupTable
	for i, s := range steps {
		if got := tbl.admit([]byte(s.origin), s.seq, uint64(i+1)); got != s.want {
			t.Fatalf("step %d: admit(%s, %d) = %d, want %d", i, s.origin, s.seq, got, s.want)
		}
	}
	if seen, old := tbl.state("a", 7+1<<32); !seen || old {
		t.Errorf("state of the latest = seen %t old %t", seen, old)
	}
	if seen, old := tbl.state("a", 3); seen || !old {
		t.Errorf("state of an old one = seen %t old %t", seen, old)
	}
	if seen, old := tbl.state("c", 1); seen || old {
		t.Errorf("state of an unknown origin = seen %t old %t", seen, old)
	}

	t.Run("snapshot round trip", func(t *testing.T) {
		var buf bytes.Buffer
		if err := tbl.writeTo(&buf); err != nil {
			t.Fatal(err)
		}
		got, err := readDedupTable(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tbl.m, got.m, cmp.AllowUnexported(originState{})); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	})

	t.Run("eviction is by log position", func(t *testing.T) {
		var tbl dedupTable
		for i := range maxDedupOrigins {
			tbl.admit(fmt.Appendf(nil, "o%04d", i), 1, uint64(10+i))
		}
		tbl.admit([]byte("o0000"), 2, 5000) // o0000 is now the most recent
		tbl.admit([]byte("new"), 1, 5001)
		if len(tbl.m) != maxDedupOrigins {
			t.Fatalf("%d origins, want %d", len(tbl.m), maxDedupOrigins)
		}
		if _, ok := tbl.m["o0001"]; ok {
			t.Error("o0001, the least recent origin, was kept")
		}
		if _, ok := tbl.m["o0000"]; !ok {
			t.Error("o0000 was evicted although recent")
		}
	})
}

func TestHeader(t *testing.T) {
	b := appendHeader([]byte(nil), "node-1", 42)
	b = append(b, "payload"...)
	origin, seq, n, ok := parseHeader(b)
	if !ok || string(origin) != "node-1" || seq != 42 || string(b[n:]) != "payload" {
		t.Fatalf("parseHeader = %q %d %q %t", origin, seq, b[n:], ok)
	}
	for _, bad := range [][]byte{nil, {headerTag}, {2, 1, 'a', 0, 0, 0, 0, 0, 0, 0, 1}, {headerTag, 0, 0, 0, 0, 0, 0, 0, 0, 1},
		appendHeader(nil, "a", 0), appendHeader(nil, "abc", 1)[:10]} {
		if _, _, _, ok := parseHeader(bad); ok {
			t.Errorf("parseHeader(%x) accepted", bad)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(appendHeader(nil, "n1", 1))
	f.Add(append(appendHeader(nil, "12D3KooWabc", 1<<40), "cmd"...))
	f.Add([]byte{headerTag, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		origin, seq, n, ok := parseHeader(data)
		if !ok {
			return
		}
		again := appendHeader(nil, string(origin), seq)
		if !bytes.Equal(again, data[:n]) {
			t.Fatalf("header %x re-encodes as %x", data[:n], again)
		}
	})
}

func FuzzReadDedupTable(f *testing.F) {
	var tbl dedupTable
	tbl.admit([]byte("a"), 3, 1)
	tbl.admit([]byte("b"), 9000, 2)
	var buf bytes.Buffer
	tbl.writeTo(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := readDedupTable(bytes.NewReader(data))
		if err != nil {
			return
		}
		var again bytes.Buffer
		if err := got.writeTo(&again); err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, again.Bytes()) {
			t.Fatalf("table does not re-encode to its input")
		}
	})
}

func fwdLog(index uint64, origin string, seq uint64, cmd string) *raft.Log {
	return &raft.Log{Index: index, Type: raft.LogCommand, Data: []byte(cmd), Extensions: appendHeader(nil, origin, seq)}
}

func TestAdapterDedup(t *testing.T) {
	const w = dedupWindow
	for _, kind := range fsmKinds {
		t.Run(kind.name, func(t *testing.T) {
			fsm := kind.new()
			var applied appliedTracker
			var pending proposals
			pending.init(8)
			a := newFSMAdapter(fsm, &applied)
			a.self, a.pending = "me", &pending
			ctx := context.Background()
			mine := map[uint64]*proposal{}
			for _, seq := range []uint64{1, 2, 3 + w} {
				pr, err := pending.add(ctx, nil, seq)
				if err != nil {
					t.Fatal(err)
				}
				mine[seq] = pr
			}
			res := a.ApplyBatch([]*raft.Log{
				fwdLog(1, "peer", 1, "a"),
				fwdLog(2, "peer", 1, "a-again"),
				{Index: 3, Type: raft.LogCommand, Data: []byte("plain")},
				fwdLog(4, "me", 1, "mine"),
				fwdLog(5, "me", 1, "mine-again"),
				fwdLog(6, "me", 3+w, "mine-later"),
				fwdLog(7, "me", 2, "mine-too-old"),
				{Index: 8, Type: raft.LogCommand, Data: []byte("foreign ext"), Extensions: []byte{9, 9}},
			})
			want := []entry{{1, "a", 0}, {3, "plain", 0}, {4, "mine", 0}, {6, "mine-later", 0}, {8, "foreign ext", 0}}
			if diff := diffSlices(want, fsm.snapshotEntries()); diff != "" {
				t.Fatalf("applied: %s", diff)
			}
			for _, i := range []int{1, 4, 6} {
				if res[i] != nil {
					t.Errorf("result %d of a dropped entry = %v", i, res[i])
				}
			}
			<-mine[1].done
			if r, ok := mine[1].res.(result); !ok || r.Index != 4 || mine[1].err != nil {
				t.Errorf("seq 1 got %v, %v; want the result of index 4", mine[1].res, mine[1].err)
			}
			<-mine[3+w].done
			if r, ok := mine[3+w].res.(result); !ok || r.Index != 6 {
				t.Errorf("seq %d got %v, want the result of index 6", 3+w, mine[3+w].res)
			}
			<-mine[2].done
			if !errors.Is(mine[2].err, ErrNotApplied) {
				t.Errorf("stale seq 2 got %v, want ErrNotApplied", mine[2].err)
			}

			t.Run("restore settles covered proposals", func(t *testing.T) {
				snap, err := a.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				var sink memSink
				if err := snap.Persist(&sink); err != nil {
					t.Fatal(err)
				}
				var pending2 proposals
				pending2.init(8)
				b := newFSMAdapter(kind.new(), &appliedTracker{})
				b.self, b.pending = "me", &pending2
				covered, _ := pending2.add(ctx, nil, 3+w)
				old, _ := pending2.add(ctx, nil, 2)
				future, _ := pending2.add(ctx, nil, 4+w)
				if err := b.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
					t.Fatal(err)
				}
				<-covered.done
				if !errors.Is(covered.err, ErrLeadershipLost) {
					t.Errorf("covered proposal got %v, want ErrLeadershipLost (applied, result lost)", covered.err)
				}
				<-old.done
				if !errors.Is(old.err, ErrNotApplied) {
					t.Errorf("old proposal got %v, want ErrNotApplied", old.err)
				}
				select {
				case <-future.done:
					t.Error("a proposal the snapshot does not cover was settled")
				default:
				}
				if diff := cmp.Diff(a.dedup.m, b.dedup.m, cmp.AllowUnexported(originState{})); diff != "" {
					t.Errorf("restored table (-want +got):\n%s", diff)
				}
			})
		})
	}
}

func TestErrorCodes(t *testing.T) {
	sentinels := []error{ErrNotLeader, ErrNotApplied, ErrMalformed, ErrLeadershipLost, ErrTimeout, ErrClosed, context.Canceled}
	tests := []struct {
		name string
		err  error
		code string
	}{
		{"nil", nil, ""},
		{"not leader", &NotLeaderError{LeaderID: "n2", LeaderAddr: "n2"}, CodeNotLeader},
		{"not applied", fmt.Errorf("%w: dial refused", ErrNotApplied), CodeNotApplied},
		{"not applied timeout", fmt.Errorf("%w: %w", ErrNotApplied, ErrTimeout), CodeNotApplied},
		{"malformed", fmt.Errorf("%w: short", ErrMalformed), CodeMalformed},
		{"leadership lost", ErrLeadershipLost, CodeLeadershipLost},
		{"timeout", fmt.Errorf("%w: %w", ErrTimeout, context.DeadlineExceeded), CodeTimeout},
		{"deadline", context.DeadlineExceeded, CodeTimeout},
		{"canceled", context.Canceled, CodeCanceled},
		{"closed", ErrClosed, CodeClosed},
		{"other", errors.New("disk on fire"), CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code := ErrorCode(tt.err)
			if code != tt.code {
				t.Fatalf("ErrorCode = %q, want %q", code, tt.code)
			}
			var msg string
			if tt.err != nil {
				msg = tt.err.Error()
			}
			back := ErrorFromCode(code, msg)
			if (back == nil) != (tt.err == nil) {
				t.Fatalf("ErrorFromCode = %v", back)
			}
			if back == nil {
				return
			}
			if back.Error() != "remote: "+msg {
				t.Errorf("message %q", back.Error())
			}
			if ErrorCode(back) != code {
				t.Errorf("code of the rebuilt error = %q, want %q", ErrorCode(back), code)
			}
			// The primary sentinel survives; deadline errors become ErrTimeout.
			for _, s := range sentinels {
				if errors.Is(back, s) && !errors.Is(tt.err, s) && !(s == ErrTimeout && code == CodeTimeout) {
					t.Errorf("rebuilt error matches %v, the original does not", s)
				}
			}
		})
	}
}

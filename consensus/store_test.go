package consensus

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLogStoreKinds checks which store a directory gets and that both
// kinds keep their entries, the stable store (sequence reservation) and
// the stats across a restart with fsync on.
func TestLogStoreKinds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		create string // LogStore of the first start
		reopen string // LogStore asked for on restart
		want   string // the file that must exist
		absent string // the file that must not exist
	}{
		{"new dir gets the wal", "", "", filepath.Join(walDir, "wal-meta.db"), boltFile},
		{"bolt dir stays bolt", LogStoreBolt, LogStoreWAL, boltFile, walDir},
		{"wal dir stays wal", LogStoreWAL, LogStoreBolt, filepath.Join(walDir, "wal-meta.db"), boltFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(dir, "n1")
			cfg.NoSync = false
			cfg.LogStore = tc.create
			fsm := &batchTestFSM{}
			g := mustStart(t, cfg, fsm, Deps{Logger: testLogger(t)})
			waitLeader(t, g)
			proposeParallel(t, g, "a", 200, 16)
			st := g.Stats()
			if st.LogEntries < 200 || st.LogWrites == 0 || st.LogWrites > st.LogEntries {
				t.Errorf("stats after 200 proposals: %+v", st)
			}
			if st.ApplyEntries < 200 || st.ApplyBatches == 0 || st.ApplyTime <= 0 {
				t.Errorf("apply stats after 200 proposals: %+v", st)
			}
			seq := g.seqCeil.Load()
			want := fsm.snapshotEntries()
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}
			if !HasLogStore(dir) {
				t.Fatal("HasLogStore = false after a run")
			}
			for name, exists := range map[string]bool{tc.want: true, tc.absent: false} {
				_, err := os.Stat(filepath.Join(dir, name))
				if (err == nil) != exists {
					t.Errorf("%s exists = %v, want %v", name, err == nil, exists)
				}
			}

			cfg.LogStore = tc.reopen
			fsm2 := &batchTestFSM{}
			g2 := mustStart(t, cfg, fsm2, Deps{Logger: testLogger(t)})
			waitLeader(t, g2)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := g2.ReadBarrier(ctx); err != nil {
				t.Fatal(err)
			}
			if diff := diffSlices(want, fsm2.snapshotEntries()); diff != "" {
				t.Fatalf("entries after restart: %s", diff)
			}
			if got := g2.seqCeil.Load(); got <= seq {
				t.Errorf("sequence ceiling after restart %d, want above %d", got, seq)
			}
			if _, err := g2.Propose(ctx, []byte("after")); err != nil {
				t.Fatal(err)
			}
		})
	}
	if HasLogStore(t.TempDir()) {
		t.Error("HasLogStore(empty dir) = true")
	}
}

// TestLogStoreConfig rejects an unknown kind.
func TestLogStoreConfig(t *testing.T) {
	cfg := testConfig(t.TempDir(), "n1")
	cfg.LogStore = "leveldb"
	if err := cfg.Validate(); err == nil {
		t.Fatal("Validate accepted log store leveldb")
	}
	for _, k := range []string{"", LogStoreWAL, LogStoreBolt} {
		cfg.LogStore = k
		if err := cfg.Validate(); err != nil {
			t.Errorf("Validate(%q): %v", k, err)
		}
	}
}

package consensus

import (
	"testing"
	"time"
)

// TestStats checks the write-pipeline counters against a known load with
// fsync on: every entry was written and applied, in fewer batches than
// entries when 16 proposers share them.
func TestStats(t *testing.T) {
	cfg := testConfig(t.TempDir(), "n1")
	cfg.NoSync = false
	g := mustStart(t, cfg, &batchTestFSM{}, Deps{Logger: testLogger(t)})
	waitLeader(t, g)
	before := g.Stats()
	proposeParallel(t, g, "a", 400, 16)
	st := g.Stats().Sub(before)
	if st.LogCommands < 400 || st.LogWrites == 0 || st.LogWrites > st.LogEntries || st.LogEntries > st.LogCommands || st.LogWriteTime <= 0 {
		t.Errorf("log stats after 400 proposals: %+v", st)
	}
	if st.PackedCommands != 400 || st.Packs == 0 || st.Packs > st.LogEntries {
		t.Errorf("pack stats after 400 proposals: %+v", st)
	}
	if st.ApplyEntries < st.Packs || st.ApplyBatches == 0 || st.ApplyBatches > st.ApplyEntries || st.ApplyTime <= 0 {
		t.Errorf("apply stats after 400 proposals: %+v", st)
	}
	if st.EntriesPerLogWrite() < 1 || st.EntriesPerApply() < 1 || st.LogWriteMean() <= 0 || st.ApplyMean() <= 0 {
		t.Errorf("derived stats: %.1f entries/write, %.1f entries/apply, %s/write, %s/apply",
			st.EntriesPerLogWrite(), st.EntriesPerApply(), st.LogWriteMean(), st.ApplyMean())
	}
	t.Logf("%.1f commands in %.1f entries per fsync'd write (%s each), %.1f commands per entry, %.1f entries per apply (%s each)",
		st.CommandsPerLogWrite(), st.EntriesPerLogWrite(), st.LogWriteMean().Round(time.Microsecond), st.CommandsPerPack(),
		st.EntriesPerApply(), st.ApplyMean().Round(time.Microsecond))
	if (Stats{}).EntriesPerLogWrite() != 0 || (Stats{}).ApplyMean() != 0 {
		t.Error("empty stats divide by zero")
	}
}

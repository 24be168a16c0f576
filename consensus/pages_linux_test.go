package consensus

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// mappedKB returns this process's resident kilobytes of mappings of path
// (/proc/self/smaps).
func mappedKB(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	kb, in := 0, false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) > 0 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			in = len(f) >= 6 && strings.Join(f[5:], " ") == path
			continue
		}
		if in && len(f) >= 2 && f[0] == "Rss:" {
			n, _ := strconv.Atoi(f[1])
			kb += n
		}
	}
	return kb
}

// TestPagedStoreDropsPages writes and reads a log of 8 MB through a real
// bolt file, compacts it, and checks that the file's resident pages are
// given back while every entry left reads back intact, and that writes and
// reads go on as before.
func TestPagedStoreDropsPages(t *testing.T) {
	dir := t.TempDir()
	path, err := filepath.Abs(filepath.Join(dir, "raft dir", "raft.db")) // a space in the path
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	s := newPagedStore(bolt, path)
	defer s.Close()
	drops := 0
	s.drop = func(p string) error { drops++; return dropMappedPages(p) }

	val := func(i uint64) []byte { return bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 512) }
	const n = 8000
	for i := uint64(1); i <= n; i += 100 {
		logs := make([]*raft.Log, 0, 100)
		for j := i; j < i+100; j++ {
			logs = append(logs, &raft.Log{Index: j, Term: 1, Type: raft.LogCommand, Data: val(j)})
		}
		if err := s.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
	}
	check := func(from, to uint64) {
		t.Helper()
		for i := from; i <= to; i++ {
			var l raft.Log
			if err := s.GetLog(i, &l); err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
			if !bytes.Equal(l.Data, val(i)) {
				t.Fatalf("entry %d reads back wrong", i)
			}
		}
	}
	check(1, n)
	before := mappedKB(t, path)
	if before < 4<<10 {
		t.Fatalf("only %d kB of the log are resident before the compaction; the test reads 8 MB", before)
	}
	if err := s.DeleteRange(1, n-1000); err != nil {
		t.Fatal(err)
	}
	after := mappedKB(t, path)
	t.Logf("resident pages of the log file: %d kB before the compaction, %d kB after", before, after)
	if drops != 1 || after > before/8 {
		t.Fatalf("%d drops; %d kB resident after the compaction, %d kB before", drops, after, before)
	}
	check(n-999, n)
	if err := s.StoreLogs([]*raft.Log{{Index: n + 1, Term: 1, Type: raft.LogCommand, Data: val(n + 1)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("k"), 7); err != nil {
		t.Fatal(err)
	}
	check(n-999, n+1)
	if v, err := s.GetUint64([]byte("k")); err != nil || v != 7 {
		t.Fatalf("stable store: %d, %v", v, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.dropPages(); err != nil || drops != 1 {
		t.Fatalf("a drop after Close: %d drops, %v", drops, err)
	}
}

func TestFileMapping(t *testing.T) {
	for _, c := range []struct {
		line string
		ok   bool
	}{
		{"7f01a000-7f01c000 r--s 00000000 fd:01 1234 /data/raft/things/raft.db", true},
		{"7f01a000-7f01c000 r--s 00000000 fd:01 1234   /data/raft/things/raft.db", true},
		{"7f01a000-7f01c000 r--p 00000000 fd:01 1234 /data/raft/things/raft.db", false},   // private
		{"7f01a000-7f01c000 r--s 00000000 fd:01 1235 /data/raft/things/raft.db", false},   // another inode
		{"7f01234000-7f01c000 r--s 00000000 fd:01 1234 /data/raft/things/raft.db", false}, // end before start
		{"7f01a000-7f01c000 r--s 00000000 fd:01 1234 /data/raft/things/raft.db (deleted)", false},
		{"7f01a000-7f01c000 rw-p 00000000 00:00 0", false},
	} {
		s, e, ok := fileMapping([]byte(c.line), 1234, "/data/raft/things/raft.db")
		if ok != c.ok || (ok && (s != 0x7f01a000 || e != 0x7f01c000)) {
			t.Errorf("%q: %x-%x %v, want %v", c.line, s, e, ok, c.ok)
		}
	}
}

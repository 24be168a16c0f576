package consensus

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// dropMappedPages drops this process's resident pages of every shared
// mapping of the file at path (madvise MADV_DONTNEED). For a shared file
// mapping that only removes the pages from the process's page tables: the
// file's contents stay in the page cache, and a later read of the mapping
// maps them in again. The caller guarantees that nothing maps or unmaps
// the file meanwhile (pagedStore.mu).
func dropMappedPages(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		start, end, ok := fileMapping(sc.Bytes(), st.Ino, abs)
		if !ok {
			continue
		}
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, start, end-start, syscall.MADV_DONTNEED); e != 0 {
			return fmt.Errorf("madvise %s: %w", abs, e)
		}
	}
	return sc.Err()
}

// fileMapping parses one line of /proc/self/maps ("start-end perms offset
// dev inode path") and reports the address range when the line maps the
// file with inode ino at path, shared.
func fileMapping(line []byte, ino uint64, path string) (start, end uintptr, ok bool) {
	var f [5][]byte
	rest := line
	for i := range f {
		rest = bytes.TrimLeft(rest, " ")
		n := bytes.IndexByte(rest, ' ')
		if n < 0 {
			return 0, 0, false
		}
		f[i], rest = rest[:n], rest[n:]
	}
	// The path is the rest of the line (it may hold spaces).
	if string(bytes.TrimLeft(rest, " ")) != path || len(f[1]) != 4 || f[1][3] != 's' {
		return 0, 0, false
	}
	if n, err := strconv.ParseUint(string(f[4]), 10, 64); err != nil || n != ino {
		return 0, 0, false
	}
	lo, hi, found := bytes.Cut(f[0], []byte{'-'})
	if !found {
		return 0, 0, false
	}
	s, err1 := strconv.ParseUint(string(lo), 16, 64)
	e, err2 := strconv.ParseUint(string(hi), 16, 64)
	if err1 != nil || err2 != nil || e <= s {
		return 0, 0, false
	}
	return uintptr(s), uintptr(e), true
}

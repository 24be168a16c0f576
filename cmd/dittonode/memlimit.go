package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// applyMemoryLimit sets the runtime's soft memory limit to limit bytes
// (node.Config.MemoryLimit; 0 leaves the runtime without one), unless
// GOMEMLIMIT is set: the runtime applied that one already.
func applyMemoryLimit(limit int64, getenv func(string) string, log *slog.Logger) {
	if env := getenv("GOMEMLIMIT"); env != "" {
		log.Info("memory limit from GOMEMLIMIT", "limit", env)
		return
	}
	if limit <= 0 {
		debug.SetMemoryLimit(math.MaxInt64)
		return
	}
	debug.SetMemoryLimit(limit)
	log.Debug("soft memory limit set", "bytes", limit)
}

// parseSize parses a byte size: a plain number of bytes or a number with
// one of the suffixes B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB
// (powers of 1024). "0" is zero.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mul    float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
	}
	mul := 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mul = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mul
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a size like 200MiB", s)
	}
	if v < 0 {
		return 0, errors.New("a size cannot be negative")
	}
	b := v * mul
	if b >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(b), nil
}

package consensus

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// captureHandler records slog records as "LEVEL msg k=v ..." lines.
type captureHandler struct {
	mu    *sync.Mutex
	lines *[]string
	level slog.Level
	attrs []slog.Attr
}

func newCapture(level slog.Level) (*captureHandler, func() []string) {
	h := &captureHandler{mu: new(sync.Mutex), lines: new([]string), level: level}
	return h, func() []string {
		h.mu.Lock()
		defer h.mu.Unlock()
		return slices.Clone(*h.lines)
	}
}

func (h *captureHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range h.attrs {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.lines = append(*h.lines, b.String())
	return nil
}

func (h *captureHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(slices.Clone(h.attrs), attrs...)
	return &c
}

func (h *captureHandler) WithGroup(string) slog.Handler { return h }

func TestHCLogAdapter(t *testing.T) {
	tests := []struct {
		name  string
		level slog.Level
		log   func(hclog.Logger)
		want  []string
	}{
		{
			name:  "levels and args",
			level: levelTrace,
			log: func(l hclog.Logger) {
				l.Trace("t", "k", 1)
				l.Debug("d")
				l.Info("i")
				l.Warn("w")
				l.Error("e", "err", "boom")
			},
			want: []string{
				"DEBUG-4 t component=raft k=1",
				"DEBUG d component=raft",
				"INFO i component=raft",
				"WARN w component=raft",
				"ERROR e component=raft err=boom",
			},
		},
		{
			name:  "handler level filters",
			level: slog.LevelWarn,
			log: func(l hclog.Logger) {
				l.Info("dropped")
				l.Warn("kept")
			},
			want: []string{"WARN kept component=raft"},
		},
		{
			name:  "named and with",
			level: slog.LevelInfo,
			log: func(l hclog.Logger) {
				l.Named("net").With("peer", "n2").Info("hello", "x", true)
				l.ResetNamed("other").Info("reset")
			},
			want: []string{
				"INFO hello component=raft.net peer=n2 x=true",
				"INFO reset component=other",
			},
		},
		{
			name:  "set level",
			level: slog.LevelDebug,
			log: func(l hclog.Logger) {
				l.SetLevel(hclog.Error)
				l.Warn("dropped")
				l.Error("kept")
			},
			want: []string{"ERROR kept component=raft"},
		},
		{
			name:  "standard logger infers levels",
			level: slog.LevelDebug,
			log: func(l hclog.Logger) {
				std := l.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
				std.Print("[WARN] raft: slow")
				std.Print("[DEBUG] detail")
				std.Print("plain")
			},
			want: []string{
				"WARN raft: slow component=raft",
				"DEBUG detail component=raft",
				"INFO plain component=raft",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, lines := newCapture(tt.level)
			tt.log(newHCLog(slog.New(h), "raft"))
			if diff := diffSlices(tt.want, lines()); diff != "" {
				t.Errorf("logged lines: %s\ngot %q", diff, lines())
			}
		})
	}
}

func TestHCLogAdapterLevelQueries(t *testing.T) {
	h, _ := newCapture(slog.LevelInfo)
	l := newHCLog(slog.New(h), "raft")
	if l.IsDebug() || l.IsTrace() || !l.IsInfo() || !l.IsWarn() || !l.IsError() {
		t.Errorf("Is* disagree with an Info handler")
	}
	if got := l.GetLevel(); got != hclog.Info {
		t.Errorf("GetLevel = %v, want Info", got)
	}
	if l.Name() != "raft" || len(l.With("a", 1).ImpliedArgs()) != 2 {
		t.Errorf("Name or ImpliedArgs wrong")
	}
	if w := l.StandardWriter(nil); w == nil {
		t.Error("nil StandardWriter")
	} else if _, err := w.Write([]byte("a\nb\n")); err != nil {
		t.Error(err)
	}
}

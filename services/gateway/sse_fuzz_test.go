package gateway

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzSplitOptions: search options come from the query string; splitting
// never panics, keeps every non-separator byte in order and yields no empty
// option.
func FuzzSplitOptions(f *testing.F) {
	for _, s := range []string{"", "size(2)", "sort(+a,-b),size(5)", `cursor(x),sort(+thingId)`, `a("x,)",'y'),b`, "((,", ",,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		opts := splitOptions(s)
		for _, o := range opts {
			if o == "" || o != strings.TrimSpace(o) {
				t.Fatalf("option %q of %q", o, s)
			}
			if !strings.Contains(s, o) {
				t.Fatalf("option %q is not part of %q", o, s)
			}
		}
	})
}

// FuzzSSEField: any value becomes complete "name:" lines, so a payload can
// never inject SSE fields or end an event early.
func FuzzSSEField(f *testing.F) {
	for _, s := range []string{"", "a", "a\nb", "a\r\nb\n", "\n\n", "data:x\n\nid:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		out := appendSSEField(nil, "data", []byte(v))
		if !bytes.HasSuffix(out, []byte("\n")) {
			t.Fatalf("%q does not end a line", out)
		}
		lines := bytes.Split(out[:len(out)-1], []byte("\n"))
		var data []string
		for _, l := range lines {
			if !bytes.HasPrefix(l, []byte("data:")) {
				t.Fatalf("line %q of %q", l, out)
			}
			data = append(data, string(l[len("data:"):]))
		}
		want := strings.ReplaceAll(strings.ReplaceAll(v, "\r\n", "\n"), "\r", "\n")
		if got := strings.Join(data, "\n"); got != want {
			t.Fatalf("payload %q came back as %q", v, got)
		}
	})
}

package ditto

import (
	"regexp"
	"testing"
)

func TestRevisionETag(t *testing.T) {
	if got := RevisionETag(3); got != `"rev:3"` {
		t.Fatalf("RevisionETag = %s", got)
	}
}

func TestHashETag(t *testing.T) {
	a := HashETag(mustJSON(t, `{"b":1,"a":[true,"x"]}`))
	b := HashETag(mustJSON(t, `{"a":[true,"x"],"b":1}`))
	c := HashETag(mustJSON(t, `{"a":[true,"x"],"b":2}`))
	if a != b {
		t.Fatalf("equal JSON, different tags: %s %s", a, b)
	}
	if a == c {
		t.Fatal("different JSON, same tag")
	}
	if !regexp.MustCompile(`^"hash:[0-9a-f]+"$`).MatchString(a) {
		t.Fatalf("tag format: %s", a)
	}
	if HashETag(nil) == HashETag("null") {
		t.Fatal("null and the string \"null\" must differ")
	}
}

func TestMatchETag(t *testing.T) {
	cur := RevisionETag(3)
	tests := []struct {
		name   string
		header string
		cur    string
		exists bool
		want   bool
	}{
		{"exact", `"rev:3"`, cur, true, true},
		{"other", `"rev:2"`, cur, true, false},
		{"list", `"rev:1", "rev:3"`, cur, true, true},
		{"list no spaces", `"rev:1","rev:2"`, cur, true, false},
		{"star", `*`, cur, true, true},
		{"star missing", `*`, "", false, false},
		{"tag missing", `"rev:3"`, cur, false, false},
		{"weak", `W/"rev:3"`, cur, true, true},
		{"unquoted", `rev:3`, cur, true, true},
		{"empty header", ``, cur, true, false},
		{"empty current", `""`, "", true, false},
		{"star in list", `"rev:9", *`, cur, true, true},
		{"hash", `"hash:abc"`, `"hash:abc"`, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MatchETag(tt.header, tt.cur, tt.exists); got != tt.want {
				t.Fatalf("MatchETag(%q,%q,%v) = %v", tt.header, tt.cur, tt.exists, got)
			}
		})
	}
}

func TestStrongIfMatch(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`"rev:1"`, `"rev:1"`},
		{`*`, `*`},
		{`W/"rev:1"`, `""`},
		{`W/"rev:1", "rev:2"`, `"rev:2"`},
		{`"aW/b"`, `"aW/b"`},
	} {
		if got := StrongIfMatch(tt.in); got != tt.want {
			t.Errorf("StrongIfMatch(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if MatchETag(StrongIfMatch(`W/"rev:3"`), RevisionETag(3), true) {
		t.Error("a weak tag matched under If-Match")
	}
}

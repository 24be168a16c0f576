package mqtt

import "testing"

func TestFilterMatches(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+/c", "a/b/c", true},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "a/b", true},
		{"+", "a", true},
		{"+", "a/b", false},
		{"+/+", "a/b", true},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"$share/g/a/+", "a/b", true},
		{"$share/g", "a", false},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
	}
	for _, c := range cases {
		if got := filterMatches(c.filter, c.topic); got != c.want {
			t.Errorf("filterMatches(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}

func FuzzFilterMatches(f *testing.F) {
	f.Add("a/+/#", "a/b/c")
	f.Add("#", "$x")
	f.Fuzz(func(t *testing.T, filter, topic string) {
		got := filterMatches(filter, topic)
		if filter == topic && filter != "" && filter[0] != '$' && !containsWild(filter) && !got {
			t.Fatalf("a filter without wildcards does not match itself: %q", filter)
		}
		if filter == "#" && topic != "" && topic[0] != '$' && !got {
			t.Fatalf("# does not match %q", topic)
		}
	})
}

func containsWild(s string) bool {
	for _, r := range s {
		if r == '+' || r == '#' {
			return true
		}
	}
	return false
}

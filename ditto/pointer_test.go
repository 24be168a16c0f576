package ditto

import (
	"reflect"
	"testing"
)

func TestParsePointer(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Pointer
		err  bool
	}{
		{"empty", "", Pointer{}, false},
		{"root", "/", Pointer{}, false},
		{"one", "/attributes", Pointer{"attributes"}, false},
		{"no leading slash", "attributes/a", Pointer{"attributes", "a"}, false},
		{"trailing slash", "/attributes/a/", Pointer{"attributes", "a"}, false},
		{"tilde zero", "/a~0b", Pointer{"a~b"}, false},
		{"tilde one stays", "/a~1b", Pointer{"a~1b"}, false},
		{"tilde zero one", "/~01", Pointer{"~1"}, false},
		{"unicode", "/grün/日本", Pointer{"grün", "日本"}, false},
		{"colon and spaces", "/entries/l/subjects/google:a b", Pointer{"entries", "l", "subjects", "google:a b"}, false},
		{"double slash only", "//", nil, true},
		{"double slash in middle", "/a//b", nil, true},
		{"double trailing slash", "/a//", nil, true},
		{"control char", "/a\x01", nil, true},
		{"DEL", "/a\x7f", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePointer(tt.in)
			if tt.err {
				wantCode(t, err, "json.pointer.invalid")
				return
			}
			wantCode(t, err, "")
			if !reflect.DeepEqual(tt.want, got) {
				t.Fatalf("ParsePointer(%q) got %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestPointerMethods(t *testing.T) {
	p := MustPointer("/features/lamp/properties")
	if p.String() != "/features/lamp/properties" {
		t.Fatalf("String = %q", p.String())
	}
	if (Pointer{}).String() != "/" {
		t.Fatal("empty pointer must render as /")
	}
	if got := (Pointer{"a~b"}).String(); got != "/a~0b" {
		t.Fatalf("escape: %q", got)
	}
	q := p.Append("on")
	if q.String() != "/features/lamp/properties/on" || len(p) != 3 {
		t.Fatalf("Append changed or produced wrong pointer: %v %v", p, q)
	}
	// Append must not share the backing array with p.
	r := p[:2].Append("x")
	if p[2] != "properties" || r[2] != "x" {
		t.Fatal("Append aliases its receiver")
	}
	if !q.HasPrefix(p) || p.HasPrefix(q) || !p.HasPrefix(Pointer{}) {
		t.Fatal("HasPrefix wrong")
	}
	if !p.Equal(MustPointer("features/lamp/properties/")) || p.Equal(q) {
		t.Fatal("Equal wrong")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("MustPointer did not panic")
		}
	}()
	MustPointer("a//b")
}

func FuzzParsePointer(f *testing.F) {
	for _, s := range []string{"", "/", "/a/b", "a~0b", "//", "/a/", "/~01", "/a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePointer(s)
		if err != nil {
			return
		}
		for _, seg := range p {
			if seg == "" {
				t.Fatalf("%q: empty segment", s)
			}
		}
		again, err := ParsePointer(p.String())
		if err != nil || !again.Equal(p) {
			t.Fatalf("%q: round trip %q -> %v (%v)", s, p.String(), again, err)
		}
	})
}

package gateway

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// templateClaims is the example JWT of Ditto's placeholder documentation,
// plus a few claims of other types.
const templateClaims = `{
	"sub": "u123456789", "iss": "https://issuer.example.com/", "exp": 1490922820,
	"email": "John.Doe@eclipse.org", "aud": "client-id-0815", "scopes": "openid email",
	"extra": {"roles": ["administrator", "super-moderator", "moderator", {"x": 1}, null], "level": 3, "admin": true},
	"empty": "", "sep": "-", "dashed": "a-b-c", "tilde~key": "t"
}`

func mustClaims(t testing.TB, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSubjectTemplateResolve(t *testing.T) {
	claims := mustClaims(t, templateClaims)
	for _, c := range []struct {
		src  string
		want []string // nil: unresolved
	}{
		{"{{ jwt:sub }}", []string{"u123456789"}},
		{"{{jwt:sub}}", []string{"u123456789"}},
		{"{{ jwt:sub }}@{{ jwt:aud }}", []string{"u123456789@client-id-0815"}},
		{"{{ jwt:extra/roles }}", []string{"administrator", "super-moderator", "moderator"}},
		{"{{ jwt:scopes | fn:split(' ') }}", []string{"openid", "email"}},
		{"{{ jwt:extra/roles | fn:filter('like','*moderator') }}@{{ jwt:aud }}", []string{"super-moderator@client-id-0815", "moderator@client-id-0815"}},
		{"{{ jwt:extra/roles | fn:filter('like','admin*|moderator') }}", []string{"administrator", "moderator"}},
		{"{{ jwt:extra/roles | fn:filter('ne','moderator') }}", []string{"administrator", "super-moderator"}},
		{"{{ jwt:extra/roles | fn:filter('eq','moderator') }}", []string{"moderator"}},
		{"{{ jwt:extra/roles | fn:filter(jwt:aud,'eq','client-id-0815') }}", []string{"administrator", "super-moderator", "moderator"}},
		{"{{ jwt:sub | fn:filter(jwt:aud,'eq','other') }}", nil},
		{"{{ jwt:sub | fn:filter(jwt:nope,'exists','false') }}", []string{"u123456789"}},
		{"{{ jwt:sub | fn:filter('exists') }}", []string{"u123456789"}},
		{"{{ jwt:extra/level }}/{{ jwt:extra/admin }}", []string{"3/true"}},
		{"{{ jwt:email | fn:lower() }}", []string{"john.doe@eclipse.org"}},
		{"{{ jwt:email | fn:upper() }}", []string{"JOHN.DOE@ECLIPSE.ORG"}},
		{"{{ jwt:email | fn:substring-before('@') }}", []string{"John.Doe"}},
		{"{{ jwt:email | fn:substring-after(\"@\") }}", []string{"eclipse.org"}},
		{"{{ jwt:email | fn:substring-after('#') }}", nil},
		{"{{ jwt:dashed | fn:split(jwt:sep) }}", nil}, // split takes a constant only: rejected at parse
		{"{{ jwt:dashed | fn:substring-after(jwt:sep) }}", []string{"b-c"}},
		{"{{ jwt:dashed | fn:replace('-', '.') }}", []string{"a.b.c"}},
		{"{{ jwt:nope | fn:default('fallback') }}", []string{"fallback"}},
		{"{{ jwt:nope | fn:default(jwt:sub) | fn:upper() }}", []string{"U123456789"}},
		{"{{ jwt:sub | fn:default('unused') }}", []string{"u123456789"}},
		{"{{ fn:default('static') }}", []string{"static"}},
		{"{{ jwt:sub | fn:delete() }}", nil},
		{"{{ jwt:nope }}", nil},
		{"{{ jwt:empty }}", nil},
		{"{{ jwt:extra }}", nil},
		{"{{ jwt:sub/deeper }}", nil},
		{"{{ jwt:tilde~0key }}", []string{"t"}},
		{"static-subject", []string{"static-subject"}},
		{"{{ jwt:scopes | fn:split(' ') }}-{{ jwt:extra/roles | fn:filter('like','*moderator') }}",
			[]string{"openid-super-moderator", "openid-moderator", "email-super-moderator", "email-moderator"}},
		{"{{ jwt:sub | fn:substring-before('}}') | fn:default('q') }}", []string{"q"}},
	} {
		t.Run(c.src, func(t *testing.T) {
			tpl, err := parseSubjectTemplate(c.src)
			if err != nil {
				if c.want == nil {
					return
				}
				t.Fatalf("parse: %v", err)
			}
			got := tpl.resolve(claims, maxSubjects)
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("resolve (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSubjectTemplateLimit(t *testing.T) {
	claims := map[string]any{"a": []any{"1", "2", "3", "4"}, "b": []any{"x", "y", "z"}}
	tpl, err := parseSubjectTemplate("{{ jwt:a }}{{ jwt:b }}")
	if err != nil {
		t.Fatal(err)
	}
	if got := tpl.resolve(claims, 100); len(got) != 12 {
		t.Errorf("product of 4x3 = %d values", len(got))
	}
	if got := tpl.resolve(claims, 5); len(got) != 5 {
		t.Errorf("limited product = %d values, want 5", len(got))
	}
}

func TestSubjectTemplateParseErrors(t *testing.T) {
	for _, src := range []string{
		"",
		"{{ jwt:sub",
		"{{ }}",
		"{{ jwt: }}",
		"{{ jwt:a//b }}",
		"{{ header:x }}",
		"{{ jwt:sub | }}",
		"{{ jwt:sub | fn:lower }}",
		"{{ jwt:sub | fn:lower('x') }}",
		"{{ jwt:sub | fn:unknown() }}",
		"{{ jwt:sub | fn:default() }}",
		"{{ jwt:sub | fn:default(sub) }}",
		"{{ jwt:sub | fn:default('a) }}",
		"{{ jwt:sub | fn:split('') }}",
		"{{ jwt:sub | fn:split(jwt:x) }}",
		"{{ jwt:sub | fn:filter('gt','1') }}",
		"{{ jwt:sub | fn:filter('eq') }}",
		"{{ jwt:sub | fn:replace('a') }}",
		"{{ jwt:sub | jwt:aud }}",
		"{{ jwt:s'ub }}",
	} {
		t.Run(src, func(t *testing.T) {
			if _, err := parseSubjectTemplate(src); err == nil {
				t.Errorf("parse %q succeeded", src)
			}
		})
	}
}

// FuzzSubjectTemplate: parsing never panics, and a parsed template
// resolves against arbitrary claims without panicking, within the limit.
func FuzzSubjectTemplate(f *testing.F) {
	for _, s := range []string{
		"{{ jwt:sub }}", "{{ jwt:extra/roles | fn:filter('like','*mod|x?') }}@{{ jwt:aud }}",
		"{{ jwt:scopes | fn:split(' ') | fn:upper() }}", "{{ fn:default(jwt:sub) | fn:substring-before('@') }}",
		"a{{ jwt:x | fn:replace('a', \"b\") | fn:delete() }}b", "{{ jwt:x | fn:filter(jwt:y,'exists','false') }}",
	} {
		f.Add(s, templateClaims)
	}
	f.Fuzz(func(t *testing.T, src, claimsJSON string) {
		tpl, err := parseSubjectTemplate(src)
		if err != nil {
			return
		}
		d := json.NewDecoder(bytes.NewReader([]byte(claimsJSON)))
		d.UseNumber()
		var claims map[string]any
		if d.Decode(&claims) != nil {
			claims = map[string]any{}
		}
		if got := tpl.resolve(claims, 10); len(got) > 10 {
			t.Fatalf("%d values over the limit", len(got))
		}
	})
}

func TestGlobMatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"*", "abc", true}, {"a*c", "abbbc", true}, {"a?c", "abc", true}, {"a?c", "ac", false},
		{"*moderator", "super-moderator", true}, {"*moderator", "moderators", false}, {"", "", true}, {"", "a", false},
		{"**a", "bba", true}, {"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false},
	} {
		if got := globMatch(c.p, c.s); got != c.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", c.p, c.s, got, c.want)
		}
	}
}

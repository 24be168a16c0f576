package connectivity

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

func testResolver(prefix, name string) (string, bool) {
	vals := map[string]string{
		"thing:id": "org.eclipse:dev-1", "thing:namespace": "org.eclipse", "thing:name": "dev-1",
		"header:device_id": "org.eclipse:dev-1", "header:list": "a b c", "header:empty": "",
		"header:qos": "1", "header:enc": "a%20b", "header:b64": "aGVsbG8=",
		"topic:action": "modified", "connection:id": "c1",
	}
	v, ok := vals[prefix+":"+name]
	return v, ok
}

func TestTemplates(t *testing.T) {
	cases := []struct {
		name, tpl string
		want      []string // nil: unresolved
		deleted   bool
	}{
		{"literal", "devices/telemetry", []string{"devices/telemetry"}, false},
		{"thing", "devices/{{ thing:id }}/events", []string{"devices/org.eclipse:dev-1/events"}, false},
		{"no spaces", "{{thing:name}}", []string{"dev-1"}, false},
		{"two", "{{ thing:namespace }}/{{ thing:name }}", []string{"org.eclipse/dev-1"}, false},
		{"header case", "{{ header:DEVICE_ID }}", []string{"org.eclipse:dev-1"}, false},
		{"missing", "x/{{ header:nope }}", nil, false},
		{"default", "{{ header:nope | fn:default('fallback') }}", []string{"fallback"}, false},
		{"default placeholder", "{{ header:nope | fn:default(thing:name) }}", []string{"dev-1"}, false},
		{"default keeps", "{{ thing:name | fn:default('x') }}", []string{"dev-1"}, false},
		{"substring-before", "{{ thing:id | fn:substring-before(':') }}", []string{"org.eclipse"}, false},
		{"substring-after", "{{ thing:id | fn:substring-after(\":\") }}", []string{"dev-1"}, false},
		{"substring missing", "{{ thing:id | fn:substring-after('#') }}", nil, false},
		{"substring then default", "{{ thing:id | fn:substring-after('#') | fn:default('none') }}", []string{"none"}, false},
		{"upper lower", "{{ topic:action | fn:upper() }}-{{ thing:name | fn:upper() | fn:lower() }}", []string{"MODIFIED-dev-1"}, false},
		{"trim", "[{{ header:list | fn:replace('a','  a') | fn:trim() }}]", []string{"[a b c]"}, false},
		{"url", "{{ header:enc | fn:url-decode() }}|{{ thing:id | fn:url-encode() }}", []string{"a b|org.eclipse%3Adev-1"}, false},
		{"base64", "{{ header:b64 | fn:base64-decode() }}/{{ thing:name | fn:base64-encode() }}", []string{"hello/ZGV2LTE="}, false},
		{"split", "t/{{ header:list | fn:split(' ') }}", []string{"t/a", "t/b", "t/c"}, false},
		{"split join", "{{ header:list | fn:split(' ') | fn:join(',') }}", []string{"a,b,c"}, false},
		{"delete", "{{ thing:id | fn:delete() }}", nil, true},
		{"filter eq keeps", "{{ thing:id | fn:filter(header:qos,'eq','1') }}", []string{"org.eclipse:dev-1"}, false},
		{"filter ne drops", "{{ thing:id | fn:filter(header:qos,'ne','1') }}", nil, false},
		{"filter input like", "{{ thing:name | fn:filter('like','dev-*') }}", []string{"dev-1"}, false},
		{"filter input like miss", "{{ thing:name | fn:filter('like','x?') }}", nil, false},
		{"filter exists", "{{ thing:name | fn:filter(header:nope,'exists') }}", nil, false},
		{"filter exists input", "{{ header:empty | fn:filter('exists') }}", []string{""}, false},
		{"function first", "{{ fn:filter(header:qos,'ne','0') }}", []string{""}, false},
		{"connection", "{{ connection:id }}:ack", []string{"c1:ack"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tpl, err := ParseTemplate(tc.tpl, scopeOutbound)
			if err != nil {
				t.Fatal(err)
			}
			got, ok, deleted := tpl.Resolve(testResolver)
			if deleted != tc.deleted {
				t.Fatalf("deleted %v", deleted)
			}
			if tc.want == nil {
				if ok {
					t.Fatalf("resolved to %q, want unresolved", got)
				}
				return
			}
			if !ok || strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got %q %v, want %q", got, ok, tc.want)
			}
		})
	}
}

func TestTemplateErrors(t *testing.T) {
	cases := []struct{ name, tpl, code string }{
		{"unknown prefix", "{{ color:red }}", "placeholder:placeholder.notfound"},
		{"unknown name", "{{ thing:color }}", "placeholder:placeholder.notfound"},
		{"unknown function", "{{ thing:id | fn:explode() }}", "placeholder:function.invalid"},
		{"arity", "{{ thing:id | fn:default() }}", "placeholder:function.invalid"},
		{"unclosed", "a/{{ thing:id", "placeholder:function.invalid"},
		{"stray close", "a}}", "placeholder:function.invalid"},
		{"no parens", "{{ thing:id | fn:lower }}", "placeholder:function.invalid"},
		{"placeholder after fn", "{{ thing:id | header:x }}", "placeholder:function.invalid"},
		{"empty stage", "{{ thing:id | }}", "placeholder:function.invalid"},
		{"filter op", "{{ thing:id | fn:filter(header:x,'gt','1') }}", "placeholder:function.invalid"},
		{"unbalanced", "{{ thing:id | fn:default('x) }}", "placeholder:function.invalid"},
		{"not in scope", "{{ thing:id }}", "placeholder:placeholder.notfound"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			scope := scopeOutbound
			if tc.name == "not in scope" {
				scope = scopeSourceAuth
			}
			_, err := ParseTemplate(tc.tpl, scope)
			var de *ditto.Error
			if !errors.As(err, &de) || de.Code != tc.code || de.Status != 400 {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
}

func TestTimePlaceholder(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 31, 45, 123e6, time.UTC)
	cases := map[string]string{
		"now":                 "2026-11-27T10:31:45.123Z",
		"now_epoch_millis":    "1795775505123",
		"now+1h":              "2026-11-27T11:31:45.123Z",
		"now-2d[d]":           "2026-11-25T00:00:00.000Z",
		"now[h]":              "2026-11-27T10:00:00.000Z",
		"now[mo]":             "2026-11-01T00:00:00.000Z",
		"now_epoch_millis[s]": "1795775505000",
	}
	for name, want := range cases {
		if got, ok := timePlaceholder(name, now); !ok || got != want {
			t.Errorf("%s: got %q %v, want %q", name, got, ok, want)
		}
	}
	for _, bad := range []string{"later", "now+", "now+1x", "now[", "now[q]", "now+99999999h"} {
		if _, ok := timePlaceholder(bad, now); ok {
			t.Errorf("%s resolved", bad)
		}
	}
}

func TestOwnerRendezvous(t *testing.T) {
	members := []string{"n1", "n2", "n3", "n4"}
	counts := map[string]int{}
	moved := 0
	for i := range 400 {
		id := "conn-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		o := Owner(id, members)
		counts[o]++
		// Removing a member that does not own the connection never moves it.
		for _, gone := range members {
			if gone == o {
				continue
			}
			var rest []string
			for _, m := range members {
				if m != gone {
					rest = append(rest, m)
				}
			}
			if Owner(id, rest) != o {
				moved++
			}
		}
		if Owner(id, []string{"n4", "n3", "n2", "n1"}) != o {
			t.Fatalf("owner depends on member order")
		}
	}
	if moved != 0 {
		t.Errorf("%d placements moved although their owner stayed", moved)
	}
	for _, m := range members {
		if counts[m] < 50 {
			t.Errorf("uneven placement %v", counts)
		}
	}
	if Owner("x", nil) != "" {
		t.Error("owner without members")
	}
}

func TestTopicMatches(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true}, {"a/+", "a/b", true}, {"a/+", "a/b/c", false}, {"a/#", "a/b/c", true},
		{"a/#", "a", true}, {"+/b", "a/b", true}, {"#", "$SYS/x", false}, {"$share/g/a/+", "a/x", true},
	}
	for _, tc := range cases {
		if got := topicMatches(tc.filter, tc.topic); got != tc.want {
			t.Errorf("%s %s: %v", tc.filter, tc.topic, got)
		}
	}
}

// FuzzTemplate: parsing and resolving arbitrary templates never panics,
// stays within its value bounds and is deterministic.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"{{ thing:id }}", "a/{{ header:x | fn:split(' ') | fn:join(',') }}", "{{ fn:filter(header:qos,'ne','0') }}",
		"{{ header:list | fn:split(' ') }}/{{ header:list | fn:split(' ') }}", "{{ time:now-1d[h] }}", "{{{{}}}}", "{{ thing:id | fn:replace('a','bbbb') }}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tpl, err := ParseTemplate(s, scopeOutbound)
		if err != nil {
			var de *ditto.Error
			if !errors.As(err, &de) || de.Status != 400 {
				t.Fatalf("error %v is not a 400 Ditto error", err)
			}
			return
		}
		a, okA, delA := tpl.Resolve(testResolver)
		b, okB, delB := tpl.Resolve(testResolver)
		if okA != okB || delA != delB || strings.Join(a, "\x00") != strings.Join(b, "\x00") {
			t.Fatal("not deterministic")
		}
		if len(a) > maxPipelineVals {
			t.Fatalf("%d values", len(a))
		}
	})
}

package things

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

// metaOf returns the thing's stored metadata as canonical JSON ("" for
// none).
func metaOf(t *testing.T, env *testEnv, id string) string {
	t.Helper()
	rec, ok := env.svc.Lookup(id)
	if !ok {
		t.Fatalf("%s missing", id)
	}
	return rec.Meta
}

// TestMetadataWrites walks through the writes that change metadata, each
// step checking the whole stored _metadata afterwards.
func TestMetadataWrites(t *testing.T) {
	env := newEnv(t, DefaultConfig())
	lamp := `{"features":{"lamp":{"properties":{"color":{"r":1,"g":2},"on":true}}}}`
	steps := []struct {
		name           string
		action         ditto.Action
		path, value    string
		headers        []string
		want           string
		wantStatus     int
		wantCode       string
		leaveUnchanged bool
	}{
		{name: "create with wildcard and specific keys", action: ditto.ActionModify, path: "/", value: lamp,
			headers: []string{"put-metadata", `[{"key":"/features/lamp/properties/color/description","value":"RGB"},{"key":"*/by","value":"a"}]`},
			want: `{"features":{"lamp":{"properties":{"color":{"description":"RGB","g":{"by":"a"},"r":{"by":"a"}},"on":{"by":"a"}}}},` +
				`"policyId":{"by":"a"},"thingId":{"by":"a"}}`, wantStatus: 201},
		{name: "a specific key overwrites what a wildcard set", action: ditto.ActionModify, path: "/features/lamp/properties/color", value: `{"r":5,"g":6}`,
			headers: []string{"put-metadata", `[{"key":"r/by","value":"specific"},{"key":"*/by","value":"b"}]`},
			want: `{"features":{"lamp":{"properties":{"color":{"description":"RGB","g":{"by":"b"},"r":{"by":"specific"}},"on":{"by":"a"}}}},` +
				`"policyId":{"by":"a"},"thingId":{"by":"a"}}`, wantStatus: 204},
		{name: "a leaf write without headers keeps metadata", action: ditto.ActionModify, path: "/features/lamp/properties/on", value: `false`,
			wantStatus: 204, leaveUnchanged: true},
		{name: "attribute with a relative key", action: ditto.ActionModify, path: "/attributes/floor", value: `3`,
			headers: []string{"put-metadata", `[{"key":"unit","value":"level"}]`},
			want: `{"attributes":{"floor":{"unit":"level"}},"features":{"lamp":{"properties":{"color":{"description":"RGB","g":{"by":"b"},"r":{"by":"specific"}},"on":{"by":"a"}}}},` +
				`"policyId":{"by":"a"},"thingId":{"by":"a"}}`, wantStatus: 201},
		{name: "delete-metadata with a wildcard", action: ditto.ActionMerge, path: "/", value: `{"attributes":{"room":"a"}}`,
			headers: []string{"delete-metadata", "features/*/properties/*/by,thingId"},
			// Objects left empty stay, as in Ditto.
			want: `{"attributes":{"floor":{"unit":"level"}},"features":{"lamp":{"properties":{"color":{"description":"RGB","g":{"by":"b"},"r":{"by":"specific"}},"on":{}}}},"policyId":{"by":"a"}}`, wantStatus: 204},
		{name: "*/k at a property reaches its leaves", action: ditto.ActionMerge, path: "/features/lamp/properties/color", value: `{"b":7}`,
			headers: []string{"put-metadata", `[{"key":"*/by","value":"c"}]`},
			want:    `{"attributes":{"floor":{"unit":"level"}},"features":{"lamp":{"properties":{"color":{"b":{"by":"c"},"description":"RGB","g":{"by":"b"},"r":{"by":"specific"}},"on":{}}}},"policyId":{"by":"a"}}`, wantStatus: 204},
		{name: "a merge null deletes the value's metadata", action: ditto.ActionMerge, path: "/", value: `{"features":{"lamp":{"properties":{"color":{"r":null}}}}}`,
			want: `{"attributes":{"floor":{"unit":"level"}},"features":{"lamp":{"properties":{"color":{"b":{"by":"c"},"description":"RGB","g":{"by":"b"}},"on":{}}}},"policyId":{"by":"a"}}`, wantStatus: 204},
		{name: "deleting data deletes its metadata", action: ditto.ActionDelete, path: "/features/lamp",
			want: `{"attributes":{"floor":{"unit":"level"}},"features":{},"policyId":{"by":"a"}}`, wantStatus: 204},
		{name: "an empty object empties the metadata there", action: ditto.ActionModify, path: "/attributes", value: `{}`,
			want: `{"attributes":{},"features":{},"policyId":{"by":"a"}}`, wantStatus: 204},
		{name: "delete-metadata * at a resource", action: ditto.ActionModify, path: "/policyId", value: `"ns:t"`,
			headers: []string{"delete-metadata", "*"}, want: `{"attributes":{},"features":{},"policyId":{}}`, wantStatus: 204},
		{name: "delete-metadata * at the thing", action: ditto.ActionMerge, path: "/", value: `{"attributes":{"y":1}}`,
			headers: []string{"delete-metadata", "*"}, want: `{}`, wantStatus: 204},
		{name: "a bad wildcard changes nothing", action: ditto.ActionModify, path: "/attributes/x", value: `1`,
			headers: []string{"put-metadata", `[{"key":"features/*/k","value":1}]`}, wantCode: "header.invalid", leaveUnchanged: true},
		{name: "two metadata headers conflict", action: ditto.ActionModify, path: "/attributes/x", value: `1`,
			headers: []string{"put-metadata", `[{"key":"k","value":1}]`, "delete-metadata", "k"}, wantCode: "things:metadata.headersconflict", leaveUnchanged: true},
		{name: "a root key is invalid", action: ditto.ActionModify, path: "/attributes/x", value: `1`,
			headers: []string{"put-metadata", `[{"key":"/","value":1}]`}, wantCode: "header.invalid", leaveUnchanged: true},
		{name: "put-metadata must be an array", action: ditto.ActionModify, path: "/attributes/x", value: `1`,
			headers: []string{"put-metadata", `{"key":"k","value":1}`}, wantCode: "header.invalid", leaveUnchanged: true},
		{name: "an item needs a value", action: ditto.ActionModify, path: "/attributes/x", value: `1`,
			headers: []string{"put-metadata", `[{"key":"k"}]`}, wantCode: "header.invalid", leaveUnchanged: true},
		{name: "delete-metadata needs a selector", action: ditto.ActionModify, path: "/attributes/x", value: `1`,
			headers: []string{"delete-metadata", "a(b"}, wantCode: "header.invalid", leaveUnchanged: true},
	}
	prev := ""
	for _, st := range steps {
		var val any
		if st.value != "" {
			val = mustJSON(t, st.value)
		}
		res, err := env.do(st.action, tid, st.path, val, owner, st.headers...)
		if errCode(err) != st.wantCode || (st.wantCode == "" && res.Status != st.wantStatus) {
			t.Fatalf("%s: status %d, err %v; want %d %q", st.name, res.Status, err, st.wantStatus, st.wantCode)
		}
		got := metaOf(t, env, tid)
		want := st.want
		if st.leaveUnchanged {
			want = prev
		} else if want != "" {
			want = canon(t, want)
		}
		if got != want {
			t.Fatalf("%s:\ngot  %s\nwant %s", st.name, got, want)
		}
		prev = got
	}
	// A thing deleted and created again starts without metadata.
	mustOK(t)(env.do(ditto.ActionModify, tid, "/attributes/x", 1, owner, "put-metadata", `[{"key":"k","value":1}]`))
	mustOK(t)(env.do(ditto.ActionDelete, tid, "/", nil, owner))
	mustOK(t)(env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{"policyId":"ns:t"}`), owner))
	if got := metaOf(t, env, tid); got != "" {
		t.Fatalf("re-created thing has metadata %s", got)
	}
}

func TestMetadataInlineOnCreate(t *testing.T) {
	env := newEnv(t, DefaultConfig())
	body := `{"attributes":{"a":1},"_metadata":{"attributes":{"a":{"unit":"m"}}}}`
	mustOK(t)(env.do(ditto.ActionModify, tid, "/", mustJSON(t, body), owner))
	if got, want := metaOf(t, env, tid), canon(t, `{"attributes":{"a":{"unit":"m"}}}`); got != want {
		t.Fatalf("inline _metadata: %s, want %s", got, want)
	}
	_, err := env.do(ditto.ActionModify, "ns:other", "/", mustJSON(t, body), owner, "put-metadata", `[{"key":"x","value":1}]`)
	if errCode(err) != "things:metadata.notmodifiable" {
		t.Fatalf("inline and header: %v", err)
	}
	if _, ok := env.svc.Lookup("ns:other"); ok {
		t.Fatal("thing created despite the error")
	}
}

func TestMetadataRetrieve(t *testing.T) {
	env := newEnv(t, DefaultConfig())
	env.policies.put("ns:p", map[string]any{"entries": map[string]any{
		"owner": map[string]any{"subjects": map[string]any{owner: map[string]any{"type": "t"}},
			"resources": map[string]any{"thing:/": map[string]any{"grant": []any{"READ", "WRITE"}, "revoke": []any{}}}},
		"partial": map[string]any{"subjects": map[string]any{stranger: map[string]any{"type": "t"}},
			"resources": map[string]any{
				"thing:/":                         map[string]any{"grant": []any{"READ"}, "revoke": []any{}},
				"thing:/_metadata/attributes/pin": map[string]any{"grant": []any{}, "revoke": []any{"READ"}},
			}},
	}})
	body := `{"policyId":"ns:p","attributes":{"pin":1,"room":"a"},"features":{"f":{"properties":{"t":20,"h":50}},"g":{"properties":{"t":21}}}}`
	mustOK(t)(env.do(ditto.ActionModify, tid, "/", mustJSON(t, body), owner,
		"put-metadata", `[{"key":"features/*/properties/*/unit","value":"x"},{"key":"attributes/*/src","value":"s"}]`))

	cases := []struct {
		name, path, subject, get, want string
	}{
		{"one path", "/", owner, "attributes/room", `{"attributes":{"room":{"src":"s"}}}`},
		{"relative to the resource", "/features/f/properties", owner, "t/unit", `{"t":{"unit":"x"}}`},
		{"wildcard over the stored thing", "/", owner, "features/*/properties/t/unit", `{"features":{"f":{"properties":{"t":{"unit":"x"}}},"g":{"properties":{"t":{"unit":"x"}}}}}`},
		{"leaves of a sub-resource", "/features/f/properties", owner, "*/unit", `{"h":{"unit":"x"},"t":{"unit":"x"}}`},
		{"everything at the resource", "/attributes", owner, "*", `{"pin":{"src":"s"},"room":{"src":"s"}}`},
		{"nothing there", "/", owner, "definition", `{}`},
		{"a partial reader", "/", stranger, "attributes", `{"attributes":{"room":{"src":"s"}}}`},
	}
	for _, tc := range cases {
		res, err := env.do(ditto.ActionRetrieve, tid, tc.path, nil, tc.subject, "get-metadata", tc.get)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := string(res.Metadata); got != canon(t, tc.want) {
			t.Errorf("%s: ditto-metadata %s, want %s", tc.name, got, tc.want)
		}
	}
	// No get-metadata: no header; put-metadata on a retrieve is ignored.
	res := mustOK(t)(env.do(ditto.ActionRetrieve, tid, "/", nil, owner, "put-metadata", `[{"key":"k","value":1}]`))
	if res.Metadata != nil {
		t.Fatalf("metadata header without get-metadata: %s", res.Metadata)
	}
	// The field selector: returned only when selected, filtered for a
	// partial reader.
	res = mustOK(t)(env.do(ditto.ActionRetrieve, tid, "/", nil, owner))
	if bytes.Contains([]byte(resultJSON(res)), []byte("_metadata")) {
		t.Fatalf("unselected _metadata returned: %s", resultJSON(res))
	}
	res = mustOK(t)(env.do(ditto.ActionRetrieve, tid, "/", nil, stranger, "fields", "_metadata/attributes"))
	if got, want := resultJSON(res), canon(t, `{"_metadata":{"attributes":{"room":{"src":"s"}}}}`); got != want {
		t.Fatalf("partial reader's _metadata: %s, want %s", got, want)
	}
	_, err := env.do(ditto.ActionRetrieve, tid, "/", nil, owner, "get-metadata", "a", "delete-metadata", "b")
	if errCode(err) != "things:metadata.headersconflict" {
		t.Fatalf("two headers on a retrieve: %v", err)
	}
}

// TestMetadataSnapshot checks that metadata survives a snapshot and that
// such a snapshot carries the magic older releases refuse.
func TestMetadataSnapshot(t *testing.T) {
	env := newEnv(t, DefaultConfig())
	mustOK(t)(env.do(ditto.ActionModify, tid, "/", mustJSON(t, `{"attributes":{"a":1}}`), owner, "put-metadata", `[{"key":"attributes/a/unit","value":"m"}]`))
	mustOK(t)(env.do(ditto.ActionModify, "ns:plain", "/", mustJSON(t, `{"attributes":{"a":1}}`), owner))
	snap, err := env.svc.FSM().Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.Persist(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), snapshotMagicMeta) {
		t.Fatalf("snapshot starts %q", buf.Bytes()[:10])
	}
	restored := newFSMService()
	if err := restored.FSM().Restore(&buf); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{tid, "ns:plain"} {
		a, _ := env.svc.Lookup(id)
		b, ok := restored.Lookup(id)
		if !ok || a.Meta != b.Meta || string(a.JSON) != string(b.JSON) {
			t.Fatalf("%s after restore: %+v, want %+v", id, b, a)
		}
	}
}

// TestMetadataSizeBound: metadata counts toward the thing's size limit,
// and a "*/k" over many leaves is refused before it is built.
func TestMetadataSizeBound(t *testing.T) {
	env := newEnv(t, DefaultConfig())
	attrs := map[string]any{}
	for i := range 2000 {
		attrs[fmt.Sprintf("a%04d", i)] = i
	}
	mustOK(t)(env.do(ditto.ActionModify, tid, "/", map[string]any{"attributes": attrs}, owner))
	big := fmt.Sprintf(`[{"key":"*/k","value":%q}]`, strings.Repeat("x", 8000))
	_, err := env.do(ditto.ActionModify, tid, "/attributes", attrs, owner, "put-metadata", big)
	if errCode(err) != "things:thing.toolarge" {
		t.Fatalf("2000 leaves × 8 kB of metadata: %v", err)
	}
	if got := metaOf(t, env, tid); got != "" {
		t.Fatalf("metadata after the refused write: %.80s", got)
	}
	small := `[{"key":"*/k","value":1}]`
	mustOK(t)(env.do(ditto.ActionModify, tid, "/attributes", attrs, owner, "put-metadata", small))
	if got := metaOf(t, env, tid); !strings.Contains(got, `"a1999":{"k":1}`) {
		t.Fatalf("metadata: %.80s", got)
	}
}

// TestMetadataDittoCases replays cases from Ditto's metadata tests.
func TestMetadataDittoCases(t *testing.T) {
	cases := []struct {
		name     string
		create   string // thing body, created first
		createMH string // put-metadata of the create
		action   ditto.Action
		path     string
		value    string
		headers  []string
		want     string // the stored _metadata afterwards
		code     string
	}{
		{name: "delete-metadata wildcards cover the thing before the change",
			create: `{"attributes":{"a":1,"b":2}}`, createMH: `[{"key":"attributes/*/k","value":1}]`,
			action: ditto.ActionModify, path: "/", value: `{"attributes":{"a":1}}`,
			headers: []string{"delete-metadata", "attributes/*/k"}, want: `{"attributes":{"a":{},"b":{}}}`},
		{name: "a merge null drops what put-metadata set there",
			create: `{"attributes":{"a":1}}`,
			action: ditto.ActionMerge, path: "/attributes", value: `{"a":null,"b":2}`,
			headers: []string{"put-metadata", `[{"key":"*/k","value":1}]`}, want: `{"attributes":{"b":{"k":1}}}`},
		{name: "keys apply in key order",
			create: `{"attributes":{"a":1}}`,
			action: ditto.ActionModify, path: "/attributes/a", value: `2`,
			headers: []string{"put-metadata", `[{"key":"x/y","value":2},{"key":"x","value":{"z":1}}]`}, want: `{"attributes":{"a":{"x":{"y":2,"z":1}}}}`},
		{name: "equal keys apply in value order",
			create: `{"attributes":{"a":1}}`,
			action: ditto.ActionModify, path: "/attributes/a", value: `2`,
			headers: []string{"put-metadata", `[{"key":"d","value":"b"},{"key":"d","value":"a"}]`}, want: `{"attributes":{"a":{"d":"b"}}}`},
		{name: "*/k on a thing PUT covers what the command wrote",
			create: `{"attributes":{"a":1}}`,
			action: ditto.ActionModify, path: "/", value: `{"attributes":{"a":2}}`,
			headers: []string{"put-metadata", `[{"key":"*/k","value":1}]`}, want: `{"attributes":{"a":{"k":1}},"thingId":{"k":1}}`},
		{name: "an empty put-metadata still counts as a header",
			create: `{"attributes":{"a":1}}`,
			action: ditto.ActionModify, path: "/attributes/a", value: `2`,
			headers: []string{"put-metadata", `[]`, "delete-metadata", "k"}, code: "things:metadata.headersconflict"},
		{name: "an empty put-metadata value is no metadata",
			create: `{"attributes":{"a":1}}`,
			action: ditto.ActionModify, path: "/attributes/a", value: `2`,
			headers: []string{"put-metadata", ``}, want: ``},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, DefaultConfig())
			var h []string
			if tc.createMH != "" {
				h = []string{"put-metadata", tc.createMH}
			}
			mustOK(t)(env.do(ditto.ActionModify, tid, "/", mustJSON(t, tc.create), owner, h...))
			_, err := env.do(tc.action, tid, tc.path, mustJSON(t, tc.value), owner, tc.headers...)
			if errCode(err) != tc.code {
				t.Fatalf("error %v, want %q", err, tc.code)
			}
			if tc.code != "" {
				return
			}
			want := ""
			if tc.want != "" {
				want = canon(t, tc.want)
			}
			if got := metaOf(t, env, tid); got != want {
				t.Fatalf("_metadata %s, want %s", got, want)
			}
		})
	}
}

// TestMetadataPermissions: metadata headers need WRITE on all of the
// resource, and readers see no metadata of data they may not read.
func TestMetadataPermissions(t *testing.T) {
	env := newEnv(t, DefaultConfig())
	env.policies.put("ns:p", map[string]any{"entries": map[string]any{
		"owner": map[string]any{"subjects": map[string]any{owner: map[string]any{"type": "t"}},
			"resources": map[string]any{"thing:/": map[string]any{"grant": []any{"READ", "WRITE"}, "revoke": []any{}}}},
		"partial": map[string]any{"subjects": map[string]any{stranger: map[string]any{"type": "t"}},
			"resources": map[string]any{
				"thing:/":                map[string]any{"grant": []any{"READ"}, "revoke": []any{}},
				"thing:/attributes/a":    map[string]any{"grant": []any{"WRITE"}, "revoke": []any{}},
				"thing:/features/secret": map[string]any{"grant": []any{}, "revoke": []any{"READ"}},
			}},
	}})
	body := `{"policyId":"ns:p","attributes":{"a":1},"features":{"secret":{"properties":{"pin":1}},"open":{"properties":{"x":1}}}}`
	mustOK(t)(env.do(ditto.ActionModify, tid, "/", mustJSON(t, body), owner,
		"put-metadata", `[{"key":"features/*/properties/*/hint","value":"h"}]`))
	before := metaOf(t, env, tid)
	for name, h := range map[string][]string{
		"put on another part": {"put-metadata", `[{"key":"features/open/properties/x/hint","value":"EVIL"}]`},
		"delete everything":   {"delete-metadata", "*"},
	} {
		_, err := env.do(ditto.ActionMerge, tid, "/", mustJSON(t, `{"attributes":{"a":2}}`), stranger, h...)
		if errCode(err) != "things:thing.notmodifiable" {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Without metadata headers the same partial write passes.
	mustOK(t)(env.do(ditto.ActionMerge, tid, "/", mustJSON(t, `{"attributes":{"a":2}}`), stranger))
	if got := metaOf(t, env, tid); got != before {
		t.Fatalf("metadata changed: %s", got)
	}
	res := mustOK(t)(env.do(ditto.ActionRetrieve, tid, "/", nil, stranger, "get-metadata", "*"))
	if got, want := string(res.Metadata), canon(t, `{"features":{"open":{"properties":{"x":{"hint":"h"}}}}}`); got != want {
		t.Errorf("get-metadata of a reader without /features/secret: %s, want %s", got, want)
	}
	res = mustOK(t)(env.do(ditto.ActionRetrieve, tid, "/", nil, stranger, "fields", "_metadata"))
	if got := resultJSON(res); strings.Contains(got, "secret") {
		t.Errorf("_metadata of a reader without /features/secret: %s", got)
	}
	// Too many paths for one header: refused, not expanded.
	many := strings.Repeat("features/*/properties/*/k,", 60_000)
	if _, err := env.do(ditto.ActionRetrieve, tid, "/", nil, owner, "get-metadata", strings.TrimSuffix(many, ",")); errCode(err) != "header.invalid" {
		t.Errorf("60,000 wildcard paths: %v", err)
	}
}

// FuzzMetadataHeaders: metadata headers from clients never panic, and what
// Handle accepts Apply computes within the size limit.
func FuzzMetadataHeaders(f *testing.F) {
	f.Add(`[{"key":"*/k","value":1}]`, "", "/attributes")
	f.Add(`[{"key":"features/*/properties/*/unit","value":"u"},{"key":"x","value":{"a":[1]}}]`, "", "/")
	f.Add("", "features/*/properties/*/unit,attributes(a,b)", "/")
	f.Add("", "*", "/features/f/properties")
	f.Add(`[{"key":"","value":1}]`, "a//b", "/features")
	thing := mustJSON(f, `{"thingId":"ns:t","policyId":"ns:t","attributes":{"a":1,"b":{"c":[1,2]}},"features":{"f":{"properties":{"p":1,"q":{"r":null}}}}}`)
	f.Fuzz(func(t *testing.T, put, del, path string) {
		p, err := ditto.ParsePointer(path)
		if err != nil {
			return
		}
		r, err := classify(p)
		if err != nil {
			return
		}
		h := ditto.Headers{}
		if put != "" {
			h[ditto.HeaderPutMetadata] = put
		}
		if del != "" {
			h[ditto.HeaderDeleteMetadata] = del
		}
		if _, err := parseMetaHeaders(h, r, false); err != nil {
			return
		}
		val, _ := ditto.GetAt(thing, p)
		e := &entry{op: opModify, id: "ns:t", path: p, putMeta: put, delMeta: del}
		before := ditto.EncodeJSON(thing)
		meta, err := nextMeta(`{"attributes":{"a":{"k":1}}}`, before, e, r, val, DefaultConfig().MaxThingBytes)
		if err == nil && meta != "" && !isJSONObject(meta) {
			t.Fatalf("metadata %q is no JSON object", meta)
		}
	})
}

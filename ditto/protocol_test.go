package ditto

import (
	"bytes"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestProtocolGolden runs the literal examples of ditto-spec.md section 4:
// decode the command message, turn it into a Command, answer it and emit
// its event (or error), and compare the encoded messages with
// testdata/protocol/<case>.golden.
func TestProtocolGolden(t *testing.T) {
	location := mustJSON(t, `{"latitude":44.673856,"longitude":8.261719}`)
	thing := mustJSON(t, `{"thingId":"org.eclipse.ditto:fancy-thing","policyId":"org.eclipse.ditto:fancy-thing","attributes":{"location":{"latitude":44.673856,"longitude":8.261719},"x":1}}`)
	notFound := ErrThingNotFound.New("The Thing with ID '%s' could not be found or requester had insufficient permissions to access it.", "org.eclipse.ditto:fancy-thing")
	tests := []struct {
		name    string
		want    Command // Action, Entity, Path, Fields and Value checked
		respond func(cmd Command, tp Topic) []Envelope
	}{
		{"modify_attribute", Command{Action: ActionModify, Entity: "org.eclipse.ditto:fancy-thing", Path: MustPointer("/attributes/location"), Value: location},
			func(cmd Command, tp Topic) []Envelope {
				return []Envelope{
					ResponseEnvelope(cmd, tp, Result{Status: 204}),
					thingEvent(t, cmd, EventAction(cmd.Action, false), 1, "", cmd.Value),
				}
			}},
		{"create_attribute", Command{Action: ActionModify, Entity: "org.eclipse.ditto:fancy-thing", Path: MustPointer("/attributes/location"), Value: location},
			func(cmd Command, tp Topic) []Envelope {
				return []Envelope{
					ResponseEnvelope(cmd, tp, Result{Status: 201, Value: cmd.Value}),
					thingEvent(t, cmd, EventAction(cmd.Action, true), 1, "", cmd.Value),
				}
			}},
		{"merge_thing", Command{Action: ActionMerge, Entity: "org.eclipse.ditto:fancy-thing_53", Path: Pointer{},
			Value: mustJSON(t, `{"definition":"org.eclipse.ditto:SomeModel:1.0.0","features":{"accelerometer":{"properties":{"x":3.141,"unit":"g"}}}}`)},
			func(cmd Command, tp Topic) []Envelope {
				id, _ := ParseEntityID(cmd.Entity)
				return []Envelope{
					ResponseEnvelope(cmd, tp, Result{Status: 204}),
					EventEnvelope(EventParams{Entity: id, Group: GroupThings, Action: EventAction(cmd.Action, false), Path: cmd.Path,
						Value: cmd.Value, Revision: 42, Timestamp: "2021-01-18T09:42:12Z", Headers: Headers{}}),
				}
			}},
		{"retrieve_thing", Command{Action: ActionRetrieve, Entity: "org.eclipse.ditto:fancy-thing", Path: Pointer{}, Fields: "thingId,attributes(location)"},
			func(cmd Command, tp Topic) []Envelope {
				fs, err := ParseFieldSelector(cmd.Fields)
				if err != nil {
					t.Fatal(err)
				}
				return []Envelope{
					ResponseEnvelope(cmd, tp, Result{Status: 200, Value: fs.Apply(thing), ETag: RevisionETag(1)}),
					ErrorEnvelope(tp, cmd.Headers, notFound),
				}
			}},
		{"delete_thing", Command{Action: ActionDelete, Entity: "org.eclipse.ditto:fancy-thing", Path: Pointer{}},
			func(cmd Command, tp Topic) []Envelope {
				return []Envelope{
					ResponseEnvelope(cmd, tp, Result{Status: 204}),
					thingEvent(t, cmd, EventAction(cmd.Action, false), 1, "", nil),
				}
			}},
		{"modify_subject", Command{Action: ActionModify, Entity: "org.eclipse.ditto:the_policy_id", Path: MustPointer("/entries/the_label/subjects/google:the_subjectid"),
			Value: mustJSON(t, `{"type":"the type"}`)},
			func(cmd Command, tp Topic) []Envelope {
				id, _ := ParseEntityID(cmd.Entity)
				return []Envelope{
					ResponseEnvelope(cmd, tp, Result{Status: 201, Value: cmd.Value}),
					EventEnvelope(EventParams{Entity: id, Group: GroupPolicies, Action: EventAction(cmd.Action, true), Path: cmd.Path,
						Value: cmd.Value, Revision: 2, Headers: Headers{HeaderCorrelationID: cmd.Headers.Get(HeaderCorrelationID)}}),
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", "protocol", tt.name+".in.json"))
			if err != nil {
				t.Fatal(err)
			}
			env, err := DecodeEnvelope(in)
			if err != nil {
				t.Fatal(err)
			}
			cmd, err := CommandFromEnvelope(env)
			if err != nil {
				t.Fatal(err)
			}
			if cmd.Action != tt.want.Action || cmd.Entity != tt.want.Entity || !cmd.Path.Equal(tt.want.Path) ||
				cmd.Fields != tt.want.Fields || !JSONEqual(cmd.Value, tt.want.Value) {
				t.Fatalf("command = %+v, want %+v", cmd, tt.want)
			}
			tp, err := ParseTopic(env.Topic)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			for _, e := range tt.respond(cmd, tp) {
				out.Write(EncodeEnvelope(e))
				out.WriteByte('\n')
			}
			golden := filepath.Join("testdata", "protocol", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("output differs from %s:\ngot:\n%s\nwant:\n%s", golden, out.Bytes(), want)
			}
			// Every produced message decodes again.
			for _, line := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
				if _, err := DecodeEnvelope(line); err != nil {
					t.Fatalf("re-decode %s: %v", line, err)
				}
			}
		})
	}
}

// thingEvent builds the twin event of cmd with its correlation-id.
func thingEvent(t *testing.T, cmd Command, action string, rev int64, ts string, value any) Envelope {
	t.Helper()
	id, ok := ParseEntityID(cmd.Entity)
	if !ok {
		t.Fatalf("entity %q", cmd.Entity)
	}
	return EventEnvelope(EventParams{Entity: id, Group: GroupThings, Channel: cmd.Headers.Get(HeaderChannel), Action: action,
		Path: cmd.Path, Value: value, Revision: rev, Timestamp: ts,
		Headers: Headers{HeaderCorrelationID: cmd.Headers.Get(HeaderCorrelationID)}})
}

func TestDecodeEnvelope(t *testing.T) {
	tests := []struct {
		name string
		in   string
		code string
		// checks on success
		headers Headers
		value   string // "" = absent
	}{
		{"minimal", `{"topic":"ns/t/things/twin/commands/retrieve","headers":{},"path":"/"}`, "", Headers{}, ""},
		{"header conversion",
			`{"topic":"x","path":"/","headers":{"Correlation-ID":"c","requested-acks":["twin-persisted","my-ack"],"response-required":false,"timeout":30,"put-metadata":[{"key":"/a","value":1}],"obj":{"b":1},"gone":null}}`,
			"", Headers{"correlation-id": "c", "requested-acks": "twin-persisted,my-ack", "response-required": "false", "timeout": "30",
				"put-metadata": `[{"key":"/a","value":1}]`, "obj": `{"b":1}`}, ""},
		{"explicit null value", `{"topic":"x","headers":{},"path":"/a","value":null}`, "", Headers{}, "null"},
		{"value kept raw", `{"topic":"x","headers":{},"path":"/a","value":{"n":1.50}}`, "", Headers{}, `{"n":1.50}`},
		{"unknown fields ignored", `{"topic":"x","headers":{},"path":"/","foo":[1,2]}`, "", Headers{}, ""},
		{"missing topic", `{"headers":{},"path":"/"}`, "json.field.missing", nil, ""},
		{"empty topic", `{"topic":"","headers":{},"path":"/"}`, "json.field.missing", nil, ""},
		{"missing headers", `{"topic":"x","path":"/"}`, "json.field.missing", nil, ""},
		{"null headers", `{"topic":"x","headers":null,"path":"/"}`, "json.field.missing", nil, ""},
		{"missing path", `{"topic":"x","headers":{}}`, "json.field.missing", nil, ""},
		{"headers not object", `{"topic":"x","headers":[],"path":"/"}`, "json.format.invalid", nil, ""},
		{"topic not string", `{"topic":1,"headers":{},"path":"/"}`, "json.format.invalid", nil, ""},
		{"status not number", `{"topic":"x","headers":{},"path":"/","status":"200"}`, "json.format.invalid", nil, ""},
		{"not json", `{"topic":`, "json.format.invalid", nil, ""},
		{"array", `[]`, "json.format.invalid", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := DecodeEnvelope([]byte(tt.in))
			wantCode(t, err, tt.code)
			if tt.code != "" {
				return
			}
			if !reflect.DeepEqual(env.Headers, tt.headers) {
				t.Fatalf("headers = %v, want %v", env.Headers, tt.headers)
			}
			if string(env.Value) != tt.value {
				t.Fatalf("value = %q, want %q", env.Value, tt.value)
			}
		})
	}
}

func TestEncodeEnvelopeRoundTrip(t *testing.T) {
	in := `{"topic":"ns/t/things/twin/events/modified","headers":{"correlation-id":"c","declared-acks":[],"ditto-metadata":{"a":{"unit":"m"}},"ditto-weak-ack":true,"requested-acks":["a-ack","b-ack"],"response-required":false},"path":"/attributes/a","value":null,"extra":{"x":1},"status":200,"revision":3,"timestamp":"2024-01-01T00:00:00Z","metadata":{"m":1}}`
	env, err := DecodeEnvelope([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(EncodeEnvelope(env)); got != in {
		t.Fatalf("round trip:\n got %s\nwant %s", got, in)
	}
	// No HTML escaping.
	b := EncodeEnvelope(Envelope{Topic: "t", Headers: Headers{"x": "<&>"}, Path: "/"})
	if !bytes.Contains(b, []byte("<&>")) {
		t.Fatalf("escaped: %s", b)
	}
}

func TestCommandFromEnvelope(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		code  string
		check func(t *testing.T, c Command)
	}{
		{"live retrieve sets channel", `{"topic":"ns/t/things/live/commands/retrieve","headers":{"channel":"twin","timeout":"250ms"},"path":"/features/lamp/properties/on"}`, "",
			func(t *testing.T, c Command) {
				if c.Headers.Get(HeaderChannel) != "live" || c.Timeout != 250*time.Millisecond || c.Action != ActionRetrieve {
					t.Fatalf("command %+v", c)
				}
			}},
		{"create thing", `{"topic":"ns/t/things/twin/commands/create","headers":{},"path":"/","value":{"thingId":"ns:t","attributes":{}}}`, "",
			func(t *testing.T, c Command) {
				if c.Action != ActionCreate || c.Entity != "ns:t" {
					t.Fatalf("command %+v", c)
				}
			}},
		{"numbers kept", `{"topic":"ns/t/things/twin/commands/modify","headers":{},"path":"/attributes/n","value":12345678901234567890}`, "",
			func(t *testing.T, c Command) {
				if c.Value != json.Number("12345678901234567890") {
					t.Fatalf("value %#v", c.Value)
				}
			}},
		{"explicit null value", `{"topic":"ns/t/things/twin/commands/modify","headers":{},"path":"/attributes/n","value":null}`, "",
			func(t *testing.T, c Command) {
				if c.Value != nil {
					t.Fatalf("value %#v", c.Value)
				}
			}},
		{"empty namespace", `{"topic":"/t/things/twin/commands/retrieve","headers":{},"path":"/"}`, "",
			func(t *testing.T, c Command) {
				if c.Entity != ":t" {
					t.Fatalf("entity %q", c.Entity)
				}
			}},
		{"multi retrieve", `{"topic":"_/_/things/twin/commands/retrieve","headers":{},"path":"/","value":{"thingIds":["ns:a","ns:b"]}}`, "",
			func(t *testing.T, c Command) {
				if c.Entity != "" || !JSONEqual(c.Value, mustJSON(t, `{"thingIds":["ns:a","ns:b"]}`)) {
					t.Fatalf("command %+v", c)
				}
			}},
		{"multi retrieve in namespace", `{"topic":"ns/_/things/twin/commands/retrieve","headers":{},"path":"/","value":{"thingIds":["ns:a"]}}`, "", nil},
		{"policy retrieve", `{"topic":"ns/p/policies/commands/retrieve","headers":{},"path":"/entries"}`, "",
			func(t *testing.T, c Command) {
				if c.Entity != "ns:p" || c.Headers.Get(HeaderChannel) != "" {
					t.Fatalf("command %+v", c)
				}
			}},
		{"policy id matches body", `{"topic":"ns/p/policies/commands/create","headers":{},"path":"/","value":{"policyId":"ns:p","entries":{}}}`, "", nil},
		{"thing id differs", `{"topic":"ns/t/things/twin/commands/modify","headers":{},"path":"/","value":{"thingId":"ns:other"}}`, "things:id.notsettable", nil},
		{"thing id not string", `{"topic":"ns/t/things/twin/commands/merge","headers":{},"path":"/","value":{"thingId":1}}`, "things:id.notsettable", nil},
		{"policy id differs", `{"topic":"ns/p/policies/commands/modify","headers":{},"path":"/","value":{"policyId":"ns:q"}}`, "policies:id.notsettable", nil},
		{"thingId below root is just data", `{"topic":"ns/t/things/twin/commands/modify","headers":{},"path":"/attributes","value":{"thingId":"x"}}`, "", nil},
		{"modify without value", `{"topic":"ns/t/things/twin/commands/modify","headers":{},"path":"/attributes/a"}`, "json.field.missing", nil},
		{"create on sub-path", `{"topic":"ns/t/things/twin/commands/create","headers":{},"path":"/attributes","value":{}}`, "protocoladapter:unknown.path", nil},
		{"bad path", `{"topic":"ns/t/things/twin/commands/modify","headers":{},"path":"/features/f/foo","value":1}`, "protocoladapter:unknown.path", nil},
		{"thingId path", `{"topic":"ns/t/things/twin/commands/modify","headers":{},"path":"/thingId","value":"x"}`, "protocoladapter:unknown.path", nil},
		{"bad pointer", `{"topic":"ns/t/things/twin/commands/modify","headers":{},"path":"/attributes//a","value":1}`, "json.pointer.invalid", nil},
		{"event is not a command", `{"topic":"ns/t/things/twin/events/modified","headers":{},"path":"/"}`, "protocoladapter:unknown.topicpath", nil},
		{"bad topic", `{"topic":"ns/t/things/twin/commands/patch","headers":{},"path":"/"}`, "protocoladapter:unknown.topicpath", nil},
		{"placeholder modify", `{"topic":"_/_/things/twin/commands/modify","headers":{},"path":"/","value":{}}`, "protocoladapter:unknown.topicpath", nil},
		{"placeholder retrieve without ids", `{"topic":"_/_/things/twin/commands/retrieve","headers":{},"path":"/"}`, "protocoladapter:unknown.topicpath", nil},
		{"placeholder namespace only", `{"topic":"_/t/things/twin/commands/retrieve","headers":{},"path":"/","value":{"thingIds":[]}}`, "protocoladapter:unknown.topicpath", nil},
		{"bad timeout", `{"topic":"ns/t/things/twin/commands/retrieve","headers":{"timeout":"2h"},"path":"/"}`, "timeout.invalid", nil},
		{"retrieve needs no value", `{"topic":"ns/t/things/twin/commands/retrieve","headers":{},"path":"/"}`, "", nil},
		{"long name", `{"topic":"ns/` + strings.Repeat("n", 260) + `/things/twin/commands/retrieve","headers":{},"path":"/"}`, "things:id.invalid", nil},
		{"long policy name", `{"topic":"ns/` + strings.Repeat("n", 260) + `/policies/commands/retrieve","headers":{},"path":"/"}`, "policies:id.invalid", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := DecodeEnvelope([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			cmd, err := CommandFromEnvelope(env)
			wantCode(t, err, tt.code)
			if tt.code == "" && tt.check != nil {
				tt.check(t, cmd)
			}
		})
	}
	// A Value that is not valid JSON (an Envelope built in code).
	_, err := CommandFromEnvelope(Envelope{Topic: "ns/t/things/twin/commands/modify", Headers: Headers{}, Path: "/attributes/a", Value: json.RawMessage(`{`)})
	wantCode(t, err, "json.format.invalid")
}

func TestResponseAndErrorEnvelopes(t *testing.T) {
	tp, _ := ParseTopic("ns/t/things/live/commands/retrieve")
	cmd := Command{Path: MustPointer("/attributes/a"), Headers: Headers{"correlation-id": "c", "x": "y",
		"authorization": "Basic x", "condition": "eq(a,1)", "ditto-origin": "n1", "read-subjects": "[]", "if-match": "*"}}
	r := ResponseEnvelope(cmd, tp, Result{Status: 200})
	if string(r.Value) != "null" || r.Status != 200 {
		t.Fatalf("200 response %+v", r)
	}
	// The client's own headers come back, as in Ditto; the ones Ditto
	// defines only where a response sets them, internal ones never.
	want := Headers{"correlation-id": "c", "x": "y", HeaderContentType: ContentTypeJSON}
	if !maps.Equal(r.Headers, want) {
		t.Fatalf("response headers %v, want %v", r.Headers, want)
	}
	if e := ErrorEnvelope(tp, cmd.Headers, ErrAttributeNotFound.New("x")); !maps.Equal(e.Headers, want) {
		t.Fatalf("error headers %v, want %v", e.Headers, want)
	}
	r = ResponseEnvelope(cmd, tp, Result{Status: 200, Value: 1, Metadata: []byte(`{"a":{"unit":"m"}}`)})
	if r.Headers.Get(HeaderDittoMetadata) != `{"a":{"unit":"m"}}` {
		t.Fatalf("get-metadata answer: %+v", r.Headers)
	}
	r = ResponseEnvelope(cmd, tp, Result{Status: 204, Value: 1})
	if r.Value != nil {
		t.Fatal("204 must not carry a value")
	}
	r = ResponseEnvelope(cmd, tp, Result{Status: 201})
	if r.Value != nil {
		t.Fatal("201 without value")
	}
	e := ErrorEnvelope(tp, cmd.Headers, ErrAttributeNotFound.New("x"))
	if e.Topic != "ns/t/things/live/errors" || e.Path != "/" || e.Status != 404 {
		t.Fatalf("live error %+v", e)
	}
	e = ErrorEnvelope(Topic{}, nil, ErrJSONInvalid.New("x"))
	if e.Topic != "unknown/unknown/things/twin/errors" || e.Status != 400 {
		t.Fatalf("unparsed topic error %+v", e)
	}
	e = ErrorEnvelope(Topic{Namespace: "ns", Name: "p", Group: GroupPolicies, Criterion: CriterionCommands, Action: "modify"}, nil, ErrPolicyNotFound.New("x"))
	if e.Topic != "ns/p/policies/errors" {
		t.Fatalf("policy error %+v", e)
	}
	for _, topic := range []string{e.Topic, "unknown/unknown/things/twin/errors", "ns/t/things/live/errors"} {
		if _, err := ParseTopic(topic); err != nil {
			t.Fatalf("error topic %s does not parse", topic)
		}
	}
	id := EntityID{"ns", "t"}
	if got := EventTopic(id, GroupThings, "", "modified"); got != "ns/t/things/twin/events/modified" {
		t.Fatal(got)
	}
	if got := EventTopic(id, GroupThings, ChannelLive, "created"); got != "ns/t/things/live/events/created" {
		t.Fatal(got)
	}
	if got := EventTopic(id, GroupPolicies, "", "deleted"); got != "ns/t/policies/events/deleted" {
		t.Fatal(got)
	}
	actions := map[Action]string{ActionCreate: "created", ActionMerge: "merged", ActionDelete: "deleted", ActionMigrate: "migrated", ActionRetrieve: ""}
	for a, want := range actions {
		if got := EventAction(a, false); got != want {
			t.Fatalf("EventAction(%s) = %q", a, got)
		}
	}
	ev := EventEnvelope(EventParams{Entity: id, Group: GroupThings, Action: "modified", Path: MustPointer("/attributes/a")})
	if string(ev.Value) != "null" || ev.Headers == nil {
		t.Fatalf("event with nil value: %+v", ev)
	}
}

func TestThingsResourceName(t *testing.T) {
	tests := []struct {
		path string
		want string // resource name, or an error code
	}{
		{"/", ResThing},
		{"/policyId", ResPolicyID},
		{"/definition", ResThingDefinition},
		{"/attributes", ResAttributes},
		{"/attributes/a", ResAttribute},
		{"/attributes/a/b/c", ResAttribute},
		{"/features", ResFeatures},
		{"/features/lamp", ResFeature},
		{"/features/lamp/definition", ResFeatureDefinition},
		{"/features/lamp/properties", ResFeatureProperties},
		{"/features/lamp/properties/on", ResFeatureProperty},
		{"/features/lamp/properties/a/b", ResFeatureProperty},
		{"/features/lamp/desiredProperties", ResFeatureDesiredProperties},
		{"/features/lamp/desiredProperties/on/x", ResFeatureDesiredProperty},
		{"/thingId", "protocoladapter:unknown.path"},
		{"/policyId/x", "protocoladapter:unknown.path"},
		{"/definition/x", "protocoladapter:unknown.path"},
		{"/features/lamp/foo", "protocoladapter:unknown.path"},
		{"/features/lamp/definition/0", "protocoladapter:unknown.path"},
		{"/_revision", "protocoladapter:unknown.path"},
		{"/features/*", "json.key.invalid"},
		{"/features/*/properties", "json.key.invalid"},
		{"/attributes/" + strings.Repeat("k", 257), "json.key.invalid"},
		{"/features/f/properties/" + strings.Repeat("k", 257), "json.key.invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := ThingsResourceName(MustPointer(tt.path))
			if strings.Contains(tt.want, ".") {
				wantCode(t, err, tt.want)
				return
			}
			wantCode(t, err, "")
			if got != tt.want {
				t.Fatalf("ThingsResourceName(%s) = %s, want %s", tt.path, got, tt.want)
			}
		})
	}
}

func TestPoliciesResourceName(t *testing.T) {
	tests := []struct {
		path string
		want string
		key  string
	}{
		{"/", ResPolicy, ""},
		{"/entries", ResPolicyEntries, ""},
		{"/entries/owner", ResPolicyEntry, ""},
		{"/entries/owner/subjects", ResSubjects, ""},
		{"/entries/owner/subjects/google:the_subjectid", ResSubject, "google:the_subjectid"},
		{"/entries/owner/subjects/oidc:https:/x", ResSubject, "oidc:https:/x"},
		{"/entries/owner/resources", ResResources, ""},
		{"/entries/owner/resources/thing:", ResResource, "thing:/"},
		{"/entries/owner/resources/thing:/features/x", ResResource, "thing:/features/x"},
		{"/entries/owner/namespaces", ResPolicyEntryNamespaces, ""},
		{"/entries/owner/importable", ResPolicyEntryImportable, ""},
		{"/entries/owner/allowedAdditions", ResPolicyEntryAllowedAdditions, ""},
		{"/entries/owner/references", ResPolicyEntryReferences, ""},
		{"/imports", ResPolicyImports, ""},
		{"/imports/ns:tmpl", ResPolicyImport, ""},
		{"/imports/ns:tmpl/entries", ResPolicyImportEntries, ""},
		{"/imports/ns:tmpl/transitiveImports", ResPolicyImportTransitiveImports, ""},
		{"/policyId", "protocoladapter:unknown.path", ""},
		{"/entries/owner/foo", "protocoladapter:unknown.path", ""},
		{"/entries/owner/namespaces/x", "protocoladapter:unknown.path", ""},
		{"/imports/ns:tmpl/foo", "protocoladapter:unknown.path", ""},
		{"/imports/nocolon", "policies:id.invalid", ""},
		{"/entries/" + strings.Repeat("l", 257), "json.key.invalid", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			p := MustPointer(tt.path)
			got, err := PoliciesResourceName(p)
			if strings.Contains(tt.want, ".") {
				wantCode(t, err, tt.want)
				return
			}
			wantCode(t, err, "")
			if got != tt.want {
				t.Fatalf("PoliciesResourceName(%s) = %s, want %s", tt.path, got, tt.want)
			}
			if k := PolicyPathKey(p); k != tt.key {
				t.Fatalf("PolicyPathKey = %q, want %q", k, tt.key)
			}
		})
	}
}

func TestParseTimeout(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"42", 42 * time.Second, false},
		{"42s", 42 * time.Second, false},
		{"250ms", 250 * time.Millisecond, false},
		{"1m", time.Minute, false},
		{"0", 0, false},
		{"60", 60 * time.Second, false},
		{"61", 0, true},
		{"60001ms", 0, true},
		{"2m", 0, true},
		{"-1", 0, true},
		{"", 0, true},
		{"1.5s", 0, true},
		{"s", 0, true},
		{"10h", 0, true},
		{"99999999999999999999", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTimeout(tt.in)
			if tt.err {
				wantCode(t, err, "timeout.invalid")
				return
			}
			wantCode(t, err, "")
			if got != tt.want {
				t.Fatalf("ParseTimeout(%q) = %v", tt.in, got)
			}
		})
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	for _, name := range []string{"modify_attribute", "merge_thing", "retrieve_thing", "modify_subject", "delete_thing"} {
		b, err := os.ReadFile(filepath.Join("testdata", "protocol", name+".in.json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"topic":"_/_/things/twin/commands/retrieve","headers":{"requested-acks":["a"]},"path":"/","value":{"thingIds":["a:b"]}}`))
	f.Add([]byte(`{"topic":"ns/t/things/twin/commands/modify","headers":{"timeout":"1m"},"path":"/features/*/x","value":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := DecodeEnvelope(b)
		if err != nil {
			if errCode(err) == "" {
				t.Fatalf("non-Ditto error %v", err)
			}
			return
		}
		// Encoding and decoding again gives the same message.
		env2, err := DecodeEnvelope(EncodeEnvelope(env))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if env2.Topic != env.Topic || env2.Path != env.Path || env2.Status != env.Status {
			t.Fatalf("round trip changed the message")
		}
		cmd, err := CommandFromEnvelope(env)
		if err != nil {
			if errCode(err) == "" {
				t.Fatalf("non-Ditto error %v", err)
			}
			return
		}
		tp, err := ParseTopic(env.Topic)
		if err != nil {
			t.Fatalf("command from unparsable topic: %v", err)
		}
		if cmd.Entity == "" && tp.Action != "retrieve" {
			t.Fatalf("empty entity for %s", env.Topic)
		}
		res := ResponseEnvelope(cmd, tp, Result{Status: 200, Value: cmd.Value})
		if _, err := DecodeEnvelope(EncodeEnvelope(res)); err != nil {
			t.Fatalf("response does not decode: %v", err)
		}
	})
}

func BenchmarkDecodeCommand(b *testing.B) {
	in := []byte(`{"topic":"org.eclipse.ditto/fancy-thing/things/twin/commands/modify","headers":{"correlation-id":"c","requested-acks":["twin-persisted"]},"path":"/attributes/location","value":{"latitude":44.673856,"longitude":8.261719}}`)
	b.ReportAllocs()
	for b.Loop() {
		env, err := DecodeEnvelope(in)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := CommandFromEnvelope(env); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	p := EventParams{Entity: EntityID{"org.eclipse.ditto", "fancy-thing"}, Group: GroupThings, Action: "modified",
		Path: MustPointer("/attributes/location"), Value: mustJSON(b, `{"latitude":44.673856,"longitude":8.261719}`),
		Revision: 7, Headers: Headers{"correlation-id": "c"}}
	b.ReportAllocs()
	for b.Loop() {
		EncodeEnvelope(EventEnvelope(p))
	}
}

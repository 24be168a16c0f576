package policies

import (
	"context"
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

// benchEntries is a typical two-entry policy: an owner and a partial reader.
const benchEntries = `{
	"owner":{"subjects":{"nginx:a":{"type":"t"}},"resources":{
		"thing:/":{"grant":["READ","WRITE"],"revoke":[]},"policy:/":{"grant":["READ","WRITE"],"revoke":[]},
		"message:/":{"grant":["READ","WRITE"],"revoke":[]}}},
	"observer":{"subjects":{"nginx:b":{"type":"t"}},"resources":{
		"thing:/features/featureY":{"grant":["READ"],"revoke":[]},
		"thing:/features/featureY/properties/location/city":{"grant":[],"revoke":["READ"]}}}}`

func BenchmarkUnrestricted(b *testing.B) {
	e := mustEnforcer(b, benchEntries, "ns")
	path := ditto.Pointer{"features", "featureY", "properties", "on"}
	subjects := []string{"nginx:b", "nginx:c"}
	b.ReportAllocs()
	for b.Loop() {
		if !e.Unrestricted(ditto.ResourceThing, path, subjects, ditto.PermRead) {
			b.Fatal("denied")
		}
	}
}

func BenchmarkPartial(b *testing.B) {
	e := mustEnforcer(b, benchEntries, "ns")
	subjects := []string{"nginx:b"}
	b.ReportAllocs()
	for b.Loop() {
		if !e.Partial(ditto.ResourceThing, nil, subjects, ditto.PermRead) {
			b.Fatal("denied")
		}
	}
}

func BenchmarkView(b *testing.B) {
	e := mustEnforcer(b, benchEntries, "ns")
	v := mustJSON(b, `{"thingId":"ns:t","attributes":{"a":1},"features":{"featureY":{"properties":{"location":{"city":"X","zip":"1"},"on":true}},
		"other":{"properties":{"p":1}}}}`)
	subjects := []string{"nginx:b"}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := e.View(ditto.ResourceThing, nil, v, subjects); !ok {
			b.Fatal("nothing readable")
		}
	}
}

func BenchmarkViewOwner(b *testing.B) {
	e := mustEnforcer(b, benchEntries, "ns")
	v := mustJSON(b, `{"thingId":"ns:t","attributes":{"a":1},"features":{"featureY":{"properties":{"location":{"city":"X","zip":"1"},"on":true}}}}`)
	subjects := []string{"nginx:a"}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := e.View(ditto.ResourceThing, nil, v, subjects); !ok {
			b.Fatal("nothing readable")
		}
	}
}

func BenchmarkEnforcerFor(b *testing.B) {
	h := newHarness(b, Config{})
	h.create(b, testPolicyID, ownerPolicy)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := h.s.EnforcerFor(testPolicyID, "ns"); !ok {
			b.Fatal("no enforcer")
		}
	}
}

func BenchmarkApplyModifySubject(b *testing.B) {
	h := newHarness(b, Config{})
	h.create(b, testPolicyID, ownerPolicy)
	cmd := ditto.Command{Action: ditto.ActionModify, Entity: testPolicyID, Path: ptr("entries", "owner", "subjects", "x:y"),
		Value: map[string]any{"type": "t"}, Auth: ditto.Auth{Subjects: a}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.s.Handle(ctx, cmd); err != nil {
			b.Fatal(err)
		}
	}
}

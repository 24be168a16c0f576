package ditto

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// codePrefixes are the service prefixes a catalogue code may carry.
var codePrefixes = []string{
	"things:", "policies:", "thing-search:", "messages:", "acknowledgement:", "connectivity:",
	"gateway:", "jwt:", "placeholder:", "protocoladapter:",
}

// unprefixedCodes are the general codes Ditto sends without a prefix.
var unprefixedCodes = map[string]bool{
	"json.format.invalid": true, "json.key.invalid": true, "json.field.missing": true,
	"json.pointer.invalid": true, "header.invalid": true, "rql.expression.invalid": true,
	"timeout.invalid": true, "command.timeout": true, "namespace.blocked": true,
	"mediatype.unsupported": true, "entity.id.invalid": true, "too.many.requests": true,
	"headers.too.large": true,
}

var codeRE = regexp.MustCompile(`^[a-zA-Z.\-]+$`)

func TestCatalogue(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range Catalogue {
		t.Run(d.Code, func(t *testing.T) {
			if seen[d.Code] {
				t.Fatalf("duplicate code %s", d.Code)
			}
			seen[d.Code] = true
			if http.StatusText(d.Status) == "" || d.Status < 300 || d.Status > 599 {
				t.Fatalf("status %d is not an error status", d.Status)
			}
			if d.Description == "" {
				t.Fatal("missing description")
			}
			rest, prefixed := d.Code, false
			for _, p := range codePrefixes {
				if strings.HasPrefix(d.Code, p) {
					rest, prefixed = strings.TrimPrefix(d.Code, p), true
					break
				}
			}
			if !prefixed && !unprefixedCodes[d.Code] {
				t.Fatalf("code %s has no allowed prefix and is not a general code", d.Code)
			}
			if !codeRE.MatchString(rest) {
				t.Fatalf("code %s has an invalid body", d.Code)
			}
		})
	}
}

func TestErrorJSON(t *testing.T) {
	e := ErrThingNotFound.New("The Thing with ID '%s' could not be found or requester had insufficient permissions to access it.", "ns:t")
	var got map[string]any
	if err := json.Unmarshal(e.JSON(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"status": float64(404), "error": "things:thing.notfound",
		"message":     "The Thing with ID 'ns:t' could not be found or requester had insufficient permissions to access it.",
		"description": ErrThingNotFound.Description,
	}
	if !JSONEqual(toNumbers(t, got), toNumbers(t, want)) {
		t.Fatalf("JSON = %s", e.JSON())
	}
	if e.Error() != "things:thing.notfound: "+e.Message {
		t.Fatalf("Error() = %q", e.Error())
	}
	d := e.WithDescription("other")
	if d.Description != "other" || e.Description == "other" {
		t.Fatal("WithDescription must copy")
	}
	var de *Error
	if !errors.As(error(e), &de) {
		t.Fatal("errors.As")
	}
	if m := ErrJSONInvalid.New("plain message").Message; m != "plain message" {
		t.Fatalf("message = %q", m)
	}
}

// toNumbers re-decodes v so that numbers compare as json.Number.
func toNumbers(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return mustJSON(t, string(b))
}

package gateway

import (
	"bytes"
	"testing"

	"github.com/dittonode/dittonode/ditto"
)

// FuzzParseMessageRoute feeds arbitrary request paths to the message route
// parser: it must never panic, and every accepted route must build a topic
// and path that the live router's parsers accept.
func FuzzParseMessageRoute(f *testing.F) {
	for _, s := range []string{
		"/things/org.acme:t1/inbox/messages/ask", "/things/org.acme:t1/outbox/messages/a/b%2Fc",
		"/things/org.acme:t1/features/f/inbox/messages/x", "/things/org.acme:t1/inbox/claim",
		"/things//inbox/messages/x", "/things/org.acme:t1/inbox/messages//x", "/things/%zz/inbox/messages/x",
		"/things/org.acme:t1/features/%2A/outbox/messages/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		mr, ok, derr := parseMessageRoute(path)
		if !ok || derr != nil {
			return
		}
		env, derr := mr.envelope()
		if derr != nil {
			return
		}
		if _, err := ditto.ParseTopic(env.Topic); err != nil {
			return // e.g. a subject with control characters
		}
		if _, err := ditto.ParsePointer(env.Path); err != nil {
			t.Fatalf("path %q of %q does not parse: %v", env.Path, path, err)
		}
	})
}

// FuzzPayloadRoundTrip checks that a message body survives the conversion
// to a Ditto Protocol value and back for text and binary content types.
func FuzzPayloadRoundTrip(f *testing.F) {
	f.Add("text/plain", []byte("hello"))
	f.Add("application/octet-stream", []byte{0, 255, 10})
	f.Add("application/json", []byte(`{"a":1}`))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		v, derr := payloadValue(ct, body)
		if derr != nil || v == nil {
			return
		}
		out := payloadBody(ct, v)
		mt := mediaType(ct)
		switch {
		case isJSONMedia(mt):
			return // JSON is passed through as sent
		case len(mt) >= 5 && mt[:5] == "text/":
			if string(out) != string([]rune(string(body))) { // invalid UTF-8 becomes U+FFFD per byte
				t.Fatalf("text %q came back as %q", body, out)
			}
		default:
			if !bytes.Equal(out, body) {
				t.Fatalf("binary %q came back as %q", body, out)
			}
		}
	})
}

package ditto

import (
	"errors"
	"testing"
)

// mustJSON decodes s or fails the test.
func mustJSON(t testing.TB, s string) any {
	t.Helper()
	v, err := DecodeJSON([]byte(s))
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return v
}

// errCode returns the Ditto error code of err, or "" when err is not a
// *Error.
func errCode(err error) string {
	var de *Error
	if errors.As(err, &de) {
		return de.Code
	}
	return ""
}

// wantCode fails the test unless err is a *Error with code want ("" = nil).
func wantCode(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if got := errCode(err); got != want {
		t.Fatalf("error = %v, want code %s", err, want)
	}
}

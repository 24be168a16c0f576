package ditto

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// DecodeJSON decodes one JSON value with numbers kept as json.Number. It
// fails with json.format.invalid when b is not exactly one JSON value.
func DecodeJSON(b []byte) (any, error) {
	fd := fastDecoder{b: b}
	if v, err := fd.value(0); err == nil {
		if fd.skipSpace(); fd.i == len(b) {
			return v, nil
		}
	}
	return decodeStd(b)
}

// decodeStd is DecodeJSON with encoding/json: the authority for input the
// fast decoder does not take, and for the error of invalid input.
func decodeStd(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, ErrJSONInvalid.New("Failed to parse JSON string '%s'!", truncate(string(b), 200))
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, ErrJSONInvalid.New("Failed to parse JSON string '%s'!", truncate(string(b), 200))
	}
	return v, nil
}

// encodeReflect encodes v with encoding/json (compact, no HTML escaping).
func encodeReflect(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Values built by DecodeJSON and this package always encode.
		panic("ditto: encode: " + err.Error())
	}
	b := buf.Bytes()
	return b[:len(b)-1] // without the trailing newline
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// GetAt returns the value at p inside v.
func GetAt(v any, p Pointer) (any, bool) {
	for _, seg := range p {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		v, ok = m[seg]
		if !ok {
			return nil, false
		}
	}
	return v, true
}

// SetAt returns v with the value at p set to val, creating intermediate
// objects as needed. An intermediate value that is not an object is
// replaced by one. v is modified in place where it is an object; the result
// must be used.
func SetAt(v any, p Pointer, val any) any {
	if len(p) == 0 {
		return val
	}
	m, ok := v.(map[string]any)
	if !ok {
		m = map[string]any{}
	}
	m[p[0]] = SetAt(m[p[0]], p[1:], val)
	return m
}

// DeleteAt removes the value at p from v in place and reports whether it was
// there. The empty pointer cannot be deleted.
func DeleteAt(v any, p Pointer) bool {
	if len(p) == 0 {
		return false
	}
	parent, ok := GetAt(v, p[:len(p)-1])
	if !ok {
		return false
	}
	m, ok := parent.(map[string]any)
	if !ok {
		return false
	}
	if _, ok := m[p[len(p)-1]]; !ok {
		return false
	}
	delete(m, p[len(p)-1])
	return true
}

// DeepCopy returns a copy of the JSON value v that shares nothing mutable.
func DeepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = DeepCopy(e)
		}
		return m
	case []any:
		a := make([]any, len(t))
		for i, e := range t {
			a[i] = DeepCopy(e)
		}
		return a
	default:
		return v
	}
}

// CheckKeys returns json.key.invalid for the first invalid object key
// anywhere inside v.
func CheckKeys(v any) error {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if err := CheckKey(k); err != nil {
				return err
			}
			if err := CheckKeys(e); err != nil {
				return err
			}
		}
	}
	// Objects inside arrays are values, not part of the thing's structure:
	// their keys are not checked (Ditto's JsonKeyValidator).
	return nil
}

// JSONEqual reports whether two JSON values are equal; numbers compare by
// their numeric value.
func JSONEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, e := range x {
			f, ok := y[k]
			if !ok || !JSONEqual(e, f) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !JSONEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		fx, err1 := x.Float64()
		fy, err2 := y.Float64()
		return err1 == nil && err2 == nil && fx == fy
	default:
		return a == b
	}
}

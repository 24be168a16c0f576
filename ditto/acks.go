package ditto

import (
	"encoding/json"
	"slices"
	"strings"
)

// ParseAckLabels parses a requested-acks value, a comma-separated list (as
// HTTP sends it and as Ditto Protocol arrays arrive in Headers) or a JSON
// array, into distinct valid labels in their order. An invalid label is
// acknowledgement:label.invalid, a malformed value header.invalid.
func ParseAckLabels(raw string) ([]string, *Error) {
	raw = strings.TrimSpace(raw)
	var parts []string
	if strings.HasPrefix(raw, "[") {
		if err := json.Unmarshal([]byte(raw), &parts); err != nil {
			return nil, ErrHeaderInvalid.New("The header 'requested-acks' is neither a comma-separated list nor a JSON array of labels.")
		}
	} else if raw != "" {
		parts = strings.Split(raw, ",")
	}
	var out []string
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !ValidAckLabel(p) {
			return nil, ErrAckLabelInvalid.New("The acknowledgement label '%s' is invalid.", truncate(p, 120))
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

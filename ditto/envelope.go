package ditto

import "encoding/json"

// Envelope is a Ditto Protocol message (application/vnd.eclipse.ditto+json).
// Value, Extra and Metadata stay raw JSON so that an explicit null survives a
// round trip and an absent value stays absent.
type Envelope struct {
	Topic     string          `json:"topic"`
	Headers   Headers         `json:"headers"`
	Path      string          `json:"path"`
	Value     json.RawMessage `json:"value,omitempty"`
	Fields    string          `json:"fields,omitempty"`
	Extra     json.RawMessage `json:"extra,omitempty"`
	Status    int             `json:"status,omitempty"`
	Revision  int64           `json:"revision,omitempty"`
	Timestamp string          `json:"timestamp,omitempty"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
}

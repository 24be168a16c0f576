// Package ditto is dittonode's shared domain model: entity IDs, JSON pointers,
// JSON values and their edits (set, delete, RFC 7396 merge with Ditto's regex
// delete), field selectors, the Ditto error catalogue and the Ditto Protocol
// envelope and topic codec.
//
// JSON values are the trees encoding/json produces when decoding with
// UseNumber: map[string]any, []any, string, json.Number, bool and nil. Every
// package of dittonode exchanges JSON in that form.
//
// It imports only the standard library; no other dittonode package may be
// imported here.
package ditto

// Package rql parses and evaluates Ditto's RQL filter expressions
// (ditto-spec.md section 6): eq, ne, gt, ge, lt, le, like, ilike, in, and,
// or, not, exists and empty over the JSON of a thing, plus the topic:,
// resource: and time: placeholders of subscription filters.
//
// Parse turns an expression into an AST of exported node types (And, Or,
// Not, Compare, In, Exists, Empty) that query planners such as search may
// walk; String renders any node back to canonical RQL that parses to an
// equal node. Match evaluates a node against a JSON value decoded with
// UseNumber. Evaluation is pure and deterministic: the current time and the
// placeholder values come from the caller through Env, so Match may run
// inside a replicated state machine.
//
// Parsing is linear in the input and bounded: expressions longer than
// MaxLength characters or nested deeper than MaxDepth are rejected with
// rql.expression.invalid. like patterns ('*' any run, '?' one character,
// no escape: a backslash is itself, as in Ditto) are matched without
// regular expressions, in at most O(len(pattern)*len(value)) steps.
//
// rql imports only the standard library and package ditto. It must not
// import any other dittonode package, nor testing or third-party modules.
package rql

// Package node is dittonode's composition root. It builds every part of a
// node from one Config (identity, the Raft groups of the stateful services,
// the services themselves, the signal bus and the HTTP gateway), plugs the
// services into each other through their consumer-side interfaces, starts
// them in dependency order and stops them in reverse.
//
// node is the only package that knows every other one; nothing imports
// node except cmd/dittonode and tests.
package node

//go:build race

package search

// raceEnabled skips memory assertions under the race detector, which
// inflates the heap.
const raceEnabled = true

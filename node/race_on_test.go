//go:build race

package node

// raceEnabled reports whether the race detector is on; timing budgets and
// the largest loads apply only without it.
const raceEnabled = true

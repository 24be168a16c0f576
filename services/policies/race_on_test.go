//go:build race

package policies

// raceEnabled skips measurements that the race detector distorts.
const raceEnabled = true

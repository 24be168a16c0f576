//go:build race

package consensus

// raceEnabled scales heavy tests down under the race detector.
const raceEnabled = true

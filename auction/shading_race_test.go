//go:build race

package auction

// The race detector instruments atomics and changes allocation counts, so allocation tests mean
// nothing under it.
const raceEnabled = true

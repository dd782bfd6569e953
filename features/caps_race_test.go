//go:build race

package features

// The race detector makes sync.Pool drop items on purpose and instruments atomics, so allocation
// counts mean nothing under it.
const raceEnabled = true

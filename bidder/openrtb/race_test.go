//go:build race

package openrtb_test

// The race detector adds allocations of its own, so allocation counts mean nothing under it.
const raceEnabled = true

//go:build !race

package pacing_test

const raceEnabled = false

//go:build !race

package auction

const raceEnabled = false

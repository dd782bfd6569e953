//go:build !race

package bidder

const raceEnabled = false

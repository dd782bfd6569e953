//go:build !race

package notice

const raceEnabled = false

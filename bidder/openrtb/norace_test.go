//go:build !race

package openrtb_test

const raceEnabled = false

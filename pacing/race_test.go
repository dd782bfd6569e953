//go:build race

package pacing_test

// The race detector slows the event consumers several times over; a test that runs a pacing day in
// real time then measures the machine, not the pacer (see TestServiceCompressedDay).
const raceEnabled = true

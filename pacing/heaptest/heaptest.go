// Package heaptest measures what a structure keeps on the heap for the garbage collector: its live
// objects and the pointer-holding bytes every cycle's mark must scan. At 100,000 campaigns a
// cycle's mark competes with requests for the cores, so tests hold per-campaign structures to a
// budget with it. Readings are taken in a child process running the one test alone, where no other
// test's goroutines allocate or free between them.
package heaptest

import (
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"testing"
)

const childEnv = "RTB_HEAPTEST_CHILD"

// Alone runs the calling test again alone in a child process and reports whether this is that
// child: the test measures only when it returns true. The child's failures fail the test.
func Alone(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	t.Logf("alone in a child process:\n%s", out)
	if err != nil {
		t.Errorf("%s alone: %v", t.Name(), err)
	}
	return false
}

// Live collects the garbage and returns the live heap objects and the scannable heap bytes.
func Live() (objects, scan uint64) {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/objects:objects"}, {Name: "/gc/scan/heap:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

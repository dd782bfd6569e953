package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/trace"
	"strings"
	"testing"
	"time"
)

//go:noinline
func spinWithoutABreak(d time.Duration) int {
	n := 0
	for start := time.Now(); time.Since(start) < d; {
		n++
	}
	return n
}

// A goroutine that holds a CPU for 50 ms is named among the longest runs of a trace of it.
func TestLongestRunsNameTheHog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := trace.Start(f); err != nil {
		t.Fatal(err)
	}
	done := make(chan int)
	go func() { done <- spinWithoutABreak(50 * time.Millisecond) }()
	<-done
	trace.Stop()
	f.Close()

	var out bytes.Buffer
	if err := run(path, 3, 10, &out); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	lines := strings.Split(out.String(), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "longest uninterrupted runs") {
		t.Fatalf("unexpected report:\n%s", out.String())
	}
	found := false
	for _, l := range lines[1:4] {
		found = found || strings.Contains(l, "spinWithoutABreak")
	}
	if !found {
		t.Errorf("the spinning goroutine is not among the 3 longest runs:\n%s", out.String())
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"runtime/trace"
	"strings"
	"testing"
	"time"

	xtrace "golang.org/x/exp/trace"
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
		// named by where the run stopped: in the spin when preempted, at the send after it, at the
		// goroutine's exit when its last run ends with it
		found = found || strings.Contains(l, "spinWithoutABreak") || strings.Contains(l, "TestLongestRunsNameTheHog.func1") || strings.Contains(l, "runtime.goexit")
	}
	if !found {
		t.Errorf("the spinning goroutine is not among the 3 longest runs:\n%s", out.String())
	}
}

var sink [][]byte

// -summary prints one JSON line: the spinning goroutine is the longest run outside the GC, and
// the collection forced meanwhile shows as GC work, not as a run outside it.
func TestSummary(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := trace.Start(f); err != nil {
		t.Fatal(err)
	}
	done := make(chan int)
	go func() { done <- spinWithoutABreak(30 * time.Millisecond) }()
	<-done
	for i := 0; i < 256; i++ { // a heap worth marking, quickly
		sink = append(sink, make([]byte, 4096))
	}
	runtime.GC()
	sink = nil
	trace.Stop()
	f.Close()

	var out bytes.Buffer
	if err := runSummary(path, 3, &out); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", out.String())
	if strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("want one line, got %q", out.String())
	}
	var s Summary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	// The scheduler preempts a goroutine after 10 ms or more, so the spin shows as a few runs. A run
	// is named by where it stopped: in the spin when preempted, at the send after it, or at the
	// goroutine's exit when its last run ends with it (seen once in CI on a loaded machine).
	named := func(where string) bool {
		return strings.Contains(where, "spinWithoutABreak") || strings.Contains(where, "TestSummary.func1") || strings.Contains(where, "runtime.goexit")
	}
	if s.LongestNonGCUs < 5_000 || !named(s.NonGCWhere) {
		t.Errorf("longest run outside the GC = %d µs at %q, want the 30 ms spin", s.LongestNonGCUs, s.NonGCWhere)
	}
	if s.NonGCRunUs < s.LongestNonGCUs || s.NonGCRunUs-s.LongestNonGCUs != s.NonGCAssistUs {
		t.Errorf("run %d µs = outside the GC %d µs + GC %d µs does not add up", s.NonGCRunUs, s.LongestNonGCUs, s.NonGCAssistUs)
	}
	if s.LongestGCUs <= 0 || s.GCWhere == "" {
		t.Errorf("no GC work found after runtime.GC: %+v", s)
	}
	if strings.Contains(s.GCWhere, "spinWithoutABreak") {
		t.Errorf("the spin is counted as GC work: %+v", s)
	}
	if s.Runs == 0 || s.TraceMs < 25 {
		t.Errorf("runs %d, trace %d ms: want the whole trace", s.Runs, s.TraceMs)
	}
}

// A run of a mark worker is the GC's; another goroutine's run less its assists is not; the
// tracer's runs are neither.
func TestSummarizeSplitsGC(t *testing.T) {
	ms := func(v int) xtrace.Time { return xtrace.Time(v) * xtrace.Time(time.Millisecond) }
	a := &analysis{
		runs:     []span{{1, ms(0), ms(5), ""}, {2, ms(10), ms(13), ""}, {3, ms(20), ms(22), ""}, {4, ms(23), ms(27), ""}},
		name:     map[xtrace.GoID]string{1: "runtime.gcBgMarkWorker", 2: "pacing.publish", 3: "bidder.handle", 4: "pprof.sleep < pprof.Trace"},
		gcWorker: map[xtrace.GoID]bool{1: true},
		tracer:   map[xtrace.GoID]bool{4: true}, // its 4 ms are the trace's start, not rtb's
		// g2 ran 3 ms, 2.5 of them assisting: 0.5 ms its own; g3's 2 ms are all its own.
		gcWork: map[xtrace.GoID][]span{2: {{2, ms(10), ms(12) + ms(1)/2, ""}}},
		first:  ms(0), last: ms(30),
	}
	s := summarize(a)
	if s.LongestNonGCUs != 2000 || s.NonGCWhere != "bidder.handle" || s.NonGCAssistUs != 0 {
		t.Errorf("outside the GC: %+v, want bidder.handle's 2 ms", s)
	}
	if s.TracerUs != 4000 {
		t.Errorf("tracer: %d µs, want its 4 ms apart", s.TracerUs)
	}
	if s.LongestGCUs != 5000 || s.GCWhere != "runtime.gcBgMarkWorker" {
		t.Errorf("GC: %+v, want the mark worker's 5 ms", s)
	}
}

// A trace taken from /debug/pprof/trace, as benchmarks/run.sh takes it: the serving goroutine's
// runs are the tracer's, reported apart, and the longest run outside the GC is the spin's.
func TestTracerApart(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(pprof.Trace))
	defer srv.Close()
	done := make(chan int)
	go func() {
		time.Sleep(200 * time.Millisecond) // inside the trace's second
		done <- spinWithoutABreak(30 * time.Millisecond)
	}()
	resp, err := http.Get(srv.URL + "?seconds=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	path := filepath.Join(t.TempDir(), "t.out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Fatal(err)
	}
	f.Close()
	<-done
	a, err := analyze(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	s := summarize(a)
	if len(a.tracer) == 0 || s.TracerUs <= 0 {
		t.Errorf("no run of the tracer found: %+v", s)
	}
	if strings.Contains(s.NonGCWhere, "pprof.Trace") || s.LongestNonGCUs < 5_000 {
		t.Errorf("longest run outside the GC = %d µs at %q, want the spin's, not the tracer's", s.LongestNonGCUs, s.NonGCWhere)
	}
}

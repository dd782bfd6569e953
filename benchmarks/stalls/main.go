// Command stalls reads a Go execution trace of rtb (from the admin port's /debug/pprof/trace) and
// says what kept requests waiting: the goroutines that ran longest without a break, and, for the
// request goroutines that waited longest to run, what was running meanwhile. A p99 set by stalls
// rather than load is found this way, not in a CPU profile, which shows totals, not bursts.
//
//	curl -o t.out 'http://127.0.0.1:8081/debug/pprof/trace?seconds=5'   (while under load)
//	go run ./benchmarks/stalls t.out
//	go run ./benchmarks/stalls -summary t.out      (one JSON line, for benchmarks/run.sh)
//
// Runs are split into the garbage collector's and the rest. A run of a background mark worker
// (runtime.gcBgMarkWorker) is the GC's. Any other goroutine may be made to help the GC while it
// runs (mark assists, incremental sweeping, both ranges in the trace); that time is counted as the
// GC's too, and a run's "outside the GC" length is its length minus the assist and sweep time
// within it. The runs of the goroutine serving /debug/pprof/trace are the tracer's: starting a
// trace stops the world to record every goroutine, a cost of being traced, not of rtb, so they are
// shown apart.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

func main() {
	top := flag.Int("top", 10, "how many runs and waits to show")
	frames := flag.Int("frames", 5, "stack frames naming a goroutine")
	summary := flag.Bool("summary", false, "print one JSON line instead of the report: the longest run outside the GC and the\nlongest GC run, in µs, with the goroutines (see the package comment for the split)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: stalls [flags] TRACE\n\nThe longest uninterrupted goroutine runs in a Go execution trace, and what ran while request\n(fasthttp) goroutines waited longest to run.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	var err error
	if *summary {
		err = runSummary(flag.Arg(0), *frames, os.Stdout)
	} else {
		err = run(flag.Arg(0), *top, *frames, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stalls:", err)
		os.Exit(1)
	}
}

// span is a goroutine's stretch in one state: running, or runnable but not running; or a stretch
// of GC work (assist, sweep) on it.
type span struct {
	g          trace.GoID
	start, end trace.Time
	where      string // a run: where it stopped ("" when the trace has no stack there)
}

func (s span) dur() time.Duration { return time.Duration(s.end - s.start) }

// analysis is what a trace says about its goroutines.
type analysis struct {
	runs, waits []span
	name        map[trace.GoID]string // where the goroutine last stopped running: what it is
	request     map[trace.GoID]bool   // a fasthttp (request) goroutine
	gcWorker    map[trace.GoID]bool   // a background mark worker
	tracer      map[trace.GoID]bool   // the goroutine serving /debug/pprof/trace
	gcWork      map[trace.GoID][]span // mark assists and incremental sweeps, per goroutine
	first, last trace.Time

	// while reading: GC ranges begun and not yet ended
	assisting map[trace.GoID]trace.Time
	sweeping  map[trace.ProcID]span // the goroutine on the P, and the start
}

func analyze(path string, frames int) (*analysis, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := trace.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("read trace %s: %w", path, err)
	}
	a := &analysis{
		name: map[trace.GoID]string{}, request: map[trace.GoID]bool{},
		gcWorker: map[trace.GoID]bool{}, tracer: map[trace.GoID]bool{}, gcWork: map[trace.GoID][]span{},
		assisting: map[trace.GoID]trace.Time{}, sweeping: map[trace.ProcID]span{},
	}
	running := map[trace.GoID]trace.Time{}
	runnable := map[trace.GoID]trace.Time{}
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read trace %s: %w", path, err)
		}
		if a.first == 0 {
			a.first = ev.Time()
		}
		a.last = ev.Time()
		switch ev.Kind() {
		case trace.EventRangeBegin, trace.EventRangeActive, trace.EventRangeEnd:
			a.gcRange(ev)
			continue
		case trace.EventStateTransition:
		default:
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		g := st.Resource.Goroutine()
		from, to := st.Goroutine()
		where := describe(st.Stack, frames)
		if where != "" {
			a.name[g] = where
			full := fullStack(st.Stack)
			if strings.Contains(full, "fasthttp") {
				a.request[g] = true
			}
			if strings.Contains(full, "runtime.gcBgMarkWorker") {
				a.gcWorker[g] = true
			}
			if strings.Contains(full, "net/http/pprof.Trace") {
				a.tracer[g] = true
			}
		}
		switch {
		case to == trace.GoRunnable:
			runnable[g] = ev.Time()
		case to == trace.GoRunning:
			running[g] = ev.Time()
			if t0, ok := runnable[g]; ok {
				a.waits = append(a.waits, span{g: g, start: t0, end: ev.Time()})
				delete(runnable, g)
			}
		}
		if from == trace.GoRunning {
			if t0, ok := running[g]; ok {
				a.runs = append(a.runs, span{g, t0, ev.Time(), where})
				delete(running, g)
			}
		}
	}
	longest := func(a, b span) int { return int(b.dur() - a.dur()) }
	slices.SortFunc(a.runs, longest)
	slices.SortFunc(a.waits, longest)
	return a, nil
}

// gcRange records the mark assists (scoped to a goroutine) and incremental sweeps (scoped to a P,
// done by the goroutine running on it) as GC work of that goroutine.
func (a *analysis) gcRange(ev trace.Event) {
	rg := ev.Range()
	begin := ev.Kind() != trace.EventRangeEnd // Active: in progress when the trace started
	switch rg.Name {
	case "GC mark assist":
		g := rg.Scope.Goroutine()
		if begin {
			a.assisting[g] = ev.Time()
		} else if t0, ok := a.assisting[g]; ok {
			a.gcWork[g] = append(a.gcWork[g], span{g: g, start: t0, end: ev.Time()})
			delete(a.assisting, g)
		}
	case "GC incremental sweep":
		p := rg.Scope.Proc()
		if begin {
			a.sweeping[p] = span{g: ev.Goroutine(), start: ev.Time()}
		} else if s, ok := a.sweeping[p]; ok {
			delete(a.sweeping, p)
			if s.g != trace.NoGoroutine {
				a.gcWork[s.g] = append(a.gcWork[s.g], span{g: s.g, start: s.start, end: ev.Time()})
			}
		}
	}
}

// where names a run by where it stopped, else by where its goroutine last stopped.
func (a *analysis) where(rn span) string {
	if rn.where != "" {
		return rn.where
	}
	return a.name[rn.g]
}

// gcIn is the GC work (assists, sweeps) of the run's goroutine within the run.
func (a *analysis) gcIn(rn span) time.Duration {
	var d time.Duration
	for _, w := range a.gcWork[rn.g] {
		if lo, hi := max(rn.start, w.start), min(rn.end, w.end); hi > lo {
			d += time.Duration(hi - lo)
		}
	}
	return d
}

func run(path string, top, frames int, w io.Writer) error {
	a, err := analyze(path, frames)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "longest uninterrupted runs (of %d):\n", len(a.runs))
	for _, s := range a.runs[:min(top, len(a.runs))] {
		tag := ""
		if a.gcWorker[s.g] {
			tag = "  [GC mark worker]"
		} else if a.tracer[s.g] {
			tag = "  [the tracer]"
		} else if gc := a.gcIn(s); gc > 0 {
			tag = fmt.Sprintf("  [%s of it GC assist/sweep]", ms(gc))
		}
		fmt.Fprintf(w, "  %8s  g%-6d %s%s\n", ms(s.dur()), s.g, a.where(s), tag)
	}
	fmt.Fprintln(w, "request goroutines that waited longest to run, and what ran meanwhile:")
	shown := 0
	for _, wt := range a.waits {
		if !a.request[wt.g] || shown == top {
			continue
		}
		shown++
		fmt.Fprintf(w, "  %8s  g%d\n", ms(wt.dur()), wt.g)
		overlap := map[string]time.Duration{}
		for _, rn := range a.runs {
			if lo, hi := max(rn.start, wt.start), min(rn.end, wt.end); hi > lo {
				overlap[a.where(rn)] += time.Duration(hi - lo)
			}
		}
		var names []string
		for n := range overlap {
			names = append(names, n)
		}
		slices.SortFunc(names, func(a, b string) int { return int(overlap[b] - overlap[a]) })
		for _, n := range names[:min(3, len(names))] {
			fmt.Fprintf(w, "      %8s  %s\n", ms(overlap[n]), n)
		}
	}
	if shown == 0 {
		fmt.Fprintln(w, "  none: no fasthttp goroutine in the trace")
	}
	return nil
}

// Summary is the -summary line. Durations are in µs. The longest run outside the GC is the one
// whose length less its GC assist and sweep time is the largest, among the goroutines that are not
// mark workers (its whole length and that GC time are given too); the longest GC run is the longest
// run of a mark worker or the longest single assist or sweep. The tracer's longest run is apart.
type Summary struct {
	LongestNonGCUs int64  `json:"longest_non_gc_us"`
	NonGCRunUs     int64  `json:"non_gc_run_us"`
	NonGCAssistUs  int64  `json:"non_gc_assist_us"`
	NonGCGoroutine int64  `json:"non_gc_goroutine"`
	NonGCWhere     string `json:"non_gc_where"`
	LongestGCUs    int64  `json:"longest_gc_us"`
	GCGoroutine    int64  `json:"gc_goroutine"`
	GCWhere        string `json:"gc_where"`
	Runs           int    `json:"runs"`
	TracerUs       int64  `json:"tracer_us"`
	RequestWaitUs  int64  `json:"longest_request_wait_us"`
	TraceMs        int64  `json:"trace_ms"`
}

func summarize(a *analysis) Summary {
	s := Summary{Runs: len(a.runs), TraceMs: time.Duration(a.last - a.first).Milliseconds()}
	var nonGC, gc time.Duration
	for _, rn := range a.runs {
		if a.tracer[rn.g] {
			s.TracerUs = max(s.TracerUs, rn.dur().Microseconds())
			continue
		}
		if a.gcWorker[rn.g] {
			if rn.dur() > gc {
				gc = rn.dur()
				s.GCGoroutine, s.GCWhere = int64(rn.g), a.where(rn)
			}
			continue
		}
		in := a.gcIn(rn)
		if d := rn.dur() - in; d > nonGC {
			nonGC = d
			s.NonGCRunUs, s.NonGCAssistUs = rn.dur().Microseconds(), in.Microseconds()
			s.NonGCGoroutine, s.NonGCWhere = int64(rn.g), a.where(rn)
		}
	}
	for g, ws := range a.gcWork {
		for _, w := range ws {
			if w.dur() > gc {
				gc = w.dur()
				s.GCGoroutine, s.GCWhere = int64(g), "GC assist/sweep in "+a.name[g]
			}
		}
	}
	s.LongestNonGCUs, s.LongestGCUs = nonGC.Microseconds(), gc.Microseconds()
	for _, wt := range a.waits {
		if a.request[wt.g] {
			s.RequestWaitUs = wt.dur().Microseconds()
			break
		}
	}
	return s
}

func runSummary(path string, frames int, w io.Writer) error {
	a, err := analyze(path, frames)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w) // one line; "<" in the goroutines' names left as it is
	enc.SetEscapeHTML(false)
	return enc.Encode(summarize(a))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }

// describe names a goroutine by the innermost frames of where it stopped, package paths trimmed,
// leaving out the frames of an asynchronous preemption (they say nothing about what it was doing).
func describe(st trace.Stack, n int) string {
	var parts []string
	for f := range st.Frames() {
		fn := f.Func
		if fn == "runtime.asyncPreempt" || fn == "runtime.asyncPreempt2" {
			continue
		}
		if i := strings.LastIndex(fn, "/"); i >= 0 {
			fn = fn[i+1:]
		}
		parts = append(parts, fn)
		if len(parts) == n {
			break
		}
	}
	return strings.Join(parts, " < ")
}

func fullStack(st trace.Stack) string {
	var b strings.Builder
	for f := range st.Frames() {
		b.WriteString(f.Func)
		b.WriteByte('\n')
	}
	return b.String()
}

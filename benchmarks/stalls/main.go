// Command stalls reads a Go execution trace of rtb (from the admin port's /debug/pprof/trace) and
// says what kept requests waiting: the goroutines that ran longest without a break, and, for the
// request goroutines that waited longest to run, what was running meanwhile. A p99 set by stalls
// rather than load is found this way, not in a CPU profile, which shows totals, not bursts.
//
//	curl -o t.out 'http://127.0.0.1:8081/debug/pprof/trace?seconds=5'   (while under load)
//	go run ./benchmarks/stalls t.out
package main

import (
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
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: stalls [flags] TRACE\n\nThe longest uninterrupted goroutine runs in a Go execution trace, and what ran while request\n(fasthttp) goroutines waited longest to run.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *top, *frames, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "stalls:", err)
		os.Exit(1)
	}
}

// span is a goroutine's stretch in one state: running, or runnable but not running.
type span struct {
	g          trace.GoID
	start, end trace.Time
}

func (s span) dur() time.Duration { return time.Duration(s.end - s.start) }

func run(path string, top, frames int, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := trace.NewReader(f)
	if err != nil {
		return fmt.Errorf("read trace %s: %w", path, err)
	}
	var runs, waits []span
	running := map[trace.GoID]trace.Time{}
	runnable := map[trace.GoID]trace.Time{}
	name := map[trace.GoID]string{} // where the goroutine last stopped running: what it is
	request := map[trace.GoID]bool{}
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read trace %s: %w", path, err)
		}
		if ev.Kind() != trace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		g := st.Resource.Goroutine()
		from, to := st.Goroutine()
		if s := describe(st.Stack, frames); s != "" {
			name[g] = s
			if strings.Contains(fullStack(st.Stack), "fasthttp") {
				request[g] = true
			}
		}
		switch {
		case to == trace.GoRunnable:
			runnable[g] = ev.Time()
		case to == trace.GoRunning:
			running[g] = ev.Time()
			if t0, ok := runnable[g]; ok {
				waits = append(waits, span{g, t0, ev.Time()})
				delete(runnable, g)
			}
		}
		if from == trace.GoRunning {
			if t0, ok := running[g]; ok {
				runs = append(runs, span{g, t0, ev.Time()})
				delete(running, g)
			}
		}
	}
	longest := func(a, b span) int { return int(b.dur() - a.dur()) }
	slices.SortFunc(runs, longest)
	slices.SortFunc(waits, longest)

	fmt.Fprintf(w, "longest uninterrupted runs (of %d):\n", len(runs))
	for _, s := range runs[:min(top, len(runs))] {
		fmt.Fprintf(w, "  %8s  g%-6d %s\n", ms(s.dur()), s.g, name[s.g])
	}
	fmt.Fprintln(w, "request goroutines that waited longest to run, and what ran meanwhile:")
	shown := 0
	for _, wt := range waits {
		if !request[wt.g] || shown == top {
			continue
		}
		shown++
		fmt.Fprintf(w, "  %8s  g%d\n", ms(wt.dur()), wt.g)
		overlap := map[string]time.Duration{}
		for _, rn := range runs {
			if lo, hi := max(rn.start, wt.start), min(rn.end, wt.end); hi > lo {
				overlap[name[rn.g]] += time.Duration(hi - lo)
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

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }

// describe names a goroutine by the innermost frames of where it stopped, package paths trimmed.
func describe(st trace.Stack, n int) string {
	var parts []string
	for f := range st.Frames() {
		fn := f.Func
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

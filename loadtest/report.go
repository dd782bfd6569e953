package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency is a latency distribution in microseconds.
type Latency struct {
	P50  int64   `json:"p50_us"`
	P90  int64   `json:"p90_us"`
	P99  int64   `json:"p99_us"`
	P999 int64   `json:"p999_us"`
	Max  int64   `json:"max_us"`
	Mean float64 `json:"mean_us"`
}

func latencyOf(h *hdrhistogram.Histogram) Latency {
	return Latency{P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90), P99: h.ValueAtQuantile(99),
		P999: h.ValueAtQuantile(99.9), Max: h.Max(), Mean: h.Mean()}
}

// Outcomes counts what became of the requests.
type Outcomes struct {
	Bid          int64  `json:"bid_200"`
	NoBid        int64  `json:"nobid_204"`
	Other2xx     int64  `json:"other_2xx"`
	Status3xx    int64  `json:"status_3xx"`
	Status4xx    int64  `json:"status_4xx"`
	Status5xx    int64  `json:"status_5xx"`
	ErrConnect   int64  `json:"error_connect"`
	ErrTimeout   int64  `json:"error_timeout"`
	ErrOther     int64  `json:"error_other"`
	Late         int64  `json:"late"`
	LastErrorMsg string `json:"last_error,omitempty"`
}

// Report is the result of a run; the JSON form is what --out writes.
type Report struct {
	Target         string        `json:"target"`
	Label          string        `json:"label,omitempty"`
	Seed           uint64        `json:"seed"`
	Connections    int           `json:"connections"`
	Schedule       string        `json:"schedule"`
	TargetRate     float64       `json:"target_rate"` // requests scheduled per second of the run
	AchievedRate   float64       `json:"achieved_rate"`
	Scheduled      int64         `json:"scheduled"`
	Sent           int64         `json:"sent"`      // requests that went out (all but late)
	Completed      int64         `json:"completed"` // requests with an HTTP answer
	ElapsedSeconds float64       `json:"elapsed_s"`
	LateAfterMS    int64         `json:"late_after_ms"` // a request not started within this of its time is late
	Interrupted    bool          `json:"interrupted,omitempty"`
	Latency        Latency       `json:"latency"`  // from intended send time, every outcome (late: their wait, a lower bound)
	SendLag        Latency       `json:"send_lag"` // intended send time to actual send: the generator's own delay
	Outcomes       Outcomes      `json:"outcomes"`
	BidRate        float64       `json:"bid_rate"` // 200s over all scheduled requests
	GeneratorCPU   float64       `json:"generator_cpu_cores"`
	SLOP99US       int64         `json:"slo_p99_us,omitempty"`
	SLOMet         *bool         `json:"slo_met,omitempty"`
	Time           time.Time     `json:"time"`
	Market         *MarketReport `json:"market,omitempty"`
	// Failures are the first distinct failed answers (4xx/5xx with the start of their body, transport
	// errors) with their counts; Warning is set when more than half the requests sent failed: such a
	// run measured error pages or refused connections, not a bidder (rtb loadgen exits 4).
	Failures []FailedAnswer `json:"failures,omitempty"`
	Warning  string         `json:"warning,omitempty"`
	// Compare mode (several targets): the top-level fields above are the first target's; every
	// target's own report is in Targets, and Comparison sets them side by side.
	Targets    []*Report    `json:"targets,omitempty"`
	Comparison []CompareRow `json:"comparison,omitempty"`
}

func (r *recorder) report(cfg *Config, scheduled int64, elapsed, cpu time.Duration, interrupted bool) *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.counts
	o := Outcomes{Bid: c[outBid], NoBid: c[outNoBid], Other2xx: c[outOther2xx], Status3xx: c[out3xx],
		Status4xx: c[out4xx], Status5xx: c[out5xx], ErrConnect: c[outConnect], ErrTimeout: c[outTimeout],
		ErrOther: c[outOther], Late: c[outLate]}
	for _, k := range []outcome{outOther, outConnect, outTimeout} {
		if r.lastErr[k] != "" {
			o.LastErrorMsg = r.lastErr[k]
		}
	}
	var total int64
	for _, n := range c {
		total += n
	}
	rep := &Report{
		Target: cfg.Target, Seed: cfg.Seed, Connections: cfg.Connections, Schedule: cfg.schedule(),
		Scheduled: scheduled, Sent: total - o.Late,
		Completed:      o.Bid + o.NoBid + o.Other2xx + o.Status3xx + o.Status4xx + o.Status5xx,
		ElapsedSeconds: elapsed.Seconds(), LateAfterMS: cfg.LateAfter.Milliseconds(), Interrupted: interrupted,
		Latency: latencyOf(r.all), SendLag: latencyOf(r.lag), Outcomes: o, Time: time.Now().UTC(),
	}
	if s := elapsed.Seconds(); s > 0 {
		rep.TargetRate = float64(scheduled) / s
		rep.AchievedRate = float64(rep.Sent) / s
		rep.GeneratorCPU = cpu.Seconds() / s
	}
	if total > 0 {
		rep.BidRate = float64(o.Bid) / float64(total)
	}
	rep.Failures = slices.Clone(r.failures.first)
	return rep
}

// warning is the recorder's failure warning for a run that sent sent requests to target.
func (r *recorder) warning(sent int64, target string, timeout time.Duration) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failures.warning(sent, target, timeout.String())
}

func (c *Config) schedule() string {
	switch {
	case len(c.Steps) > 0:
		parts := make([]string, len(c.Steps))
		for i, s := range c.Steps {
			parts[i] = fmt.Sprint(s)
		}
		return fmt.Sprintf("steps %s/s, %s each", strings.Join(parts, ","), c.StepDuration)
	case c.RampTo > 0:
		return fmt.Sprintf("ramp %v/s to %v/s over %s", c.Rate, c.RampTo, c.Duration)
	case c.DayLength > 0 && c.FlatDay:
		return fmt.Sprintf("one pacing day of %s at a flat %v/s", c.DayLength, c.Rate)
	case c.DayLength > 0:
		return fmt.Sprintf("one pacing day of %s, diurnal profile peaking at %v/s (mean %.0f%% of peak)",
			c.DayLength, c.Rate, 100*profileShare(&DiurnalProfile, 0, c.DayLength, c.DayLength))
	default:
		return fmt.Sprintf("constant %v/s for %s", c.Rate, c.Duration)
	}
}

// progressLine summarises the last second and resets its counters.
func (r *recorder) progressLine(at time.Duration) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.secCount
	var all int64
	for _, n := range c {
		all += n
	}
	bid := 0.0
	if all > 0 {
		bid = 100 * float64(c[outBid]) / float64(all)
	}
	line := fmt.Sprintf("%4ds  sent %d (%d/s)  p50 %s  p99 %s  bid %.1f%%  4xx %d  5xx %d  errors %d  timeouts %d  late %d",
		int(at.Round(time.Second).Seconds()), r.totalLocked()-r.counts[outLate], all-c[outLate],
		us(r.second.ValueAtQuantile(50)), us(r.second.ValueAtQuantile(99)), bid, c[out4xx], c[out5xx],
		c[outConnect]+c[outOther], c[outTimeout], c[outLate])
	r.second.Reset()
	r.secCount = [nOutcomes]int64{}
	return line
}

func (r *recorder) totalLocked() int64 {
	var t int64
	for _, n := range r.counts {
		t += n
	}
	return t
}

// us formats microseconds for people.
func us(v int64) string {
	switch {
	case v >= 1_000_000:
		return fmt.Sprintf("%.2fs", float64(v)/1e6)
	case v >= 1000:
		return fmt.Sprintf("%.2fms", float64(v)/1e3)
	default:
		return fmt.Sprintf("%dµs", v)
	}
}

// CheckSLO records whether the overall p99 is within limit (a limit of 0 checks nothing) and
// reports whether it is; in compare mode, whether it is for every target.
func (r *Report) CheckSLO(limit time.Duration) bool {
	if limit <= 0 {
		return true
	}
	r.SLOP99US = limit.Microseconds()
	met := r.Latency.P99 <= r.SLOP99US
	r.SLOMet = &met
	all := met
	for _, t := range r.Targets {
		all = t.CheckSLO(limit) && all
	}
	return all
}

// JSON is the report as indented JSON.
func (r *Report) JSON() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

// WriteText writes the report for people: in compare mode each target's in turn, then the
// comparison.
func (r *Report) WriteText(w io.Writer) {
	if len(r.Targets) == 0 {
		r.writeOne(w)
		return
	}
	for i, t := range r.Targets {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "━━ %s ━━\n", t.Label)
		t.writeOne(w)
	}
	fmt.Fprintln(w)
	writeComparison(w, r.Comparison)
}

func (r *Report) writeOne(w io.Writer) {
	o := r.Outcomes
	if r.Label != "" && r.Label != r.Target {
		fmt.Fprintf(w, "target      %s (%s)\n", r.Target, r.Label)
	} else {
		fmt.Fprintf(w, "target      %s\n", r.Target)
	}
	fmt.Fprintf(w, "schedule    %s, %d connections, seed %d\n", r.Schedule, r.Connections, r.Seed)
	if r.Interrupted {
		fmt.Fprintf(w, "            interrupted: the report covers the first %.1fs\n", r.ElapsedSeconds)
	}
	fmt.Fprintf(w, "rate        target %.1f/s, achieved %.1f/s (%d scheduled, %d sent in %.1fs)\n",
		r.TargetRate, r.AchievedRate, r.Scheduled, r.Sent, r.ElapsedSeconds)
	l := r.Latency
	fmt.Fprintf(w, "latency     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (from intended send time)\n",
		us(l.P50), us(l.P90), us(l.P99), us(l.P999), us(l.Max))
	fmt.Fprintf(w, "outcomes    200 bid %d, 204 no-bid %d, other 2xx %d, 3xx %d, 4xx %d, 5xx %d\n",
		o.Bid, o.NoBid, o.Other2xx, o.Status3xx, o.Status4xx, o.Status5xx)
	fmt.Fprintf(w, "errors      connect %d, timeout %d, other %d; late %d (not started within %s of their time: not sent, counted in latency at their wait)\n",
		o.ErrConnect, o.ErrTimeout, o.ErrOther, o.Late, time.Duration(r.LateAfterMS)*time.Millisecond)
	if o.LastErrorMsg != "" {
		fmt.Fprintf(w, "last error  %s\n", o.LastErrorMsg)
	}
	fmt.Fprintf(w, "bid rate    %.1f%% (200s over all requests)\n", 100*r.BidRate)
	fmt.Fprintf(w, "generator   %.2f CPU cores, send lag p99 %s max %s\n", r.GeneratorCPU, us(r.SendLag.P99), us(r.SendLag.Max))
	if r.SLOMet != nil {
		verdict := "met"
		if !*r.SLOMet {
			verdict = "EXCEEDED"
		}
		fmt.Fprintf(w, "slo         p99 %s against %s: %s\n", us(l.P99), us(r.SLOP99US), verdict)
	}
	if r.Market != nil {
		r.Market.writeText(w)
	}
	if r.Warning != "" {
		fmt.Fprintf(w, "%s\n", r.Warning)
	}
}

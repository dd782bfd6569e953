// Package loadtest is rtb's bundled load generator: an open-loop HTTP client that sends pre-generated,
// realistic OpenRTB bid requests on a fixed schedule and measures latency without coordinated
// omission.
//
// Open loop: a scheduler computes the intended send time of every request from the rate schedule
// (constant, steps or a linear ramp) and hands it to a pool of sender goroutines through a deep
// queue; it never waits for an answer, so a slow server does not slow the schedule down. Each
// request's latency is measured from its intended send time, not from when a sender got to it: when
// all senders are busy (the server stalls), queued requests wait and their wait is part of their
// latency, which is what a real exchange, sending on its own schedule, would see. A request that
// cannot even start within LateAfter (1 s) of its intended time is not sent; it is counted as late
// and recorded in the latency histogram at its wait so far, a lower bound of what it would have seen.
//
// The generator reports its own CPU use (getrusage) and how long requests waited for a sender (send
// lag): with send lag p99 well under the server latency and CPU use well under the machine's cores,
// the numbers are the server's and not the generator's.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"
)

// Config is one load test.
type Config struct {
	Target       string        // URL to POST bid requests to (when Targets is empty)
	Admin        string        // Target's admin base URL, for --market's judgements ("" = none)
	Targets      []Target      // compare mode: every request goes to each of these at the same time
	Rate         float64       // requests per second (the start rate of a ramp)
	RampTo       float64       // if > 0, the rate rises linearly from Rate to RampTo over Duration
	Steps        []float64     // if set, each rate in turn for StepDuration (overrides Rate and Duration)
	StepDuration time.Duration //
	Duration     time.Duration //
	Connections  int           // keep-alive connections, and senders (one request in flight each)
	Timeout      time.Duration // per request, from when it is sent
	LateAfter    time.Duration // a request not started within this of its intended time is dropped as late (default 1s)
	Seed         uint64        // the body pool is a function of the seed
	PoolSize     int           // bodies pre-generated (default 10,000)
	Progress     io.Writer     // a line per second, or nil
	Market       *MarketConfig // if set, act as a first-price exchange and send notices (see market.go)
	CTRMinImps   int64         // --market: a bidder's CTR estimate is judged from this many impressions (default 5,000)

	// DayLength > 0 runs one compressed pacing day of this length (see day.go) instead of Duration:
	// from its start (waiting for it) or, with DayStartNow, for the rest of the current one.
	DayLength   time.Duration
	DayStartNow bool
	FlatDay     bool // keep the rate flat through the day instead of DiurnalProfile
}

// Target is one bidder of a comparison.
type Target struct {
	URL   string // bid endpoint
	Label string // name in reports (default t1, t2, … or host:port)
	Admin string // admin base URL ("" = unknown: no surplus, delivery, cap or CTR checks)
}

func (c *Config) defaults() error {
	if c.Connections <= 0 {
		c.Connections = 64
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Second
	}
	if c.LateAfter <= 0 {
		c.LateAfter = time.Second
	}
	if c.PoolSize <= 0 {
		c.PoolSize = 10000
	}
	if len(c.Steps) > 0 {
		if c.StepDuration <= 0 {
			return errors.New("--steps needs a positive --step-duration")
		}
		for _, s := range c.Steps {
			if s <= 0 {
				return fmt.Errorf("step rate %v must be positive", s)
			}
		}
		c.Duration = time.Duration(len(c.Steps)) * c.StepDuration
	} else if c.Rate <= 0 {
		return errors.New("--rate must be positive")
	}
	if c.DayLength > 0 {
		if len(c.Steps) > 0 || c.RampTo > 0 {
			return errors.New("--day-length sets its own schedule: no --steps or --ramp-to")
		}
		if c.DayLength < 24*time.Millisecond {
			return errors.New("--day-length is too short")
		}
		c.Duration = c.DayLength
	}
	if c.CTRMinImps <= 0 {
		c.CTRMinImps = 5000
	}
	if c.RampTo < 0 {
		return errors.New("--ramp-to must not be negative")
	}
	if c.Duration <= 0 {
		return errors.New("--duration must be positive")
	}
	return nil
}

// rateAt is the scheduled rate at elapsed time t.
func (c *Config) rateAt(t time.Duration) float64 {
	switch {
	case len(c.Steps) > 0:
		i := int(t / c.StepDuration)
		if i >= len(c.Steps) {
			i = len(c.Steps) - 1
		}
		return c.Steps[i]
	case c.RampTo > 0:
		return c.Rate + (c.RampTo-c.Rate)*float64(t)/float64(c.Duration)
	case c.DayLength > 0 && !c.FlatDay:
		return c.Rate * DiurnalProfile[hourOf(t, c.DayLength)]
	default:
		return c.Rate
	}
}

// Outcome of one request.
type outcome uint8

const (
	outBid   outcome = iota // 200
	outNoBid                // 204
	outOther2xx
	out3xx
	out4xx
	out5xx
	outConnect
	outTimeout
	outOther
	outLate
	nOutcomes
)

// recorder is shared by the senders; one mutex is cheap next to an HTTP round trip.
type recorder struct {
	mu       sync.Mutex
	all      *hdrhistogram.Histogram // latency from intended send time, µs
	second   *hdrhistogram.Histogram // the same, since the last progress line
	lag      *hdrhistogram.Histogram // intended time to actual send, µs
	counts   [nOutcomes]int64
	secCount [nOutcomes]int64
	lastErr  [nOutcomes]string
	failures failures
}

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60_000_000, 3) }

func (r *recorder) record(o outcome, lat, lag time.Duration, err error) {
	us := lat.Microseconds()
	if us < 1 {
		us = 1
	}
	r.mu.Lock()
	_ = r.all.RecordValue(us) // values over 60 s are dropped by the histogram; nothing here lasts that long
	_ = r.second.RecordValue(us)
	if o != outLate {
		l := lag.Microseconds()
		if l < 1 {
			l = 1
		}
		_ = r.lag.RecordValue(l)
	}
	r.counts[o]++
	r.secCount[o]++
	if err != nil {
		r.lastErr[o] = err.Error()
	}
	r.mu.Unlock()
}

type job struct {
	seq uint64
	at  time.Duration // intended send time, since start
}

// arm is one target's share of a run: its connections, senders, recorder and market.
type arm struct {
	Target
	client  *fasthttp.HostClient
	rec     *recorder
	mk      *market
	queue   chan job
	adminOK bool
	source  string
	admErr  string
}

// BidPath is the bid endpoint's path on rtb (and the common one of OpenRTB bidders).
const BidPath = "/openrtb2/bid"

// BidURL completes a --target as people write it: host:port alone means http://host:port, and a
// URL without a path means the bid endpoint, BidPath.
func BidURL(raw string) string {
	if raw == "" {
		return raw
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw // parseTarget says what is wrong with it
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = BidPath
	}
	return u.String()
}

func parseTarget(raw string) (*fasthttp.HostClient, string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "", fmt.Errorf("--target %q is not an http(s) URL", raw)
	}
	addr := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			addr = net.JoinHostPort(u.Hostname(), "443")
		} else {
			addr = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	return &fasthttp.HostClient{
		Addr:                     addr,
		IsTLS:                    u.Scheme == "https",
		MaxIdleConnDuration:      time.Minute,
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true,
		ReadBufferSize:           16 << 10,
	}, u.Host, nil
}

// Run sends load as cfg says until the schedule ends or ctx is cancelled (then it stops sending,
// waits for requests in flight and reports what it has).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	targets := cfg.Targets
	if len(targets) == 0 {
		targets = []Target{{URL: cfg.Target, Admin: cfg.Admin}}
	}
	arms := make([]*arm, len(targets))
	labels := map[string]bool{}
	for i, t := range targets {
		t.URL = BidURL(t.URL)
		client, host, err := parseTarget(t.URL)
		if err != nil {
			return nil, err
		}
		client.MaxConns = cfg.Connections
		defer client.CloseIdleConnections()
		if t.Label == "" {
			t.Label = host
			if len(targets) > 1 {
				t.Label = fmt.Sprintf("t%d", i+1)
			}
		}
		if labels[t.Label] {
			return nil, fmt.Errorf("two targets labelled %q", t.Label)
		}
		labels[t.Label] = true
		arms[i] = &arm{Target: t, client: client, rec: &recorder{all: newHist(), second: newHist(), lag: newHist()}}
	}
	bodies, err := Bodies(cfg.Seed, cfg.PoolSize)
	if err != nil {
		return nil, err
	}

	// Where in which pacing day the schedule runs: start is the instant of elapsed time 0, offset the
	// elapsed time of the first request.
	var start time.Time
	var offset time.Duration
	var day *dayClock
	if cfg.DayLength > 0 {
		start, offset = planDay(time.Now(), cfg.DayLength, cfg.DayStartNow)
		day = &dayClock{start: start, length: cfg.DayLength}
	}

	if cfg.Market != nil {
		if err := cfg.Market.check(); err != nil {
			return nil, err
		}
		infos, err := parseBodies(bodies)
		if err != nil {
			return nil, err
		}
		for _, a := range arms {
			var camps map[string]*campInfo
			if a.Admin == "" {
				a.admErr = "no admin URL for this target (--admin)"
			} else if c, src, err := fetchCampaigns(a.Admin, cfg.Market.CTR); err != nil {
				a.admErr = "admin API unreachable: " + err.Error()
			} else {
				camps, a.source, a.adminOK = c, src, true
			}
			if a.mk, err = newMarket(*cfg.Market, infos, cfg.Timeout, camps, day); err != nil {
				return nil, err
			}
		}
	}

	if cfg.DayLength > 0 {
		if wait := time.Until(start.Add(offset)); wait > 0 {
			if cfg.Progress != nil {
				fmt.Fprintf(cfg.Progress, "waiting %s for the next pacing day (%s long) to start at %s\n",
					wait.Round(time.Millisecond), cfg.DayLength, start.Format(time.RFC3339))
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		} else if cfg.Progress != nil && offset > 0 {
			fmt.Fprintf(cfg.Progress, "running the rest of the current pacing day (%s long) from %s\n", cfg.DayLength, clock(offset, cfg.DayLength))
		}
	} else {
		start = time.Now()
	}

	nonce := uint32(time.Now().UnixNano()) ^ uint32(cfg.Seed)
	// Deep enough for LateAfter at the highest rate, so the scheduler never blocks on it.
	maxRate := cfg.Rate
	for _, s := range cfg.Steps {
		maxRate = max(maxRate, s)
	}
	maxRate = max(maxRate, cfg.RampTo)
	for _, a := range arms {
		a.queue = make(chan job, int(min(maxRate*cfg.LateAfter.Seconds()*2+1024, 4<<20)))
	}

	stop := make(chan struct{}) // closed on ctx cancel: senders drop what is queued
	var stopped atomic.Bool
	cpu0 := cpuTime()
	var scheduled atomic.Int64

	var wg sync.WaitGroup
	for _, a := range arms {
		for w := 0; w < cfg.Connections; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a.send(&cfg, bodies, start, nonce, &stopped)
			}()
		}
	}

	// Progress, once a second.
	progDone := make(chan struct{})
	go func() {
		defer close(progDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				for _, a := range arms {
					if cfg.Progress == nil {
						a.rec.mu.Lock()
						a.rec.second.Reset()
						a.rec.secCount = [nOutcomes]int64{}
						a.rec.mu.Unlock()
						continue
					}
					line := a.rec.progressLine(time.Since(start) - offset)
					if len(arms) > 1 {
						line = a.Label + "  " + line
					}
					if day != nil {
						line = clock(time.Since(start), cfg.DayLength) + "  " + line
					}
					fmt.Fprintln(cfg.Progress, line)
				}
			}
		}
	}()

	// The scheduler: emit every request whose intended time has come, then sleep until the next.
	// Intended times follow the schedule exactly (t += 1/rate(t)), whatever the senders are doing.
	// Every target gets the same request at the same intended time. It sleeps with nanosleep rather
	// than a Go timer: Go's timers wake up to 1 ms late (the netpoller waits in whole milliseconds),
	// which would add up to 1 ms of the generator's own delay to every latency it measures;
	// nanosleep overshoots by ~60-90 µs on this machine and costs no CPU.
	next := offset
	var seq uint64
	cancelled := false
sched:
	for next < cfg.Duration {
		now := time.Since(start)
		for next <= now && next < cfg.Duration {
			for _, a := range arms {
				select {
				case a.queue <- job{seq: seq, at: next}:
				default: // queue full: that request could never start in time
					a.rec.record(outLate, now-next, 0, nil)
				}
			}
			seq++
			scheduled.Add(1)
			next = cfg.nextAt(next)
		}
		if next >= cfg.Duration {
			break
		}
		select {
		case <-ctx.Done():
			cancelled = true
			break sched
		default:
		}
		sleep(min(max(next-time.Since(start), minSleep), 10*time.Millisecond))
	}
	if cancelled {
		stopped.Store(true)
	}
	for _, a := range arms {
		close(a.queue)
	}
	wg.Wait()
	elapsed := time.Since(start) - offset
	if cancelled {
		elapsed = min(elapsed, next-offset)
	}
	if cfg.Market != nil {
		// Notices still scheduled go out (the last wins' delays run past the schedule).
		var fw sync.WaitGroup
		for _, a := range arms {
			fw.Add(1)
			go func() {
				defer fw.Done()
				a.mk.finish(cfg.Market.NoticeDelay + 2*cfg.Timeout + 5*time.Second)
			}()
		}
		fw.Wait()
	}
	close(stop)
	<-progDone
	cpu := cpuTime() - cpu0

	reps := make([]*Report, len(arms))
	for i, a := range arms {
		rep := a.rec.report(&cfg, scheduled.Load(), elapsed, cpu, cancelled)
		rep.Target, rep.Label = a.URL, a.Label
		rep.Warning = a.rec.warning(rep.Sent, a.URL, cfg.Timeout)
		if a.mk != nil {
			var est *ctrEstimates
			var estErr error
			if a.Admin == "" {
				estErr = errors.New("no admin URL for this target")
			} else {
				est = &ctrEstimates{}
				if estErr = getJSON(a.Admin, "/api/ctr", est); estErr != nil {
					est = nil
				}
			}
			rep.Market = a.mk.report(est, estErr, cfg.CTRMinImps)
			rep.Market.Admin, rep.Market.CampaignsSource, rep.Market.AdminError = a.Admin, a.source, a.admErr
			if day != nil {
				rep.Market.DayFrom = clock(offset, cfg.DayLength)
			}
		}
		reps[i] = rep
	}
	if len(reps) == 1 {
		return reps[0], nil
	}
	// The top level is the first target's report, so that readers of single-target reports keep
	// working; every target, the first included, is in Targets.
	top := *reps[0]
	top.Targets = reps
	top.Comparison = compare(reps)
	return &top, nil
}

// nextAt is the intended time of the request after one at t: the schedule's rate at t decides it.
func (c *Config) nextAt(t time.Duration) time.Duration {
	return t + time.Duration(float64(time.Second)/c.rateAt(t))
}

// send is one sender of a target: one request in flight at a time, on its own connection.
func (a *arm) send(cfg *Config, bodies []Body, start time.Time, nonce uint32, stopped *atomic.Bool) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(a.URL)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	for j := range a.queue {
		if stopped.Load() {
			continue
		}
		intended := start.Add(j.at)
		lag := time.Since(intended)
		if lag > cfg.LateAfter {
			a.rec.record(outLate, lag, 0, nil)
			continue
		}
		bi := int(j.seq % uint64(len(bodies)))
		b := &bodies[bi]
		req.SetBody(b.JSON)
		// The same nonce and sequence number for every target: one scheduled request has one id.
		PatchID(req.Body(), b.IDAt, nonce, j.seq)
		req.Header.Set("X-Openrtb-Version", b.Version)
		err := a.client.DoTimeout(req, resp, cfg.Timeout)
		lat := time.Since(intended)
		o := classify(err, resp.StatusCode())
		a.rec.record(o, lat, lag, err)
		switch o {
		case out4xx, out5xx, outConnect, outTimeout, outOther:
			a.rec.failed(resp.StatusCode(), resp.Body(), err)
		}
		if o == outBid && a.mk != nil {
			a.mk.onBid(j.seq, bi, resp.Body())
		}
	}
}

func classify(err error, status int) outcome {
	if err != nil {
		var ne net.Error
		var oe *net.OpError
		switch {
		case errors.Is(err, fasthttp.ErrDialTimeout), errors.Is(err, syscall.ECONNREFUSED),
			errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
			errors.As(err, &oe) && oe.Op == "dial":
			return outConnect
		case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded),
			errors.As(err, &ne) && ne.Timeout():
			return outTimeout
		}
		return outOther
	}
	switch {
	case status == 200:
		return outBid
	case status == 204:
		return outNoBid
	case status < 300:
		return outOther2xx
	case status < 400:
		return out3xx
	case status < 500:
		return out4xx
	default:
		return out5xx
	}
}

// minSleep bounds how often the scheduler wakes at high rates (at most ~10,000 times a second, each
// time sending what has come due): waking per request at 20,000/s cost a third of a core more.
const minSleep = 100 * time.Microsecond

// sleep blocks the calling thread for about d (an interrupted sleep just returns early: the
// scheduler loop recomputes).
func sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil)
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

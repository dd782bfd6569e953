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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"
)

// Config is one load test.
type Config struct {
	Target       string        // URL to POST bid requests to
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

// Run sends load as cfg says until the schedule ends or ctx is cancelled (then it stops sending,
// waits for requests in flight and reports what it has).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	u, err := url.Parse(cfg.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--target %q is not an http(s) URL", cfg.Target)
	}
	addr := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			addr = net.JoinHostPort(u.Hostname(), "443")
		} else {
			addr = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	bodies, err := Bodies(cfg.Seed, cfg.PoolSize)
	if err != nil {
		return nil, err
	}
	client := &fasthttp.HostClient{
		Addr:                     addr,
		IsTLS:                    u.Scheme == "https",
		MaxConns:                 cfg.Connections,
		MaxIdleConnDuration:      time.Minute,
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true,
		ReadBufferSize:           16 << 10,
	}
	defer client.CloseIdleConnections()

	var mk *market
	if cfg.Market != nil {
		if mk, err = newMarket(*cfg.Market, bodies, cfg.Timeout); err != nil {
			return nil, err
		}
	}
	rec := &recorder{all: newHist(), second: newHist(), lag: newHist()}
	nonce := uint32(time.Now().UnixNano()) ^ uint32(cfg.Seed)
	// Deep enough for LateAfter at the highest rate, so the scheduler never blocks on it.
	maxRate := cfg.Rate
	for _, s := range cfg.Steps {
		maxRate = max(maxRate, s)
	}
	maxRate = max(maxRate, cfg.RampTo)
	queue := make(chan job, int(min(maxRate*cfg.LateAfter.Seconds()*2+1024, 4<<20)))

	stop := make(chan struct{}) // closed on ctx cancel: senders drop what is queued
	var stopped atomic.Bool
	cpu0 := cpuTime()
	start := time.Now()
	var scheduled atomic.Int64

	var wg sync.WaitGroup
	for w := 0; w < cfg.Connections; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(cfg.Target)
			req.Header.SetMethod(fasthttp.MethodPost)
			req.Header.SetContentType("application/json")
			for j := range queue {
				if stopped.Load() {
					continue
				}
				intended := start.Add(j.at)
				lag := time.Since(intended)
				if lag > cfg.LateAfter {
					rec.record(outLate, lag, 0, nil)
					continue
				}
				bi := int(j.seq % uint64(len(bodies)))
				b := &bodies[bi]
				req.SetBody(b.JSON)
				PatchID(req.Body(), b.IDAt, nonce, j.seq)
				req.Header.Set("X-Openrtb-Version", b.Version)
				err := client.DoTimeout(req, resp, cfg.Timeout)
				lat := time.Since(intended)
				o := classify(err, resp.StatusCode())
				rec.record(o, lat, lag, err)
				if o == outBid && mk != nil {
					mk.onBid(bi, resp.Body())
				}
			}
		}()
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
				if cfg.Progress != nil {
					fmt.Fprintln(cfg.Progress, rec.progressLine(time.Since(start)))
				} else {
					rec.mu.Lock()
					rec.second.Reset()
					rec.secCount = [nOutcomes]int64{}
					rec.mu.Unlock()
				}
			}
		}
	}()

	// The scheduler: emit every request whose intended time has come, then sleep until the next.
	// Intended times follow the schedule exactly (t += 1/rate(t)), whatever the senders are doing.
	// It sleeps with nanosleep rather than a Go timer: Go's timers wake up to 1 ms late (the netpoller
	// waits in whole milliseconds), which would add up to 1 ms of the generator's own delay to every
	// latency it measures; nanosleep overshoots by ~60-90 µs on this machine and costs no CPU.
	var next time.Duration
	var seq uint64
	cancelled := false
sched:
	for next < cfg.Duration {
		now := time.Since(start)
		for next <= now && next < cfg.Duration {
			select {
			case queue <- job{seq: seq, at: next}:
			default: // queue full: that request could never start in time
				rec.record(outLate, now-next, 0, nil)
			}
			seq++
			scheduled.Add(1)
			rate := cfg.rateAt(next)
			next += time.Duration(float64(time.Second) / rate)
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
	close(queue)
	wg.Wait()
	elapsed := time.Since(start)
	if cancelled {
		elapsed = min(elapsed, next)
	}
	if mk != nil {
		// Notices still scheduled go out (the last wins' delays run past the schedule).
		mk.finish(cfg.Market.NoticeDelay + 2*cfg.Timeout + 5*time.Second)
	}
	close(stop)
	<-progDone
	cpu := cpuTime() - cpu0
	rep := rec.report(&cfg, scheduled.Load(), elapsed, cpu, cancelled)
	if mk != nil {
		rep.Market = mk.report()
	}
	return rep, nil
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

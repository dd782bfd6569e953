package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"rtb/bidder/openrtb"
)

// serve runs handler on a loopback listener and returns the bid URL.
func serve(t testing.TB, handler fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: handler}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + ln.Addr().String() + "/openrtb2/bid"
}

// fixed answers 200 with a body for every other request and 204 for the rest, after delay.
func fixed(delay time.Duration) fasthttp.RequestHandler {
	var n atomic.Int64
	return func(ctx *fasthttp.RequestCtx) {
		if delay > 0 {
			time.Sleep(delay)
		}
		if n.Add(1)%2 == 0 {
			ctx.SetStatusCode(204)
			return
		}
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"id":"x","seatbid":[{"bid":[{"id":"1","impid":"1","price":1.5}]}]}`)
	}
}

func TestAchievedRateAndOutcomes(t *testing.T) {
	if err := openrtb.Pretouch(); err != nil { // compile the decoder before the clock runs
		t.Fatal(err)
	}
	var ids sync.Map
	var dup atomic.Int64
	h := fixed(0)
	url := serve(t, func(ctx *fasthttp.RequestCtx) {
		var req openrtb.BidRequest
		if err := openrtb.Decode(ctx.PostBody(), &req); err != nil {
			ctx.SetStatusCode(400)
			return
		}
		id := strings.Clone(req.ID)
		if _, loaded := ids.LoadOrStore(id, true); loaded {
			dup.Add(1)
		}
		h(ctx)
	})
	rep, err := Run(context.Background(), Config{Target: url, Rate: 500, Duration: 2 * time.Second, Connections: 8, PoolSize: 200})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Scheduled != 1000 {
		t.Errorf("scheduled %d, want 1000 (500/s for 2s)", rep.Scheduled)
	}
	if rep.AchievedRate < 400 {
		t.Errorf("achieved %.1f/s, want ≥ 80%% of 500/s", rep.AchievedRate)
	}
	o := rep.Outcomes
	// A few timeouts are tolerated: this machine is noisy, more so under -race.
	if o.Bid+o.NoBid < rep.Sent*99/100 || o.Bid+o.NoBid+o.ErrTimeout != rep.Sent || rep.Sent < 800 {
		t.Errorf("outcomes %+v, sent %d: want every sent request answered 200 or 204", o, rep.Sent)
	}
	if d := o.Bid - o.NoBid; d < -10 || d > 10 {
		t.Errorf("200s %d vs 204s %d: the server alternates", o.Bid, o.NoBid)
	}
	if rep.BidRate < 0.45 || rep.BidRate > 0.55 {
		t.Errorf("bid rate %.3f, want about 0.5", rep.BidRate)
	}
	if dup.Load() != 0 {
		t.Errorf("%d request ids were sent twice", dup.Load())
	}
}

func TestErrorsCounted(t *testing.T) {
	url := serve(t, func(ctx *fasthttp.RequestCtx) {
		switch ctx.Request.Header.Peek("X-Openrtb-Version")[2] {
		case '5':
			ctx.SetStatusCode(400)
		default:
			ctx.SetStatusCode(503)
		}
	})
	rep, err := Run(context.Background(), Config{Target: url, Rate: 200, Duration: time.Second, Connections: 4, PoolSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if o := rep.Outcomes; o.Status4xx == 0 || o.Status5xx == 0 || o.Status4xx+o.Status5xx != rep.Sent || rep.BidRate != 0 {
		t.Errorf("outcomes %+v sent %d bid rate %v: want only 4xx and 5xx", o, rep.Sent, rep.BidRate)
	}

	// Nothing listening: connect errors.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String() + "/openrtb2/bid"
	ln.Close()
	rep, err = Run(context.Background(), Config{Target: dead, Rate: 50, Duration: 200 * time.Millisecond, Connections: 2, PoolSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcomes.ErrConnect == 0 || rep.Completed != 0 {
		t.Errorf("outcomes %+v: want connect errors", rep.Outcomes)
	}

	// A server slower than the timeout: timeouts.
	slow := serve(t, fixed(300*time.Millisecond))
	rep, err = Run(context.Background(), Config{Target: slow, Rate: 20, Duration: 200 * time.Millisecond, Connections: 8, PoolSize: 10, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcomes.ErrTimeout == 0 || rep.Completed != 0 {
		t.Errorf("outcomes %+v: want timeouts", rep.Outcomes)
	}
}

// TestNoCoordinatedOmission: the server stalls 200 ms once. A closed-loop client would record one slow
// request; an open-loop one also records every request scheduled during the stall at its wait.
func TestNoCoordinatedOmission(t *testing.T) {
	var n atomic.Int64
	url := serve(t, func(ctx *fasthttp.RequestCtx) {
		if n.Add(1) == 100 {
			time.Sleep(200 * time.Millisecond)
		}
		ctx.SetStatusCode(204)
	})
	// One connection: the stall blocks everything behind it, as a stalled server would.
	rep, err := Run(context.Background(), Config{Target: url, Rate: 500, Duration: 2 * time.Second, Connections: 1, PoolSize: 50})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Latency.Max < 190_000 {
		t.Errorf("max %dµs, want ≥ the 200ms stall", rep.Latency.Max)
	}
	if rep.Latency.P999 < 100_000 {
		t.Errorf("p99.9 %dµs: the requests queued behind the stall must show their wait", rep.Latency.P999)
	}
	// About 100 of the 1,000 requests were due during the stall (500/s × 0.2 s), and each waited for
	// its end: their waits spread over 0-200 ms, so p99 (the 10 slowest) is far above 50 ms. A
	// closed-loop client would show one slow sample and a p99 of a fraction of a millisecond.
	if rep.Latency.P99 < 50_000 {
		t.Errorf("p99 %dµs: want the requests scheduled during the stall to be slow too", rep.Latency.P99)
	}
	t.Logf("latency %+v, send lag %+v", rep.Latency, rep.SendLag)
	if rep.Outcomes.NoBid < 900 {
		t.Errorf("outcomes %+v: the queued requests must still be sent", rep.Outcomes)
	}
}

// TestLate: requests that cannot start within LateAfter of their time are not sent but counted late,
// and recorded in the latency at their wait.
func TestLate(t *testing.T) {
	var n atomic.Int64
	url := serve(t, func(ctx *fasthttp.RequestCtx) {
		if n.Add(1) == 10 {
			time.Sleep(400 * time.Millisecond)
		}
		ctx.SetStatusCode(204)
	})
	rep, err := Run(context.Background(), Config{Target: url, Rate: 200, Duration: time.Second, Connections: 1,
		PoolSize: 10, LateAfter: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	o := rep.Outcomes
	if o.Late < 20 || o.NoBid+o.Late != rep.Scheduled || rep.Sent != o.NoBid {
		t.Errorf("outcomes %+v scheduled %d sent %d: want ~60 late (300ms × 200/s) and the rest sent", o, rep.Scheduled, rep.Sent)
	}
	if rep.Latency.P90 < 100_000 {
		t.Errorf("p90 %dµs: late requests must count at ≥ their 100ms wait", rep.Latency.P90)
	}
}

func TestBodiesReproducibleAndValid(t *testing.T) {
	a, err := Bodies(42, 2000)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Bodies(42, 100)
	for i := range b {
		if !bytes.Equal(a[i].JSON, b[i].JSON) {
			t.Fatalf("body %d differs between two pools of the same seed", i)
		}
	}
	c, _ := Bodies(43, 100)
	same := 0
	for i := range c {
		if bytes.Equal(a[i].JSON, c[i].JSON) {
			same++
		}
	}
	if same > 10 {
		t.Errorf("%d of 100 bodies equal for different seeds", same)
	}
	var kinds struct{ banner, video, native, app, site, deal, v25, v26, eur, gbp, ab1 int }
	users := map[string]int{}
	var req openrtb.BidRequest
	for i, body := range a {
		buf := bytes.Clone(body.JSON)
		PatchID(buf, body.IDAt, 0xabcd, uint64(i))
		if !json.Valid(buf) {
			t.Fatalf("body %d is not JSON: %s", i, buf)
		}
		if err := openrtb.Decode(buf, &req); err != nil {
			t.Fatalf("body %d refused: %v\n%s", i, err, buf)
		}
		if len(req.ID) != IDWidth || req.ID[:4] != "0000" {
			t.Fatalf("body %d id %q", i, req.ID)
		}
		for _, imp := range req.Imp {
			switch {
			case imp.Banner != nil:
				kinds.banner++
			case imp.Video != nil:
				kinds.video++
			case imp.Native != nil:
				var nr openrtb.NativeRequest
				if err := openrtb.ParseNativeRequest(imp.Native.Request, &nr); err != nil || len(nr.Assets) == 0 {
					t.Fatalf("body %d native request: %v", i, err)
				}
				kinds.native++
			}
			if imp.PMP != nil {
				kinds.deal++
				for _, d := range imp.PMP.Deals {
					if d.ID == "AB-Agency1-0001" {
						kinds.ab1++
					}
				}
			}
			switch imp.BidFloorCur {
			case "EUR":
				kinds.eur++
			case "GBP":
				kinds.gbp++
			}
		}
		if req.App != nil {
			kinds.app++
			if req.Device.IFA == "" || req.App.Bundle == "" {
				t.Fatalf("body %d: app without ifa or bundle", i)
			}
		} else {
			kinds.site++
		}
		if body.Version == "2.6" {
			kinds.v26++
			if _, known := req.GDPRApplies(); !known || req.Source.SChain == nil {
				t.Fatalf("body %d: 2.6 without regs.gdpr or source.schain", i)
			}
		} else {
			kinds.v25++
			if _, known := req.GDPRApplies(); !known || req.Regs.GDPR != -1 {
				t.Fatalf("body %d: 2.5 must carry regs.ext.gdpr only", i)
			}
		}
		if req.Device.Geo.Country == "" || len(req.Device.Geo.Country) != 3 {
			t.Fatalf("body %d: country %q", i, req.Device.Geo.Country)
		}
		users[req.User.ID]++
	}
	t.Logf("mix of %d bodies: %+v, %d distinct users", len(a), kinds, len(users))
	for name, n := range map[string]int{"banner": kinds.banner, "video": kinds.video, "native": kinds.native,
		"app": kinds.app, "site": kinds.site, "deal": kinds.deal, "2.5": kinds.v25, "2.6": kinds.v26,
		"EUR": kinds.eur, "GBP": kinds.gbp, "AB-Agency1-0001": kinds.ab1} {
		if n < 20 {
			t.Errorf("only %d %s in 2000 bodies", n, name)
		}
	}
	if len(users) > len(a)*9/10 {
		t.Errorf("%d distinct users in %d bodies: want users to recur", len(users), len(a))
	}
}

func TestReportJSONAndSLO(t *testing.T) {
	url := serve(t, fixed(2*time.Millisecond))
	rep, err := Run(context.Background(), Config{Target: url, Rate: 200, Duration: 500 * time.Millisecond, Connections: 4, PoolSize: 10, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.CheckSLO(time.Second) {
		t.Errorf("p99 %dµs exceeds 1s", rep.Latency.P99)
	}
	if rep.CheckSLO(time.Millisecond) {
		t.Errorf("p99 %dµs within 1ms with a 2ms server", rep.Latency.P99)
	}
	if !rep.CheckSLO(0) {
		t.Error("no SLO must pass")
	}
	rep.CheckSLO(time.Millisecond)
	b, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"target", "seed", "target_rate", "achieved_rate", "scheduled", "sent", "latency",
		"send_lag", "outcomes", "bid_rate", "generator_cpu_cores", "slo_p99_us", "slo_met"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report JSON lacks %q:\n%s", k, b)
		}
	}
	lat := m["latency"].(map[string]any)
	for _, k := range []string{"p50_us", "p90_us", "p99_us", "p999_us", "max_us"} {
		if v, _ := lat[k].(float64); v < 2000 {
			t.Errorf("latency.%s = %v, want ≥ the server's 2ms", k, lat[k])
		}
	}
	out := m["outcomes"].(map[string]any)
	for _, k := range []string{"bid_200", "nobid_204", "status_4xx", "status_5xx", "error_connect", "error_timeout", "error_other", "late"} {
		if _, ok := out[k]; !ok {
			t.Errorf("outcomes lack %q", k)
		}
	}
	if m["slo_met"] != false {
		t.Errorf("slo_met = %v", m["slo_met"])
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	for _, s := range []string{"p99.9", "200 bid", "204 no-bid", "timeout", "late", "bid rate", "EXCEEDED"} {
		if !bytes.Contains(text.Bytes(), []byte(s)) {
			t.Errorf("text report lacks %q:\n%s", s, text.String())
		}
	}
}

func TestCancelReportsSoFar(t *testing.T) {
	url := serve(t, fixed(0))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, Config{Target: url, Rate: 200, Duration: time.Minute, Connections: 4, PoolSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 5*time.Second || !rep.Interrupted || rep.Sent == 0 || rep.Sent > 200 {
		t.Errorf("interrupted %v after %v with %d sent", rep.Interrupted, time.Since(start), rep.Sent)
	}
}

func TestSchedules(t *testing.T) {
	c := Config{Steps: []float64{100, 200, 400}, StepDuration: time.Second}
	if err := c.defaults(); err != nil {
		t.Fatal(err)
	}
	if c.Duration != 3*time.Second || c.rateAt(1500*time.Millisecond) != 200 || c.rateAt(3*time.Second) != 400 {
		t.Errorf("steps: duration %v, rate at 1.5s %v", c.Duration, c.rateAt(1500*time.Millisecond))
	}
	r := Config{Rate: 100, RampTo: 300, Duration: 10 * time.Second}
	if got := r.rateAt(5 * time.Second); got != 200 {
		t.Errorf("ramp midway %v, want 200", got)
	}
	for _, bad := range []Config{{Rate: 0, Duration: time.Second}, {Rate: 1}, {Steps: []float64{1, -1}, StepDuration: time.Second}} {
		if err := bad.defaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// BenchmarkGeneratorThroughput sends as fast as the schedule allows (b.N requests in one second of
// schedule) to a trivial in-process fasthttp server, and reports the generator's CPU per request.
// The server shares the process and the two cores, so this is a pessimistic bound. Measured on the
// 2-core build machine: -benchtime 2000x (2,000/s) 0.13-0.17 cores, 20000x 0.70 cores, 80000x
// 79,900/s sent with no late request on 1.46 cores — generator and server together, ~18µs of CPU a
// request. So the generator sustains many times the rates rtb is loaded with (2,000-10,000/s) and
// leaves the bidder most of the machine; each run also reports its own CPU (generator_cpu_cores) and
// send lag, so a run where the generator was short of CPU shows it.
func BenchmarkGeneratorThroughput(b *testing.B) {
	url := serve(b, func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(204) })
	rate := float64(b.N)
	if rate < 100 {
		rate = 100
	}
	b.ResetTimer()
	rep, err := Run(context.Background(), Config{Target: url, Rate: rate, Duration: time.Second, Connections: 64, PoolSize: 1000})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(rep.AchievedRate, "sent/s")
	b.ReportMetric(rep.GeneratorCPU, "cores")
	b.ReportMetric(float64(rep.Outcomes.Late), "late")
	b.ReportMetric(float64(rep.SendLag.P99), "lag-p99-µs")
}

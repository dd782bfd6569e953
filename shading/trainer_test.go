package shading

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"rtb/auction"
	"rtb/events"
)

// lognormalMarket makes n auctions of one segment against a log-normal highest competing bid:
// values log-uniform in [0.8, 6] × 10^6 micros, bids a uniform [0.5, 1] of the value; a share
// mtw of losses carry the minimum bid to win.
func lognormalMarket(seed uint64, n int, mu, sigma, mtw float64, exchange, segment string, ts time.Time) []events.Event {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	out := make([]events.Event, 0, n)
	for i := range n {
		v := 0.8e6 * math.Exp(rng.Float64()*math.Log(6/0.8))
		b := int64(v * (0.5 + 0.5*rng.Float64()))
		c := math.Exp(mu + sigma*rng.NormFloat64())
		e := events.Event{V: events.Version, ID: fmt.Sprintf("e-%d-%d", seed, i), TS: ts, RequestID: fmt.Sprintf("r-%d-%d", seed, i),
			ImpID: "1", CampaignID: fmt.Sprintf("c-%d", i%7), Exchange: exchange, Segment: segment, BidMicros: b}
		if float64(b) > c {
			e.Type, e.PriceMicros = events.Win, b
		} else {
			e.Type, e.Reason = events.Loss, 102
			if rng.Float64() < mtw {
				e.MinToWinMicros = int64(c) + 10_000
			}
		}
		out = append(out, e)
	}
	return out
}

func newTestTrainer(t *testing.T, cfg TrainerConfig) (*Trainer, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Brokers, cfg.Registerer = []string{"127.0.0.1:1"}, reg
	tr, err := NewTrainer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr, reg
}

func outcomes(t *testing.T, tr *Trainer, o string) float64 {
	t.Helper()
	return testutil.ToFloat64(tr.metrics.outcome(o))
}

func TestTrainerFitsEveryKeyLevel(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tr, _ := newTestTrainer(t, TrainerConfig{Now: func() time.Time { return now }})
	mu, sigma := math.Log(1.5e6), 0.6
	for _, e := range lognormalMarket(1, 6000, mu, sigma, 0.3, "x", "banner-300x250|site", now.Add(-time.Minute)) {
		tr.Observe(&e)
	}
	models := tr.Refit()
	keys := map[string]auction.ModelParams{}
	for _, m := range models {
		keys[m.Params().Key.String()] = m.Params()
	}
	for _, k := range []string{"x|banner-300x250|site", "x|banner-300x250", "x", "*"} {
		p, ok := keys[k]
		if !ok {
			t.Errorf("no model for %s (have %v)", k, keys)
			continue
		}
		if math.Abs(p.Mu-mu) > 0.05 || math.Abs(p.Sigma-sigma)/sigma > 0.1 || p.N != 5000 || !p.FittedAt.Equal(now) {
			t.Errorf("%s: %+v, want mu %.3f sigma %.2f from the last 5000", k, p, mu, sigma)
		}
	}
	if got := tr.Refit(); len(got) != 0 {
		t.Errorf("refit without new data published %d models", len(got))
	}
	// Past MaxAge everything goes, keys included.
	now = now.Add(2 * time.Hour)
	tr.Refit()
	if n := testutil.ToFloat64(tr.metrics.segments); n != 0 {
		t.Errorf("%v keys after MaxAge", n)
	}
}

func TestTrainerCountsCompetitiveOutcomesOnce(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tr, _ := newTestTrainer(t, TrainerConfig{Now: func() time.Time { return now }})
	ev := func(typ events.Type, id, req string, reason int) *events.Event {
		return &events.Event{V: 1, Type: typ, ID: id, TS: now, RequestID: req, ImpID: "1", CampaignID: "c", Exchange: "x",
			Segment: "video|app", BidMicros: 1_000_000, PriceMicros: 1_000_000, Reason: reason}
	}
	tr.Observe(ev(events.Bid, "b1", "r1", 0))
	tr.Observe(ev(events.Win, "w1", "r1", 0))
	tr.Observe(ev(events.Win, "w1", "r1", 0))  // retried notice
	tr.Observe(ev(events.Loss, "l1", "r1", 0)) // contradicting loss for the same imp
	tr.Observe(ev(events.Bill, "k1", "r1", 0))
	tr.Observe(ev(events.Loss, "l2", "r2", 100)) // below floor
	tr.Observe(ev(events.Loss, "l3", "r3", 2))   // invalid request
	tr.Observe(ev(events.Loss, "l4", "r4", 103))
	tr.Observe(ev(events.Traffic, "t1", "", 0))
	deal := ev(events.Win, "w5", "r5", 0)
	deal.DealID = "d"
	tr.Observe(deal)
	mtw := ev(events.Loss, "l6", "r6", 102)
	mtw.MinToWinMicros = 1_300_000
	tr.Observe(mtw)
	for o, want := range map[string]float64{"win": 1, "outbid": 1, "min_to_win": 1, "duplicate": 2, "ignored": 3} {
		if got := outcomes(t, tr, o); got != want {
			t.Errorf("%s: %v, want %v", o, got, want)
		}
	}
}

// On an exchange without loss notices a sampled bid with no win in OutcomeWait is a loss, a win
// counts only with its sampled bid (in whichever order they arrive), and unsampled wins not at all.
func TestTrainerInfersLosses(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tr, _ := newTestTrainer(t, TrainerConfig{Now: func() time.Time { return now }, InferLossExchanges: []string{"y"}, OutcomeWait: time.Minute})
	ev := func(typ events.Type, req string) *events.Event {
		return &events.Event{V: 1, Type: typ, ID: string(typ) + req, TS: now, RequestID: req, ImpID: "1", CampaignID: "c",
			Exchange: "y", Segment: "video|app", BidMicros: 1_000_000, PriceMicros: 1_000_000}
	}
	tr.Observe(ev(events.Bid, "r1")) // lost: no win comes
	tr.Observe(ev(events.Bid, "r2"))
	tr.Observe(ev(events.Win, "r2")) // win after its bid
	tr.Observe(ev(events.Win, "r3"))
	tr.Observe(ev(events.Bid, "r3")) // bid after its win
	tr.Observe(ev(events.Win, "r4")) // unsampled
	tr.Refit()
	if w, l := outcomes(t, tr, "win"), outcomes(t, tr, "inferred_loss"); w != 2 || l != 0 {
		t.Errorf("before OutcomeWait: %v wins %v inferred losses", w, l)
	}
	now = now.Add(2 * time.Minute)
	tr.Refit()
	if w, l, u := outcomes(t, tr, "win"), outcomes(t, tr, "inferred_loss"), outcomes(t, tr, "unsampled"); w != 2 || l != 1 || u != 1 {
		t.Errorf("after OutcomeWait: %v wins, %v inferred losses, %v unsampled", w, l, u)
	}
}

// HalfLife makes the fit follow a market that moved within the window; without it the fit sits
// between the old and the new market.
func TestTrainerHalfLife(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	old, recent := math.Log(3e6), math.Log(1e6)
	fit := func(halfLife time.Duration) float64 {
		tr, _ := newTestTrainer(t, TrainerConfig{Now: func() time.Time { return now }, HalfLife: halfLife})
		for _, e := range lognormalMarket(1, 2500, old, 0.5, 0.3, "x", "video|app", now.Add(-50*time.Minute)) {
			tr.Observe(&e)
		}
		for _, e := range lognormalMarket(2, 2500, recent, 0.5, 0.3, "x", "video|app", now.Add(-time.Minute)) {
			tr.Observe(&e)
		}
		for _, m := range tr.Refit() {
			if p := m.Params(); p.Key.String() == "x|video|app" {
				return p.Mu
			}
		}
		t.Fatal("no model for x|video|app")
		return 0
	}
	if mu := fit(5 * time.Minute); math.Abs(mu-recent) > 0.1 {
		t.Errorf("half-life 5m: mu %.3f, want the recent market's %.3f within 0.1", mu, recent)
	}
	if mu := fit(0); math.Abs(mu-recent) < 0.3 || math.Abs(mu-old) < 0.3 {
		t.Errorf("no half-life: mu %.3f, want between the old %.3f and the recent %.3f", mu, old, recent)
	}
}

// MaxKeys bounds the model keys: an observation for a key beyond it still counts for its coarser
// keys that are tracked.
func TestTrainerMaxKeys(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tr, _ := newTestTrainer(t, TrainerConfig{Now: func() time.Time { return now }, MaxKeys: 5})
	for i, seg := range []struct{ x, s string }{{"x", "banner-300x250|site"}, {"x", "video|app"}, {"y", "native|site"}} {
		e := events.Event{V: 1, Type: events.Win, ID: fmt.Sprint("w", i), TS: now, RequestID: fmt.Sprint("r", i), ImpID: "1",
			CampaignID: "c", Exchange: seg.x, Segment: seg.s, BidMicros: 1_000_000}
		tr.Observe(&e)
	}
	// x|banner-300x250|site, x|banner-300x250, x, * and x|video|app; not x|video nor anything of y.
	if n, d := testutil.ToFloat64(tr.metrics.segments), testutil.ToFloat64(tr.metrics.keysDropped); n != 5 || d != 4 {
		t.Errorf("%v keys tracked, %v observations dropped for keys; want 5 and 4", n, d)
	}
	if got := len(tr.windows[auction.ModelKey{}].buf); got != 3 {
		t.Errorf("the coarsest key has %d observations, want all 3", got)
	}
	if _, ok := tr.windows[auction.KeyOf("x", "video")]; ok {
		t.Error("a key beyond MaxKeys is tracked")
	}
}

// MaxPending: on an exchange that sends loss notices every outcome counts however many there are
// (only the last MaxPending are remembered to catch repeats); on one whose losses are inferred, at
// most MaxPending bids and outcomes wait for each other and the rest are counted as dropped.
func TestTrainerMaxPending(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tr, _ := newTestTrainer(t, TrainerConfig{Now: func() time.Time { return now }, MaxPending: 4, InferLossExchanges: []string{"y"}})
	ev := func(typ events.Type, x string, i int) *events.Event {
		return &events.Event{V: 1, Type: typ, ID: fmt.Sprint(typ, x, i), TS: now, RequestID: fmt.Sprint("r", i), ImpID: "1",
			CampaignID: "c", Exchange: x, Segment: "video|app", BidMicros: 1_000_000}
	}
	for i := range 10 {
		tr.Observe(ev(events.Win, "x", i))
	}
	tr.Observe(ev(events.Loss, "x", 9)) // contradicts a remembered win
	if w, d, dup := outcomes(t, tr, "win"), outcomes(t, tr, "dropped"), outcomes(t, tr, "duplicate"); w != 10 || d != 0 || dup != 1 {
		t.Errorf("exchange with loss notices: %v wins, %v dropped, %v duplicates; want 10, 0, 1", w, d, dup)
	}
	for i := range 6 {
		tr.Observe(ev(events.Bid, "y", i))
	}
	if d := outcomes(t, tr, "dropped"); d != 2 {
		t.Errorf("exchange with inferred losses: %v dropped, want the 2 bids beyond MaxPending 4", d)
	}
	now = now.Add(3 * time.Minute)
	tr.Refit()
	if l := outcomes(t, tr, "inferred_loss"); l != 4 {
		t.Errorf("%v inferred losses, want the 4 bids kept", l)
	}
}

func TestTrainerConfigErrors(t *testing.T) {
	for _, cfg := range []TrainerConfig{
		{},
		{Brokers: []string{"b"}, Interval: -1},
		{Brokers: []string{"b"}, Window: 100},
		{Brokers: []string{"b"}, MaxKeys: -1},
	} {
		if _, err := NewTrainer(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	tr, err := NewTrainer(TrainerConfig{Brokers: []string{"b"}})
	if err != nil {
		t.Fatal(err)
	}
	c := tr.Config()
	if c.Group != "rtb-shading" || c.Interval != 10*time.Second || c.Window != 5000 || c.MaxAge != time.Hour || c.OutcomeWait != 2*time.Minute {
		t.Errorf("defaults %+v", c)
	}
	s, _ := auction.NewLearnedShader(auction.ShaderConfig{})
	if _, err := NewReader(ReaderConfig{Shader: s}); err == nil {
		t.Error("reader without brokers")
	}
	if _, err := NewReader(ReaderConfig{Brokers: []string{"b"}}); err == nil {
		t.Error("reader without shader")
	}
}

// The bid log is most of the event volume: a trainer that reads it without needing it takes
// bursts of a core from the request path.
func TestTrainerReadsBidLogOnlyToInferLosses(t *testing.T) {
	for _, tc := range []struct {
		infer    []string
		wantBids bool
	}{
		{nil, false},
		{[]string{"silent-exchange"}, true},
	} {
		tr, _ := newTestTrainer(t, TrainerConfig{InferLossExchanges: tc.infer})
		got := tr.topics()
		if !slices.Contains(got, events.TopicWins) || !slices.Contains(got, events.TopicLosses) {
			t.Errorf("infer %v: topics %v miss the notices", tc.infer, got)
		}
		if slices.Contains(got, events.TopicBids) != tc.wantBids {
			t.Errorf("infer %v: topics %v, want bid log read %v", tc.infer, got, tc.wantBids)
		}
	}
}

func TestTrainerMetricsLint(t *testing.T) {
	_, reg := newTestTrainer(t, TrainerConfig{})
	s, _ := auction.NewLearnedShader(auction.ShaderConfig{})
	if _, err := NewReader(ReaderConfig{Brokers: []string{"b"}, Shader: s, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

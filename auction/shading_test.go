package auction

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// market draws the highest competing bid from a log-normal, as the load generator's market does.
type market struct {
	mu, sigma float64
	rng       *rand.Rand
}

func (m market) competitor() float64 { return math.Exp(m.mu + m.sigma*m.rng.NormFloat64()) }

// observe bids n times, values log-uniform over [vlo, vhi] and bids a uniform [0.5, 1] of the value
// (the spread exploration gives); a loss carries the minimum bid to win with probability mtw.
func (m market) observe(n int, vlo, vhi, mtw float64) []Observation {
	obs := make([]Observation, 0, n)
	for range n {
		v := vlo * math.Exp(m.rng.Float64()*math.Log(vhi/vlo))
		b := v * (0.5 + 0.5*m.rng.Float64())
		c := m.competitor()
		switch {
		case b > c:
			obs = append(obs, Observation{Kind: Won, Micros: int64(b)})
		case m.rng.Float64() < mtw:
			obs = append(obs, Observation{Kind: MinToWin, Micros: int64(c) + 1})
		default:
			obs = append(obs, Observation{Kind: Outbid, Micros: int64(b)})
		}
	}
	return obs
}

// surplusArgmax is the optimum of the true curve found by brute force: the bid maximising
// (v − b)·Φ((ln b − μ)/σ) over a grid of 100,000 bids in (0, v].
func surplusArgmax(mu, sigma float64, v int64) int64 {
	best, bestB := -1.0, int64(0)
	const steps = 100_000
	for i := 1; i <= steps; i++ {
		b := float64(v) * float64(i) / steps
		s := (float64(v) - b) * normCDF((math.Log(b)-mu)/sigma)
		if s > best {
			best, bestB = s, int64(b)
		}
	}
	return bestB
}

func relErr(got, want float64) float64 { return math.Abs(got-want) / math.Abs(want) }

// Fit tolerance: from 20,000 censored observations, μ within ±0.03 (3% in price) and σ within ±5%.
func TestFitRecoversLogNormal(t *testing.T) {
	mu, sigma := math.Log(1.5e6), 0.6
	for _, tc := range []struct {
		name string
		mtw  float64 // share of losses with the minimum bid to win
	}{
		{"wins and censored losses only", 0},
		{"half the losses with min-to-win", 0.5},
		{"every loss with min-to-win", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := market{mu, sigma, rand.New(rand.NewPCG(1, 2))}
			obs := m.observe(20_000, 0.8e6, 6e6, tc.mtw)
			f, err := FitLogNormal(obs, FitConfig{})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("mu %.4f (true %.4f), sigma %.4f (true %.4f), %d wins %d outbid %d min-to-win, %d iterations",
				f.Mu, mu, f.Sigma, sigma, f.Wins, f.Outbid, f.MinToWins, f.Iterations)
			if math.Abs(f.Mu-mu) > 0.03 || relErr(f.Sigma, sigma) > 0.05 {
				t.Errorf("fit mu=%.4f sigma=%.4f, want %.4f±0.03, %.4f±5%%", f.Mu, f.Sigma, mu, sigma)
			}
		})
	}
}

// Observations from one market at several σ and price levels, including a cheap one (cents CPM).
func TestFitRecoversAcrossMarkets(t *testing.T) {
	for _, tc := range []struct{ mu, sigma, vlo, vhi float64 }{
		{math.Log(20_000), 0.3, 10_000, 60_000},
		{math.Log(3e6), 1.2, 0.5e6, 40e6},
		{math.Log(8e6), 0.15, 5e6, 15e6},
	} {
		m := market{tc.mu, tc.sigma, rand.New(rand.NewPCG(3, 4))}
		f, err := FitLogNormal(m.observe(20_000, tc.vlo, tc.vhi, 0.3), FitConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(f.Mu-tc.mu) > 0.03 || relErr(f.Sigma, tc.sigma) > 0.05 {
			t.Errorf("mu %.4f sigma %.3f: fit mu=%.4f sigma=%.4f", tc.mu, tc.sigma, f.Mu, f.Sigma)
		}
	}
}

func TestFitWeightsCountAsRepeats(t *testing.T) {
	m := market{math.Log(2e6), 0.5, rand.New(rand.NewPCG(5, 6))}
	obs := m.observe(2_000, 1e6, 5e6, 0.3)
	var twice []Observation
	for _, o := range obs {
		twice = append(twice, o, o)
	}
	weighted := make([]Observation, len(obs))
	for i, o := range obs {
		o.Weight = 2
		weighted[i] = o
	}
	a, err := FitLogNormal(twice, FitConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := FitLogNormal(weighted, FitConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// The prior weighs the same in both, the data differ only in count vs weight.
	if math.Abs(a.Mu-b.Mu) > 1e-6 || math.Abs(a.Sigma-b.Sigma) > 1e-6 {
		t.Errorf("repeated %v/%v, weighted %v/%v", a.Mu, a.Sigma, b.Mu, b.Sigma)
	}
}

// Data that cannot pin the model down still give finite, bounded parameters or a clear error.
func TestFitRobust(t *testing.T) {
	mk := func(n int, kind ObservationKind, micros int64) []Observation {
		obs := make([]Observation, n)
		for i := range obs {
			obs[i] = Observation{Kind: kind, Micros: micros}
		}
		return obs
	}
	if _, err := FitLogNormal(mk(1000, Won, 1e6), FitConfig{}); !errors.Is(err, ErrTooFewObservations) {
		t.Errorf("all wins: %v, want ErrTooFewObservations", err)
	}
	if _, err := FitLogNormal(mk(50, Won, 1e6), FitConfig{}); !errors.Is(err, ErrTooFewObservations) {
		t.Errorf("50 observations: %v", err)
	}
	// Every bid at one level: a win rate and nothing more. Finite, σ in bounds.
	obs := append(mk(900, Won, 1e6), mk(100, Outbid, 1e6)...)
	f, err := FitLogNormal(obs, FitConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if math.IsNaN(f.Mu) || f.Sigma < SigmaMin || f.Sigma > SigmaMax {
		t.Errorf("one bid level: %+v", f)
	}
	// Extreme amounts, junk kinds and weights are skipped or survived.
	obs = append(obs, Observation{Kind: Won, Micros: math.MaxInt64}, Observation{Kind: MinToWin, Micros: 1},
		Observation{Kind: 9, Micros: 5}, Observation{Kind: Won, Micros: -3}, Observation{Kind: Won, Micros: 7, Weight: math.NaN()},
		Observation{Kind: Won, Micros: 7, Weight: math.Inf(1)})
	if f, err := FitLogNormal(obs, FitConfig{}); err != nil || math.IsNaN(f.Mu) || math.IsNaN(f.Sigma) {
		t.Errorf("extremes: %+v, %v", f, err)
	}
	if _, err := FitLogNormal(obs, FitConfig{SigmaMin: 1, SigmaMax: 0.5}); err == nil {
		t.Error("inverted sigma bounds accepted")
	}
}

// The exact solve (OptimalBid) is the optimum of the true curve: within 0.1% of a brute-force
// search; the table (Bid) is within 0.1% of the solve; so Bid is within 0.2% of the true optimum.
func TestBidMatchesNumericOptimum(t *testing.T) {
	for _, p := range []struct{ mu, sigma float64 }{
		{math.Log(1.5e6), 0.6}, {math.Log(1.5e6), 0.1}, {math.Log(4e5), 1.5}, {math.Log(2e6), 3},
	} {
		m, err := NewSegmentModel(ModelParams{Key: ModelKey{"x", "video", "app"}, Mu: p.mu, Sigma: p.sigma, N: 1, FittedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		median := math.Exp(p.mu)
		for _, k := range []float64{0.2, 0.5, 0.8, 1, 1.3, 2, 3, 5, 10} {
			v := int64(median * k)
			want := surplusArgmax(p.mu, p.sigma, v)
			if e := relErr(float64(m.OptimalBid(v)), float64(want)); e > 0.001 {
				t.Errorf("mu %.2f sigma %.2f value %d: solve %d, brute force %d (%.3f%%)", p.mu, p.sigma, v, m.OptimalBid(v), want, 100*e)
			}
			if e := relErr(float64(m.Bid(v)), float64(want)); e > 0.002 {
				t.Errorf("mu %.2f sigma %.2f value %d: table %d, brute force %d (%.3f%%)", p.mu, p.sigma, v, m.Bid(v), want, 100*e)
			}
		}
	}
}

func TestTableMatchesSolve(t *testing.T) {
	m, err := NewSegmentModel(ModelParams{Key: ModelKey{Exchange: "x"}, Mu: math.Log(1.5e6), Sigma: 0.6, N: 1, FittedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for v := int64(1); v < 1e12; v = v*21/20 + 1 {
		got, want := m.Bid(v), m.OptimalBid(v)
		if got > v || got < 0 {
			t.Fatalf("value %d: bid %d", v, got)
		}
		if v < 1e5 || v > 1e9 { // outside the grid: only bounded
			continue
		}
		worst = max(worst, relErr(float64(got), float64(want)))
	}
	t.Logf("table vs solve, worst relative error %.5f%%", 100*worst)
	if worst > 0.001 {
		t.Errorf("table off the solve by %.4f%%", 100*worst)
	}
	for _, v := range []int64{0, -5} {
		if b := m.Bid(v); b != 0 {
			t.Errorf("Bid(%d) = %d", v, b)
		}
	}
	if b := m.Bid(math.MaxInt64); b <= 0 {
		t.Errorf("Bid(MaxInt64) = %d", b)
	}
}

// End to end: a model fitted from censored outcomes bids within 2% of the true curve's optimum.
func TestFittedModelBidsNearTrueOptimum(t *testing.T) {
	mu, sigma := math.Log(1.5e6), 0.6
	mk := market{mu, sigma, rand.New(rand.NewPCG(7, 8))}
	f, err := FitLogNormal(mk.observe(20_000, 0.8e6, 6e6, 0.3), FitConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewSegmentModel(ModelParams{Key: ModelKey{Exchange: "x"}, Mu: f.Mu, Sigma: f.Sigma, N: f.N, FittedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []int64{1e6, 1.5e6, 2e6, 3e6, 5e6} {
		want := surplusArgmax(mu, sigma, v)
		if e := relErr(float64(m.Bid(v)), float64(want)); e > 0.02 {
			t.Errorf("value %d: bid %d, true optimum %d (%.2f%%)", v, m.Bid(v), want, 100*e)
		}
	}
}

func mustModel(t testing.TB, k ModelKey, mu float64, at time.Time) *SegmentModel {
	t.Helper()
	m, err := NewSegmentModel(ModelParams{Key: k, Mu: mu, Sigma: 0.5, N: 100, FittedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestModelsFallbackOrder(t *testing.T) {
	now := time.Now()
	seg := mustModel(t, ModelKey{"x", "banner-300x250", "site"}, 10, now)
	fmtm := mustModel(t, ModelKey{"x", "banner-300x250", ""}, 11, now)
	exm := mustModel(t, ModelKey{Exchange: "x"}, 12, now)
	anym := mustModel(t, ModelKey{}, 13, now)
	ms := NewModels(seg, fmtm, exm, anym, nil)
	if ms.Len() != 4 {
		t.Fatalf("Len %d, want 4", ms.Len())
	}
	for _, tc := range []struct {
		exchange, segment string
		want              *SegmentModel
	}{
		{"x", "banner-300x250|site", seg},
		{"x", "banner-300x250|app", fmtm},
		{"x", "banner-300x250", fmtm},
		{"x", "video|site", exm},
		{"x", "", exm},
		{"y", "banner-300x250|site", anym},
		{"", "", anym},
	} {
		if got := ms.Lookup(tc.exchange, tc.segment); got != tc.want {
			t.Errorf("%s %s: got %v, want %v", tc.exchange, tc.segment, got.Params().Key, tc.want.Params().Key)
		}
	}
	if NewModels(seg).Lookup("y", "video|app") != nil {
		t.Error("no fallback model, yet a lookup found one")
	}
	var nilSet *Models
	if nilSet.Lookup("x", "video|app") != nil || nilSet.Len() != 0 {
		t.Error("nil set")
	}
	// Of two models of one key the later fit is kept, whatever the order given.
	older := mustModel(t, seg.Params().Key, 9, now.Add(-time.Minute))
	if NewModels(seg, older).Lookup("x", "banner-300x250|site") != seg || NewModels(older, seg).Lookup("x", "banner-300x250|site") != seg {
		t.Error("older model kept")
	}
}

func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		k    ModelKey
		want string
	}{
		{ModelKey{"x", "video", "app"}, "x|video|app"}, {ModelKey{"x", "video", ""}, "x|video"},
		{ModelKey{Exchange: "x"}, "x"}, {ModelKey{}, "*"},
	} {
		if tc.k.String() != tc.want {
			t.Errorf("%#v: %q", tc.k, tc.k.String())
		}
		if err := tc.k.Valid(); err != nil {
			t.Error(err)
		}
	}
	k, chain := ModelKey{"x", "video", "app"}, []string{}
	for ok := true; ok; k, ok = k.Coarser() {
		chain = append(chain, k.String())
	}
	if got := strings.Join(chain, " → "); got != "x|video|app → x|video → x → *" {
		t.Errorf("chain %s", got)
	}
	for _, bad := range []ModelKey{{"", "video", ""}, {"x", "", "app"}, {"x|y", "", ""}, {"*", "", ""}, {"x", "a\nb", ""}, {strings.Repeat("x", 65), "", ""}} {
		if bad.Valid() == nil {
			t.Errorf("%#v valid", bad)
		}
	}
	if KeyOf("x", "video|app") != (ModelKey{"x", "video", "app"}) || KeyOf("x", "") != (ModelKey{Exchange: "x"}) || KeyOf("", "video|app") != (ModelKey{}) {
		t.Error("KeyOf")
	}
}

// clock is a settable clock for the shader.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestShaderStalenessAndDefault(t *testing.T) {
	c := &clock{time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	s, err := NewLearnedShader(ShaderConfig{StaleAfter: 10 * time.Minute, Default: 0.9, Explore: -1, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	const v = 3_000_000
	if got := s.Shade("x", "video|app", v, 0); got != 2_700_000 {
		t.Errorf("no models: %d, want the default 0.9", got)
	}
	seg := mustModel(t, ModelKey{"x", "video", "app"}, math.Log(1.5e6), c.t)
	exm := mustModel(t, ModelKey{Exchange: "x"}, math.Log(1e6), c.t.Add(-8*time.Minute))
	s.Swap(NewModels(seg, exm))
	if got := s.Shade("x", "video|app", v, 0); got != seg.Bid(v) {
		t.Errorf("fresh segment model: %d, want %d", got, seg.Bid(v))
	}
	c.t = c.t.Add(5 * time.Minute) // exm is 13 min old: stale; seg 5 min
	if got := s.Shade("x", "audio|app", v, 0); got != 2_700_000 {
		t.Errorf("only a stale coarser model: %d, want the default", got)
	}
	c.t = c.t.Add(6 * time.Minute) // seg 11 min: stale too
	if got := s.Shade("x", "video|app", v, 0); got != 2_700_000 {
		t.Errorf("stale: %d, want the default", got)
	}
	// A stale segment falls back to a fresh coarser model.
	fresh := mustModel(t, ModelKey{Exchange: "x"}, math.Log(1e6), c.t)
	s.Swap(NewModels(seg, fresh))
	if got := s.Shade("x", "video|app", v, 0); got != fresh.Bid(v) {
		t.Errorf("stale segment, fresh exchange model: %d, want %d", got, fresh.Bid(v))
	}
	st := s.Stats()
	if st.Shaded != 2 || st.Stale != 2 || st.Cold != 1 || st.Explored != 0 {
		t.Errorf("stats %+v", st)
	}
	if old := s.Swap(nil); old == nil || s.Models() != nil {
		t.Error("Swap(nil)")
	}
	if got := s.Shade("x", "video|app", 0, 0); got != 0 {
		t.Errorf("zero value: %d", got)
	}
}

func TestShaderFullValueDefault(t *testing.T) {
	s, err := NewLearnedShader(ShaderConfig{Explore: -1})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Shade("x", "video|app", 1_234_567, 0); got != 1_234_567 {
		t.Errorf("cold: %d, want the full value", got)
	}
	cfg := s.Config()
	if cfg.StaleAfter != 30*time.Minute || cfg.Default != 1 || cfg.Explore != 0 || cfg.ExploreMin != 0.5 || cfg.ExploreMax != 1 {
		t.Errorf("defaults %+v", cfg)
	}
}

func TestShaderConfigErrors(t *testing.T) {
	for _, cfg := range []ShaderConfig{
		{StaleAfter: -1}, {Default: 1.5}, {Default: -0.2}, {Explore: 0.6}, {Explore: math.NaN()},
		{ExploreMin: 0.9, ExploreMax: 0.8}, {ExploreMax: 1.2}, {ExploreMin: -1},
	} {
		if _, err := NewLearnedShader(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// The exploration share is as configured (2% ± 0.3% over 200,000 decisions), and explored bids
// spread over the configured range.
func TestShaderExploration(t *testing.T) {
	s, err := NewLearnedShader(ShaderConfig{Default: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	const n, v = 200_000, 1_000_000
	var explored int
	lo, hi := math.MaxFloat64, 0.0
	var bins [5]int
	for range n {
		b := s.Shade("x", "video|app", v, 0)
		if b == v/4 {
			continue
		}
		explored++
		f := float64(b) / v
		lo, hi = min(lo, f), max(hi, f)
		bins[min(int((f-0.5)*10), 4)]++
	}
	share := float64(explored) / n
	t.Logf("explored %.3f%%, factors in [%.4f, %.4f], per tenth %v", 100*share, lo, hi, bins)
	if math.Abs(share-0.02) > 0.003 {
		t.Errorf("explored %.3f%%, want 2%%", 100*share)
	}
	if lo < 0.5 || hi > 1 || lo > 0.51 || hi < 0.99 {
		t.Errorf("factors in [%v, %v], want across [0.5, 1]", lo, hi)
	}
	for _, c := range bins {
		if c < explored/5*7/10 {
			t.Errorf("factors unevenly spread: %v", bins)
		}
	}
	if st := s.Stats(); st.Explored != uint64(explored) || st.Cold != uint64(n-explored) {
		t.Errorf("stats %+v, explored %d", st, explored)
	}
}

func TestFixedShader(t *testing.T) {
	if got := (FixedShader{0.8}).Shade("x", "", 1_000_000, 0); got != 800_000 {
		t.Errorf("%d", got)
	}
	if bid, _ := Price(FixedShader{0.1}, "x", "", true, 1_000_000, 500_000); bid != 500_000 {
		t.Errorf("not clamped to floor: %d", bid)
	}
}

func TestShadeAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	s, err := NewLearnedShader(ShaderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s.Swap(NewModels(mustModel(t, ModelKey{"x", "banner-300x250", "site"}, 14, now), mustModel(t, ModelKey{Exchange: "y"}, 14, now)))
	var sink int64
	for _, seg := range []struct{ x, s string }{{"x", "banner-300x250|site"}, {"y", "video|app"}, {"z", "native|dooh"}} {
		if a := testing.AllocsPerRun(1000, func() { sink += s.Shade(seg.x, seg.s, 2_000_000, 100_000) }); a != 0 {
			t.Errorf("%s %s: %v allocs per Shade", seg.x, seg.s, a)
		}
	}
	_ = sink
}

func TestModelWireRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 123_000_000, time.UTC)
	for _, k := range []ModelKey{{"x", "banner-300x250", "site"}, {"x", "video", ""}, {Exchange: "x"}, {}} {
		m, err := NewSegmentModel(ModelParams{Key: k, Mu: 14.2, Sigma: 0.6, N: 1234, FittedAt: at})
		if err != nil {
			t.Fatal(err)
		}
		b := EncodeModel(m)
		got, err := DecodeModel(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if gp, mp := got.Params(), m.Params(); gp.Key != mp.Key || gp.Mu != mp.Mu || gp.Sigma != mp.Sigma || gp.N != mp.N || !gp.FittedAt.Equal(mp.FittedAt) {
			t.Errorf("%s: round trip %+v, want %+v", b, got.Params(), m.Params())
		}
		if got.Bid(2e6) != m.Bid(2e6) {
			t.Errorf("%s: tables differ", b)
		}
	}
}

func TestDecodeModelRejects(t *testing.T) {
	for _, in := range []string{
		``, `null`, `[]`, `{}`, `{"v":1}`,
		`{"v":2,"exchange":"x","mu":14,"sigma":0.6,"n":10,"fitted_at":"2026-11-22T10:00:00Z"}`,
		`{"v":1,"exchange":"x","sigma":0.6,"n":10,"fitted_at":"2026-11-22T10:00:00Z"}`,
		`{"v":1,"exchange":"x","mu":14,"n":10,"fitted_at":"2026-11-22T10:00:00Z"}`,
		`{"v":1,"exchange":"x","mu":14,"sigma":0.6,"n":0,"fitted_at":"2026-11-22T10:00:00Z"}`,
		`{"v":1,"exchange":"x","mu":14,"sigma":0.6,"n":10}`,
		`{"v":1,"exchange":"x","mu":-1,"sigma":0.6,"n":10,"fitted_at":"2026-11-22T10:00:00Z"}`,
		`{"v":1,"exchange":"x","mu":99,"sigma":0.6,"n":10,"fitted_at":"2026-11-22T10:00:00Z"}`,
		`{"v":1,"exchange":"x","mu":14,"sigma":0,"n":10,"fitted_at":"2026-11-22T10:00:00Z"}`,
		`{"v":1,"exchange":"x","mu":14,"sigma":9,"n":10,"fitted_at":"2026-11-22T10:00:00Z"}`,
		`{"v":1,"format":"video","mu":14,"sigma":0.6,"n":10,"fitted_at":"2026-11-22T10:00:00Z"}`,
		`{"v":1,"exchange":"x|y","mu":14,"sigma":0.6,"n":10,"fitted_at":"2026-11-22T10:00:00Z"}`,
		`{"v":1,"exchange":"x","mu":14,"sigma":0.6,"n":10,"fitted_at":"2026-11-22T10:00:00Z","extra":1}`,
		`{"v":1,"exchange":"x","mu":14,"sigma":0.6,"n":10,"fitted_at":"2026-11-22T10:00:00Z"} {}`,
		`{"v":1,"exchange":"x","mu":14,"sigma":0.6,"n":10,"fitted_at":"2026-11-22T10:00:00Z"}x`,
		`{"v":1,"exchange":"x","mu":"14","sigma":0.6,"n":10,"fitted_at":"2026-11-22T10:00:00Z"}`,
		`{"v":1,"exchange":"x","mu":14,"sigma":0.6,"n":10,"fitted_at":"0001-01-01T00:00:00Z"}`,
		`{"v":1,"exchange":"x","mu":14,"sigma":0.6,"n":10,"fitted_at":"2026-11-22T10:00:00Z"` + strings.Repeat(" ", 5000) + `}`,
	} {
		if m, err := DecodeModel([]byte(in)); err == nil {
			t.Errorf("%.80s: accepted as %+v", in, m.Params())
		}
	}
	if _, err := DecodeModel([]byte(" {\"v\":1,\"exchange\":\"x\",\"mu\":14,\"sigma\":0.6,\"n\":10,\"fitted_at\":\"2026-11-22T10:00:00Z\"}\n")); err != nil {
		t.Errorf("surrounding space: %v", err)
	}
}

// FuzzDecodeModel: whatever the bytes, DecodeModel returns a usable model or an error, never
// panics, and what it accepts encodes back to something it accepts as the same model.
func FuzzDecodeModel(f *testing.F) {
	m, _ := NewSegmentModel(ModelParams{Key: ModelKey{"x", "video", "app"}, Mu: 14.2, Sigma: 0.6, N: 10, FittedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	f.Add(EncodeModel(m))
	f.Add([]byte(`{"v":1,"mu":0,"sigma":4,"n":1,"fitted_at":"2000-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"v":1,"exchange":"x","mu":1e308,"sigma":-0,"n":-1,"fitted_at":"9999-12-31T23:59:59+01:00"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeModel(b)
		if err != nil {
			return
		}
		p := m.Params()
		if err := p.Check(); err != nil {
			t.Fatalf("accepted %q: %v", b, err)
		}
		for _, v := range []int64{1, 1e6, math.MaxInt64} {
			if bid := m.Bid(v); bid < 0 || bid > v {
				t.Fatalf("%q: Bid(%d) = %d", b, v, bid)
			}
		}
		again, err := DecodeModel(EncodeModel(m))
		if err != nil {
			t.Fatalf("%q re-encoded not accepted: %v", b, err)
		}
		q := again.Params()
		if q.Key != p.Key || q.Mu != p.Mu || q.Sigma != p.Sigma || q.N != p.N || !q.FittedAt.Equal(p.FittedAt) {
			t.Fatalf("%q: round trip %+v, want %+v", b, q, p)
		}
	})
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed+1)) }

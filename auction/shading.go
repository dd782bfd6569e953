// Bid shading for first-price auctions: what to bid below a value so as to keep most of the surplus
// while still winning. Why it is built the way it is:
//
// The model is the distribution of the highest competing bid per segment of inventory, log-normal,
// as in Wu, Yeh & Chen, "Predicting Winning Price in Real Time Bidding with Censored Data" (KDD
// 2015), and the bid is the one maximising expected surplus under it, as in the distribution-based
// shading of Pan et al., "Bid Shading by Win-Rate Estimation and Surplus Maximization" (AdKDD 2020)
// and Zhou et al., "An Efficient Deep Distribution Network for Bid Shading in First-Price Auctions"
// (KDD 2021). With C the highest competing bid, P(win | b) = Φ((ln b − μ)/σ) and the bid is
// argmax_b (value − b)·P(win | b). A distribution rather than a direct regression of the bid because
// what we observe is censored: a win says only that C was below our bid, a loss that it was at or
// above it, and only some exchanges say where it was (the minimum bid to win). A parametric
// distribution learns from all three kinds by maximum likelihood, needs few observations per
// segment, and gives the whole win-rate curve, so one fit serves every value and floor. Log-normal
// because prices are positive and right-skewed, it is what Wu et al. found to fit, and its censored
// likelihood is concave in the right parameters (below), so the fit is robust and fast.
//
// The fit (FitLogNormal) maximises the censored likelihood in Olsen's parameters h = 1/σ, d = μ/σ
// on standardised log prices, where the log-likelihood of the censored normal (Tobit) is concave:
// Newton's method with a backtracking line search then converges to the one maximum from anywhere.
// A weak prior (one pseudo-observation spread over the data's own scale) keeps the maximum finite
// when the data cannot pin it down (all wins, or every bid at one level), σ is bounded, and a fit
// needs a minimum of observations and of both outcomes.
//
// At request time the optimum is a table lookup: the first-order condition value = b·(1 + σ·Φ(z)/φ(z))
// with z = (ln b − μ)/σ ties the optimal bid/value ratio to the value alone, so each model holds
// that ratio at nodes over a log grid of values, built once when the model is made. The grid is in a
// approximation of log2 read off the float's bits (exponent + a quadratic in the mantissa), which is
// monotone, smooth and costs no math.Log; nodes are placed with the same mapping, so
// interpolation is exact at nodes and linear between close ones.
//
// Models are immutable and swapped whole (LearnedShader.Swap), so the bid path reads them without
// locks. They are looked up by exchange and segment with fallback to coarser keys when a segment
// has no fresh model: exchange|format|inventory → exchange|format → exchange → any. Nested maps
// keyed by the strings the bidder already has, so nothing is concatenated or allocated.

package auction

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Bounds on model parameters. σ below 0.02 would claim the market clears within ±2%, which no
// observed market does and which would make the table steep; above 4 the model says nothing.
const (
	SigmaMin = 0.02
	SigmaMax = 4.0
	// MuMax is ln of 10^13 micros (ten million currency units CPM); μ below 0 (one micro) is
	// equally meaningless.
	MuMax = 30.0
)

// ModelKey names the inventory a model is for. Empty fields are wildcards from the right:
// {x, f, i} is a segment of exchange x, {x, f, ""} all inventory of format f on x, {x, "", ""}
// all of x, and the zero key any exchange.
type ModelKey struct {
	Exchange, Format, Inventory string
}

// String is the key's form as the Kafka key on rtb.models: "x|f|i", "x|f", "x", or "*" for any.
func (k ModelKey) String() string {
	switch {
	case k.Exchange == "":
		return "*"
	case k.Format == "":
		return k.Exchange
	case k.Inventory == "":
		return k.Exchange + "|" + k.Format
	}
	return k.Exchange + "|" + k.Format + "|" + k.Inventory
}

// Coarser is the next key in the fallback order, and false for the any key.
func (k ModelKey) Coarser() (ModelKey, bool) {
	switch {
	case k.Exchange == "":
		return k, false
	case k.Format == "":
		return ModelKey{}, true
	case k.Inventory == "":
		return ModelKey{Exchange: k.Exchange}, true
	}
	return ModelKey{Exchange: k.Exchange, Format: k.Format}, true
}

// Valid reports why k cannot be a model key: wildcards only from the right, no '|', '*' or control
// characters in a part (they would make String ambiguous), parts of at most 64 bytes of UTF-8.
func (k ModelKey) Valid() error {
	if k.Exchange == "" && (k.Format != "" || k.Inventory != "") || k.Format == "" && k.Inventory != "" {
		return fmt.Errorf("model key %q: a wildcard left of a named part", k.Exchange+"|"+k.Format+"|"+k.Inventory)
	}
	for _, p := range []string{k.Exchange, k.Format, k.Inventory} {
		if len(p) > 64 || !utf8.ValidString(p) || strings.ContainsAny(p, "|*") {
			return fmt.Errorf("model key part %q: longer than 64 bytes, not UTF-8, or containing '|' or '*'", p)
		}
		for _, c := range []byte(p) {
			if c < 0x20 || c == 0x7f {
				return fmt.Errorf("model key part %q: control character", p)
			}
		}
	}
	return nil
}

// KeyOf is the finest model key of a bid: its exchange and its segment "FORMAT|INVENTORY". A
// segment without '|' is taken as a format alone; an empty one leaves the exchange key.
func KeyOf(exchange, segment string) ModelKey {
	if exchange == "" {
		return ModelKey{}
	}
	f, inv, _ := strings.Cut(segment, "|")
	if f == "" {
		return ModelKey{Exchange: exchange}
	}
	return ModelKey{Exchange: exchange, Format: f, Inventory: inv}
}

// ModelParams is a fitted model as data: μ and σ of ln(highest competing bid, in account micros
// CPM), fitted from N observations at FittedAt.
type ModelParams struct {
	Key       ModelKey
	Mu, Sigma float64
	N         int
	FittedAt  time.Time
}

// Check reports why p cannot make a model.
func (p ModelParams) Check() error {
	if err := p.Key.Valid(); err != nil {
		return err
	}
	switch {
	case !(p.Mu >= 0 && p.Mu <= MuMax):
		return fmt.Errorf("model %s: mu %v outside [0, %v]", p.Key, p.Mu, MuMax)
	case !(p.Sigma >= SigmaMin && p.Sigma <= SigmaMax):
		return fmt.Errorf("model %s: sigma %v outside [%v, %v]", p.Key, p.Sigma, SigmaMin, SigmaMax)
	case p.N < 1:
		return fmt.Errorf("model %s: fitted from %d observations", p.Key, p.N)
	case p.FittedAt.IsZero() || p.FittedAt.UTC().Year() < 2000 || p.FittedAt.UTC().Year() > 9999:
		return fmt.Errorf("model %s: fitted_at %v out of range", p.Key, p.FittedAt)
	}
	return nil
}

// tableSize is the number of nodes of a model's bid table: over 14σ of log values, enough that
// linear interpolation stays within 0.1% of the exact optimum (TestTableMatchesSolve).
const tableSize = 256

// SegmentModel is one immutable fitted model with its precomputed bid table.
type SegmentModel struct {
	p        ModelParams
	fittedAt int64 // p.FittedAt in unix nanoseconds, for the bid path
	// The optimal bid/value ratio at tableSize nodes evenly spaced in pseudoLog2(value) from lo.
	lo, invStep float64
	ratio       [tableSize]float32
	topBid      float64 // the bid at the last node, held above the grid
}

// NewSegmentModel checks p and precomputes its bid table (about 0.3 ms: do it when a model arrives,
// never on the bid path).
func NewSegmentModel(p ModelParams) (*SegmentModel, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	m := &SegmentModel{p: p, fittedAt: p.FittedAt.UnixNano()}
	// The grid spans the values where the ratio changes: from far below the market (where the
	// optimum approaches the value) to far above it, in units of σ and at least a factor e below
	// and e³ above, so a narrow market still has room.
	lo := pseudoLog2(math.Exp(p.Mu - 6*p.Sigma - 1))
	hi := pseudoLog2(math.Exp(min(p.Mu+8*p.Sigma+3, 43))) // e^43 is near MaxInt64 micros
	step := (hi - lo) / (tableSize - 1)
	m.lo, m.invStep = lo, 1/step
	x := math.NaN()
	for i := range m.ratio {
		v := pseudoExp2(lo + float64(i)*step)
		lnv := math.Log(v)
		x = optimalLnBid(p.Mu, p.Sigma, lnv, x)
		m.ratio[i] = float32(math.Exp(x - lnv))
		if i == tableSize-1 {
			m.topBid = float64(m.ratio[i]) * v
		}
	}
	return m, nil
}

// Params is the model as data.
func (m *SegmentModel) Params() ModelParams { return m.p }

// OptimalBid solves for the surplus-maximising bid exactly (no table): the reference Bid is
// tested against, and what tools may use off the bid path.
func (m *SegmentModel) OptimalBid(value int64) int64 {
	if value <= 0 {
		return 0
	}
	return int64(optimalRatio(m.p.Mu, m.p.Sigma, float64(value)) * float64(value))
}

// Bid is the surplus-maximising bid for value from the table: a few nanoseconds, no allocation.
// Never above value; the floor is the caller's (Price clamps to it, and since expected surplus
// has a single maximum, the floor itself is then the best bid allowed).
func (m *SegmentModel) Bid(value int64) int64 {
	if value <= 0 {
		return 0
	}
	v := float64(value)
	t := (pseudoLog2(v) - m.lo) * m.invStep
	var r float64
	switch {
	case t <= 0:
		r = float64(m.ratio[0])
	case t >= tableSize-1:
		// Past the grid the optimal bid grows only logarithmically while the win rate is already
		// near 1: the grid's last bid gives up a negligible share of wins.
		return min(int64(m.topBid), value)
	default:
		i := int(t)
		f := t - float64(i)
		r = float64(m.ratio[i]) + f*float64(m.ratio[i+1]-m.ratio[i])
	}
	return min(int64(r*v), value)
}

// pseudoLog2 is log2(v) to within 0.01 and increasing: the float's exponent plus a quadratic in
// its mantissa m, m + m(1−m)/3, whose slope in ln v matches across octaves, so the ratio as a
// function of it has no kinks between nodes for linear interpolation to miss. v must be a
// positive normal float.
func pseudoLog2(v float64) float64 {
	b := math.Float64bits(v)
	m := math.Float64frombits(b&(1<<52-1)|1023<<52) - 1
	return float64(int64(b>>52)-1023) + m + m*(1-m)*(1.0/3)
}

// pseudoExp2 inverts pseudoLog2.
func pseudoExp2(u float64) float64 {
	e := math.Floor(u)
	m := 2 - math.Sqrt(4-3*(u-e))
	return math.Ldexp(1+m, int(e))
}

const lnSqrt2Pi = 0.91893853320467274178 // ln √(2π)

func normCDF(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }

// logNormCDF is ln Φ(z), accurate where Φ(z) underflows (asymptotic series below z = −30).
func logNormCDF(z float64) float64 {
	if z > -30 {
		return math.Log(0.5 * math.Erfc(-z/math.Sqrt2))
	}
	z2 := z * z
	return -z2/2 - lnSqrt2Pi - math.Log(-z) + math.Log1p(-1/z2+3/(z2*z2))
}

// invMills is φ(w)/Φ(w), accurate for very negative w.
func invMills(w float64) float64 {
	if w > -30 {
		return math.Exp(-w*w/2-lnSqrt2Pi) / (0.5 * math.Erfc(-w/math.Sqrt2))
	}
	z2 := w * w
	return -w / (1 - 1/z2 + 3/(z2*z2))
}

// optimalRatio is b*/v for the bid b* maximising (v − b)·Φ((ln b − μ)/σ).
func optimalRatio(mu, sigma, v float64) float64 {
	lnv := math.Log(v)
	return math.Exp(optimalLnBid(mu, sigma, lnv, math.NaN()) - lnv)
}

// optimalLnBid solves the first-order condition ln v = q(x) for x = ln b*, where
// q(x) = x + ln(1 + σ·Φ(z)/φ(z)), z = (x − μ)/σ. q increases (the Mills ratio Φ/φ does), so the
// root is unique; safeguarded Newton from x0 (a neighbouring node's root when building a table)
// keeps a bracket and bisects whenever a step would leave it.
func optimalLnBid(mu, sigma, lnv, x0 float64) float64 {
	lnSigma := math.Log(sigma)
	// At lo, z ≤ −40 so σΦ/φ < σ/40 and q(lo) < lo + 0.1 < ln v; q(ln v) > ln v.
	lo, hi := min(lnv-1, mu-40*sigma), lnv
	x := x0
	if !(x > lo && x < hi) {
		x = (lo + hi) / 2
	}
	for range 200 {
		z := (x - mu) / sigma
		a := lnSigma + logNormCDF(z) + z*z/2 + lnSqrt2Pi // ln(σ·Φ(z)/φ(z))
		l := a
		if a <= 35 {
			l = math.Log1p(math.Exp(a))
		}
		f := x + l - lnv
		if f < 0 {
			lo = x
		} else {
			hi = x
		}
		if hi-lo < 1e-12 || f == 0 {
			break
		}
		t := 1 / (1 + math.Exp(-a)) // σR/(1+σR)
		d := 2 - t + z*t/sigma      // q'(x) = 1 + (1 + zR)/(1 + σR), R = Φ/φ
		next := x - f/d
		if !(next > lo && next < hi) {
			next = (lo + hi) / 2
		}
		if math.Abs(next-x) < 1e-13 {
			break
		}
		x = next
	}
	return x
}

// Models is an immutable set of segment models, looked up with fallback to coarser keys.
type Models struct {
	any        *SegmentModel
	byExchange map[string]*exchangeModels
	n          int
}

type exchangeModels struct {
	all      *SegmentModel
	formats  map[string]*SegmentModel
	segments map[string]*SegmentModel // by "FORMAT|INVENTORY", the form the bid path has
}

// NewModels builds a set from ms (nil entries skipped; of two models with the same key, the one
// fitted later).
func NewModels(ms ...*SegmentModel) *Models {
	s := &Models{byExchange: map[string]*exchangeModels{}}
	keep := func(slot **SegmentModel, m *SegmentModel) {
		if *slot == nil {
			s.n++
			*slot = m
		} else if m.fittedAt >= (*slot).fittedAt {
			*slot = m
		}
	}
	for _, m := range ms {
		if m == nil {
			continue
		}
		k := m.p.Key
		if k.Exchange == "" {
			keep(&s.any, m)
			continue
		}
		ex := s.byExchange[k.Exchange]
		if ex == nil {
			ex = &exchangeModels{formats: map[string]*SegmentModel{}, segments: map[string]*SegmentModel{}}
			s.byExchange[k.Exchange] = ex
		}
		switch {
		case k.Format == "":
			keep(&ex.all, m)
		case k.Inventory == "":
			slot := ex.formats[k.Format]
			keep(&slot, m)
			ex.formats[k.Format] = slot
		default:
			seg := k.Format + "|" + k.Inventory
			slot := ex.segments[seg]
			keep(&slot, m)
			ex.segments[seg] = slot
		}
	}
	return s
}

// Len is the number of models in the set.
func (s *Models) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// Lookup is the finest model for a bid on exchange in segment whatever its age, nil if none.
func (s *Models) Lookup(exchange, segment string) *SegmentModel {
	return s.lookup(exchange, segment, math.MinInt64)
}

// lookup is the finest model fitted at or after notBefore (unix nanoseconds), in fallback order.
func (s *Models) lookup(exchange, segment string, notBefore int64) *SegmentModel {
	if s == nil {
		return nil
	}
	if ex := s.byExchange[exchange]; ex != nil {
		if m := ex.segments[segment]; m != nil && m.fittedAt >= notBefore {
			return m
		}
		format := segment
		if i := strings.IndexByte(segment, '|'); i >= 0 {
			format = segment[:i]
		}
		if m := ex.formats[format]; m != nil && m.fittedAt >= notBefore {
			return m
		}
		if m := ex.all; m != nil && m.fittedAt >= notBefore {
			return m
		}
	}
	if m := s.any; m != nil && m.fittedAt >= notBefore {
		return m
	}
	return nil
}

// ShaderConfig configures a LearnedShader.
type ShaderConfig struct {
	// StaleAfter is the age past which a model is not used (a silent trainer must not leave bids
	// shaded to a market that has moved); default 30 minutes.
	StaleAfter time.Duration
	// Default is the bid/value factor where no fresh model applies, in (0, 1]; default 1 (full
	// value: a cold segment wins what it can rather than guessing low).
	Default float64
	// Explore is the share of decisions that bid a random factor in [ExploreMin, ExploreMax] of
	// the value, so the trainer keeps seeing outcomes across the curve when the market moves. 0
	// means the default 0.02; negative disables exploration; at most 0.5.
	Explore float64
	// ExploreMin, ExploreMax bound the exploration factor; defaults 0.5 and 1.
	ExploreMin, ExploreMax float64
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// withDefaults fills cfg's defaults and reports a setting that makes no sense.
func (cfg ShaderConfig) withDefaults() (ShaderConfig, error) {
	if cfg.StaleAfter < 0 {
		return cfg, fmt.Errorf("shader: negative StaleAfter %v", cfg.StaleAfter)
	}
	if cfg.StaleAfter == 0 {
		cfg.StaleAfter = 30 * time.Minute
	}
	if cfg.Default == 0 {
		cfg.Default = 1
	}
	if !(cfg.Default > 0 && cfg.Default <= 1) {
		return cfg, fmt.Errorf("shader: Default %v outside (0, 1]", cfg.Default)
	}
	switch {
	case cfg.Explore == 0:
		cfg.Explore = 0.02
	case cfg.Explore < 0:
		cfg.Explore = 0
	case !(cfg.Explore <= 0.5):
		return cfg, fmt.Errorf("shader: Explore %v above 0.5", cfg.Explore)
	}
	if cfg.ExploreMin == 0 {
		cfg.ExploreMin = 0.5
	}
	if cfg.ExploreMax == 0 {
		cfg.ExploreMax = 1
	}
	if !(cfg.ExploreMin > 0 && cfg.ExploreMin <= cfg.ExploreMax && cfg.ExploreMax <= 1) {
		return cfg, fmt.Errorf("shader: exploration range [%v, %v] not within (0, 1]", cfg.ExploreMin, cfg.ExploreMax)
	}
	return cfg, nil
}

// LearnedShader is the Shader of the learned models: the finest fresh model of the bid's segment,
// a default factor where there is none, and a share of random bids for exploration.
type LearnedShader struct {
	cfg          ShaderConfig
	staleAfter   int64
	exploreBelow uint64 // a draw's top 32 bits below this explore
	exploreLo    float64
	exploreSpan  float64
	models       atomic.Pointer[Models]
	_            [64]byte     // the clock is written now and then: keep it off the lines read always
	clock        atomic.Int64 // unix nanoseconds, as last read by a decision or Swap
	_            [56]byte
	stats        [statStripes]statStripe
}

// Counters are striped over cache lines, the stripe chosen by the decision's random draw, so cores
// deciding at once do not all write one line.
const statStripes = 16

// clockEvery: one decision in this many (a power of two) reads the clock.
const clockEvery = 32

type statStripe struct {
	shaded, explored, cold, stale atomic.Uint64
	_                             [64 - 4*8]byte
}

// ShaderStats counts a LearnedShader's decisions since it was made.
type ShaderStats struct {
	Shaded   uint64 // priced by a fresh model
	Explored uint64 // a random factor, for exploration
	Cold     uint64 // no model for the segment or any coarser key: the default
	Stale    uint64 // models there, none fresh: the default
}

// NewLearnedShader returns a shader with no models (every decision the default or exploration)
// until Swap gives it some.
func NewLearnedShader(cfg ShaderConfig) (*LearnedShader, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &LearnedShader{
		cfg:          cfg,
		staleAfter:   int64(cfg.StaleAfter),
		exploreBelow: uint64(cfg.Explore * (1 << 32)),
		exploreLo:    cfg.ExploreMin,
		exploreSpan:  cfg.ExploreMax - cfg.ExploreMin,
	}
	s.clock.Store(time.Now().UnixNano())
	return s, nil
}

// Config is the shader's configuration with defaults filled in.
func (s *LearnedShader) Config() ShaderConfig { return s.cfg }

// Swap puts ms in force for every decision from now on (nil: none) and returns the set it replaces.
func (s *LearnedShader) Swap(ms *Models) *Models {
	s.clock.Store(time.Now().UnixNano())
	return s.models.Swap(ms)
}

// Models is the set in force.
func (s *LearnedShader) Models() *Models { return s.models.Load() }

// Stats sums the decision counters.
func (s *LearnedShader) Stats() ShaderStats {
	var st ShaderStats
	for i := range s.stats {
		c := &s.stats[i]
		st.Shaded += c.shaded.Load()
		st.Explored += c.explored.Load()
		st.Cold += c.cold.Load()
		st.Stale += c.stale.Load()
	}
	return st
}

// Shade implements Shader.
func (s *LearnedShader) Shade(exchange, segment string, value, _ int64) int64 {
	if value <= 0 {
		return value
	}
	r := rand.Uint64()
	c := &s.stats[r&(statStripes-1)]
	if r>>32 < s.exploreBelow {
		// Bits 4–31 (the stripe has 0–3, the decision 32–63) are the factor.
		f := s.exploreLo + s.exploreSpan*float64(r>>4&(1<<28-1))*(1.0/(1<<28-1))
		c.explored.Add(1)
		return int64(f * float64(value))
	}
	ms := s.models.Load()
	if ms != nil {
		var now int64
		switch {
		case s.cfg.Now != nil:
			now = s.cfg.Now().UnixNano()
		case r>>4&(clockEvery-1) == 0:
			// time.Now costs more than the rest of Shade together (56 ns on the project's VM), and
			// staleness is a matter of minutes: read the clock on a random 1/clockEvery of the
			// decisions and share it. After an idle spell the first few decisions may use the old
			// time; Swap refreshes it too.
			now = time.Now().UnixNano()
			s.clock.Store(now)
		default:
			now = s.clock.Load()
		}
		if m := ms.lookup(exchange, segment, now-s.staleAfter); m != nil {
			c.shaded.Add(1)
			return m.Bid(value)
		}
		if ms.lookup(exchange, segment, math.MinInt64) != nil {
			c.stale.Add(1)
			return s.fallback(value)
		}
	}
	c.cold.Add(1)
	return s.fallback(value)
}

func (s *LearnedShader) fallback(value int64) int64 {
	if s.cfg.Default == 1 {
		return value
	}
	return int64(s.cfg.Default * float64(value))
}

// FixedShader bids a constant factor of the value: the baseline learned shading is compared with.
// Price clamps what it returns to [floor, value].
type FixedShader struct{ Factor float64 }

// Shade implements Shader.
func (f FixedShader) Shade(_, _ string, value, _ int64) int64 {
	return int64(f.Factor * float64(value))
}

// Wire format of one model on rtb.models (JSON, key = ModelKey.String()).

// ModelWireVersion is the model wire format this code writes and the only one it reads.
const ModelWireVersion = 1

type wireModel struct {
	V         int       `json:"v"`
	Exchange  string    `json:"exchange,omitempty"`
	Format    string    `json:"format,omitempty"`
	Inventory string    `json:"inventory,omitempty"`
	Mu        *float64  `json:"mu"`
	Sigma     *float64  `json:"sigma"`
	N         int       `json:"n"`
	FittedAt  time.Time `json:"fitted_at"`
}

// EncodeModel is the rtb.models message value of m.
func EncodeModel(m *SegmentModel) []byte {
	p := m.p
	b, err := json.Marshal(wireModel{V: ModelWireVersion, Exchange: p.Key.Exchange, Format: p.Key.Format,
		Inventory: p.Key.Inventory, Mu: &p.Mu, Sigma: &p.Sigma, N: p.N, FittedAt: p.FittedAt.UTC()})
	if err != nil {
		// Cannot happen: NewSegmentModel admits finite numbers and valid strings only.
		panic(fmt.Sprintf("encode model %s: %v", p.Key, err))
	}
	return b
}

// maxModelBytes bounds what DecodeModel reads: a model is about 150 bytes.
const maxModelBytes = 4096

// DecodeModel reads an rtb.models message value strictly: it comes over the network, so unknown
// fields, a missing or out-of-range parameter, another version, trailing data or an oversized
// message are errors, never a half-read model.
func DecodeModel(b []byte) (*SegmentModel, error) {
	if len(b) > maxModelBytes {
		return nil, fmt.Errorf("decode model: %d bytes, more than %d", len(b), maxModelBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w wireModel
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("decode model: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode model: data after the model")
	}
	if w.V != ModelWireVersion {
		return nil, fmt.Errorf("decode model: v=%d, this build reads v=%d", w.V, ModelWireVersion)
	}
	if w.Mu == nil || w.Sigma == nil {
		return nil, errors.New("decode model: mu or sigma missing")
	}
	m, err := NewSegmentModel(ModelParams{Key: ModelKey{w.Exchange, w.Format, w.Inventory},
		Mu: *w.Mu, Sigma: *w.Sigma, N: w.N, FittedAt: w.FittedAt})
	if err != nil {
		return nil, fmt.Errorf("decode model: %w", err)
	}
	return m, nil
}

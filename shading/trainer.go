package shading

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"rtb/auction"
	"rtb/events"
)

// TrainerConfig configures a Trainer. Zero values take the defaults.
type TrainerConfig struct {
	Brokers []string // required
	Group   string   // consumer group; default "rtb-shading"

	// Interval is how often keys with new observations are refitted and published; default 10s.
	Interval time.Duration
	// Window is the most observations kept per model key; default 5000.
	Window int
	// MaxAge is the oldest an observation may be to count; default 1h.
	MaxAge time.Duration
	// HalfLife, if set, weighs observations by 2^(−age/HalfLife), so the fit leans on the recent
	// market within the window.
	HalfLife time.Duration
	// MaxKeys bounds the model keys tracked (segments come from requests: W×H is open-ended);
	// default 10000. Observations for keys beyond it still count for their coarser keys.
	MaxKeys int
	// Fit bounds the fits (minimum observations, σ range).
	Fit auction.FitConfig

	// InferLossExchanges names the exchanges that send no loss notices (see the package comment).
	InferLossExchanges []string
	// OutcomeWait is how long a sampled bid on such an exchange waits for its win before it counts
	// as lost, and how long an outcome there is remembered so a repeat of it counts once; default 2m.
	OutcomeWait time.Duration
	// MaxPending bounds the bids and outcomes waiting for each other on those exchanges (more are
	// counted as dropped), and is how many outcomes of the other exchanges are remembered to count
	// a repeat once (older ones are forgotten, none dropped); default 1<<20.
	MaxPending int

	// DedupeWindow is passed to the events.Consumer; default its own.
	DedupeWindow int
	Registerer   prometheus.Registerer // may be nil
	Logger       *slog.Logger          // default slog.Default()
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (cfg TrainerConfig) withDefaults() (TrainerConfig, error) {
	if len(cfg.Brokers) == 0 {
		return cfg, errors.New("shading trainer: no Kafka brokers")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Interval", cfg.Interval}, {"MaxAge", cfg.MaxAge}, {"HalfLife", cfg.HalfLife}, {"OutcomeWait", cfg.OutcomeWait}} {
		if d.v < 0 {
			return cfg, fmt.Errorf("shading trainer: negative %s %v", d.name, d.v)
		}
	}
	if cfg.Window < 0 || cfg.MaxKeys < 0 || cfg.MaxPending < 0 {
		return cfg, fmt.Errorf("shading trainer: negative Window %d, MaxKeys %d or MaxPending %d", cfg.Window, cfg.MaxKeys, cfg.MaxPending)
	}
	if cfg.Group == "" {
		cfg.Group = "rtb-shading"
	}
	if cfg.Interval == 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Window == 0 {
		cfg.Window = 5000
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = time.Hour
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = 10000
	}
	if cfg.OutcomeWait == 0 {
		cfg.OutcomeWait = 2 * time.Minute
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Fit.MinObservations == 0 {
		cfg.Fit.MinObservations = 200
	}
	if cfg.Window < cfg.Fit.MinObservations {
		return cfg, fmt.Errorf("shading trainer: Window %d below the fit's MinObservations %d: nothing would ever be fitted", cfg.Window, cfg.Fit.MinObservations)
	}
	return cfg, nil
}

// observation is one outcome in a key's window.
type observation struct {
	at     int64 // unix nanoseconds
	micros int64
	kind   auction.ObservationKind
}

// window is a key's ring of recent observations.
type window struct {
	buf   []observation
	next  int  // where the next one goes once buf is full
	dirty bool // observations added since the last fit
}

func (w *window) add(o observation, size int) {
	if len(w.buf) < size {
		w.buf = append(w.buf, o)
	} else {
		w.buf[w.next] = o
		w.next = (w.next + 1) % size
	}
	w.dirty = true
}

// prune drops observations from before cutoff (the ring is reordered oldest first).
func (w *window) prune(cutoff int64) {
	if len(w.buf) == 0 || w.oldest() >= cutoff {
		return
	}
	kept := make([]observation, 0, len(w.buf))
	for i := range w.buf {
		if o := w.buf[(w.next+i)%len(w.buf)]; o.at >= cutoff {
			kept = append(kept, o)
		}
	}
	w.buf, w.next = kept, 0
}

func (w *window) oldest() int64 {
	if len(w.buf) == 0 {
		return math.MaxInt64
	}
	return w.buf[w.next%len(w.buf)].at
}

// joinKey names one bid's outcome: request, imp, campaign.
type joinKey struct{ request, imp, campaign string }

// joinEntry is what is known of one bid's outcome.
type joinEntry struct {
	expires int64
	counted bool // its observation has been recorded: anything more about it is a repeat
	// On an exchange whose losses are inferred: the sampled bid waiting for its outcome, or an
	// outcome waiting for its bid (it counts only if the bid was sampled).
	bid     *events.Event
	outcome *events.Event
}

// Trainer learns bid-shading models from auction outcomes; see the package comment.
type Trainer struct {
	cfg     TrainerConfig
	log     *slog.Logger
	infer   map[string]bool
	metrics *trainerMetrics

	mu      sync.Mutex
	windows map[auction.ModelKey]*window
	joins   map[joinKey]*joinEntry // exchanges whose losses are inferred
	// seen is the last MaxPending outcomes of exchanges that send loss notices: such an outcome is
	// complete as it comes and only its repeats must be caught, which ids alone do, in a fraction
	// of the memory and with nothing dropped at high rates.
	seen *events.IDWindow
}

// NewTrainer checks cfg and registers the trainer's metrics; Run does the work.
func NewTrainer(cfg TrainerConfig) (*Trainer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newTrainerMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("shading trainer: metrics: %w", err)
	}
	t := &Trainer{cfg: cfg, log: cfg.Logger.With("component", "shading-trainer"), infer: map[string]bool{},
		metrics: m, windows: map[auction.ModelKey]*window{}, joins: map[joinKey]*joinEntry{}, seen: events.NewIDWindow(cfg.MaxPending)}
	for _, x := range cfg.InferLossExchanges {
		t.infer[x] = true
	}
	return t, nil
}

// topics are what the trainer consumes: the bid log only where losses are inferred from it, since
// elsewhere the notices say all a bid says, and reading every sampled bid to drop it took a core's
// worth of bursts from the request path under load.
func (t *Trainer) topics() []string {
	if len(t.infer) == 0 {
		return []string{events.TopicWins, events.TopicLosses}
	}
	return []string{events.TopicWins, events.TopicLosses, events.TopicBids}
}

// Config is the trainer's configuration with defaults filled in.
func (t *Trainer) Config() TrainerConfig { return t.cfg }

// Run consumes outcomes and publishes models every Interval until ctx is done; it returns nil then,
// or an error if the consumer cannot be made or stops uncleanly.
func (t *Trainer) Run(ctx context.Context) error {
	c, err := events.NewConsumer(events.ConsumerConfig{
		Brokers: t.cfg.Brokers, Group: t.cfg.Group, Topics: t.topics(),
		DedupeWindow: t.cfg.DedupeWindow, Registerer: t.cfg.Registerer, Logger: t.cfg.Logger,
	}, func(_ context.Context, e *events.Event) error {
		t.Observe(e)
		return nil
	})
	if err != nil {
		return fmt.Errorf("shading trainer: %w", err)
	}
	w := events.NewStateWriter(t.cfg.Brokers, events.TopicModels)
	defer w.Close()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := <-done; err != nil {
				return fmt.Errorf("shading trainer: %w", err)
			}
			return nil
		case err := <-done:
			return fmt.Errorf("shading trainer: consumer stopped: %w", err)
		case <-tick.C:
		}
		models := t.Refit()
		if len(models) == 0 {
			continue
		}
		kvs := make([]events.KV, len(models))
		for i, m := range models {
			kvs[i] = events.KV{Key: m.Params().Key.String(), Value: auction.EncodeModel(m)}
		}
		// A failed write is not retried here: the keys stay fitted and are published again at
		// their next refit; until then bidders keep the previous models, which go stale if this
		// persists.
		wctx, cancel := context.WithTimeout(ctx, max(t.cfg.Interval, 5*time.Second))
		if err := w.Write(wctx, kvs...); err != nil {
			if ctx.Err() == nil {
				t.log.Warn("shading models not published", "models", len(kvs), "err", err)
			}
		} else {
			t.metrics.published.Add(float64(len(kvs)))
		}
		cancel()
	}
}

// Observe takes one event from rtb.wins, rtb.losses or rtb.bids. It is the consumer's handler and
// is safe to call concurrently with Refit.
func (t *Trainer) Observe(e *events.Event) {
	now := t.cfg.Now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	switch e.Type {
	case events.Win, events.Loss, events.Bid:
	default:
		return // bill, traffic: nothing about competitors
	}
	if e.DealID != "" {
		t.metrics.outcome("ignored").Inc()
		return
	}
	if e.Type == events.Loss && !competitiveLoss(e.Reason) {
		t.metrics.outcome("ignored").Inc()
		return
	}
	if _, ok := outcomeOf(e); !ok {
		t.metrics.outcome("invalid").Inc()
		return
	}
	if e.Type == events.Bid && !t.infer[e.Exchange] {
		return // the notices say all a bid says: remember nothing, so memory goes to outcomes
	}
	if !t.infer[e.Exchange] {
		if !t.seen.Add(outcomeID(e)) {
			t.metrics.outcome("duplicate").Inc()
			return
		}
		t.record(e, now)
		return
	}
	jk := joinKey{e.RequestID, e.ImpID, e.CampaignID}
	if e.RequestID == "" {
		jk = joinKey{request: "\x00id", imp: e.ID} // cannot be joined: dedupe by event id alone
	}
	j := t.joins[jk]
	if j != nil && j.counted {
		t.metrics.outcome("duplicate").Inc()
		return
	}
	if j == nil {
		if len(t.joins) >= t.cfg.MaxPending {
			t.metrics.outcome("dropped").Inc()
			return
		}
		j = &joinEntry{}
		t.joins[jk] = j
	}
	j.expires = now + int64(t.cfg.OutcomeWait)
	switch {
	case e.Type == events.Bid && j.outcome != nil:
		t.record(j.outcome, now)
		j.counted, j.outcome = true, nil
	case e.Type == events.Bid:
		ev := *e
		j.bid = &ev
	case j.bid != nil:
		t.record(e, now)
		j.counted, j.bid = true, nil
	default:
		ev := *e
		j.outcome = &ev
	}
}

// outcomeID names the bid an outcome is about (request, imp, campaign), so that a win and a loss
// for one bid, or a notice retried with a new id, count once; an event without a request id can
// only be named by its own id.
func outcomeID(e *events.Event) string {
	if e.RequestID == "" {
		return "\x00id\x00" + e.ID
	}
	return e.RequestID + "\x00" + e.ImpID + "\x00" + e.CampaignID
}

// competitiveLoss reports whether an OpenRTB loss reason says a competitor outbid us: 102 lost to
// a higher bid, 103 to a deal, 0 none given (taken as the common case).
func competitiveLoss(reason int) bool { return reason == 0 || reason == 102 || reason == 103 }

// outcomeOf is the observation a win or loss event makes.
func outcomeOf(e *events.Event) (auction.Observation, bool) {
	switch e.Type {
	case events.Win:
		if e.BidMicros > 0 {
			return auction.Observation{Kind: auction.Won, Micros: e.BidMicros}, true
		}
		if e.PriceMicros > 0 { // first price: the price is the bid
			return auction.Observation{Kind: auction.Won, Micros: e.PriceMicros}, true
		}
	case events.Loss:
		if e.MinToWinMicros > 0 && e.MinToWinMicros > e.BidMicros {
			return auction.Observation{Kind: auction.MinToWin, Micros: e.MinToWinMicros}, true
		}
		if e.BidMicros > 0 {
			return auction.Observation{Kind: auction.Outbid, Micros: e.BidMicros}, true
		}
	case events.Bid: // a sampled bid that saw no win: inferred loss
		if e.BidMicros > 0 {
			return auction.Observation{Kind: auction.Outbid, Micros: e.BidMicros}, true
		}
	}
	return auction.Observation{}, false
}

// record adds e's observation to the windows of its key and every coarser key. Under t.mu.
func (t *Trainer) record(e *events.Event, now int64) {
	o, ok := outcomeOf(e)
	if !ok {
		t.metrics.outcome("invalid").Inc()
		return
	}
	switch {
	case e.Type == events.Bid:
		t.metrics.outcome("inferred_loss").Inc()
	case o.Kind == auction.Won:
		t.metrics.outcome("win").Inc()
	case o.Kind == auction.MinToWin:
		t.metrics.outcome("min_to_win").Inc()
	default:
		t.metrics.outcome("outbid").Inc()
	}
	at := min(e.TS.UnixNano(), now)
	obs := observation{at: at, micros: o.Micros, kind: o.Kind}
	for k, more := auction.KeyOf(e.Exchange, e.Segment), true; more; k, more = k.Coarser() {
		if k.Valid() != nil {
			continue
		}
		w := t.windows[k]
		if w == nil {
			if len(t.windows) >= t.cfg.MaxKeys {
				t.metrics.keysDropped.Inc()
				continue
			}
			w = &window{}
			t.windows[k] = w
		}
		w.add(obs, t.cfg.Window)
	}
	t.metrics.segments.Set(float64(len(t.windows)))
}

// fitJob is one key's observations, copied out of the window for fitting without the lock.
type fitJob struct {
	key auction.ModelKey
	obs []auction.Observation
}

// Refit expires what has aged out, fits every key with new observations and returns the models
// made (keys with too few observations are skipped until they have enough).
func (t *Trainer) Refit() []*auction.SegmentModel {
	start := time.Now()
	nowT := t.cfg.Now()
	now := nowT.UnixNano()
	jobs := t.collect(now)
	var out []*auction.SegmentModel
	for _, j := range jobs {
		f, err := auction.FitLogNormal(j.obs, t.cfg.Fit)
		if err != nil {
			if !errors.Is(err, auction.ErrTooFewObservations) {
				t.metrics.fitErrors.Inc()
				t.log.Warn("shading fit failed", "key", j.key.String(), "observations", len(j.obs), "err", err)
			}
			continue
		}
		m, err := auction.NewSegmentModel(auction.ModelParams{Key: j.key, Mu: f.Mu, Sigma: f.Sigma, N: f.N, FittedAt: nowT})
		if err != nil {
			t.metrics.fitErrors.Inc()
			t.log.Warn("shading fit out of bounds", "key", j.key.String(), "err", err)
			continue
		}
		out = append(out, m)
	}
	t.metrics.refitSeconds.Observe(time.Since(start).Seconds())
	return out
}

// collect does Refit's work under the lock: expiry of joins (inferring losses) and windows, and
// copies of the dirty windows.
func (t *Trainer) collect(now int64) []fitJob {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, j := range t.joins {
		if j.expires > now {
			continue
		}
		if j.bid != nil && !j.counted {
			t.record(j.bid, now) // no win in OutcomeWait: lost
		} else if j.outcome != nil {
			t.metrics.outcome("unsampled").Inc()
		}
		delete(t.joins, k)
	}
	cutoff := now - int64(t.cfg.MaxAge)
	var jobs []fitJob
	for k, w := range t.windows {
		w.prune(cutoff)
		if len(w.buf) == 0 {
			delete(t.windows, k)
			continue
		}
		if !w.dirty || len(w.buf) < t.cfg.Fit.MinObservations {
			continue
		}
		w.dirty = false
		obs := make([]auction.Observation, len(w.buf))
		for i, o := range w.buf {
			wt := 1.0
			if t.cfg.HalfLife > 0 {
				wt = math.Exp2(-float64(now-o.at) / float64(t.cfg.HalfLife))
			}
			obs[i] = auction.Observation{Kind: o.kind, Micros: o.micros, Weight: max(wt, 1e-9)}
		}
		jobs = append(jobs, fitJob{k, obs})
	}
	t.metrics.segments.Set(float64(len(t.windows)))
	return jobs
}

// trainerMetrics: labels bounded (outcome only), names prefixed rtb_, base units.
type trainerMetrics struct {
	observations *prometheus.CounterVec
	byOutcome    map[string]prometheus.Counter
	published    prometheus.Counter
	fitErrors    prometheus.Counter
	keysDropped  prometheus.Counter
	segments     prometheus.Gauge
	refitSeconds prometheus.Histogram
}

var trainerOutcomes = []string{"win", "outbid", "min_to_win", "inferred_loss", "duplicate", "ignored", "invalid", "unsampled", "dropped"}

func newTrainerMetrics(reg prometheus.Registerer) (*trainerMetrics, error) {
	m := &trainerMetrics{
		observations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtb_shading_observations_total",
			Help: "Events taken by the shading trainer, by outcome: win, outbid, min_to_win, inferred_loss (observations); duplicate, ignored (not competitive), invalid, unsampled, dropped (not used).",
		}, []string{"outcome"}),
		byOutcome: map[string]prometheus.Counter{},
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rtb_shading_models_published_total", Help: "Models written to rtb.models.",
		}),
		fitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rtb_shading_fit_errors_total", Help: "Fits that failed with enough observations (numerical failure or parameters out of bounds).",
		}),
		keysDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rtb_shading_keys_dropped_total", Help: "Observations not kept for a model key because MaxKeys keys are tracked.",
		}),
		segments: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rtb_shading_segments", Help: "Model keys with observations in their window.",
		}),
		refitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rtb_shading_refit_duration_seconds", Help: "Time to refit every key with new observations.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
	}
	for _, o := range trainerOutcomes {
		m.byOutcome[o] = m.observations.WithLabelValues(o)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.observations, m.published, m.fitErrors, m.keysDropped, m.segments, m.refitSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *trainerMetrics) outcome(o string) prometheus.Counter { return m.byOutcome[o] }

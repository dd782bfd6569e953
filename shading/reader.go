package shading

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"rtb/auction"
	"rtb/events"
)

// ReaderConfig configures a Reader.
type ReaderConfig struct {
	Brokers []string               // required
	Shader  *auction.LearnedShader // required: receives every rebuilt set of models
	// RebuildInterval is the longest a model read waits before the set is rebuilt and swapped in;
	// models arriving meanwhile share one rebuild. Default 1s.
	RebuildInterval time.Duration
	Registerer      prometheus.Registerer // may be nil
	Logger          *slog.Logger          // default slog.Default()
}

// Reader keeps a LearnedShader's models in step with rtb.models.
type Reader struct {
	cfg   ReaderConfig
	log   *slog.Logger
	ready chan struct{}

	rejected prometheus.Counter
	loaded   prometheus.Gauge

	mu      sync.Mutex
	models  map[string]*auction.SegmentModel // by Kafka key
	dirty   bool
	badLog  time.Time // last time a rejected model was logged
	badSeen int       // rejected since then
}

// NewReader checks cfg and registers the reader's metrics (and the shader's decision counters as
// rtb_shading_decisions_total{decision}); Run does the work.
func NewReader(cfg ReaderConfig) (*Reader, error) {
	switch {
	case len(cfg.Brokers) == 0:
		return nil, errors.New("shading reader: no Kafka brokers")
	case cfg.Shader == nil:
		return nil, errors.New("shading reader: no shader")
	case cfg.RebuildInterval < 0:
		return nil, fmt.Errorf("shading reader: negative RebuildInterval %v", cfg.RebuildInterval)
	}
	if cfg.RebuildInterval == 0 {
		cfg.RebuildInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Reader{cfg: cfg, log: cfg.Logger.With("component", "shading-reader"), ready: make(chan struct{}),
		models: map[string]*auction.SegmentModel{},
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rtb_shading_models_rejected_total", Help: "Records of rtb.models that could not be read as a model (skipped).",
		}),
		loaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rtb_shading_models", Help: "Models in force in the bidder's shader, fresh or stale.",
		}),
	}
	if reg := cfg.Registerer; reg != nil {
		decisions := []struct {
			name string
			get  func(auction.ShaderStats) uint64
		}{
			{"shaded", func(s auction.ShaderStats) uint64 { return s.Shaded }},
			{"explored", func(s auction.ShaderStats) uint64 { return s.Explored }},
			{"cold", func(s auction.ShaderStats) uint64 { return s.Cold }},
			{"stale", func(s auction.ShaderStats) uint64 { return s.Stale }},
		}
		cs := []prometheus.Collector{r.rejected, r.loaded}
		for _, d := range decisions {
			cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "rtb_shading_decisions_total",
				Help:        "First-price bids shaded by a fresh model (shaded), by a random factor (explored), or at the default for want of a model (cold) or of a fresh one (stale).",
				ConstLabels: prometheus.Labels{"decision": d.name},
			}, func() float64 { return float64(d.get(cfg.Shader.Stats())) }))
		}
		for _, c := range cs {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("shading reader: metrics: %w", err)
			}
		}
	}
	return r, nil
}

// Ready is closed once the models on rtb.models when Run started are in the shader.
func (r *Reader) Ready() <-chan struct{} { return r.ready }

// Run follows rtb.models until ctx is done; it returns nil then, or an error if called twice.
func (r *Reader) Run(ctx context.Context) error {
	sr := events.NewStateReader(r.cfg.Brokers, events.TopicModels, r.apply)
	done := make(chan error, 1)
	go func() { done <- sr.Run(ctx) }()
	tick := time.NewTicker(r.cfg.RebuildInterval)
	defer tick.Stop()
	srReady := sr.Ready()
	for {
		select {
		case <-ctx.Done():
			return <-done
		case err := <-done:
			if err != nil {
				return fmt.Errorf("shading reader: %w", err)
			}
			return nil
		case <-srReady:
			srReady = nil
			r.rebuild()
			close(r.ready)
			r.log.Info("shading models loaded", "models", r.cfg.Shader.Models().Len())
		case <-tick.C:
			r.rebuild()
		}
	}
}

// apply takes one record of rtb.models (the StateReader's callback).
func (r *Reader) apply(key string, value []byte) {
	var m *auction.SegmentModel
	var err error
	if value != nil {
		m, err = auction.DecodeModel(value)
		if err == nil && m.Params().Key.String() != key {
			err = fmt.Errorf("model for %q under key %q", m.Params().Key.String(), key)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.rejected.Inc()
		// A bad writer could fill the log: one line a minute, with the count since.
		if r.badSeen++; time.Since(r.badLog) >= time.Minute {
			r.log.Warn("unreadable shading model skipped", "key", key, "err", err, "rejected", r.badSeen)
			r.badLog, r.badSeen = time.Now(), 0
		}
		return
	}
	if m == nil {
		delete(r.models, key)
	} else {
		r.models[key] = m
	}
	r.dirty = true
}

// rebuild swaps a new set into the shader if models came or went since the last.
func (r *Reader) rebuild() {
	r.mu.Lock()
	if !r.dirty {
		r.mu.Unlock()
		return
	}
	ms := make([]*auction.SegmentModel, 0, len(r.models))
	for _, m := range r.models {
		ms = append(ms, m)
	}
	r.dirty = false
	r.mu.Unlock()
	set := auction.NewModels(ms...)
	r.cfg.Shader.Swap(set)
	r.loaded.Set(float64(set.Len()))
}

package features

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"rtb/events"
)

// UpdaterConfig configures an Updater.
type UpdaterConfig struct {
	Brokers []string
	Caps    *Caps // may be nil: no frequency caps
	CTRs    *CTRs // may be nil: no CTR estimates
	// CapWindow gives a campaign's cap window; ok false (or a window <= 0) means uncapped, and
	// its impressions are not stored in Caps. It is called on the Updater's goroutine, once per
	// impression, with the campaigns in force then: a campaign that becomes capped is capped from
	// the impressions read after that (its earlier ones count again after a restart).
	CapWindow func(campaignID string) (time.Duration, bool)
	// Lookback is how far back Run starts reading, so that a restarted bidder rebuilds caps and
	// CTRs; default 24h. It should be at least the longest cap window. Events with a ts older
	// than Run's start less Lookback are skipped.
	Lookback time.Duration
	// DedupeWindow is how many event ids are remembered (see events.FollowConfig); default
	// events' default.
	DedupeWindow int
	// FlushEvery is how often keys new to Caps and CTRs are made visible to the request path
	// when events trickle in; default 100 ms.
	FlushEvery time.Duration

	Registerer prometheus.Registerer // may be nil; one Updater per registry
	Logger     *slog.Logger          // default slog.Default()
}

// Updater feeds Caps and CTRs from impression and click events: every bidder runs one and reads
// every partition of rtb.impressions and rtb.clicks (fan-out, no consumer group), first from
// now − Lookback, then as they come. Each event id counts once (within the dedupe window).
type Updater struct {
	cfg      UpdaterConfig
	follower *events.Follower
	log      *slog.Logger
	ready    chan struct{}
	from     time.Time // set by the follower's From, read on the follower's goroutine only

	applied                                 *prometheus.CounterVec
	ignored                                 *prometheus.CounterVec
	delay                                   prometheus.Histogram
	collector                               prometheus.Collector
	imps, clicks, tooOld, noUser, otherType prometheus.Counter
	running                                 atomic.Bool
}

// NewUpdater checks cfg and registers its metrics; Run does the work.
func NewUpdater(cfg UpdaterConfig) (*Updater, error) {
	switch {
	case cfg.Caps == nil && cfg.CTRs == nil:
		return nil, errors.New("features updater: neither Caps nor CTRs to update")
	case cfg.Caps != nil && cfg.CapWindow == nil:
		return nil, errors.New("features updater: Caps without CapWindow")
	case cfg.Lookback < 0:
		return nil, fmt.Errorf("features updater: Lookback %v negative", cfg.Lookback)
	case cfg.FlushEvery < 0:
		return nil, fmt.Errorf("features updater: FlushEvery %v negative", cfg.FlushEvery)
	}
	if cfg.Lookback == 0 {
		cfg.Lookback = 24 * time.Hour
	}
	if cfg.FlushEvery == 0 {
		cfg.FlushEvery = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	u := &Updater{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "features-updater"),
		ready: make(chan struct{}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rtb_features_events_total",
			Help: "Impression and click events applied to frequency caps and CTR estimates (a restart applies its lookback again)."},
			[]string{"type"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rtb_features_events_ignored_total",
			Help: "Events read but not applied: reason too_old (before the lookback), no_user (an impression of a capped campaign without a valid user key), other_type."},
			[]string{"reason"}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rtb_features_event_delay_seconds",
			Help:    "From an event's ts to its being applied, for events read after catching up: frequency caps' PendingFor must cover bid-to-impression plus this.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300}}),
	}
	u.imps = u.applied.WithLabelValues(string(events.Imp))
	u.clicks = u.applied.WithLabelValues(string(events.Click))
	u.tooOld = u.ignored.WithLabelValues("too_old")
	u.noUser = u.ignored.WithLabelValues("no_user")
	u.otherType = u.ignored.WithLabelValues("other_type")
	u.collector = &updaterCollector{caps: cfg.Caps, ctrs: cfg.CTRs}
	follower, err := events.NewFollower(events.FollowConfig{
		Brokers:      cfg.Brokers,
		Topics:       []string{events.TopicImpressions, events.TopicClicks},
		Name:         "features",
		From:         func() time.Time { u.from = time.Now().Add(-cfg.Lookback); return u.from },
		DedupeWindow: cfg.DedupeWindow,
		Registerer:   cfg.Registerer,
		Logger:       cfg.Logger,
	}, u.handle)
	if err != nil {
		return nil, fmt.Errorf("features updater: %w", err)
	}
	u.follower = follower
	if reg := cfg.Registerer; reg != nil {
		for _, c := range []prometheus.Collector{u.applied, u.ignored, u.delay, u.collector} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("features updater: metrics: %w", err)
			}
		}
	}
	return u, nil
}

// Ready is closed once the events since now − Lookback (as of Run's start) are applied and
// visible to the request path: a bidder that waits for it before taking traffic caps as well as
// one that never stopped.
func (u *Updater) Ready() <-chan struct{} { return u.ready }

// Run reads events until ctx is done and returns nil then; an error only if called twice.
func (u *Updater) Run(ctx context.Context) error {
	if !u.running.CompareAndSwap(false, true) {
		return errors.New("features updater: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		// Flushing from here, not per event: the handler does not know where a batch of the
		// backlog ends, and a key's first event must become visible even if no other follows.
		t := time.NewTicker(u.cfg.FlushEvery)
		defer t.Stop()
		ready := u.follower.Ready()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ready:
				u.flush()
				close(u.ready)
				ready = nil
			case <-t.C:
				u.flush()
			}
		}
	})
	return u.follower.Run(ctx)
}

func (u *Updater) flush() {
	u.cfg.Caps.Wait()
	u.cfg.CTRs.Flush()
}

// handle applies one event (on the follower's goroutine).
func (u *Updater) handle(e *events.Event) {
	if e.TS.Before(u.from) {
		u.tooOld.Inc()
		return
	}
	switch e.Type {
	case events.Imp:
		u.imps.Inc()
		u.cfg.CTRs.Impression(e.CampaignID, e.Segment)
		if u.cfg.Caps != nil {
			if w, ok := u.cfg.CapWindow(e.CampaignID); ok && w > 0 {
				if user, ok := ParseUserKey(e.User); ok {
					u.cfg.Caps.Impression(user, e.CampaignID, w, e.TS)
				} else {
					u.noUser.Inc()
				}
			}
		}
	case events.Click:
		u.clicks.Inc()
		u.cfg.CTRs.Click(e.CampaignID, e.Segment)
	default:
		u.otherType.Inc()
		return
	}
	if isClosed(u.ready) {
		u.delay.Observe(max(time.Since(e.TS).Seconds(), 0))
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// ParseUserKey reads a user key as events carry it: 16 lowercase hex digits (UserKey's value).
// "" and anything else, and the key 0, are not a user.
func ParseUserKey(s string) (uint64, bool) {
	if len(s) != 16 {
		return 0, false
	}
	var k uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			k = k<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			k = k<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return k, k != 0
}

// updaterCollector exports the counters of Caps and CTRs at scrape time.
type updaterCollector struct {
	caps *Caps
	ctrs *CTRs
}

var (
	descCapsNotAdmitted = prometheus.NewDesc("rtb_features_caps_not_admitted_total",
		"Frequency-cap windows the cache refused or dropped (its MaxCost is too small): those users may see the campaign again.", nil, nil)
	descCapsOverflow = prometheus.NewDesc("rtb_features_caps_pending_overflow_total",
		"Bid reservations that found no free slot and went to the count-min sketch (raise PendingSlots).", nil, nil)
	descCTRKeys = prometheus.NewDesc("rtb_features_ctr_keys",
		"Keys of the CTR estimates, by level (campaign, segment).", []string{"level"}, nil)
	descCTRDropped = prometheus.NewDesc("rtb_features_ctr_dropped_total",
		"Events whose campaign or campaign × segment was beyond the CTR estimates' bounds.", nil, nil)
)

func (c *updaterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descCapsNotAdmitted
	ch <- descCapsOverflow
	ch <- descCTRKeys
	ch <- descCTRDropped
}

func (c *updaterCollector) Collect(ch chan<- prometheus.Metric) {
	cs := c.caps.Stats()
	ch <- prometheus.MustNewConstMetric(descCapsNotAdmitted, prometheus.CounterValue, float64(cs.NotAdmitted))
	ch <- prometheus.MustNewConstMetric(descCapsOverflow, prometheus.CounterValue, float64(cs.Overflowed))
	ts := c.ctrs.Stats()
	ch <- prometheus.MustNewConstMetric(descCTRKeys, prometheus.GaugeValue, float64(ts.Campaigns), "campaign")
	ch <- prometheus.MustNewConstMetric(descCTRKeys, prometheus.GaugeValue, float64(ts.Segments), "segment")
	ch <- prometheus.MustNewConstMetric(descCTRDropped, prometheus.CounterValue, float64(ts.DroppedKeys))
}

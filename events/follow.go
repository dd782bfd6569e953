// The fan-out side of the event backbone: every process reads everything. Why it is built the way
// it is:
//
// Some state must be the same in every bidder, e.g. frequency caps: an impression won by one
// bidder caps the user in all of them. A consumer group would split the partitions among bidders,
// so each would see a share of the impressions; a Follower joins no group and reads every
// partition of its topics, like the StateReader does for compacted topics. It commits nothing:
// its state lives in memory and is rebuilt on start by reading back from a point in time (From),
// found per partition with Kafka's ListOffsets by timestamp, as the Replayer does.
//
// Poison messages are counted and skipped, not dead-lettered: with N bidders following the same
// topics, each poison message would be dead-lettered N times; the topics' group consumers (pacer)
// already dead-letter it once.
//
// Dedupe is per partition (a retried notice has the event's key, the campaign, so both copies land
// on one partition), for the Replayer's reason: whether a retry is caught then depends only on the
// partition's own sequence, not on how partitions interleave, so two followers reading the same
// log skip the same events and end with the same state.

package events

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// FollowConfig configures a Follower.
type FollowConfig struct {
	Brokers []string
	Topics  []string // event topics, each read in full (every partition)
	// Name is the value of the "follower" label of its metrics (e.g. "features"); default
	// "follower". Followers sharing a registry need distinct names for their gauges to mean much.
	Name string
	// From is asked once, when Run starts: each partition is read from the first offset whose
	// (producer) timestamp is at or after From(); a partition with no such message is read from its
	// end. Nil or a zero time reads from the beginning. As with ReplayConfig.From, events with an
	// earlier Event.TS can come (spilled events written late): the handler filters by TS.
	From func() time.Time
	// DedupeWindow is how many event ids are remembered, shared out over the partitions of Topics;
	// default 1<<20 (about 48 MiB when full, taken as ids arrive).
	DedupeWindow int

	Registerer prometheus.Registerer // may be nil
	Logger     *slog.Logger          // default slog.Default()
}

// Follower reads every partition of its topics, without a consumer group, from a point in time
// on, and calls its handler once per event id (within the dedupe window).
type Follower struct {
	cfg     FollowConfig
	h       func(*Event)
	log     *slog.Logger
	vecs    *followVecs
	metrics map[string]*followTopicMetrics
	ready   chan struct{}
	running atomic.Bool
}

// followRefresh is how often a Follower looks for partitions added to its topics.
const followRefresh = 30 * time.Second

// followBadLogEvery bounds the log lines about undecodable messages.
const followBadLogEvery = time.Minute

// NewFollower checks cfg and registers the follower's metrics; Run does the work. h is called from
// one goroutine at a time, each partition's events in offset order; the event is h's to keep.
func NewFollower(cfg FollowConfig, h func(*Event)) (*Follower, error) {
	switch {
	case h == nil:
		return nil, errors.New("new follower: nil handler")
	case len(cfg.Brokers) == 0:
		return nil, errors.New("new follower: no brokers")
	case len(cfg.Topics) == 0:
		return nil, errors.New("new follower: no topics")
	}
	seen := map[string]bool{}
	for _, t := range cfg.Topics {
		if t == "" || seen[t] {
			return nil, fmt.Errorf("new follower: topic %q empty or repeated", t)
		}
		seen[t] = true
	}
	if cfg.Name == "" {
		cfg.Name = "follower"
	}
	if cfg.DedupeWindow <= 0 {
		cfg.DedupeWindow = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Topics = slices.Clone(cfg.Topics)
	cfg.Brokers = slices.Clone(cfg.Brokers)
	vecs, err := registerFollowVecs(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("new follower %s: metrics: %w", cfg.Name, err)
	}
	return &Follower{
		cfg:     cfg,
		h:       h,
		log:     cfg.Logger.With("component", "follower", "follower", cfg.Name),
		vecs:    vecs,
		metrics: map[string]*followTopicMetrics{},
		ready:   make(chan struct{}),
	}, nil
}

// Ready is closed once every partition has been read up to the end it had when Run started: the
// handler has then seen the backlog since From.
func (f *Follower) Ready() <-chan struct{} { return f.ready }

// followPart is one partition being followed.
type followPart struct {
	tp      topicPartition
	target  int64 // the end at start: caught up once read up to here
	next    int64
	lag     int64
	pending bool // not yet caught up
	window  *IDWindow
}

// followItem is one message, decoded on its partition's fetch goroutine.
type followItem struct {
	ev     Event
	err    error
	offset int64
}

// Run follows the topics until ctx is done; it returns nil then (an error only if called twice).
func (f *Follower) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return fmt.Errorf("follower %s: Run called twice", f.cfg.Name)
	}
	transport := &kafka.Transport{DialTimeout: 5 * time.Second, MetadataTTL: 5 * time.Second}
	defer transport.CloseIdleConnections()
	cl := &kafka.Client{Addr: kafka.TCP(f.cfg.Brokers...), Timeout: replayRequestTimeout, Transport: transport}

	t0 := time.Now()
	var from time.Time
	if f.cfg.From != nil {
		from = f.cfg.From()
	}
	var parts []*followPart
	out := consumerOutage{log: f.log, what: "follower start offsets", level: slog.LevelWarn}
	if !out.retry(ctx, func() (err error) { parts, err = f.plan(ctx, cl, nil, from); return err }) {
		return nil
	}

	items := make(chan fetched[followItem], 2*len(parts))
	var wg sync.WaitGroup
	defer wg.Wait()
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	byTP := map[topicPartition]*followPart{}
	var backlog int64
	remaining := 0
	start := func(p *followPart) {
		byTP[p.tp] = p
		if p.pending {
			remaining++
		}
		backlog += p.lag
		wg.Go(func() { fetchLoop(fctx, cl, f.log, p.tp, p.next, items, fetchOptions{}, f.convert) })
	}
	for _, p := range parts {
		start(p)
	}
	caughtUp := f.vecs.caughtUp.WithLabelValues(f.cfg.Name)
	caughtUp.Set(0)
	f.log.Info("follower started", "topics", f.cfg.Topics, "partitions", len(parts), "from", from, "backlog", backlog)
	var handled int64
	readyIf := func() {
		if remaining > 0 {
			return
		}
		select {
		case <-f.ready:
		default:
			caughtUp.Set(1)
			f.log.Info("follower caught up", "events", handled, "took", time.Since(t0).Round(time.Millisecond))
			close(f.ready)
		}
	}
	readyIf()
	setLag := func(topic string) {
		var n int64
		for _, p := range byTP {
			if p.tp.topic == topic {
				n += p.lag
			}
		}
		f.topicMetrics(topic).lag.Set(float64(n))
	}

	var bad rateLog
	refresh := time.NewTicker(followRefresh)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-items:
			p := byTP[b.tp]
			tm := f.topicMetrics(b.tp.topic)
			for i := range b.items {
				it := &b.items[i]
				switch {
				case it.err != nil:
					tm.undecodable.Inc()
					bad.warn(f.log, followBadLogEvery, "undecodable message skipped", "topic", b.tp.topic, "partition", b.tp.partition, "offset", it.offset, "err", it.err)
				case !p.window.Add(it.ev.ID):
					tm.duplicates.Inc()
				default:
					f.h(&it.ev)
					tm.events.Inc()
					handled++
				}
			}
			p.next = b.next
			p.lag = max(b.hwm-b.next, 0)
			setLag(b.tp.topic)
			if p.pending && (p.next >= p.target || b.idle) {
				p.pending = false
				remaining--
				readyIf()
			}
		case <-refresh.C:
			// Partitions added to a topic are read from their beginning: all of their messages
			// are younger than the partition, so younger than From at most by the time it took
			// to notice them.
			added, err := f.plan(ctx, cl, byTP, time.Time{})
			if err != nil {
				if ctx.Err() == nil {
					f.log.Debug("follower partition refresh failed", "err", err)
				}
				continue
			}
			for _, p := range added {
				f.log.Info("follower partition added", "topic", p.tp.topic, "partition", p.tp.partition)
				p.pending = false // Ready is about the partitions there were at start
				start(p)
			}
		}
	}
}

// convert decodes one message; an event on a topic its type does not belong to is refused too.
func (f *Follower) convert(m *kafka.Message) followItem {
	e, err := decodeOnTopic(m)
	return followItem{ev: e, err: err, offset: m.Offset}
}

// plan lists the partitions of the topics that are not in known, with where to start each: at the
// first offset at or after from (zero: the first offset) and the end at the time of asking.
func (f *Follower) plan(ctx context.Context, cl *kafka.Client, known map[topicPartition]*followPart, from time.Time) ([]*followPart, error) {
	ctx, cancel := context.WithTimeout(ctx, replayRequestTimeout)
	defer cancel()
	counts, err := topicPartitionCounts(ctx, cl, f.cfg.Topics)
	if err != nil {
		return nil, err
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	todo := map[string][]int{}
	for _, t := range f.cfg.Topics {
		for p := range counts[t] {
			if _, ok := known[topicPartition{t, p}]; !ok {
				todo[t] = append(todo[t], p)
			}
		}
	}
	ranges, err := partitionRanges(ctx, cl, todo, from)
	if err != nil {
		return nil, err
	}
	window := max(f.cfg.DedupeWindow/max(total, 1), 1)
	parts := make([]*followPart, 0, len(ranges))
	for tp, r := range ranges {
		parts = append(parts, &followPart{tp: tp, target: r.end, next: r.start, lag: r.end - r.start, pending: r.start < r.end, window: NewIDWindow(window)})
	}
	slices.SortFunc(parts, func(a, b *followPart) int {
		return cmp.Or(cmp.Compare(a.tp.topic, b.tp.topic), cmp.Compare(a.tp.partition, b.tp.partition))
	})
	return parts, nil
}

// Metrics. Label values are bounded: topic and follower name only.

type followTopicMetrics struct {
	events, duplicates, undecodable prometheus.Counter
	lag                             prometheus.Gauge
}

// topicMetrics is topic's metrics, made on first use (by Run's goroutine only).
func (f *Follower) topicMetrics(topic string) *followTopicMetrics {
	tm := f.metrics[topic]
	if tm == nil {
		tm = &followTopicMetrics{
			events:      f.vecs.events.WithLabelValues(topic, f.cfg.Name),
			duplicates:  f.vecs.duplicates.WithLabelValues(topic, f.cfg.Name),
			undecodable: f.vecs.undecodable.WithLabelValues(topic, f.cfg.Name),
			lag:         f.vecs.lag.WithLabelValues(topic, f.cfg.Name),
		}
		f.metrics[topic] = tm
	}
	return tm
}

type followVecs struct {
	events, duplicates, undecodable *prometheus.CounterVec
	lag, caughtUp                   *prometheus.GaugeVec
}

// registerFollowVecs makes the follower metric vectors and registers them on reg; followers
// sharing a registry share the vectors (as consumers do, consumerRegister).
func registerFollowVecs(reg prometheus.Registerer) (*followVecs, error) {
	labels := []string{"topic", "follower"}
	v := &followVecs{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rtb_follower_events_total",
			Help: "Events handed to the follower's handler (a restart counts its backlog again)."}, labels),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rtb_follower_duplicates_total",
			Help: "Events skipped because their id was seen recently on the same partition (a retried notice)."}, labels),
		undecodable: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rtb_follower_undecodable_total",
			Help: "Messages skipped because they are not events of the topic (not dead-lettered: group consumers do that)."}, labels),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rtb_follower_lag",
			Help: "Messages on the topic not yet read by this follower (high-water marks less positions, summed)."}, labels),
		caughtUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rtb_follower_caught_up",
			Help: "1 once the follower has read the backlog it found at start, else 0."}, []string{"follower"}),
	}
	if reg == nil {
		return v, nil
	}
	var err error
	for _, c := range []**prometheus.CounterVec{&v.events, &v.duplicates, &v.undecodable} {
		if *c, err = consumerRegister(reg, *c); err != nil {
			return nil, err
		}
	}
	for _, g := range []**prometheus.GaugeVec{&v.lag, &v.caughtUp} {
		if *g, err = consumerRegister(reg, *g); err != nil {
			return nil, err
		}
	}
	return v, nil
}

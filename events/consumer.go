// The consumer side of the event backbone. Why it is built the way it is:
//
// One kafka-go Reader per Consumer, over all of its topics (GroupTopics), not one Reader per topic.
// Every Reader is a member of the group, and every member that joins or leaves stops the whole group
// for a rebalance; one member per Consumer means one rebalance when a process starts or stops, not
// one per topic. It also means the handler runs on one goroutine, so handlers and the dedupe window
// need no locks and each partition's order (one campaign's events) is kept. What one Reader cannot
// give per topic — lag — is computed here from the group's committed offsets.
//
// Commits are at-least-once: an offset is committed only once its event has been handled, skipped
// as a duplicate, or acknowledged by the dead-letter topic. Commits use kafka-go's synchronous
// commit, batched here (at most every CommitInterval, and whenever the stream goes idle or the
// handler is being retried), so a round trip per message does not cap throughput, and so a failed
// commit is seen and retried rather than logged and dropped inside kafka-go's interval mode. Losing
// a commit costs a redelivery, never an event. On a clean stop the event in hand is finished (the
// handler's context outlives the Run context by a grace period), everything handled is committed,
// and then the Reader is closed, which leaves the group so the partitions move at once instead of
// after a session timeout.
//
// Dedupe exists for the exchange that retries a notice: the same event id produced twice, at two
// offsets of one partition (the key is the campaign, so both copies land together). Inside one
// process the window catches it. Across a restart or rebalance the new owner of a partition starts
// at the committed offset with an empty window, and a retry whose first copy lies just before that
// offset would count twice. So when a consumer takes up a partition — its first message from it, or
// a jump in offsets, which is how a reassignment shows through kafka-go — it first reads back up to
// DedupeWarmup events BEFORE that offset and puts their ids in the window without handling them.
// It never pre-loads the uncommitted tail after that offset: after a crash between handling and
// commit, those events' effects died with the process that handled them (handlers keep in-memory
// state), so handling them again is what rebuilds that state; marking them seen would lose them.
// The committed offset is the line between "reflected in what survived" and "to be redone".
// A duplicate further apart than the window is handled twice: the window is bounded on purpose.
//
// Group timeouts (see readerConfig): heartbeats every second so a member notices a rebalance within
// a second; a 6 s session timeout, the smallest Kafka and kfake accept by default
// (group.min.session.timeout.ms), so a crashed member's partitions move within about 6 s; a 10 s
// rebalance timeout, ample for kafka-go members, which rejoin from a background goroutine within
// about HeartbeatInterval + MaxWait whatever the handler is doing; and a 500 ms fetch MaxWait,
// because a kafka-go fetch in flight is not interruptible and bounds how fast a member can leave
// or rejoin.
//
// A partition revoked while its event is being retried is not abandoned: kafka-go gives no
// revocation signal that is safe to act on, and dropping the event would be worse than the new
// owner and this member both handling it (at-least-once allows the duplicate; it forbids the loss).

package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// Handler processes one event. A nil error means done (the offset may be committed). A non-nil
// error is transient: the consumer retries the same event with backoff and does not move past it.
// A Consumer calls its handler from one goroutine at a time. The event is the handler's to keep.
type Handler func(ctx context.Context, e *Event) error

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	Brokers []string
	Group   string   // consumer group id (required)
	Topics  []string // required

	// DedupeWindow is how many recent event ids are remembered per consumer; default 1<<20 (about
	// 48 MiB when full, taken as ids arrive).
	DedupeWindow int
	// DedupeWarmup is how many events per partition are read back (not handled) before the offset
	// a consumer takes a partition up at, to prime the window. Default: DedupeWindow divided by the
	// number of partitions of Topics. Negative: no warm-up.
	DedupeWarmup int

	// CommitInterval is the longest a handled event waits to be committed; default 1s.
	CommitInterval time.Duration
	// LagInterval is how often rtb_consumer_lag is refreshed; default 10s.
	LagInterval time.Duration

	Registerer prometheus.Registerer // may be nil
	Logger     *slog.Logger          // default slog.Default()
}

// Consumer reads events from Kafka as a member of a consumer group, at least once, skipping event
// ids it has seen recently, dead-lettering messages it cannot read, and exporting its lag.
type Consumer struct {
	cfg     ConsumerConfig
	h       Handler
	log     *slog.Logger
	metrics map[string]*topicMetrics
	vecs    *consumerVecs
	window  *IDWindow
	running atomic.Bool

	// Run's state, used by Run's goroutine only.
	reader     *kafka.Reader
	dlq        *kafka.Writer
	client     *kafka.Client
	pending    map[topicPartition]kafka.Message // last done message per partition, not yet committed
	next       map[topicPartition]int64         // offset expected next, per partition
	runFrom    map[topicPartition]int64         // ids from here to next are in the window (or were)
	commitBuf  []kafka.Message
	lastCommit time.Time
	dlqLog     deadLetterLog

	partitions atomic.Int64 // partitions across Topics, as last seen by the lag loop

	fetchOut, handlerOut, dlqOut, commitOut, lagOut consumerOutage
}

type topicPartition struct {
	topic     string
	partition int
}

// Timings; see the comment at the top of this file.
const (
	consumerHeartbeat        = time.Second
	consumerSessionTimeout   = 6 * time.Second
	consumerRebalanceTimeout = 10 * time.Second
	consumerMaxWait          = 500 * time.Millisecond
	consumerHandlerGrace     = 10 * time.Second // the event in hand may take this long after ctx ends
	consumerCommitTimeout    = 10 * time.Second
	consumerWarmupTimeout    = 30 * time.Second
	consumerBackoffMin       = 50 * time.Millisecond
	consumerBackoffMax       = 5 * time.Second
	consumerDLQLogEvery      = time.Minute
)

// checkGroupMember checks what every group member (Consumer, Replayer) needs: a handler, a group id,
// distinct topics and brokers.
func checkGroupMember(kind string, nilHandler bool, group string, topics, brokers []string) error {
	switch {
	case nilHandler:
		return fmt.Errorf("new %s: nil handler", kind)
	case group == "":
		return fmt.Errorf("new %s: no group id", kind)
	case len(topics) == 0:
		return fmt.Errorf("new %s %s: no topics", kind, group)
	case len(brokers) == 0:
		return fmt.Errorf("new %s %s: no brokers", kind, group)
	}
	seen := map[string]bool{}
	for _, t := range topics {
		if t == "" || seen[t] {
			return fmt.Errorf("new %s %s: empty or repeated topic %q", kind, group, t)
		}
		seen[t] = true
	}
	return nil
}

// NewChecker is a consumer that only dead-letters: it reads topics no other consumer group reads
// (rtb.impressions and rtb.clicks are read by every bidder's follower, which can only skip what it
// cannot read, and would each do so again on every start), so that a poison message on them still
// ends in TopicDLQ with its reason, once per cluster. Its events change nothing.
func NewChecker(cfg ConsumerConfig) (*Consumer, error) {
	return NewConsumer(cfg, func(context.Context, *Event) error { return nil })
}

// NewConsumer checks cfg and registers the consumer's metrics; Run does the work.
func NewConsumer(cfg ConsumerConfig, h Handler) (*Consumer, error) {
	if err := checkGroupMember("consumer", h == nil, cfg.Group, cfg.Topics, cfg.Brokers); err != nil {
		return nil, err
	}
	if cfg.DedupeWindow <= 0 {
		cfg.DedupeWindow = 1 << 20
	}
	if cfg.CommitInterval <= 0 {
		cfg.CommitInterval = time.Second
	}
	if cfg.LagInterval <= 0 {
		cfg.LagInterval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Topics = append([]string(nil), cfg.Topics...)
	cfg.Brokers = append([]string(nil), cfg.Brokers...)
	vecs, err := registerConsumerVecs(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("new consumer %s: metrics: %w", cfg.Group, err)
	}
	log := cfg.Logger.With("group", cfg.Group)
	c := &Consumer{
		cfg:     cfg,
		h:       h,
		log:     log,
		vecs:    vecs,
		metrics: make(map[string]*topicMetrics, len(cfg.Topics)),
		window:  NewIDWindow(cfg.DedupeWindow),
		pending: map[topicPartition]kafka.Message{},
		next:    map[topicPartition]int64{},
		runFrom: map[topicPartition]int64{},
	}
	for _, t := range cfg.Topics {
		c.metrics[t] = vecs.forTopic(t, cfg.Group)
	}
	c.fetchOut = consumerOutage{log: log, what: "fetch", level: slog.LevelWarn}
	c.handlerOut = consumerOutage{log: log, what: "handler", level: slog.LevelWarn}
	c.dlqOut = consumerOutage{log: log, what: "dead-letter write", level: slog.LevelWarn}
	c.commitOut = consumerOutage{log: log, what: "offset commit", level: slog.LevelWarn}
	c.lagOut = consumerOutage{log: log, what: "lag refresh", level: slog.LevelInfo} // the fetch outage says it louder
	return c, nil
}

func (c *Consumer) readerConfig() kafka.ReaderConfig {
	errLog := c.log.With("component", "kafka-go")
	logf := func(format string, args ...any) {
		if errLog.Enabled(context.Background(), slog.LevelDebug) {
			errLog.Debug(fmt.Sprintf(format, args...))
		}
	}
	return kafka.ReaderConfig{
		Brokers:               c.cfg.Brokers,
		GroupID:               c.cfg.Group,
		GroupTopics:           c.cfg.Topics,
		StartOffset:           kafka.FirstOffset, // a new group reads everything there is
		MinBytes:              1,
		MaxBytes:              8 << 20,
		MaxWait:               consumerMaxWait,
		HeartbeatInterval:     consumerHeartbeat,
		SessionTimeout:        consumerSessionTimeout,
		RebalanceTimeout:      consumerRebalanceTimeout,
		JoinGroupBackoff:      time.Second,
		WatchPartitionChanges: true, // partitions added to a topic get consumers
		CommitInterval:        0,    // synchronous; batched by the Consumer
		ReadBackoffMin:        consumerBackoffMin,
		ReadBackoffMax:        time.Second,
		// kafka-go logs every retry; keep those for debugging and report outages ourselves.
		ErrorLogger: kafka.LoggerFunc(logf),
	}
}

// Run consumes until ctx is done, then finishes the event in hand, commits what was processed and
// leaves the group. It returns nil on a clean stop; an error means the final commit failed (those
// events will be delivered again) or Run was called twice.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return fmt.Errorf("consumer %s: Run called twice", c.cfg.Group)
	}
	transport := &kafka.Transport{DialTimeout: 5 * time.Second, MetadataTTL: 5 * time.Second}
	defer transport.CloseIdleConnections()
	c.client = &kafka.Client{Addr: kafka.TCP(c.cfg.Brokers...), Timeout: 10 * time.Second, Transport: transport}
	c.dlq = newDLQWriter(c.cfg.Brokers, transport)
	c.reader = kafka.NewReader(c.readerConfig())
	c.lastCommit = time.Now()

	// The event in hand gets consumerHandlerGrace after ctx ends to finish.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(consumerHandlerGrace, hcancel) })
	defer stopGrace()

	lagCtx, stopLag := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { c.lagLoop(lagCtx) })

	c.log.Info("consumer started", "topics", c.cfg.Topics, "brokers", c.cfg.Brokers)
	for attempt := 0; ctx.Err() == nil; {
		m, err := c.fetch(ctx)
		if ctx.Err() != nil {
			break // a message fetched as ctx ended is left for whoever has the partition next
		}
		if err != nil {
			c.fetchOut.fail(err)
			c.pause(ctx, consumerBackoff(attempt))
			attempt++
			continue
		}
		attempt = 0
		c.fetchOut.ok()
		c.process(ctx, hctx, m)
	}

	// Commit what was done, then leave the group: in this order, so the next owner of each partition
	// starts after the last event handled here.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), consumerCommitTimeout)
	commitErr := c.flush(fctx)
	cancel()
	closeErr := c.reader.Close()
	dlqErr := c.dlq.Close()
	stopLag()
	wg.Wait()
	if err := errors.Join(commitErr, closeErr, dlqErr); err != nil {
		c.log.Warn("consumer stopped uncleanly; uncommitted events will be delivered again", "err", err)
		return fmt.Errorf("consumer %s: stop: %w", c.cfg.Group, err)
	}
	c.log.Info("consumer stopped")
	return nil
}

// fetch returns the next message, committing pending offsets whenever CommitInterval passes, so an
// idle stream does not sit on uncommitted work.
func (c *Consumer) fetch(ctx context.Context) (kafka.Message, error) {
	for {
		if len(c.pending) == 0 {
			return c.reader.FetchMessage(ctx)
		}
		wait := c.cfg.CommitInterval - time.Since(c.lastCommit)
		if wait <= 0 {
			c.flush(ctx) // on failure the offsets stay pending and are retried after CommitInterval
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, wait)
		m, err := c.reader.FetchMessage(fctx)
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			continue // time to commit
		}
		return m, err
	}
}

// process deals with one message: dead letter, duplicate or event for the handler. It marks the
// message for commit only once it is done with it; it returns early, not done, only when ctx ends.
func (c *Consumer) process(ctx, hctx context.Context, m kafka.Message) {
	tm := c.topicMetrics(m.Topic)
	tp := topicPartition{m.Topic, m.Partition}
	if want, ok := c.next[tp]; !ok || want != m.Offset {
		// Taking the partition up (again). If this process has been reading it without a gap up to
		// at least here, the ids from run onwards are already in the window: only read back before.
		known := m.Offset
		if run, ok := c.runFrom[tp]; ok && run <= m.Offset && m.Offset <= want {
			known = run
		}
		c.runFrom[tp] = c.warmup(ctx, m.Topic, m.Partition, m.Offset, known)
	}
	c.next[tp] = m.Offset + 1

	e, err := Decode(m.Value)
	if err == nil {
		if want := TopicOf(e.Type); want != m.Topic && isEventTopic(m.Topic) {
			err = fmt.Errorf("event %q of type %q belongs on %s, not %s", e.ID, e.Type, want, m.Topic)
		}
	}
	switch {
	case err != nil:
		if !c.deadLetter(ctx, hctx, m, err) {
			return
		}
		tm.deadLettered.Inc()
	case c.window.Seen(e.ID):
		tm.duplicates.Inc()
	default:
		if !c.handle(ctx, hctx, tm, &e) {
			return
		}
		c.window.Add(e.ID)
		tm.consumed.Inc()
	}
	c.pending[tp] = kafka.Message{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
}

func isEventTopic(topic string) bool {
	switch topic {
	case TopicBids, TopicWins, TopicImpressions, TopicClicks, TopicLosses:
		return true
	}
	return false
}

// handle calls the handler until it succeeds (true) or ctx ends (false). The first call of an event
// runs even if ctx ends meanwhile (under hctx, which lasts a grace period longer); retries stop
// with ctx.
func (c *Consumer) handle(ctx, hctx context.Context, tm *topicMetrics, e *Event) bool {
	for attempt := 0; ; attempt++ {
		err := c.h(hctx, e)
		if err == nil {
			c.handlerOut.ok()
			return true
		}
		tm.handlerErrors.Inc()
		c.handlerOut.fail(err, "event", e.ID, "type", string(e.Type), "campaign", e.CampaignID)
		if !c.pause(ctx, consumerBackoff(attempt)) {
			return false
		}
	}
}

// deadLetter writes m to the DLQ until the broker acknowledges it (true) or ctx ends (false).
func (c *Consumer) deadLetter(ctx, hctx context.Context, m kafka.Message, cause error) bool {
	letter := deadLetter(m, c.cfg.Group, cause, time.Now())
	for attempt := 0; ; attempt++ {
		wctx, cancel := context.WithTimeout(hctx, 15*time.Second)
		err := c.dlq.WriteMessages(wctx, letter)
		cancel()
		if err == nil {
			c.dlqOut.ok()
			c.dlqLog.log(c.log, m, cause)
			return true
		}
		c.dlqOut.fail(err, "topic", m.Topic, "partition", m.Partition, "offset", m.Offset)
		if !c.pause(ctx, consumerBackoff(attempt)) {
			return false
		}
	}
}

// pause waits d, committing pending offsets if they are due (a handler being retried must not hold
// back the commits of what was already done). It reports false if ctx ended first.
func (c *Consumer) pause(ctx context.Context, d time.Duration) bool {
	if len(c.pending) > 0 && time.Since(c.lastCommit) >= c.cfg.CommitInterval {
		c.flush(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// flush commits the pending offsets. On failure they stay pending, to be tried again.
func (c *Consumer) flush(ctx context.Context) error {
	c.lastCommit = time.Now()
	if len(c.pending) == 0 {
		return nil
	}
	msgs := c.commitBuf[:0]
	for _, m := range c.pending {
		msgs = append(msgs, m)
	}
	c.commitBuf = msgs
	cctx, cancel := context.WithTimeout(ctx, consumerCommitTimeout)
	err := c.reader.CommitMessages(cctx, msgs...)
	cancel()
	if err != nil {
		c.commitOut.fail(err, "partitions", len(msgs))
		return fmt.Errorf("commit %d partitions: %w", len(msgs), err)
	}
	c.commitOut.ok()
	clear(c.pending)
	return nil
}

// warmup primes the dedupe window with the ids of the events before offset in a partition this
// consumer is taking up (see the top of this file): the DedupeWarmup events before offset, less
// those from known on, which the window already has. It handles nothing. It returns the offset from
// which the ids up to offset are in the window; on failure it logs and gives up, leaving dedupe to
// the window alone.
func (c *Consumer) warmup(ctx context.Context, topic string, partition int, offset, known int64) int64 {
	n := c.warmupPerPartition(ctx)
	start := max(offset-int64(n), 0)
	if n <= 0 || start >= known {
		return known
	}
	wctx, cancel := context.WithTimeout(ctx, consumerWarmupTimeout)
	defer cancel()
	t0 := time.Now()
	lo, err := c.client.ListOffsets(wctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{topic: {kafka.FirstOffsetOf(partition)}},
	})
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("dedupe warm-up skipped", "topic", topic, "partition", partition, "err", err)
		}
		return known
	}
	for _, p := range lo.Topics[topic] {
		if p.Partition == partition && p.Error == nil {
			start = max(start, p.FirstOffset)
		}
	}
	from, at, added := start, start, 0
	for at < known {
		res, err := c.client.Fetch(wctx, &kafka.FetchRequest{
			Topic: topic, Partition: partition, Offset: at,
			MinBytes: 1, MaxBytes: 4 << 20, MaxWait: consumerMaxWait,
		})
		if err == nil {
			err = res.Error
		}
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("dedupe warm-up incomplete", "topic", topic, "partition", partition,
					"from", from, "reached", at, "until", known, "err", err)
			}
			return known
		}
		progressed := false
		for {
			rec, err := res.Records.ReadRecord()
			if err != nil {
				break // io.EOF: end of this response
			}
			if rec.Offset < at {
				continue // a batch may begin before the offset asked for
			}
			if rec.Offset >= known {
				break
			}
			at, progressed = rec.Offset+1, true
			value, err := kafka.ReadAll(rec.Value)
			if err != nil {
				continue
			}
			if e, err := Decode(value); err == nil && c.window.Add(e.ID) {
				added++
			}
		}
		if !progressed {
			break // nothing more below known (e.g. the tail was compacted away)
		}
	}
	c.log.Debug("dedupe window warmed", "topic", topic, "partition", partition, "from", from,
		"until", known, "ids_added", added, "took", time.Since(t0))
	return from
}

// warmupPerPartition is DedupeWarmup, or by default the window shared out over the partitions of
// the consumer's topics (looked up once if the lag loop has not yet).
func (c *Consumer) warmupPerPartition(ctx context.Context) int {
	if c.cfg.DedupeWarmup != 0 {
		return c.cfg.DedupeWarmup
	}
	n := c.partitions.Load()
	if n == 0 {
		mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		parts, err := c.topicPartitions(mctx)
		cancel()
		for _, ps := range parts {
			n += int64(len(ps))
		}
		if err != nil || n == 0 {
			n = int64(8 * len(c.cfg.Topics)) // the embedded broker's default
		} else {
			c.partitions.Store(n)
		}
	}
	return max(1, c.cfg.DedupeWindow/int(n))
}

// topicPartitions lists the partitions of the consumer's topics.
func (c *Consumer) topicPartitions(ctx context.Context) (map[string][]int, error) {
	md, err := c.client.Metadata(ctx, &kafka.MetadataRequest{Topics: c.cfg.Topics})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	parts := make(map[string][]int, len(md.Topics))
	for _, t := range md.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("metadata of %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			parts[t.Name] = append(parts[t.Name], p.ID)
		}
	}
	return parts, nil
}

// lagLoop refreshes rtb_consumer_lag every LagInterval until ctx ends.
func (c *Consumer) lagLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.LagInterval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, max(c.cfg.LagInterval, 5*time.Second))
		err := c.refreshLag(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			c.lagOut.fail(err)
		} else {
			c.lagOut.ok()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refreshLag sets each topic's lag: the group's committed offsets behind the end of each partition,
// summed. A partition the group has not committed on counts from its first offset (where a new
// group starts). This is the group's lag, whichever member holds the partitions, so every member of
// a group exports the same figure: aggregate it with max, not sum.
func (c *Consumer) refreshLag(ctx context.Context) error {
	parts, err := c.topicPartitions(ctx)
	if err != nil {
		return err
	}
	var total int64
	req := &kafka.ListOffsetsRequest{Topics: make(map[string][]kafka.OffsetRequest, len(parts))}
	for topic, ps := range parts {
		total += int64(len(ps))
		for _, p := range ps {
			req.Topics[topic] = append(req.Topics[topic], kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
		}
	}
	if total > 0 {
		c.partitions.Store(total)
	}
	ends, err := c.client.ListOffsets(ctx, req)
	if err != nil {
		return fmt.Errorf("list offsets: %w", err)
	}
	committed, err := c.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: c.cfg.Group, Topics: parts})
	if err == nil {
		err = committed.Error
	}
	if err != nil {
		return fmt.Errorf("fetch committed offsets: %w", err)
	}
	for topic, ps := range ends.Topics {
		tm := c.metrics[topic]
		if tm == nil {
			continue
		}
		at := map[int]int64{}
		for _, p := range committed.Topics[topic] {
			if p.Error == nil {
				at[p.Partition] = p.CommittedOffset
			}
		}
		var lag int64
		for _, p := range ps {
			if p.Error != nil {
				return fmt.Errorf("offsets of %s/%d: %w", topic, p.Partition, p.Error)
			}
			pos, ok := at[p.Partition]
			if !ok || pos < p.FirstOffset {
				pos = p.FirstOffset
			}
			lag += max(p.LastOffset-pos, 0)
		}
		tm.lag.Set(float64(lag))
	}
	return nil
}

// consumerBackoff is the wait before retry attempt+1: doubling from consumerBackoffMin to
// consumerBackoffMax, with ±20% jitter so that members do not retry in step.
func consumerBackoff(attempt int) time.Duration {
	d := consumerBackoffMax
	if attempt < 16 {
		d = min(consumerBackoffMin<<attempt, consumerBackoffMax)
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// consumerOutage logs one kind of failure when it starts and when it ends, not on every attempt.
type consumerOutage struct {
	log      *slog.Logger
	what     string
	level    slog.Level // of the "failing" line
	failures int
	since    time.Time
}

func (o *consumerOutage) fail(err error, attrs ...any) {
	o.failures++
	if o.failures > 1 {
		return
	}
	o.since = time.Now()
	o.log.Log(context.Background(), o.level, o.what+" failing; retrying",
		append([]any{"err", err}, attrs...)...)
}

func (o *consumerOutage) ok() {
	if o.failures == 0 {
		return
	}
	o.log.Info(o.what+" recovered", "failures", o.failures, "after", time.Since(o.since).Round(time.Millisecond))
	o.failures = 0
}

// retry calls fn until it succeeds (true) or ctx ends (false), backing off between attempts and
// logging the outage once: for the start-up steps (offsets, plans) that must succeed before any
// reading can.
func (o *consumerOutage) retry(ctx context.Context, fn func() error, attrs ...any) bool {
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil {
			o.ok()
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		o.fail(err, attrs...)
		if !sleepCtx(ctx, consumerBackoff(attempt)) {
			return false
		}
	}
}

// Metrics. Label values are bounded: topic and group only.

type consumerVecs struct {
	lag                                               *prometheus.GaugeVec
	consumed, duplicates, deadLettered, handlerErrors *prometheus.CounterVec
}

type topicMetrics struct {
	lag                                               prometheus.Gauge
	consumed, duplicates, deadLettered, handlerErrors prometheus.Counter
}

func (v *consumerVecs) forTopic(topic, group string) *topicMetrics {
	return &topicMetrics{
		lag:           v.lag.WithLabelValues(topic, group),
		consumed:      v.consumed.WithLabelValues(topic, group),
		duplicates:    v.duplicates.WithLabelValues(topic, group),
		deadLettered:  v.deadLettered.WithLabelValues(topic, group),
		handlerErrors: v.handlerErrors.WithLabelValues(topic, group),
	}
}

// topicMetrics is the metrics of topic (a topic the reader was not asked for would be a kafka-go
// bug; it is counted rather than crashing on).
func (c *Consumer) topicMetrics(topic string) *topicMetrics {
	tm := c.metrics[topic]
	if tm == nil {
		tm = c.vecs.forTopic(topic, c.cfg.Group)
		c.metrics[topic] = tm
	}
	return tm
}

// registerConsumerVecs makes the consumer metric vectors and registers them on reg. Consumers
// sharing a registry share the vectors (the second registration finds the first's), so a process
// may run any number of consumers on one registry.
func registerConsumerVecs(reg prometheus.Registerer) (*consumerVecs, error) {
	labels := []string{"topic", "group"}
	v := &consumerVecs{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rtb_consumer_lag",
			Help: "Events on the topic not yet committed by the consumer group (committed offsets behind the partition ends, summed).",
		}, labels),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtb_events_consumed_total",
			Help: "Events handled successfully.",
		}, labels),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtb_events_duplicate_total",
			Help: "Events skipped because their id was seen recently (an exchange's retried notice, or a redelivery after a rebalance).",
		}, labels),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtb_events_dead_lettered_total",
			Help: "Messages that could not be read as events and were moved to the dead-letter topic.",
		}, labels),
		handlerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtb_consumer_handler_errors_total",
			Help: "Handler calls that failed (each is retried).",
		}, labels),
	}
	if reg == nil {
		return v, nil
	}
	var err error
	if v.lag, err = consumerRegister(reg, v.lag); err != nil {
		return nil, err
	}
	for _, c := range []**prometheus.CounterVec{&v.consumed, &v.duplicates, &v.deadLettered, &v.handlerErrors} {
		if *c, err = consumerRegister(reg, *c); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// consumerRegister registers c on reg, or returns the collector of the same kind already registered
// there under the same description.
func consumerRegister[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing, nil
		}
	}
	return c, err
}

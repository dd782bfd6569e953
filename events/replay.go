// The replaying side of the event backbone, for state that is event-sourced (the budget pacer).
// Why it is built the way it is:
//
// A pacer's state (today's spend per campaign) lives in its memory and nowhere else, so committed
// offsets are of no use to it: a pacer restarted mid-day, or one taking over another's campaigns,
// must rebuild that state from the log. So a Replayer commits nothing. It joins a consumer group
// only so that the group's partitions are shared out among the pacers, and on every assignment it
// reads each of its partitions again from the first offset whose timestamp is at or after From()
// (Kafka's ListOffsets by timestamp), then keeps tailing. Replaying the same log with the same
// rules gives the same numbers, which is the whole point: a pacer that restarts ends where a pacer
// that never stopped would be.
//
// It is built on kafka-go's ConsumerGroup (Next → Generation), not on a Reader with a GroupID:
// such a Reader starts each partition at the group's committed offset and cannot be told to start
// elsewhere. Per generation, one goroutine per assigned partition fetches (kafka.Client.Fetch, on
// connections of its own from the pool, so one partition's long poll does not hold up another's)
// and decodes; one goroutine, the generation's, calls the handler, so handler calls are never
// concurrent and each partition's order (one campaign's events) is kept.
//
// Assignments are ranges of partition numbers, the same for every topic (replayBalancer), so with
// co-partitioned topics (same partition count, key = campaign id) all of a campaign's events,
// whatever their topic, go to the one member that owns the campaign. kafka-go's own range balancer
// does not guarantee that: it ranges over partitions in the order the metadata lists them, which
// is not sorted (against kfake it gave one member partitions 0-1 of one topic and 1-2 of another).
//
// Dedupe: the window is per partition and starts empty on every assignment, because the replay
// starts over too (ids remembered from before the assignment would make the replay skip events
// the handler has just been told to forget). Per partition, so that whether a retried notice is
// caught depends only on that partition's own sequence of events, not on how partitions happened
// to interleave: a replay then skips exactly the duplicates a member that never stopped skipped.
// DedupeWindow is shared out over all partitions of the topics, whoever owns them, so the windows
// of a member that owns everything add up to DedupeWindow. Events between From() and the day the
// handler counts (the margin) prime the windows.
//
// Caught up: at assignment the high-water mark of each partition is noted; a partition is caught
// up once it has been read up to that mark, or once a fetch at the position reached comes back
// empty (nothing readable is left below the mark, e.g. a compacted or aborted tail). When all are,
// CaughtUp reports true and a handler that implements CaughtUpHandler is told, in line with its
// events: from then on its numbers are complete and it may publish them.
//
// Dead letters: a message that is not an event is written to rtb.dlq (as the Consumer does) and
// skipped. Every replay reads it again; a process writes each letter once (it remembers, per
// partition, the highest offset it dead-lettered), but a restarted process writes it again: the
// letter's headers name topic, partition and offset, which identify such repeats.
//
// Group timeouts are the Consumer's (see consumer.go): a 1 s heartbeat, a 6 s session timeout (the
// smallest Kafka and kfake accept by default), a 10 s rebalance timeout. A member that stops
// cleanly leaves the group at once, and the others are reassigned within about a heartbeat; one
// that crashes is noticed after the session timeout.

package events

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// ReplayConfig configures a Replayer.
type ReplayConfig struct {
	Brokers []string
	Group   string   // consumer group id (required): the members of a group share its partitions
	Topics  []string // required; co-partitioned (same partition count, key = campaign id)

	// From is asked on each assignment where to start: each partition is read from the first
	// offset whose timestamp is at or after From(). A partition with no such message (everything
	// in it is older) is read from its end. A nil From, or a zero time, reads from the start.
	//
	// Message timestamps are the producer's (CreateTime): the Producer stamps the time it writes,
	// which is at or after the event's ts. So no event with ts >= From() is missed (up to clock
	// skew between hosts: leave a margin), but events with an earlier ts can come (a margin's
	// worth, and events spilled to disk and written late): the handler filters by Event.TS.
	From func() time.Time

	// DedupeWindow is how many event ids are remembered, shared out over the partitions of
	// Topics (see the top of this file); default 1<<20 (about 48 MiB when full, taken as ids arrive).
	DedupeWindow int

	// Types, if not empty, are the event types the handler takes; others are passed over (and
	// counted in rtb_replay_skipped_total). Where the type can be read from the start of the
	// message as AppendJSON writes it, the message is passed over without being copied or decoded,
	// so a topic's other traffic (the pacer's rtb.bids is mostly sampled bids) costs little; such
	// a message is not checked either, and is not dead-lettered if it is broken further on.
	Types []Type

	// PatientTopics are topics whose events may reach the handler up to half a second late: they
	// are fetched so that the broker answers when that time is up, rather than as soon as anything
	// is there, so a busy topic wakes the replayer about twice a second per partition instead of
	// once per producer batch. (The pacer's rtb.bids: traffic counts, for a once-a-second step.)
	PatientTopics []string

	Registerer prometheus.Registerer // may be nil
	Logger     *slog.Logger          // default slog.Default()
}

// Assignment is what a member owns of one topic in a generation.
type Assignment struct {
	Topic      string
	Partitions []int // ascending
	Total      int   // partitions the topic has: PartitionOf(key, Total) says whether a key is owned
}

// ReplayHandler receives a Replayer's events. Its methods are called from one goroutine at a time,
// in this order per generation: Assigned, then Event for the events of the assigned partitions
// (each partition's events in offset order), then Revoked.
type ReplayHandler interface {
	// Assigned is called when a generation starts, before any of its events: the partitions
	// listed are being replayed from From(); state derived from them must be reset.
	Assigned(gen []Assignment)
	// Event handles one event; the event is the handler's to keep. An error is transient: the
	// same event is retried with backoff until it succeeds or the generation ends.
	Event(e *Event) error
	// Revoked is called when the generation ends (a rebalance, or Run stopping). Every Assigned
	// is followed by one Revoked.
	Revoked()
}

// CaughtUpHandler may be implemented by a ReplayHandler: CaughtUp is then called once per
// generation, between two Event calls, when every assigned partition has been read up to the
// high-water mark it had at assignment.
type CaughtUpHandler interface {
	CaughtUp()
}

// Replayer rebuilds event-sourced state: a member of a consumer group that, on every assignment,
// replays its partitions from a point in time and then tails them, committing nothing.
type Replayer struct {
	cfg      ReplayConfig
	h        ReplayHandler
	log      *slog.Logger
	vecs     *replayVecs
	metrics  map[string]*replayTopicMetrics
	caughtUp prometheus.Gauge
	assigns  prometheus.Counter
	catchUp  prometheus.Gauge
	running  atomic.Bool
	caught   atomic.Bool

	// Run's state, used by one goroutine at a time (Run's, then each generation's in turn).
	client  *kafka.Client
	dlq     *kafka.Writer
	dlqDone map[topicPartition]int64 // per partition, the highest offset this process dead-lettered
	dlqLog  deadLetterLog

	joinOut, planOut, handlerOut, dlqOut consumerOutage
}

// Timings; see the top of this file and consumer.go.
const (
	replayHeartbeat        = time.Second
	replaySessionTimeout   = 6 * time.Second
	replayRebalanceTimeout = 10 * time.Second
	replayJoinBackoff      = time.Second
	replayMaxWait          = 500 * time.Millisecond // a fetch's long poll
	replayFetchBytes       = 4 << 20
	replayPatientBytes     = 1 << 20 // MinBytes for PatientTopics: more than half a second of any topic's records
	replayRequestTimeout   = 10 * time.Second
	replayDLQTimeout       = 15 * time.Second
)

// NewReplayer checks cfg and registers the replayer's metrics; Run does the work.
func NewReplayer(cfg ReplayConfig, h ReplayHandler) (*Replayer, error) {
	if err := checkGroupMember("replayer", h == nil, cfg.Group, cfg.Topics, cfg.Brokers); err != nil {
		return nil, err
	}
	if cfg.DedupeWindow <= 0 {
		cfg.DedupeWindow = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Topics = append([]string(nil), cfg.Topics...)
	cfg.Brokers = append([]string(nil), cfg.Brokers...)
	vecs, err := registerReplayVecs(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("new replayer %s: metrics: %w", cfg.Group, err)
	}
	log := cfg.Logger.With("group", cfg.Group, "component", "replayer")
	r := &Replayer{
		cfg:      cfg,
		h:        h,
		log:      log,
		vecs:     vecs,
		metrics:  make(map[string]*replayTopicMetrics, len(cfg.Topics)),
		caughtUp: vecs.caughtUp.WithLabelValues(cfg.Group),
		assigns:  vecs.assignments.WithLabelValues(cfg.Group),
		catchUp:  vecs.catchUpSeconds.WithLabelValues(cfg.Group),
		dlqDone:  map[topicPartition]int64{},
	}
	for _, t := range cfg.Topics {
		r.metrics[t] = vecs.forTopic(t, cfg.Group)
	}
	r.joinOut = consumerOutage{log: log, what: "group join", level: slog.LevelWarn}
	r.planOut = consumerOutage{log: log, what: "replay start offsets", level: slog.LevelWarn}
	r.handlerOut = consumerOutage{log: log, what: "replay handler", level: slog.LevelWarn}
	r.dlqOut = consumerOutage{log: log, what: "dead-letter write", level: slog.LevelWarn}
	return r, nil
}

// CaughtUp reports whether the current generation's partitions have all been read up to the
// high-water marks they had at assignment. It is false between generations and while replaying.
func (r *Replayer) CaughtUp() bool { return r.caught.Load() }

// Run takes part in the group until ctx is done, then leaves it (so that the partitions move to
// the other members at once, not after a session timeout). It returns nil on a clean stop; an
// error means Run was called twice or the group could not be set up.
func (r *Replayer) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("replayer %s: Run called twice", r.cfg.Group)
	}
	transport := &kafka.Transport{DialTimeout: 5 * time.Second, MetadataTTL: 5 * time.Second}
	defer transport.CloseIdleConnections()
	r.client = &kafka.Client{Addr: kafka.TCP(r.cfg.Brokers...), Timeout: replayRequestTimeout, Transport: transport}
	r.dlq = newDLQWriter(r.cfg.Brokers, transport)
	defer r.dlq.Close()

	errLog := r.log.With("component", "kafka-go")
	logf := kafka.LoggerFunc(func(format string, args ...any) {
		if errLog.Enabled(context.Background(), slog.LevelDebug) {
			errLog.Debug(fmt.Sprintf(format, args...))
		}
	})
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                    r.cfg.Group,
		Brokers:               r.cfg.Brokers,
		Dialer:                &kafka.Dialer{Timeout: 5 * time.Second, DualStack: true},
		Topics:                r.cfg.Topics,
		GroupBalancers:        []kafka.GroupBalancer{replayBalancer{}},
		HeartbeatInterval:     replayHeartbeat,
		SessionTimeout:        replaySessionTimeout,
		RebalanceTimeout:      replayRebalanceTimeout,
		JoinGroupBackoff:      replayJoinBackoff,
		WatchPartitionChanges: true,
		StartOffset:           kafka.FirstOffset, // unused: nothing is committed, start offsets come from From
		ErrorLogger:           logf,
	})
	if err != nil {
		return fmt.Errorf("replayer %s: %w", r.cfg.Group, err)
	}
	r.log.Info("replayer started", "topics", r.cfg.Topics, "brokers", r.cfg.Brokers)

	for ctx.Err() == nil {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				break
			}
			r.joinOut.fail(err) // the group backs off before trying again
			continue
		}
		r.joinOut.ok()
		done := make(chan struct{})
		// The generation's function ends only when the generation does: the group closes it on a
		// rebalance, or below, on Close. Were it to end on ctx by itself, the group would take that
		// for a finished generation and join again before noticing it is being closed.
		gen.Start(func(gctx context.Context) {
			defer close(done)
			r.generation(gctx, gen)
		})
		select {
		case <-done:
			continue
		case <-ctx.Done():
		}
		t0 := time.Now()
		cg.Close() // ends the generation, waits for it, leaves the group
		<-done
		r.log.Info("replayer stopped; left the group", "took", time.Since(t0).Round(time.Millisecond))
		return nil
	}
	t0 := time.Now()
	cg.Close()
	r.log.Info("replayer stopped; left the group", "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// replayPart is one assigned partition in a generation.
type replayPart struct {
	tp     topicPartition
	start  int64 // where the replay starts
	target int64 // the high-water mark at assignment: caught up once read up to here
	next   int64 // the offset to read next
	lag    int64
	caught bool
	window *IDWindow
	tm     *replayTopicMetrics
}

// replayItem is one message of a partition, decoded: an event, or the reason it is not one.
type replayItem struct {
	ev   Event
	skip bool          // of a type the handler does not take
	err  error         // not an event: dead-letter msg
	msg  kafka.Message // set only when err != nil
}

// generation runs one generation: plan, Assigned, replay and tail until gctx ends, Revoked.
func (r *Replayer) generation(gctx context.Context, gen *kafka.Generation) {
	t0 := time.Now()
	r.caught.Store(false)
	r.caughtUp.Set(0)
	assigned, parts, ok := r.plan(gctx, gen)
	if !ok {
		return // the generation ended before it could start; Assigned was not called
	}
	var backlog int64
	for _, p := range parts {
		backlog += p.target - p.start
	}
	r.assigns.Inc()
	r.log.Info("replay assigned", "generation", gen.ID, "member", gen.MemberID,
		"assignment", fmtAssignments(assigned), "backlog", backlog)
	r.h.Assigned(assigned)

	byTopic := map[string][]*replayPart{}
	byTP := make(map[topicPartition]*replayPart, len(parts))
	for _, p := range parts {
		byTopic[p.tp.topic] = append(byTopic[p.tp.topic], p)
		byTP[p.tp] = p
	}
	for topic, ps := range byTopic {
		r.topicMetrics(topic).partitions.Set(float64(len(ps)))
		r.setLag(topic, ps)
	}

	remaining := 0
	for _, p := range parts {
		if p.start >= p.target {
			p.caught = true
		} else {
			remaining++
		}
	}
	if remaining == 0 {
		r.markCaughtUp(t0, 0)
	}

	out := make(chan fetched[replayItem], max(2*len(parts), 1))
	var wg sync.WaitGroup
	for _, p := range parts {
		opt := fetchOptions{skip: r.skip}
		if slices.Contains(r.cfg.PatientTopics, p.tp.topic) {
			opt.minBytes = replayPatientBytes
		}
		wg.Go(func() { fetchLoop(gctx, r.client, r.log, p.tp, p.start, out, opt, r.convert) })
	}
	var replayed int64
loop:
	for {
		select {
		case <-gctx.Done():
			break loop
		case b := <-out:
			p := byTP[b.tp]
			n, ok := r.dispatch(gctx, p, b)
			replayed += n
			if !ok {
				break loop
			}
			r.setLag(p.tp.topic, byTopic[p.tp.topic])
			if !p.caught && (p.next >= p.target || b.idle) {
				p.caught = true
				if p.next < p.target {
					r.log.Debug("partition caught up below its high-water mark (nothing readable left)",
						"topic", p.tp.topic, "partition", p.tp.partition, "at", p.next, "hwm", p.target)
				}
				if remaining--; remaining == 0 {
					r.markCaughtUp(t0, replayed)
				}
			}
		}
	}
	wg.Wait()

	r.caught.Store(false)
	r.caughtUp.Set(0)
	for topic := range byTopic {
		tm := r.topicMetrics(topic)
		tm.partitions.Set(0)
		tm.lag.Set(0)
	}
	r.log.Info("replay revoked", "generation", gen.ID, "events", replayed, "held", time.Since(t0).Round(time.Millisecond))
	r.h.Revoked()
}

func (r *Replayer) markCaughtUp(t0 time.Time, events int64) {
	took := time.Since(t0)
	r.caught.Store(true)
	r.caughtUp.Set(1)
	r.catchUp.Set(took.Seconds())
	r.log.Info("replay caught up", "events", events, "took", took.Round(time.Millisecond))
	if cu, ok := r.h.(CaughtUpHandler); ok {
		cu.CaughtUp()
	}
}

// plan works out a generation's partitions: where each starts and ends its replay. It retries
// until it succeeds or gctx ends (false).
func (r *Replayer) plan(gctx context.Context, gen *kafka.Generation) ([]Assignment, []*replayPart, bool) {
	var assigned []Assignment
	for topic, pas := range gen.Assignments {
		if len(pas) == 0 {
			continue
		}
		a := Assignment{Topic: topic}
		for _, pa := range pas {
			a.Partitions = append(a.Partitions, pa.ID)
		}
		slices.Sort(a.Partitions)
		assigned = append(assigned, a)
	}
	slices.SortFunc(assigned, func(a, b Assignment) int { return cmp.Compare(a.Topic, b.Topic) })

	var parts []*replayPart
	if !r.planOut.retry(gctx, func() (err error) { parts, err = r.planOnce(gctx, assigned); return err }, "generation", gen.ID) {
		return nil, nil, false
	}
	return assigned, parts, true
}

func (r *Replayer) planOnce(ctx context.Context, assigned []Assignment) ([]*replayPart, error) {
	ctx, cancel := context.WithTimeout(ctx, replayRequestTimeout)
	defer cancel()
	totals, err := topicPartitionCounts(ctx, r.client, r.cfg.Topics)
	if err != nil {
		return nil, err
	}
	all := 0
	for i := range assigned {
		assigned[i].Total = totals[assigned[i].Topic]
	}
	for _, n := range totals {
		all += n
	}
	if len(assigned) == 0 {
		return nil, nil
	}
	window := max(r.cfg.DedupeWindow/max(all, 1), 1)

	todo := make(map[string][]int, len(assigned))
	for _, a := range assigned {
		todo[a.Topic] = append(todo[a.Topic], a.Partitions...)
	}
	var from time.Time
	if r.cfg.From != nil {
		from = r.cfg.From()
	}
	ranges, err := partitionRanges(ctx, r.client, todo, from)
	if err != nil {
		return nil, err
	}
	parts := make([]*replayPart, 0, len(ranges))
	for tp, rg := range ranges {
		parts = append(parts, &replayPart{
			tp: tp, start: rg.start, target: rg.end, next: rg.start, lag: rg.end - rg.start,
			window: NewIDWindow(window), tm: r.topicMetrics(tp.topic),
		})
	}
	slices.SortFunc(parts, func(a, b *replayPart) int {
		return cmp.Or(cmp.Compare(a.tp.topic, b.tp.topic), cmp.Compare(a.tp.partition, b.tp.partition))
	})
	return parts, nil
}

// convert decodes one message (on its partition's fetch goroutine).
// decodeOnTopic decodes one message; an event on an event topic its type does not belong to is
// refused too.
func decodeOnTopic(m *kafka.Message) (Event, error) {
	e, err := Decode(m.Value)
	if err == nil {
		if want := TopicOf(e.Type); want != m.Topic && isEventTopic(m.Topic) {
			err = fmt.Errorf("event %q of type %q belongs on %s, not %s", e.ID, e.Type, want, m.Topic)
		}
	}
	return e, err
}

func (r *Replayer) convert(m *kafka.Message) replayItem {
	e, err := decodeOnTopic(m)
	if err != nil {
		return replayItem{err: err, msg: *m}
	}
	return replayItem{ev: e, skip: !r.wants(e.Type)}
}

// wants reports whether the handler takes events of type t (ReplayConfig.Types).
func (r *Replayer) wants(t Type) bool {
	return len(r.cfg.Types) == 0 || slices.Contains(r.cfg.Types, t)
}

// skip is fetchLoop's: a message whose type the handler does not take, seen without decoding it.
func (r *Replayer) skip(value []byte) bool {
	if len(r.cfg.Types) == 0 {
		return false
	}
	t, ok := PeekType(value)
	return ok && !r.wants(t)
}

// dispatch hands a fetch's events to the handler. It returns how many it handled and false if
// gctx ended first.
func (r *Replayer) dispatch(gctx context.Context, p *replayPart, b fetched[replayItem]) (int64, bool) {
	var n int64
	p.tm.skipped.Add(float64(b.skipped))
	for i := range b.items {
		it := &b.items[i]
		switch {
		case it.skip:
			p.tm.skipped.Inc()
		case it.err != nil:
			if !r.deadLetter(gctx, p, it) {
				return n, false
			}
		case p.window.Seen(it.ev.ID):
			p.tm.duplicates.Inc()
		default:
			if !r.handle(gctx, p, &it.ev) {
				return n, false
			}
			p.window.Add(it.ev.ID)
			p.tm.events.Inc()
			n++
		}
	}
	p.next = b.next
	p.lag = max(b.hwm-b.next, 0)
	return n, true
}

// handle calls the handler until it succeeds (true) or gctx ends (false).
func (r *Replayer) handle(gctx context.Context, p *replayPart, e *Event) bool {
	for attempt := 0; ; attempt++ {
		err := r.h.Event(e)
		if err == nil {
			r.handlerOut.ok()
			return true
		}
		p.tm.handlerErrors.Inc()
		r.handlerOut.fail(err, "event", e.ID, "type", string(e.Type), "campaign", e.CampaignID)
		if !sleepCtx(gctx, consumerBackoff(attempt)) {
			return false
		}
	}
}

// deadLetter writes a message that is not an event to the DLQ, retrying until the broker has it
// (true) or gctx ends (false). A letter this process wrote on an earlier replay is not written again.
func (r *Replayer) deadLetter(gctx context.Context, p *replayPart, it *replayItem) bool {
	m := it.msg
	if done, ok := r.dlqDone[p.tp]; ok && m.Offset <= done {
		return true
	}
	letter := deadLetter(m, r.cfg.Group, it.err, time.Now())
	for attempt := 0; ; attempt++ {
		wctx, cancel := context.WithTimeout(gctx, replayDLQTimeout)
		err := r.dlq.WriteMessages(wctx, letter)
		cancel()
		if err == nil {
			r.dlqOut.ok()
			r.dlqDone[p.tp] = m.Offset
			p.tm.deadLettered.Inc()
			r.dlqLog.log(r.log, m, it.err)
			return true
		}
		if gctx.Err() != nil {
			return false
		}
		r.dlqOut.fail(err, "topic", m.Topic, "partition", m.Partition, "offset", m.Offset)
		if !sleepCtx(gctx, consumerBackoff(attempt)) {
			return false
		}
	}
}

func (r *Replayer) setLag(topic string, ps []*replayPart) {
	var lag int64
	for _, p := range ps {
		lag += p.lag
	}
	r.topicMetrics(topic).lag.Set(float64(lag))
}

func (r *Replayer) topicMetrics(topic string) *replayTopicMetrics {
	tm := r.metrics[topic]
	if tm == nil { // a topic not asked for would be a kafka-go bug; count it rather than crash
		tm = r.vecs.forTopic(topic, r.cfg.Group)
		r.metrics[topic] = tm
	}
	return tm
}

func fmtAssignments(as []Assignment) string {
	s := ""
	for i, a := range as {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s%v/%d", a.Topic, a.Partitions, a.Total)
	}
	if s == "" {
		s = "none"
	}
	return s
}

// topicPartitionCounts is how many partitions each of topics has.
func topicPartitionCounts(ctx context.Context, cl *kafka.Client, topics []string) (map[string]int, error) {
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	counts := make(map[string]int, len(md.Topics))
	for _, t := range md.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("metadata of %s: %w", t.Name, t.Error)
		}
		counts[t.Name] = len(t.Partitions)
	}
	for _, t := range topics {
		if counts[t] == 0 {
			return nil, fmt.Errorf("metadata: topic %s has no partitions", t)
		}
	}
	return counts, nil
}

// replayBalancer assigns each topic's partitions, sorted by number, in contiguous ranges to the
// members sorted by id: with co-partitioned topics a member gets the same partition numbers of
// each topic.
type replayBalancer struct{}

func (replayBalancer) ProtocolName() string      { return "rtb-copartitioned-range" }
func (replayBalancer) UserData() ([]byte, error) { return nil, nil }

func (replayBalancer) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	out := kafka.GroupMemberAssignments{}
	byTopic := map[string][]string{} // topic → ids of the members that subscribe to it
	for _, m := range members {
		out[m.ID] = map[string][]int{}
		for _, t := range m.Topics {
			byTopic[t] = append(byTopic[t], m.ID)
		}
	}
	parts := map[string][]int{}
	for _, p := range partitions {
		parts[p.Topic] = append(parts[p.Topic], p.ID)
	}
	for topic, ids := range byTopic {
		slices.Sort(ids)
		ps := parts[topic]
		slices.Sort(ps)
		for i, id := range ids {
			lo, hi := i*len(ps)/len(ids), (i+1)*len(ps)/len(ids)
			if hi > lo {
				out[id][topic] = append([]int(nil), ps[lo:hi]...)
			}
		}
	}
	return out
}

// sleepCtx waits d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// PartitionOf is the partition kafka-go's Hash balancer (the Producer's and StateWriter's) puts a
// message with key in, among partitions partitions: FNV-1a of the key, as a signed 32-bit number,
// modulo partitions, sign dropped (Sarama's hashPartitioner). It is -1 if partitions < 1. (A
// message with a nil key is not hashed but spread round-robin; an empty key is hashed.)
func PartitionOf(key string, partitions int) int {
	if partitions < 1 {
		return -1
	}
	const offset32, prime32 = 2166136261, 16777619
	h := uint32(offset32)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= prime32
	}
	p := int32(h) % int32(partitions)
	if p < 0 {
		p = -p
	}
	return int(p)
}

// Fetching, shared by the Replayer and the StateReader.

// fetched is what one fetch of a partition gave.
type fetched[T any] struct {
	tp    topicPartition
	items []T
	next  int64 // where the next fetch starts: after the last record seen
	hwm   int64 // the partition's high-water mark, as the fetch saw it
	idle  bool  // the fetch found nothing at all from where it started
	// skipped is how many records the fetch passed over undecoded (fetchLoop's skip).
	skipped int
}

// fetchOptions tune a fetchLoop; the zero value reads everything as soon as it is there.
type fetchOptions struct {
	// minBytes is the fetch's MinBytes: the broker answers once this much is there or MaxWait
	// has passed. Large, for a topic whose news may wait, it makes a reader wake about twice a
	// second however often the topic is written, rather than once per producer batch.
	minBytes int
	// skip, if not nil, is shown each record's value first (in a buffer reused for the next
	// record): a record it returns true for is passed over and only counted, so that what a
	// reader does not want costs neither a copy nor a decode.
	skip func(value []byte) bool
}

// fetchLoop reads one partition from offset at until ctx ends, sending what each fetch gave to out
// (an empty fetch too, so the receiver learns that nothing is left). conv turns each record into
// an item, on this goroutine. Errors are retried with backoff; an offset out of range (deleted by
// retention under a slow reader) moves to the nearest offset that exists.
func fetchLoop[T any](ctx context.Context, cl *kafka.Client, log *slog.Logger, tp topicPartition, at int64, out chan<- fetched[T], opt fetchOptions, conv func(*kafka.Message) T) {
	plog := log.With("topic", tp.topic, "partition", tp.partition)
	fo := consumerOutage{log: plog, what: "fetch", level: slog.LevelWarn}
	rd := recordReader{skip: opt.skip}
	minBytes := int64(max(opt.minBytes, 1))
	for attempt := 0; ; {
		res, err := cl.Fetch(ctx, &kafka.FetchRequest{
			Topic: tp.topic, Partition: tp.partition, Offset: at,
			MinBytes: minBytes, MaxBytes: replayFetchBytes, MaxWait: replayMaxWait,
		})
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = res.Error
		}
		if errors.Is(err, kafka.OffsetOutOfRange) {
			next, rerr := resetOffset(ctx, cl, tp, at)
			if rerr == nil {
				plog.Warn("fetch offset out of range; moved", "from", at, "to", next)
				at = next
				continue
			}
			err = errors.Join(err, rerr)
		}
		var b fetched[T]
		if err == nil {
			start := at
			b = fetched[T]{tp: tp, hwm: res.HighWatermark}
			rd.skipped = 0
			at, err = rd.read(res.Records, tp, at, res.HighWatermark, func(m *kafka.Message) {
				b.items = append(b.items, conv(m))
			})
			b.skipped = rd.skipped
			if err != nil && at > start {
				err = nil // the rest is fetched again from at
			}
			b.next, b.idle = at, at == start
		}
		if err != nil {
			fo.fail(err, "offset", at)
			if !sleepCtx(ctx, consumerBackoff(attempt)) {
				return
			}
			attempt++
			continue
		}
		attempt = 0
		fo.ok()
		select {
		case out <- b:
		case <-ctx.Done():
			return
		}
	}
}

// recordReader reads the records of fetch responses, one partition's, on its fetch goroutine.
type recordReader struct {
	skip    func(value []byte) bool // may be nil
	scratch []byte                  // a record's value, while skip looks at it
	skipped int
}

// read reads the records of a fetch response from offset at on (a response may start before the
// offset asked for), skipping control batches and what rd.skip refuses, and returns the offset
// after the last record seen. A record that cannot be read ends the reading with an error.
func (rd *recordReader) read(rr kafka.RecordReader, tp topicPartition, at, hwm int64, emit func(*kafka.Message)) (int64, error) {
	batches := []kafka.RecordReader{rr}
	if s, ok := rr.(*protocol.RecordStream); ok {
		batches = s.Records // read batch by batch, to see the control batches the stream hides
	}
	for _, batch := range batches {
		_, control := batch.(*protocol.ControlBatch)
		for {
			rec, err := batch.ReadRecord()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return at, fmt.Errorf("read records of %s/%d at %d: %w", tp.topic, tp.partition, at, err)
			}
			if rec.Offset < at || control {
				at = max(at, rec.Offset+1)
				closeBytes(rec.Key, rec.Value)
				continue
			}
			var value []byte
			if rd.skip != nil && rec.Value != nil {
				rd.scratch, err = readInto(rd.scratch[:0], rec.Value)
				if err == nil && rd.skip(rd.scratch) {
					rd.skipped++
					closeBytes(rec.Key, rec.Value)
					at = rec.Offset + 1
					continue
				}
				value = bytes.Clone(rd.scratch)
			} else if rec.Value != nil {
				value, err = kafka.ReadAll(rec.Value)
			}
			var key []byte
			if err == nil {
				key, err = kafka.ReadAll(rec.Key)
			}
			if err == nil {
				emit(&kafka.Message{
					Topic: tp.topic, Partition: tp.partition, Offset: rec.Offset, HighWaterMark: hwm,
					Key: key, Value: value, Headers: rec.Headers, Time: rec.Time,
				})
			}
			closeBytes(rec.Key, rec.Value)
			if err != nil {
				return at, fmt.Errorf("read record %s/%d@%d: %w", tp.topic, tp.partition, rec.Offset, err)
			}
			at = rec.Offset + 1
		}
	}
	return at, nil
}

// readInto appends all of b to dst.
func readInto(dst []byte, b kafka.Bytes) ([]byte, error) {
	n := b.Len()
	dst = slices.Grow(dst, n)[:n]
	if _, err := io.ReadFull(b, dst); err != nil {
		return dst[:0], err
	}
	return dst, nil
}

func closeBytes(bs ...kafka.Bytes) {
	for _, b := range bs {
		if b != nil {
			b.Close()
		}
	}
}

// resetOffset is the offset to fetch from instead of at, which is out of range: the first offset
// if at is before it, the end if at is past it.
func resetOffset(ctx context.Context, cl *kafka.Client, tp topicPartition, at int64) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, replayRequestTimeout)
	defer cancel()
	res, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		tp.topic: {kafka.FirstOffsetOf(tp.partition), kafka.LastOffsetOf(tp.partition)},
	}})
	if err != nil {
		return at, err
	}
	for _, po := range res.Topics[tp.topic] {
		if po.Partition != tp.partition {
			continue
		}
		if po.Error != nil {
			return at, po.Error
		}
		switch {
		case at < po.FirstOffset:
			return po.FirstOffset, nil
		case at > po.LastOffset:
			return po.LastOffset, nil
		}
		return at, fmt.Errorf("offset %d of %s/%d is within [%d, %d] yet out of range", at, tp.topic, tp.partition, po.FirstOffset, po.LastOffset)
	}
	return at, fmt.Errorf("list offsets of %s/%d: no answer", tp.topic, tp.partition)
}

// Metrics. Label values are bounded: topic and group only. The gauges describe one member: where
// several Replayers of one group share a registry (tests), the last to write wins.

type replayVecs struct {
	events, duplicates, deadLettered, handlerErrors, skipped *prometheus.CounterVec
	lag, partitions                                          *prometheus.GaugeVec
	caughtUp, catchUpSeconds                                 *prometheus.GaugeVec
	assignments                                              *prometheus.CounterVec
}

type replayTopicMetrics struct {
	events, duplicates, deadLettered, handlerErrors, skipped prometheus.Counter
	lag, partitions                                          prometheus.Gauge
}

func (v *replayVecs) forTopic(topic, group string) *replayTopicMetrics {
	return &replayTopicMetrics{
		events:        v.events.WithLabelValues(topic, group),
		duplicates:    v.duplicates.WithLabelValues(topic, group),
		deadLettered:  v.deadLettered.WithLabelValues(topic, group),
		handlerErrors: v.handlerErrors.WithLabelValues(topic, group),
		skipped:       v.skipped.WithLabelValues(topic, group),
		lag:           v.lag.WithLabelValues(topic, group),
		partitions:    v.partitions.WithLabelValues(topic, group),
	}
}

// registerReplayVecs makes the replayer metric vectors and registers them on reg; replayers
// sharing a registry share the vectors, as consumers do (consumerRegister).
func registerReplayVecs(reg prometheus.Registerer) (*replayVecs, error) {
	labels := []string{"topic", "group"}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	}
	v := &replayVecs{
		events: counter("rtb_replay_events_total",
			"Events handed to the replay handler (each replay counts its events again).", labels...),
		duplicates: counter("rtb_replay_duplicates_total",
			"Events skipped because their id was seen recently on the same partition (a retried notice).", labels...),
		deadLettered: counter("rtb_replay_dead_lettered_total",
			"Messages that could not be read as events and were moved to the dead-letter topic.", labels...),
		handlerErrors: counter("rtb_replay_handler_errors_total",
			"Replay handler calls that failed (each is retried).", labels...),
		skipped: counter("rtb_replay_skipped_total",
			"Events of types the replay handler does not take, passed over (most without being decoded).", labels...),
		lag: gauge("rtb_replay_lag",
			"Events on this member's partitions not yet read (high-water marks less positions, summed); sum over members.", labels...),
		partitions: gauge("rtb_replay_partitions",
			"Partitions of the topic assigned to this member.", labels...),
		caughtUp: gauge("rtb_replay_caught_up",
			"1 once this member has replayed its partitions up to their ends at assignment, 0 while replaying or between assignments.", "group"),
		catchUpSeconds: gauge("rtb_replay_catch_up_seconds",
			"How long the last assignment took to catch up.", "group"),
		assignments: counter("rtb_replay_assignments_total",
			"Assignments (generations) this member replayed.", "group"),
	}
	if reg == nil {
		return v, nil
	}
	var err error
	for _, c := range []**prometheus.CounterVec{&v.events, &v.duplicates, &v.deadLettered, &v.handlerErrors, &v.skipped, &v.assignments} {
		if *c, err = consumerRegister(reg, *c); err != nil {
			return nil, err
		}
	}
	for _, g := range []**prometheus.GaugeVec{&v.lag, &v.partitions, &v.caughtUp, &v.catchUpSeconds} {
		if *g, err = consumerRegister(reg, *g); err != nil {
			return nil, err
		}
	}
	return v, nil
}

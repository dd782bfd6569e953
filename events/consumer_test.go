package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// The consumer tests run against the embedded broker (4 partitions a topic). Waits are bounded by
// deadlines and poll for a condition; nothing asserts on a fixed sleep.

const testWait = 60 * time.Second // generous: kafka-go group joins and rebalances take seconds

// partitionBalancer puts a message with key "…N" (N a digit) on partition N, so tests know where
// each campaign's events are; other keys go to partition 0.
var partitionBalancer = kafka.BalancerFunc(func(m kafka.Message, partitions ...int) int {
	if k := m.Key; len(k) > 0 && k[len(k)-1] >= '0' && k[len(k)-1] <= '9' {
		return partitions[int(k[len(k)-1]-'0')%len(partitions)]
	}
	return partitions[0]
})

// produce writes msgs with a plain kafka-go writer, acknowledged by all replicas.
func produce(t testing.TB, brokers []string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Balancer:     partitionBalancer,
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 2 * time.Millisecond,
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce %d messages: %v", len(msgs), err)
	}
}

// msgOf is the message the producer would write for e.
func msgOf(e Event) kafka.Message {
	return kafka.Message{Topic: TopicOf(e.Type), Key: []byte(e.CampaignID), Value: e.AppendJSON(nil)}
}

var testTS = time.Date(2026, 11, 22, 10, 0, 0, 123e6, time.UTC)

func win(id, campaign string) Event {
	return Event{V: Version, Type: Win, ID: id, TS: testTS, RequestID: "req-" + id, ImpID: "1",
		CampaignID: campaign, Exchange: "x", PriceMicros: 1234000, BidMicros: 1500000}
}

// recorder is a handler that remembers what it was given.
type recorder struct {
	mu     sync.Mutex
	events []Event
	counts map[string]int
	fail   func(e *Event) error // optional: an error makes the call fail
	after  func(e *Event)       // optional: called after a successful call, outside the lock
}

func newRecorder() *recorder { return &recorder{counts: map[string]int{}} }

func (r *recorder) handle(_ context.Context, e *Event) error {
	if r.fail != nil {
		if err := r.fail(e); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.events = append(r.events, *e)
	r.counts[e.ID]++
	r.mu.Unlock()
	if r.after != nil {
		r.after(e)
	}
	return nil
}

func (r *recorder) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[id]
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func (r *recorder) snapshot() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.events))
	for _, e := range r.events {
		ids = append(ids, e.ID)
	}
	return ids
}

// waitFor polls cond until it holds, failing the test with what after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testLogger logs to the test's output and lets a test wait for a line.
type testLogger struct {
	t     testing.TB
	mu    sync.Mutex
	lines []string
}

func newTestLogger(t testing.TB) (*slog.Logger, *testLogger) {
	tl := &testLogger{t: t}
	return slog.New(tl), tl
}

func (l *testLogger) Enabled(_ context.Context, level slog.Level) bool {
	return level >= slog.LevelInfo
}
func (l *testLogger) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &testLogHandler{l: l, attrs: attrs}
}
func (l *testLogger) WithGroup(string) slog.Handler { return l }
func (l *testLogger) Handle(_ context.Context, r slog.Record) error {
	return (&testLogHandler{l: l}).Handle(context.Background(), r)
}

type testLogHandler struct {
	l     *testLogger
	attrs []slog.Attr
}

func (h *testLogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.l.Enabled(ctx, level)
}
func (h *testLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &testLogHandler{l: h.l, attrs: append(slices.Clip(h.attrs), attrs...)}
}
func (h *testLogHandler) WithGroup(string) slog.Handler { return h }
func (h *testLogHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range h.attrs {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	h.l.mu.Lock()
	h.l.lines = append(h.l.lines, b.String())
	h.l.mu.Unlock()
	h.l.t.Log(b.String())
	return nil
}

func (l *testLogger) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

// running is a consumer running in the background.
type running struct {
	c      *Consumer
	cancel context.CancelFunc
	done   chan error
}

// startConsumer starts a consumer on the broker; it is stopped when the test ends if not before.
func startConsumer(t testing.TB, cfg ConsumerConfig, h Handler) *running {
	t.Helper()
	if cfg.CommitInterval == 0 {
		cfg.CommitInterval = 100 * time.Millisecond
	}
	if cfg.LagInterval == 0 {
		cfg.LagInterval = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger, _ = newTestLogger(t)
	}
	c, err := NewConsumer(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the consumer and waits for Run to return, failing the test if it returns an error
// or takes too long.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Run: %v", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of cancel")
	}
}

// metricValue is the value of the metric name{topic,group} in reg (-1 if absent).
func metricValue(t testing.TB, reg *prometheus.Registry, name, topic, group string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if (l.GetName() == "topic" && l.GetValue() != topic) || (l.GetName() == "group" && l.GetValue() != group) {
					continue metrics
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// committed is the group's committed offset on topic/partition (-1 for none).
func committed(t testing.TB, brokers []string, group, topic string, partition int) int64 {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	res, err := cl.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{
		GroupID: group, Topics: map[string][]int{topic: {partition}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Topics[topic] {
		if p.Partition == partition {
			return p.CommittedOffset
		}
	}
	return -1
}

var eventTopics = []string{TopicBids, TopicWins, TopicImpressions, TopicClicks, TopicLosses}

func sameEvent(a, b Event) bool {
	if !a.TS.Equal(b.TS) {
		return false
	}
	a.TS, b.TS = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// One event of every type, produced the way the producer does, is handled once with its fields.
func TestConsumerRoundTrip(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	want := map[string]Event{}
	var msgs []kafka.Message
	for i, typ := range []Type{Bid, Win, Bill, Imp, Click, Loss} {
		e := Event{V: Version, Type: typ, ID: fmt.Sprintf("rt-%s-%d", typ, i), TS: testTS.Add(time.Duration(i) * time.Millisecond),
			RequestID: "req \"quoted\" ✓", ImpID: strconv.Itoa(i), CampaignID: "c-" + strconv.Itoa(i%4),
			CreativeID: "cr-é", DealID: "deal\t1", Exchange: "ex\\1", PriceMicros: int64(1000 * i), BidMicros: int64(2000 * i),
			MinToWinMicros: int64(i % 2 * 777), Reason: i}
		want[e.ID] = e
		msgs = append(msgs, msgOf(e))
	}
	produce(t, b.Addrs(), msgs...)

	reg := prometheus.NewRegistry()
	rec := newRecorder()
	startConsumer(t, ConsumerConfig{Brokers: b.Addrs(), Group: "rt", Topics: eventTopics, Registerer: reg}, rec.handle)
	waitFor(t, testWait, "all six events", func() bool { return rec.len() >= len(want) })

	for _, got := range rec.snapshot() {
		w, ok := want[got.ID]
		if !ok {
			t.Errorf("unexpected event %+v", got)
			continue
		}
		if !sameEvent(got, w) {
			t.Errorf("event %s:\n got %+v\nwant %+v", got.ID, got, w)
		}
		if n := rec.count(got.ID); n != 1 {
			t.Errorf("event %s handled %d times", got.ID, n)
		}
	}
	for _, topic := range eventTopics {
		wantN := 1.0
		if topic == TopicWins {
			wantN = 2 // win and bill
		}
		if got := metricValue(t, reg, "rtb_events_consumed_total", topic, "rt"); got != wantN {
			t.Errorf("rtb_events_consumed_total{topic=%s} = %v, want %v", topic, got, wantN)
		}
		waitFor(t, testWait, "lag of "+topic+" to reach 0", func() bool {
			return metricValue(t, reg, "rtb_consumer_lag", topic, "rt") == 0
		})
	}
	time.Sleep(200 * time.Millisecond) // give a wrong second delivery a chance to show
	if n := rec.len(); n != len(want) {
		t.Errorf("handler called %d times, want %d", n, len(want))
	}
}

// A consumer stopped mid-stream commits what it handled; the next member of the group resumes
// there: every event handled, none twice.
func TestConsumerResumesFromCommittedOffset(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	const n = 300
	var msgs []kafka.Message
	for i := range n {
		msgs = append(msgs, msgOf(win(fmt.Sprintf("e-%03d", i), "c-"+strconv.Itoa(i%4))))
	}
	produce(t, b.Addrs(), msgs...)

	rec := newRecorder()
	var once sync.Once
	reached, cancelled := make(chan struct{}), make(chan struct{})
	rec.after = func(*Event) {
		if rec.len() >= n/3 {
			// Hold this event until the consumer's context is cancelled: a stop with an event in hand.
			once.Do(func() { close(reached); <-cancelled })
		}
	}
	cfg := ConsumerConfig{Brokers: b.Addrs(), Group: "resume", Topics: []string{TopicWins}}
	first := startConsumer(t, cfg, rec.handle)
	select {
	case <-reached:
	case <-time.After(testWait):
		t.Fatal("first consumer did not reach a third of the events")
	}
	t0 := time.Now()
	first.cancel()
	close(cancelled)
	first.stop(t)
	t.Logf("first consumer stopped (event in hand finished, offsets committed, group left) in %v", time.Since(t0).Round(time.Millisecond))
	handledFirst := rec.len()
	if handledFirst >= n {
		t.Fatalf("first consumer handled all %d events before stopping; the test proves nothing", n)
	}

	rec.after = nil
	startConsumer(t, cfg, rec.handle)
	waitFor(t, testWait, "all events", func() bool { return rec.len() >= n })
	time.Sleep(200 * time.Millisecond)
	for i := range n {
		id := fmt.Sprintf("e-%03d", i)
		if c := rec.count(id); c != 1 {
			t.Errorf("event %s handled %d times", id, c)
		}
	}
	t.Logf("first consumer handled %d, second %d", handledFirst, rec.len()-handledFirst)
}

// An exchange retrying a notice produces the same event id twice: it is handled once, within a
// consumer's life and across a restart of the group (the window is warmed from before the
// committed offset).
func TestConsumerSkipsDuplicates(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	produce(t, b.Addrs(), msgOf(win("x", "c-1")), msgOf(win("y", "c-1")), msgOf(win("x", "c-1")), msgOf(win("z", "c-1")))

	reg := prometheus.NewRegistry()
	rec := newRecorder()
	cfg := ConsumerConfig{Brokers: b.Addrs(), Group: "dup", Topics: []string{TopicWins}, Registerer: reg}
	first := startConsumer(t, cfg, rec.handle)
	waitFor(t, testWait, "z", func() bool { return rec.count("z") == 1 })
	waitFor(t, testWait, "the duplicate counter", func() bool {
		return metricValue(t, reg, "rtb_events_duplicate_total", TopicWins, "dup") == 1
	})
	if got := rec.ids(); !slices.Equal(got, []string{"x", "y", "z"}) {
		t.Errorf("handled %v, want [x y z]", got)
	}
	waitFor(t, testWait, "the commit of all four", func() bool { return committed(t, b.Addrs(), "dup", TopicWins, 1) == 4 })
	first.stop(t)

	// The exchange retries x once more, after the consumer restarted: a new process, an empty
	// window, starting at the committed offset 4.
	produce(t, b.Addrs(), msgOf(win("x", "c-1")), msgOf(win("w", "c-1")))
	reg2 := prometheus.NewRegistry()
	cfg.Registerer = reg2
	startConsumer(t, cfg, rec.handle)
	waitFor(t, testWait, "w", func() bool { return rec.count("w") == 1 })
	if c := rec.count("x"); c != 1 {
		t.Errorf("x handled %d times across the restart, want 1", c)
	}
	waitFor(t, testWait, "the duplicate counter after restart", func() bool {
		return metricValue(t, reg2, "rtb_events_duplicate_total", TopicWins, "dup") == 1
	})
	if got := metricValue(t, reg2, "rtb_events_consumed_total", TopicWins, "dup"); got != 1 {
		t.Errorf("second consumer handled %v events, want 1 (w)", got)
	}
}

// Messages that are not events go to rtb.dlq with the error and where they came from; the
// consumer commits them and handles what follows.
func TestConsumerDeadLetters(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	good := win("good", "c-1")
	withField := func(f func(m map[string]any)) []byte {
		m := map[string]any{"v": 1, "type": "win", "id": "p", "ts": "2026-11-22T10:00:00.123Z",
			"request_id": "r", "imp_id": "1", "campaign_id": "c-1", "exchange": "x", "price_micros": 1, "bid_micros": 1, "reason": 0}
		f(m)
		return mustJSON(m)
	}
	poison := []struct {
		name, value, errText string
	}{
		{"broken json", `{"v":1,"type":"win",`, "decode event"},
		{"unknown version", string(withField(func(m map[string]any) { m["v"] = 2 })), "version"},
		{"unknown field", string(withField(func(m map[string]any) { m["surprise"] = true })), "surprise"},
		{"missing id", string(withField(func(m map[string]any) { delete(m, "id") })), "without id"},
		{"missing campaign", string(withField(func(m map[string]any) { delete(m, "campaign_id") })), "without campaign_id"},
		{"missing ts", string(withField(func(m map[string]any) { delete(m, "ts") })), "without ts"},
		{"negative price", string(withField(func(m map[string]any) { m["price_micros"] = -5 })), "negative"},
		{"unknown type", string(withField(func(m map[string]any) { m["type"] = "view" })), "unknown type"},
		{"empty", "", "decode event"},
		{"wrong topic", string(withField(func(m map[string]any) { m["type"] = "click" })), "belongs on rtb.clicks"},
	}
	var msgs []kafka.Message
	for _, p := range poison {
		msgs = append(msgs, kafka.Message{Topic: TopicWins, Key: []byte("c-1"), Value: []byte(p.value),
			Headers: []kafka.Header{{Key: "trace", Value: []byte(p.name)}}})
	}
	msgs = append(msgs, msgOf(good))
	produce(t, b.Addrs(), msgs...)

	reg := prometheus.NewRegistry()
	rec := newRecorder()
	startConsumer(t, ConsumerConfig{Brokers: b.Addrs(), Group: "dlq", Topics: []string{TopicWins}, Registerer: reg}, rec.handle)
	waitFor(t, testWait, "the good event after the poison", func() bool { return rec.count("good") == 1 })
	if n := rec.len(); n != 1 {
		t.Errorf("handler saw %d events, want 1: %v", n, rec.ids())
	}
	if got := metricValue(t, reg, "rtb_events_dead_lettered_total", TopicWins, "dlq"); got != float64(len(poison)) {
		t.Errorf("rtb_events_dead_lettered_total = %v, want %d", got, len(poison))
	}
	waitFor(t, testWait, "the commit past the poison", func() bool {
		return committed(t, b.Addrs(), "dlq", TopicWins, 1) == int64(len(poison)+1)
	})

	letters := readDLQ(t, b.Addrs(), len(poison))
	for i, p := range poison {
		l := letters[i]
		h := map[string]string{}
		for _, hd := range l.Headers {
			h[hd.Key] = string(hd.Value)
		}
		if string(l.Key) != "c-1" || string(l.Value) != p.value {
			t.Errorf("%s: dead letter key %q value %q, want the original c-1 %q", p.name, l.Key, l.Value, p.value)
		}
		if h["trace"] != p.name {
			t.Errorf("%s: original header lost: %v", p.name, h)
		}
		if !strings.Contains(h[HeaderDLQError], p.errText) {
			t.Errorf("%s: error header %q does not mention %q", p.name, h[HeaderDLQError], p.errText)
		}
		if h[HeaderDLQTopic] != TopicWins || h[HeaderDLQPartition] != "1" || h[HeaderDLQOffset] != strconv.Itoa(i) || h[HeaderDLQGroup] != "dlq" {
			t.Errorf("%s: source headers %v, want %s/1 offset %d group dlq", p.name, h, TopicWins, i)
		}
		if _, err := time.Parse(time.RFC3339Nano, h[HeaderDLQTime]); err != nil {
			t.Errorf("%s: time header: %v", p.name, err)
		}
	}
}

// readDLQ reads the first n messages of rtb.dlq.
func readDLQ(t testing.TB, brokers []string, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: TopicDLQ, Partition: 0, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	var out []kafka.Message
	for len(out) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("read %s: %d of %d messages: %v", TopicDLQ, len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

// While rtb.dlq cannot be written, a poison message is not committed and what follows it on the
// partition waits; when the DLQ is back, the letter lands and the consumer moves on.
func TestConsumerDLQOutageBlocksCommit(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	cl := &kafka.Client{Addr: kafka.TCP(b.Addrs()...), Timeout: 10 * time.Second}
	res, err := cl.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{TopicDLQ}})
	if err != nil || res.Errors[TopicDLQ] != nil {
		t.Fatalf("delete %s: %v %v", TopicDLQ, err, res)
	}
	produce(t, b.Addrs(), kafka.Message{Topic: TopicWins, Key: []byte("c-2"), Value: []byte("not json")}, msgOf(win("after", "c-2")))

	log, logs := newTestLogger(t)
	rec := newRecorder()
	startConsumer(t, ConsumerConfig{Brokers: b.Addrs(), Group: "dlq-down", Topics: []string{TopicWins}, Logger: log}, rec.handle)
	waitFor(t, testWait, "the DLQ outage to be logged", func() bool { return logs.count("dead-letter write failing") == 1 })
	time.Sleep(300 * time.Millisecond) // several commit intervals: nothing may be committed meanwhile
	if c := committed(t, b.Addrs(), "dlq-down", TopicWins, 2); c >= 0 {
		t.Fatalf("committed offset %d while the dead letter was not written", c)
	}
	if n := rec.count("after"); n != 0 {
		t.Fatal("the event after the poison was handled before the poison was dead-lettered")
	}

	if err := EnsureTopics(context.Background(), b.Addrs(), Topics(4)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, testWait, "the event after the poison", func() bool { return rec.count("after") == 1 })
	waitFor(t, testWait, "the commit", func() bool { return committed(t, b.Addrs(), "dlq-down", TopicWins, 2) == 2 })
	if l := readDLQ(t, b.Addrs(), 1)[0]; string(l.Value) != "not json" {
		t.Errorf("dead letter %q, want the poison", l.Value)
	}
	if n := logs.count("dead-letter write failing"); n != 1 {
		t.Errorf("the outage was logged %d times, want once", n)
	}
	if n := logs.count("dead-letter write recovered"); n != 1 {
		t.Errorf("the recovery was logged %d times, want once", n)
	}
}

// A handler error is retried: the event is not skipped, nothing after it on its partition is
// handled, and its offset is not committed until the handler succeeds.
func TestConsumerRetriesHandlerErrors(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	produce(t, b.Addrs(), msgOf(win("w", "c-0")), msgOf(win("x", "c-0")), msgOf(win("y", "c-0")))

	var failing atomic.Bool
	var attempts atomic.Int64
	failing.Store(true)
	rec := newRecorder()
	rec.fail = func(e *Event) error {
		if e.ID != "x" {
			return nil
		}
		attempts.Add(1)
		if failing.Load() {
			return errors.New("downstream unavailable")
		}
		return nil
	}
	reg := prometheus.NewRegistry()
	log, logs := newTestLogger(t)
	startConsumer(t, ConsumerConfig{Brokers: b.Addrs(), Group: "retry", Topics: []string{TopicWins}, Registerer: reg, Logger: log}, rec.handle)

	// w is committed while x is being retried; x is not.
	waitFor(t, testWait, "w's commit", func() bool { return committed(t, b.Addrs(), "retry", TopicWins, 0) == 1 })
	waitFor(t, testWait, "five attempts at x", func() bool { return attempts.Load() >= 5 })
	if c := committed(t, b.Addrs(), "retry", TopicWins, 0); c != 1 {
		t.Fatalf("committed offset %d while x (offset 1) fails, want 1", c)
	}
	if rec.count("y") != 0 || rec.count("x") != 0 {
		t.Fatalf("handled %v while x fails", rec.ids())
	}
	if got := metricValue(t, reg, "rtb_consumer_handler_errors_total", TopicWins, "retry"); got < 5 {
		t.Errorf("rtb_consumer_handler_errors_total = %v, want ≥ 5", got)
	}

	failing.Store(false)
	waitFor(t, testWait, "y", func() bool { return rec.count("y") == 1 })
	waitFor(t, testWait, "the commit of all three", func() bool { return committed(t, b.Addrs(), "retry", TopicWins, 0) == 3 })
	if got := rec.ids(); !slices.Equal(got, []string{"w", "x", "y"}) {
		t.Errorf("handled %v, want [w x y]", got)
	}
	if n := logs.count("handler failing"); n != 1 {
		t.Errorf("the handler outage was logged %d times, want once (state changes only)", n)
	}
	if n := logs.count("handler recovered"); n != 1 {
		t.Errorf("the handler recovery was logged %d times, want once", n)
	}
}

// Lag counts what the group has not committed and falls to zero once it has.
func TestConsumerLag(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	var msgs []kafka.Message
	for i := range 10 {
		msgs = append(msgs, msgOf(win(fmt.Sprintf("l-%d", i), "c-3")))
	}
	produce(t, b.Addrs(), msgs...)

	release := make(chan struct{})
	rec := newRecorder()
	rec.fail = func(*Event) error { <-release; return nil }
	reg := prometheus.NewRegistry()
	startConsumer(t, ConsumerConfig{Brokers: b.Addrs(), Group: "lag", Topics: []string{TopicWins}, Registerer: reg}, rec.handle)
	waitFor(t, testWait, "lag 10 while the handler is stuck", func() bool {
		return metricValue(t, reg, "rtb_consumer_lag", TopicWins, "lag") == 10
	})
	close(release)
	waitFor(t, testWait, "lag 0", func() bool { return metricValue(t, reg, "rtb_consumer_lag", TopicWins, "lag") == 0 })
	if n := rec.len(); n != 10 {
		t.Errorf("handled %d, want 10", n)
	}
}

// Two members of a group split the partitions; when one leaves, the other takes them all over
// and every event is handled.
func TestConsumerGroupSplitsAndTakesOver(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	cfg := ConsumerConfig{Brokers: b.Addrs(), Group: "split", Topics: []string{TopicWins}}
	a, bb := newRecorder(), newRecorder()
	startConsumer(t, cfg, a.handle)
	cb := startConsumer(t, cfg, bb.handle)

	var all []string
	seq := 0
	// round produces one event on each partition and waits until they are all handled, returning
	// which partitions each member handled them on.
	round := func() (pa, pb map[int]bool) {
		var msgs []kafka.Message
		var ids []string
		for p := range 4 {
			id := fmt.Sprintf("s-%04d-p%d", seq, p)
			seq++
			ids = append(ids, id)
			msgs = append(msgs, msgOf(win(id, "c-"+strconv.Itoa(p))))
		}
		all = append(all, ids...)
		produce(t, b.Addrs(), msgs...)
		waitFor(t, testWait, "a round", func() bool {
			for _, id := range ids {
				if a.count(id)+bb.count(id) == 0 {
					return false
				}
			}
			return true
		})
		pa, pb = map[int]bool{}, map[int]bool{}
		for _, id := range ids {
			p := int(id[len(id)-1] - '0')
			if a.count(id) > 0 {
				pa[p] = true
			}
			if bb.count(id) > 0 {
				pb[p] = true
			}
		}
		return pa, pb
	}

	t0 := time.Now()
	deadline := t0.Add(testWait)
	for {
		pa, pb := round()
		if len(pa) > 0 && len(pb) > 0 && len(pa)+len(pb) == 4 {
			t.Logf("split after %v: a has %v, b has %v", time.Since(t0).Round(time.Millisecond), pa, pb)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the members did not split the partitions within %v (last round a=%v b=%v)", testWait, pa, pb)
		}
		time.Sleep(200 * time.Millisecond)
	}

	cb.stop(t)
	t1 := time.Now()
	for {
		pa, _ := round()
		if len(pa) == 4 {
			t.Logf("takeover %v after b left", time.Since(t1).Round(time.Millisecond))
			break
		}
		if time.Since(t1) > testWait {
			t.Fatalf("a did not take over all partitions within %v (last round %v)", testWait, pa)
		}
	}
	dups := 0
	for _, id := range all {
		switch n := a.count(id) + bb.count(id); {
		case n == 0:
			t.Errorf("event %s never handled", id)
		case n > 1:
			dups++
		}
		if a.count(id) > 1 || bb.count(id) > 1 {
			t.Errorf("event %s handled twice by one member", id)
		}
	}
	t.Logf("%d events, %d handled by both members (allowed: at-least-once across a rebalance)", len(all), dups)
}

// Consumers of any groups share one registry: the second registration finds the first's vectors.
func TestConsumersShareRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := func(context.Context, *Event) error { return nil }
	c1, err := NewConsumer(ConsumerConfig{Brokers: []string{"127.0.0.1:1"}, Group: "g1", Topics: []string{TopicWins}, Registerer: reg}, h)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := NewConsumer(ConsumerConfig{Brokers: []string{"127.0.0.1:1"}, Group: "g1", Topics: []string{TopicWins, TopicClicks}, Registerer: reg}, h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewConsumer(ConsumerConfig{Brokers: []string{"127.0.0.1:1"}, Group: "g2", Topics: []string{TopicWins}, Registerer: reg}, h); err != nil {
		t.Fatal(err)
	}
	c1.metrics[TopicWins].consumed.Inc()
	c2.metrics[TopicWins].consumed.Inc()
	if got := metricValue(t, reg, "rtb_events_consumed_total", TopicWins, "g1"); got != 2 {
		t.Errorf("shared counter = %v, want 2", got)
	}
	if got := metricValue(t, reg, "rtb_events_consumed_total", TopicWins, "g2"); got != 0 {
		t.Errorf("g2 counter = %v, want 0 (present from the start)", got)
	}

	// A different collector under one of the names is an error, not a panic.
	bad := prometheus.NewRegistry()
	bad.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "rtb_events_consumed_total", Help: "other"}))
	if _, err := NewConsumer(ConsumerConfig{Brokers: []string{"127.0.0.1:1"}, Group: "g", Topics: []string{TopicWins}, Registerer: bad}, h); err == nil {
		t.Error("NewConsumer accepted a registry with a conflicting metric")
	}
}

func TestNewConsumerRefusals(t *testing.T) {
	h := func(context.Context, *Event) error { return nil }
	ok := ConsumerConfig{Brokers: []string{"127.0.0.1:1"}, Group: "g", Topics: []string{TopicWins}}
	for name, mod := range map[string]func(*ConsumerConfig){
		"no group":       func(c *ConsumerConfig) { c.Group = "" },
		"no topics":      func(c *ConsumerConfig) { c.Topics = nil },
		"no brokers":     func(c *ConsumerConfig) { c.Brokers = nil },
		"repeated topic": func(c *ConsumerConfig) { c.Topics = []string{TopicWins, TopicWins} },
		"empty topic":    func(c *ConsumerConfig) { c.Topics = []string{""} },
	} {
		cfg := ok
		mod(&cfg)
		if _, err := NewConsumer(cfg, h); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewConsumer(ok, nil); err == nil {
		t.Error("nil handler: accepted")
	}
	c, err := NewConsumer(ok, h)
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.DedupeWindow != 1<<20 || c.window.Size() != 1<<20 {
		t.Errorf("default window %d", c.cfg.DedupeWindow)
	}
}

// Warm-up reads back the configured number of events before the offset a partition is taken up
// at, skips what the window already has, and handles nothing.
func TestConsumerWarmup(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	var msgs []kafka.Message
	for i := range 10 {
		msgs = append(msgs, msgOf(win(fmt.Sprintf("w-%d", i), "c-0")))
	}
	msgs = append(msgs[:5], append([]kafka.Message{{Topic: TopicWins, Key: []byte("c-0"), Value: []byte("poison")}}, msgs[5:]...)...)
	produce(t, b.Addrs(), msgs...) // offsets: w-0..w-4 0-4, poison 5, w-5..w-9 6-10

	calls := 0
	newC := func(warm int) *Consumer {
		log, _ := newTestLogger(t)
		c, err := NewConsumer(ConsumerConfig{Brokers: b.Addrs(), Group: "warm", Topics: []string{TopicWins},
			DedupeWarmup: warm, DedupeWindow: 100, Logger: log}, func(context.Context, *Event) error { calls++; return nil })
		if err != nil {
			t.Fatal(err)
		}
		c.client = &kafka.Client{Addr: kafka.TCP(b.Addrs()...), Timeout: 10 * time.Second}
		return c
	}
	seen := func(c *Consumer) (ids []string) {
		for i := range 10 {
			if id := fmt.Sprintf("w-%d", i); c.window.Seen(id) {
				ids = append(ids, id)
			}
		}
		return ids
	}
	ctx := context.Background()

	c := newC(5)
	if from := c.warmup(ctx, TopicWins, 0, 9, 9); from != 4 {
		t.Errorf("warm-up from %d, want 4", from)
	}
	if got := seen(c); !slices.Equal(got, []string{"w-4", "w-5", "w-6", "w-7"}) { // offsets 4-8, 5 is poison
		t.Errorf("window after warm-up to 9: %v", got)
	}

	c = newC(5)
	if from := c.warmup(ctx, TopicWins, 0, 9, 7); from != 4 {
		t.Errorf("warm-up from %d, want 4", from)
	}
	if got := seen(c); !slices.Equal(got, []string{"w-4", "w-5"}) { // 7 and 8 are known already
		t.Errorf("window after warm-up to 9 knowing 7-8: %v", got)
	}

	c = newC(50)
	if from := c.warmup(ctx, TopicWins, 0, 3, 3); from != 0 || c.window.Len() != 3 {
		t.Errorf("warm-up past the log start: from %d, %d ids", from, c.window.Len())
	}

	c = newC(-1)
	if from := c.warmup(ctx, TopicWins, 0, 9, 9); from != 9 || c.window.Len() != 0 {
		t.Errorf("disabled warm-up: from %d, %d ids", from, c.window.Len())
	}

	c = newC(0) // default: the window (100) over the 4 partitions of rtb.wins
	if n := c.warmupPerPartition(ctx); n != 25 {
		t.Errorf("default warm-up %d a partition, want 25", n)
	}
	if calls != 0 {
		t.Errorf("warm-up called the handler %d times", calls)
	}
}

// The broker goes away and comes back (with its log): the consumer rides it out, logs the outage
// once rather than per attempt, and handles everything, once.
func TestConsumerSurvivesBrokerRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	// Not startTestBroker: this test closes the broker itself, and Broker.Close may run only once.
	b, err := StartBroker(context.Background(), BrokerConfig{Addr: addr, DataDir: dir, Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	var closeOnce sync.Once
	t.Cleanup(func() { closeOnce.Do(b.Close) })
	produce(t, b.Addrs(), msgOf(win("before", "c-1")))

	log, logs := newTestLogger(t)
	rec := newRecorder()
	startConsumer(t, ConsumerConfig{Brokers: b.Addrs(), Group: "restart", Topics: []string{TopicWins}, Logger: log}, rec.handle)
	waitFor(t, testWait, "the first event", func() bool { return rec.count("before") == 1 })
	waitFor(t, testWait, "its commit", func() bool { return committed(t, b.Addrs(), "restart", TopicWins, 1) == 1 })

	closeOnce.Do(b.Close)
	time.Sleep(2 * time.Second) // an outage long enough for fetches and heartbeats to fail
	b2, err := StartBroker(context.Background(), BrokerConfig{Addr: addr, DataDir: dir, Partitions: 4})
	if err != nil {
		t.Fatalf("restart broker on %s: %v", addr, err)
	}
	t.Cleanup(b2.Close)
	produce(t, b2.Addrs(), msgOf(win("after", "c-1")))
	waitFor(t, testWait, "the event after the restart", func() bool { return rec.count("after") == 1 })
	if n := rec.count("before"); n != 1 {
		t.Errorf("the event before the restart was handled %d times", n)
	}
	if n := logs.count("fetch failing"); n > 1 {
		t.Errorf("the fetch outage was logged %d times, want at most once", n)
	}
}

// BenchmarkConsumerThroughput: events a second one consumer handles from a backlog on the embedded
// broker (4 partitions, no-op handler, dedupe and commits on), first event to last.
func BenchmarkConsumerThroughput(b *testing.B) {
	br := startTestBroker(b, "")
	const n = 50_000
	msgs := make([]kafka.Message, 0, n)
	for i := range n {
		msgs = append(msgs, msgOf(win(fmt.Sprintf("0190f3c2-7d1e-7a4b-9c2d-%012d", i), "c-"+strconv.Itoa(i%4))))
	}
	produce(b, br.Addrs(), msgs...)
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		var handled atomic.Int64
		var first, last atomic.Int64
		h := func(context.Context, *Event) error {
			now := time.Now().UnixNano()
			first.CompareAndSwap(0, now)
			last.Store(now)
			handled.Add(1)
			return nil
		}
		log := slog.New(slog.DiscardHandler)
		r := startConsumer(b, ConsumerConfig{Brokers: br.Addrs(), Group: fmt.Sprintf("bench-%d", i), Topics: []string{TopicWins}, Logger: log}, h)
		waitFor(b, 5*testWait, "the backlog", func() bool { return handled.Load() >= n })
		r.stop(b)
		total += time.Duration(last.Load() - first.Load())
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "events/s")
}

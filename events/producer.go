package events

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// ProducerConfig configures a Producer.
type ProducerConfig struct {
	Brokers      []string
	SpillDir     string        // required: directory of the spill file for money events (created if missing)
	QueueSize    int           // events buffered in memory before the queue counts as full; default 65536 (money and the rest have one queue each)
	BatchTimeout time.Duration // longest a money event waits to be batched; default 5ms (kafka-go's default 1s is far too slow for pacing)
	// OtherBatchTimeout is BatchTimeout for the other events (bid log, traffic, losses, clicks),
	// which nothing waits for within milliseconds; default 250ms. Every write costs kafka-go an
	// allocation of BatchSize messages per partition it touches, so writing the bid log of a few
	// hundred bids a second every 5 ms made tens of MB of garbage a second; and every write is a
	// burst on the cores the requests need (the writer, the broker, the consumers it wakes): at
	// 10,000 campaigns and 10,000 requests/s, 250ms instead of 50ms took the p99 from ~1.3 ms to
	// ~0.92 ms (median of four runs each).
	OtherBatchTimeout time.Duration
	BatchSize         int                   // most events in one write; default 256
	WriteTimeout      time.Duration         // longest one write to Kafka (metadata, then produce: half each) may take before its events count as undelivered; default 5s
	Registerer        prometheus.Registerer // may be nil
	Logger            *slog.Logger          // may be nil
}

// Defaults of ProducerConfig.
const (
	DefaultQueueSize         = 65536
	DefaultBatchTimeout      = 5 * time.Millisecond
	DefaultOtherBatchTimeout = 250 * time.Millisecond
	DefaultBatchSize         = 256
	DefaultWriteTimeout      = 5 * time.Second
)

const (
	// One write call carries at most this many bytes of events, so each partition's batch stays
	// under Kafka's default message.max.bytes (1 MiB) and kafka-go never splits a partition's
	// share of a call in two (a split could let a later batch succeed where an earlier one failed).
	prodMaxBatchBytes = 768 << 10
	prodRecordCap     = 512 // encoded events are ~300 bytes; larger ones grow their record once

	prodReplayBackoffMin = 100 * time.Millisecond
	prodReplayBackoffMax = 2 * time.Second
	prodDownBackoffMin   = 250 * time.Millisecond
	prodDownBackoffMax   = 5 * time.Second
	prodEndsRetry        = 5 * time.Second
	prodLogEvery         = time.Minute // repeated failures of one outage are logged at most this often
	prodReportEvery      = 10 * time.Second
)

// The topics a producer writes, indexed for metrics without map lookups on the request path.
var prodTopics = [...]string{TopicBids, TopicWins, TopicImpressions, TopicClicks, TopicLosses}

const prodNumTopics = len(prodTopics)

func prodTopicIndex(t Type) int {
	switch t {
	case Bid, Traffic:
		return 0
	case Win, Bill:
		return 1
	case Imp:
		return 2
	case Click:
		return 3
	case Loss:
		return 4
	}
	return -1
}

func prodTopicByName(topic string) int {
	for i, t := range prodTopics {
		if t == topic {
			return i
		}
	}
	return -1
}

// Why events are dropped (the reason label of rtb_events_dropped_total).
const (
	dropQueueFull   = iota // the in-memory queue was full (never money: money spills)
	dropBrokerDown         // Kafka could not be written (never money: money spills)
	dropClosed             // published after Close, or still queued when Close gave up
	dropInvalid            // an event of no known type
	dropSpillFailed        // money that neither Kafka nor the disk took before Close returned
	prodNumReasons
)

var prodDropReasons = [prodNumReasons]string{"queue_full", "broker_down", "closed", "invalid", "spill_failed"}

// Producer writes events to Kafka without ever blocking its caller and without ever silently
// dropping money.
//
// Publish encodes the event into a pooled record and hands it to a bounded queue (one for money
// events, one for the rest). A goroutine per queue batches records (up to BatchSize, waiting at
// most BatchTimeout after the first) and writes each batch synchronously, one write at a time, so
// that the result of every write is known before the next one is decided; Prometheus's
// notifier/sendloop.go is the model.
//
// Bids, clicks and losses are dropped, and counted, when their queue is full or Kafka is down.
//
// Money events (win, bill, imp) go to the spill file instead: when their queue is full, when a
// write to Kafka fails, and — so that no newer event of a campaign overtakes an older one — for as
// long as the spill holds anything. The money goroutine is the only writer of the spill and the
// only replayer of it, so one goroutine decides the order of everything: queued records are taken
// oldest first, the queue before its overflow, and while the spill is not empty new records are
// appended behind it while the oldest spilled records are replayed. A record leaves the spill only
// after Kafka acknowledged it (acks from all in-sync replicas). A write that failed without an
// answer may have reached Kafka anyway; before such a record is replayed, its partition is read
// from the offset where it could have landed and the record is skipped if it is there, so a broker
// that dies between storing a batch and answering does not produce duplicates.
//
// Events published after a write is known failed are never retried ahead of it. At-least-once
// remains: a process that dies between Kafka's acknowledgement of a replayed batch and the fsync
// recording it, or whose Close deadline cuts a replay write short, replays that batch again next
// time; consumers are idempotent (same event id twice changes nothing).
type Producer struct {
	cfg ProducerConfig
	log *slog.Logger
	m   *prodMetrics

	pool sync.Pool // *prodRecord

	mu     sync.RWMutex // Publish holds it shared; Close exclusively, to stop Publish
	closed bool

	moneyCh chan *prodRecord
	otherCh chan *prodRecord

	// Money published while moneyCh is full waits here, behind everything in moneyCh; the money
	// goroutine spills it.
	ovMu     sync.Mutex
	ov       []*prodRecord
	ovActive atomic.Bool
	ovLen    atomic.Int64
	ovSignal chan struct{}

	closing      chan struct{} // Close began: flush and stop
	abort        chan struct{} // Close's context is done: spill money, drop the rest, now
	abortOnce    sync.Once
	writeCtx     context.Context // cancelled on abort
	cancelWrites context.CancelFunc
	moneyDone    chan struct{}
	otherDone    chan struct{}
	reportDone   chan struct{}
	closeOnce    sync.Once
	closeErr     error

	transport *kafka.Transport
	client    *kafka.Client
	moneyW    *kafka.Writer
	otherW    *kafka.Writer
	callLimit time.Duration // bound of one write call: metadata and produce

	// Per partition, an offset at or below which nothing this producer sends from now on can land:
	// the offset after the last one Kafka acknowledged to us, or the end of the partition when
	// last listed.
	endsMu sync.Mutex
	ends   map[prodTP]int64

	// Owned by the money goroutine.
	spill        *spillLog
	spillPending [prodNumTopics]int // records in the spill buffer, not yet durable
	win          prodWindow
	moneyBatch   []*prodRecord
	moneyMsgs    []kafka.Message
	moneyState   prodOutage
	replayAt     time.Time
	replayWait   time.Duration
	replayStart  time.Time
	replayedRun  int
	spillFailing bool
	spillWaiters []*prodWaiter // of records in the spill buffer: told when flushSpill makes them durable
	spillLogAt   time.Time
	queueFullLog bool
	endsKnown    bool
	endsRetryAt  time.Time

	// Owned by the other goroutine.
	otherBatch []*prodRecord
	otherMsgs  []kafka.Message
	otherState prodOutage
	downUntil  time.Time
	downWait   time.Duration

	// For the reporter: drops of Publish, which must not log itself.
	queueFullDrops atomic.Int64
	closedDrops    atomic.Int64
	invalidDrops   atomic.Int64
	lateLogAt      atomic.Int64
}

// prodRecord is one encoded event: its key (the campaign id) followed by its JSON value.
type prodRecord struct {
	buf   []byte
	klen  int
	topic uint8
	part  int32       // partition of the last write attempt, -1 before one (set by prodBalancer)
	floor int64       // lowest offset where an unanswered attempt may have landed, -1 if none may have
	wait  *prodWaiter // told when the event is durable (PublishDurable); nil for Publish
}

// prodWaiter carries the one answer a PublishDurable caller waits for: nil once Kafka acknowledged
// the event or the spill fsynced it, else why neither will happen. Pooled; the caller returns it
// after reading the answer, and abandons it (to the garbage collector) when it stops waiting.
type prodWaiter struct{ ch chan error }

var prodWaiters = sync.Pool{New: func() any { return &prodWaiter{ch: make(chan error, 1)} }}

var prodTimers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// durable tells the record's waiter, if any, how its event ended.
func (r *prodRecord) durable(err error) {
	if r.wait != nil {
		r.wait.ch <- err
		r.wait = nil
	}
}

// ErrNotDurable is what PublishDurable returns when the event was not made durable in time: it may
// still be, later (the caller answers "retry" and the retry carries the same event id).
var ErrNotDurable = errors.New("event not yet durable")

// ErrProducerClosed is what PublishDurable returns after Close.
var ErrProducerClosed = errors.New("events producer closed")

func (r *prodRecord) key() []byte   { return r.buf[:r.klen:r.klen] }
func (r *prodRecord) value() []byte { return r.buf[r.klen:] }

type prodTP struct {
	topic string
	part  int32
}

// prodOutage tracks one goroutine's view of Kafka's health, to log state changes instead of a
// line per failure.
type prodOutage struct {
	down     bool
	since    time.Time
	loggedAt time.Time
	fails    int
	lastErr  error
}

// failed notes a failed write and reports whether to log it: the first of an outage, then at most
// once per prodLogEvery.
func (o *prodOutage) failed(err error, now time.Time) bool {
	o.fails++
	o.lastErr = err
	if !o.down {
		o.down, o.since, o.loggedAt, o.fails = true, now, now, 1
		return true
	}
	if now.Sub(o.loggedAt) >= prodLogEvery {
		o.loggedAt = now
		return true
	}
	return false
}

// ok notes a successful write and reports whether it ends an outage.
func (o *prodOutage) ok() bool {
	if !o.down {
		return false
	}
	o.down = false
	return true
}

// NewProducer starts a producer: it opens (and checks) the spill, creates the Kafka writers and
// starts the background goroutines. A spill left by an earlier run is replayed as soon as Kafka
// answers; NewProducer does not wait for Kafka.
func NewProducer(cfg ProducerConfig) (*Producer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("events producer: no brokers")
	}
	if cfg.SpillDir == "" {
		return nil, errors.New("events producer: SpillDir is required: money events go there when Kafka cannot take them")
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.BatchTimeout <= 0 {
		cfg.BatchTimeout = DefaultBatchTimeout
	}
	if cfg.OtherBatchTimeout <= 0 {
		cfg.OtherBatchTimeout = DefaultOtherBatchTimeout
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "events.producer")

	spill, rec, err := openSpill(cfg.SpillDir)
	if err != nil {
		return nil, fmt.Errorf("events producer: %w", err)
	}
	p := &Producer{
		cfg:        cfg,
		log:        log,
		moneyCh:    make(chan *prodRecord, cfg.QueueSize),
		otherCh:    make(chan *prodRecord, cfg.QueueSize),
		ovSignal:   make(chan struct{}, 1),
		closing:    make(chan struct{}),
		abort:      make(chan struct{}),
		moneyDone:  make(chan struct{}),
		otherDone:  make(chan struct{}),
		reportDone: make(chan struct{}),
		ends:       map[prodTP]int64{},
		spill:      spill,
		moneyBatch: make([]*prodRecord, 0, cfg.BatchSize),
		moneyMsgs:  make([]kafka.Message, 0, cfg.BatchSize),
		otherBatch: make([]*prodRecord, 0, cfg.BatchSize),
		otherMsgs:  make([]kafka.Message, 0, cfg.BatchSize),
	}
	p.pool.New = func() any { return &prodRecord{buf: make([]byte, 0, prodRecordCap)} }
	if p.m, err = newProdMetrics(cfg.Registerer, p.queueLength); err != nil {
		spill.close()
		return nil, fmt.Errorf("events producer: %w", err)
	}
	p.m.spillCorrupt.Add(float64(rec.corruptBytes))
	p.m.spillBytes.Set(float64(spill.pendingBytes()))
	if rec.corruptBytes > 0 {
		log.Error("spill: set aside bytes that failed their checks (a torn write after a crash, or a bad disk); the records before them will be replayed",
			"path", spill.path, "offset", rec.corruptAt, "bytes", rec.corruptBytes, "kept_in", rec.quarantine)
	}
	if rec.headerReset {
		log.Warn("spill: header unreadable; replaying every record in the file (consumers drop duplicates by event id)", "path", spill.path)
	}
	if rec.records > 0 {
		log.Info("spill: money events left by an earlier run; replaying them once Kafka answers",
			"path", spill.path, "records", rec.records, "bytes", rec.bytes)
	}

	p.transport = &kafka.Transport{
		DialTimeout: cfg.WriteTimeout / 2,
		// The transport answers every request with the last metadata error until its next
		// refresh: its default TTL (6s) would keep the producer spilling for seconds after Kafka
		// is back. One small metadata request a second is cheap.
		MetadataTTL: time.Second,
		ClientID:    "rtb-producer",
	}
	p.client = &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: p.transport, Timeout: cfg.WriteTimeout / 2}
	// Two writers, one per class of event, over one transport (one connection pool): money and the
	// rest differ in what a failure means. The money writer never retries by itself
	// (MaxAttempts 1): a failed batch goes to the spill and the spill's replay is the retry, which
	// keeps a retry from overtaking later events or duplicating one that landed unanswered. The
	// other writer retries a transient error once and then drops. Their topics differ, so neither
	// ever queues behind the other inside kafka-go.
	p.moneyW = p.newWriter(1, p.noteAcked)
	p.otherW = p.newWriter(2, nil)
	// kafka-go bounds each stage of a write itself (ReadTimeout, WriteTimeout: half of ours each)
	// and so decides every write's fate; the call limit only catches a stage it does not bound
	// (waiting for a transport's first metadata). A call cut short by it, or by Close's deadline,
	// leaves kafka-go still sending: its events are spilled as unanswered writes, to be looked for
	// on Kafka before they are replayed.
	p.callLimit = cfg.WriteTimeout + 250*time.Millisecond
	p.writeCtx, p.cancelWrites = context.WithCancel(context.Background())

	go p.runMoney()
	go p.runOther()
	go p.report()
	return p, nil
}

func (p *Producer) newWriter(attempts int, completion func([]kafka.Message, error)) *kafka.Writer {
	return &kafka.Writer{
		Addr: kafka.TCP(p.cfg.Brokers...),
		// Key = campaign id, hashed (FNV-1a, like Sarama), so a campaign's events share a
		// partition and keep their order.
		Balancer:    &prodBalancer{},
		MaxAttempts: attempts,
		BatchSize:   p.cfg.BatchSize,
		BatchBytes:  1 << 20,
		// The producer batches in its own queue (cfg.BatchTimeout) and hands the writer whole
		// batches; the writer must send each at once. Its default, 1s, would hold every write
		// call for a second.
		BatchTimeout: time.Microsecond,
		ReadTimeout:  p.cfg.WriteTimeout / 2,
		WriteTimeout: p.cfg.WriteTimeout / 2,
		RequiredAcks: kafka.RequireAll, // the default is none: fire and forget
		Compression:  kafka.Lz4,
		Transport:    p.transport,
		Completion:   completion,
		// Topics are created by EnsureTopics with their partition counts; a typo must fail, not
		// create a one-partition topic.
		AllowAutoTopicCreation: false,
	}
}

// prodBalancer is kafka-go's Hash balancer that also tells the record which partition it went to
// (the record's partition field, passed as the message's WriterData).
type prodBalancer struct{ h kafka.Hash }

func (b *prodBalancer) Balance(msg kafka.Message, partitions ...int) int {
	part := b.h.Balance(msg, partitions...)
	if p, ok := msg.WriterData.(*int32); ok {
		*p = int32(part)
	}
	return part
}

// Publish queues e for Kafka. It never blocks on Kafka, the network or the disk, and it copies e:
// the caller may reuse e and the buffers its strings point into as soon as it returns.
//
// Money events (win, bill, imp) are never dropped: when they cannot go to Kafka they go to the
// spill. Other events are dropped, and counted in rtb_events_dropped_total, when the queue is full
// or Kafka is down. Publish after Close drops the event (counted, reason "closed").
func (p *Producer) Publish(e *Event) { p.publish(e, nil) }

// PublishDurable publishes a money event (win, bill, imp) as Publish does and waits until it is
// durable: acknowledged by Kafka (acks from all in-sync replicas) or fsynced into the spill. Only
// then may the notice behind it be acknowledged to the exchange, or a crash of this process could
// lose a bill the exchange counts as delivered. It returns ErrNotDurable when timeout passed first
// (the event may still become durable: a retry of the notice has the same id, consumers count it
// once) and ErrProducerClosed after Close. Other events are published as by Publish and return nil
// at once: nothing waits for them.
func (p *Producer) PublishDurable(e *Event, timeout time.Duration) error {
	if !e.Type.Money() {
		p.Publish(e)
		return nil
	}
	w := prodWaiters.Get().(*prodWaiter)
	if !p.publish(e, w) {
		prodWaiters.Put(w)
		return ErrProducerClosed
	}
	t := prodTimers.Get().(*time.Timer)
	t.Reset(timeout)
	defer func() {
		t.Stop()
		prodTimers.Put(t)
	}()
	select {
	case err := <-w.ch:
		prodWaiters.Put(w)
		return err
	case <-t.C:
		return ErrNotDurable // w still gets its answer; nobody reads it
	}
}

// publish queues e, with w to be told when it is durable (money only), and reports whether it
// was queued.
func (p *Producer) publish(e *Event, w *prodWaiter) bool {
	ti := prodTopicIndex(e.Type)
	if ti < 0 {
		p.m.dropped[prodNumTopics][dropInvalid].Inc()
		p.invalidDrops.Add(1)
		return false
	}
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		p.m.dropped[ti][dropClosed].Inc()
		p.droppedAfterClose(e)
		return false
	}
	r := p.pool.Get().(*prodRecord)
	r.buf = append(r.buf[:0], e.CampaignID...)
	r.klen = len(r.buf)
	r.buf = e.AppendJSON(r.buf)
	r.topic, r.part, r.floor, r.wait = uint8(ti), -1, -1, nil
	if e.Type.Money() {
		r.wait = w
		if !p.ovActive.Load() {
			select {
			case p.moneyCh <- r:
				p.mu.RUnlock()
				return true
			default:
			}
		}
		// Full, or older money already waits in the overflow: queue behind it.
		p.ovMu.Lock()
		p.ov = append(p.ov, r)
		p.ovActive.Store(true)
		p.ovLen.Store(int64(len(p.ov)))
		p.ovMu.Unlock()
		select {
		case p.ovSignal <- struct{}{}:
		default:
		}
		p.mu.RUnlock()
		return true
	}
	select {
	case p.otherCh <- r:
	default:
		p.m.dropped[ti][dropQueueFull].Inc()
		p.queueFullDrops.Add(1)
		p.pool.Put(r)
	}
	p.mu.RUnlock()
	return true
}

// droppedAfterClose logs, at most once a second, an event published after Close: a shutdown
// ordering bug in the caller, and for money a loss.
func (p *Producer) droppedAfterClose(e *Event) {
	p.closedDrops.Add(1)
	now := time.Now().UnixNano()
	last := p.lateLogAt.Load()
	if now-last < int64(time.Second) || !p.lateLogAt.CompareAndSwap(last, now) {
		return
	}
	p.log.Error("event published after the producer was closed: dropped",
		"type", e.Type, "id", e.ID, "campaign_id", e.CampaignID, "dropped_after_close", p.closedDrops.Load())
}

func (p *Producer) recycle(r *prodRecord) {
	if cap(r.buf) > 16*prodRecordCap {
		return // an outsized event: let it go rather than pin its buffer
	}
	p.pool.Put(r)
}

func (p *Producer) queueLength() float64 {
	return float64(len(p.moneyCh) + len(p.otherCh) + int(p.ovLen.Load()))
}

// Close stops accepting events (Publish after Close drops them, counted), writes what is queued to
// Kafka, and returns when done or when ctx is. Money Kafka does not take before ctx is done goes to
// the spill, which is synced and closed; the next producer on the same SpillDir replays it. The
// error reports money that could not be saved at all (the spill failing too). Close may be called
// more than once; later calls return the first one's result.
func (p *Producer) Close(ctx context.Context) error {
	p.closeOnce.Do(func() { p.closeErr = p.close(ctx) })
	return p.closeErr
}

func (p *Producer) close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	if ctx.Err() != nil {
		p.doAbort()
	}
	close(p.closing)
	stop := context.AfterFunc(ctx, p.doAbort)
	<-p.moneyDone
	<-p.otherDone
	<-p.reportDone
	stop()

	var errs []error
	if n := p.spill.bufN; n > 0 {
		// The money goroutine could write them neither to Kafka nor to disk.
		for i, c := range p.spillPending {
			p.m.dropped[i][dropSpillFailed].Add(float64(c))
		}
		errs = append(errs, fmt.Errorf("events producer: %d money events lost: neither Kafka nor the spill took them", n))
	}
	for _, w := range p.spillWaiters {
		w.ch <- errors.New("events producer closed: neither Kafka nor the spill took the event")
	}
	p.spillWaiters = nil
	if err := p.spill.close(); err != nil {
		errs = append(errs, err)
	}
	p.m.spillBytes.Set(float64(p.spill.pendingBytes()))
	if !p.spill.empty() {
		p.log.Warn("closed with money events in the spill; the next producer on this spill dir replays them",
			"path", p.spill.path, "bytes", p.spill.pendingBytes())
	}
	// Writes abandoned at the deadline finish (or fail) within WriteTimeout; wait for them only
	// while ctx allows.
	done := make(chan struct{})
	go func() {
		p.moneyW.Close()
		p.otherW.Close()
		p.transport.CloseIdleConnections()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	p.cancelWrites()
	return errors.Join(errs...)
}

func (p *Producer) doAbort() {
	p.abortOnce.Do(func() {
		close(p.abort)
		p.cancelWrites()
	})
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// gather state: what the producer is doing.
const (
	gatherOpen    = iota // running: wait for events and linger for a batch
	gatherClosing        // Close: take what is queued, no waiting
	gatherAborted        // Close's deadline: take what is queued, Kafka is off limits
)

func (p *Producer) gatherState() int {
	switch {
	case isClosed(p.abort):
		return gatherAborted
	case isClosed(p.closing):
		return gatherClosing
	}
	return gatherOpen
}

// gather takes records from ch (and, for money, its overflow) into dst: up to BatchSize of them
// and prodMaxBatchBytes, waiting for the first and then at most BatchTimeout for more. It does
// not wait once Close began. overflowed reports that money came from the overflow, i.e. the
// queue was full.
func (p *Producer) gather(dst []*prodRecord, ch chan *prodRecord, money bool, timer *time.Timer) (batch []*prodRecord, state int, overflowed bool) {
	var ovSignal chan struct{}
	if money {
		ovSignal = p.ovSignal
	}
	size := 0
	var lingerC <-chan time.Time
	defer func() {
		if lingerC != nil {
			timer.Stop()
		}
	}()
	for len(dst) < p.cfg.BatchSize && size < prodMaxBatchBytes {
		select {
		case r := <-ch:
			dst = append(dst, r)
			size += len(r.buf)
			continue
		default:
		}
		if money && p.ovActive.Load() {
			// ch is empty and newer money waits behind it: the queue overflowed.
			return p.takeOverflow(dst), p.gatherState(), true
		}
		if state := p.gatherState(); state != gatherOpen {
			return dst, state, false
		}
		if len(dst) > 0 && lingerC == nil {
			if money {
				timer.Reset(p.cfg.BatchTimeout)
			} else {
				timer.Reset(p.cfg.OtherBatchTimeout)
			}
			lingerC = timer.C
		}
		select {
		case r := <-ch:
			dst = append(dst, r)
			size += len(r.buf)
		case <-ovSignal:
		case <-lingerC:
			lingerC = nil
			return dst, gatherOpen, false
		case <-p.closing:
		case <-p.abort:
		}
	}
	return dst, p.gatherState(), false
}

// takeOverflow appends the money overflow to dst, oldest first, up to BatchSize.
func (p *Producer) takeOverflow(dst []*prodRecord) []*prodRecord {
	p.ovMu.Lock()
	n := min(len(p.ov), max(p.cfg.BatchSize-len(dst), 0))
	dst = append(dst, p.ov[:n]...)
	rest := copy(p.ov, p.ov[n:])
	clear(p.ov[rest:])
	p.ov = p.ov[:rest]
	if rest == 0 {
		p.ovActive.Store(false)
		if cap(p.ov) > 4*p.cfg.BatchSize {
			p.ov = nil
		}
	}
	p.ovLen.Store(int64(rest))
	p.ovMu.Unlock()
	return dst
}

// write makes one synchronous write call. failed[i] reports whether msgs[i] is not known to be
// acknowledged; abandoned reports that the call returned before kafka-go was done with the
// messages (deadline), whose buffers must then not be reused.
func (p *Producer) write(w *kafka.Writer, msgs []kafka.Message, failed []bool) (err error, abandoned bool) {
	ctx, cancel := context.WithTimeout(p.writeCtx, p.callLimit)
	defer cancel()
	err = w.WriteMessages(ctx, msgs...)
	if err == nil {
		clear(failed)
		return nil, false
	}
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) && len(werrs) == len(msgs) {
		for i, e := range werrs {
			failed[i] = e != nil
		}
		return err, false
	}
	for i := range failed {
		failed[i] = true
	}
	return err, ctx.Err() != nil
}

func (p *Producer) messages(dst []kafka.Message, batch []*prodRecord, now time.Time) []kafka.Message {
	dst = dst[:0]
	for _, r := range batch {
		dst = append(dst, kafka.Message{
			Topic:      prodTopics[r.topic],
			Key:        r.key(),
			Value:      r.value(),
			Time:       now,
			WriterData: &r.part,
		})
	}
	return dst
}

// ---- money ----

func (p *Producer) runMoney() {
	defer close(p.moneyDone)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	failed := make([]bool, p.cfg.BatchSize)
	for {
		if !p.spill.empty() {
			if !p.spillRound(timer) {
				return
			}
			continue
		}
		batch, state, overflowed := p.gather(p.moneyBatch[:0], p.moneyCh, true, timer)
		p.moneyBatch = batch[:0]
		if len(batch) == 0 {
			if state != gatherOpen {
				return
			}
			continue
		}
		if overflowed || state == gatherAborted {
			if overflowed && !p.queueFullLog {
				p.queueFullLog = true
				p.log.Warn("money event queue full: money events go to the spill until it is replayed",
					"queue_size", p.cfg.QueueSize, "path", p.spill.path)
			}
			for _, r := range batch {
				p.spillAdd(r, true)
			}
			p.flushSpill()
		} else {
			p.sendMoney(batch, failed[:len(batch)])
		}
		clear(batch)
	}
}

// sendMoney writes a batch of live money events; what fails goes to the spill.
func (p *Producer) sendMoney(batch []*prodRecord, failed []bool) {
	p.ensureEnds()
	now := time.Now()
	p.moneyMsgs = p.messages(p.moneyMsgs, batch, now)
	err, abandoned := p.write(p.moneyW, p.moneyMsgs, failed)
	clear(p.moneyMsgs)
	var acked [prodNumTopics]int
	nFailed := 0
	for i, r := range batch {
		if !failed[i] {
			acked[r.topic]++
			r.durable(nil)
			p.recycle(r)
			continue
		}
		nFailed++
		r.floor = p.floorOf(prodTopics[r.topic], r.part, -1, -1)
		p.spillAdd(r, !abandoned)
	}
	for t, n := range acked {
		p.m.published[t].Add(float64(n))
	}
	if err == nil {
		if p.moneyState.ok() {
			p.log.Info("kafka writes succeed again", "events", "money")
		}
		return
	}
	p.m.produceErrors.Inc()
	p.flushSpill()
	if p.moneyState.failed(err, now) {
		p.log.Warn("kafka write failed: money events go to the spill until Kafka takes them again",
			"error", err, "failed", nFailed, "batch", len(batch), "path", p.spill.path)
	}
}

// spillAdd appends a record to the spill buffer (flushSpill makes it durable).
func (p *Producer) spillAdd(r *prodRecord, recycle bool) {
	var flags uint8
	if r.floor >= 0 {
		flags = spillFlagSent
	}
	p.spill.add(prodTopics[r.topic], flags, r.part, r.floor, r.key(), r.value())
	p.spillPending[r.topic]++
	if r.wait != nil {
		p.spillWaiters = append(p.spillWaiters, r.wait)
		r.wait = nil
	}
	if recycle {
		p.recycle(r)
	}
}

// flushSpill writes and fsyncs the spill buffer; on failure the records stay buffered and are
// retried.
func (p *Producer) flushSpill() {
	if p.spill.bufN == 0 {
		return
	}
	err := p.spill.flush()
	p.m.spillBytes.Set(float64(p.spill.pendingBytes()))
	if err != nil {
		now := time.Now()
		if !p.spillFailing || now.Sub(p.spillLogAt) >= prodLogEvery {
			p.log.Error("spill write failed: money events are held in memory and the write is retried",
				"error", err, "buffered", p.spill.bufN)
			p.spillLogAt = now
		}
		p.spillFailing = true
		return
	}
	if p.spillFailing {
		p.spillFailing = false
		p.log.Info("spill writes succeed again", "path", p.spill.path)
	}
	for t, n := range p.spillPending {
		p.m.spilled[t].Add(float64(n))
	}
	p.spillPending = [prodNumTopics]int{}
	for i, w := range p.spillWaiters {
		w.ch <- nil
		p.spillWaiters[i] = nil
	}
	p.spillWaiters = p.spillWaiters[:0]
}

// drainToSpill moves everything queued (the queue, then its overflow) into the spill, in order,
// and makes it durable.
func (p *Producer) drainToSpill() {
	// Bounded only so that publishers faster than the disk cannot keep the goroutine here forever.
	for n, limit := 0, max(4*p.cfg.QueueSize, 1<<16); n < limit; {
		select {
		case r := <-p.moneyCh:
			p.spillAdd(r, true)
			n++
			continue
		default:
		}
		if !p.ovActive.Load() {
			break
		}
		batch := p.takeOverflow(p.moneyBatch[:0])
		for _, r := range batch {
			p.spillAdd(r, true)
		}
		n += len(batch)
		clear(batch)
	}
	p.flushSpill()
}

// spillRound is one step of the money goroutine while the spill holds records: spill what was
// queued, replay the oldest spilled records when due, or wait. It reports false when the
// goroutine should end (Close).
func (p *Producer) spillRound(timer *time.Timer) bool {
	state := p.gatherState()
	// Everything queued is newer than everything spilled. While the replay succeeds, queued money
	// can wait in the queue and go to Kafka after the spill, from memory; writing it to disk too
	// would only slow the catch-up. It goes to the spill when the replay fails, when the queue is
	// half full, and at Close.
	if state != gatherOpen || p.replayWait > 0 || p.ovActive.Load() || len(p.moneyCh) >= p.cfg.QueueSize/2 {
		p.drainToSpill()
	}
	if state == gatherAborted {
		return false
	}
	now := time.Now()
	if state == gatherClosing {
		p.replayAt = time.Time{} // at Close, try at once whatever the backoff says; one failure ends it
	}
	if !now.Before(p.replayAt) {
		err := p.replay()
		switch {
		case err == nil:
			p.replayWait, p.replayAt = 0, time.Time{}
		case state == gatherClosing:
			p.log.Warn("close: kafka did not take the spilled money events; they stay in the spill for the next run",
				"error", err, "bytes", p.spill.pendingBytes())
			return false
		default:
			p.replayWait = min(max(2*p.replayWait, prodReplayBackoffMin), prodReplayBackoffMax)
			p.replayAt = now.Add(p.replayWait)
		}
		return true
	}
	timer.Reset(p.replayAt.Sub(now))
	defer timer.Stop()
	select {
	case r := <-p.moneyCh:
		p.spillAdd(r, true)
	case <-p.ovSignal:
	case <-timer.C:
	case <-p.closing:
	case <-p.abort:
	}
	return true
}

// prodWindow is the oldest part of the spill, being replayed.
type prodWindow struct {
	buf   []byte
	items []prodReplayItem
	msgs  []kafka.Message
	idx   []int // msgs[i] is items[idx[i]]
	fail  []bool
}

type prodReplayItem struct {
	rec   spillRec
	topic int // index in prodTopics, -1 for a topic this build does not know
	id    string
	done  bool
	part  int32
	floor int64
}

// replay writes the oldest spilled records to Kafka and moves the spill's cursor past those Kafka
// acknowledged. The spill file is truncated when the cursor reaches its end.
func (p *Producer) replay() error {
	w := &p.win
	if len(w.items) == 0 {
		if p.spill.cursor >= p.spill.end {
			// Everything on disk is replayed; what is left waits in the buffer the disk refused.
			p.flushSpill()
			if p.spill.bufN > 0 {
				return errors.New("spill write failing")
			}
			return nil
		}
		if err := p.loadWindow(); err != nil {
			return err
		}
		if len(w.items) == 0 { // a corrupt tail was cut
			if p.spill.empty() {
				return p.commitSpill(p.spill.cursor)
			}
			return nil
		}
	}
	p.ensureEnds()
	if err := p.skipLanded(); err != nil {
		return p.replayFailed(fmt.Errorf("read back unanswered writes: %w", err), time.Now())
	}
	now := time.Now()
	w.msgs, w.idx = w.msgs[:0], w.idx[:0]
	for i := range w.items {
		it := &w.items[i]
		if it.done {
			continue
		}
		it.part = -1
		w.msgs = append(w.msgs, kafka.Message{Topic: it.rec.topic, Key: it.rec.key, Value: it.rec.value, Time: now, WriterData: &it.part})
		w.idx = append(w.idx, i)
	}
	var err error
	if len(w.msgs) > 0 {
		if cap(w.fail) < len(w.msgs) {
			w.fail = make([]bool, len(w.msgs))
		}
		fail := w.fail[:len(w.msgs)]
		var abandoned bool
		err, abandoned = p.write(p.moneyW, w.msgs, fail)
		clear(w.msgs)
		var acked [prodNumTopics]int
		for j, i := range w.idx {
			it := &w.items[i]
			if fail[j] {
				if it.part >= 0 { // it was given a partition, so it may have been sent
					it.floor = p.floorOf(it.rec.topic, it.part, it.rec.part, it.floor)
					it.rec.part = it.part
				}
				continue
			}
			it.done = true
			if it.topic >= 0 {
				acked[it.topic]++
			}
		}
		for t, n := range acked {
			p.m.published[t].Add(float64(n))
			p.m.replayed[t].Add(float64(n))
		}
		p.replayedRun += sumInts(acked[:])
		if abandoned {
			w.buf = nil // kafka-go may still read the messages
		}
	}
	// Advance past the acknowledged prefix.
	cursor, all := p.spill.cursor, true
	for i := range w.items {
		if !w.items[i].done {
			all = false
			break
		}
		cursor = w.items[i].rec.off + w.items[i].rec.size
	}
	if cursor > p.spill.cursor {
		if cerr := p.commitSpill(cursor); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}
	if all {
		w.items = w.items[:0]
	}
	if err != nil {
		return p.replayFailed(err, now)
	}
	return nil
}

func sumInts(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

func (p *Producer) replayFailed(err error, now time.Time) error {
	p.m.produceErrors.Inc()
	if p.moneyState.failed(err, now) {
		p.log.Warn("kafka write failed: money events go to the spill until Kafka takes them again",
			"error", err, "path", p.spill.path, "spill_bytes", p.spill.pendingBytes())
	} else {
		p.log.Debug("spill replay failed", "error", err, "attempts", p.moneyState.fails)
	}
	return err
}

// loadWindow reads the oldest spilled records.
func (p *Producer) loadWindow() error {
	w := &p.win
	recs, buf, err := p.spill.read(p.spill.cursor, p.cfg.BatchSize, prodMaxBatchBytes, w.buf[:0])
	w.buf = buf
	if err != nil && errors.Is(err, errSpillCorrupt) {
		// Written by this process and checked when opened, yet unreadable: the disk is failing.
		off := p.spill.cursor
		if len(recs) > 0 {
			last := recs[len(recs)-1]
			off = last.off + last.size
		}
		q, n, cerr := p.spill.cutCorrupt(off)
		if cerr != nil {
			return errors.Join(err, cerr)
		}
		p.m.spillCorrupt.Add(float64(n))
		p.log.Error("spill: records failed their checks when read back; set aside", "error", err, "bytes", n, "kept_in", q)
	} else if err != nil {
		return err
	}
	if p.replayedRun == 0 && len(recs) > 0 {
		p.replayStart = time.Now()
	}
	w.items = w.items[:0]
	for _, r := range recs {
		w.items = append(w.items, prodReplayItem{rec: r, topic: prodTopicByName(r.topic), part: -1, floor: r.floor})
	}
	return nil
}

func (p *Producer) commitSpill(cursor int64) error {
	err := p.spill.commit(cursor)
	p.m.spillBytes.Set(float64(p.spill.pendingBytes()))
	if err != nil {
		return err
	}
	if p.spill.empty() {
		p.queueFullLog = false
		if p.replayedRun > 0 {
			p.log.Info("spill replayed: money events are written to Kafka directly again",
				"events", p.replayedRun, "took", time.Since(p.replayStart).Round(time.Millisecond))
		}
		p.replayedRun = 0
		if p.moneyState.ok() {
			p.log.Info("kafka writes succeed again", "events", "money")
		}
	}
	return nil
}

// ---- unanswered writes ----

// noteAcked is the money writer's completion callback: it records where each partition ends.
func (p *Producer) noteAcked(msgs []kafka.Message, err error) {
	if err != nil || len(msgs) == 0 {
		return
	}
	last := msgs[len(msgs)-1]
	p.noteEnd(prodTP{last.Topic, int32(last.Partition)}, last.Offset+1)
}

func (p *Producer) noteEnd(tp prodTP, end int64) {
	p.endsMu.Lock()
	if end > p.ends[tp] {
		p.ends[tp] = end
	}
	p.endsMu.Unlock()
}

// floorOf is the lowest offset of partition part of topic where a write that just failed may have
// landed, given where an earlier attempt (oldPart, oldFloor) may have: -1 when unknown.
func (p *Producer) floorOf(topic string, part, oldPart int32, oldFloor int64) int64 {
	if part < 0 {
		if oldPart >= 0 {
			return oldFloor
		}
		return -1
	}
	p.endsMu.Lock()
	e, ok := p.ends[prodTP{topic, part}]
	p.endsMu.Unlock()
	if oldPart == part && oldFloor >= 0 && (!ok || oldFloor < e) {
		return oldFloor
	}
	if !ok {
		return -1
	}
	return e
}

// ensureEnds lists the ends of the money topics' partitions once, so that even the first write to
// a partition has a floor if its answer is lost.
func (p *Producer) ensureEnds() {
	if p.endsKnown || time.Now().Before(p.endsRetryAt) {
		return
	}
	ctx, cancel := context.WithTimeout(p.writeCtx, min(p.cfg.WriteTimeout/2, time.Second))
	defer cancel()
	if err := p.listEnds(ctx, TopicWins, TopicImpressions); err != nil {
		p.endsRetryAt = time.Now().Add(prodEndsRetry)
		return
	}
	p.endsKnown = true
}

func (p *Producer) listEnds(ctx context.Context, topics ...string) error {
	md, err := p.client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return err
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range md.Topics {
		if t.Error != nil {
			return t.Error
		}
		for _, part := range t.Partitions {
			req.Topics[t.Name] = append(req.Topics[t.Name], kafka.LastOffsetOf(part.ID))
		}
	}
	res, err := p.client.ListOffsets(ctx, req)
	if err != nil {
		return err
	}
	for topic, parts := range res.Topics {
		for _, po := range parts {
			if po.Error != nil {
				return po.Error
			}
			p.noteEnd(prodTP{topic, int32(po.Partition)}, po.LastOffset)
		}
	}
	return nil
}

// skipLanded reads, for the records of the window whose earlier write went unanswered, their
// partition from the lowest offset where they could have landed to its end, and marks those found
// there as done: Kafka has them already.
func (p *Producer) skipLanded() error {
	w := &p.win
	from := map[prodTP]int64{}
	for i := range w.items {
		it := &w.items[i]
		if it.done || it.floor < 0 || it.rec.part < 0 {
			continue
		}
		if it.id == "" {
			e, err := Decode(it.rec.value)
			if err != nil {
				continue // cannot be recognised on Kafka; replayed (consumers drop a duplicate)
			}
			it.id = e.ID
		}
		tp := prodTP{it.rec.topic, it.rec.part}
		if f, ok := from[tp]; !ok || it.floor < f {
			from[tp] = it.floor
		}
	}
	if len(from) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(p.writeCtx, p.callLimit)
	defer cancel()
	var skipped [prodNumTopics]int
	for tp, off := range from {
		ids, end, err := p.idsFrom(ctx, tp, off)
		if err != nil {
			return fmt.Errorf("%s/%d from offset %d: %w", tp.topic, tp.part, off, err)
		}
		for i := range w.items {
			it := &w.items[i]
			if it.done || it.floor < 0 || it.id == "" || it.rec.topic != tp.topic || it.rec.part != tp.part {
				continue
			}
			if _, ok := ids[it.id]; ok {
				it.done = true
				if it.topic >= 0 {
					skipped[it.topic]++
				}
				continue
			}
			// Not there up to end: nothing sent before now can land later than end.
			it.floor = end
		}
	}
	for t, n := range skipped {
		p.m.published[t].Add(float64(n))
		p.m.skipped[t].Add(float64(n))
	}
	if n := sumInts(skipped[:]); n > 0 {
		p.log.Info("spill: events whose write went unanswered are on Kafka already; not replayed", "events", n)
	}
	return nil
}

// idsFrom reads the event ids of partition tp from offset off to its end, and returns that end.
// It lists the partition's bounds first and never fetches at the end of the log: there a fetch
// waits on the broker for new data, and it is the usual case (the unanswered write did not land).
func (p *Producer) idsFrom(ctx context.Context, tp prodTP, off int64) (map[string]struct{}, int64, error) {
	ids := map[string]struct{}{}
	first, end, err := p.partitionBounds(ctx, tp)
	if err != nil {
		return nil, 0, err
	}
	off = max(off, first) // below the start: retention removed it
	for off < end {
		res, err := p.client.Fetch(ctx, &kafka.FetchRequest{
			Topic: tp.topic, Partition: int(tp.part), Offset: off, MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond,
		})
		if err != nil {
			return nil, 0, err
		}
		if res.Error != nil {
			return nil, 0, res.Error
		}
		n := 0
		for {
			rec, err := res.Records.ReadRecord()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, 0, err
			}
			if rec.Offset < off {
				continue
			}
			off = rec.Offset + 1
			n++
			if rec.Value == nil {
				continue
			}
			v, err := io.ReadAll(rec.Value)
			if err != nil {
				return nil, 0, err
			}
			if e, err := Decode(v); err == nil {
				ids[e.ID] = struct{}{}
			}
		}
		if n == 0 {
			break // nothing readable below end (transaction markers): done
		}
	}
	return ids, max(off, end), nil
}

func (p *Producer) partitionBounds(ctx context.Context, tp prodTP) (first, last int64, err error) {
	res, err := p.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		tp.topic: {kafka.FirstOffsetOf(int(tp.part)), kafka.LastOffsetOf(int(tp.part))},
	}})
	if err != nil {
		return 0, 0, err
	}
	for _, po := range res.Topics[tp.topic] {
		if po.Partition == int(tp.part) {
			return po.FirstOffset, po.LastOffset, po.Error
		}
	}
	return 0, 0, fmt.Errorf("no offsets for %s/%d", tp.topic, tp.part)
}

// ---- bids, clicks, losses ----

func (p *Producer) runOther() {
	defer close(p.otherDone)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	failed := make([]bool, p.cfg.BatchSize)
	for {
		batch, state, _ := p.gather(p.otherBatch[:0], p.otherCh, false, timer)
		p.otherBatch = batch[:0]
		if len(batch) == 0 {
			if state != gatherOpen {
				return
			}
			continue
		}
		now := time.Now()
		switch {
		case state == gatherAborted:
			p.dropAll(batch, dropClosed)
		case now.Before(p.downUntil):
			p.dropAll(batch, dropBrokerDown)
		default:
			p.sendOther(batch, failed[:len(batch)], now)
		}
		clear(batch)
	}
}

func (p *Producer) dropAll(batch []*prodRecord, reason int) {
	var n [prodNumTopics]int
	for _, r := range batch {
		n[r.topic]++
		p.recycle(r)
	}
	for t, c := range n {
		p.m.dropped[t][reason].Add(float64(c))
	}
}

func (p *Producer) sendOther(batch []*prodRecord, failed []bool, now time.Time) {
	p.otherMsgs = p.messages(p.otherMsgs, batch, now)
	err, abandoned := p.write(p.otherW, p.otherMsgs, failed)
	clear(p.otherMsgs)
	var acked, lost [prodNumTopics]int
	for i, r := range batch {
		if failed[i] {
			lost[r.topic]++
		} else {
			acked[r.topic]++
		}
		if !abandoned {
			p.recycle(r)
		}
	}
	for t := range acked {
		p.m.published[t].Add(float64(acked[t]))
		p.m.dropped[t][dropBrokerDown].Add(float64(lost[t]))
	}
	if err == nil {
		p.downWait = 0
		if p.otherState.ok() {
			p.log.Info("kafka writes succeed again", "events", "bids, clicks, losses",
				"outage", time.Since(p.otherState.since).Round(time.Millisecond), "failed_writes", p.otherState.fails)
		}
		return
	}
	p.m.produceErrors.Inc()
	// Stop trying for a while: during an outage every write would wait for its timeout.
	p.downWait = min(max(2*p.downWait, prodDownBackoffMin), prodDownBackoffMax)
	p.downUntil = time.Now().Add(p.downWait)
	if p.otherState.failed(err, now) {
		p.log.Warn("kafka write failed: bid, click and loss events are dropped while it fails (counted in rtb_events_dropped_total)",
			"error", err, "failed", sumInts(lost[:]), "batch", len(batch))
	}
}

// report logs, every prodReportEvery, the drops Publish counted (Publish must not log).
func (p *Producer) report() {
	defer close(p.reportDone)
	t := time.NewTicker(prodReportEvery)
	defer t.Stop()
	var lastFull, lastInvalid int64
	check := func() {
		if n := p.queueFullDrops.Load(); n != lastFull {
			p.log.Warn("event queue full: bid, click and loss events dropped", "dropped", n-lastFull, "queue_size", p.cfg.QueueSize)
			lastFull = n
		}
		if n := p.invalidDrops.Load(); n != lastInvalid {
			p.log.Error("events of no known type dropped", "dropped", n-lastInvalid)
			lastInvalid = n
		}
	}
	for {
		select {
		case <-t.C:
			check()
		case <-p.closing:
			check()
			return
		}
	}
}

// ---- metrics ----

type prodMetrics struct {
	published, spilled, replayed, skipped [prodNumTopics]prometheus.Counter
	dropped                               [prodNumTopics + 1][prodNumReasons]prometheus.Counter // last row: no known type
	produceErrors                         prometheus.Counter
	spillBytes                            prometheus.Gauge
	spillCorrupt                          prometheus.Counter
}

func newProdMetrics(reg prometheus.Registerer, queueLength func() float64) (*prodMetrics, error) {
	published := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rtb_events_published_total",
		Help: "Events Kafka acknowledged (acks from all in-sync replicas), replayed ones included, by topic.",
	}, []string{"topic"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rtb_events_dropped_total",
		Help: "Events dropped, by topic and reason (queue_full, broker_down, closed, invalid, spill_failed). Money is only ever dropped as closed (published after Close) or spill_failed (neither Kafka nor the disk took it).",
	}, []string{"topic", "reason"})
	spilled := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rtb_events_spilled_total",
		Help: "Money events written durably to the spill file because Kafka could not take them yet, by topic.",
	}, []string{"topic"})
	replayed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rtb_events_replayed_total",
		Help: "Spilled money events written to Kafka from the spill, by topic.",
	}, []string{"topic"})
	skipped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rtb_events_replay_skipped_total",
		Help: "Spilled money events not replayed because Kafka had them already (a write whose answer was lost), by topic.",
	}, []string{"topic"})
	produceErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rtb_event_produce_errors_total",
		Help: "Writes of a batch of events to Kafka that failed.",
	})
	queueLen := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rtb_event_queue_length",
		Help: "Events waiting in memory to be written to Kafka.",
	}, queueLength)
	spillBytes := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rtb_event_spill_bytes",
		Help: "Bytes of money events in the spill waiting to be replayed to Kafka.",
	})
	spillCorrupt := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rtb_event_spill_corrupt_bytes_total",
		Help: "Bytes of the spill file set aside (not replayed) because they failed their checks: a torn write after a crash, or a bad disk.",
	})
	if reg != nil {
		cs := []prometheus.Collector{published, dropped, spilled, replayed, skipped, produceErrors, queueLen, spillBytes, spillCorrupt}
		for i, c := range cs {
			if err := reg.Register(c); err != nil {
				for _, done := range cs[:i] {
					reg.Unregister(done)
				}
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	m := &prodMetrics{produceErrors: produceErrors, spillBytes: spillBytes, spillCorrupt: spillCorrupt}
	for i, t := range prodTopics {
		m.published[i] = published.WithLabelValues(t)
		m.spilled[i] = spilled.WithLabelValues(t)
		m.replayed[i] = replayed.WithLabelValues(t)
		m.skipped[i] = skipped.WithLabelValues(t)
	}
	for i := range m.dropped {
		topic := "unknown"
		if i < prodNumTopics {
			topic = prodTopics[i]
		}
		for j, reason := range prodDropReasons {
			m.dropped[i][j] = dropped.WithLabelValues(topic, reason)
		}
	}
	return m, nil
}

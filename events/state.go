// State topics (rtb.pacing, rtb.models): compacted, key = id, value = whatever the writer encodes
// (this package does not know what a pacing state or a model is). Writers publish the latest value
// of each key; every process that needs the state reads all of the topic's partitions, with no
// consumer group, from the beginning (compaction leaves about one value per key, so that is the
// current state) and then keeps tailing. A nil value is a tombstone: the key is deleted, and
// compaction drops the key altogether once the tombstone is older than delete.retention.ms.

package events

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// KV is one record of a state topic. A nil Value is a tombstone; an empty non-nil Value is a value.
type KV struct {
	Key   string
	Value []byte
}

// StateWriter publishes values to a compacted state topic.
type StateWriter struct {
	topic string
	w     *kafka.Writer
}

// NewStateWriter returns a writer to topic: each Write waits for all in-sync replicas; keys are
// placed by kafka-go's Hash balancer (PartitionOf); writes from concurrent callers are batched for
// up to 5 ms; a missing topic is an error, never auto-created with broker defaults (which would
// not be compacted).
func NewStateWriter(brokers []string, topic string) *StateWriter {
	return &StateWriter{topic: topic, w: &kafka.Writer{
		Addr:                   kafka.TCP(brokers...),
		Topic:                  topic,
		Balancer:               &kafka.Hash{},
		RequiredAcks:           kafka.RequireAll,
		BatchTimeout:           5 * time.Millisecond,
		AllowAutoTopicCreation: false,
		MaxAttempts:            5,
		WriteBackoffMin:        50 * time.Millisecond,
		WriteBackoffMax:        time.Second,
		ReadTimeout:            10 * time.Second,
		WriteTimeout:           10 * time.Second,
		Transport:              &kafka.Transport{DialTimeout: 5 * time.Second, MetadataTTL: 5 * time.Second},
	}}
}

// Write publishes kvs, in order, and returns once the broker has them all (or an error: then some
// may have been written and others not; writing them again is harmless, the latest value wins).
func (w *StateWriter) Write(ctx context.Context, kvs ...KV) error {
	if len(kvs) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(kvs))
	for i, kv := range kvs {
		if kv.Key == "" {
			return fmt.Errorf("write %s: record %d has an empty key (compaction needs one)", w.topic, i)
		}
		msgs[i] = kafka.Message{Key: []byte(kv.Key), Value: kv.Value}
	}
	if err := w.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("write %d records to %s: %w", len(kvs), w.topic, err)
	}
	return nil
}

// Close flushes and closes the writer.
func (w *StateWriter) Close() error { return w.w.Close() }

// StateReader reads a whole state topic: every partition from its beginning, then its tail.
type StateReader struct {
	brokers []string
	topic   string
	fn      func(key string, value []byte)
	log     *slog.Logger
	ready   chan struct{}
	running atomic.Bool
}

// stateRefresh is how often a StateReader looks for partitions added to its topic.
const stateRefresh = 30 * time.Second

// NewStateReader returns a reader of topic that calls fn for every record, in each partition's
// order (so for each key in the order written), from one goroutine at a time; value nil is a
// tombstone. fn owns key and value.
func NewStateReader(brokers []string, topic string, fn func(key string, value []byte)) *StateReader {
	return &StateReader{
		brokers: append([]string(nil), brokers...),
		topic:   topic,
		fn:      fn,
		log:     slog.Default().With("component", "state-reader", "topic", topic),
		ready:   make(chan struct{}),
	}
}

// Ready is closed once every partition has been read up to the end it had when Run started: the
// state seen by fn is then the topic's state as of then.
func (r *StateReader) Ready() <-chan struct{} { return r.ready }

// Run reads until ctx is done; it returns nil then (an error only if called twice or fn is nil).
func (r *StateReader) Run(ctx context.Context) error {
	if r.fn == nil {
		return fmt.Errorf("state reader %s: nil fn", r.topic)
	}
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("state reader %s: Run called twice", r.topic)
	}
	transport := &kafka.Transport{DialTimeout: 5 * time.Second, MetadataTTL: 5 * time.Second}
	defer transport.CloseIdleConnections()
	cl := &kafka.Client{Addr: kafka.TCP(r.brokers...), Timeout: replayRequestTimeout, Transport: transport}

	t0 := time.Now()
	var starts, ends map[int]int64
	startOut := consumerOutage{log: r.log, what: "state topic offsets", level: slog.LevelWarn}
	if !startOut.retry(ctx, func() (err error) { starts, ends, err = r.offsets(ctx, cl, nil); return err }) {
		return nil
	}

	type stateKV struct {
		key   string
		value []byte
	}
	conv := func(m *kafka.Message) stateKV { return stateKV{string(m.Key), m.Value} }
	out := make(chan fetched[stateKV], 2*len(starts))
	var wg sync.WaitGroup
	defer wg.Wait()
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	pending := map[int]int64{} // partition → end at start, for those not yet read up to it
	start := func(p int, from int64) {
		tp := topicPartition{r.topic, p}
		wg.Go(func() { fetchLoop(fctx, cl, r.log, tp, from, out, fetchOptions{}, conv) })
	}
	for p, from := range starts {
		if from < ends[p] {
			pending[p] = ends[p]
		}
		start(p, from)
	}
	var records int64
	readyIf := func() {
		if len(pending) == 0 {
			select {
			case <-r.ready:
			default:
				r.log.Info("state topic read", "partitions", len(starts), "records", records,
					"took", time.Since(t0).Round(time.Millisecond))
				close(r.ready)
			}
		}
	}
	readyIf()

	refresh := time.NewTicker(stateRefresh)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-out:
			for _, kv := range b.items {
				r.fn(kv.key, kv.value)
			}
			records += int64(len(b.items))
			if end, ok := pending[b.tp.partition]; ok && (b.next >= end || b.idle) {
				delete(pending, b.tp.partition)
				readyIf()
			}
		case <-refresh.C:
			// Partitions added to the topic are read from their beginning.
			added, _, err := r.offsets(ctx, cl, starts)
			if err != nil {
				if ctx.Err() == nil {
					r.log.Debug("state topic partition refresh failed", "err", err)
				}
				continue
			}
			for p, from := range added {
				r.log.Info("state topic partition added", "partition", p)
				starts[p] = from
				start(p, from)
			}
		}
	}
}

// offsets lists the first and last offsets of the topic's partitions, leaving out those in known.
func (r *StateReader) offsets(ctx context.Context, cl *kafka.Client, known map[int]int64) (first, last map[int]int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, replayRequestTimeout)
	defer cancel()
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{r.topic}})
	if err != nil {
		return nil, nil, fmt.Errorf("metadata: %w", err)
	}
	var parts []int
	for _, t := range md.Topics {
		if t.Name != r.topic {
			continue
		}
		if t.Error != nil {
			return nil, nil, fmt.Errorf("metadata of %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			if _, ok := known[p.ID]; !ok {
				parts = append(parts, p.ID)
			}
		}
	}
	if len(parts) == 0 {
		if known == nil {
			return nil, nil, fmt.Errorf("metadata: topic %s has no partitions", r.topic)
		}
		return nil, nil, nil
	}
	ranges, err := partitionRanges(ctx, cl, map[string][]int{r.topic: parts}, time.Time{})
	if err != nil {
		return nil, nil, err
	}
	first, last = make(map[int]int64, len(ranges)), make(map[int]int64, len(ranges))
	for tp, rg := range ranges {
		first[tp.partition], last[tp.partition] = rg.start, rg.end
	}
	return first, last, nil
}

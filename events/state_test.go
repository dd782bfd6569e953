package events

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// stMap is what a state reader's caller keeps: the latest value per key.
type stMap struct {
	inCall     atomic.Int32
	mu         sync.Mutex
	m          map[string][]byte
	calls      int
	tombstones map[string]int
	concurrent bool
}

func newSTMap() *stMap { return &stMap{m: map[string][]byte{}, tombstones: map[string]int{}} }

func (s *stMap) fn(key string, value []byte) {
	if s.inCall.Add(1) != 1 {
		s.mu.Lock()
		s.concurrent = true
		s.mu.Unlock()
	}
	defer s.inCall.Add(-1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if value == nil {
		s.tombstones[key]++
		delete(s.m, key)
		return
	}
	s.m[key] = value
}

func (s *stMap) snapshot() (map[string][]byte, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m), s.calls
}

func stEqual(a, b map[string][]byte) bool {
	return maps.EqualFunc(a, b, func(x, y []byte) bool { return bytes.Equal(x, y) && (x == nil) == (y == nil) })
}

func stDiff(got, want map[string][]byte) string {
	var d []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok || !bytes.Equal(g, want[k]) {
			d = append(d, fmt.Sprintf("%s: got %q (present %v), want %q", k, g, ok, want[k]))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("%s: got %q, want absent", k, got[k]))
		}
	}
	if len(d) > 10 {
		d = append(d[:10], fmt.Sprintf("... %d more", len(d)-10))
	}
	return strings.Join(d, "; ")
}

// stStart runs a state reader until the test ends.
func stStart(t testing.TB, brokers []string, topic string, s *stMap) *StateReader {
	t.Helper()
	r := NewStateReader(brokers, topic, s.fn)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("state reader Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("state reader did not stop within 30s")
		}
	})
	return r
}

func stReady(t testing.TB, r *StateReader, what string) time.Duration {
	t.Helper()
	t0 := time.Now()
	select {
	case <-r.Ready():
	case <-time.After(rpWait):
		t.Fatalf("%s: not ready after %v", what, rpWait)
	}
	return time.Since(t0)
}

// stRecords reads every record of topic with plain kafka-go readers (not the code under test),
// up to each partition's last offset (kfake never compacts a partition's last batch).
func stRecords(t testing.TB, brokers []string, topic string) []kafka.Message {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	var out []kafka.Message
	for p := range 4 {
		res, err := cl.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
			topic: {kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p)}}})
		if err != nil {
			t.Fatal(err)
		}
		po := res.Topics[topic][0]
		if po.LastOffset == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MaxWait: 200 * time.Millisecond})
		if err := r.SetOffset(po.FirstOffset); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), rpWait)
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatalf("read %s/%d: %v", topic, p, err)
			}
			out = append(out, m)
			if m.Offset >= po.LastOffset-1 {
				break
			}
		}
		cancel()
		r.Close()
	}
	return out
}

// Many updates of each key, tombstones, compaction: a reader running all along and a reader
// started after the compaction both end with the latest value of each key and without the deleted
// ones; Ready fires when the topic has been read; live updates reach both.
func TestStateLatestValuesTombstonesAndTail(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	brokers := b.Addrs()
	ctx, cancel := context.WithTimeout(context.Background(), rpWait)
	defer cancel()
	w := NewStateWriter(brokers, TopicPacing)
	defer w.Close()

	live := newSTMap()
	rl := stStart(t, brokers, TopicPacing, live)
	stReady(t, rl, "reader of the empty topic")

	const keys, rounds = 40, 25
	want := map[string][]byte{}
	t0 := time.Now()
	for round := range rounds {
		kvs := make([]KV, 0, keys)
		for k := range keys {
			key := fmt.Sprintf("c-%d", k)
			v := fmt.Appendf(nil, `{"campaign":%q,"round":%d}`, key, round)
			kvs = append(kvs, KV{key, v})
			want[key] = v
		}
		if err := w.Write(ctx, kvs...); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d writes of %d records took %v", rounds, keys, time.Since(t0).Round(time.Millisecond))
	var deletes []KV
	for k := range 5 {
		deletes = append(deletes, KV{Key: fmt.Sprintf("c-%d", k)})
		delete(want, fmt.Sprintf("c-%d", k))
	}
	deletes = append(deletes, KV{"c-5", []byte{}}) // empty, not deleted
	want["c-5"] = []byte{}
	if err := w.Write(ctx, deletes...); err != nil {
		t.Fatal(err)
	}
	rpWaitFor(t, rpWait, "the running reader to see every update", func() bool {
		got, _ := live.snapshot()
		return stEqual(got, want)
	})

	// On the wire a tombstone is a null value. (An empty value is not, as the running reader
	// showed: stEqual tells nil from empty. kafka-go's Reader cannot: it reads both as nil.)
	before := stRecords(t, brokers, TopicPacing)
	last := map[string]kafka.Message{}
	for _, m := range before {
		last[string(m.Key)] = m
	}
	if v := last["c-0"].Value; v != nil {
		t.Errorf("tombstone of c-0 read back as %q, want a null value", v)
	}

	b.c.Compact()
	after := stRecords(t, brokers, TopicPacing)
	t.Logf("compaction: %d records before, %d after (%d keys live, %d tombstones)", len(before), len(after), len(want), 5)
	if len(after) >= len(before) {
		t.Errorf("compaction removed nothing: %d records before, %d after", len(before), len(after))
	}

	late := newSTMap()
	rlate := stStart(t, brokers, TopicPacing, late)
	took := stReady(t, rlate, "reader started after the compaction")
	got, calls := late.snapshot()
	if !stEqual(got, want) {
		t.Fatalf("at Ready, the late reader has: %s", stDiff(got, want))
	}
	t.Logf("late reader ready in %v after %d records", took.Round(time.Millisecond), calls)
	late.mu.Lock()
	for k := range 5 {
		if late.tombstones[fmt.Sprintf("c-%d", k)] == 0 {
			t.Errorf("the late reader saw no tombstone for c-%d (kfake keeps tombstones for delete.retention.ms, 1 day)", k)
		}
	}
	late.mu.Unlock()

	// Live updates reach both readers.
	if err := w.Write(ctx, KV{"c-7", []byte(`{"new":1}`)}, KV{"c-new", []byte(`{"new":2}`)}, KV{Key: "c-8"}); err != nil {
		t.Fatal(err)
	}
	want["c-7"], want["c-new"] = []byte(`{"new":1}`), []byte(`{"new":2}`)
	delete(want, "c-8")
	for name, s := range map[string]*stMap{"running": live, "late": late} {
		rpWaitFor(t, rpWait, name+" reader to see the live updates", func() bool {
			got, _ := s.snapshot()
			return stEqual(got, want)
		})
		s.mu.Lock()
		if s.concurrent {
			t.Errorf("%s reader: concurrent calls", name)
		}
		s.mu.Unlock()
	}
}

// Ready waits for the whole topic as it was at start, on every partition.
func TestStateReaderReadyAfterBacklog(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	brokers := b.Addrs()
	ctx, cancel := context.WithTimeout(context.Background(), rpWait)
	defer cancel()
	w := NewStateWriter(brokers, TopicModels)
	defer w.Close()
	want := map[string][]byte{}
	var kvs []KV
	for k := range 2000 {
		key := fmt.Sprintf("model-%d", k)
		v := bytes.Repeat([]byte{byte('a' + k%26)}, 200+k%300)
		kvs = append(kvs, KV{key, v})
		want[key] = v
	}
	if err := w.Write(ctx, kvs...); err != nil {
		t.Fatal(err)
	}
	s := newSTMap()
	r := stStart(t, brokers, TopicModels, s)
	took := stReady(t, r, "reader of the backlog")
	got, calls := s.snapshot()
	if !stEqual(got, want) {
		t.Fatalf("at Ready: %s", stDiff(got, want))
	}
	t.Logf("%d records (%d keys) read, ready in %v", calls, len(got), took.Round(time.Millisecond))
	if err := r.Run(ctx); err == nil {
		t.Error("second Run accepted")
	}
}

func TestStateWriterRefusals(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), rpWait)
	defer cancel()
	w := NewStateWriter(b.Addrs(), TopicPacing)
	defer w.Close()
	if err := w.Write(ctx); err != nil {
		t.Errorf("empty write: %v", err)
	}
	if err := w.Write(ctx, KV{"", []byte("x")}); err == nil {
		t.Error("empty key accepted")
	}
	missing := NewStateWriter(b.Addrs(), "rtb.no-such-topic")
	defer missing.Close()
	t0 := time.Now()
	if err := missing.Write(ctx, KV{"k", []byte("v")}); err == nil {
		t.Error("write to a missing topic succeeded (auto-created?)")
	} else {
		t.Logf("write to a missing topic failed after %v: %v", time.Since(t0).Round(time.Millisecond), err)
	}
	if err := NewStateReader(b.Addrs(), TopicPacing, nil).Run(ctx); err == nil {
		t.Error("state reader with a nil fn ran")
	}
}

package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
)

// Helpers of the producer tests are prefixed pt.

var ptTS = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// ptEvent is event number seq: its id is unique, BidMicros carries seq so that order can be
// checked after a read back.
func ptEvent(typ Type, seq int, campaign string) Event {
	return Event{
		V: Version, Type: typ, ID: fmt.Sprintf("e%07d", seq), TS: ptTS.Add(time.Duration(seq) * time.Millisecond),
		RequestID: fmt.Sprintf("r%d", seq), ImpID: "1", CampaignID: campaign, Exchange: "x",
		PriceMicros: 1000 + int64(seq), BidMicros: int64(seq),
	}
}

type ptLogBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *ptLogBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *ptLogBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// ptLogger collects the producer's log and prints it when the test fails (logging to t after the
// test ends would panic).
func ptLogger(t testing.TB) (*slog.Logger, *ptLogBuf) {
	buf := &ptLogBuf{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("producer log:\n%s", buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// ptProducer starts a producer with its own registry and log, closed when the test ends.
func ptProducer(t testing.TB, cfg ProducerConfig) (*Producer, *ptLogBuf) {
	t.Helper()
	if cfg.SpillDir == "" {
		cfg.SpillDir = t.TempDir()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	log, buf := ptLogger(t)
	if cfg.Logger == nil {
		cfg.Logger = log
	}
	p, err := NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return p, buf
}

func ptFreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// ptStartBroker starts the embedded broker on addr (retrying while the port is released).
func ptStartBroker(t testing.TB, addr, dir string) *Broker {
	t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var b *Broker
		b, err = StartBroker(context.Background(), BrokerConfig{Addr: addr, DataDir: dir, Partitions: 4, Logger: slog.New(slog.DiscardHandler)})
		if err == nil {
			return b
		}
	}
	t.Fatalf("start broker on %s: %v", addr, err)
	return nil
}

// ptBlackHole is an address that accepts connections and never answers.
func ptBlackHole(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go io.Copy(io.Discard, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

func ptWaitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ptVal(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

// ptMoney sums a per-topic counter over the money topics.
func ptMoney(cs [prodNumTopics]prometheus.Counter) float64 {
	return ptVal(cs[prodTopicIndex(Win)]) + ptVal(cs[prodTopicIndex(Imp)])
}

func ptSum(cs [prodNumTopics]prometheus.Counter) float64 {
	n := 0.0
	for _, c := range cs {
		n += ptVal(c)
	}
	return n
}

func ptDropped(p *Producer, typ Type, reason int) float64 {
	return ptVal(p.m.dropped[prodTopicIndex(typ)][reason])
}

// ptRead reads every message of topic, partition by partition, in offset order.
func ptRead(t testing.TB, brokers []string, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr, Timeout: 10 * time.Second}
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Topics) != 1 || md.Topics[0].Error != nil {
		t.Fatalf("metadata of %s: %v %+v", topic, err, md)
	}
	parts := md.Topics[0].Partitions
	sort.Slice(parts, func(i, j int) bool { return parts[i].ID < parts[j].ID })
	var out []kafka.Message
	for _, part := range parts {
		off := int64(0)
		for {
			res, err := c.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: part.ID, Offset: off, MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 50 * time.Millisecond})
			if err != nil {
				t.Fatalf("fetch %s/%d@%d: %v", topic, part.ID, off, err)
			}
			if res.Error != nil {
				t.Fatalf("fetch %s/%d@%d: %v", topic, part.ID, off, res.Error)
			}
			n := 0
			for {
				rec, err := res.Records.ReadRecord()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("read %s/%d: %v", topic, part.ID, err)
				}
				if rec.Offset < off {
					continue
				}
				m := kafka.Message{Topic: topic, Partition: part.ID, Offset: rec.Offset}
				if rec.Key != nil {
					m.Key, _ = io.ReadAll(rec.Key)
				}
				if rec.Value != nil {
					m.Value, _ = io.ReadAll(rec.Value)
				}
				out = append(out, m)
				off = rec.Offset + 1
				n++
			}
			if off >= res.HighWatermark || n == 0 {
				break
			}
		}
	}
	return out
}

// ptCheck decodes msgs and checks: key = campaign id, the topic fits the type, each event id once,
// and a campaign's events on one partition in the order they were published (BidMicros).
func ptCheck(t testing.TB, msgs []kafka.Message) map[string]Event {
	t.Helper()
	byID := map[string]Event{}
	type lane struct {
		part int
		last int64
	}
	lanes := map[string]*lane{} // topic/campaign
	for _, m := range msgs {
		e, err := Decode(m.Value)
		if err != nil {
			t.Fatalf("%s/%d@%d: %v", m.Topic, m.Partition, m.Offset, err)
		}
		if _, dup := byID[e.ID]; dup {
			t.Errorf("event %s is on Kafka more than once (again at %s/%d@%d)", e.ID, m.Topic, m.Partition, m.Offset)
		}
		byID[e.ID] = e
		if string(m.Key) != e.CampaignID {
			t.Errorf("event %s: key %q, want its campaign %q", e.ID, m.Key, e.CampaignID)
		}
		if TopicOf(e.Type) != m.Topic {
			t.Errorf("event %s of type %s on %s, want %s", e.ID, e.Type, m.Topic, TopicOf(e.Type))
		}
		k := m.Topic + "/" + e.CampaignID
		l := lanes[k]
		if l == nil {
			lanes[k] = &lane{part: m.Partition, last: e.BidMicros}
			continue
		}
		if l.part != m.Partition {
			t.Errorf("campaign %s on %s: partitions %d and %d", e.CampaignID, m.Topic, l.part, m.Partition)
		}
		if e.BidMicros <= l.last {
			t.Errorf("campaign %s on %s: event %d after %d (out of order)", e.CampaignID, m.Topic, e.BidMicros, l.last)
		}
		l.last = e.BidMicros
	}
	return byID
}

func ptMoneyOnKafka(t testing.TB, brokers []string) map[string]Event {
	t.Helper()
	return ptCheck(t, append(ptRead(t, brokers, TopicWins), ptRead(t, brokers, TopicImpressions)...))
}

// ptWantIDs checks that got holds exactly the events of seqs.
func ptWantIDs(t testing.TB, got map[string]Event, seqs []int) {
	t.Helper()
	want := map[string]bool{}
	for _, s := range seqs {
		want[fmt.Sprintf("e%07d", s)] = true
	}
	missing := 0
	for id := range want {
		if _, ok := got[id]; !ok {
			if missing < 5 {
				t.Errorf("event %s missing from Kafka", id)
			}
			missing++
		}
	}
	for id := range got {
		if !want[id] {
			t.Errorf("unexpected event %s on Kafka", id)
		}
	}
	if missing > 0 || len(got) != len(want) {
		t.Fatalf("%d events on Kafka, want %d (%d missing)", len(got), len(want), missing)
	}
}

func ptSpillSize(t testing.TB, dir string) int64 {
	t.Helper()
	st, err := os.Stat(filepath.Join(dir, spillFileName))
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

var ptMoneyTypes = []Type{Win, Bill, Imp}

// ---- tests ----

func TestProducerRoundTripEveryType(t *testing.T) {
	b := startTestBroker(t, "")
	p, _ := ptProducer(t, ProducerConfig{Brokers: b.Addrs()})
	types := []Type{Bid, Win, Bill, Imp, Click, Loss}
	var sent []Event
	for i := range 600 {
		e := ptEvent(types[i%len(types)], i, fmt.Sprintf("camp-%d", i%7))
		if i%50 == 0 {
			e.CreativeID, e.DealID, e.MinToWinMicros, e.Reason = "cr", "deal-1", 42, 102
		}
		p.Publish(&e)
		e.CampaignID = "overwritten" // Publish copied it
		sent = append(sent, e)
	}
	ptWaitUntil(t, 20*time.Second, "all acknowledged", func() bool { return ptSum(p.m.published) == float64(len(sent)) })

	var all []kafka.Message
	for _, topic := range prodTopics {
		msgs := ptRead(t, b.Addrs(), topic)
		want := 100
		if topic == TopicWins { // win and bill
			want = 200
		}
		if len(msgs) != want {
			t.Errorf("%s: %d messages, want %d", topic, len(msgs), want)
		}
		all = append(all, msgs...)
	}
	got := ptCheck(t, all)
	for i, e := range sent {
		g, ok := got[e.ID]
		e.CampaignID = fmt.Sprintf("camp-%d", i%7)
		if !ok || string(g.AppendJSON(nil)) != string(e.AppendJSON(nil)) {
			t.Fatalf("event %d: got %+v, want %+v", i, g, e)
		}
	}
	for ti := range prodTopics {
		for r := range prodNumReasons {
			if v := ptVal(p.m.dropped[ti][r]); v != 0 {
				t.Errorf("dropped{%s,%s} = %v", prodTopics[ti], prodDropReasons[r], v)
			}
		}
	}
	if v := ptSum(p.m.spilled); v != 0 {
		t.Errorf("spilled %v with the broker up", v)
	}
}

func TestProducerBrokerDownFromStartSpillsThenReplays(t *testing.T) {
	addr := ptFreeAddr(t) // nothing listens yet
	spillDir := t.TempDir()
	p, logs := ptProducer(t, ProducerConfig{Brokers: []string{addr}, SpillDir: spillDir, WriteTimeout: 2 * time.Second})

	var moneySeqs []int
	for i := range 400 {
		typ := Bid
		if i%4 != 0 {
			typ = ptMoneyTypes[i%3]
			moneySeqs = append(moneySeqs, i)
		}
		e := ptEvent(typ, i, fmt.Sprintf("c%d", i%9))
		p.Publish(&e)
	}
	ptWaitUntil(t, 15*time.Second, "money spilled and bids dropped", func() bool {
		return ptMoney(p.m.spilled) == float64(len(moneySeqs)) && ptDropped(p, Bid, dropBrokerDown) == 100
	})
	if ptVal(p.m.spillBytes) <= 0 || ptSpillSize(t, spillDir) <= spillHeaderSize {
		t.Fatalf("spill gauge %v, file %d bytes: want the money on disk", ptVal(p.m.spillBytes), ptSpillSize(t, spillDir))
	}
	if ptMoney(p.m.published) != 0 {
		t.Fatal("published with no broker")
	}

	b := ptStartBroker(t, addr, "")
	defer b.Close()
	ptWaitUntil(t, 20*time.Second, "spill replayed", func() bool {
		return ptMoney(p.m.replayed) == float64(len(moneySeqs)) && ptVal(p.m.spillBytes) == 0
	})
	ptWantIDs(t, ptMoneyOnKafka(t, b.Addrs()), moneySeqs)
	if n := ptSpillSize(t, spillDir); n != spillHeaderSize {
		t.Errorf("spill file %d bytes after the replay, want %d (truncated)", n, spillHeaderSize)
	}
	if n := len(ptRead(t, b.Addrs(), TopicBids)); n != 0 {
		t.Errorf("%d bids on Kafka; they were dropped", n)
	}
	// New money goes straight to Kafka again.
	e := ptEvent(Win, 1000, "c1")
	p.Publish(&e)
	ptWaitUntil(t, 10*time.Second, "live write after the replay", func() bool { return ptMoney(p.m.published) == float64(len(moneySeqs)+1) })
	if ptMoney(p.m.spilled) != float64(len(moneySeqs)) {
		t.Error("spilled after the replay ended")
	}
	for _, want := range []string{"money events go to the spill", "spill replayed"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if n := strings.Count(logs.String(), "kafka write failed: money"); n != 1 {
		t.Errorf("the outage was logged %d times, want once", n)
	}
}

// TestProducerBrokerRestartMidStream is the central proof: money published while the broker dies
// and comes back (same data, same address) ends up on Kafka exactly once per event, in order per
// campaign.
func TestProducerBrokerRestartMidStream(t *testing.T) {
	brokerDir := t.TempDir()
	addr := ptFreeAddr(t)
	b1 := ptStartBroker(t, addr, brokerDir)
	b1Open := true
	defer func() {
		if b1Open {
			b1.Close()
		}
	}()
	p, _ := ptProducer(t, ProducerConfig{Brokers: []string{addr}, WriteTimeout: 2 * time.Second})

	var n atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			e := ptEvent(ptMoneyTypes[i%3], i, fmt.Sprintf("c%d", i%13))
			p.Publish(&e)
			n.Store(int64(i + 1))
			if i%20 == 19 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	defer func() {
		select {
		case <-done:
		default:
			close(stop)
			<-done
		}
	}()

	published := func() float64 { return ptMoney(p.m.published) }
	ptWaitUntil(t, 10*time.Second, "money on Kafka before the outage", func() bool { return published() >= 2000 })
	b1.Close()
	b1Open = false
	ptWaitUntil(t, 10*time.Second, "money spilled during the outage", func() bool { return ptMoney(p.m.spilled) >= 2000 })
	b2 := ptStartBroker(t, addr, brokerDir)
	defer b2.Close()
	after := published()
	ptWaitUntil(t, 20*time.Second, "replay and new money after the restart", func() bool {
		return ptMoney(p.m.replayed) > 0 && published() >= after+2000
	})
	close(stop)
	<-done
	total := n.Load()
	ptWaitUntil(t, 20*time.Second, "every money event acknowledged", func() bool {
		return published() == float64(total) && ptVal(p.m.spillBytes) == 0
	})
	seqs := make([]int, total)
	for i := range seqs {
		seqs[i] = i
	}
	ptWantIDs(t, ptMoneyOnKafka(t, []string{addr}), seqs)
	t.Logf("%d money events: %v spilled, %v replayed, %v found on Kafka already, %v failed writes",
		total, ptMoney(p.m.spilled), ptMoney(p.m.replayed), ptMoney(p.m.skipped), ptVal(p.m.produceErrors))
}

func TestProducerQueueFullSpillsMoneyDropsBids(t *testing.T) {
	// A broker that accepts and never answers: writes hang until WriteTimeout, the queues fill.
	spillDir := t.TempDir()
	t0 := time.Now()
	p, _ := ptProducer(t, ProducerConfig{Brokers: []string{ptBlackHole(t)}, SpillDir: spillDir, QueueSize: 4, BatchSize: 8, WriteTimeout: time.Second})
	for i := range 400 {
		typ := Bid
		if i%2 == 1 {
			typ = ptMoneyTypes[i%3]
		}
		e := ptEvent(typ, i, fmt.Sprintf("c%d", i%5))
		p.Publish(&e)
	}
	if full := ptDropped(p, Bid, dropQueueFull); full < 150 {
		t.Errorf("%v bids dropped as queue_full, want most of 200", full)
	}
	if q := ptVal(p.m.dropped[prodTopicIndex(Win)][dropQueueFull]) + ptVal(p.m.dropped[prodTopicIndex(Imp)][dropQueueFull]); q != 0 {
		t.Errorf("%v money events dropped", q)
	}
	ptWaitUntil(t, 15*time.Second, "money spilled", func() bool { return ptMoney(p.m.spilled) == 200 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close with a 100ms deadline and a hung broker took %v", d)
	}
	t.Logf("spilled after %v, closed in %v", start.Sub(t0), time.Since(start))
	bids := ptDropped(p, Bid, dropQueueFull) + ptDropped(p, Bid, dropBrokerDown) + ptDropped(p, Bid, dropClosed)
	if bids != 200 {
		t.Errorf("%v bids counted as dropped, want 200", bids)
	}
	// The spill holds the money in publish order.
	s, rec, err := openSpill(spillDir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if rec.records != 200 {
		t.Fatalf("spill holds %d records, want 200", rec.records)
	}
	last := int64(-1)
	for _, r := range ptReadSpill(t, s) {
		e, err := Decode(r.value)
		if err != nil {
			t.Fatal(err)
		}
		if e.BidMicros <= last {
			t.Fatalf("spill order: %d after %d", e.BidMicros, last)
		}
		last = e.BidMicros
	}
}

// ptSpillEvents writes events into the spill of dir as a crashed producer would have left them.
func ptSpillEvents(t testing.TB, dir string, evs []Event, part func(Event) (int32, int64)) {
	t.Helper()
	s, _, err := openSpill(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		pt, floor := int32(-1), int64(-1)
		if part != nil {
			pt, floor = part(e)
		}
		s.add(TopicOf(e.Type), 0, pt, floor, []byte(e.CampaignID), e.AppendJSON(nil))
	}
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	s.close()
}

// A crash can tear the spill's last record; a bad disk can flip bits anywhere. Every record that
// passes its checks reaches Kafka exactly once (also across a second restart), the bad ones are
// set aside and reported, never replayed.
func TestProducerReplaysSpillOfCrashedRunWithTornTail(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flip    []int // records with a flipped bit in their body
		cut     int   // bytes torn off the end
		garbage []byte
		lost    []int
	}{
		{name: "torn last record", cut: 7, lost: []int{29}},
		{name: "garbage appended", garbage: []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5}},
		{name: "flipped byte in record 20", flip: []int{20}, lost: []int{20}},
		{name: "flipped bytes in records 3 and 20, last record torn", flip: []int{3, 20}, cut: 3, lost: []int{3, 20, 29}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spillDir := t.TempDir()
			var evs []Event
			for i := range 30 {
				evs = append(evs, ptEvent(ptMoneyTypes[i%3], i, fmt.Sprintf("c%d", i%4)))
			}
			ptSpillEvents(t, spillDir, evs, nil)
			path := filepath.Join(spillDir, spillFileName)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s, _, err := openSpill(spillDir)
			if err != nil {
				t.Fatal(err)
			}
			recs := ptReadSpill(t, s)
			s.close()
			for _, i := range tc.flip {
				data[recs[i].off+spillFrameSize+10] ^= 1
			}
			data = append(data[:len(data)-tc.cut], tc.garbage...)
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			var seqs []int
			for i := range 30 {
				if !slices.Contains(tc.lost, i) {
					seqs = append(seqs, i)
				}
			}

			b := startTestBroker(t, "")
			p, logs := ptProducer(t, ProducerConfig{Brokers: b.Addrs(), SpillDir: spillDir})
			ptWaitUntil(t, 20*time.Second, "good records replayed", func() bool {
				return ptMoney(p.m.replayed) == float64(len(seqs)) && ptVal(p.m.spillBytes) == 0
			})
			ptWantIDs(t, ptMoneyOnKafka(t, b.Addrs()), seqs)
			if ptVal(p.m.spillCorrupt) <= 0 {
				t.Error("corrupt bytes not counted")
			}
			if !strings.Contains(logs.String(), "set aside") {
				t.Error("corruption not logged")
			}
			if q, _ := filepath.Glob(path + ".corrupt-*"); len(q) != 1 {
				t.Errorf("quarantine files: %v", q)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			// Restarted on the same spill: nothing is replayed twice.
			p2, _ := ptProducer(t, ProducerConfig{Brokers: b.Addrs(), SpillDir: spillDir})
			if r, c := ptMoney(p2.m.replayed), ptVal(p2.m.spillCorrupt); r != 0 || c != 0 || ptVal(p2.m.spillBytes) != 0 {
				t.Errorf("second run: replayed %v, corrupt bytes %v, spill bytes %v; want nothing", r, c, ptVal(p2.m.spillBytes))
			}
			ptWantIDs(t, ptMoneyOnKafka(t, b.Addrs()), seqs)
		})
	}
}

// Records whose write went unanswered carry their partition and a floor offset; a replay skips
// those Kafka has, so nothing is duplicated.
func TestProducerReplaySkipsEventsAlreadyOnKafka(t *testing.T) {
	b := startTestBroker(t, "")
	var evs []Event
	for i := range 40 {
		evs = append(evs, ptEvent(ptMoneyTypes[i%3], i, fmt.Sprintf("c%d", i%3)))
	}
	// The first 25 reached Kafka but their acknowledgement was lost: a plain writer puts them
	// where the producer's balancer would have.
	w := &kafka.Writer{Addr: kafka.TCP(b.Addrs()...), Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	var msgs []kafka.Message
	for _, e := range evs[:25] {
		msgs = append(msgs, kafka.Message{Topic: TopicOf(e.Type), Key: []byte(e.CampaignID), Value: e.AppendJSON(nil)})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	where := map[string]int32{}
	for _, topic := range []string{TopicWins, TopicImpressions} {
		for _, m := range ptRead(t, b.Addrs(), topic) {
			where[string(m.Key)+topic] = int32(m.Partition)
		}
	}
	spillDir := t.TempDir()
	ptSpillEvents(t, spillDir, evs, func(e Event) (int32, int64) {
		part, ok := where[e.CampaignID+TopicOf(e.Type)]
		if !ok {
			return -1, -1
		}
		return part, 0
	})
	p, _ := ptProducer(t, ProducerConfig{Brokers: b.Addrs(), SpillDir: spillDir})
	ptWaitUntil(t, 20*time.Second, "spill replayed", func() bool { return ptVal(p.m.spillBytes) == 0 && ptMoney(p.m.published) == 40 })
	seqs := make([]int, 40)
	for i := range seqs {
		seqs[i] = i
	}
	ptWantIDs(t, ptMoneyOnKafka(t, b.Addrs()), seqs)
	if s := ptMoney(p.m.skipped); s != 25 {
		t.Errorf("skipped %v, want 25", s)
	}
	if r := ptMoney(p.m.replayed); r != 15 {
		t.Errorf("replayed %v, want 15", r)
	}
}

func TestProducerCloseFlushes(t *testing.T) {
	b := startTestBroker(t, "")
	// Batches would wait an hour: only Close can flush them.
	p, _ := ptProducer(t, ProducerConfig{Brokers: b.Addrs(), BatchTimeout: time.Hour, OtherBatchTimeout: time.Hour, BatchSize: 100000})
	types := []Type{Bid, Win, Bill, Imp, Click, Loss}
	for i := range 300 {
		e := ptEvent(types[i%6], i, fmt.Sprintf("c%d", i%4))
		p.Publish(&e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if v := ptSum(p.m.published); v != 300 {
		t.Fatalf("published %v, want 300", v)
	}
	var all []kafka.Message
	for _, topic := range prodTopics {
		all = append(all, ptRead(t, b.Addrs(), topic)...)
	}
	seqs := make([]int, 300)
	for i := range seqs {
		seqs[i] = i
	}
	ptWantIDs(t, ptCheck(t, all), seqs)
}

func TestProducerCloseCancelledSpillsQueuedMoney(t *testing.T) {
	b := startTestBroker(t, "")
	spillDir := t.TempDir()
	p, _ := ptProducer(t, ProducerConfig{Brokers: b.Addrs(), SpillDir: spillDir, BatchTimeout: time.Hour, OtherBatchTimeout: time.Hour, BatchSize: 100000})
	var moneySeqs []int
	for i := range 400 {
		typ := Bid
		if i%4 != 0 {
			typ = ptMoneyTypes[i%3]
			moneySeqs = append(moneySeqs, i)
		}
		e := ptEvent(typ, i, fmt.Sprintf("c%d", i%4))
		p.Publish(&e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close with a done context took %v", d)
	}
	if v := ptMoney(p.m.spilled); v != 300 {
		t.Fatalf("spilled %v, want 300", v)
	}
	if v := ptDropped(p, Bid, dropClosed); v != 100 {
		t.Errorf("bids dropped as closed: %v, want 100", v)
	}
	if n := len(ptRead(t, b.Addrs(), TopicWins)); n != 0 {
		t.Fatalf("%d events on Kafka, want none", n)
	}

	// The next producer on the spill dir replays them.
	p2, _ := ptProducer(t, ProducerConfig{Brokers: b.Addrs(), SpillDir: spillDir})
	ptWaitUntil(t, 20*time.Second, "next run replays the spill", func() bool {
		return ptMoney(p2.m.replayed) == 300 && ptVal(p2.m.spillBytes) == 0
	})
	ptWantIDs(t, ptMoneyOnKafka(t, b.Addrs()), moneySeqs)
}

func TestProducerPublishAfterCloseDrops(t *testing.T) {
	p, logs := ptProducer(t, ProducerConfig{Brokers: []string{ptFreeAddr(t)}})
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, typ := range []Type{Win, Bid, Type("nonsense")} {
		e := ptEvent(typ, 1, "c")
		p.Publish(&e)
	}
	if ptDropped(p, Win, dropClosed) != 1 || ptDropped(p, Bid, dropClosed) != 1 {
		t.Error("events after Close not counted as dropped/closed")
	}
	if ptVal(p.m.dropped[prodNumTopics][dropInvalid]) != 1 {
		t.Error("event of no known type not counted as dropped/invalid")
	}
	if !strings.Contains(logs.String(), "published after the producer was closed") {
		t.Error("not logged")
	}
}

func TestProducerConfigErrors(t *testing.T) {
	if _, err := NewProducer(ProducerConfig{SpillDir: t.TempDir()}); err == nil {
		t.Error("no brokers accepted")
	}
	if _, err := NewProducer(ProducerConfig{Brokers: []string{"127.0.0.1:1"}}); err == nil {
		t.Error("no spill dir accepted")
	}
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	p, _ := ptProducer(t, ProducerConfig{Brokers: []string{"127.0.0.1:1"}, Registerer: reg})
	_ = p
	if _, err := NewProducer(ProducerConfig{Brokers: []string{"127.0.0.1:1"}, SpillDir: dir, Registerer: reg}); err == nil {
		t.Error("second producer on one registry accepted")
	}
	// The failed attempt released the spill dir.
	p2, _ := ptProducer(t, ProducerConfig{Brokers: []string{"127.0.0.1:1"}, SpillDir: dir})
	_ = p2
}

// Publish allocates nothing once the record pool is warm.
func TestProducerPublishDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	b := startTestBroker(t, "")
	const runs = 5000
	// Batches linger for an hour, so nothing is written (nor allocated) in the background while
	// measuring.
	p, _ := ptProducer(t, ProducerConfig{Brokers: b.Addrs(), BatchTimeout: time.Hour, OtherBatchTimeout: time.Hour, BatchSize: 4 * runs})
	for range 2*runs + 10 {
		p.pool.Put(p.pool.New())
	}
	for _, typ := range []Type{Bid, Win} {
		e := ptEvent(typ, 1, "campaign-42")
		e.CreativeID, e.DealID = "creative-7", "deal-9"
		if allocs := testing.AllocsPerRun(runs, func() { p.Publish(&e) }); allocs != 0 {
			t.Errorf("Publish(%s): %v allocations per call, want 0", typ, allocs)
		}
	}
	if v := ptDropped(p, Bid, dropQueueFull); v != 0 {
		t.Fatalf("%v dropped: the measurement took the drop path", v)
	}
}

// A notice may be acknowledged to the exchange only once its event is durable: PublishDurable
// returns when Kafka has the event (readable at once), or, with Kafka down, when the spill has it
// on disk; never sooner, and it says so when it gave up waiting.
func TestProducerPublishDurable(t *testing.T) {
	t.Run("kafka up: on Kafka when it returns", func(t *testing.T) {
		b := startTestBroker(t, "")
		p, _ := ptProducer(t, ProducerConfig{Brokers: b.Addrs()})
		var wg sync.WaitGroup
		errs := make([]error, 60)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e := ptEvent(ptMoneyTypes[i%3], i, fmt.Sprintf("c%d", i)) // concurrent: no order to keep
				errs[i] = p.PublishDurable(&e, 20*time.Second)
			}()
		}
		wg.Wait()
		seqs := make([]int, len(errs))
		for i, err := range errs {
			if err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
			seqs[i] = i
		}
		ptWantIDs(t, ptMoneyOnKafka(t, b.Addrs()), seqs)
	})
	t.Run("kafka down: in the spill when it returns", func(t *testing.T) {
		spillDir := t.TempDir()
		p, _ := ptProducer(t, ProducerConfig{Brokers: []string{ptFreeAddr(t)}, SpillDir: spillDir, WriteTimeout: time.Second})
		for i := range 3 {
			e := ptEvent(Bill, i, "c1")
			if err := p.PublishDurable(&e, 20*time.Second); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
			data, err := os.ReadFile(filepath.Join(spillDir, spillFileName))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(data, []byte(e.ID)) {
				t.Fatalf("event %d acknowledged but not in the spill file", i)
			}
		}
	})
	t.Run("kafka not answering: gives up waiting, says so", func(t *testing.T) {
		p, _ := ptProducer(t, ProducerConfig{Brokers: []string{ptBlackHole(t)}, WriteTimeout: 4 * time.Second})
		e := ptEvent(Bill, 1, "c1")
		if err := p.PublishDurable(&e, 100*time.Millisecond); !errors.Is(err, ErrNotDurable) {
			t.Fatalf("PublishDurable = %v, want ErrNotDurable", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		b := startTestBroker(t, "")
		p, _ := ptProducer(t, ProducerConfig{Brokers: b.Addrs()})
		p.Close(context.Background())
		e := ptEvent(Bill, 1, "c1")
		if err := p.PublishDurable(&e, time.Second); !errors.Is(err, ErrProducerClosed) {
			t.Fatalf("PublishDurable after Close = %v, want ErrProducerClosed", err)
		}
	})
}

package bidder

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"rtb/bidder/campaign"
	"rtb/events"
)

// TestBrokerOutageUnderTraffic stops the broker for ten seconds while bids and notices flow: every bid
// is still answered in budget and every notice accepted, and once the broker is back every win and
// bill event is on rtb.wins exactly once per event id.
func TestBrokerOutageUnderTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a ten-second broker outage")
	}
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	start := func() *events.Broker {
		br, err := events.StartBroker(context.Background(), events.BrokerConfig{Addr: addr, DataDir: dir + "/broker", Partitions: 4})
		if err != nil {
			t.Fatal(err)
		}
		return br
	}
	br := start()
	producer, err := events.NewProducer(events.ProducerConfig{Brokers: []string{addr}, SpillDir: dir + "/spill", WriteTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The budget is generous because this machine is shared and the race detector slows everything;
	// the point is that a Kafka outage never makes a bid wait.
	const budget = 100 * time.Millisecond
	b, _ := newTestBidder(t, campaign.Samples(), func(c *Config) {
		c.Events = producer
		c.Clock = time.Now
		c.Budget = budget
		c.BidIDPrefix = ""
	})
	body := exampleRequests(t)["v25-banner"]

	var mu sync.Mutex
	want := map[string]events.Type{}
	var bids, slow int
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			u := bidOn(t, b, body, "/openrtb2/bid")
			if time.Since(t0) > budget {
				slow++
			}
			bids++
			for _, n := range []struct {
				raw string
				typ events.Type
			}{{u.nurl, events.Win}, {u.burl, events.Bill}} {
				uri := path(t, n.raw, map[string]string{"AUCTION_PRICE": "1"})
				if r := do(b, "GET", uri, nil); r.status != 200 {
					t.Errorf("%s notice refused during the outage: %d %s", n.typ, r.status, r.body)
					return
				}
				q, _ := url.ParseQuery(strings.SplitN(uri, "?", 2)[1])
				mu.Lock()
				want[eventID(n.typ, []byte(q.Get("t")))] = n.typ
				mu.Unlock()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	time.Sleep(time.Second)
	br.Close()
	time.Sleep(10 * time.Second)
	br = start()
	t.Cleanup(br.Close)
	time.Sleep(time.Second)
	close(stop)
	<-done
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := producer.Close(ctx); err != nil {
		t.Fatalf("producer close: %v", err)
	}
	if slow > 0 {
		t.Errorf("%d of %d bids took longer than the %s budget", slow, bids, budget)
	}
	if n := testutilCount(b, outcomeTimeout); n > 0 {
		t.Errorf("%v bids timed out", n)
	}

	got := readAll(t, []string{addr}, events.TopicWins)
	missing, dup := 0, 0
	for id := range want {
		switch got[id] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("unexpected event %s on %s", id, events.TopicWins)
		}
	}
	if missing > 0 || dup > 0 {
		t.Errorf("of %d win and bill events: %d missing, %d on the topic more than once", len(want), missing, dup)
	}
	t.Logf("%d bids, %d win/bill events, all on %s once", bids, len(want), events.TopicWins)
}

// readAll counts the events on every partition of topic by event id.
func readAll(t *testing.T, brokers []string, topic string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, p := range parts {
		pc, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		last, err := pc.ReadLastOffset()
		pc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if last == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p.ID, MaxWait: 100 * time.Millisecond})
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("read %s/%d: %v", topic, p.ID, err)
				}
				break
			}
			var e struct{ ID string }
			if err := json.Unmarshal(m.Value, &e); err != nil {
				t.Fatalf("%s/%d@%d: %v", topic, p.ID, m.Offset, err)
			}
			counts[e.ID]++
			if m.Offset >= last-1 {
				break
			}
		}
		r.Close()
	}
	return counts
}

func testutilCount(b *Bidder, outcome string) float64 {
	return testutil.ToFloat64(b.m.outcome[outcome])
}

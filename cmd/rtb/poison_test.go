package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"rtb/events"
	"rtb/events/eventstest"
)

// poisonBill is a well-formed billing event of campaign sample-banner, as JSON.
func poisonBill(id string, price int64, requestID string) []byte {
	e := events.Event{
		V: events.Version, Type: events.Bill, ID: id, TS: time.Now().UTC(), RequestID: requestID, ImpID: "1",
		CampaignID: "sample-banner", Exchange: "x", PriceMicros: price, BidMicros: 2_000_000,
	}
	return e.AppendJSON(nil)
}

// TestPoisonGoesToDLQ: messages no rtb process wrote, produced onto rtb.wins and rtb.impressions by
// an independent client — not JSON, a schema version this build does not read, a negative price,
// and a well-formed bill of 2 MB — end in rtb.dlq with their reason, and the pacer's spend is
// that of the good bills around them, no more. Before events had a size limit, the 2 MB bill
// counted as spend; before the check group, poison on rtb.impressions reached no dead-letter topic.
func TestPoisonGoesToDLQ(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildRTB(t)
	br := &crashBroker{t: t, addr: eventstest.FreeAddr(t), dir: t.TempDir()}
	br.start()
	admin := eventstest.FreeAddr(t)
	startProc(t, "rtb pacer", bin, "http://"+admin+"/api/pacing", "pacer", "--kafka", br.addr,
		"--admin", admin, "--data-dir", t.TempDir(), "--shading-interval", "10s")

	// The embedded broker refuses messages over 1 MB, as Kafka does by default; a cluster may allow
	// more on its event topics than on rtb.dlq. Such a cluster is what lets a 2 MB message in.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alter := kafka.AlterConfigsRequest{}
	for _, topic := range []string{events.TopicWins, events.TopicImpressions} {
		alter.Resources = append(alter.Resources, kafka.AlterConfigRequestResource{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
			Configs: []kafka.AlterConfigRequestConfig{{Name: "max.message.bytes", Value: fmt.Sprint(4 << 20)}},
		})
	}
	if res, err := (&kafka.Client{Addr: kafka.TCP(br.addr)}).AlterConfigs(ctx, &alter); err != nil {
		t.Fatal(err)
	} else {
		for r, err := range res.Errors {
			if err != nil {
				t.Fatalf("alter %v: %v", r, err)
			}
		}
	}

	w := &kafka.Writer{Addr: kafka.TCP(br.addr), Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond,
		BatchBytes: 4 << 20, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	produce := func(topic string, value []byte) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.WriteMessages(ctx, kafka.Message{Topic: topic, Key: []byte("sample-banner"), Value: value}); err != nil {
			t.Fatalf("produce onto %s: %v", topic, err)
		}
	}
	spent := func() int64 {
		s, err := pacerSpend(admin)
		if err != nil {
			return -1
		}
		return s["sample-banner"]
	}
	waitSpent := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for spent() != want {
			if time.Now().After(deadline) {
				t.Fatalf("pacer spent %d micros, want %d", spent(), want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	produce(events.TopicWins, poisonBill("good-1", 1_500_000, "r1"))
	waitSpent(1_500)

	big := poisonBill("poison-big", 1_000_000, strings.Repeat("r", 2<<20))
	poison := []struct {
		name, reason string
		value        []byte
	}{
		{"not JSON", "decode event", []byte("this is not JSON {")},
		{"wrong version", "schema version", []byte(strings.Replace(string(poisonBill("poison-v2", 1_000_000, "r")), `"v":1`, `"v":2`, 1))},
		{"negative price", "negative amount", poisonBill("poison-negative", -5_000_000, "r")},
		{"2 MB", "bytes", big},
	}
	var want []string // topic|name of every poison message
	for _, topic := range []string{events.TopicWins, events.TopicImpressions} {
		for _, p := range poison {
			v := p.value
			if topic == events.TopicImpressions {
				v = []byte(strings.Replace(string(v), `"type":"bill"`, `"type":"imp"`, 1))
			}
			produce(topic, v)
			want = append(want, topic+"|"+p.name)
		}
	}
	produce(events.TopicWins, poisonBill("good-2", 2_000_000, "r2"))
	waitSpent(1_500 + 2_000) // past the poison, and none of it counted

	// Every poison message is in rtb.dlq with its reason (once per consumer group that read it:
	// pacer and shading trainer on rtb.wins, the check group on rtb.impressions); nothing else is.
	name := func(v []byte) string {
		for _, p := range poison {
			imp := []byte(strings.Replace(string(p.value), `"type":"bill"`, `"type":"imp"`, 1))
			if bytes.HasPrefix(p.value, v) || bytes.HasPrefix(imp, v) { // a dead letter may keep only the start
				return p.name
			}
		}
		return ""
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{br.addr}, Topic: events.TopicDLQ, GroupID: "poison-test",
		StartOffset: kafka.FirstOffset, MaxBytes: 8 << 20, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	got := map[string][]string{} // topic|name → groups
	for len(got) < len(want) {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("rtb.dlq: %v; dead letters so far %v, want one for each of %v", err, got, want)
		}
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		n := name(m.Value)
		if n == "" {
			t.Fatalf("a message that is no poison was dead-lettered: %.200s (%v)", m.Value, h)
		}
		for _, p := range poison {
			if p.name == n && !strings.Contains(h[events.HeaderDLQError], p.reason) {
				t.Errorf("%s on %s: dead-letter reason %q, want it to say %q", n, h[events.HeaderDLQTopic], h[events.HeaderDLQError], p.reason)
			}
		}
		k := h[events.HeaderDLQTopic] + "|" + n
		got[k] = append(got[k], h[events.HeaderDLQGroup])
	}
	for _, k := range want {
		if len(got[k]) == 0 {
			t.Errorf("%s: no dead letter", k)
		}
	}
	t.Logf("dead letters: %v", got)
	if s := spent(); s != 3_500 {
		t.Errorf("pacer spent %d micros after the poison, want 3500 (the two good bills)", s)
	}
}

package events

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// kcat (librdkafka: a Kafka client no one here wrote) reads what we write to the embedded broker:
// the topics, the keys and the JSON envelope are what any Kafka tooling sees.
func TestKcatReadsEvents(t *testing.T) {
	t.Parallel()
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat not found: install the Debian package kcat (apt-get install kcat; .ci/run does this)")
	}
	b := startTestBroker(t, "")
	want := map[string]Event{} // by id
	for i, typ := range []Type{Bid, Win, Bill, Imp, Click, Loss} {
		e := Event{V: Version, Type: typ, ID: fmt.Sprintf("kc-%s", typ), TS: testTS.Add(time.Duration(i) * time.Second),
			RequestID: "req-" + string(typ), ImpID: "1", CampaignID: fmt.Sprintf("c-%d", i%4),
			Exchange: "ex \"é\"", PriceMicros: int64(i) * 1000, BidMicros: int64(i) * 2000, Reason: i}
		if typ == Loss {
			e.MinToWinMicros, e.DealID, e.CreativeID = 4321, "deal-1", "cr-1"
		}
		want[e.ID] = e
		produce(t, b.Addrs(), msgOf(e))
	}

	got := map[string]Event{}
	for _, topic := range eventTopics {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, kcat, "-b", b.Addrs()[0], "-C", "-t", topic, "-o", "beginning", "-e", "-q",
			"-f", "%k\t%s\n")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		cancel()
		if err != nil {
			t.Fatalf("kcat on %s: %v\n%s", topic, err, stderr.Bytes())
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			key, value, ok := strings.Cut(sc.Text(), "\t")
			if !ok {
				t.Fatalf("kcat on %s printed %q: no key/value tab", topic, sc.Text())
			}
			var fields map[string]any
			if err := json.Unmarshal([]byte(value), &fields); err != nil {
				t.Fatalf("kcat on %s: value is not JSON: %v\n%s", topic, err, value)
			}
			for _, k := range []string{"v", "type", "id", "ts", "request_id", "imp_id", "campaign_id", "exchange", "price_micros", "bid_micros", "reason"} {
				if _, ok := fields[k]; !ok {
					t.Errorf("kcat on %s: field %q missing in %s", topic, k, value)
				}
			}
			var e Event
			if err := json.Unmarshal([]byte(value), &e); err != nil {
				t.Fatalf("kcat on %s: %v", topic, err)
			}
			if key != e.CampaignID {
				t.Errorf("kcat on %s: key %q, want the campaign id %q", topic, key, e.CampaignID)
			}
			if TopicOf(e.Type) != topic {
				t.Errorf("event %s of type %s read from %s", e.ID, e.Type, topic)
			}
			got[e.ID] = e
		}
	}
	if len(got) != len(want) {
		t.Errorf("kcat read %d events %v, want %d", len(got), slices.Sorted(maps.Keys(got)), len(want))
	}
	for id, w := range want {
		if g, ok := got[id]; !ok {
			t.Errorf("kcat did not see %s", id)
		} else if !sameEvent(g, w) {
			t.Errorf("kcat read %s as\n %+v\nwant %+v", id, g, w)
		}
	}
}

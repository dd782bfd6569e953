package bidder

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"rtb/events"
)

func TestPacingGate(t *testing.T) {
	now := testNow
	rec := &recorder{}
	b, _ := newTestBidder(t, policyCampaigns(t), func(c *Config) {
		c.Clock = func() time.Time { return now }
		c.Events = rec
		c.Pacing = PacingConfig{Enabled: true, Unknown: 1, StaleAfter: 5 * time.Second}
	})
	body := []byte(`{"id":"r","imp":[{"id":"1","banner":{"w":300,"h":250}}]}`)
	price := func() (int, float64) {
		r := post(b, body)
		if r.status != 200 {
			return r.status, 0
		}
		var resp struct {
			SeatBid []struct{ Bid []struct{ Price float64 } }
		}
		json.Unmarshal(r.body, &resp)
		return r.status, resp.SeatBid[0].Bid[0].Price
	}
	valid := now.Add(2 * time.Second)
	tests := []struct {
		name       string
		set        func()
		wantStatus int
		wantPrice  float64
	}{
		{"no state yet: the unknown throttle (1)", func() {}, 200, 2},
		{"throttle 0", func() { b.SetPacing("open", 0, 1, valid) }, 204, 0},
		{"throttle 1", func() { b.SetPacing("open", 1, 1, valid) }, 200, 2},
		// open's fixed CPM is 2.00 and its max bid 2.00: the multiplier cannot lift it above the ceiling.
		{"multiplier capped at max bid", func() { b.SetPacing("open", 1, 1.2, valid) }, 200, 2},
		{"stale state stops admission", func() { now = valid.Add(6 * time.Second) }, 204, 0},
		// A pacer re-sends only states that change; its heartbeat keeps the others current.
		{"another partition's heartbeat does not revive it", func() {
			b.SetPacingHeartbeat((events.PartitionOf("open", 8)+1)%8, 8, now.Add(2*time.Second))
		}, 204, 0},
		{"its partition's heartbeat revives it", func() { b.SetPacingHeartbeat(events.PartitionOf("open", 8), 8, now.Add(2*time.Second)) }, 200, 2},
		{"an older heartbeat does not undo a newer one", func() { b.SetPacingHeartbeat(events.PartitionOf("open", 8), 8, now.Add(-time.Hour)) }, 200, 2},
		{"the heartbeat stops: stale again", func() { now = now.Add(8 * time.Second) }, 204, 0},
		{"a new state acts at once", func() { b.SetPacing("open", 1, 1, now.Add(time.Second)) }, 200, 2},
		{"partitions added: heartbeats of the new count", func() {
			now = now.Add(8 * time.Second)
			b.SetPacingHeartbeat(events.PartitionOf("open", 12), 12, now.Add(2*time.Second))
		}, 200, 2},
	}
	for _, tc := range tests {
		tc.set()
		paced := testutil.ToFloat64(b.m.noBid[nbPaced])
		status, p := price()
		if status != tc.wantStatus || p != tc.wantPrice {
			t.Errorf("%s: status %d price %v, want %d %v", tc.name, status, p, tc.wantStatus, tc.wantPrice)
		}
		if d := testutil.ToFloat64(b.m.noBid[nbPaced]) - paced; status == 204 && d != 1 {
			t.Errorf("%s: rtb_no_bid_total{reason=\"paced\"} rose by %v, want 1", tc.name, d)
		}
	}
}

func TestPacingMultiplierAndThrottleShare(t *testing.T) {
	set := policyCampaigns(t)
	set.ByID("open").Bid.MaxBid = 3_000_000
	b, _ := newTestBidder(t, set, func(c *Config) {
		c.Pacing = PacingConfig{Enabled: true, StaleAfter: time.Hour}
	})
	b.SetPacing("open", 1, 1.25, testNow.Add(time.Minute))
	r := post(b, []byte(`{"id":"r","imp":[{"id":"1","banner":{"w":300,"h":250}}]}`))
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	var resp struct {
		SeatBid []struct{ Bid []struct{ Price float64 } }
	}
	json.Unmarshal(r.body, &resp)
	if got := resp.SeatBid[0].Bid[0].Price; got != 2.5 {
		t.Errorf("price %v, want 2.00 × 1.25 = 2.5", got)
	}
	b.SetPacing("open", 0.3, 1, testNow.Add(time.Minute))
	bids := 0
	const n = 2000
	for i := 0; i < n; i++ {
		if post(b, []byte(`{"id":"r","imp":[{"id":"1","banner":{"w":300,"h":250}}]}`)).status == 200 {
			bids++
		}
	}
	// 0.3 of 2000 draws: the share is within ±5 points with overwhelming probability.
	if share := float64(bids) / n; share < 0.25 || share > 0.35 {
		t.Errorf("admitted %.3f of auctions at throttle 0.3", share)
	}
}

func TestPacingTrafficReported(t *testing.T) {
	rec := &recorder{}
	b, _ := newTestBidder(t, policyCampaigns(t), func(c *Config) {
		c.Events = rec
		c.Pacing = PacingConfig{Enabled: true, Unknown: 1, TrafficInterval: 10 * time.Millisecond}
	})
	b.SetPacing("open", 0, 1, testNow.Add(time.Hour))
	for i := 0; i < 7; i++ {
		post(b, []byte(`{"id":"r","imp":[{"id":"1","banner":{"w":300,"h":250}}]}`))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.ReportTraffic(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	var got int64
	for got < 7 && time.Now().Before(deadline) {
		for _, e := range rec.take() {
			if e.Type != events.Traffic || e.CampaignID != "open" {
				t.Errorf("unexpected event %+v", e)
			}
			got += e.Count
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	// Throttled to 0, the campaign still counts every auction it was eligible for.
	if got != 7 {
		t.Errorf("traffic reported %d, want 7", got)
	}
}

// TestPacingHeartbeatNeedsAState: a heartbeat vouches for states already published, so a campaign
// without one stays at the unknown throttle (0 here), whatever the heartbeats say.
func TestPacingHeartbeatNeedsAState(t *testing.T) {
	b, _ := newTestBidder(t, policyCampaigns(t), func(c *Config) {
		c.Pacing = PacingConfig{Enabled: true, Unknown: 0, StaleAfter: time.Second}
	})
	for p := range 8 {
		b.SetPacingHeartbeat(p, 8, testNow.Add(time.Hour))
	}
	if r := post(b, []byte(`{"id":"r","imp":[{"id":"1","banner":{"w":300,"h":250}}]}`)); r.status != 204 {
		t.Errorf("status %d: a heartbeat admitted a campaign the pacer never sent a state for", r.status)
	}
}

// TestTrafficReportsDoNotGrowWithCampaigns: whatever the number of campaigns with traffic, an
// interval makes at most one report per partition, each report holds only campaigns of the
// partition its key lands on, no count is lost or doubled, and a quiet interval sends nothing.
func TestTrafficReportsDoNotGrowWithCampaigns(t *testing.T) {
	const parts = 8
	for _, n := range []int{100, 10_000, 100_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			rec := &recorder{}
			b := &Bidder{log: slog.Default(), cfg: Config{Events: rec, Pacing: PacingConfig{Enabled: true,
				TrafficPartitions: func(context.Context) (int, error) { return parts, nil }}}}
			want := map[string]int64{}
			for i := range n {
				id := fmt.Sprintf("c-%06d", i)
				s := b.pacing.slot(id)
				for range i%3 + 1 {
					b.pacing.count(s)
				}
				want[id] = int64(i%3 + 1)
			}
			// A campaign without traffic is not in any report.
			b.pacing.slot("quiet")
			r := trafficReporter{b: b}
			r.report(context.Background(), testNow)
			reports := rec.take()
			if len(reports) > parts {
				t.Errorf("%d campaigns with traffic made %d reports in one interval, want at most %d (one a partition)", n, len(reports), parts)
			}
			got := map[string]int64{}
			ids := map[string]bool{}
			for _, e := range reports {
				if e.Type != events.Traffic || ids[e.ID] {
					t.Fatalf("report %q of type %s (a duplicate id?)", e.ID, e.Type)
				}
				ids[e.ID] = true
				p := events.PartitionOf(e.CampaignID, parts)
				var sum int64
				for _, c := range e.Counts {
					if events.PartitionOf(c.CampaignID, parts) != p {
						t.Fatalf("report keyed %s (partition %d) carries %s of partition %d", e.CampaignID, p, c.CampaignID, events.PartitionOf(c.CampaignID, parts))
					}
					got[c.CampaignID] += c.N
					sum += c.N
				}
				if sum != e.Count {
					t.Errorf("report %s: count %d, its counts sum to %d", e.ID, e.Count, sum)
				}
				if line := e.AppendJSON(nil); len(line) > 1<<20 {
					t.Errorf("report %s is %d bytes: over Kafka's default message size", e.ID, len(line))
				} else if _, err := events.Decode(line); err != nil {
					t.Errorf("report %s does not decode: %v", e.ID, err)
				}
			}
			if len(got) != len(want) {
				t.Errorf("%d campaigns reported, want %d", len(got), len(want))
			}
			for id, w := range want {
				if got[id] != w {
					t.Fatalf("%s: reported %d, want %d", id, got[id], w)
				}
			}
			r.report(context.Background(), testNow.Add(time.Second))
			if again := rec.take(); len(again) != 0 {
				t.Errorf("an interval without traffic sent %d reports", len(again))
			}
		})
	}
}

// TestTrafficCountedUnderConcurrency: requests count while the reporter takes the counts; every
// auction is reported exactly once (run with -race).
func TestTrafficCountedUnderConcurrency(t *testing.T) {
	rec := &recorder{}
	b := &Bidder{log: slog.Default(), cfg: Config{Events: rec, Pacing: PacingConfig{Enabled: true,
		TrafficPartitions: func(context.Context) (int, error) { return 4, nil }}}}
	slots := make([]*pacingSlot, 50)
	for i := range slots {
		slots[i] = b.pacing.slot(fmt.Sprintf("c-%d", i))
	}
	const workers, per = 4, 20_000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	r := trafficReporter{b: b}
	reporterDone := make(chan struct{})
	go func() {
		defer close(reporterDone)
		for {
			select {
			case <-stop:
				r.report(context.Background(), testNow)
				return
			default:
				r.report(context.Background(), testNow)
			}
		}
	}()
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				b.pacing.count(slots[(i*7+w)%len(slots)])
			}
		})
	}
	wg.Wait()
	close(stop)
	<-reporterDone
	var total int64
	for _, e := range rec.take() {
		for _, c := range e.Counts {
			total += c.N
		}
	}
	if total != workers*per {
		t.Errorf("reported %d auctions, counted %d", total, workers*per)
	}
}

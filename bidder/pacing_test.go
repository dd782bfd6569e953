package bidder

import (
	"context"
	"encoding/json"
	"testing"
	"time"

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
	}
	for _, tc := range tests {
		tc.set()
		status, p := price()
		if status != tc.wantStatus || p != tc.wantPrice {
			t.Errorf("%s: status %d price %v, want %d %v", tc.name, status, p, tc.wantStatus, tc.wantPrice)
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

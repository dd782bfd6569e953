package pacing_test

import (
	"fmt"
	"testing"
	"time"

	"rtb/pacing"
)

// loaded returns a controller with n campaigns (four zones) that have been running for a minute
// with spend and traffic every second, and the time of the next step.
func loaded(n int) (*pacing.Controller, []string, time.Time) {
	zones := []*time.Location{time.UTC}
	for _, name := range []string{"America/New_York", "Europe/Paris", "Asia/Tokyo"} {
		if loc, err := time.LoadLocation(name); err == nil {
			zones = append(zones, loc)
		}
	}
	ids := make([]string, n)
	bs := make([]pacing.Budget, n)
	for i := range bs {
		ids[i] = fmt.Sprintf("c-%05d", i)
		bs[i] = pacing.Budget{CampaignID: ids[i], Daily: int64(100+i%900) * 1_000_000, Location: zones[i%len(zones)], Active: true}
	}
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	c := pacing.NewController(pacing.Config{UseTrafficShape: true})
	c.SetBudgets(bs, now)
	for range 60 {
		feed(c, ids, now)
		c.Update(now)
		now = now.Add(time.Second)
	}
	return c, ids, now
}

func feed(c *pacing.Controller, ids []string, now time.Time) {
	for i, id := range ids {
		c.Traffic(id, 100+i%50, now.Add(-time.Second))
		c.Spend(id, 2_000, now.Add(-500*time.Millisecond))
	}
}

// BenchmarkUpdate10k: one control step for 10,000 campaigns (the spend and traffic of the step are
// fed outside the timer).
func BenchmarkUpdate10k(b *testing.B) {
	c, ids, now := loaded(10_000)
	dst := make([]pacing.State, 0, len(ids))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		feed(c, ids, now)
		b.StartTimer()
		dst = c.AppendUpdate(dst[:0], now)
		now = now.Add(time.Second)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e4, "ns/campaign")
}

// BenchmarkUpdate10kAlloc is Update returning a fresh slice, as the simple API does.
func BenchmarkUpdate10kAlloc(b *testing.B) {
	c, _, now := loaded(10_000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c.Update(now)
		now = now.Add(time.Second)
	}
}

// BenchmarkSpend: booking one billed impression, among 10,000 campaigns.
func BenchmarkSpend(b *testing.B) {
	c, ids, now := loaded(10_000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Spend(ids[i%len(ids)], 2_000, now)
		i++
	}
}

// BenchmarkSpendParallel: consumer goroutines booking spend concurrently.
func BenchmarkSpendParallel(b *testing.B) {
	c, ids, now := loaded(10_000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Spend(ids[i%len(ids)], 2_000, now)
			i += 7
		}
	})
}

// BenchmarkTraffic: one batch of opportunity counts.
func BenchmarkTraffic(b *testing.B) {
	c, ids, now := loaded(10_000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Traffic(ids[i%len(ids)], 100, now)
		i++
	}
}

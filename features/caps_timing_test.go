package features

import (
	"strconv"
	"testing"
	"time"
)

// Run: go test -run xxx -bench 'Caps|CTR' -benchmem ./features/

func benchCaps(b *testing.B) (*Caps, []string, time.Time) {
	c, err := NewCaps(CapsConfig{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	now := time.Now()
	camps := make([]string, 64)
	for i := range camps {
		camps[i] = "campaign-" + strconv.Itoa(i)
	}
	for u := uint64(1); u <= 10_000; u++ {
		c.Impression(u, camps[u%64], time.Hour, now)
		c.Reserve(u, camps[u%64], now)
	}
	c.Wait()
	return c, camps, now
}

func BenchmarkCapsAllow(b *testing.B) {
	c, camps, now := benchCaps(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		u := uint64(1)
		for pb.Next() {
			c.Allow(u, camps[u%64], 3, now)
			u = u%20_000 + 1 // half hits, half misses
		}
	})
}

func BenchmarkCapsReserve(b *testing.B) {
	c, camps, now := benchCaps(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		u := uint64(1)
		for pb.Next() {
			c.Reserve(u, camps[u%64], now)
			u = u%20_000 + 1
		}
	})
}

func BenchmarkCapsTryReserve(b *testing.B) {
	c, camps, now := benchCaps(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		u := uint64(1)
		for pb.Next() {
			c.TryReserve(u, camps[u%64], 1<<20, now)
			u = u%20_000 + 1
		}
	})
}

// BenchmarkCapsImpression is the updater's cost per impression, new windows mostly (a replay).
func BenchmarkCapsImpression(b *testing.B) {
	c, err := NewCaps(CapsConfig{MaxCost: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	now := time.Now()
	b.ReportAllocs()
	for i := range b.N {
		c.Impression(uint64(i/2+1), "campaign-1", time.Hour, now)
	}
	c.Wait()
}

package auction

import (
	"math"
	"testing"
	"time"
)

// benchShader is a LearnedShader with a model set of the size a busy bidder holds: 20 exchanges,
// each with 30 segments, their formats and the exchange itself, and the any model.
func benchShader(b *testing.B, explore float64) *LearnedShader {
	s, err := NewLearnedShader(ShaderConfig{Explore: explore})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	var ms []*SegmentModel
	add := func(k ModelKey) {
		m, err := NewSegmentModel(ModelParams{Key: k, Mu: math.Log(1.5e6), Sigma: 0.6, N: 1000, FittedAt: now})
		if err != nil {
			b.Fatal(err)
		}
		ms = append(ms, m)
	}
	add(ModelKey{})
	formats := []string{"banner-300x250", "banner-728x90", "banner-320x50", "banner-160x600", "banner-300x600",
		"banner-970x250", "banner-336x280", "banner-468x60", "video", "native"}
	for x := range 20 {
		ex := string(rune('a'+x)) + "-exchange"
		add(ModelKey{Exchange: ex})
		for _, f := range formats {
			add(ModelKey{Exchange: ex, Format: f})
			for _, inv := range []string{"site", "app", "dooh"} {
				add(ModelKey{ex, f, inv})
			}
		}
	}
	s.Swap(NewModels(ms...))
	return s
}

// BenchmarkShade is the cost of one shading decision on the bid path, by how far the lookup falls
// back, and with the default 2% exploration.
func BenchmarkShade(b *testing.B) {
	for _, bc := range []struct {
		name, exchange, segment string
		explore                 float64
	}{
		{"segment", "c-exchange", "banner-300x250|app", -1},
		{"format", "c-exchange", "banner-300x250|ctv", -1},
		{"exchange", "c-exchange", "audio|app", -1},
		{"any", "unknown", "video|app", -1},
		{"segment/explore=2%", "c-exchange", "banner-300x250|app", 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := benchShader(b, bc.explore)
			b.ReportAllocs()
			for b.Loop() {
				sinkMicros += s.Shade(bc.exchange, bc.segment, 2_345_678, 100_000)
			}
		})
	}
}

// BenchmarkShadeParallel is Shade from every core at once: the striped counters and the read-only
// model set should keep it scaling.
func BenchmarkShadeParallel(b *testing.B) {
	s := benchShader(b, 0)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var sink int64
		for pb.Next() {
			sink += s.Shade("c-exchange", "banner-300x250|app", 2_345_678, 100_000)
		}
		sinkMicros += sink
	})
}

// BenchmarkModelBid is the table lookup alone.
func BenchmarkModelBid(b *testing.B) {
	m, err := NewSegmentModel(ModelParams{Key: ModelKey{Exchange: "x"}, Mu: math.Log(1.5e6), Sigma: 0.6, N: 1, FittedAt: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	v := int64(2_345_678)
	for b.Loop() {
		sinkMicros += m.Bid(v)
	}
}

// BenchmarkNewSegmentModel is the cost of building a model's table, paid when a model arrives.
func BenchmarkNewSegmentModel(b *testing.B) {
	p := ModelParams{Key: ModelKey{Exchange: "x"}, Mu: math.Log(1.5e6), Sigma: 0.6, N: 1, FittedAt: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewSegmentModel(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFitLogNormal is one refit of a segment's window of 5,000 observations.
func BenchmarkFitLogNormal(b *testing.B) {
	m := market{math.Log(1.5e6), 0.6, newRand(9)}
	obs := m.observe(5_000, 0.8e6, 6e6, 0.3)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FitLogNormal(obs, FitConfig{}); err != nil {
			b.Fatal(err)
		}
	}
}

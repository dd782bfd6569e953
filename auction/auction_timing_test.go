package auction

import "testing"

// benchOffer is one candidate of a phase as the bidder's index yields it: bound first (descending),
// then the campaign's value for the impression.
type benchOffer struct {
	bound, value int64
	rank         int
}

// benchCandidates builds n candidates of descending bound whose values spread below their bounds,
// so that the Beatable cut-off happens part-way, as it does in production.
func benchCandidates(n int) []benchOffer {
	cs := make([]benchOffer, n)
	for i := range cs {
		bound := int64(8_000_000 - i*300_000)
		cs[i] = benchOffer{bound: bound, value: bound - int64(i%5)*700_000, rank: i}
	}
	return cs
}

// sinkOffer keeps the compiler from discarding the benchmarked work.
var sinkOffer Offer

// BenchmarkAuctionImp is the per-imp work of the auction: the floor conversion, then a first-price
// phase over ~20 candidates (Beatable, Price through a shader, Consider), then Resolve.
func BenchmarkAuctionImp(b *testing.B) {
	cands := benchCandidates(20)
	var s Shader = fracShader{4, 5}
	b.ReportAllocs()
	for b.Loop() {
		floor, ok := FloorMicros(1.25, "EUR")
		if !ok {
			b.Fatal("EUR unknown")
		}
		var deal, open Best
		for _, c := range cands {
			if !open.Beatable(c.bound) {
				break
			}
			bid, ok := Price(s, "x", "banner-300x250|site", true, c.value, floor)
			if !ok {
				continue
			}
			open.Consider(Offer{Rank: c.rank, Value: c.value, Price: bid})
		}
		sinkOffer, _ = Resolve(&deal, &open, false)
	}
}

// BenchmarkAuctionImpAll is the same without the Beatable cut-off: all 20 candidates priced.
func BenchmarkAuctionImpAll(b *testing.B) {
	cands := benchCandidates(20)
	var s Shader = fracShader{4, 5}
	b.ReportAllocs()
	for b.Loop() {
		floor, _ := FloorMicros(1.25, "EUR")
		var open Best
		for _, c := range cands {
			if bid, ok := Price(s, "x", "banner-300x250|site", true, c.value, floor); ok {
				open.Consider(Offer{Rank: c.rank, Value: c.value, Price: bid})
			}
		}
		sinkOffer = open.Offer
	}
}

var sinkMicros int64

func BenchmarkFloorMicros(b *testing.B) {
	for _, cur := range []string{"USD", "EUR", "KRW"} {
		b.Run(cur, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m, _ := FloorMicros(1.37, cur)
				sinkMicros += m
			}
		})
	}
}

var sinkBool bool

func BenchmarkCategoryBlocked(b *testing.B) {
	bcat := []string{"IAB25", "IAB26", "IAB7-39", "IAB8-5", "IAB9-9", "IAB14-1"}
	cats := []string{"IAB1", "IAB3-1", "IAB19-30"}
	b.ReportAllocs()
	for b.Loop() {
		sinkBool = CategoryBlocked(bcat, cats)
	}
}

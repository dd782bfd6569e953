package auction

import (
	"math"
	"testing"
)

// fixedShader returns the same bid whatever it is asked: it stands for a broken model.
type fixedShader int64

func (s fixedShader) Shade(string, string, int64, int64) int64 { return int64(s) }

// fracShader bids num/den of the value, like a learned shading model would.
type fracShader struct{ num, den int64 }

func (s fracShader) Shade(_, _ string, value, _ int64) int64 { return value * s.num / s.den }

func TestPrice(t *testing.T) {
	tests := []struct {
		name         string
		s            Shader
		firstPrice   bool
		value, floor int64
		bid          int64
		ok           bool
	}{
		{"second price bids the value", fracShader{1, 2}, false, 2_000_000, 500_000, 2_000_000, true},
		{"second price ignores the shader", fixedShader(-5), false, 2_000_000, 0, 2_000_000, true},
		{"first price, nil shader bids the value", nil, true, 2_000_000, 500_000, 2_000_000, true},
		{"first price, no shading", NoShading{}, true, 2_000_000, 500_000, 2_000_000, true},
		{"first price shades", fracShader{1, 2}, true, 2_000_000, 500_000, 1_000_000, true},
		{"first price shaded below floor is raised to it", fracShader{1, 10}, true, 2_000_000, 500_000, 500_000, true},
		{"first price, value equal to floor", fracShader{1, 2}, true, 500_000, 500_000, 500_000, true},
		{"second price, value equal to floor", nil, false, 500_000, 500_000, 500_000, true},
		{"shader returns a negative bid", fixedShader(-1), true, 2_000_000, 500_000, 500_000, true},
		{"shader returns a negative bid, no floor", fixedShader(math.MinInt64), true, 2_000_000, 0, 0, true},
		{"shader returns above the value", fixedShader(9_000_000), true, 2_000_000, 500_000, 2_000_000, true},
		{"shader returns MaxInt64", fixedShader(math.MaxInt64), true, 2_000_000, 0, 2_000_000, true},
		{"value below floor", nil, false, 499_999, 500_000, 0, false},
		{"value below floor, first price", fracShader{1, 2}, true, 499_999, 500_000, 0, false},
		{"zero value", nil, false, 0, 0, 0, false},
		{"negative value", nil, false, -1, -10, 0, false},
		{"unreachable floor", nil, false, 2_000_000, math.MaxInt64, 0, false},
		{"no floor", nil, false, 1, 0, 1, true},
	}
	for _, tt := range tests {
		bid, ok := Price(tt.s, "x", "banner-300x250|site", tt.firstPrice, tt.value, tt.floor)
		if bid != tt.bid || ok != tt.ok {
			t.Errorf("%s: Price(%v, %v, %d, %d) = %d, %v; want %d, %v",
				tt.name, tt.s, tt.firstPrice, tt.value, tt.floor, bid, ok, tt.bid, tt.ok)
		}
		if ok && (bid > tt.value || bid < tt.floor) {
			t.Errorf("%s: bid %d outside [floor %d, value %d]", tt.name, bid, tt.floor, tt.value)
		}
	}
}

// Whatever a shader returns, a first-price bid stays within [floor, value].
func TestPriceClampsAnyShader(t *testing.T) {
	garbage := []int64{math.MinInt64, -1_000_000, -1, 0, 1, 499_999, 500_000, 1_234_567, 2_000_000, 2_000_001, math.MaxInt64}
	for _, g := range garbage {
		for _, floor := range []int64{-5, 0, 1, 500_000, 2_000_000} {
			bid, ok := Price(fixedShader(g), "x", "banner-300x250|site", true, 2_000_000, floor)
			if !ok {
				t.Fatalf("shader %d, floor %d: not ok", g, floor)
			}
			if bid > 2_000_000 || bid < floor {
				t.Errorf("shader %d, floor %d: bid %d outside [floor, value]", g, floor, bid)
			}
		}
	}
}

func TestBestConsider(t *testing.T) {
	var b Best
	if b.Have {
		t.Fatal("zero Best has an offer")
	}
	b.Consider(Offer{Rank: 0, Price: 100})
	b.Consider(Offer{Rank: 1, Price: 300})
	b.Consider(Offer{Rank: 2, Price: 300}) // tie: the earlier keeps it
	b.Consider(Offer{Rank: 3, Price: 200})
	b.Consider(Offer{Rank: 4, Price: 299})
	if !b.Have || b.Offer.Rank != 1 || b.Offer.Price != 300 {
		t.Fatalf("best = %+v, want rank 1 at 300", b)
	}
	b.Consider(Offer{Rank: 5, Price: 301})
	if b.Offer.Rank != 5 {
		t.Fatalf("best = %+v, want rank 5 at 301", b)
	}

	// The first offer is taken whatever its price.
	var z Best
	z.Consider(Offer{Rank: 7, Price: 0})
	if !z.Have || z.Offer.Rank != 7 {
		t.Fatalf("first offer at price 0 not kept: %+v", z)
	}
	z.Consider(Offer{Rank: 8, Price: 0})
	if z.Offer.Rank != 7 {
		t.Fatalf("tie at 0 replaced the earlier offer: %+v", z)
	}
}

func TestBestBeatable(t *testing.T) {
	var b Best
	for _, bound := range []int64{math.MinInt64, -1, 0, 1, math.MaxInt64} {
		if !b.Beatable(bound) {
			t.Errorf("empty Best: Beatable(%d) = false", bound)
		}
	}
	b.Consider(Offer{Price: 1_000})
	for bound, want := range map[int64]bool{1_001: true, math.MaxInt64: true, 1_000: false, 999: false, 0: false, -1: false} {
		if got := b.Beatable(bound); got != want {
			t.Errorf("best 1000: Beatable(%d) = %v, want %v", bound, got, want)
		}
	}
}

func TestResolve(t *testing.T) {
	deal := Best{Offer: Offer{Rank: 1, Price: 100, DealID: "d1"}, Have: true}
	open := Best{Offer: Offer{Rank: 2, Price: 900}, Have: true}
	none := Best{}
	tests := []struct {
		name       string
		deal, open Best
		private    bool
		want       Offer
		ok         bool
	}{
		{"deal wins over a richer open offer", deal, open, false, deal.Offer, true},
		{"deal in a private auction", deal, none, true, deal.Offer, true},
		{"deal in a private auction, open present", deal, open, true, deal.Offer, true},
		{"private auction without deal: no bid", none, open, true, Offer{}, false},
		{"open only", none, open, false, open.Offer, true},
		{"nothing", none, none, false, Offer{}, false},
		{"nothing, private", none, none, true, Offer{}, false},
	}
	for _, tt := range tests {
		got, ok := Resolve(&tt.deal, &tt.open, tt.private)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: Resolve = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

// An auction phase as the bidder runs it: candidates by descending bound, stop at the first that
// cannot beat the best.
func TestPhase(t *testing.T) {
	type cand struct {
		bound, value int64
	}
	cands := []cand{{5_000, 3_000}, {4_000, 4_000}, {3_500, 2_000}, {3_000, 3_000}, {1_000, 1_000}}
	var b Best
	visited := 0
	for r, c := range cands {
		if !b.Beatable(c.bound) {
			break
		}
		visited++
		if bid, ok := Price(nil, "x", "banner-300x250|site", false, c.value, 1_500); ok {
			b.Consider(Offer{Rank: r, Value: c.value, Price: bid})
		}
	}
	if !b.Have || b.Offer.Rank != 1 || b.Offer.Price != 4_000 {
		t.Fatalf("best = %+v, want rank 1 at 4000", b)
	}
	if visited != 2 {
		t.Fatalf("visited %d candidates, want 2 (the third's bound 3500 cannot beat 4000)", visited)
	}
}

func TestCPCValue(t *testing.T) {
	tests := []struct {
		cpc  int64
		ctr  float64
		want int64
	}{
		{1_500_000, 0.002, 3_000_000}, // 1.50 CPC × 0.2% CTR = 3.00 CPM
		{1_000_000, 0.001, 1_000_000},
		{2_000_000, 0.0005, 1_000_000},
		{1_000_000, 1, 1_000_000_000},
		{1, 0.0001, 0}, // 0.1 micro rounds down
		{1_000_000, 0, 0},
		{1_000_000, -0.01, 0},
		{0, 0.01, 0},
		{-1_000_000, 0.01, 0},
	}
	for _, tt := range tests {
		if got := CPCValue(tt.cpc, tt.ctr); got != tt.want {
			t.Errorf("CPCValue(%d, %v) = %d, want %d", tt.cpc, tt.ctr, got, tt.want)
		}
	}
}

// The request path must not allocate: neither must these.
func TestZeroAllocs(t *testing.T) {
	var s Shader = fracShader{4, 5}
	bcat := []string{"IAB25", "IAB26", "IAB7-39", "IAB8-5"}
	cats := []string{"IAB1", "IAB3-1", "IAB19-30"}
	badv := []string{"nike.com", "", "apple.com"}
	var sink int64
	var blocked bool
	tests := map[string]func(){
		"Price first":     func() { b, _ := Price(s, "x", "banner-300x250|site", true, 2_000_000, 500_000); sink += b },
		"Price second":    func() { b, _ := Price(s, "x", "banner-300x250|site", false, 2_000_000, 500_000); sink += b },
		"Price NoShading": func() { b, _ := Price(NoShading{}, "x", "banner-300x250|site", true, 2_000_000, 500_000); sink += b },
		"FloorMicros USD": func() { m, _ := FloorMicros(1.25, "USD"); sink += m },
		"FloorMicros EUR": func() { m, _ := FloorMicros(1.25, "EUR"); sink += m },
		"FloorMicros unknown": func() {
			m, _ := FloorMicros(1.25, "XXX")
			sink += m
		},
		"FromAccount":     func() { m, _ := FromAccount(1_250_000, "EUR"); sink += m },
		"CategoryBlocked": func() { blocked = blocked != CategoryBlocked(bcat, cats) },
		"DomainBlocked":   func() { blocked = blocked != DomainBlocked(badv, "store.apple.com") },
		"Consider": func() {
			var b Best
			b.Consider(Offer{Rank: 1, Price: 3, DealID: "d"})
			sink += b.Offer.Price
		},
	}
	for name, f := range tests {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
	}
	_, _ = sink, blocked
}

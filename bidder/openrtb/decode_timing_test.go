package openrtb

import (
	"os"
	"testing"
)

// BenchmarkDecode decodes and validates IAB example requests into a reused BidRequest, as the bid
// path does with its pooled scratch.
func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"v25-banner", "v26-banner", "v26-video", "v26-native", "v26-app"} {
		body, err := os.ReadFile("testdata/requests/" + name + ".json")
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			var r BidRequest
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := Decode(body, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	r := BidResponse{ID: "80ce30c53c16e6ede735f123ef6e32361bfc7b22", Cur: "USD", SeatBid: []SeatBid{{Seat: "rtb", Bid: []Bid{{
		ID: "t-1", ImpID: "1", Price: 2_000_000, NURL: "https://bid.example.com/win?t=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&p=${AUCTION_PRICE}",
		AdM:     `<a href="https://bid.example.com/click?t=AAAA"><img src="https://cdn.example.com/a.png" width="300" height="250"></a>`,
		ADomain: []string{"ford.com"}, CrID: "cr-1", Cat: []string{"IAB2"}, W: 300, H: 250, MType: MTypeBanner,
	}}}}}
	buf := r.AppendJSON(nil)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendJSON(buf[:0])
	}
}

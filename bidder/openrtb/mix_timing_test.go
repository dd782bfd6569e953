package openrtb_test

import (
	"testing"

	"rtb/bidder/openrtb"
	"rtb/loadtest"
)

// BenchmarkDecodeMix decodes the load generator's request mix (seed 1): the bodies an exchange
// sends in `rtb loadgen`, so the figure is the one the end-to-end runs pay.
func BenchmarkDecodeMix(b *testing.B) {
	bodies, err := loadtest.Bodies(1, 1000)
	if err != nil {
		b.Fatal(err)
	}
	var d openrtb.Decoder
	var r openrtb.BidRequest
	var n int
	for _, body := range bodies {
		n += len(body.JSON)
	}
	b.SetBytes(int64(n / len(bodies)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := d.Decode(bodies[i%len(bodies)].JSON, &r); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

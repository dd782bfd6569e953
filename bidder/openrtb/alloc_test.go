package openrtb_test

import (
	"os"
	"path/filepath"
	"testing"

	"rtb/bidder/openrtb"
	"rtb/loadtest"
)

// TestDecodeAllocations holds decoding into a reused request to no allocation at all, as fasthttp
// asserts for its own paths: for the load generator's request mix (what exchanges send in the
// end-to-end runs) and for every IAB example. Garbage per request is what made the collector's mark
// phases take both cores under load.
func TestDecodeAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race; the README's test command also runs this test without it")
	}
	bodies, err := loadtest.Bodies(1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var d openrtb.Decoder
	var r openrtb.BidRequest
	var nr openrtb.NativeRequest
	decodeAll := func() {
		for _, b := range bodies {
			if err := d.Decode(b.JSON, &r); err != nil {
				t.Fatal(err)
			}
			r.GDPRApplies()
			for i := range r.Imp {
				if n := r.Imp[i].Native; n != nil {
					if err := openrtb.ParseNativeRequest(n.Request, &nr); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	decodeAll() // the first pass grows what the request keeps
	if n := testing.AllocsPerRun(5, decodeAll); n != 0 {
		t.Errorf("decoding the %d requests of the mix allocates %.0f times, want 0", len(bodies), n)
	}

	files, _ := filepath.Glob("testdata/requests/*.json")
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			var r openrtb.BidRequest
			if err := d.Decode(body, &r); err != nil {
				t.Fatal(err)
			}
			if n := testing.AllocsPerRun(20, func() { _ = d.Decode(body, &r) }); n != 0 {
				t.Errorf("decoding allocates %.0f times, want 0", n)
			}
		})
	}
}

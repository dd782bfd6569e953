package targeting

import (
	"fmt"
	"testing"
	"time"

	"rtb/bidder/campaign"
	"rtb/bidder/campaign/campaigntest"
	"rtb/bidder/openrtb"
)

func benchRequest() *openrtb.BidRequest {
	return &openrtb.BidRequest{ID: "r",
		Imp:    []openrtb.Imp{{ID: "1", Banner: &openrtb.Banner{Format: []openrtb.Format{{W: 300, H: 250}, {W: 336, H: 280}}}}},
		Site:   &openrtb.Site{Domain: "www.site3.com", Publisher: openrtb.Publisher{ID: "pub-7"}},
		Device: openrtb.Device{DeviceType: 2, OS: "Android", Geo: openrtb.Geo{Country: "USA"}},
		User:   openrtb.User{Data: []openrtb.Data{{Segment: []openrtb.Segment{{ID: "seg-3"}, {ID: "seg-40"}}}}},
	}
}

// BenchmarkTargeting measures candidate selection against growing campaign counts. "first" is what
// the bidder pays when the richest candidate wins (the auction stops there); "top10" walks ten
// candidates; "all" walks every candidate, which grows with the number that match, not with the
// index.
func BenchmarkTargeting(b *testing.B) {
	req := benchRequest()
	for _, n := range []int{100, 1000, 10000} {
		ix, err := Build(campaigntest.Synthetic(n, 1), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		for _, walk := range []struct {
			name string
			max  int
		}{{"first", 1}, {"top10", 10}, {"all", 1 << 30}} {
			b.Run(fmt.Sprintf("campaigns=%d/%s", n, walk.name), func(b *testing.B) {
				b.ReportAllocs()
				var q Query
				var it Iter
				found := 0
				for b.Loop() {
					ix.Prepare(&q, req, nil)
					q.Open(&it, &req.Imp[0])
					k := 0
					for r := it.Next(); r >= 0 && k < walk.max; r = it.Next() {
						k++
					}
					found = k
				}
				b.ReportMetric(float64(found), "candidates")
			})
		}
	}
}

// BenchmarkBuild is what start-up and every campaign reload pay to index a set of that many
// campaigns.
func BenchmarkBuild(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		set := campaigntest.Synthetic(n, 1)
		if _, err := campaign.NewSet(set.Source, set.Campaigns); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("campaigns=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			now := time.Now()
			for b.Loop() {
				if _, err := Build(set, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

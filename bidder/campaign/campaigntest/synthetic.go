// Package campaigntest builds synthetic campaign sets for benchmarks and tests of the code that reads
// campaigns: many campaigns with a realistic spread of targeting, reproducible from a seed.
package campaigntest

import (
	"fmt"
	"math/rand/v2"

	"rtb/bidder/campaign"
)

// Countries are the countries synthetic campaigns target, most common first.
var Countries = []string{"USA", "GBR", "DEU", "FRA", "CAN", "BRA", "IND", "JPN", "AUS", "ESP",
	"ITA", "MEX", "NLD", "SWE", "POL", "TUR", "KOR", "ARG", "ZAF", "NGA"}

// Sizes are the banner sizes synthetic campaigns carry, most common first.
var Sizes = [][2]int{{300, 250}, {728, 90}, {320, 50}, {160, 600}, {300, 600}, {970, 250}, {336, 280}, {468, 60}}

// Synthetic returns n valid campaigns (campaign.NewSet accepts them) drawn from seed. Roughly: 60% target one to three countries,
// half target device types, 40% restrict inventory type, 30% carry a site allow list from a Zipf
// universe of 5,000 domains, 10% restrict publishers, 20% need user segments, 5% are deal-only;
// 15% have a video creative and 10% a native one; bids are fixed CPMs of 0.50–5.00 or target CPC.
func Synthetic(n int, seed uint64) *campaign.Set {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	zipf := rand.NewZipf(r, 1.2, 1, 4999)
	set := &campaign.Set{Source: fmt.Sprintf("synthetic(%d, seed %d)", n, seed)}
	for i := 0; i < n; i++ {
		c := &campaign.Campaign{
			ID:               fmt.Sprintf("syn-%05d", i),
			AdvertiserDomain: fmt.Sprintf("adv%d.example.com", i%500),
			Categories:       []string{fmt.Sprintf("IAB%d", 1+r.IntN(20))},
		}
		t := &c.Targeting
		if r.Float64() < 0.6 {
			for k := 0; k <= r.IntN(3); k++ {
				t.Countries = append(t.Countries, Countries[min(r.IntN(len(Countries)), r.IntN(len(Countries)))])
			}
		}
		if r.Float64() < 0.5 {
			t.DeviceTypes = []int{[]int{1, 2, 4, 5}[r.IntN(4)], []int{1, 2, 4, 5}[r.IntN(4)]}
		}
		switch x := r.Float64(); {
		case x < 0.2:
			t.Inventory = "site"
		case x < 0.4:
			t.Inventory = "app"
		}
		if t.Inventory != "app" && r.Float64() < 0.3 {
			for k := 0; k < 5+r.IntN(16); k++ {
				t.Sites.Allow = append(t.Sites.Allow, fmt.Sprintf("site%d.com", zipf.Uint64()))
			}
		}
		if r.Float64() < 0.1 {
			t.Publishers = []string{fmt.Sprintf("pub-%d", r.IntN(200)), fmt.Sprintf("pub-%d", r.IntN(200))}
		}
		if r.Float64() < 0.2 {
			t.Segments = []string{fmt.Sprintf("seg-%d", r.IntN(200))}
		}
		if r.Float64() < 0.05 {
			t.Deals = []string{fmt.Sprintf("deal-%d", r.IntN(100))}
		}
		for k := 0; k <= r.IntN(3); k++ {
			sz := Sizes[min(r.IntN(len(Sizes)), r.IntN(len(Sizes)))]
			c.Creatives = append(c.Creatives, campaign.Creative{
				ID: fmt.Sprintf("b%d", k), Type: campaign.TypeBanner, W: sz[0], H: sz[1],
				HTML:       `<a href="{{CLICK_URL}}"><img src="https://cdn.example.com/a.png"></a><img src="{{IMP_URL}}" width="1" height="1">`,
				LandingURL: "https://www.example.com/landing",
			})
		}
		if r.Float64() < 0.15 {
			c.Creatives = append(c.Creatives, campaign.Creative{
				ID: "v", Type: campaign.TypeVideo, MIMEs: []string{"video/mp4"}, Duration: 15,
				VAST: `<VAST version="3.0"><Ad><InLine><Impression><![CDATA[{{IMP_URL}}]]></Impression></InLine></Ad></VAST>`, LandingURL: "https://www.example.com/landing",
			})
		}
		if r.Float64() < 0.1 {
			c.Creatives = append(c.Creatives, campaign.Creative{
				ID: "n", Type: campaign.TypeNative, LandingURL: "https://www.example.com/landing",
				Native: &campaign.Native{Title: "Synthetic", Body: "A synthetic ad", ImageURL: "https://cdn.example.com/i.png", ImageW: 1200, ImageH: 627},
			})
		}
		cpm := campaign.Micros(500_000 + 10_000*r.IntN(451))
		if r.Float64() < 0.2 {
			c.Bid = campaign.BidStrategy{Type: "target_cpc", CPC: campaign.Micros(1_000_000 + 10_000*r.IntN(200)), CTR: 0.001 + r.Float64()*0.004, MaxBid: cpm}
		} else {
			c.Bid = campaign.BidStrategy{Type: "fixed_cpm", CPM: cpm, MaxBid: cpm}
		}
		c.Budget = campaign.Budget{Daily: 1_000_000_000}
		set.Campaigns = append(set.Campaigns, c)
	}
	return set
}

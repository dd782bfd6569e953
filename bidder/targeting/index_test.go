package targeting

import (
	"slices"
	"testing"
	"time"

	"rtb/bidder/campaign"
	"rtb/bidder/openrtb"
)

func banner(id string, w, h int) campaign.Creative {
	return campaign.Creative{ID: id, Type: "banner", W: w, H: h, HTML: "<a></a>", LandingURL: "https://example.com/"}
}

func fixed(id string, cpm int64, t campaign.Targeting, creatives ...campaign.Creative) *campaign.Campaign {
	return &campaign.Campaign{ID: id, AdvertiserDomain: id + ".com", Creatives: creatives, Targeting: t,
		Bid: campaign.BidStrategy{Type: "fixed_cpm", CPM: campaign.Micros(cpm), MaxBid: campaign.Micros(cpm)}}
}

// candidates returns the ids the open auction of imp 0 would walk, in order.
func candidates(t *testing.T, ix *Index, req *openrtb.BidRequest, segs ...string) []string {
	t.Helper()
	var q Query
	var it Iter
	ix.Prepare(&q, req, segs)
	q.Open(&it, &req.Imp[0])
	var ids []string
	for r := it.Next(); r >= 0; r = it.Next() {
		ids = append(ids, ix.Entries[r].Campaign.ID)
	}
	return ids
}

func TestCandidates(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	ended := now.Add(-time.Hour)
	set := &campaign.Set{Campaigns: []*campaign.Campaign{
		fixed("any", 1_000_000, campaign.Targeting{}, banner("b", 300, 250)),
		fixed("usa", 2_000_000, campaign.Targeting{Countries: []string{"USA"}}, banner("b", 300, 250)),
		fixed("gbr", 3_000_000, campaign.Targeting{Countries: []string{"GBR"}}, banner("b", 300, 250)),
		fixed("mobile", 1_500_000, campaign.Targeting{DeviceTypes: []int{1, 4}}, banner("b", 300, 250)),
		fixed("app", 1_200_000, campaign.Targeting{Inventory: "app"}, banner("b", 300, 250)),
		fixed("foobar", 2_500_000, campaign.Targeting{Sites: campaign.ListRule{Allow: []string{"foobar.com"}}}, banner("b", 300, 250)),
		fixed("nofoobar", 900_000, campaign.Targeting{Sites: campaign.ListRule{Block: []string{"foobar.com"}}}, banner("b", 300, 250)),
		fixed("leader", 5_000_000, campaign.Targeting{}, banner("b", 728, 90)),
		fixed("seg", 4_000_000, campaign.Targeting{Segments: []string{"auto"}}, banner("b", 300, 250)),
		fixed("deal", 6_000_000, campaign.Targeting{Deals: []string{"d1"}}, banner("b", 300, 250)),
		fixed("pub", 800_000, campaign.Targeting{Publishers: []string{"8953"}}, banner("b", 300, 250)),
		fixed("ios", 700_000, campaign.Targeting{OS: []string{"ios"}}, banner("b", 300, 250)),
		{ID: "paused", Status: "paused", Creatives: []campaign.Creative{banner("b", 300, 250)}, Bid: campaign.BidStrategy{Type: "fixed_cpm", CPM: 1, MaxBid: 1}},
		{ID: "ended", End: &ended, Creatives: []campaign.Creative{banner("b", 300, 250)}, Bid: campaign.BidStrategy{Type: "fixed_cpm", CPM: 1, MaxBid: 1}},
	}}
	ix, err := Build(set, now)
	if err != nil {
		t.Fatal(err)
	}
	site := func(domain, country string, dt int8) *openrtb.BidRequest {
		return &openrtb.BidRequest{ID: "r", Imp: []openrtb.Imp{{ID: "1", Banner: &openrtb.Banner{W: 300, H: 250}}},
			Site:   &openrtb.Site{Domain: domain, Publisher: openrtb.Publisher{ID: "8953"}},
			Device: openrtb.Device{DeviceType: dt, OS: "iOS", Geo: openrtb.Geo{Country: country}}}
	}
	app := site("", "USA", 4)
	app.Site, app.App = nil, &openrtb.App{Bundle: "com.example.game"}
	formats := site("other.com", "GBR", 2)
	formats.Imp[0].Banner = &openrtb.Banner{Format: []openrtb.Format{{W: 728, H: 90}, {W: 300, H: 250}}}

	tests := []struct {
		name string
		req  *openrtb.BidRequest
		segs []string
		want []string // richest first
	}{
		{"usa desktop on foobar", site("www.foobar.com", "USA", 2), nil, []string{"foobar", "usa", "any", "pub", "ios"}},
		{"gbr phone elsewhere", site("other.com", "GBR", 4), nil, []string{"gbr", "mobile", "any", "nofoobar", "pub", "ios"}},
		{"segment present", site("other.com", "FRA", 2), []string{"auto"}, []string{"seg", "any", "nofoobar", "pub", "ios"}},
		{"app inventory has no site allow", app, nil, []string{"usa", "mobile", "app", "any", "nofoobar", "ios"}},
		{"formats union", formats, nil, []string{"leader", "gbr", "any", "nofoobar", "pub", "ios"}},
		{"country lower case", site("other.com", "gbr", 2), nil, []string{"gbr", "any", "nofoobar", "pub", "ios"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := candidates(t, ix, tc.req, tc.segs...)
			if !slices.Equal(got, tc.want) {
				t.Errorf("candidates = %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("deal", func(t *testing.T) {
		req := site("other.com", "USA", 2)
		var q Query
		var it Iter
		ix.Prepare(&q, req, nil)
		if q.Deal(&it, &req.Imp[0], "nope") {
			t.Fatal("unknown deal has candidates")
		}
		if !q.Deal(&it, &req.Imp[0], "d1") {
			t.Fatal("deal d1 has no candidates")
		}
		if r := it.Next(); r < 0 || ix.Entries[r].Campaign.ID != "deal" || it.Next() != -1 {
			t.Fatalf("deal candidates wrong: first rank %d", r)
		}
	})
}

func TestEmptyIndex(t *testing.T) {
	ix, err := Build(&campaign.Set{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req := &openrtb.BidRequest{ID: "r", Imp: []openrtb.Imp{{ID: "1", Banner: &openrtb.Banner{W: 300, H: 250}}}}
	if got := candidates(t, ix, req); len(got) != 0 {
		t.Fatalf("empty index yields %v", got)
	}
}

package bidder

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"rtb/bidder/campaign"
)

// policyCampaigns: one open-auction campaign with everything a block can hit, and one deal campaign.
func policyCampaigns(t *testing.T) *campaign.Set {
	t.Helper()
	set, err := campaign.Parse([]byte(`campaigns:
  - id: open
    advertiser_domain: shop.example
    app_bundle: "1234567"
    seat: seat-a
    categories: [IAB22-1]
    creatives:
      - {id: b, type: banner, w: 300, h: 250, html: '<a href="{{CLICK_URL}}">x</a>', landing_url: 'https://shop.example/', attributes: [7]}
    bid: {type: fixed_cpm, cpm: 2, max_bid: 2}
    budget: {daily: 10}
  - id: deal
    advertiser_domain: brand.example
    categories: [IAB18]
    targeting: {deals: [D1]}
    creatives:
      - {id: b, type: banner, w: 300, h: 250, html: '<a href="{{CLICK_URL}}">x</a>', landing_url: 'https://brand.example/'}
    bid: {type: fixed_cpm, cpm: 4, max_bid: 4}
    budget: {daily: 10}
`), "policy.yaml", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestPolicies(t *testing.T) {
	b, _ := newTestBidder(t, policyCampaigns(t), nil)
	imp := `"imp":[{"id":"1","banner":{"w":300,"h":250%s}%s}]`
	req := func(extra, bannerExtra, impExtra string) []byte {
		return []byte(`{"id":"r",` + fmt.Sprintf(imp, bannerExtra, impExtra) + extra + `}`)
	}
	tests := []struct {
		name         string
		body         []byte
		wantCampaign string // "" = no bid
		wantSeat     string
		wantReason   string // of a no-bid: rtb_no_bid_total's reason
	}{
		{"plain", req("", "", ""), "open", "seat-a", ""},
		{"bcat tier 1 blocks tier 2", req(`,"bcat":["IAB22"]`, "", ""), "", "", "blocked"},
		{"bcat other tier 2", req(`,"bcat":["IAB22-2"]`, "", ""), "open", "seat-a", ""},
		{"badv", req(`,"badv":["shop.example"]`, "", ""), "", "", "blocked"},
		{"bapp", req(`,"bapp":["1234567"]`, "", ""), "", "", "blocked"},
		{"battr", req("", `,"battr":[7]`, ""), "", "", "blocked"},
		{"wseat without ours", req(`,"wseat":["other"]`, "", ""), "", "", "blocked"},
		{"wseat with ours", req(`,"wseat":["seat-a"]`, "", ""), "open", "seat-a", ""},
		{"bseat", req(`,"bseat":["seat-a"]`, "", ""), "", "", "blocked"},
		{"deal beats open", req("", "", `,"pmp":{"deals":[{"id":"D1","bidfloor":3}]}`), "deal", "rtb", ""},
		{"deal floor above value falls back to open", req("", "", `,"pmp":{"deals":[{"id":"D1","bidfloor":5}]}`), "open", "seat-a", ""},
		{"private auction, deal floor too high", req("", "", `,"pmp":{"private_auction":1,"deals":[{"id":"D1","bidfloor":5}]}`), "", "", "floor"},
		{"deal wadomain excludes", req("", "", `,"pmp":{"private_auction":1,"deals":[{"id":"D1","wadomain":["other.example"]}]}`), "", "", "blocked"},
		{"deal wseat excludes", req("", "", `,"pmp":{"private_auction":1,"deals":[{"id":"D1","wseat":["x"]}]}`), "", "", "blocked"},
		{"deal at=3 bids the floor", req("", "", `,"pmp":{"private_auction":1,"deals":[{"id":"D1","at":3,"bidfloor":3.5}]}`), "deal", "rtb", ""},
		{"floor in EUR converted", req("", "", `,"bidfloor":1.8,"bidfloorcur":"EUR"`), "open", "seat-a", ""},
		{"floor in GBP above value", req("", "", `,"bidfloor":1.8,"bidfloorcur":"GBP"`), "", "", "floor"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, reason := noBidReason(t, b, tc.body)
			if tc.wantCampaign == "" {
				if r.status != 204 {
					t.Fatalf("status %d (%s), want 204", r.status, r.body)
				}
				if reason != tc.wantReason {
					t.Errorf("no-bid reason %q, want %q", reason, tc.wantReason)
				}
				return
			}
			if r.status != 200 {
				t.Fatalf("status %d (%s), want a bid from %s", r.status, r.body, tc.wantCampaign)
			}
			var resp struct {
				SeatBid []struct {
					Seat string
					Bid  []struct {
						CID, Bundle string
						Price       float64
					}
				}
			}
			if err := json.Unmarshal(r.body, &resp); err != nil {
				t.Fatal(err)
			}
			sb := resp.SeatBid[0]
			if sb.Bid[0].CID != tc.wantCampaign || sb.Seat != tc.wantSeat {
				t.Errorf("bid from %s in seat %s, want %s in %s", sb.Bid[0].CID, sb.Seat, tc.wantCampaign, tc.wantSeat)
			}
			if tc.name == "deal at=3 bids the floor" && sb.Bid[0].Price != 3.5 {
				t.Errorf("fixed-price deal bid %v, want the deal price 3.5", sb.Bid[0].Price)
			}
			if sb.Bid[0].CID == "open" && sb.Bid[0].Bundle != "1234567" {
				t.Errorf("bid.bundle %q, want the campaign's app", sb.Bid[0].Bundle)
			}
		})
	}
}

func TestFlightDatesWhileInForce(t *testing.T) {
	set := policyCampaigns(t)
	open := set.ByID("open")
	start, end := testNow.Add(time.Hour), testNow.Add(2*time.Hour)
	open.Start, open.End = &start, &end
	now := testNow
	b, _ := newTestBidder(t, set, func(c *Config) { c.Clock = func() time.Time { return now } })
	body := []byte(`{"id":"r","imp":[{"id":"1","banner":{"w":300,"h":250}}]}`)
	for _, step := range []struct {
		at   time.Time
		want int
	}{{testNow, 204}, {start, 200}, {end.Add(-time.Millisecond), 200}, {end, 204}} {
		now = step.at
		if r := post(b, body); r.status != step.want {
			t.Errorf("at %s: status %d, want %d", step.at.Format(time.TimeOnly), r.status, step.want)
		}
	}
}

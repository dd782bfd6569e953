package bidder

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"rtb/bidder/campaign"
	"rtb/events"
	"rtb/features"
)

// learningCampaigns: one capped CPM campaign and one CPC campaign, both for 300x250 on any site.
const learningCampaigns = `
campaigns:
  - id: capped
    advertiser_domain: a.example
    creatives:
      - {id: cr1, type: banner, w: 300, h: 250, html: '<a href="{{CLICK_URL}}"><img src="{{IMP_URL}}"></a>', landing_url: "https://a.example/"}
    bid: {type: fixed_cpm, cpm: 2.00, max_bid: 3.00}
    budget: {daily: 100}
    frequency_cap: {impressions: 3, window: 24h}
  - id: cpc
    advertiser_domain: b.example
    creatives:
      - {id: cr2, type: banner, w: 300, h: 250, html: '<a href="{{CLICK_URL}}"><img src="{{IMP_URL}}"></a>', landing_url: "https://b.example/"}
    bid: {type: target_cpc, cpc: 0.50, ctr: 0.002, max_bid: 10.00}
    budget: {daily: 100}
`

const learningRequest = `{"id":"r1","at":1,"cur":["USD"],"imp":[{"id":"1","banner":{"w":300,"h":250},"bidfloor":0.1}],
 "site":{"id":"s","domain":"news.example","publisher":{"id":"p"}},"device":{"devicetype":2},"user":{"id":"u-1"}}`

// fakeCaps allows a user per campaign until told otherwise, and records reservations.
type fakeCaps struct {
	mu       sync.Mutex
	full     map[string]bool
	reserved []string
}

func (f *fakeCaps) Allow(user uint64, c string, limit int, _ time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return limit == 3 && !f.full[c]
}

func (f *fakeCaps) TryReserve(user uint64, c string, limit int, _ time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reserved = append(f.reserved, c)
	return limit == 3
}

type fixedCTR float64

func (f fixedCTR) Estimate(_, segment string, prior float64) float64 {
	if segment != "banner-300x250|site" {
		return prior
	}
	return float64(f)
}

func learningBid(t *testing.T, b *Bidder, body string) (cid string, price float64) {
	t.Helper()
	r := post(b, []byte(body))
	if r.status == 204 {
		return "", 0
	}
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var resp struct {
		SeatBid []struct {
			Bid []struct {
				CID   string
				Price float64
			}
		}
	}
	if err := json.Unmarshal(r.body, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.SeatBid[0].Bid[0].CID, resp.SeatBid[0].Bid[0].Price
}

func TestFrequencyCapsAndCTR(t *testing.T) {
	set, err := campaign.Parse([]byte(learningCampaigns), "learning.yaml", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	noUser := strings.Replace(learningRequest, `,"user":{"id":"u-1"}`, "", 1)
	tests := []struct {
		name      string
		body      string
		full      bool    // the capped campaign's cap is reached
		ctr       float64 // the CTR estimator's answer for the segment (0: no estimator)
		wantCID   string
		wantPrice float64
	}{
		// cpc is worth 0.50 × 0.002 × 1000 = 1.00 CPM at its configured CTR: capped's 2.00 wins.
		{"capped campaign under its cap bids", learningRequest, false, 0, "capped", 2.00},
		{"cap reached: the next campaign bids", learningRequest, true, 0, "cpc", 1.00},
		{"no user: a capped campaign cannot bid", noUser, false, 0, "cpc", 1.00},
		// The estimator says 0.006 on this segment: 0.50 × 0.006 × 1000 = 3.00 CPM beats capped.
		{"CTR estimate raises a CPC campaign's value", learningRequest, false, 0.006, "cpc", 3.00},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caps := &fakeCaps{full: map[string]bool{"capped": tt.full}}
			rec := &recorder{}
			b, _ := newTestBidder(t, set, func(c *Config) {
				c.Caps, c.Events, c.BidSampleRate = caps, rec, 1
				if tt.ctr > 0 {
					c.CTR = fixedCTR(tt.ctr)
				}
			})
			cid, price := learningBid(t, b, tt.body)
			if cid != tt.wantCID || price != tt.wantPrice {
				t.Fatalf("bid %q at %v, want %q at %v", cid, price, tt.wantCID, tt.wantPrice)
			}
			wantReserved := 0
			if cid == "capped" {
				wantReserved = 1
			}
			if len(caps.reserved) != wantReserved {
				t.Errorf("reservations %v, want %d for the capped campaign", caps.reserved, wantReserved)
			}
			evs := rec.take()
			if len(evs) != 1 || evs[0].Type != events.Bid {
				t.Fatalf("bid log %+v, want one bid event", evs)
			}
			wantUser := ""
			if tt.body == learningRequest {
				wantUser = fmt.Sprintf("%016x", features.UserKey("u-1"))
			}
			if evs[0].Segment != "banner-300x250|site" || evs[0].User != wantUser {
				t.Errorf("bid event segment %q user %q, want banner-300x250|site and %q", evs[0].Segment, evs[0].User, wantUser)
			}
		})
	}
}

// The notices of a bid carry its segment and user, which the bidder signed into the token: frequency
// caps and CTR estimates are keyed by them downstream.
func TestNoticesCarrySegmentAndUser(t *testing.T) {
	set, err := campaign.Parse([]byte(learningCampaigns), "learning.yaml", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	b, _ := newTestBidder(t, set, func(c *Config) { c.Events = rec })
	u := bidOn(t, b, []byte(strings.Replace(learningRequest, `"site"`, `"app"`, 1)), "/openrtb2/bid?exchange=x1")
	for _, p := range []string{path(t, u.imp, nil), path(t, u.click, nil), path(t, u.nurl, map[string]string{"AUCTION_PRICE": "1.5"})} {
		if r := do(b, "GET", p, nil); r.status >= 400 {
			t.Fatalf("%s: %d %s", p, r.status, r.body)
		}
	}
	evs := rec.take()
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3", len(evs))
	}
	for _, e := range evs {
		if e.Segment != "banner-300x250|app" || e.User != fmt.Sprintf("%016x", features.UserKey("u-1")) || e.Exchange != "x1" {
			t.Errorf("%s event: segment %q user %q exchange %q, want banner-300x250|app, the user's key, x1", e.Type, e.Segment, e.User, e.Exchange)
		}
	}
}

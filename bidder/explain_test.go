package bidder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"rtb/auction"
	"rtb/bidder/campaign"
	"rtb/events"
)

// countingPublisher counts the events a bidder publishes.
type countingPublisher struct{ n atomic.Int64 }

func (p *countingPublisher) Publish(*events.Event) { p.n.Add(1) }

// explainHTTP posts body to the admin port's /api/explain handler and decodes the answer.
func explainHTTP(t *testing.T, b *Bidder, query string, body []byte) Explanation {
	t.Helper()
	rec := httptest.NewRecorder()
	b.ExplainAPI().ServeHTTP(rec, httptest.NewRequest("POST", "/api/explain"+query, bytes.NewReader(body)))
	if rec.Code != 200 {
		t.Fatalf("/api/explain%s: HTTP %d: %s", query, rec.Code, rec.Body)
	}
	var x Explanation
	if err := json.Unmarshal(rec.Body.Bytes(), &x); err != nil {
		t.Fatalf("/api/explain answer is not an Explanation: %v\n%s", err, rec.Body)
	}
	return x
}

// bidCampaigns is "imp id=campaign id" of every bid in a bid response, sorted as they come.
func bidCampaigns(t *testing.T, resp []byte) []string {
	t.Helper()
	var r struct {
		SeatBid []struct {
			Bid []struct{ ImpID, CID string }
		}
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		t.Fatalf("bid response: %v\n%s", err, resp)
	}
	var out []string
	for _, sb := range r.SeatBid {
		for _, bd := range sb.Bid {
			out = append(out, bd.ImpID+"="+bd.CID)
		}
	}
	return out
}

// TestExplainSampleRequests: for every sample request, /api/explain says what the bid endpoint
// answers (status, and which campaign bids on which imp), and the campaign it names as the winner
// of each imp is the one in the response.
func TestExplainSampleRequests(t *testing.T) {
	for name, body := range exampleRequests(t) {
		t.Run(name, func(t *testing.T) {
			b, _ := newTestBidder(t, campaign.Samples(), nil)
			x := explainHTTP(t, b, "?debug=1", body)
			r, reason := noBidReason(t, b, body)
			if x.Status != r.status {
				t.Fatalf("explain says %d, the bid endpoint answered %d (%s)", x.Status, r.status, r.body)
			}
			if r.status == 204 {
				if x.Reason != reason {
					t.Errorf("explain's reason %q, rtb_no_bid_total counted %q", x.Reason, reason)
				}
				return
			}
			got, want := bidCampaigns(t, x.Response), bidCampaigns(t, r.body)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("explain's response bids %v, the bid endpoint's %v", got, want)
			}
			var winners []string
			for _, imp := range x.Imps {
				n := 0
				for _, c := range imp.Campaigns {
					if c.Result == "bid" {
						winners = append(winners, imp.ImpID+"="+c.CampaignID)
						n++
						if c.Price == nil || *c.Price <= 0 {
							t.Errorf("imp %s: the winner %s has no price", imp.ImpID, c.CampaignID)
						}
					}
					if c.Result == "" || c.Detail == "" {
						t.Errorf("imp %s campaign %s: result %q detail %q (debug=1 gives both)", imp.ImpID, c.CampaignID, c.Result, c.Detail)
					}
				}
				if (n == 1) != (imp.Result == "bid") || n > 1 {
					t.Errorf("imp %s: result %q with %d winning campaigns", imp.ImpID, imp.Result, n)
				}
				if len(imp.Campaigns) != len(campaign.Samples().Campaigns) {
					t.Errorf("imp %s lists %d campaigns, the set has %d", imp.ImpID, len(imp.Campaigns), len(campaign.Samples().Campaigns))
				}
			}
			if fmt.Sprint(winners) != fmt.Sprint(want) {
				t.Errorf("explain names winners %v, the bid endpoint bid %v", winners, want)
			}
		})
	}
}

// TestExplainReasons: each campaign's result on the imp, as a campaign manager asks "why did mine
// not bid?".
func TestExplainReasons(t *testing.T) {
	b, _ := newTestBidder(t, policyCampaigns(t), nil)
	req := func(extra, impExtra string) []byte {
		return []byte(`{"id":"r","imp":[{"id":"1","banner":{"w":300,"h":250}` + impExtra + `}]` + extra + `}`)
	}
	tests := []struct {
		name       string
		body       []byte
		status     int
		reason     string            // of a 204
		want       map[string]string // campaign: result
		wantDetail map[string]string // campaign: part of its detail
	}{
		{"plain: open bids, the deal campaign is not a candidate", req("", ""), 200, "",
			map[string]string{"open": "bid", "deal": "no_match"}, map[string]string{"deal": "targeting"}},
		{"bcat", req(`,"bcat":["IAB22"]`, ""), 204, "blocked",
			map[string]string{"open": "blocked", "deal": "no_match"}, map[string]string{"open": "bcat"}},
		{"badv", req(`,"badv":["shop.example"]`, ""), 204, "blocked", map[string]string{"open": "blocked"}, map[string]string{"open": "badv"}},
		{"battr", []byte(`{"id":"r","imp":[{"id":"1","banner":{"w":300,"h":250,"battr":[7]}}]}`), 204, "blocked",
			map[string]string{"open": "blocked"}, map[string]string{"open": "battr"}},
		{"floor above the value", req("", `,"bidfloor":2.5`), 204, "floor",
			map[string]string{"open": "floor"}, map[string]string{"open": "below the floor 2.5"}},
		{"size nobody has", []byte(`{"id":"r","imp":[{"id":"1","banner":{"w":1,"h":1}}]}`), 204, "no_match",
			map[string]string{"open": "no_match", "deal": "no_match"}, nil},
		{"a deal wins, the open campaign is outbid", req("", `,"pmp":{"deals":[{"id":"D1","bidfloor":3}]}`), 200, "",
			map[string]string{"open": "outbid", "deal": "bid"}, map[string]string{"open": "deal", "deal": "D1"}},
		{"unknown floor currency", req("", `,"bidfloor":1,"bidfloorcur":"XXX"`), 204, "currency",
			map[string]string{"open": "currency", "deal": "currency"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := explainHTTP(t, b, "?debug=1", tc.body)
			if x.Status != tc.status || x.Reason != tc.reason {
				t.Fatalf("status %d reason %q, want %d %q", x.Status, x.Reason, tc.status, tc.reason)
			}
			if r := post(b, tc.body); r.status != tc.status {
				t.Errorf("the bid endpoint answered %d, explain said %d", r.status, x.Status)
			}
			got := map[string]CampaignExplanation{}
			for _, c := range x.Imps[0].Campaigns {
				got[c.CampaignID] = c
			}
			for id, want := range tc.want {
				if got[id].Result != want {
					t.Errorf("campaign %s: result %q (%s), want %q", id, got[id].Result, got[id].Detail, want)
				}
			}
			for id, part := range tc.wantDetail {
				if !strings.Contains(got[id].Detail, part) {
					t.Errorf("campaign %s: detail %q, want it to mention %q", id, got[id].Detail, part)
				}
			}
		})
	}
	t.Run("without debug: results, no details; campaign= filters", func(t *testing.T) {
		x := explainHTTP(t, b, "?campaign=open", req(`,"bcat":["IAB22"]`, ""))
		if len(x.Imps) != 1 || len(x.Imps[0].Campaigns) != 1 {
			t.Fatalf("want one imp with campaign open only: %+v", x.Imps)
		}
		if c := x.Imps[0].Campaigns[0]; c.CampaignID != "open" || c.Result != "blocked" || c.Detail != "" {
			t.Errorf("got %+v, want open blocked without detail", c)
		}
	})
	t.Run("invalid request: 400 with the decoder's reason", func(t *testing.T) {
		x := explainHTTP(t, b, "", []byte(`{"id":"r","imp":[`))
		if x.Status != 400 || x.Reason == "" || x.Error == "" {
			t.Errorf("got %+v, want status 400 with a reason and the message", x)
		}
		if r := post(b, []byte(`{"id":"r","imp":[`)); r.status != 400 {
			t.Errorf("the bid endpoint answered %d", r.status)
		}
	})
	t.Run("GET is refused", func(t *testing.T) {
		rec := httptest.NewRecorder()
		b.ExplainAPI().ServeHTTP(rec, httptest.NewRequest("GET", "/api/explain", nil))
		if rec.Code != 405 || rec.Header().Get("Allow") != "POST" {
			t.Errorf("GET: %d Allow %q, want 405 POST", rec.Code, rec.Header().Get("Allow"))
		}
	})
}

// TestExplainNamesTheTargetingRule: with ?debug=1 a campaign the index does not yield is explained by
// the first targeting rule that keeps it out.
func TestExplainNamesTheTargetingRule(t *testing.T) {
	set, err := campaign.Parse([]byte(`campaigns:
  - id: geo
    advertiser_domain: a.example
    targeting: {countries: [USA]}
    creatives: [{id: b, type: banner, w: 300, h: 250, html: x, landing_url: 'https://a.example/'}]
    bid: {type: fixed_cpm, cpm: 1, max_bid: 1}
    budget: {daily: 10}
  - id: seg
    advertiser_domain: a.example
    targeting: {segments: [s-1]}
    creatives: [{id: b, type: banner, w: 300, h: 250, html: x, landing_url: 'https://a.example/'}]
    bid: {type: fixed_cpm, cpm: 1, max_bid: 1}
    budget: {daily: 10}
  - id: app
    advertiser_domain: a.example
    targeting: {inventory: app}
    creatives: [{id: b, type: banner, w: 300, h: 250, html: x, landing_url: 'https://a.example/'}]
    bid: {type: fixed_cpm, cpm: 1, max_bid: 1}
    budget: {daily: 10}
  - id: leaderboard
    advertiser_domain: a.example
    creatives: [{id: b, type: banner, w: 728, h: 90, html: x, landing_url: 'https://a.example/'}]
    bid: {type: fixed_cpm, cpm: 1, max_bid: 1}
    budget: {daily: 10}
  - id: any
    advertiser_domain: a.example
    creatives: [{id: b, type: banner, w: 300, h: 250, html: x, landing_url: 'https://a.example/'}]
    bid: {type: fixed_cpm, cpm: 0.5, max_bid: 0.5}
    budget: {daily: 10}
`), "targeting.yaml", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newTestBidder(t, set, func(c *Config) { c.Features = nil })
	x := explainHTTP(t, b, "?debug=1", []byte(`{"id":"r","site":{"domain":"news.example"},"device":{"geo":{"country":"DEU"}},
"imp":[{"id":"1","banner":{"w":300,"h":250}}]}`))
	want := map[string]string{"geo": "country", "seg": "segments", "app": "inventory type", "leaderboard": "media and sizes", "any": "won the imp"}
	for _, c := range x.Imps[0].Campaigns {
		if !strings.Contains(c.Detail, want[c.CampaignID]) {
			t.Errorf("campaign %s: %s, %q; want the detail to name %q", c.CampaignID, c.Result, c.Detail, want[c.CampaignID])
		}
	}
}

// TestExplainHasNoSideEffects: explaining requests that would bid, with pacing, frequency caps,
// learned shading and a bid log on, changes no metric, publishes no event, reports no traffic to
// the pacer, reserves no cap and makes no shading decision.
func TestExplainHasNoSideEffects(t *testing.T) {
	pub := &countingPublisher{}
	serving := servingConfig(t)
	var cfg Config
	b, reg := newTestBidder(t, campaignSet(100), func(c *Config) {
		serving(c)
		c.Events, c.BidSampleRate = pub, 1
		cfg = *c
	})
	ex := exampleRequests(t)
	bodies := [][]byte{typicalBanner, ex["v25-banner"], ex["v26-video"], ex["v26-native"], ex["v26-pmp-deal"],
		bytes.Replace(typicalBanner, []byte(`"bidfloor":0.03`), []byte(`"bidfloor":900`), 1)}
	gather := func() string {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		for _, mf := range mfs {
			if mf.GetName() == "rtb_bid_requests_in_flight" {
				continue
			}
			fmt.Fprintln(&sb, mf.String())
		}
		return sb.String()
	}
	before, shading := gather(), shaderStats(cfg)
	bids := 0
	for range 3 {
		for _, body := range bodies {
			x := b.Explain(body, "", true, nil)
			if x.Status == 200 {
				bids++
			}
		}
	}
	if bids == 0 {
		t.Fatal("no explained request would bid: the test shows nothing")
	}
	if after := gather(); after != before {
		t.Errorf("metrics changed by explaining:\nbefore %s\nafter %s", before, after)
	}
	if n := pub.n.Load(); n != 0 {
		t.Errorf("%d events published by explaining", n)
	}
	if busy := b.pacing.takeBusy(nil); len(busy) != 0 {
		t.Errorf("explaining reported traffic of %d campaigns to the pacer", len(busy))
	}
	if s := shaderStats(cfg); s != shading {
		t.Errorf("shading decisions counted by explaining: %s, before %s", s, shading)
	}
	// The real request still bids the same, and is counted.
	if r := post(b, typicalBanner); r.status != 200 {
		t.Fatalf("bid after explaining: status %d", r.status)
	}
	if gather() == before || pub.n.Load() == 0 {
		t.Error("a real bid changed no metric or published nothing: the comparison above proves nothing")
	}
}

func shaderStats(cfg Config) string {
	if s, ok := cfg.Shader.(*auction.LearnedShader); ok {
		return fmt.Sprintf("%+v", s.Stats())
	}
	return fmt.Sprintf("%T", cfg.Shader)
}

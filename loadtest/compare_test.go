package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

const compareCampaigns = `{"source":"fake","loaded_at":"2026-11-23T00:00:00Z","indexed":2,"campaigns":[
 {"id":"c0","bid":{"type":"fixed_cpm","cpm":4,"max_bid":5},"budget":{"daily":1.5,"timezone":"UTC"},"frequency_cap":{"impressions":1,"window":"1h0m0s"}},
 {"id":"c1","bid":{"type":"target_cpc","cpc":2,"ctr":0.001,"max_bid":5},"budget":{"daily":100}}]}`

// Two fakes that differ only in their fixed bid, against the same market: the higher bidder must
// win every auction the lower one wins (the competing bid is the same), pay more and keep less
// surplus per win; every request reaches both with the same id.
func TestCompareHigherBidderPaysMore(t *testing.T) {
	lo, loURL := startFakeAdmin(t, 2.0, compareCampaigns,
		`{"campaigns":[{"campaign_id":"c0","impressions":100,"clicks":5,"estimate":0.052,"prior":0.002}]}`)
	hi, hiURL := startFakeAdmin(t, 3.0, compareCampaigns, "") // no /api/ctr yet
	mc := DefaultMarket()
	// c1's true CTR makes its click worth 2.00 × 0.002 × 1000 = 4.00 per mille, as c0's CPM.
	mc.CTR = Param{Default: 0.05, By: map[string]float64{"c1": 0.002}}
	mc.NoticeDelay = 20 * time.Millisecond
	mc.NoticeDup = 0.05
	mc.Seed = 11
	rep, err := Run(context.Background(), Config{
		Targets: []Target{{URL: loURL, Label: "low", Admin: lo.base}, {URL: hiURL, Label: "high", Admin: hi.base}},
		Rate:    600, Duration: time.Second, Connections: 16, PoolSize: 300, Seed: 11, Market: &mc, CTRMinImps: 50})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Targets) != 2 || rep.Targets[0].Label != "low" || rep.Targets[1].Label != "high" || rep.Label != "low" {
		t.Fatalf("targets %v, top label %q", rep.Targets, rep.Label)
	}
	l, h := rep.Targets[0], rep.Targets[1]
	lm, hm := l.Market, h.Market
	if lm == nil || hm == nil || lm.AdminError != "" || hm.AdminError != "" || lm.CampaignsSource != "fake" {
		t.Fatalf("market reports %+v %+v", lm, hm)
	}
	clean := func(r *Report) bool {
		o := r.Outcomes
		return o.Late+o.ErrTimeout+o.ErrConnect+o.ErrOther == 0 && r.Market.Dropped == 0
	}
	lo.mu.Lock()
	hi.mu.Lock()
	defer lo.mu.Unlock()
	defer hi.mu.Unlock()
	if clean(l) && clean(h) {
		// Same requests, same ids.
		if len(lo.ids) != int(rep.Scheduled) || len(hi.ids) != len(lo.ids) {
			t.Errorf("%d scheduled, low saw %d ids, high %d", rep.Scheduled, len(lo.ids), len(hi.ids))
		}
		for id := range lo.ids {
			if !hi.ids[id] {
				t.Fatalf("request %s reached low only", id)
			}
		}
		// Common random numbers: the same competing bid for each (request, imp), so whatever the
		// lower bid won, the higher bid won too.
		for tok := range lo.got["win"] {
			if hi.got["win"][tok] == 0 {
				t.Fatalf("low won %s, high (bidding more against the same competition) lost it", tok)
			}
		}
	} else {
		t.Logf("a noisy machine: outcomes %+v / %+v; id and per-auction checks skipped", l.Outcomes, h.Outcomes)
	}
	lc, hc := lm.Overall, hm.Overall
	t.Logf("low %+v\nhigh %+v", lc, hc)
	if lc.Wins < 200 || hc.Wins < lc.Wins || hc.Spend <= lc.Spend {
		t.Errorf("wins %d vs %d, spend %.4f vs %.4f: want the higher bidder to win at least as often and pay more",
			lc.Wins, hc.Wins, lc.Spend, hc.Spend)
	}
	if lc.Surplus == nil || hc.Surplus == nil || *hc.Surplus >= *lc.Surplus {
		t.Fatalf("surplus low %v high %v: want less for the higher bidder", lc.Surplus, hc.Surplus)
	}
	// Every win is worth 4.00 per mille to either campaign: surplus is (4 − price)/1000 a win.
	for _, x := range []struct {
		c     CampaignReport
		price float64
	}{{lc, 2}, {hc, 3}} {
		if want := float64(x.c.Wins) * (4 - x.price) / 1000; math.Abs(*x.c.Surplus-want) > 1e-9 {
			t.Errorf("surplus %v for %d wins at %v, want %v", *x.c.Surplus, x.c.Wins, x.price, want)
		}
	}
	camp := func(m *MarketReport, id string) CampaignReport {
		for _, c := range m.Campaigns {
			if c.CID == id {
				return c
			}
		}
		t.Fatalf("no campaign %s in %+v", id, m.Campaigns)
		return CampaignReport{}
	}
	for _, m := range []*MarketReport{lm, hm} {
		c0 := camp(m, "c0")
		if c0.Budget == nil || math.Abs(c0.Budget.Delivery-c0.Spend/1.5) > 1e-12 || c0.Budget.HourlySpend != nil {
			t.Errorf("c0 budget %+v, spend %v", c0.Budget, c0.Spend)
		}
		// The fakes ignore caps and the pool of 300 bodies repeats users: the check must see it.
		f := c0.FrequencyCap
		if f == nil || f.Impressions != 1 || f.Window != "1h0m0s" || f.Logged != c0.Impressions || f.Violations == 0 ||
			f.Violations != f.Logged-int64(f.Users) {
			t.Errorf("c0 cap %+v with %d impressions: want every impression after a user's first a violation", f, c0.Impressions)
		}
		if m.Overall.FrequencyCap == nil || m.Overall.FrequencyCap.Violations != f.Violations {
			t.Errorf("overall cap %+v", m.Overall.FrequencyCap)
		}
		if c1 := camp(m, "c1"); c1.FrequencyCap != nil || c1.ValueCPM == nil || math.Abs(*c1.ValueCPM-4) > 1e-9 {
			t.Errorf("c1 %+v", c1)
		}
	}
	if cc := camp(lm, "c0").CTRCheck; cc == nil || cc.Estimate == nil || *cc.Estimate != 0.052 || cc.True != 0.05 ||
		cc.RelError == nil || math.Abs(*cc.RelError-0.04) > 1e-9 || !cc.Judged || cc.Within10Pct == nil || !*cc.Within10Pct {
		t.Errorf("low c0 CTR check %+v", cc)
	}
	if !strings.Contains(hm.CTRError, "no CTR estimates") || camp(hm, "c0").CTRCheck.Estimate != nil {
		t.Errorf("high: CTR error %q", hm.CTRError)
	}
	if len(rep.Comparison) != 2 || rep.Comparison[1].Label != "high" || rep.Comparison[1].Wins != hc.Wins ||
		rep.Comparison[0].Surplus == nil || *rep.Comparison[0].Surplus != *lc.Surplus {
		t.Errorf("comparison %+v", rep.Comparison)
	}
	var sb strings.Builder
	rep.WriteText(&sb)
	for _, want := range []string{"━━ low ━━", "━━ high ━━", "comparison", "surplus", "freq caps", "no CTR estimates", "within: yes"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, sb.String())
		}
	}
	b, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Targets    []json.RawMessage `json:"targets"`
		Comparison []CompareRow      `json:"comparison"`
	}
	if err := json.Unmarshal(b, &back); err != nil || len(back.Targets) != 2 || len(back.Comparison) != 2 {
		t.Errorf("JSON: %v, %d targets, %d rows", err, len(back.Targets), len(back.Comparison))
	}
}

// An unreachable admin port costs the judgements that need it, not the run.
func TestMarketAdminUnreachable(t *testing.T) {
	_, url := startFake(t, 2.0)
	mc := DefaultMarket()
	mc.NoticeDelay = 10 * time.Millisecond
	rep, err := Run(context.Background(), Config{Target: url, Admin: "http://127.0.0.1:1", Rate: 200,
		Duration: 300 * time.Millisecond, Connections: 4, PoolSize: 50, Market: &mc})
	if err != nil {
		t.Fatal(err)
	}
	m := rep.Market
	if !strings.Contains(m.AdminError, "unreachable") || m.Overall.Surplus != nil || m.Overall.Budget != nil ||
		m.Overall.FrequencyCap != nil || m.Overall.Wins == 0 || !strings.Contains(m.CTRError, "no CTR estimates") {
		t.Fatalf("market %+v", m)
	}
	var sb strings.Builder
	rep.WriteText(&sb)
	if !strings.Contains(sb.String(), "admin API unreachable") || strings.Contains(sb.String(), "comparison") {
		t.Fatal(sb.String())
	}
}

// A run aligned to a compressed pacing day places spend in the day's "hours" and tells when a
// budget ran out. The rest of the current day keeps the test short; nothing depends on how much.
func TestMarketDayMode(t *testing.T) {
	const campaigns = `{"source":"fake","campaigns":[
 {"id":"c0","bid":{"type":"fixed_cpm","cpm":4,"max_bid":5},"budget":{"daily":0.01}},
 {"id":"c1","bid":{"type":"fixed_cpm","cpm":4,"max_bid":5},"budget":{"daily":1000}}]}`
	f, url := startFakeAdmin(t, 3.0, campaigns, "")
	mc := DefaultMarket()
	mc.NoticeDelay = 5 * time.Millisecond
	day := 1200 * time.Millisecond
	rep, err := Run(context.Background(), Config{Target: url, Admin: f.base, Rate: 500, DayLength: day, DayStartNow: true,
		Connections: 8, PoolSize: 200, Market: &mc})
	if err != nil {
		t.Fatal(err)
	}
	m := rep.Market
	if m.DayLengthSeconds != day.Seconds() || m.DayFrom == "" || !strings.Contains(rep.Schedule, "diurnal") {
		t.Fatalf("day %v from %q, schedule %q", m.DayLengthSeconds, m.DayFrom, rep.Schedule)
	}
	from := m.DayFrom
	for _, c := range append(slices.Clone(m.Campaigns), m.Overall) {
		b := c.Budget
		if b == nil || len(b.HourlySpend) != 24 {
			t.Fatalf("%s: budget %+v", c.CID, b)
		}
		var sum float64
		for h, v := range b.HourlySpend {
			sum += v
			if v > 0 && fmt.Sprintf("%02d:59", h) < from {
				t.Errorf("%s: spend in hour %02d, before the run began at %s", c.CID, h, from)
			}
		}
		if math.Abs(sum-c.Spend) > 1e-9 {
			t.Errorf("%s: hourly spend sums to %v, spend %v", c.CID, sum, c.Spend)
		}
	}
	for _, c := range m.Campaigns {
		switch {
		case c.Wins == 0:
			t.Logf("%s: no wins in the little that was left of the day", c.CID)
		case c.CID == "c0":
			if !c.Budget.Exhausted || c.Budget.RanOutAt == "" || c.Budget.RanOutAt < from {
				t.Errorf("c0 spent %v of 0.01: budget %+v", c.Spend, c.Budget)
			}
		case c.CID == "c1":
			if c.Budget.Exhausted || c.Budget.LastWinAt == "" {
				t.Errorf("c1 budget %+v", c.Budget)
			}
		}
	}
}

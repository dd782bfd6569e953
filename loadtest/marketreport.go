package loadtest

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// MarketReport is what the market simulator saw of one target.
type MarketReport struct {
	Overall   CampaignReport            `json:"overall"`
	Campaigns []CampaignReport          `json:"campaigns"`
	Notices   map[string]NoticeOutcomes `json:"notices"`
	Dups      int64                     `json:"notices_duplicated"`
	Dropped   int64                     `json:"notices_dropped"` // queue full
	BadResp   int64                     `json:"bad_responses"`   // 200s whose body did not decode
	NoImp     int64                     `json:"wins_without_imp_url"`
	LastError string                    `json:"last_notice_error,omitempty"`

	Admin           string `json:"admin,omitempty"`            // the target's admin base URL
	CampaignsSource string `json:"campaigns_source,omitempty"` // "source" of its /api/campaigns
	// Why surplus, budget delivery and frequency-cap checks are missing (admin unreachable or not given).
	AdminError string `json:"admin_error,omitempty"`
	// Why the bidder's CTR estimates are missing ("no CTR estimates: …").
	CTRError   string `json:"ctr_error,omitempty"`
	CTRMinImps int64  `json:"ctr_min_imps"` // a CTR estimate is judged from this many impressions
	// Day mode: the compressed pacing day the run covered.
	DayLengthSeconds float64 `json:"day_length_s,omitempty"`
	DayStart         string  `json:"day_start,omitempty"` // RFC 3339
	DayFrom          string  `json:"day_from,omitempty"`  // "HH:MM" of the day the run began (00:00 unless --day-start now)
}

// CampaignReport is one campaign's (or all campaigns') auctions.
type CampaignReport struct {
	CID         string  `json:"cid,omitempty"`
	Bids        int64   `json:"bids"`
	Wins        int64   `json:"wins"`
	WinRate     float64 `json:"win_rate"`
	Impressions int64   `json:"impressions"`
	Spend       float64 `json:"spend"` // sum of clearing prices / 1000, in the response currency
	ECPM        float64 `json:"ecpm"`
	Clicks      int64   `json:"clicks"`
	CTR         float64 `json:"ctr"`

	// True value of an impression per mille: fixed_cpm's cpm, target_cpc's cpc × true CTR × 1000.
	ValueCPM *float64 `json:"value_cpm,omitempty"`
	// Σ (value − clearing price) / 1000 over the wins, currency units. Overall: over valued campaigns.
	Surplus      *float64        `json:"surplus,omitempty"`
	Budget       *BudgetReport   `json:"budget,omitempty"`
	FrequencyCap *CapReport      `json:"frequency_cap,omitempty"`
	CTRCheck     *CTRCheckReport `json:"ctr_check,omitempty"`
}

// BudgetReport is a campaign's delivery against its daily budget.
type BudgetReport struct {
	Daily    float64 `json:"daily"`
	Delivery float64 `json:"delivery"` // spend ÷ daily
	// Day mode only:
	HourlySpend []float64 `json:"hourly_spend,omitempty"` // 24 "hours" of the compressed day
	LastWinAt   string    `json:"last_win_at,omitempty"`  // "HH:MM" of the compressed day
	Exhausted   bool      `json:"exhausted,omitempty"`    // delivery ≥ 98%: the budget ran out…
	RanOutAt    string    `json:"ran_out_at,omitempty"`   // …at its last win, "HH:MM"
}

// CapReport checks the impressions fired against a campaign's frequency cap.
type CapReport struct {
	Impressions    int    `json:"impressions,omitempty"` // the cap: at most this many… (absent overall)
	Window         string `json:"window,omitempty"`      // …per window per user
	Users          int    `json:"users"`                 // users who saw the campaign
	Logged         int64  `json:"impressions_logged"`
	Violations     int64  `json:"violations"` // impressions beyond the cap in their window (expected 0)
	UsersViolating int    `json:"users_violating"`
}

// CTRCheckReport compares the bidder's online CTR estimate with the truth the simulator clicks by.
type CTRCheckReport struct {
	True         float64  `json:"true_ctr"`
	Observed     float64  `json:"observed_ctr"` // clicks fired ÷ impressions fired
	BidderImps   int64    `json:"bidder_impressions,omitempty"`
	BidderClicks int64    `json:"bidder_clicks,omitempty"`
	Estimate     *float64 `json:"estimate,omitempty"`
	Prior        *float64 `json:"prior,omitempty"`
	RelError     *float64 `json:"rel_error,omitempty"` // |estimate − true| ÷ true
	Judged       bool     `json:"judged"`              // at least ctr_min_imps impressions fired
	Within10Pct  *bool    `json:"within_10pct,omitempty"`
}

// NoticeOutcomes counts the answers to one notice type.
type NoticeOutcomes struct {
	S2xx int64 `json:"2xx"`
	S3xx int64 `json:"3xx"`
	S4xx int64 `json:"4xx"`
	S5xx int64 `json:"5xx"`
	Err  int64 `json:"errors"`
}

func (c *CampaignReport) add(s *campStats) {
	c.Bids += s.bids
	c.Wins += s.wins
	c.Impressions += s.imps
	c.Spend += s.spend
	c.Clicks += s.clicks
}

func (c *CampaignReport) ratios() {
	if c.Bids > 0 {
		c.WinRate = float64(c.Wins) / float64(c.Bids)
	}
	if c.Impressions > 0 {
		c.ECPM = 1000 * c.Spend / float64(c.Impressions)
		c.CTR = float64(c.Clicks) / float64(c.Impressions)
	}
}

// exhaustedAt is the delivery from which a budget counts as run out: pacers stop a little short of
// the budget to cover wins still in flight.
const exhaustedAt = 0.98

// judgeCTR is how close an estimate must be to the truth.
const judgeCTR = 0.10

// report builds the market's report; est is the bidder's /api/ctr (nil with estErr when missing).
func (m *market) report(est *ctrEstimates, estErr error, minImps int64) *MarketReport {
	r := &MarketReport{Notices: map[string]NoticeOutcomes{}, Dups: m.dups.Load(), Dropped: m.dropped.Load(),
		BadResp: m.badResp.Load(), CTRMinImps: minImps}
	if s, ok := m.lastErr.Load().(string); ok {
		r.LastError = s
	}
	if estErr != nil {
		r.CTRError = "no CTR estimates: " + estErr.Error()
		if errors.As(estErr, new(errNotFound)) {
			r.CTRError = "no CTR estimates (the bidder serves no /api/ctr)"
		}
	}
	estOf := map[string]int{}
	if est != nil {
		for i, e := range est.Campaigns {
			estOf[e.ID] = i
		}
	}
	if m.day != nil {
		r.DayLengthSeconds = m.day.length.Seconds()
		r.DayStart = m.day.start.UTC().Format(time.RFC3339Nano)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.capMu.Lock()
	defer m.capMu.Unlock()
	type capAgg struct {
		users, violating int
		logged, viol     int64
	}
	caps := map[string]*capAgg{}
	for k, times := range m.capLog {
		a := caps[k.cid]
		if a == nil {
			a = &capAgg{}
			caps[k.cid] = a
		}
		a.users++
		a.logged += int64(len(times))
		ci := m.camps[k.cid]
		if v := capViolations(times, ci.capN, int64(ci.capWindow)); v > 0 {
			a.viol += int64(v)
			a.violating++
		}
	}
	ids := map[string]bool{}
	for cid := range m.stats {
		ids[cid] = true
	}
	for cid := range m.camps {
		ids[cid] = true
	}
	var overallSurplus, overallDaily float64
	var overallHourly [24]float64
	var anyValued bool
	var overallCap *CapReport
	for cid := range ids {
		s := m.stats[cid]
		if s == nil {
			s = &campStats{}
		}
		c := CampaignReport{CID: cid}
		c.add(s)
		c.ratios()
		r.Overall.add(s)
		if ci := m.camps[cid]; ci != nil {
			if ci.hasValue {
				v, su := ci.value, s.surplus
				c.ValueCPM, c.Surplus = &v, &su
				overallSurplus += su
				anyValued = true
			}
			if ci.daily > 0 {
				b := &BudgetReport{Daily: ci.daily, Delivery: s.spend / ci.daily}
				overallDaily += ci.daily
				if m.day != nil {
					b.HourlySpend = slices.Clone(s.hourly[:])
					for h, v := range s.hourly {
						overallHourly[h] += v
					}
					if s.wins > 0 {
						b.LastWinAt = clock(s.lastWin, m.day.length)
					}
					if b.Delivery >= exhaustedAt {
						b.Exhausted, b.RanOutAt = true, b.LastWinAt
					}
				}
				c.Budget = b
			}
			if ci.capN > 0 {
				cr := &CapReport{Impressions: ci.capN, Window: ci.capWindow.String()}
				if a := caps[cid]; a != nil {
					cr.Users, cr.Logged, cr.Violations, cr.UsersViolating = a.users, a.logged, a.viol, a.violating
				}
				c.FrequencyCap = cr
				if overallCap == nil {
					overallCap = &CapReport{}
				}
				overallCap.Users += cr.Users
				overallCap.Logged += cr.Logged
				overallCap.Violations += cr.Violations
				overallCap.UsersViolating += cr.UsersViolating
			}
		}
		if s.imps > 0 || est != nil {
			cc := &CTRCheckReport{True: m.cfg.CTR.of(cid), Observed: c.CTR, Judged: s.imps >= minImps}
			if i, ok := estOf[cid]; ok {
				e := est.Campaigns[i]
				cc.BidderImps, cc.BidderClicks = e.Impressions, e.Clicks
				estimate, prior := e.Estimate, e.Prior
				cc.Estimate, cc.Prior = &estimate, &prior
				if cc.True > 0 {
					re := math.Abs(estimate-cc.True) / cc.True
					cc.RelError = &re
					if cc.Judged {
						ok := re <= judgeCTR
						cc.Within10Pct = &ok
					}
				}
			}
			c.CTRCheck = cc
		}
		r.Campaigns = append(r.Campaigns, c)
	}
	r.Overall.ratios()
	if anyValued {
		r.Overall.Surplus = &overallSurplus
	}
	if overallDaily > 0 {
		r.Overall.Budget = &BudgetReport{Daily: overallDaily, Delivery: r.Overall.Spend / overallDaily}
		if m.day != nil {
			r.Overall.Budget.HourlySpend = overallHourly[:]
		}
	}
	r.Overall.FrequencyCap = overallCap
	r.NoImp = m.noImp
	slices.SortFunc(r.Campaigns, func(a, b CampaignReport) int { return strings.Compare(a.CID, b.CID) })
	for t := range nTypes {
		x := &m.results[t]
		r.Notices[noticeNames[t]] = NoticeOutcomes{S2xx: x[r2xx].Load(), S3xx: x[r3xx].Load(), S4xx: x[r4xx].Load(),
			S5xx: x[r5xx].Load(), Err: x[rErr].Load()}
	}
	return r
}

func (r *MarketReport) writeText(w io.Writer) {
	line := func(c CampaignReport, name string) {
		fmt.Fprintf(w, "  %-18s bids %7d  wins %7d (%5.1f%%)  imps %7d  spend %10.4f  eCPM %6.3f  clicks %5d  CTR %.3f%%",
			name, c.Bids, c.Wins, 100*c.WinRate, c.Impressions, c.Spend, c.ECPM, c.Clicks, 100*c.CTR)
		if c.Surplus != nil {
			fmt.Fprintf(w, "  surplus %10.4f", *c.Surplus)
			if c.ValueCPM != nil {
				fmt.Fprintf(w, " (value %.3f CPM)", *c.ValueCPM)
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "market      first-price auctions against a log-normal highest competing bid")
	switch {
	case r.AdminError != "":
		fmt.Fprintf(w, "            %s: no surplus, budget delivery or frequency-cap checks\n", r.AdminError)
	case r.Admin != "":
		fmt.Fprintf(w, "            campaigns from %s/api/campaigns (%s); surplus = Σ (true value − price)/1000\n", r.Admin, r.CampaignsSource)
	}
	for _, c := range r.Campaigns {
		line(c, c.CID)
	}
	line(r.Overall, "overall")

	if r.Overall.Budget != nil {
		fmt.Fprint(w, "delivery    spend ÷ daily budget")
		if r.DayLengthSeconds > 0 {
			fmt.Fprintf(w, " over one pacing day of %s starting %s (run from %s); budgets run out at ≥ %.0f%%",
				time.Duration(r.DayLengthSeconds*float64(time.Second)), r.DayStart, r.DayFrom, 100*exhaustedAt)
		} else {
			fmt.Fprint(w, " (the run is not aligned to a pacing day: --day-length aligns it)")
		}
		fmt.Fprintln(w)
		for _, c := range append(slices.Clone(r.Campaigns), r.Overall) {
			b := c.Budget
			if b == nil {
				continue
			}
			name := c.CID
			if name == "" {
				name = "overall"
			}
			fmt.Fprintf(w, "  %-18s daily %10.2f  spent %10.4f  delivery %6.2f%%", name, b.Daily, c.Spend, 100*b.Delivery)
			switch {
			case b.Exhausted:
				fmt.Fprintf(w, "  ran out at %s", b.RanOutAt)
			case b.LastWinAt != "":
				fmt.Fprintf(w, "  last win %s", b.LastWinAt)
			}
			fmt.Fprintln(w)
			if len(b.HourlySpend) == 24 && c.Spend > 0 {
				fmt.Fprint(w, "                     hourly")
				for h, v := range b.HourlySpend {
					if h == 12 {
						fmt.Fprint(w, "\n                           ")
					}
					fmt.Fprintf(w, " %02d:%-8.3f", h, v)
				}
				fmt.Fprintln(w)
			}
		}
	}

	if r.Overall.FrequencyCap != nil {
		fmt.Fprintln(w, "freq caps   impressions fired per user (buyeruid, else id) and campaign, at the time each pixel fired, against each cap\n            (windows in real time as /api/campaigns gives them, also with --day-length; expected 0 violations)")
		for _, c := range r.Campaigns {
			if f := c.FrequencyCap; f != nil {
				fmt.Fprintf(w, "  %-18s cap %d per %s  users %7d  impressions %8d  violations %d (%d users)\n",
					c.CID, f.Impressions, f.Window, f.Users, f.Logged, f.Violations, f.UsersViolating)
			}
		}
		f := r.Overall.FrequencyCap
		fmt.Fprintf(w, "  %-18s users %7d  impressions %8d  violations %d (%d users)\n", "overall", f.Users, f.Logged, f.Violations, f.UsersViolating)
	}

	fmt.Fprintf(w, "ctr         true (--ctr), observed (clicks fired ÷ impressions), the bidder's /api/ctr estimate; judged within %.0f%% from %d impressions\n",
		100*judgeCTR, r.CTRMinImps)
	if r.CTRError != "" {
		fmt.Fprintf(w, "            %s\n", r.CTRError)
	}
	for _, c := range r.Campaigns {
		cc := c.CTRCheck
		if cc == nil {
			continue
		}
		fmt.Fprintf(w, "  %-18s true %.3f%%  observed %.3f%% (%d imps)", c.CID, 100*cc.True, 100*cc.Observed, c.Impressions)
		if cc.Estimate != nil {
			fmt.Fprintf(w, "  estimate %.3f%% (prior %.3f%%, bidder saw %d imps %d clicks)", 100**cc.Estimate, 100**cc.Prior, cc.BidderImps, cc.BidderClicks)
			if cc.RelError != nil {
				fmt.Fprintf(w, "  error %.1f%%", 100**cc.RelError)
			}
			switch {
			case cc.Within10Pct == nil:
				fmt.Fprint(w, "  not judged")
			case *cc.Within10Pct:
				fmt.Fprint(w, "  within: yes")
			default:
				fmt.Fprint(w, "  within: NO")
			}
		} else if r.CTRError == "" {
			fmt.Fprint(w, "  no estimate")
		}
		fmt.Fprintln(w)
	}

	fmt.Fprint(w, "notices    ")
	for _, n := range noticeNames {
		o := r.Notices[n]
		fmt.Fprintf(w, " %s 2xx %d 3xx %d 4xx %d 5xx %d err %d;", n, o.S2xx, o.S3xx, o.S4xx, o.S5xx, o.Err)
	}
	fmt.Fprintf(w, "\n            %d sent twice, %d dropped (queue full), %d undecodable 200s, %d wins without an impression URL\n",
		r.Dups, r.Dropped, r.BadResp, r.NoImp)
	if r.LastError != "" {
		fmt.Fprintf(w, "            last notice error: %s\n", r.LastError)
	}
}

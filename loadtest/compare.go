package loadtest

import (
	"fmt"
	"io"
)

// CompareRow is one target's line of the comparison: the market's overall figures next to the
// other targets', all against the same requests and the same competing bids.
type CompareRow struct {
	Label         string   `json:"label"`
	Target        string   `json:"target"`
	P99US         int64    `json:"p99_us"`
	BidRate       float64  `json:"bid_rate"`
	Bids          int64    `json:"bids"`
	Wins          int64    `json:"wins"`
	WinRate       float64  `json:"win_rate"`
	Impressions   int64    `json:"impressions"`
	Spend         float64  `json:"spend"`
	Surplus       *float64 `json:"surplus,omitempty"` // absent when the target's campaigns are unknown
	ECPM          float64  `json:"ecpm"`
	Clicks        int64    `json:"clicks"`
	CTR           float64  `json:"ctr"`
	Delivery      *float64 `json:"delivery,omitempty"`       // overall spend ÷ Σ daily budgets
	CapViolations *int64   `json:"cap_violations,omitempty"` // absent when no campaign has a cap
}

func compare(reps []*Report) []CompareRow {
	rows := make([]CompareRow, 0, len(reps))
	for _, r := range reps {
		row := CompareRow{Label: r.Label, Target: r.Target, P99US: r.Latency.P99, BidRate: r.BidRate}
		if m := r.Market; m != nil {
			o := m.Overall
			row.Bids, row.Wins, row.WinRate, row.Impressions = o.Bids, o.Wins, o.WinRate, o.Impressions
			row.Spend, row.Surplus, row.ECPM, row.Clicks, row.CTR = o.Spend, o.Surplus, o.ECPM, o.Clicks, o.CTR
			if o.Budget != nil {
				d := o.Budget.Delivery
				row.Delivery = &d
			}
			if o.FrequencyCap != nil {
				v := o.FrequencyCap.Violations
				row.CapViolations = &v
			}
		}
		rows = append(rows, row)
	}
	return rows
}

func writeComparison(w io.Writer, rows []CompareRow) {
	fmt.Fprintln(w, "comparison  same requests at the same times, same competing bids and click draws")
	fmt.Fprintf(w, "  %-14s %9s %6s %9s %8s %9s %12s %12s %8s %8s %9s %6s\n",
		"target", "p99", "bid%", "bids", "win%", "imps", "spend", "surplus", "eCPM", "CTR%", "delivery", "caps✗")
	for _, r := range rows {
		surplus, delivery, caps := "-", "-", "-"
		if r.Surplus != nil {
			surplus = fmt.Sprintf("%.4f", *r.Surplus)
		}
		if r.Delivery != nil {
			delivery = fmt.Sprintf("%.2f%%", 100**r.Delivery)
		}
		if r.CapViolations != nil {
			caps = fmt.Sprint(*r.CapViolations)
		}
		fmt.Fprintf(w, "  %-14s %9s %6.1f %9d %8.2f %9d %12.4f %12s %8.3f %8.3f %9s %6s\n",
			r.Label, us(r.P99US), 100*r.BidRate, r.Bids, 100*r.WinRate, r.Impressions, r.Spend, surplus, r.ECPM, 100*r.CTR, delivery, caps)
	}
}

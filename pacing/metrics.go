package pacing

// The pacing metrics are made at scrape time from the read model rather than kept in gauge vectors:
// a campaign removed from the model then has no series at the next scrape, with no deletion to
// forget, and the state's age is measured at the moment Prometheus asks.

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descBudget = prometheus.NewDesc("rtb_pacing_budget_micros",
		"Today's budget of the campaign in micros: the daily budget, or what remains of the lifetime budget if less.",
		[]string{"campaign"}, nil)
	descSpent = prometheus.NewDesc("rtb_pacing_spent_today_micros",
		"Billed spend booked to the campaign's current day, in micros.",
		[]string{"campaign"}, nil)
	descTarget = prometheus.NewDesc("rtb_pacing_target_today_micros",
		"What the campaign's target curve says should be spent by now today, in micros.",
		[]string{"campaign"}, nil)
	descProjected = prometheus.NewDesc("rtb_pacing_projected_today_micros",
		"Expected spend of the campaign by the end of its day at the current pace, in micros.",
		[]string{"campaign"}, nil)
	descThrottle = prometheus.NewDesc("rtb_pacing_throttle",
		"Probability that a bidder admits the campaign into an auction (0..1); 0 while paused or at its budget.",
		[]string{"campaign"}, nil)
	descMultiplier = prometheus.NewDesc("rtb_pacing_bid_multiplier",
		"Factor on the campaign's bids (>= 1; above 1 only when full admission cannot reach the target).",
		[]string{"campaign"}, nil)
	descAge = prometheus.NewDesc("rtb_pacing_state_age_seconds",
		"Time since the campaign's pacing state was last computed, or confirmed current by its pacer's heartbeat, at scrape time.",
		[]string{"campaign"}, nil)
	descOverspend = prometheus.NewDesc("rtb_pacing_overspend_micros_total",
		"Micros spent beyond a campaign's budget for the day (its daily budget, or what remained of its lifetime budget if less), summed over campaigns: spend that arrived while the day was already over budget.",
		nil, nil)
)

// Collector returns the Prometheus collector of the pacing metrics (register it once):
//
//	rtb_pacing_budget_micros{campaign}           gauge: today's budget (State.DailyBudget)
//	rtb_pacing_spent_today_micros{campaign}      gauge: spend booked to today
//	rtb_pacing_target_today_micros{campaign}     gauge: target spend by now
//	rtb_pacing_projected_today_micros{campaign}  gauge: projected spend at the day's end
//	rtb_pacing_throttle{campaign}                gauge: admission probability, 0..1
//	rtb_pacing_bid_multiplier{campaign}          gauge: bid multiplier, ≥ 1
//	rtb_pacing_state_age_seconds{campaign}       gauge: scrape time − the later of the state's
//	                                             updated_at and its partition's heartbeat
//	rtb_pacing_overspend_micros_total            counter: spend beyond a day's budget (see Apply)
//
// The per-campaign series are those of the campaigns in the model at scrape time: a removed
// campaign's series are gone at the next scrape.
func (m *ReadModel) Collector() prometheus.Collector { return m.collector }

type collector struct{ m *ReadModel }

func newCollector(m *ReadModel) *collector { return &collector{m: m} }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBudget, descSpent, descTarget, descProjected, descThrottle, descMultiplier, descAge, descOverspend} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	gauge := func(d *prometheus.Desc, v float64, id string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, id)
	}
	for id, t := range m.camps {
		s := &t.state
		gauge(descBudget, float64(s.DailyBudget), id)
		gauge(descSpent, float64(s.SpentToday), id)
		gauge(descTarget, float64(s.TargetToday), id)
		gauge(descProjected, float64(s.ProjectedToday), id)
		gauge(descThrottle, s.Throttle, id)
		gauge(descMultiplier, s.Multiplier, id)
		at, _ := m.confirmed(id, t)
		gauge(descAge, max(now.Sub(at), time.Duration(0)).Seconds(), id)
	}
	ch <- prometheus.MustNewConstMetric(descOverspend, prometheus.CounterValue, float64(m.overspend))
}

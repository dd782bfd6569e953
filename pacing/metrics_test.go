package pacing

import (
	"bytes"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

func TestMetrics(t *testing.T) {
	m, at := apiModel(t)
	m.Apply(State{ // c-1 over its budget: 20 micros of spend beyond it
		CampaignID: "c-1", Day: m.Snapshot(at).Campaigns[0].DayStart, UpdatedAt: at, ValidUntil: at.Add(2 * time.Second),
		Multiplier: 1, DailyBudget: 500_000_000, SpentToday: 500_000_020, TargetToday: 260_000_000,
		ProjectedToday: 500_000_020, SpentTotal: 500_000_020, Status: StatusBudgetReached,
	})
	want := `
# HELP rtb_pacing_bid_multiplier Factor on the campaign's bids (>= 1; above 1 only when full admission cannot reach the target).
# TYPE rtb_pacing_bid_multiplier gauge
rtb_pacing_bid_multiplier{campaign="c-1"} 1
rtb_pacing_bid_multiplier{campaign="c-2"} 1.1
# HELP rtb_pacing_budget_micros Today's budget of the campaign in micros: the daily budget, or what remains of the lifetime budget if less.
# TYPE rtb_pacing_budget_micros gauge
rtb_pacing_budget_micros{campaign="c-1"} 5e+08
rtb_pacing_budget_micros{campaign="c-2"} 2e+08
# HELP rtb_pacing_overspend_micros_total Micros spent beyond a campaign's budget for the day (its daily budget, or what remained of its lifetime budget if less), summed over campaigns: spend that arrived while the day was already over budget.
# TYPE rtb_pacing_overspend_micros_total counter
rtb_pacing_overspend_micros_total 20
# HELP rtb_pacing_projected_today_micros Expected spend of the campaign by the end of its day at the current pace, in micros.
# TYPE rtb_pacing_projected_today_micros gauge
rtb_pacing_projected_today_micros{campaign="c-1"} 5.0000002e+08
rtb_pacing_projected_today_micros{campaign="c-2"} 1.305e+08
# HELP rtb_pacing_spent_today_micros Billed spend booked to the campaign's current day, in micros.
# TYPE rtb_pacing_spent_today_micros gauge
rtb_pacing_spent_today_micros{campaign="c-1"} 5.0000002e+08
rtb_pacing_spent_today_micros{campaign="c-2"} 6e+07
# HELP rtb_pacing_state_age_seconds Time since the campaign's pacing state was last computed, or confirmed current by its pacer's heartbeat, at scrape time.
# TYPE rtb_pacing_state_age_seconds gauge
rtb_pacing_state_age_seconds{campaign="c-1"} 0
rtb_pacing_state_age_seconds{campaign="c-2"} 300
# HELP rtb_pacing_target_today_micros What the campaign's target curve says should be spent by now today, in micros.
# TYPE rtb_pacing_target_today_micros gauge
rtb_pacing_target_today_micros{campaign="c-1"} 2.6e+08
rtb_pacing_target_today_micros{campaign="c-2"} 9.5e+07
# HELP rtb_pacing_throttle Probability that a bidder admits the campaign into an auction (0..1); 0 while paused or at its budget.
# TYPE rtb_pacing_throttle gauge
rtb_pacing_throttle{campaign="c-1"} 0
rtb_pacing_throttle{campaign="c-2"} 1
`
	if err := testutil.CollectAndCompare(m.Collector(), strings.NewReader(want)); err != nil {
		t.Error(err)
	}

	// A removed campaign's series are gone at the next scrape; the counter stays.
	m.SetCampaigns(map[string]string{"c-2": "Winter boots"})
	if n := testutil.CollectAndCount(m.Collector(), "rtb_pacing_throttle"); n != 1 {
		t.Errorf("%d throttle series after removing c-1, want 1", n)
	}
	if err := testutil.CollectAndCompare(m.Collector(), strings.NewReader(`
# HELP rtb_pacing_overspend_micros_total Micros spent beyond a campaign's budget for the day (its daily budget, or what remained of its lifetime budget if less), summed over campaigns: spend that arrived while the day was already over budget.
# TYPE rtb_pacing_overspend_micros_total counter
rtb_pacing_overspend_micros_total 20
`), "rtb_pacing_overspend_micros_total"); err != nil {
		t.Error(err)
	}
	m.SetCampaigns(nil)
	if n := testutil.CollectAndCount(m.Collector()); n != 1 {
		t.Errorf("%d series with no campaigns, want only the overspend counter", n)
	}
}

// TestMetricsPassPromtool has Prometheus' own linter check the metric names, types and help
// (Debian package prometheus; .ci/run installs it).
func TestMetricsPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (.ci/run does)")
	}
	m, _ := apiModel(t)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"rtb_pacing_budget_micros", "rtb_pacing_spent_today_micros", "rtb_pacing_throttle",
		"rtb_pacing_bid_multiplier", "rtb_pacing_state_age_seconds", "rtb_pacing_overspend_micros_total"} {
		if !strings.Contains(buf.String(), "\n"+name+"{") && !strings.Contains(buf.String(), "\n"+name+" ") {
			t.Errorf("metrics lack %s", name)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s\n%s", err, out, buf.String())
	}
}

// TestWriteTextMatchesCollector: /metrics writes the pacing series itself (WriteText) for speed;
// what it writes must be what the Collector says, series by series, awkward label values and an
// empty model included, and pass promtool.
func TestWriteTextMatchesCollector(t *testing.T) {
	m, at := apiModel(t)
	m.Apply(State{CampaignID: `odd "id" \ with
newline`, Day: m.Snapshot(at).Campaigns[0].DayStart, UpdatedAt: at, ValidUntil: at.Add(time.Second),
		Throttle: 0.123456789, Multiplier: 1.05, DailyBudget: 7, SpentToday: 8, Status: StatusPacing})
	m.Heartbeat(Heartbeat{Partition: 0, Partitions: 1, UpdatedAt: at.Add(time.Minute), ValidUntil: at.Add(time.Hour)})
	for _, tc := range []struct {
		name  string
		model *ReadModel
	}{{"campaigns", m}, {"empty", NewReadModel()}} {
		var buf bytes.Buffer
		if err := tc.model.WriteText(&buf); err != nil {
			t.Fatal(err)
		}
		text := buf.String()
		if err := testutil.CollectAndCompare(tc.model.Collector(), strings.NewReader(text)); err != nil {
			t.Errorf("%s: WriteText differs from the Collector: %v\n%s", tc.name, err, text)
		}
		if promtool, err := exec.LookPath("promtool"); err == nil {
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = strings.NewReader(text)
			if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("%s: promtool check metrics: %v\n%s", tc.name, err, out)
			}
		}
	}
}

// BenchmarkMetrics100k: one scrape's worth of pacing series for 100,000 campaigns, through
// client_golang (Gather and encode) and written directly (WriteText).
func BenchmarkMetrics100k(b *testing.B) {
	m := NewReadModel()
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for i := range 100_000 {
		m.Apply(State{CampaignID: "c-" + strconv.Itoa(i), Day: rmDay, UpdatedAt: at, ValidUntil: at.Add(2 * time.Second),
			Throttle: 0.5, Multiplier: 1, DailyBudget: 1e8, SpentToday: int64(i), TargetToday: 5e7, Status: StatusPacing})
	}
	b.Run("gather", func(b *testing.B) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(m.Collector())
		b.ReportAllocs()
		for b.Loop() {
			mfs, err := reg.Gather()
			if err != nil {
				b.Fatal(err)
			}
			enc := expfmt.NewEncoder(io.Discard, expfmt.NewFormat(expfmt.TypeTextPlain))
			for _, mf := range mfs {
				enc.Encode(mf)
			}
		}
	})
	b.Run("write", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.WriteText(io.Discard)
		}
	})
}

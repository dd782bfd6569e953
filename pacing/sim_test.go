package pacing_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"rtb/pacing"
	"rtb/pacing/sim"
)

// The simulated days below are compressed: 1440 control steps of 1 s, each standing for a minute of
// a real day, so that an "hour" is 60 steps (DayLength 24m). TestSimulatedTotalBudget uses
// `--day-length 10m` days; TestSimulatedCalendarDay real 24-hour days with 1-minute steps.
const (
	stepsPerDay = 1440
	simDay      = stepsPerDay * time.Second
)

var simStart = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC) // a multiple of simDay after the Unix epoch

// market returns a campaign whose full admission would spend `supply` times its daily budget in a
// day of `steps` intervals.
func market(id string, daily int64, supply, winRate float64, price int64, steps float64) sim.Campaign {
	return sim.Campaign{
		ID: id, Daily: daily, WinRate: winRate, Price: price,
		Opportunities: supply * float64(daily) / (steps * winRate * float64(price)),
	}
}

// marketCampaigns: four with plenty of traffic (full admission would spend 4–10× their budget;
// budgets from $30 to $2,000 a day; 8 to 700 wins per step when paced) and one with too little
// (full admission spends 40% of its budget).
func marketCampaigns() []sim.Campaign {
	return []sim.Campaign{
		market("a-plenty-4x", 500_000_000, 4, 0.30, 2_000, stepsPerDay),
		market("b-plenty-6x", 2_000_000_000, 6, 0.20, 3_000, stepsPerDay),
		market("c-plenty-10x", 200_000_000, 10, 0.40, 1_500, stepsPerDay),
		market("d-small-5x", 30_000_000, 5, 0.25, 2_500, stepsPerDay),
		market("e-thin-0.4x", 1_000_000_000, 0.4, 0.30, 2_000, stepsPerDay),
	}
}

const thin = "e-thin-0.4x"

func simConfig(seed uint64) sim.Config {
	return sim.Config{
		Pacing: pacing.Config{Interval: time.Second, DayLength: simDay, NoticeDelay: time.Second},
		Start:  simStart,
		Seed:   seed,
	}
}

// clock shows an offset into a compressed day as the time of day it stands for.
func clock(d, day time.Duration) string {
	if d < 0 {
		return "—"
	}
	m := int(d * 24 * 60 / day)
	return fmt.Sprintf("%02d:%02d", m/60, m%60)
}

// checkPaced asserts the promise for a campaign with enough traffic: delivery within 2% of the
// budget, never over 100.5%, every hour from `fromHour` within ±20% of the target curve's hour.
func checkPaced(t *testing.T, id string, d sim.DayResult, fromHour int) {
	t.Helper()
	if got := d.Delivered(); got < 0.98 || got > 1.005 {
		t.Errorf("%s %s: delivered %.2f%% of %d, want 98–100.5%%", id, d.Day.Format(time.DateOnly), 100*got, d.Budget)
	}
	if dev := d.MaxHourlyDeviation(fromHour); dev > 0.20 {
		t.Errorf("%s %s: an hour deviates %.1f%% from the target curve, want ≤ 20%%", id, d.Day.Format(time.DateOnly), 100*dev)
		for h := fromHour; h < 24; h++ {
			t.Logf("  hour %02d spent %d target %d", h, d.Hourly[h], d.HourlyTarget(h))
		}
	}
}

// TestSimulatedDay is the product promise on one compressed day of realistic traffic (low at night,
// peaking in the evening), three bidders acting on state one interval old, spend reported up to 1 s
// late: paced campaigns with enough traffic deliver their budget within 2%, evenly hour by hour,
// never above 100.5%; the one without enough traffic is admitted fully and reported
// under-delivering; the same day without pacing runs out of budget in the morning.
func TestSimulatedDay(t *testing.T) {
	paced := sim.New(simConfig(1), marketCampaigns())
	paced.Run(simDay)
	unpacedCfg := simConfig(1)
	unpacedCfg.Unpaced = true
	unpaced := sim.New(unpacedCfg, marketCampaigns())
	unpaced.Run(simDay)

	var table strings.Builder
	fmt.Fprintf(&table, "\n| campaign | daily budget | supply | delivered paced | max hourly deviation | budget ran out paced | budget ran out unpaced | delivered unpaced | end of day (throttle, multiplier, status) |\n")
	fmt.Fprintf(&table, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, c := range marketCampaigns() {
		p, u := paced.Days(c.ID)[0], unpaced.Days(c.ID)[0]
		supply := c.FullSpendPerDay(stepsPerDay) / float64(c.Daily)
		dev := fmt.Sprintf("%.1f%%", 100*p.MaxHourlyDeviation(0))
		if c.ID == thin {
			dev = "n/a (follows its traffic)"
		}
		fmt.Fprintf(&table, "| %s | $%.2f | %.1f× | %.2f%% | %s | %s | %s | %.2f%% | %.2f, %.2f, %s |\n", c.ID, float64(c.Daily)/1e6, supply,
			100*p.Delivered(), dev, clock(p.OutAt, simDay), clock(u.OutAt, simDay), 100*u.Delivered(),
			p.Final.Throttle, p.Final.Multiplier, p.Final.Status)

		if d := p.Delivered(); d > 1.005 {
			t.Errorf("%s: paced delivery %.2f%% is over 100.5%%", c.ID, 100*d)
		}
		if c.ID == thin {
			if p.Final.Throttle != 1 || p.Final.Status != pacing.StatusUnderDelivering {
				t.Errorf("%s: ends the day with throttle %.2f, status %s; want 1, %s", c.ID, p.Final.Throttle, p.Final.Status, pacing.StatusUnderDelivering)
			}
			continue
		}
		checkPaced(t, c.ID, p, 0)
		if u.OutAt < 0 || u.OutAt > simDay/2 {
			t.Errorf("%s: unpaced, the budget ran out at %s; the contrast needs it gone before noon", c.ID, clock(u.OutAt, simDay))
		}
		if p.OutAt >= 0 && p.OutAt < simDay*23/24 {
			t.Errorf("%s: paced, the budget ran out at %s, before the last hour", c.ID, clock(p.OutAt, simDay))
		}
	}
	if st := paced.Controller().Stats(); st != (pacing.Stats{}) {
		t.Errorf("with notices at most NoticeDelay late, nothing may count as late or dropped: %+v", st)
	}
	t.Log("one compressed day (1440 steps of 1 s = minutes), 3 bidders on state 1 step old, spend up to 1 s late; \"ran out\" = 99% of the budget spent" + table.String())
}

// TestSimulatedDeterministic: the same inputs give the same states, step by step.
func TestSimulatedDeterministic(t *testing.T) {
	a, b := sim.New(simConfig(7), marketCampaigns()), sim.New(simConfig(7), marketCampaigns())
	for i := range stepsPerDay / 3 {
		a.Step()
		b.Step()
		if !reflect.DeepEqual(a.States(), b.States()) {
			t.Fatalf("step %d: states differ:\n%+v\n%+v", i, a.States(), b.States())
		}
	}
}

// TestSimulatedTrafficShape: with UseTrafficShape the first day is even, the second follows the
// first day's observed traffic shape, and is delivered as evenly against that curve.
func TestSimulatedTrafficShape(t *testing.T) {
	cfg := simConfig(2)
	cfg.Pacing.UseTrafficShape = true
	s := sim.New(cfg, marketCampaigns())
	s.Run(2 * simDay)
	var table strings.Builder
	fmt.Fprintf(&table, "\n| hour | day 1 traffic share | day 2 target share | day 2 spend share |\n| --- | ---: | ---: | ---: |\n")
	for _, c := range marketCampaigns() {
		days := s.Days(c.ID)
		if len(days) != 2 {
			t.Fatalf("%s: %d days, want 2", c.ID, len(days))
		}
		if c.ID == thin {
			continue
		}
		checkPaced(t, c.ID, days[0], 0)
		checkPaced(t, c.ID, days[1], 0)
		var traffic int64
		for _, n := range days[0].Traffic {
			traffic += n
		}
		for h := range 24 {
			seen := float64(days[0].Traffic[h]) / float64(traffic)
			target := float64(days[1].HourlyTarget(h)) / float64(days[1].Budget)
			// The target keeps 5% of even spend (see Controller.curve).
			if want := 0.95*seen + 0.05/24; target < 0.97*want || target > 1.03*want {
				t.Errorf("%s hour %02d: day 2 target share %.4f, day 1 traffic share %.4f", c.ID, h, target, seen)
			}
			if c.ID == "a-plenty-4x" {
				fmt.Fprintf(&table, "| %02d | %.2f%% | %.2f%% | %.2f%% |\n", h, 100*seen, 100*target, 100*float64(days[1].Hourly[h])/float64(days[1].Budget))
			}
		}
	}
	t.Log("a-plenty-4x, target following the traffic shape" + table.String())
}

// TestSimulatedTotalBudget: three `--day-length 10m` days (600 steps of 1 s) with a lifetime budget
// of 2.5 daily budgets: two full days, then what is left of the total paced over the third, and not
// a micro over the total.
func TestSimulatedTotalBudget(t *testing.T) {
	const steps = 600
	cfg := simConfig(3)
	cfg.Pacing.DayLength = 10 * time.Minute
	c := market("total", 300_000_000, 6, 0.3, 2_000, steps)
	c.Total = 750_000_000
	s := sim.New(cfg, []sim.Campaign{c})
	s.Run(4 * 10 * time.Minute)
	days := s.Days("total")
	var total int64
	for i, d := range days {
		if want := min(c.Daily, c.Total-total); d.Budget != want {
			t.Errorf("day %d: budget %d, want %d (daily %d, %d of the total left)", i, d.Budget, want, c.Daily, c.Total-total)
		}
		total += d.Spent
		if i < 3 {
			checkPaced(t, "total", d, 0)
		}
		t.Logf("day %d: budget %d, spent %d (%.2f%%), %s", i, d.Budget, d.Spent, 100*d.Delivered(), d.Final.Status)
	}
	if total > c.Total || total < c.Total*99/100 {
		t.Errorf("lifetime spend %d, want 99–100%% of the total budget %d", total, c.Total)
	}
}

// TestSimulatedLateStart: a campaign with 30× the traffic it needs, paused until 22:00, must spend
// its day's budget in two hours (24× the even pace): the steepest approach to the budget, where the
// reserve for spend in flight has to stop it in time.
func TestSimulatedLateStart(t *testing.T) {
	c := market("late", 100_000_000, 30, 0.3, 2_000, stepsPerDay)
	c.Paused = true
	s := sim.New(simConfig(10), []sim.Campaign{c})
	s.Run(22 * simDay / 24)
	c.Paused = false
	s.SetCampaigns([]sim.Campaign{c})
	s.Run(2 * simDay / 24)
	d := s.Days("late")[0]
	checkPaced(t, "late", d, 22)
	t.Logf("resumed at 22:00: delivered %.2f%%, ran out at %s, hours 22–23 within %.1f%% of target", 100*d.Delivered(), clock(d.OutAt, simDay), 100*d.MaxHourlyDeviation(22))
}

// TestSimulatedEdits: a budget raised in the morning, a campaign paused over lunch, a budget lowered
// below what was spent in the evening.
func TestSimulatedEdits(t *testing.T) {
	cs := marketCampaigns()[:3] // a-plenty-4x, b-plenty-6x, c-plenty-10x
	s := sim.New(simConfig(4), cs)
	hour := simDay / 24

	s.Run(6 * hour)
	cs[0].Daily = 800_000_000 // raised from 500
	s.SetCampaigns(cs)
	s.Run(6 * hour)
	cs[2].Paused = true
	s.SetCampaigns(cs)
	s.Step()
	if st, _ := s.Controller().State(cs[2].ID); st.Throttle != 0 || st.Status != pacing.StatusPaused {
		t.Errorf("paused: throttle %.2f, status %s", st.Throttle, st.Status)
	}
	s.Run(3*hour - time.Second)
	cs[2].Paused = false
	s.SetCampaigns(cs)
	s.Run(3 * hour)
	st, _ := s.Controller().State(cs[1].ID)
	cs[1].Daily = st.SpentToday * 2 / 3 // lowered below what is spent
	s.SetCampaigns(cs)
	s.Step()
	if st, _ := s.Controller().State(cs[1].ID); st.Throttle != 0 || st.Status != pacing.StatusBudgetReached {
		t.Errorf("budget lowered below spend: throttle %.2f, status %s; want 0, %s", st.Throttle, st.Status, pacing.StatusBudgetReached)
	}
	spentAtCut := st.SpentToday
	s.Run(6*hour - time.Second)

	raised := s.Days(cs[0].ID)[0]
	checkPaced(t, cs[0].ID, raised, 6) // from the edit on, the rest spread evenly
	t.Logf("raised at 06:00 from $500 to $800: delivered %.2f%%, hours 06–23 within %.1f%% of target (%d → %d an hour)",
		100*raised.Delivered(), 100*raised.MaxHourlyDeviation(6), raised.HourlyTarget(5), raised.HourlyTarget(6))

	resumed := s.Days(cs[2].ID)[0]
	checkPaced(t, cs[2].ID, resumed, 15)
	for h := 12; h < 15; h++ {
		if resumed.Hourly[h] > resumed.Budget/1000 {
			t.Errorf("paused hour %02d spent %d", h, resumed.Hourly[h])
		}
	}
	t.Logf("paused 12:00–15:00: delivered %.2f%%, hours 15–23 within %.1f%% of target", 100*resumed.Delivered(), 100*resumed.MaxHourlyDeviation(15))

	cut := s.Days(cs[1].ID)[0]
	// After the cut only what was already in flight may land: the unreported second and the step
	// bidders act on stale state, three steps of the old even pace at most.
	inFlight := cut.Spent - spentAtCut
	if pace := marketCampaigns()[1].Daily / stepsPerDay; inFlight > 3*pace {
		t.Errorf("after the budget was lowered below spend, %d more was spent (%.1f steps of pace)", inFlight, float64(inFlight)/float64(pace))
	}
	t.Logf("lowered below spend at 18:00: %.1f steps of the old pace were still in flight", float64(inFlight)/float64(marketCampaigns()[1].Daily/stepsPerDay))
	if cut.Final.Status != pacing.StatusBudgetReached {
		t.Errorf("lowered: ends the day %s", cut.Final.Status)
	}
}

// TestSimulatedRestart: the pacer restarts at noon, is rebuilt by replaying the event log, and the
// day ends as it would have.
func TestSimulatedRestart(t *testing.T) {
	cfg := simConfig(5)
	cfg.Record = true
	s := sim.New(cfg, marketCampaigns())
	s.Run(simDay / 2)

	before := map[string]pacing.State{}
	for _, st := range s.States() {
		before[st.CampaignID] = st
	}
	ctl := pacing.NewController(cfg.Pacing)
	ctl.SetBudgets(s.Budgets(), s.Now())
	for _, e := range s.Log() {
		if e.Spend {
			ctl.Spend(e.CampaignID, e.Micros, e.At)
		} else {
			ctl.Traffic(e.CampaignID, e.N, e.At)
		}
	}
	// The rebuilt pacer books exactly what the old one had.
	for _, st := range ctl.Update(s.Now().Add(-time.Second)) {
		if b := before[st.CampaignID]; st.SpentToday != b.SpentToday || st.SpentTotal != b.SpentTotal || st.Day != b.Day {
			t.Errorf("%s: after replay spent %d/%d on %v, before the restart %d/%d on %v", st.CampaignID,
				st.SpentToday, st.SpentTotal, st.Day, b.SpentToday, b.SpentTotal, b.Day)
		}
	}
	if st := ctl.Stats(); st != (pacing.Stats{}) {
		t.Errorf("replay: %+v", st)
	}
	s.SetController(ctl)
	s.Run(simDay / 2)
	for _, c := range marketCampaigns() {
		d := s.Days(c.ID)[0]
		if c.ID == thin {
			continue
		}
		checkPaced(t, c.ID, d, 0)
	}
}

// TestSimulatedHarsherDelays: bidders two steps behind and spend up to 3 s late, with the
// controller told so, still deliver and never overshoot.
func TestSimulatedHarsherDelays(t *testing.T) {
	cfg := simConfig(6)
	cfg.Lag = 2
	cfg.MaxDelay = 3 * time.Second
	cfg.Pacing.StateDelay = 2 * time.Second
	cfg.Pacing.NoticeDelay = 3 * time.Second
	s := sim.New(cfg, marketCampaigns())
	s.Run(simDay)
	for _, c := range marketCampaigns() {
		d := s.Days(c.ID)[0]
		if c.ID != thin {
			checkPaced(t, c.ID, d, 0)
		}
		t.Logf("%s: delivered %.2f%%, max hourly deviation %.1f%%", c.ID, 100*d.Delivered(), 100*d.MaxHourlyDeviation(0))
	}
}

// TestSimulatedWithoutTraffic: a pacer that never gets Traffic still paces, from spend alone.
func TestSimulatedWithoutTraffic(t *testing.T) {
	cfg := simConfig(8)
	cfg.NoTraffic = true
	s := sim.New(cfg, marketCampaigns())
	s.Run(simDay)
	for _, c := range marketCampaigns() {
		d := s.Days(c.ID)[0]
		if c.ID != thin {
			checkPaced(t, c.ID, d, 0)
		}
		t.Logf("%s: delivered %.2f%%, max hourly deviation %.1f%%", c.ID, 100*d.Delivered(), 100*d.MaxHourlyDeviation(0))
	}
}

// TestSimulatedCalendarDay: real 24-hour days in New York across the spring DST change (a 23-hour
// day), 1-minute control steps.
func TestSimulatedCalendarDay(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	cfg := sim.Config{
		Pacing: pacing.Config{Interval: time.Minute},
		Start:  time.Date(2026, 3, 8, 0, 0, 0, 0, ny),
		Seed:   9,
	}
	c := market("ny", 500_000_000, 5, 0.3, 2_000, 1440)
	c.Location = ny
	s := sim.New(cfg, []sim.Campaign{c})
	s.Run(23*time.Hour + 24*time.Hour)
	days := s.Days("ny")
	if len(days) != 2 {
		t.Fatalf("%d days, want 2", len(days))
	}
	for i, want := range []time.Duration{23 * time.Hour, 24 * time.Hour} {
		d := days[i]
		if d.Length != want || !d.Final.Day.Equal(d.Day) || d.Day.Hour() != 0 {
			t.Errorf("day %d: starts %v, lasts %v, state day %v; want local midnight, %v", i, d.Day, d.Length, d.Final.Day, want)
		}
		checkPaced(t, "ny", d, 0)
		t.Logf("%s (%v): delivered %.2f%%, max hourly deviation %.1f%%", d.Day.Format(time.DateOnly), d.Length, 100*d.Delivered(), 100*d.MaxHourlyDeviation(0))
	}
}

package pacing

import (
	"fmt"
	"math"
	"testing"
	"time"

	"rtb/events"
)

// SetReadModelClock replaces the clock that m's handlers and collector read, for tests in this
// package and in pacing_test. Call it before serving.
func SetReadModelClock(m *ReadModel, now func() time.Time) { m.now = now }

var rmDay = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

// rmState is a State of campaign id at `at` into rmDay, spending evenly against a budget of 1000
// currency units: spent and target both at the day's elapsed fraction.
func rmState(id string, day time.Time, at time.Duration) State {
	frac := float64(at) / float64(24*time.Hour)
	spent := int64(frac * 1000e6)
	return State{
		CampaignID: id, Day: day, UpdatedAt: day.Add(at), ValidUntil: day.Add(at + 2*time.Second),
		Throttle: 0.5, Multiplier: 1,
		DailyBudget: 1000e6, SpentToday: spent, TargetToday: spent, ProjectedToday: 1000e6,
		SpentTotal: spent, Status: StatusPacing,
	}
}

func TestReadModelSeriesIsBoundedAndOrdered(t *testing.T) {
	m := NewReadModel()
	for at := time.Duration(0); at < 24*time.Hour; at += 7 * time.Second {
		m.Apply(rmState("c-1", rmDay, at))
	}
	snap := m.Snapshot(rmDay.Add(24*time.Hour - time.Second))
	if len(snap.Campaigns) != 1 {
		t.Fatalf("%d campaigns, want 1", len(snap.Campaigns))
	}
	c := snap.Campaigns[0]
	if len(c.Series) != SeriesPoints {
		t.Fatalf("series has %d points, want %d (one per 1/%d of the day)", len(c.Series), SeriesPoints, SeriesPoints)
	}
	slot := 24 * time.Hour / SeriesPoints
	for i, p := range c.Series {
		// Each point is the latest State of its slot: the last 7-second step before the slot's end.
		start, end := rmDay.Add(time.Duration(i)*slot), rmDay.Add(time.Duration(i+1)*slot)
		if p.At.Before(start) || !p.At.Before(end) || p.At.Add(7*time.Second).Before(end) {
			t.Fatalf("point %d at %v, want the last update in [%v, %v)", i, p.At, start, end)
		}
		if i > 0 && !p.At.After(c.Series[i-1].At) {
			t.Fatalf("point %d at %v not after point %d at %v", i, p.At, i-1, c.Series[i-1].At)
		}
	}
	if last := c.Series[len(c.Series)-1]; !last.At.Equal(c.UpdatedAt) || last.SpentMicros != c.SpentTodayMicros {
		t.Errorf("last point %+v is not the latest state (%v, %d)", last, c.UpdatedAt, c.SpentTodayMicros)
	}
	if !c.DayStart.Equal(rmDay) || !c.DayEnd.Equal(rmDay.Add(24*time.Hour)) {
		t.Errorf("day %v – %v, want %v – %v", c.DayStart, c.DayEnd, rmDay, rmDay.Add(24*time.Hour))
	}
}

func TestReadModelDayRolloverStartsANewSeries(t *testing.T) {
	m := NewReadModel()
	for at := time.Duration(0); at < 24*time.Hour; at += time.Hour {
		m.Apply(rmState("c-1", rmDay, at))
	}
	next := rmDay.Add(24 * time.Hour)
	m.Apply(rmState("c-1", next, 30*time.Second))
	m.Apply(rmState("c-1", next, 10*time.Minute))
	c := m.Snapshot(next.Add(10 * time.Minute)).Campaigns[0]
	if len(c.Series) != 2 || !c.Series[0].At.Equal(next.Add(30*time.Second)) {
		t.Fatalf("after rollover the series is %+v, want the new day's 2 points", c.Series)
	}
	if !c.DayStart.Equal(next) || !c.DayEnd.Equal(next.Add(24*time.Hour)) {
		t.Errorf("day %v – %v after rollover", c.DayStart, c.DayEnd)
	}
	// A late State of the finished day (a redelivery) changes nothing.
	m.Apply(rmState("c-1", rmDay, 23*time.Hour+time.Minute))
	if c2 := m.Snapshot(next.Add(10 * time.Minute)).Campaigns[0]; !c2.DayStart.Equal(next) || len(c2.Series) != 2 {
		t.Errorf("an old day's State moved the model back: day %v, %d points", c2.DayStart, len(c2.Series))
	}
}

func TestReadModelIgnoresOlderStates(t *testing.T) {
	m := NewReadModel()
	m.Apply(rmState("c-1", rmDay, 2*time.Hour))
	m.Apply(rmState("c-1", rmDay, time.Hour))
	c := m.Snapshot(rmDay.Add(2 * time.Hour)).Campaigns[0]
	if !c.UpdatedAt.Equal(rmDay.Add(2*time.Hour)) || len(c.Series) != 1 {
		t.Errorf("an older State was applied: updated %v, %d points", c.UpdatedAt, len(c.Series))
	}
}

func TestReadModelCalendarAndCompressedDays(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	m := NewReadModel()
	dst := time.Date(2026, 3, 8, 0, 0, 0, 0, ny) // 23 hours long
	m.Apply(State{CampaignID: "ny", Day: dst, UpdatedAt: dst.Add(22 * time.Hour), Status: StatusPacing})
	c := m.Snapshot(dst.Add(22 * time.Hour)).Campaigns[0]
	if got := c.DayEnd.Sub(c.DayStart); got != 23*time.Hour {
		t.Errorf("DST day lasts %v, want 23h", got)
	}

	m = NewReadModel()
	m.SetDayLength(10 * time.Minute)
	day := time.Unix(0, 0).UTC().Add(10 * time.Minute * 2_960_000)
	for at := time.Duration(0); at < 10*time.Minute; at += time.Second {
		m.Apply(State{CampaignID: "fast", Day: day, UpdatedAt: day.Add(at), Status: StatusPacing})
	}
	c = m.Snapshot(day.Add(10 * time.Minute)).Campaigns[0]
	if !c.DayEnd.Equal(day.Add(10*time.Minute)) || len(c.Series) != SeriesPoints {
		t.Errorf("10-minute day: ends %v, %d points; want %v, %d", c.DayEnd, len(c.Series), day.Add(10*time.Minute), SeriesPoints)
	}
}

func TestReadModelSetCampaigns(t *testing.T) {
	m := NewReadModel()
	for _, id := range []string{"c-3", "c-1", "c-2"} {
		m.Apply(rmState(id, rmDay, time.Hour))
	}
	now := rmDay.Add(time.Hour)
	if got := ids(m.Snapshot(now)); got != "c-1 c-2 c-3" {
		t.Fatalf("before SetCampaigns: %s, want every campaign, by id", got)
	}
	if n := m.Snapshot(now).Campaigns[0].Name; n != "c-1" {
		t.Errorf("name without SetCampaigns %q, want the id", n)
	}
	m.SetCampaigns(map[string]string{"c-1": "Spring sale", "c-3": "", "c-9": "Not yet paced"})
	snap := m.Snapshot(now)
	if got := ids(snap); got != "c-1 c-3" {
		t.Fatalf("after SetCampaigns: %s, want c-1 c-3 (c-2 removed, c-9 not reported yet)", got)
	}
	if snap.Campaigns[0].Name != "Spring sale" || snap.Campaigns[1].Name != "c-3" {
		t.Errorf("names %q %q, want Spring sale, c-3", snap.Campaigns[0].Name, snap.Campaigns[1].Name)
	}
	m.Apply(rmState("c-2", rmDay, 2*time.Hour)) // a removed campaign's State replayed from the topic
	m.Apply(rmState("c-9", rmDay, 2*time.Hour))
	if got := ids(m.Snapshot(now)); got != "c-1 c-3 c-9" {
		t.Errorf("after more States: %s, want c-1 c-3 c-9", got)
	}
	m.SetCampaigns(nil)
	if got := ids(m.Snapshot(now)); got != "" {
		t.Errorf("after SetCampaigns(nil): %q, want none", got)
	}
}

func ids(s Snapshot) string {
	out := ""
	for i, c := range s.Campaigns {
		if i > 0 {
			out += " "
		}
		out += c.ID
	}
	return out
}

func TestReadModelStaleAndAge(t *testing.T) {
	m := NewReadModel()
	s := rmState("c-1", rmDay, time.Hour) // valid for 2 s
	m.Apply(s)
	for _, tc := range []struct {
		after time.Duration
		stale bool
	}{{0, false}, {7 * time.Second, false}, {7*time.Second + time.Millisecond, true}, {time.Hour, true}} {
		c := m.Snapshot(s.UpdatedAt.Add(tc.after)).Campaigns[0]
		if c.Stale != tc.stale || c.AgeSeconds != tc.after.Seconds() {
			t.Errorf("%v after the update: stale %v, age %v; want %v, %v", tc.after, c.Stale, c.AgeSeconds, tc.stale, tc.after.Seconds())
		}
	}
}

// A pacer re-sends only states that change: its heartbeat keeps a quiet campaign's old state
// current (not stale, age from the heartbeat), and only for the campaigns of its partition.
func TestReadModelHeartbeat(t *testing.T) {
	m := NewReadModel()
	s := rmState("c-1", rmDay, time.Hour)
	m.Apply(s)
	other := rmState("c-2", rmDay, time.Hour)
	m.Apply(other)
	const parts = 8
	p := events.PartitionOf("c-1", parts)
	if events.PartitionOf("c-2", parts) == p {
		t.Fatal("pick campaign ids of different partitions")
	}
	later := s.UpdatedAt.Add(time.Hour)
	m.Heartbeat(Heartbeat{Partition: p, Partitions: parts, UpdatedAt: later, ValidUntil: later.Add(2 * time.Second)})
	m.Heartbeat(Heartbeat{Partition: p, Partitions: parts, UpdatedAt: s.UpdatedAt, ValidUntil: s.UpdatedAt.Add(time.Second)}) // older: ignored
	snap := m.Snapshot(later.Add(time.Second))
	c1, c2 := snap.Campaigns[0], snap.Campaigns[1]
	if c1.Stale || c1.AgeSeconds != 1 || !c1.UpdatedAt.Equal(s.UpdatedAt) {
		t.Errorf("c-1 under a fresh heartbeat: stale %v, age %v s, updated_at %s; want not stale, 1 s, the state's own", c1.Stale, c1.AgeSeconds, c1.UpdatedAt)
	}
	if !c2.Stale {
		t.Error("c-2: another partition's heartbeat kept it current")
	}
	if m.Snapshot(later.Add(8 * time.Second)).Campaigns[0].Stale != true {
		t.Error("c-1: still current after its heartbeat's validity and the grace")
	}
}

func TestReadModelStaleWithoutValidUntil(t *testing.T) {
	m := NewReadModel()
	s := rmState("c-1", rmDay, time.Hour)
	s.ValidUntil = time.Time{} // a feed that does not carry it: the default 2 s validity
	m.Apply(s)
	if m.Snapshot(s.UpdatedAt.Add(6 * time.Second)).Campaigns[0].Stale || !m.Snapshot(s.UpdatedAt.Add(8 * time.Second)).Campaigns[0].Stale {
		t.Error("without ValidUntil, a State should turn stale 2 s + 5 s after its update")
	}
}

func TestReadModelPaceAndTotal(t *testing.T) {
	m := NewReadModel()
	s := rmState("c-1", rmDay, 0) // target 0 at the day's first instant
	s.TotalBudget = 0
	m.Apply(s)
	c := m.Snapshot(rmDay).Campaigns[0]
	if c.Pace != nil || c.TotalBudgetMicros != nil || c.TotalBudget != nil {
		t.Errorf("pace %v, total %v %v; want null while target is 0 and no lifetime budget", c.Pace, c.TotalBudgetMicros, c.TotalBudget)
	}
	s = rmState("c-1", rmDay, 6*time.Hour)
	s.SpentToday = s.TargetToday * 9 / 10
	s.TotalBudget = 30_000_000_000
	s.Throttle = math.NaN() // corrupt input must not break the JSON
	m.Apply(s)
	c = m.Snapshot(rmDay).Campaigns[0]
	if c.Pace == nil || math.Abs(*c.Pace-0.9) > 1e-9 || *c.TotalBudgetMicros != 30_000_000_000 || *c.TotalBudget != "30000.00" || c.Throttle != 0 {
		t.Errorf("pace %v, total %v %v, throttle %v; want 0.9, 30000.00, 0", *c.Pace, *c.TotalBudgetMicros, *c.TotalBudget, c.Throttle)
	}
}

// TestOverspendCounter walks the counter's definition (see Apply) through one campaign's days.
func TestOverspendCounter(t *testing.T) {
	m := NewReadModel()
	day2 := rmDay.Add(24 * time.Hour)
	steps := []struct {
		name          string
		day           time.Time
		budget, spent int64
		want          int64 // counter after the step
	}{
		{"under budget", rmDay, 1000, 900, 0},
		{"reaches the budget exactly", rmDay, 1000, 1000, 0},
		{"late spend beyond it", rmDay, 1000, 1030, 30},
		{"more late spend", rmDay, 1000, 1045, 45},
		{"same state again (redelivery)", rmDay, 1000, 1045, 45},
		{"budget raised above spend", rmDay, 2000, 1100, 45},
		{"budget lowered below spend: not spend beyond budget", rmDay, 1000, 1100, 45},
		{"spend after the lowered budget counts", rmDay, 1000, 1110, 55},
		{"a new day starts over budget (spend booked ahead)", day2, 5, 8, 58},
		{"and within it again", day2, 100, 50, 58},
		{"then a jump straight past the budget counts only the excess", day2, 100, 130, 88},
	}
	at := time.Hour
	for _, st := range steps {
		at += time.Minute
		m.Apply(State{CampaignID: "c-1", Day: st.day, UpdatedAt: st.day.Add(at), DailyBudget: st.budget, SpentToday: st.spent, Status: StatusPacing})
		m.mu.RLock()
		got := m.overspend
		m.mu.RUnlock()
		if got != st.want {
			t.Fatalf("%s: counter %d, want %d", st.name, got, st.want)
		}
	}
}

func TestFormatMicros(t *testing.T) {
	for in, want := range map[int64]string{
		0: "0.00", 1: "0.000001", 30_000: "0.03", 1_234_567: "1.234567", 2_500_000: "2.50",
		500_000_000: "500.00", 1_234_500_000: "1234.50", -1_500_000: "-1.50",
		math.MinInt64: "-9223372036854.775808", math.MaxInt64: "9223372036854.775807",
	} {
		if got := FormatMicros(in); got != want {
			t.Errorf("FormatMicros(%d) = %q, want %q", in, got, want)
		}
	}
}

func ExampleFormatMicros() {
	fmt.Println(FormatMicros(1_234_500_000), FormatMicros(30_000), FormatMicros(1_234_567))
	// Output: 1234.50 0.03 1.234567
}

// LookedAt is how many campaigns c's UpdateChunks has looked at so far: what its steps cost.
func LookedAt(c *Controller) int64 { return c.looked.Load() }

// QuietEvery is how many steps apart c's UpdateChunks steps a quiet campaign.
func QuietEvery(c *Controller) int { return int(c.quietEvery) }

// QuietAfter is how many steps without an event make a campaign quiet.
const QuietAfter = quietAfter

// BudgetSteps is how many steps a new or changed budget keeps its campaign stepped.
const BudgetSteps = budgetSteps

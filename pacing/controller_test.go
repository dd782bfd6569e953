package pacing_test

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"rtb/bidder/campaign"
	"rtb/pacing"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func state(t *testing.T, states []pacing.State, id string) pacing.State {
	t.Helper()
	for _, st := range states {
		if st.CampaignID == id {
			return st
		}
	}
	t.Fatalf("no state for %s in %d states", id, len(states))
	return pacing.State{}
}

func TestDefaults(t *testing.T) {
	cfg := pacing.NewController(pacing.Config{}).Config()
	if cfg.Interval != time.Second || cfg.DayLength != 24*time.Hour || cfg.NoticeDelay != time.Second ||
		cfg.StateDelay != time.Second || cfg.MaxMultiplier != 1.2 || cfg.InitialThrottle != 0.05 || !cfg.Epoch.Equal(time.Unix(0, 0)) {
		t.Errorf("defaults: %+v", cfg)
	}
}

func TestDayOf(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	cal := pacing.NewController(pacing.Config{})
	for _, tc := range []struct {
		at    time.Time
		start time.Time
		len   time.Duration
	}{
		{time.Date(2026, 3, 8, 12, 0, 0, 0, ny), time.Date(2026, 3, 8, 0, 0, 0, 0, ny), 23 * time.Hour},   // spring forward
		{time.Date(2026, 11, 1, 23, 0, 0, 0, ny), time.Date(2026, 11, 1, 0, 0, 0, 0, ny), 25 * time.Hour}, // fall back
		{time.Date(2026, 11, 2, 0, 0, 0, 0, ny), time.Date(2026, 11, 2, 0, 0, 0, 0, ny), 24 * time.Hour},  // midnight is the new day's
		{time.Date(2026, 11, 2, 4, 59, 0, 0, time.UTC), time.Date(2026, 11, 1, 0, 0, 0, 0, ny), 25 * time.Hour},
	} {
		start, end := cal.DayOf(tc.at, ny)
		if !start.Equal(tc.start) || end.Sub(start) != tc.len || start.Location() != ny {
			t.Errorf("DayOf(%v) = %v + %v, want %v + %v", tc.at, start, end.Sub(start), tc.start, tc.len)
		}
	}
	if start, _ := cal.DayOf(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), nil); !start.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("nil zone is UTC: %v", start)
	}

	epoch := time.Date(2026, 1, 1, 0, 3, 0, 0, time.UTC)
	short := pacing.NewController(pacing.Config{DayLength: 10 * time.Minute, Epoch: epoch})
	for _, tc := range []struct{ at, start time.Time }{
		{epoch, epoch},
		{epoch.Add(10*time.Minute - 1), epoch},
		{epoch.Add(25 * time.Minute), epoch.Add(20 * time.Minute)},
		{epoch.Add(-time.Nanosecond), epoch.Add(-10 * time.Minute)},
	} {
		// Time zones do not matter for compressed days.
		start, end := short.DayOf(tc.at, ny)
		if !start.Equal(tc.start) || end.Sub(start) != 10*time.Minute {
			t.Errorf("10m days: DayOf(%v) = %v..%v, want %v", tc.at, start, end, tc.start)
		}
	}
}

// TestRollover: spend is booked to the day of its event time, also when it arrives late or early,
// and the new day starts from what was booked to it.
func TestRollover(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	c := pacing.NewController(pacing.Config{})
	eve := time.Date(2026, 11, 22, 23, 59, 0, 0, ny)
	c.SetBudgets([]pacing.Budget{{CampaignID: "c", Daily: 1_000_000, Location: ny, Active: true}}, eve)
	c.Spend("c", 100, eve.Add(30*time.Second))
	st := state(t, c.Update(eve.Add(58*time.Second)), "c")
	if st.SpentToday != 100 || !st.Day.Equal(time.Date(2026, 11, 22, 0, 0, 0, 0, ny)) {
		t.Fatalf("before midnight: %+v", st)
	}
	midnight := time.Date(2026, 11, 23, 0, 0, 0, 0, ny)
	c.Spend("c", 7, midnight.Add(200*time.Millisecond)) // the new day's, before the pacer rolled over
	st = state(t, c.Update(midnight.Add(time.Second)), "c")
	if st.SpentToday != 7 || st.SpentTotal != 107 || !st.Day.Equal(midnight) || st.Day.Location() != ny {
		t.Fatalf("after midnight: %+v", st)
	}
	c.Spend("c", 50, midnight.Add(-500*time.Millisecond)) // yesterday's, arriving late
	c.Spend("c", 20, midnight.Add(1500*time.Millisecond))
	st = state(t, c.Update(midnight.Add(2*time.Second)), "c")
	if st.SpentToday != 27 || st.SpentTotal != 177 {
		t.Fatalf("late notice for yesterday: today %d total %d, want 27 and 177", st.SpentToday, st.SpentTotal)
	}
	if st.TargetToday > st.DailyBudget/10000 {
		t.Errorf("target restarted from the day's start: %d", st.TargetToday)
	}
}

func TestPausedAndFlight(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	c := pacing.NewController(pacing.Config{})
	c.SetBudgets([]pacing.Budget{
		{CampaignID: "paused", Daily: 1_000_000},
		{CampaignID: "later", Daily: 1_000_000, Active: true, Start: now.Add(time.Hour)},
		{CampaignID: "over", Daily: 1_000_000, Active: true, End: now},
		{CampaignID: "on", Daily: 1_000_000, Active: true, Start: now.Add(-time.Hour), End: now.Add(time.Hour)},
	}, now)
	states := c.Update(now)
	for _, id := range []string{"paused", "later", "over"} {
		if st := state(t, states, id); st.Throttle != 0 || st.Status != pacing.StatusPaused || st.Multiplier != 1 {
			t.Errorf("%s: throttle %v, status %s", id, st.Throttle, st.Status)
		}
	}
	if st := state(t, states, "on"); st.Throttle == 0 || st.Status != pacing.StatusPacing {
		t.Errorf("in flight: throttle %v, status %s", st.Throttle, st.Status)
	}
	if st := state(t, c.Update(now.Add(time.Hour)), "later"); st.Throttle == 0 || st.Status != pacing.StatusPacing {
		t.Errorf("flight started: throttle %v, status %s", st.Throttle, st.Status)
	}
	if st := state(t, c.Update(now.Add(time.Hour+time.Second)), "on"); st.Throttle != 0 || st.Status != pacing.StatusPaused {
		t.Errorf("flight ended: throttle %v, status %s", st.Throttle, st.Status)
	}
}

// TestFlightEndingToday: a flight that ends during the day is paced to its end, not to midnight.
func TestFlightEndingToday(t *testing.T) {
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	c := pacing.NewController(pacing.Config{})
	c.SetBudgets([]pacing.Budget{{CampaignID: "c", Daily: 1_200_000, Active: true, End: day.Add(12 * time.Hour)}}, day)
	c.Update(day)
	if st := state(t, c.Update(day.Add(6*time.Hour)), "c"); st.TargetToday != 600_000 {
		t.Errorf("halfway to a noon flight end: target %d, want 600000", st.TargetToday)
	}
}

func TestBudgetEdits(t *testing.T) {
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	b := pacing.Budget{CampaignID: "c", Daily: 1_000_000, Active: true}
	c := pacing.NewController(pacing.Config{})
	c.SetBudgets([]pacing.Budget{b}, day)
	c.Update(day)
	noon := day.Add(12 * time.Hour)
	c.Spend("c", 500_000, noon.Add(-time.Hour))
	if st := state(t, c.Update(noon), "c"); st.TargetToday != 500_000 || st.SpentToday != 500_000 {
		t.Fatalf("noon: %+v", st)
	}

	// Raised: the rest of the new budget is spread over the rest of the day, from where it stands.
	b.Daily = 2_000_000
	c.SetBudgets([]pacing.Budget{b}, noon)
	if st := state(t, c.Update(noon.Add(time.Second)), "c"); st.DailyBudget != 2_000_000 || math.Abs(float64(st.TargetToday-500_000)) > 100 {
		t.Errorf("just raised: budget %d, target %d (want about 500000)", st.DailyBudget, st.TargetToday)
	}
	if st := state(t, c.Update(day.Add(18*time.Hour)), "c"); math.Abs(float64(st.TargetToday-1_250_000)) > 100 {
		t.Errorf("raised at noon, 18:00 target %d, want about 1250000", st.TargetToday)
	}

	// Lowered below what is spent: budget reached at once.
	c.Spend("c", 400_000, day.Add(18*time.Hour))
	b.Daily = 800_000
	c.SetBudgets([]pacing.Budget{b}, day.Add(18*time.Hour+time.Second))
	st := state(t, c.Update(day.Add(18*time.Hour+2*time.Second)), "c")
	if st.Throttle != 0 || st.Status != pacing.StatusBudgetReached || st.DailyBudget != 800_000 || st.TargetToday > st.DailyBudget {
		t.Errorf("lowered below spend: %+v", st)
	}
}

func TestTotalBudget(t *testing.T) {
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	c := pacing.NewController(pacing.Config{})
	c.SetBudgets([]pacing.Budget{{CampaignID: "c", Daily: 1_000_000, Total: 1_500_000, Active: true}}, day)
	c.Restore("c", day.Add(-time.Hour), 0, 1_200_000) // a snapshot from yesterday
	st := state(t, c.Update(day.Add(time.Second)), "c")
	if st.DailyBudget != 300_000 || st.SpentTotal != 1_200_000 || st.TotalBudget != 1_500_000 || st.Status != pacing.StatusPacing {
		t.Errorf("total left below daily: %+v", st)
	}
	c.Spend("c", 300_000, day.Add(2*time.Second))
	if st := state(t, c.Update(day.Add(3*time.Second)), "c"); st.Throttle != 0 || st.Status != pacing.StatusBudgetReached {
		t.Errorf("total spent: %+v", st)
	}
	if st := state(t, c.Update(day.Add(25*time.Hour)), "c"); st.DailyBudget != 0 || st.Throttle != 0 || st.Status != pacing.StatusBudgetReached {
		t.Errorf("next day, total spent: %+v", st)
	}
}

// TestLateSpend: spend arriving later than NoticeDelay is booked and counted as late.
func TestLateSpend(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	c := pacing.NewController(pacing.Config{})
	c.SetBudgets([]pacing.Budget{{CampaignID: "c", Daily: 1_000_000, Active: true}}, now)
	c.Spend("c", 5, now.Add(-time.Hour)) // a replay before the first Update is not late
	c.Update(now)
	c.Spend("c", 7, now.Add(-1500*time.Millisecond)) // its interval was complete at now
	c.Spend("c", 11, now.Add(-500*time.Millisecond))
	if st := c.Stats(); st.LateEvents != 1 || st.LateMicros != 7 {
		t.Errorf("late: %+v, want 1 event of 7", st)
	}
	if st := state(t, c.Update(now.Add(time.Second)), "c"); st.SpentToday != 23 {
		t.Errorf("spent %d, want 23", st.SpentToday)
	}
}

func TestRestore(t *testing.T) {
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	c := pacing.NewController(pacing.Config{})
	c.Restore("unknown", day, 1, 1) // ignored
	c.SetBudgets([]pacing.Budget{{CampaignID: "c", Daily: 1_000_000, Active: true}}, day.Add(time.Hour))
	c.Restore("c", day.Add(30*time.Minute), 400_000, 900_000)
	c.Spend("c", 1_000, day.Add(time.Hour))
	st := state(t, c.Update(day.Add(time.Hour+time.Second)), "c")
	if st.SpentToday != 401_000 || st.SpentTotal != 901_000 {
		t.Errorf("restored: %+v", st)
	}
	if got, ok := c.State("c"); !ok || got != st {
		t.Errorf("State = %+v, %v; want the last Update's", got, ok)
	}
}

// TestRemoveAndRestore: a campaign removed from the file and put back the same day keeps its spend.
func TestRemoveAndRestore(t *testing.T) {
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	b := pacing.Budget{CampaignID: "c", Daily: 1_000_000, Active: true}
	c := pacing.NewController(pacing.Config{})
	c.SetBudgets([]pacing.Budget{b, {CampaignID: "d", Daily: 1, Active: true}}, day)
	c.Spend("c", 900_000, day.Add(time.Hour))
	c.SetBudgets([]pacing.Budget{{CampaignID: "d", Daily: 1, Active: true}}, day.Add(2*time.Hour))
	if states := c.Update(day.Add(2 * time.Hour)); len(states) != 1 || states[0].CampaignID != "d" {
		t.Fatalf("removed campaign still updated: %+v", states)
	}
	c.Spend("c", 50_000, day.Add(2*time.Hour)) // in flight when it was removed
	c.SetBudgets([]pacing.Budget{b}, day.Add(3*time.Hour))
	if st := state(t, c.Update(day.Add(3*time.Hour)), "c"); st.SpentToday != 950_000 {
		t.Errorf("restored campaign: spent %d, want 950000", st.SpentToday)
	}
	if st := c.Stats(); st.Dropped != 0 {
		t.Errorf("dropped %d", st.Dropped)
	}
	c.Spend("nobody", 1, day)
	c.Traffic("nobody", 1, day)
	if st := c.Stats(); st.Dropped != 2 {
		t.Errorf("dropped %d, want 2", st.Dropped)
	}
}

// TestSpendDuringUpdate: Spend and Traffic from consumer goroutines while Update runs (run with
// -race); nothing is lost.
func TestSpendDuringUpdate(t *testing.T) {
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	c := pacing.NewController(pacing.Config{})
	ids := []string{"a", "b", "c", "d"}
	var bs []pacing.Budget
	for _, id := range ids {
		bs = append(bs, pacing.Budget{CampaignID: id, Daily: 1 << 40, Active: true})
	}
	c.SetBudgets(bs, day)
	const per = 2000
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range per {
				at := day.Add(time.Duration(i) * time.Millisecond)
				c.Spend(ids[(g+i)%len(ids)], 3, at)
				c.Traffic(ids[i%len(ids)], 5, at)
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			c.Update(day.Add(time.Duration(i) * 10 * time.Millisecond))
		}
	})
	wg.Go(func() {
		for range 20 {
			c.SetBudgets(bs, day)
		}
	})
	wg.Wait()
	var total int64
	for _, st := range c.Update(day.Add(3 * time.Second)) {
		total += st.SpentToday
	}
	if total != 4*per*3 {
		t.Errorf("spent %d, want %d", total, 4*per*3)
	}
}

func TestBudgetsFromCampaigns(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, ny)
	cs := []*campaign.Campaign{
		{ID: "a", Budget: campaign.Budget{Daily: 5 * campaign.MicrosPerUnit, Total: 50 * campaign.MicrosPerUnit, Location: ny}, Start: &start},
		{ID: "b", Status: campaign.StatusPaused, Budget: campaign.Budget{Daily: 1}},
	}
	got := pacing.Budgets(cs)
	want := []pacing.Budget{
		{CampaignID: "a", Daily: 5_000_000, Total: 50_000_000, Location: ny, Active: true, Start: start},
		{CampaignID: "b", Daily: 1},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Budgets = %+v, want %+v", got, want)
	}
}

// TestUpdateChunksQuietCampaigns: a step costs what happens, not the number of campaigns: once
// quiet (no event for a few steps), 10,000 campaigns are stepped once a slot of the pacing series
// only (every 300th interval of a 24-hour day), spread evenly, while one with traffic is stepped
// every interval, and a day's end steps everyone.
func TestUpdateChunksQuietCampaigns(t *testing.T) {
	const n = 10_000
	c, now := activeCampaigns(n)
	var dst []pacing.State
	step := func() (states int, busySeen bool) {
		dst = c.UpdateChunks(dst, now, 256, 0, func(chunk []pacing.State) bool {
			if len(chunk) > 256 {
				t.Fatalf("a chunk of %d states", len(chunk))
			}
			for _, st := range chunk {
				busySeen = busySeen || st.CampaignID == "c-00042"
			}
			states += len(chunk)
			return true
		})
		now = now.Add(time.Second)
		return states, busySeen
	}
	// New campaigns are stepped for a few steps (their admission climbs to full); without an
	// event, they are quiet from then on.
	for s := range pacing.BudgetSteps {
		if got, _ := step(); got != n {
			t.Fatalf("step %d after SetBudgets gave %d states, want all %d", s, got, n)
		}
	}
	total, most := 0, 0
	looked0 := pacing.LookedAt(c)
	for s := range 100 {
		c.Traffic("c-00042", 10, now.Add(-time.Second))
		got, busy := step()
		if !busy {
			t.Fatalf("step %d: the campaign with traffic was not stepped", s)
		}
		total += got
		most = max(most, got)
	}
	every := pacing.QuietEvery(c)
	if every != 300 {
		t.Fatalf("a quiet campaign is stepped every %d steps, want 300 (5 minutes of a 24-hour day)", every)
	}
	// The quiet campaigns are not even looked at outside their steps: looking at each of 100,000
	// (a cache miss each) and stepping a twentieth cost 11 ms of CPU a second with nothing happening.
	if looked := int(pacing.LookedAt(c) - looked0); looked > 100*(n/every+10) {
		t.Errorf("100 quiet steps looked at %d campaigns, want about %d (their phase's and the busy one)", looked, 100*(n/every+1))
	}
	// About n/300 quiet campaigns a step, plus the busy one; no step does much more than its share.
	if want := 100 * (n/every + 1); total < want*7/10 || total > want*13/10 {
		t.Errorf("100 quiet steps gave %d states, want about %d", total, want)
	}
	if most > 3*(n/every) {
		t.Errorf("a quiet step gave %d states: not spread (want about %d)", most, n/every)
	}
	// Midnight: every campaign's day ends, and each is stepped at once to start the next.
	now = time.Date(2026, 11, 24, 0, 0, 0, 1, time.UTC)
	if got, _ := step(); got != n {
		t.Errorf("the step at the day's end gave %d states, want all %d", got, n)
	}
}

// TestUpdateChunksBudget: a chunk ends when its time is up, however many states it may hold, and
// the step still covers every campaign. A budget of a nanosecond is up at the first look at the
// clock, so this holds on any machine.
func TestUpdateChunksBudget(t *testing.T) {
	const n = 1_000
	for _, tc := range []struct {
		budget    time.Duration
		wantChunk int // the largest chunk
	}{
		{0, 256},
		{time.Nanosecond, 16},
		{time.Hour, 256},
	} {
		c, now := activeCampaigns(n)
		states, largest := 0, 0
		c.UpdateChunks(nil, now, 256, tc.budget, func(chunk []pacing.State) bool {
			states += len(chunk)
			largest = max(largest, len(chunk))
			return true
		})
		if states != n || largest != tc.wantChunk {
			t.Errorf("budget %v: %d states in chunks of at most %d, want %d in chunks of at most %d", tc.budget, states, largest, n, tc.wantChunk)
		}
	}
}

// A step's cost follows its events, not the number of campaigns: with 10 or 100 times as many
// quiet campaigns, a step looks at their phase's share (a 300th) and the campaigns events spoke of, and the
// states come in the order of Update. A campaign spoken of again is stepped at the next step.
func TestUpdateChunksCostFollowsEvents(t *testing.T) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		c, now := activeCampaigns(n)
		var buf []pacing.State
		for range pacing.QuietAfter + 1 { // no event for more than quietAfter steps: every campaign is quiet
			now = now.Add(time.Second)
			buf = c.UpdateChunks(buf, now, 256, 0, func([]pacing.State) bool { return true })
		}
		looked0 := pacing.LookedAt(c)
		for s := range 40 {
			now = now.Add(time.Second)
			c.Spend("c-00007", 1000, now.Add(-time.Second))
			var ids []string
			buf = c.UpdateChunks(buf, now, 256, 0, func(chunk []pacing.State) bool {
				for _, st := range chunk {
					ids = append(ids, st.CampaignID)
				}
				return true
			})
			if !slices.Contains(ids, "c-00007") || !slices.IsSorted(ids) {
				t.Fatalf("%d campaigns, step %d: states of %v, want the spending campaign's among them, in order", n, s, ids[:min(len(ids), 5)])
			}
		}
		if looked, want := pacing.LookedAt(c)-looked0, int64(40*(n/pacing.QuietEvery(c)+1)); looked > want*13/10+40 {
			t.Errorf("%d campaigns: 40 quiet steps looked at %d campaigns, want about %d", n, looked, want)
		}
	}
}

// A campaign file reloaded with one budget changed steps that campaign at the next step, not all
// of them: at 100,000 campaigns each full step is a second of CPU.
func TestUpdateChunksReloadStepsTheChanged(t *testing.T) {
	const n = 3_000
	c, now := activeCampaigns(n)
	var buf []pacing.State
	step := func() (ids []string) {
		now = now.Add(time.Second)
		buf = c.UpdateChunks(buf, now, 256, 0, func(chunk []pacing.State) bool {
			for _, st := range chunk {
				ids = append(ids, st.CampaignID)
			}
			return true
		})
		return ids
	}
	for range pacing.BudgetSteps {
		step()
	}
	bs := make([]pacing.Budget, n)
	for i := range bs {
		bs[i] = pacing.Budget{CampaignID: fmt.Sprintf("c-%05d", i), Daily: 100_000_000, Active: true}
	}
	bs[1234].Daily = 50_000_000
	c.SetBudgets(bs, now)
	ids := step()
	if !slices.Contains(ids, "c-01234") || len(ids) > 2*n/pacing.QuietEvery(c)+1 {
		t.Errorf("the step after a reload changing c-01234 stepped %d campaigns (c-01234 among them: %v), want it and about %d quiet ones", len(ids), slices.Contains(ids, "c-01234"), n/pacing.QuietEvery(c))
	}
}

// activeCampaigns returns a controller of n active campaigns c-00000… with equal daily budgets,
// set at the returned time (the morning of 2026-11-23).
func activeCampaigns(n int) (*pacing.Controller, time.Time) {
	bs := make([]pacing.Budget, n)
	for i := range bs {
		bs[i] = pacing.Budget{CampaignID: fmt.Sprintf("c-%05d", i), Daily: 100_000_000, Active: true}
	}
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	c := pacing.NewController(pacing.Config{})
	c.SetBudgets(bs, now)
	return c, now
}

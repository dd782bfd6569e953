package pacing

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"rtb/pacing/heaptest"
)

// TestReadModelDayHeapAllocations holds what a day of pacing states leaves in the read model for the
// garbage collector to scan at every cycle. The series grow through the day to 288 points a
// campaign; with a time.Time in each point that was 16 KB of pointer-holding memory a campaign at
// the end of a day (1.6 GB at 100,000 campaigns, marked at every cycle), while the requests wait.
func TestReadModelDayHeapAllocations(t *testing.T) {
	if !heaptest.Alone(t) {
		return
	}
	const n = 2000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("c-%d", i)
	}
	_, s0 := heaptest.Live()
	m := NewReadModel()
	for at := time.Duration(0); at < 24*time.Hour; at += 5 * time.Minute {
		for _, id := range ids {
			m.Apply(rmState(id, rmDay, at))
		}
	}
	_, s1 := heaptest.Live()
	perCampaign := float64(s1-s0) / n
	t.Logf("a day of states: %.0f scannable bytes a campaign in the read model", perCampaign)
	if perCampaign > 1024 {
		t.Errorf("a day of states leaves %.0f scannable bytes a campaign in the read model, want at most 1 KiB", perCampaign)
	}
	if got := len(m.Snapshot(rmDay.Add(24*time.Hour - time.Second)).Campaigns[0].Series); got != SeriesPoints {
		t.Errorf("series of %d points, want %d", got, SeriesPoints)
	}
	runtime.KeepAlive(m)
}

// The series' times are shown in the zone the states carry, as they were when points held a time.Time.
func TestReadModelSeriesKeepsTheZone(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 22, 0, 0, 0, 0, ny)
	m := NewReadModel()
	m.Apply(rmState("c-1", day, time.Hour))
	m.Apply(rmState("c-1", day, 2*time.Hour))
	series := m.Snapshot(day.Add(3 * time.Hour)).Campaigns[0].Series
	if len(series) != 2 {
		t.Fatalf("%d points, want 2", len(series))
	}
	for i, want := range []time.Time{day.Add(time.Hour), day.Add(2 * time.Hour)} {
		if got := series[i].At; !got.Equal(want) || got.Location() != ny {
			t.Errorf("point %d at %v, want %v", i, got, want)
		}
	}
}

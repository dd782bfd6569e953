package pacing

import (
	"testing"
	"time"
)

func TestStateWireRoundTrip(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	s := State{CampaignID: "c-1", Day: time.Date(2026, 11, 23, 0, 0, 0, 0, ny), UpdatedAt: time.Date(2026, 11, 23, 15, 4, 5, 6e6, time.UTC),
		ValidUntil: time.Date(2026, 11, 23, 15, 4, 7, 0, time.UTC), Throttle: 0.25, Multiplier: 1.1, DailyBudget: 500_000_000,
		SpentToday: 123_456_789, TargetToday: 120_000_000, ProjectedToday: 499_000_000, SpentTotal: 9_000_000_000, TotalBudget: 15_000_000_000, Status: StatusPacing}
	got, err := DecodeState(EncodeState(s))
	if err != nil {
		t.Fatal(err)
	}
	_, off := got.Day.Zone()
	if !got.Day.Equal(s.Day) || off != -5*3600 || got.Throttle != s.Throttle || got.SpentToday != s.SpentToday ||
		got.SpentTotal != s.SpentTotal || got.Status != s.Status || !got.ValidUntil.Equal(s.ValidUntil) {
		t.Errorf("round trip: %+v\nwant %+v", got, s)
	}
	for _, bad := range []string{`{}`, `{"v":2,"campaign_id":"c"}`, `{"v":1}`, `nope`} {
		if _, err := DecodeState([]byte(bad)); err == nil {
			t.Errorf("DecodeState(%s) accepted", bad)
		}
	}
}

package campaign

import (
	"testing"
	"time"
)

// compiledDaypart builds a Daypart the way loading a file does.
func compiledDaypart(t *testing.T, tz string, windows ...DayWindow) *Daypart {
	t.Helper()
	d := &Daypart{TimeZone: tz, Windows: windows}
	ps := &problems{}
	(&validator{ps: ps}).daypart("dayparts", d)
	if err := ps.err("test"); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDaypartActive(t *testing.T) {
	ny := compiledDaypart(t, "America/New_York",
		DayWindow{Days: []string{"mon", "tue", "wed", "thu", "fri"}, From: 9, To: 17},
		DayWindow{Days: []string{"SAT"}, From: 23, To: 24}, // up to midnight
	)
	skipped := compiledDaypart(t, "America/New_York", DayWindow{Days: []string{"sun"}, From: 2, To: 3})
	repeated := compiledDaypart(t, "America/New_York", DayWindow{Days: []string{"sun"}, From: 1, To: 2})
	everyDay := compiledDaypart(t, "Asia/Kolkata", DayWindow{From: 0, To: 1}) // UTC+5:30, no DST
	tokyo, _ := time.LoadLocation("Asia/Tokyo")

	// 2026: DST in New York starts Sunday 8 March 02:00 EST and ends Sunday 1 November 02:00 EDT.
	tests := []struct {
		name string
		d    *Daypart
		at   string // RFC 3339
		want bool
	}{
		{"friday before opening, EST", ny, "2026-03-06T13:59:59Z", false}, // 08:59 EST
		{"friday opening, EST", ny, "2026-03-06T14:00:00Z", true},         // 09:00 EST
		{"monday opening, EDT", ny, "2026-03-09T13:00:00Z", true},         // 09:00 EDT
		{"monday 08:59 EDT", ny, "2026-03-09T12:59:00Z", false},           // UTC hour 12 = 08 EDT
		{"monday last active minute", ny, "2026-03-09T20:59:59Z", true},   // 16:59 EDT
		{"monday closing is exclusive", ny, "2026-03-09T21:00:00Z", false},
		{"weekday window not on saturday", ny, "2026-03-07T15:00:00Z", false},
		{"same instant seen from Tokyo", ny, "2026-03-10T00:30:00+09:00", true}, // Mon 15:30 UTC = 11:30 EDT
		{"spring forward: 01:59 EST is not hour 2", skipped, "2026-03-08T06:59:00Z", false},
		{"spring forward: 03:00 EDT follows, hour 2 never happens", skipped, "2026-03-08T07:00:00Z", false},
		{"spring forward: a normal sunday has hour 2", skipped, "2026-03-15T06:30:00Z", true}, // 02:30 EDT
		{"fall back: 00:59 EDT", repeated, "2026-11-01T04:59:00Z", false},
		{"fall back: first 01:30 (EDT)", repeated, "2026-11-01T05:30:00Z", true},
		{"fall back: second 01:30 (EST)", repeated, "2026-11-01T06:30:00Z", true},
		{"fall back: 02:30 EST", repeated, "2026-11-01T07:30:00Z", false},
		{"saturday 23:59 local is sunday in UTC", ny, "2026-03-08T04:59:00Z", true},
		{"sunday 00:00 local", ny, "2026-03-08T05:00:00Z", false},
		{"every day, half-hour zone, inside", everyDay, "2026-07-01T19:00:00Z", true}, // 00:30 IST
		{"every day, half-hour zone, before", everyDay, "2026-07-01T18:29:00Z", false},
		{"every day, half-hour zone, after", everyDay, "2026-07-01T19:30:00Z", false}, // 01:00 IST
		{"nil daypart is always active", nil, "2026-07-01T12:00:00Z", true},
	}
	for _, tt := range tests {
		at, err := time.Parse(time.RFC3339, tt.at)
		if err != nil {
			t.Fatal(err)
		}
		if got := tt.d.Active(at); got != tt.want {
			t.Errorf("%s: Active(%s) = %v, want %v (local %s)", tt.name, tt.at, got, tt.want, localOf(tt.d, at))
		}
		if got := tt.d.Active(at.In(tokyo)); got != tt.want {
			t.Errorf("%s: the zone of the argument must not matter", tt.name)
		}
	}
}

func localOf(d *Daypart, t time.Time) string {
	if d == nil || d.Location == nil {
		return "-"
	}
	return t.In(d.Location).Format("Mon 15:04 MST")
}

func TestDaypartMask(t *testing.T) {
	d := compiledDaypart(t, "UTC",
		DayWindow{Days: []string{"mon"}, From: 0, To: 24},
		DayWindow{Days: []string{"wed", "mon"}, From: 3, To: 5},
		DayWindow{From: 22, To: 23})
	want := [7]uint32{
		time.Sunday:    1 << 22,
		time.Monday:    1<<24 - 1,
		time.Tuesday:   1 << 22,
		time.Wednesday: 1<<3 | 1<<4 | 1<<22,
		time.Thursday:  1 << 22,
		time.Friday:    1 << 22,
		time.Saturday:  1 << 22,
	}
	if d.Mask != want {
		t.Errorf("Mask = %v, want %v", d.Mask, want)
	}
	// A Daypart built in code without a Location reads the clock in UTC rather than panicking.
	bare := &Daypart{Mask: want}
	if !bare.Active(time.Date(2026, 3, 9, 23, 0, 0, 0, time.UTC)) { // Monday
		t.Error("zero Location: want UTC")
	}
}

func TestDaypartActiveDoesNotAllocate(t *testing.T) {
	d := compiledDaypart(t, "America/New_York", DayWindow{From: 9, To: 17})
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { d.Active(now) }); n != 0 {
		t.Errorf("Active allocates %v times per call", n)
	}
}

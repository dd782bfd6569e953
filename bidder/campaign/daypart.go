package campaign

import "time"

// Daypart restricts bidding to hours of the week in one time zone.
type Daypart struct {
	TimeZone string      `yaml:"timezone" json:"timezone"` // IANA name
	Windows  []DayWindow `yaml:"windows" json:"windows"`

	// Location is TimeZone loaded.
	Location *time.Location `yaml:"-" json:"-"`
	// Mask is the compiled windows: bit h of Mask[weekday] is set when the hour h (local wall clock,
	// 0..23) of that weekday (time.Weekday, Sunday = 0) is active. Compiling once keeps Active free of
	// loops and allocation.
	Mask [7]uint32 `yaml:"-" json:"-"`
}

// DayWindow is a range of hours on some days of the week.
type DayWindow struct {
	Days []string `yaml:"days,omitempty" json:"days,omitempty"` // "mon".."sun"; empty = every day
	From int      `yaml:"from" json:"from"`                     // first active hour, 0..23
	To   int      `yaml:"to" json:"to"`                         // first inactive hour, From+1..24
}

// Active reports whether t falls in an active hour. A nil Daypart is always active. Hours are wall-clock
// hours in the Daypart's zone, so on a daylight-saving change the repeated hour is active twice and
// the skipped hour not at all, as a campaign manager reading a local clock would expect.
func (d *Daypart) Active(t time.Time) bool {
	if d == nil {
		return true
	}
	loc := d.Location
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	return d.Mask[t.Weekday()]&(1<<uint(t.Hour())) != 0
}

// weekdays maps the accepted day names to time.Weekday.
var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// compile fills Mask from Windows; the windows must be valid.
func (d *Daypart) compile() {
	d.Mask = [7]uint32{}
	for _, w := range d.Windows {
		var hours uint32
		for h := w.From; h < w.To; h++ {
			hours |= 1 << uint(h)
		}
		if len(w.Days) == 0 {
			for i := range d.Mask {
				d.Mask[i] |= hours
			}
			continue
		}
		for _, day := range w.Days {
			d.Mask[weekdays[day]] |= hours
		}
	}
}

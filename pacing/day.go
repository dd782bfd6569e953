package pacing

import "time"

// DayOf returns the day [start, end) that t falls in for a campaign in loc: the calendar day in loc
// when DayLength is 24h (23 or 25 hours long across DST changes), else the DayLength window from
// Epoch that contains t (loc is then ignored).
func (c *Controller) DayOf(t time.Time, loc *time.Location) (start, end time.Time) {
	if loc == nil {
		loc = time.UTC
	}
	s, e := c.dayOf(t.UnixNano(), loc)
	return time.Unix(0, s).In(loc), time.Unix(0, e).In(loc)
}

// dayOf is DayOf in unix nanoseconds.
func (c *Controller) dayOf(t int64, loc *time.Location) (start, end int64) {
	if !c.calendar {
		i := floorDiv(t-c.epoch, c.dayLen)
		start = c.epoch + i*c.dayLen
		return start, start + c.dayLen
	}
	lt := time.Unix(0, t).In(loc)
	y, m, d := lt.Date()
	// time.Date normalises a midnight that a DST change skips to the first instant that exists.
	s := time.Date(y, m, d, 0, 0, 0, 0, loc)
	e := time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	start, end = s.UnixNano(), e.UnixNano()
	if end <= start { // cannot happen with real zone data; keep the arithmetic safe if it does
		end = start + int64(24*time.Hour)
	}
	return start, end
}

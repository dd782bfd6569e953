package loadtest

import (
	"fmt"
	"time"
)

// DiurnalProfile is the traffic of each hour of the (compressed) day as a share of the evening
// peak, which --rate sets. The shape is the usual one of consumer display traffic in one time zone:
// lowest around 04:00 (15% of peak), a morning rise, a flat afternoon, the peak at 20:00-21:00 and
// a fall towards midnight. Its mean is 0.57: a day sends 57% of what the peak rate would.
var DiurnalProfile = [24]float64{
	0.42, 0.30, 0.22, 0.17, 0.15, 0.17, // 00-05
	0.25, 0.37, 0.48, 0.56, 0.61, 0.65, // 06-11
	0.70, 0.68, 0.66, 0.66, 0.70, 0.77, // 12-17
	0.86, 0.95, 1.00, 0.95, 0.80, 0.60, // 18-23
}

// dayOf is the pacing day containing t: days are consecutive windows of length dayLen from the Unix
// epoch, as pacing.Controller aligns them with its default Epoch (for dayLen 24h the bidder uses
// calendar days in each campaign's zone; the UTC day is what this can align to).
func dayOf(t time.Time, dayLen time.Duration) (start, end time.Time) {
	ns, d := t.UnixNano(), int64(dayLen)
	i := ns / d
	if ns%d < 0 { // floor, not truncation, before the epoch
		i--
	}
	start = time.Unix(0, i*d)
	return start, start.Add(dayLen)
}

// planDay decides which day a --day-length run covers. Without startNow it is the next whole day
// (the current one if now is exactly its start): the run waits for it. With startNow it is the rest
// of the current day, offset being how much of it has gone: a quick look that does not wait, at the
// price of a partial day (delivery is then against a budget the pacer began spending earlier).
func planDay(now time.Time, dayLen time.Duration, startNow bool) (start time.Time, offset time.Duration) {
	s, e := dayOf(now, dayLen)
	switch {
	case startNow:
		return s, now.Sub(s)
	case now.Equal(s):
		return s, 0
	default:
		return e, 0
	}
}

// hourOf is the hour (0-23) of the compressed day at elapsed time t since its start.
func hourOf(t, dayLen time.Duration) int {
	h := int(int64(t) * 24 / int64(dayLen))
	return min(max(h, 0), 23)
}

// clock formats elapsed time t of a compressed day as the "HH:MM" it stands for.
func clock(t, dayLen time.Duration) string {
	m := int64(t) * 24 * 60 / int64(dayLen)
	m = min(max(m, 0), 24*60)
	return fmt.Sprintf("%02d:%02d", m/60, m%60)
}

// profileShare is the integral of the profile over [from, to) of a day of dayLen, as a share of
// what the peak rate would send over the whole day: a request schedule over that span should hold
// rate × dayLen × profileShare requests.
func profileShare(p *[24]float64, from, to, dayLen time.Duration) float64 {
	hour := float64(dayLen) / 24
	var s float64
	for h := range 24 {
		a, b := float64(h)*hour, float64(h+1)*hour
		lo, hi := max(a, float64(from)), min(b, float64(to))
		if hi > lo {
			s += p[h] * (hi - lo)
		}
	}
	return s / float64(dayLen)
}

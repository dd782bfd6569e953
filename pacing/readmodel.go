package pacing

// The read model is what campaign managers see of pacing: the latest State of each campaign and the
// day's history of spend against target, for /api/pacing, /dashboard and the pacing metrics. It is
// fed the same States the bidders act on (straight from the Controller in the pacer, from the
// rtb.pacing topic elsewhere), so what a person sees is what the bidders do.

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"rtb/events"
)

// SeriesPoints is how many points a campaign's series holds at most: one per 1/288 of the day
// (5 minutes of a 24-hour day). That resolves the chart's curve at any screen width a person uses
// while keeping a campaign's JSON to a few kilobytes, whatever the control interval.
const SeriesPoints = 288

// staleGrace is how far past its ValidUntil a State may be before the read model calls it stale:
// a hop through the rtb.pacing topic may add a little delay, and a status that flickers on every
// small delay would teach people to ignore it.
const staleGrace = 5 * time.Second

// ReadModel keeps, per campaign, the latest pacing State and a bounded series of the day's spend
// against target. It is safe for concurrent use: Apply may run on the controller's ticker or a
// consumer goroutine while handlers and scrapes read.
type ReadModel struct {
	mu     sync.RWMutex
	dayLen time.Duration
	names  map[string]string // nil until SetCampaigns: every campaign is accepted
	camps  map[string]*tracked

	// overspend is rtb_pacing_overspend_micros_total (see Apply).
	overspend int64

	// hb is the latest heartbeat of each partition (of hb[i].Partitions, all alike; see Heartbeat).
	hb []Heartbeat

	now       func() time.Time // the clock of handlers and scrapes; tests replace it
	collector *collector
}

// tracked is one campaign in the read model.
type tracked struct {
	state  State
	dayEnd time.Time
	series []point // slots strictly increasing, so at most SeriesPoints
}

// point holds no pointer (its time is Unix nanoseconds, shown in the zone of the campaign's latest
// State): a day's series is 288 points a campaign, and with a time.Time each the collector had one
// more pointer to follow per point, 28.8 million at 100,000 campaigns by the end of a day.
type point struct {
	at            int64
	spent, target int64
	slot          int
}

// NewReadModel returns an empty read model for 24-hour calendar days (see SetDayLength).
func NewReadModel() *ReadModel {
	m := &ReadModel{
		dayLen: 24 * time.Hour,
		camps:  make(map[string]*tracked),
		now:    time.Now,
	}
	m.collector = newCollector(m)
	return m
}

// SetDayLength tells the read model the controller's Config.DayLength, which a State does not
// carry: with 24h (the default) a day ends at the next midnight of the zone its State.Day is in,
// otherwise DayLength after it. It places the series' points and the day's end; call it before the
// first Apply (`rtb serve --day-length 10m` needs it, or the chart squeezes the day into its start).
func (m *ReadModel) SetDayLength(d time.Duration) {
	if d <= 0 {
		d = 24 * time.Hour
	}
	m.mu.Lock()
	m.dayLen = d
	m.mu.Unlock()
}

// SetCampaigns gives the display names of the campaigns in force, by id, and makes them the only
// campaigns the model shows: campaigns not listed are removed (from the API and, at the next
// scrape, from the metrics), and States for them are ignored from then on, so that a deleted
// campaign's last state replayed from the compacted rtb.pacing topic does not bring it back. A
// listed campaign appears at its first State. Until SetCampaigns is first called, every State is
// accepted and shown under its id. An empty name shows the id.
func (m *ReadModel) SetCampaigns(names map[string]string) {
	cp := make(map[string]string, len(names))
	for id, n := range names {
		cp[id] = n
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.names = cp
	for id := range m.camps {
		if _, ok := cp[id]; !ok {
			delete(m.camps, id)
		}
	}
}

// Apply records a campaign's State.
//
// States older than the one held (by UpdatedAt, or of an earlier day) are ignored: a topic replay
// or a redelivery must not move the model back. A State of a later day starts a new series.
//
// Apply also counts rtb_pacing_overspend_micros_total: the spend that arrives while the campaign's
// day is already over its budget. With b = DailyBudget (already the smaller of the daily budget and
// what remained of the lifetime total, so both limits are covered), s = SpentToday and s0 the
// SpentToday of the previous State of the same day (0 for the first State of a day, including the
// first State this process sees), the counter grows by min(s − s0, s − b) when that is positive.
// Over a day whose budget does not change, the day adds exactly its final excess max(0, s − b),
// counted as it happens, so the counter is monotonic and per day. A budget lowered below what was
// already spent adds nothing by itself (that spend was within budget when it was made); spend that
// arrives after it does. A process that starts on a day already overspent counts that day's excess
// once: better an alert repeated after a restart than an overspend missed.
func (m *ReadModel) Apply(s State) {
	if s.CampaignID == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.names != nil {
		if _, ok := m.names[s.CampaignID]; !ok {
			return
		}
	}
	t := m.camps[s.CampaignID]
	var prevSpent int64
	switch {
	case t == nil:
		t = &tracked{}
		m.camps[s.CampaignID] = t
	case s.UpdatedAt.Before(t.state.UpdatedAt) || s.Day.Before(t.state.Day):
		return
	case s.Day.Equal(t.state.Day):
		prevSpent = t.state.SpentToday
	default: // a new day
		t.series = t.series[:0]
	}
	if add := min(s.SpentToday-prevSpent, s.SpentToday-s.DailyBudget); add > 0 {
		m.overspend += add
	}

	t.dayEnd = m.dayEnd(s.Day)
	slot := slotIn(s.UpdatedAt, s.Day, t.dayEnd)
	p := point{slot: slot, at: s.UpdatedAt.UnixNano(), spent: s.SpentToday, target: s.TargetToday}
	switch n := len(t.series); {
	case n > 0 && t.series[n-1].slot == slot:
		t.series[n-1] = p // the latest State of each slot
	case n > 0 && t.series[n-1].slot > slot:
		t.series = append(t.series[:0], p) // the day length changed under the series: start over
	default:
		if n == cap(t.series) {
			// Grown as append would, but never past a day's points: append's doubling would leave
			// a full day's series with room for 512, 7 KB a campaign never used.
			t.series = slices.Grow(t.series, max(min(max(2*n, 8), SeriesPoints)-n, 1))
		}
		t.series = append(t.series, p)
	}
	t.state = s
}

// dayEnd is the end of the day starting at start; m.mu is held.
func (m *ReadModel) dayEnd(start time.Time) time.Time {
	if m.dayLen == 24*time.Hour {
		y, mo, d := start.Date()
		if end := time.Date(y, mo, d+1, 0, 0, 0, 0, start.Location()); end.After(start) {
			return end
		}
	}
	return start.Add(m.dayLen)
}

// slotIn is the series slot of t in the day [start, end).
func slotIn(t, start, end time.Time) int {
	span := end.Sub(start)
	if span <= 0 {
		return 0
	}
	i := int(float64(t.Sub(start)) / float64(span) * SeriesPoints)
	return min(max(i, 0), SeriesPoints-1)
}

// Snapshot is the read model at one time: the body of GET /api/pacing (see APIHandler for the
// fields' meaning).
type Snapshot struct {
	GeneratedAt time.Time        `json:"generated_at"`
	Campaigns   []CampaignPacing `json:"campaigns"`
}

// CampaignPacing is one campaign's pacing as people see it. Money is integer micros (the `_micros`
// fields, exact, for programs) and the same amount as a decimal string of currency units (for
// people and spreadsheets).
type CampaignPacing struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Status     string    `json:"status"`
	Stale      bool      `json:"stale"`
	DayStart   time.Time `json:"day_start"`
	DayEnd     time.Time `json:"day_end"`
	UpdatedAt  time.Time `json:"updated_at"`
	ValidUntil time.Time `json:"valid_until"`
	AgeSeconds float64   `json:"age_seconds"`

	DailyBudgetMicros    int64   `json:"daily_budget_micros"`
	DailyBudget          string  `json:"daily_budget"`
	SpentTodayMicros     int64   `json:"spent_today_micros"`
	SpentToday           string  `json:"spent_today"`
	TargetTodayMicros    int64   `json:"target_today_micros"`
	TargetToday          string  `json:"target_today"`
	ProjectedTodayMicros int64   `json:"projected_today_micros"`
	ProjectedToday       string  `json:"projected_today"`
	SpentTotalMicros     int64   `json:"spent_total_micros"`
	SpentTotal           string  `json:"spent_total"`
	TotalBudgetMicros    *int64  `json:"total_budget_micros"` // null: no lifetime budget
	TotalBudget          *string `json:"total_budget"`

	Pace          *float64 `json:"pace"` // spent / target; null while the target is 0
	Throttle      float64  `json:"throttle"`
	BidMultiplier float64  `json:"bid_multiplier"`

	Series []SeriesPoint `json:"series,omitempty"`
}

// SeriesPoint is the campaign's spend and target at one time of the day, in micros.
type SeriesPoint struct {
	At           time.Time `json:"at"`
	SpentMicros  int64     `json:"spent_micros"`
	TargetMicros int64     `json:"target_micros"`
}

// Heartbeat records a pacer's heartbeat: the states of the campaigns of its partition stay current
// until its ValidUntil, however old they are (a pacer re-sends only states that change). A
// heartbeat of another partition count than the ones held replaces them all.
func (m *ReadModel) Heartbeat(h Heartbeat) {
	if h.Partitions <= 0 || h.Partition < 0 || h.Partition >= h.Partitions {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.hb) != h.Partitions {
		m.hb = make([]Heartbeat, h.Partitions)
	}
	if h.ValidUntil.After(m.hb[h.Partition].ValidUntil) {
		m.hb[h.Partition] = h
	}
}

// confirmed is when the campaign's state was last computed or vouched for by its pacer's
// heartbeat, and until when it holds; m.mu is held.
func (m *ReadModel) confirmed(id string, t *tracked) (at, until time.Time) {
	s := &t.state
	at, until = s.UpdatedAt, validUntil(*s)
	if len(m.hb) == 0 || s.UpdatedAt.IsZero() {
		return at, until
	}
	h := m.hb[events.PartitionOf(id, len(m.hb))]
	if h.ValidUntil.After(until) {
		until = h.ValidUntil
	}
	if h.UpdatedAt.After(at) {
		at = h.UpdatedAt
	}
	return at, until
}

// Snapshot returns the campaigns, sorted by id, as of now (which sets ages and staleness).
func (m *ReadModel) Snapshot(now time.Time) Snapshot {
	return m.snapshot(now, nil, true)
}

// snapshot is Snapshot restricted to the ids in only (all if nil), with or without the series.
func (m *ReadModel) snapshot(now time.Time, only map[string]bool, series bool) Snapshot {
	m.mu.RLock()
	defer m.mu.RUnlock()
	snap := Snapshot{GeneratedAt: now, Campaigns: make([]CampaignPacing, 0, len(m.camps))}
	for id, t := range m.camps {
		if only != nil && !only[id] {
			continue
		}
		snap.Campaigns = append(snap.Campaigns, m.view(id, t, now, series))
	}
	slices.SortFunc(snap.Campaigns, func(a, b CampaignPacing) int { return strings.Compare(a.ID, b.ID) })
	return snap
}

// view renders one campaign; m.mu is held.
func (m *ReadModel) view(id string, t *tracked, now time.Time, series bool) CampaignPacing {
	s := t.state
	name := m.names[id]
	if name == "" {
		name = id
	}
	at, until := m.confirmed(id, t)
	v := CampaignPacing{
		ID:                   id,
		Name:                 name,
		Status:               s.Status,
		Stale:                now.After(until.Add(staleGrace)),
		DayStart:             s.Day,
		DayEnd:               t.dayEnd,
		UpdatedAt:            s.UpdatedAt,
		ValidUntil:           until,
		AgeSeconds:           max(now.Sub(at).Seconds(), 0),
		DailyBudgetMicros:    s.DailyBudget,
		DailyBudget:          FormatMicros(s.DailyBudget),
		SpentTodayMicros:     s.SpentToday,
		SpentToday:           FormatMicros(s.SpentToday),
		TargetTodayMicros:    s.TargetToday,
		TargetToday:          FormatMicros(s.TargetToday),
		ProjectedTodayMicros: s.ProjectedToday,
		ProjectedToday:       FormatMicros(s.ProjectedToday),
		SpentTotalMicros:     s.SpentTotal,
		SpentTotal:           FormatMicros(s.SpentTotal),
		Throttle:             finite(s.Throttle),
		BidMultiplier:        finite(s.Multiplier),
	}
	if s.TotalBudget > 0 {
		total, text := s.TotalBudget, FormatMicros(s.TotalBudget)
		v.TotalBudgetMicros, v.TotalBudget = &total, &text
	}
	if s.TargetToday > 0 {
		pace := float64(s.SpentToday) / float64(s.TargetToday)
		v.Pace = &pace
	}
	if series {
		v.Series = make([]SeriesPoint, len(t.series))
		loc := t.state.UpdatedAt.Location()
		for i, p := range t.series {
			v.Series[i] = SeriesPoint{At: time.Unix(0, p.at).In(loc), SpentMicros: p.spent, TargetMicros: p.target}
		}
	}
	return v
}

// validUntil is s.ValidUntil, or, for a State that lacks it (a feed that does not carry it), the
// default StateDelay + Interval after UpdatedAt.
func validUntil(s State) time.Time {
	if s.ValidUntil.IsZero() {
		return s.UpdatedAt.Add(2 * time.Second)
	}
	return s.ValidUntil
}

// finite keeps a float that JSON cannot carry (NaN, ±Inf, from a corrupt State) out of the answer.
func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// FormatMicros writes micros as an exact decimal amount of currency units with at least two
// decimals: 1_234_500_000 → "1234.50", 30_000 → "0.03", 1_234_567 → "1.234567".
func FormatMicros(micros int64) string {
	neg := micros < 0
	u := uint64(micros)
	if neg {
		u = -u // two's complement: also right for math.MinInt64
	}
	frac := strconv.FormatUint(u%1_000_000+1_000_000, 10)[1:] // six digits
	frac = strings.TrimRight(frac, "0")
	for len(frac) < 2 {
		frac += "0"
	}
	s := strconv.FormatUint(u/1_000_000, 10) + "." + frac
	if neg {
		s = "-" + s
	}
	return s
}

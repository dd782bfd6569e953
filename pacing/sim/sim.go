// Package sim is a market simulator for the pacing controller: it plays the bidders, the exchanges
// and the notice pipeline around a pacing.Controller, one control interval at a time, so that whole
// (compressed) days of traffic can be run in milliseconds and their delivery measured.
//
// Each interval, for each campaign and each bidder, it draws the bid opportunities the bidder sees
// (Poisson, following a daily traffic shape), admits each with the throttle of the pacing state the
// bidder holds (which is Config.Lag intervals old), wins each admitted auction with a probability
// that grows with the bid multiplier, and pays a price around the campaign's mean. The spend is
// reported to the controller through Spend with its event time, after a uniform random delay of up
// to Config.MaxDelay; the opportunities through Traffic at the end of the interval. Everything is
// drawn from one seeded source: the same Config and campaigns give the same run.
//
// It also records the truth the controller never sees directly: spend by event time per campaign,
// day and hour, and when each day's budget ran out.
package sim

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"rtb/pacing"
)

// Campaign is a simulated campaign: its budget and the market it meets.
type Campaign struct {
	ID       string
	Daily    int64 // micros
	Total    int64 // micros; 0 = unlimited
	Location *time.Location
	Paused   bool
	// Opportunities is the mean number of eligible bid opportunities per control interval, over all
	// bidders together, at traffic shape 1 (the day's mean).
	Opportunities float64
	WinRate       float64 // probability that an admitted bid wins, at multiplier 1
	Price         int64   // mean price of a won impression at multiplier 1, micros
}

// FullSpendPerDay is what the campaign would spend in a day admitted to every auction at multiplier
// 1, given the number of intervals in a day: its supply against its budget.
func (c Campaign) FullSpendPerDay(intervals float64) float64 {
	return c.Opportunities * intervals * c.WinRate * float64(c.Price)
}

// Config sets up a simulation.
type Config struct {
	Pacing   pacing.Config
	Start    time.Time     // time of the first step; should be a day boundary
	Bidders  int           // default 3
	Lag      int           // intervals by which the bidders' pacing state is late; default 1
	MaxDelay time.Duration // spend is reported up to this late; default Pacing.NoticeDelay, or 1s
	// Shape is the traffic level at day fraction x in [0, 1), relative to the day's mean; default
	// DailyShape.
	Shape     func(x float64) float64
	Unpaced   bool // bidders ignore the throttle: admit everything until the day's budget is reported spent
	NoTraffic bool // never call Traffic (pacing from spend alone)
	Seed      uint64
	Record    bool // keep every Spend and Traffic call, for Log (replay after a restart)
}

// Event is one call the simulator made to the controller.
type Event struct {
	Spend      bool // else Traffic
	CampaignID string
	Micros     int64
	N          int
	At         time.Time
}

// DayResult is the truth about one campaign's day.
type DayResult struct {
	Day     time.Time
	Length  time.Duration
	Budget  int64 // the day's budget as the controller last reported it
	Spent   int64 // spend with event times in the day
	Hourly  [24]int64
	Traffic [24]int64 // opportunities seen by hour
	// Target is the controller's target curve at hour boundaries (Target[24] is the budget).
	Target [25]int64
	// OutAt is when spend first reached 99% of Budget, from the day's start; -1 if it never did.
	OutAt time.Duration
	Final pacing.State // the last state of the day

	targetSet [25]bool
	perStep   []int64
	step      time.Duration
}

// Delivered is Spent / Budget.
func (d DayResult) Delivered() float64 {
	if d.Budget <= 0 {
		return 0
	}
	return float64(d.Spent) / float64(d.Budget)
}

// HourlyTarget is the target spend of hour h.
func (d DayResult) HourlyTarget(h int) int64 { return d.Target[h+1] - d.Target[h] }

// MaxHourlyDeviation is the largest |spend − target| / target over the hours from `from` on with a
// positive target.
func (d DayResult) MaxHourlyDeviation(from int) float64 {
	worst := 0.0
	for h := from; h < 24; h++ {
		if t := d.HourlyTarget(h); t > 0 {
			worst = max(worst, math.Abs(float64(d.Hourly[h]-t))/float64(t))
		}
	}
	return worst
}

type notice struct {
	arrival time.Time
	seq     int
	id      string
	micros  int64
	at      time.Time
}

type campaignRun struct {
	Campaign
	traffic []int // per bidder, opportunities of the interval just simulated
	days    map[int64]*DayResult
	order   []int64
}

// Sim runs a simulation.
type Sim struct {
	cfg     Config
	ctl     *pacing.Controller
	rng     *rand.Rand
	start   time.Time
	now     time.Time
	steps   int
	iv      time.Duration
	camps   []*campaignRun
	byID    map[string]*campaignRun
	history [][]pacing.State // the states of the last Lag+1 steps, newest last
	pending map[int][]notice // by the step that delivers them
	seq     int
	log     []Event
}

// New starts a simulation of the campaigns with a fresh controller.
func New(cfg Config, campaigns []Campaign) *Sim {
	if cfg.Bidders <= 0 {
		cfg.Bidders = 3
	}
	if cfg.Lag <= 0 {
		cfg.Lag = 1
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = cfg.Pacing.NoticeDelay
		if cfg.MaxDelay <= 0 {
			cfg.MaxDelay = time.Second
		}
	}
	if cfg.Shape == nil {
		cfg.Shape = DailyShape
	}
	ctl := pacing.NewController(cfg.Pacing)
	s := &Sim{
		cfg:     cfg,
		ctl:     ctl,
		rng:     rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		start:   cfg.Start,
		now:     cfg.Start,
		iv:      ctl.Config().Interval,
		byID:    map[string]*campaignRun{},
		pending: map[int][]notice{},
	}
	s.SetCampaigns(campaigns)
	return s
}

// Controller returns the controller being driven.
func (s *Sim) Controller() *pacing.Controller { return s.ctl }

// SetController replaces the controller, as a restarted pacer would be; the bidders keep acting on
// the last states they received until the new one publishes.
func (s *Sim) SetController(ctl *pacing.Controller) { s.ctl = ctl }

// Now is the time of the next step.
func (s *Sim) Now() time.Time { return s.now }

// Log returns the Spend and Traffic calls made so far (Config.Record).
func (s *Sim) Log() []Event { return s.log }

// Budgets returns the campaigns' budgets as the controller is given them.
func (s *Sim) Budgets() []pacing.Budget {
	bs := make([]pacing.Budget, 0, len(s.camps))
	for _, c := range s.camps {
		bs = append(bs, pacing.Budget{CampaignID: c.ID, Daily: c.Daily, Total: c.Total, Location: c.Location, Active: !c.Paused})
	}
	return bs
}

// SetCampaigns replaces the campaigns (budgets edited, paused, added) and tells the controller.
func (s *Sim) SetCampaigns(cs []Campaign) {
	camps := make([]*campaignRun, 0, len(cs))
	for _, c := range cs {
		r := s.byID[c.ID]
		if r == nil {
			r = &campaignRun{traffic: make([]int, s.cfg.Bidders), days: map[int64]*DayResult{}}
			s.byID[c.ID] = r
		}
		r.Campaign = c
		camps = append(camps, r)
	}
	slices.SortFunc(camps, func(a, b *campaignRun) int { return strings.Compare(a.ID, b.ID) })
	s.camps = camps
	s.ctl.SetBudgets(s.Budgets(), s.now)
}

// Run runs steps until d has passed.
func (s *Sim) Run(d time.Duration) {
	for end := s.now.Add(d); s.now.Before(end); {
		s.Step()
	}
}

// States returns the states of the last step.
func (s *Sim) States() []pacing.State {
	if len(s.history) == 0 {
		return nil
	}
	return s.history[len(s.history)-1]
}

// Step runs one control interval: deliver the notices that arrived, report the traffic of the
// interval that ended, run the controller, then let the bidders act for one interval on the states
// they hold.
func (s *Sim) Step() {
	now := s.now
	due := s.pending[s.steps]
	delete(s.pending, s.steps)
	slices.SortFunc(due, func(a, b notice) int {
		if c := a.arrival.Compare(b.arrival); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
	for _, n := range due {
		s.ctl.Spend(n.id, n.micros, n.at)
		if s.cfg.Record {
			s.log = append(s.log, Event{Spend: true, CampaignID: n.id, Micros: n.micros, At: n.at})
		}
	}
	if !s.cfg.NoTraffic && s.steps > 0 {
		at := now.Add(-s.iv)
		for _, c := range s.camps {
			for b, n := range c.traffic {
				if n > 0 && !c.Paused {
					s.ctl.Traffic(c.ID, n, at)
					if s.cfg.Record {
						s.log = append(s.log, Event{CampaignID: c.ID, N: n, At: at})
					}
				}
				c.traffic[b] = 0
			}
		}
	}

	states := s.ctl.Update(now)
	s.history = append(s.history, states)
	if len(s.history) > s.cfg.Lag+1 {
		s.history = s.history[1:]
	}
	for _, st := range states {
		if c := s.byID[st.CampaignID]; c != nil {
			s.recordState(c, st, now)
		}
	}

	var held map[string]pacing.State
	if len(s.history) > s.cfg.Lag {
		old := s.history[len(s.history)-1-s.cfg.Lag]
		held = make(map[string]pacing.State, len(old))
		for _, st := range old {
			held[st.CampaignID] = st
		}
	}
	for _, c := range s.camps {
		st, ok := held[c.ID]
		theta, mult := 0.0, 1.0
		switch {
		case !ok || c.Paused:
		case s.cfg.Unpaced:
			if st.SpentToday < st.DailyBudget {
				theta = 1
			}
		default:
			theta, mult = st.Throttle, st.Multiplier
		}
		s.bid(c, now, theta, mult)
	}
	s.now = now.Add(s.iv)
	s.steps++
}

// bid plays the bidders and the market for campaign c during [now, now+interval).
func (s *Sim) bid(c *campaignRun, now time.Time, theta, mult float64) {
	dayStart, dayEnd := s.ctl.DayOf(now, c.Location)
	x := (float64(now.Sub(dayStart)) + float64(s.iv)/2) / float64(dayEnd.Sub(dayStart))
	rate := c.Opportunities * s.cfg.Shape(x) / float64(s.cfg.Bidders)
	// Bidding higher wins more: the win rate grows as the 1.5th power of the multiplier.
	p := min(0.95, c.WinRate*math.Pow(mult, 1.5))
	for b := range s.cfg.Bidders {
		n := s.poisson(rate)
		c.traffic[b] = n
		s.day(c, now).Traffic[hourOf(now, dayStart, dayEnd)] += int64(n)
		wins := s.binomial(s.binomial(n, theta), p)
		if wins == 0 {
			continue
		}
		// First price: the multiplier raises what is paid with what is bid. Prices of different
		// impressions vary by about a quarter around the mean.
		mean := float64(wins) * float64(c.Price) * mult
		total := int64(math.Max(0, mean*(1+0.25*s.rng.NormFloat64()/math.Sqrt(float64(wins)))))
		// One notice per win would be the truth; up to 16 per bidder and interval, each with its own
		// event time and delay, keep the run fast with the same timing.
		chunks := min(wins, 16)
		for k := range chunks {
			micros := total / int64(chunks)
			if k == chunks-1 {
				micros = total - micros*int64(chunks-1)
			}
			at := now.Add(time.Duration(s.rng.Float64() * float64(s.iv)))
			arrival := at.Add(time.Duration(s.rng.Float64() * float64(s.cfg.MaxDelay)))
			step := s.steps + int((arrival.Sub(now)+s.iv-1)/s.iv)
			s.seq++
			s.pending[step] = append(s.pending[step], notice{arrival: arrival, seq: s.seq, id: c.ID, micros: micros, at: at})
			s.book(c, micros, at)
		}
	}
}

// day returns the result record of the day containing t.
func (s *Sim) day(c *campaignRun, t time.Time) *DayResult {
	start, end := s.ctl.DayOf(t, c.Location)
	d := c.days[start.UnixNano()]
	if d == nil {
		d = &DayResult{Day: start, Length: end.Sub(start), OutAt: -1, step: s.iv}
		d.perStep = make([]int64, (d.Length+s.iv-1)/s.iv)
		c.days[start.UnixNano()] = d
		c.order = append(c.order, start.UnixNano())
	}
	return d
}

func (s *Sim) book(c *campaignRun, micros int64, at time.Time) {
	d := s.day(c, at)
	d.Spent += micros
	off := at.Sub(d.Day)
	d.Hourly[hourOf(at, d.Day, d.Day.Add(d.Length))] += micros
	d.perStep[min(int(off/s.iv), len(d.perStep)-1)] += micros
}

func (s *Sim) recordState(c *campaignRun, st pacing.State, now time.Time) {
	d := s.day(c, now)
	d.Final = st
	d.Budget = st.DailyBudget
	h := int(int64(now.Sub(d.Day)) * 24 / int64(d.Length))
	if h >= 0 && h < 24 && !d.targetSet[h] {
		d.Target[h], d.targetSet[h] = st.TargetToday, true
	}
}

// Days returns the campaign's days so far, in order.
func (s *Sim) Days(id string) []DayResult {
	c := s.byID[id]
	if c == nil {
		return nil
	}
	out := make([]DayResult, 0, len(c.order))
	for _, k := range c.order {
		d := *c.days[k]
		d.Target[24] = d.Budget
		// Hours without a step (a run starting late) take the previous boundary's target.
		for h := 1; h < 24; h++ {
			if !d.targetSet[h] {
				d.Target[h] = d.Target[h-1]
			}
		}
		var cum int64
		d.OutAt = -1
		for i, v := range d.perStep {
			cum += v
			if d.Budget > 0 && float64(cum) >= 0.99*float64(d.Budget) {
				d.OutAt = time.Duration(i+1) * d.step
				break
			}
		}
		out = append(out, d)
	}
	return out
}

func hourOf(t, start, end time.Time) int {
	h := int(int64(t.Sub(start)) * 24 / int64(end.Sub(start)))
	return min(max(h, 0), 23)
}

// hourly is the traffic level by hour of the day: lowest before dawn, a plateau through the working
// day, the peak in the evening. DailyShape interpolates it and scales it to a mean of 1.
var hourly = [24]float64{
	0.70, 0.55, 0.47, 0.43, 0.42, 0.47, 0.60, 0.78, 0.92, 1.00, 1.04, 1.08,
	1.12, 1.10, 1.06, 1.05, 1.10, 1.22, 1.40, 1.58, 1.70, 1.62, 1.30, 0.95,
}

var hourlyMean = func() float64 {
	sum := 0.0
	for _, v := range hourly {
		sum += v
	}
	return sum / 24
}()

// DailyShape is a realistic diurnal traffic level at day fraction x: about 0.43 of the mean at
// 4 a.m., 1.7 at 8 p.m.
func DailyShape(x float64) float64 {
	x = x - math.Floor(x)
	p := x*24 - 0.5 // table values sit at the middle of their hour
	i := int(math.Floor(p))
	f := p - float64(i)
	a, b := hourly[(i+24)%24], hourly[(i+25)%24]
	return (a + f*(b-a)) / hourlyMean
}

func (s *Sim) poisson(lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 30 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*s.rng.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= s.rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func (s *Sim) binomial(n int, p float64) int {
	switch {
	case n <= 0 || p <= 0:
		return 0
	case p >= 1:
		return n
	case n < 40:
		k := 0
		for range n {
			if s.rng.Float64() < p {
				k++
			}
		}
		return k
	}
	mean, v := float64(n)*p, float64(n)*p*(1-p)
	switch {
	case v >= 10:
		return min(n, max(0, int(math.Round(mean+math.Sqrt(v)*s.rng.NormFloat64()))))
	case p < 0.5:
		return min(n, s.poisson(mean))
	default:
		return n - min(n, s.poisson(float64(n)*(1-p)))
	}
}

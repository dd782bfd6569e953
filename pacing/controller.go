package pacing

import (
	"container/heap"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"rtb/events"
)

// Statuses of a campaign's pacing State.
const (
	StatusPacing          = "pacing"           // on its curve, throttled as needed
	StatusUnderDelivering = "under_delivering" // full admission and still short of the day's budget
	StatusBudgetReached   = "budget_reached"   // today's (or the lifetime) budget is spent or reserved for spend in flight
	StatusPaused          = "paused"           // paused, or outside its flight dates
)

// Budget is what the controller needs to know of a campaign.
type Budget struct {
	CampaignID string
	Daily      int64          // micros per day
	Total      int64          // lifetime micros; 0 = unlimited
	Location   *time.Location // the campaign's day is the calendar day here (DayLength 24h); nil = UTC
	Active     bool           // false: paused (or outside its flight) → Throttle 0
	// Start and End optionally bound the flight ([Start, End); zero = open). Outside it the campaign
	// is treated as inactive, so callers need not reload budgets at flight boundaries; a flight ending
	// during the day makes the day's budget be paced to End rather than midnight.
	Start, End time.Time
}

// Config tunes a Controller. The zero value is valid: every zero field takes its default.
type Config struct {
	Interval  time.Duration // control period; default 1s
	DayLength time.Duration // default 24h (calendar days in each campaign's zone)
	// Epoch is the start of day 0 when DayLength is not 24h; default the Unix epoch. Keep it fixed
	// across restarts, or days move.
	Epoch time.Time
	// NoticeDelay is how late spend can be reported after its event time; default 1s. It sizes the
	// reserve for spend in flight and tells when an interval's spend is complete.
	NoticeDelay time.Duration
	// UseTrafficShape makes the target follow the traffic shape learned from earlier full days
	// instead of being even. The first day (or any day without a learned shape) is even.
	UseTrafficShape bool
	// StateDelay is how old the state a bidder acts on may be; default one Interval.
	StateDelay time.Duration
	// MaxMultiplier bounds the bid multiplier used when admission alone cannot reach the target;
	// default 1.2. 1 disables bid raising.
	MaxMultiplier float64
	// InitialThrottle is admitted while the controller has not yet measured what a campaign spends
	// (a new campaign, or one without traffic); default 0.05. It only lasts the few intervals until
	// the first spend is complete.
	InitialThrottle float64
}

// State is the pacing state of one campaign after an Update: what bidders act on (Throttle,
// Multiplier) and what campaign managers see. Money is in micros.
type State struct {
	CampaignID string
	Day        time.Time // start of the campaign's current day (in its Location when DayLength is 24h)
	UpdatedAt  time.Time
	Throttle   float64 // probability to admit the campaign into an auction, 0..1
	Multiplier float64 // factor on the bid price, ≥ 1
	// ValidUntil is UpdatedAt + StateDelay + Interval: the reserve for spend in flight assumes no
	// bidder acts on this state after it. A bidder still holding it later (the pacer or its feed is
	// down) should stop admitting the campaign, or accept that it may overspend.
	ValidUntil time.Time

	DailyBudget    int64 // today's budget: Daily, or what remains of Total if less
	SpentToday     int64 // billed spend booked to today (reported so far)
	TargetToday    int64 // what the target curve says should be spent by now
	ProjectedToday int64 // expected spend at the end of the day at the current pace
	SpentTotal     int64 // lifetime spend
	TotalBudget    int64 // 0 = unlimited
	Status         string
}

// shapeSlots is the resolution of the learned traffic shape: 96 slots are 15 minutes of a 24h day.
const shapeSlots = 96

// Controller computes pacing states. It is safe for concurrent use: Spend and Traffic may be called
// from consumer goroutines while Update runs on a ticker.
type Controller struct {
	cfg Config

	iv, lag, notice, dayLen, epoch int64 // nanoseconds
	calendar                       bool  // DayLength is 24h: calendar days in each zone
	ringMask                       int64
	maxAhead                       int64 // buckets after the last Update that Spend may open
	catchUp                        float64
	aLam, aK                       float64
	multStep                       float64

	mu                    sync.RWMutex
	byID                  map[string]*campaign
	order                 []*campaign   // live campaigns sorted by ID: Update's deterministic order
	phases                [][]*campaign // order's campaigns by phase (quietEvery of them), for UpdateChunks
	quietEvery            int64
	dropped               atomic.Int64
	lateEvents, lateSpend atomic.Int64

	// Events (Spend, Traffic, SetBudgets) queue the campaigns they speak of for the next step, so
	// that a step finds them without looking at every campaign.
	touchMu sync.Mutex
	touched []*campaign

	// UpdateChunks' own (one caller at a time): its step count, the campaigns it stepped that are
	// not quiet yet, the stepped campaigns by the end of their day, and scratch.
	steps       int64
	active      []*campaign
	ends        dayEnds
	cand, spare []*campaign
	looked      atomic.Int64 // campaigns UpdateChunks looked at, for tests: its cost
}

// NewController returns a controller with cfg's zero fields set to their defaults.
func NewController(cfg Config) *Controller {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.DayLength <= 0 {
		cfg.DayLength = 24 * time.Hour
	}
	if cfg.Epoch.IsZero() {
		cfg.Epoch = time.Unix(0, 0).UTC()
	}
	if cfg.NoticeDelay <= 0 {
		cfg.NoticeDelay = time.Second
	}
	if cfg.StateDelay <= 0 {
		cfg.StateDelay = cfg.Interval
	}
	if cfg.MaxMultiplier == 0 {
		cfg.MaxMultiplier = 1.2
	}
	cfg.MaxMultiplier = max(cfg.MaxMultiplier, 1)
	if cfg.InitialThrottle <= 0 {
		cfg.InitialThrottle = 0.05
	}
	cfg.InitialThrottle = min(cfg.InitialThrottle, 1)

	c := &Controller{
		cfg:      cfg,
		iv:       int64(cfg.Interval),
		lag:      int64(cfg.StateDelay),
		notice:   int64(cfg.NoticeDelay),
		dayLen:   int64(cfg.DayLength),
		epoch:    cfg.Epoch.UnixNano(),
		calendar: cfg.DayLength == 24*time.Hour,
		byID:     make(map[string]*campaign),
	}
	// The ring of per-interval buckets must span the unreported past (NoticeDelay), the committed
	// future (StateDelay) and some slack on both sides.
	span := ceilDiv(c.notice+c.lag, c.iv)
	size := int64(8)
	for size < 2*span+6 {
		size *= 2
	}
	c.ringMask = size - 1
	c.maxAhead = size - ceilDiv(c.notice, c.iv) - 3

	intervals := func(d time.Duration) float64 { return float64(d) / float64(cfg.Interval) }
	// Catching up over 1/96 of a day (15 min of a real day) is fast against an hour yet slow against
	// the loop's few intervals of delay, which keeps it stable.
	c.catchUp = max(4, intervals(cfg.DayLength/96))
	// Traffic moves over minutes of a real day; spend per admitted opportunity (prices, win rates)
	// over tens of minutes, and it is the noisier of the two, so it is averaged longer.
	c.aLam = 1 / max(3, intervals(cfg.DayLength/1440))
	c.aK = 1 / max(8, intervals(cfg.DayLength/288))
	// The multiplier moves its whole range in 1/48 of a day: slower than the throttle, so that the two
	// loops do not fight.
	c.multStep = (cfg.MaxMultiplier - 1) / max(1, intervals(cfg.DayLength/48))
	// A quiet campaign is stepped once a slot of the read model's series, which then still gets a
	// point a slot: every 300 steps of a 24-hour day. Every 20 steps, a pacer of 100,000 quiet
	// campaigns stepped 5,000 a second, most of its CPU with nothing happening.
	c.quietEvery = max(1, int64(cfg.DayLength/SeriesPoints/cfg.Interval))
	c.phases = make([][]*campaign, c.quietEvery)
	return c
}

// Config returns the configuration in force, defaults filled in.
func (c *Controller) Config() Config { return c.cfg }

// campaign is the controller's per-campaign state, guarded by its own mutex so that Spend for one
// campaign never waits for another's Update step.
type campaign struct {
	mu     sync.Mutex
	id     string
	budget Budget
	loc    *time.Location
	live   bool // listed in the last SetBudgets
	gone   int64

	// Quiet campaigns are stepped less often by UpdateChunks (see quietAfter): touched says Spend,
	// Traffic or SetBudgets spoke of the campaign since it was queued for a step, phase spreads the
	// quiet ones' steps over the controller's quietEvery intervals, idx is its place in order.
	touched atomic.Bool
	evented atomic.Bool // an event, not only a budget change, since it was queued
	phase   int
	idx     atomic.Int32
	// UpdateChunks' alone (one caller at a time): the step that last found it touched by an event,
	// the last step that took it as a candidate (+1, so that 0 is none), and dayEnd as of its last
	// step (what its entry in the heap of day ends holds while current).
	lastEvent, seen, dayEndAt int64

	// The current day [dayStart, dayEnd) and the next [dayEnd, nextEnd), unix nanoseconds.
	dayStart, dayEnd, nextEnd int64
	day                       time.Time
	spentToday, spentNext     int64 // booked to the current / a later day
	spentTotal                int64

	// The plan: from anchorSpent at anchorAt to the day's budget at the window's end along F.
	replan      bool
	anchorAt    int64
	anchorSpent float64
	wasActive   bool

	// Estimation, per interval bucket of event time.
	ring        []bucket
	consumed    int64 // last bucket folded into the estimates
	lastNow     int64 // time of the last Update; 0 = none yet
	lam         float64
	lamSet      bool
	lastN       float64 // opportunities in the last complete bucket
	kNum, kDen  float64
	hasTraffic  bool
	eventSize   float64 // average micros of one Spend call
	theta, mult float64 // last issued

	// Traffic shape: today's histogram, which of its slots an active Update saw, and the learned
	// cumulative shape (nil until a full day was seen).
	hist    *[shapeSlots]int64
	covered [2]uint64
	dayFull bool
	shape   *[shapeSlots + 1]float32

	last State
}

// bucket accumulates one interval of event time.
type bucket struct {
	idx      int64
	spend    int64
	traffic  int64
	theta    float64 // throttle the bidders apply in this interval
	hasTheta bool
}

const noBucket = math.MinInt64

func (c *Controller) newCampaign(b Budget, now int64) *campaign {
	cp := &campaign{
		id:        b.CampaignID,
		lastEvent: -quietAfter, // none: not active until an event
		ring:      make([]bucket, c.ringMask+1),
		replan:    true,
		mult:      1,
		consumed:  noBucket,
	}
	for i := range cp.ring {
		cp.ring[i].idx = noBucket
	}
	cp.phase = events.PartitionOf(b.CampaignID, int(c.quietEvery)) // FNV-1a: a cheap, stable spread
	cp.setBudget(b)
	c.setDay(cp, now)
	// A campaign added during the first slot of its day has seen the whole day's traffic.
	cp.dayFull = now-cp.dayStart < (cp.dayEnd-cp.dayStart)/shapeSlots
	return cp
}

func (cp *campaign) setBudget(b Budget) {
	cp.budget = b
	cp.loc = b.Location
	if cp.loc == nil {
		cp.loc = time.UTC
	}
}

// setDay makes the day containing now the campaign's current day.
func (c *Controller) setDay(cp *campaign, now int64) {
	cp.dayStart, cp.dayEnd = c.dayOf(now, cp.loc)
	_, cp.nextEnd = c.dayOf(cp.dayEnd, cp.loc)
	cp.day = time.Unix(0, cp.dayStart).In(cp.loc)
	cp.anchorAt, cp.anchorSpent = cp.dayStart, 0
}

// SetBudgets replaces the set of campaigns: new ones are added, listed ones updated, unlisted ones
// removed from Update's output. A removed campaign keeps its spend for a day, so that removing and
// restoring it (a campaign file edited twice) cannot spend its day twice. Changing a campaign's
// budget, zone or flight re-plans the rest of its day.
func (c *Controller) SetBudgets(bs []Budget, now time.Time) {
	t := now.UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	listed := make(map[string]bool, len(bs))
	for _, b := range bs {
		listed[b.CampaignID] = true
		cp := c.byID[b.CampaignID]
		if cp == nil {
			cp = c.newCampaign(b, t)
			c.byID[b.CampaignID] = cp
		}
		cp.mu.Lock()
		// Only a campaign new, back or changed needs a step: a reload of 100,000 campaigns with
		// a few edited must not step them all.
		if !cp.live || cp.budget != b {
			c.touch(cp, false)
		}
		if !cp.live {
			cp.live = true
			if t >= cp.dayEnd {
				c.roll(cp, t)
			}
			cp.replan = true
		}
		old := cp.budget
		cp.setBudget(b)
		if old.Location.String() != cp.loc.String() {
			// The day moves. What was spent "today" stays today's: the conservative reading.
			spent := cp.spentToday
			c.setDay(cp, t)
			cp.spentToday = spent
			cp.dayFull = false
			cp.replan = true
		}
		if old.Daily != b.Daily || old.Total != b.Total || !old.Start.Equal(b.Start) || !old.End.Equal(b.End) {
			cp.replan = true
		}
		cp.mu.Unlock()
	}
	for id, cp := range c.byID {
		if listed[id] {
			continue
		}
		cp.mu.Lock()
		if cp.live {
			cp.live, cp.gone = false, t
		}
		if t-cp.gone > 2*c.dayLen {
			delete(c.byID, id)
		}
		cp.mu.Unlock()
	}
	order := make([]*campaign, 0, len(bs))
	for _, cp := range c.byID {
		if cp.live {
			order = append(order, cp)
		}
	}
	slices.SortFunc(order, func(a, b *campaign) int { return strings.Compare(a.id, b.id) })
	phases := make([][]*campaign, c.quietEvery)
	for i, cp := range order {
		cp.idx.Store(int32(i))
		phases[cp.phase] = append(phases[cp.phase], cp)
	}
	c.order, c.phases = order, phases
}

// touch queues cp for the next step, once until that step takes it, and keeps it stepped every
// interval for quietAfter steps after an event (Spend, Traffic), for budgetSteps after a budget
// change.
func (c *Controller) touch(cp *campaign, event bool) {
	if event {
		cp.evented.Store(true)
	}
	if !cp.touched.Swap(true) {
		c.touchMu.Lock()
		c.touched = append(c.touched, cp)
		c.touchMu.Unlock()
	}
}

func (c *Controller) lookup(id string) *campaign {
	c.mu.RLock()
	cp := c.byID[id]
	c.mu.RUnlock()
	return cp
}

// Stats counts what the caller should watch.
type Stats struct {
	// Dropped counts Spend and Traffic calls for campaigns the controller does not know (call
	// SetBudgets before replaying events).
	Dropped int64
	// LateEvents and LateMicros count spend that arrived after its interval had been folded into
	// the estimates (more than NoticeDelay after its event time, replays before the first Update
	// excepted). It is still booked, but it was not reserved for: if it is more than a trace,
	// NoticeDelay is too short for the notice pipeline and budgets may be overshot.
	LateEvents, LateMicros int64
}

// Stats returns the counters since the controller was made.
func (c *Controller) Stats() Stats {
	return Stats{Dropped: c.dropped.Load(), LateEvents: c.lateEvents.Load(), LateMicros: c.lateSpend.Load()}
}

// Spend books billed spend (deduplicated upstream) to the day its event time at falls in, and to the
// lifetime total. Negative micros (corrections) are accepted.
func (c *Controller) Spend(campaignID string, micros int64, at time.Time) {
	cp := c.lookup(campaignID)
	if cp == nil {
		c.dropped.Add(1)
		return
	}
	t := at.UnixNano()
	cp.mu.Lock()
	c.touch(cp, true)
	cp.spentTotal += micros
	switch {
	case t >= cp.dayEnd:
		cp.spentNext += micros
	case t >= cp.dayStart:
		cp.spentToday += micros
	}
	if b := c.bucketFor(cp, t); b != nil {
		b.spend += micros
	}
	if cp.lastNow != 0 && floorDiv(t, c.iv) <= cp.consumed {
		c.lateEvents.Add(1)
		c.lateSpend.Add(micros)
	}
	if micros > 0 {
		cp.eventSize += (float64(micros) - cp.eventSize) * 0.05
	}
	cp.mu.Unlock()
}

// Traffic reports n bid opportunities of one campaign at event time at: requests in which the
// campaign passed targeting and reached the pacing gate, counted before the throttle draw and also
// while the throttle is 0. Bidders may report in batches (one call per interval is enough) and up
// to NoticeDelay late. The counts give the opportunity rate the throttle is computed from and the
// traffic shape of the day. A campaign for which Traffic is never called is still paced, from its
// spend alone (as if its traffic were flat), reacting more slowly to traffic swings.
func (c *Controller) Traffic(campaignID string, n int, at time.Time) {
	if n <= 0 {
		return
	}
	cp := c.lookup(campaignID)
	if cp == nil {
		c.dropped.Add(1)
		return
	}
	t := at.UnixNano()
	cp.mu.Lock()
	c.touch(cp, true)
	if !cp.hasTraffic {
		// Spend per admitted opportunity replaces spend per interval: the old estimates mean
		// something else.
		cp.hasTraffic = true
		cp.kNum, cp.kDen, cp.lamSet = 0, 0, false
	}
	if b := c.bucketFor(cp, t); b != nil {
		b.traffic += int64(n)
	}
	if t >= cp.dayStart && t < cp.dayEnd {
		if cp.hist == nil {
			cp.hist = new([shapeSlots]int64)
		}
		cp.hist[slotOf(t, cp.dayStart, cp.dayEnd)] += int64(n)
	}
	cp.mu.Unlock()
}

// Restore sets a campaign's spend after a restart from a snapshot (the alternative is replaying the
// event log through Spend). spentToday is taken if day is the campaign's current day. Call it after
// SetBudgets; unknown campaigns are ignored.
func (c *Controller) Restore(campaignID string, day time.Time, spentToday, spentTotal int64) {
	cp := c.lookup(campaignID)
	if cp == nil {
		return
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.spentTotal = spentTotal
	if start, _ := c.dayOf(day.UnixNano(), cp.loc); start == cp.dayStart {
		cp.spentToday = spentToday
	}
}

// State returns the campaign's state as of the last Update.
func (c *Controller) State(campaignID string) (State, bool) {
	cp := c.lookup(campaignID)
	if cp == nil {
		return State{}, false
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.last, cp.last.CampaignID != ""
}

// Update runs one control step for every campaign at now and returns their states, sorted by
// campaign id. Given the same calls before it, it returns the same states.
func (c *Controller) Update(now time.Time) []State {
	return c.AppendUpdate(nil, now)
}

// AppendUpdate is Update appending to dst, so that a caller can reuse one slice.
func (c *Controller) AppendUpdate(dst []State, now time.Time) []State {
	c.mu.RLock()
	order := c.order
	c.mu.RUnlock()
	t := now.UnixNano()
	dst = slices.Grow(dst, len(order))
	for _, cp := range order {
		cp.mu.Lock()
		st := c.step(cp, t, now)
		cp.mu.Unlock()
		dst = append(dst, st)
	}
	return dst
}

// UpdateChunks is Update for a caller that publishes as it goes, at a cost that follows what
// happens rather than the number of campaigns: fn gets the states in chunks of at most n (in dst's
// backing array, valid until it returns) and returns false to end the step there. A chunk also
// ends once computing it has taken budget (checked every budgetEvery campaigns; 0: no bound), since
// what a state costs varies with the campaign and the caches: 256 states took 60 µs in a benchmark
// and 660 µs in rtb serve under load. No lock of the controller is held while fn runs, so a caller
// may pause between chunks: one step of 100,000 campaigns must not hold a CPU for tens of
// milliseconds. Within a step, states come in the order of Update.
//
// A campaign no event (Spend, Traffic) has spoken of for quietAfter steps, and no budget change
// (SetBudgets) for budgetSteps, is quiet: it is stepped once a slot of the pacing series
// (quietEvery steps: every 5 minutes of a 24-hour day at 1 s steps, spread over the steps by its
// id), when its day ends, and at once when an event speaks of it again. Such a campaign has no
// auctions, so what its throttle says matters to no one until traffic comes back, and then it is
// stepped again from the next interval on; meanwhile its last state stands (its pacer's heartbeats
// keep it valid). Its estimates lose nothing: a step folds every interval since the last one. A
// step does not look at the other campaigns at all: events queue theirs, the campaigns still active
// are listed, the quiet ones are grouped by phase and the stepped ones kept by the end of their
// day. Looking at each of 100,000 campaigns every step (a cache miss each) and stepping a quiet one
// every 20th cost a pacer 11 ms of CPU a second with nothing happening, 20 ms under load (CPU
// profiles of rtb serve).
func (c *Controller) UpdateChunks(dst []State, now time.Time, n int, budget time.Duration, fn func([]State) bool) []State {
	t := now.UnixNano()
	step := c.steps
	c.steps++
	c.mu.RLock()
	bucket := c.phases[step%c.quietEvery]
	c.mu.RUnlock()

	cand := c.cand[:0]
	take := func(cp *campaign) {
		if cp.seen != step+1 {
			cp.seen = step + 1
			cand = append(cand, cp)
		}
	}
	c.touchMu.Lock()
	queued := c.touched
	c.touched = c.spare[:0]
	c.touchMu.Unlock()
	for _, cp := range queued {
		// Cleared before the step reads its events: an event from now on queues it again.
		cp.touched.Store(false)
		if cp.evented.Swap(false) {
			cp.lastEvent = step
		} else {
			cp.lastEvent = max(cp.lastEvent, step-(quietAfter-budgetSteps))
		}
		take(cp)
	}
	clear(queued) // no campaign kept alive by the spare buffer
	c.spare = queued[:0]
	for _, cp := range c.active {
		take(cp)
	}
	for _, cp := range bucket {
		take(cp)
	}
	for len(c.ends) > 0 && c.ends[0].at <= t {
		e := heap.Pop(&c.ends).(dayEnd)
		if e.at == e.cp.dayEndAt {
			take(e.cp)
		}
	}
	c.looked.Add(int64(len(queued) + len(c.active) + len(bucket)))
	slices.SortFunc(cand, func(a, b *campaign) int { return int(a.idx.Load()) - int(b.idx.Load()) })

	// Campaigns with an event in the last quietAfter steps are stepped at the next one too.
	next := c.active[:0]
	n = max(n, 1)
	dst = slices.Grow(dst[:0], min(n, len(cand)))
	i := 0
	for i < len(cand) {
		dst = dst[:0]
		var began time.Time
		if budget > 0 {
			began = time.Now()
		}
		for start := i; i < len(cand) && len(dst) < n; i++ {
			if budget > 0 && i > start && (i-start)%budgetEvery == 0 && time.Since(began) >= budget {
				break
			}
			cp := cand[i]
			cp.mu.Lock()
			if !cp.live { // removed by SetBudgets since it was queued
				cp.mu.Unlock()
				continue
			}
			st := c.step(cp, t, now)
			if cp.dayEndAt != cp.dayEnd {
				cp.dayEndAt = cp.dayEnd
				heap.Push(&c.ends, dayEnd{cp.dayEnd, cp})
			}
			cp.mu.Unlock()
			if step+1-cp.lastEvent < quietAfter {
				next = append(next, cp)
			}
			dst = append(dst, st)
		}
		if len(dst) > 0 && !fn(dst) {
			break
		}
	}
	// Those the step did not reach (fn ended it) are taken at the next step.
	next = append(next, cand[i:]...)
	c.active = next
	clear(cand)
	c.cand = cand[:0]
	return dst
}

// dayEnd is a stepped campaign and the end of its day as of that step.
type dayEnd struct {
	at int64
	cp *campaign
}

// dayEnds is a min-heap of dayEnd by at (container/heap).
type dayEnds []dayEnd

func (h dayEnds) Len() int           { return len(h) }
func (h dayEnds) Less(i, j int) bool { return h[i].at < h[j].at }
func (h dayEnds) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dayEnds) Push(x any)        { *h = append(*h, x.(dayEnd)) }
func (h *dayEnds) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = dayEnd{}
	*h = old[:len(old)-1]
	return e
}

// budgetEvery is how many campaigns UpdateChunks steps between reads of the clock: a read costs
// about a tenth of a state.
const budgetEvery = 16

// quietAfter is how many steps without an event make a campaign quiet: enough for its last
// notices (NoticeDelay) to be folded in by steps of every interval, and for the pacer to re-send a
// state whose spend moved (Service: every spendRefreshes intervals at most) before it goes quiet,
// or the bidders' dashboards would show that spend only at the campaign's next quiet step.
const quietAfter = spendRefreshes + 2

// budgetSteps is how many steps a new or changed budget keeps its campaign stepped every interval
// without an event: enough for a new campaign's admission to climb from InitialThrottle to full
// (0.05, 0.15, 0.35, 0.75, 1 by its eighth step when nothing is spent).
const budgetSteps = 8

// bucketFor returns the bucket of event time t, opening it if it is newer than the one in its ring
// slot, or nil if t is too old (already overwritten) or too far ahead for the ring.
func (c *Controller) bucketFor(cp *campaign, t int64) *bucket {
	idx := floorDiv(t, c.iv)
	b := &cp.ring[idx&c.ringMask]
	if b.idx == idx {
		return b
	}
	if idx < b.idx || (cp.lastNow != 0 && idx > floorDiv(cp.lastNow, c.iv)+c.maxAhead) {
		return nil
	}
	*b = bucket{idx: idx}
	return b
}

// step is one control step of one campaign; cp.mu is held.
func (c *Controller) step(cp *campaign, now int64, nowT time.Time) State {
	if now < cp.lastNow {
		now = cp.lastNow // a clock going back must not undo a rollover
	}
	if now >= cp.dayEnd {
		c.roll(cp, now)
	}
	b := cp.budget
	active := b.Active && (b.Start.IsZero() || now >= b.Start.UnixNano()) && (b.End.IsZero() || now < b.End.UnixNano())
	c.consume(cp, now, active)
	cp.lastNow = now
	budget := float64(c.dayBudget(cp))
	spent := float64(cp.spentToday)
	st := State{
		CampaignID:  cp.id,
		Day:         cp.day,
		UpdatedAt:   nowT,
		ValidUntil:  nowT.Add(time.Duration(c.lag + c.iv)),
		Multiplier:  1,
		DailyBudget: int64(budget),
		SpentToday:  cp.spentToday,
		SpentTotal:  cp.spentTotal,
		TotalBudget: b.Total,
	}

	// Expected spend of full admission in one interval, a pessimistic version of it, and what the
	// model says is incurred but unreported (past) or committed under throttles already issued.
	known := cp.kDen > 0
	lam := cp.lam
	if !cp.hasTraffic {
		lam = 1
	}
	e := 0.0
	if known {
		e = cp.kNum / cp.kDen * lam
	}
	eHi := 1.5 * e
	if known && cp.hasTraffic && cp.lastN > lam {
		eHi = 1.5 * cp.kNum / cp.kDen * cp.lastN
	}
	var uMean, uHi, cMean, cHi float64
	for idx := cp.consumed + 1; idx <= floorDiv(now+c.lag-1, c.iv); idx++ {
		start := idx * c.iv
		end := start + c.iv
		past := float64(min(max(now-start, 0), c.iv)) / float64(c.iv)
		future := float64(max(min(end, now+c.lag)-max(start, now), 0)) / float64(c.iv)
		theta, reported := cp.theta, 0.0
		if bk := &cp.ring[idx&c.ringMask]; bk.idx == idx {
			reported = float64(bk.spend)
			if bk.hasTheta {
				theta = bk.theta
			}
		}
		// Spend reported above what the model expected is already in spent; only a shortfall is
		// taken as still on its way.
		uMean += max(0, theta*e*past-reported)
		uHi += max(0, theta*eHi*past-reported)
		cMean += theta * e * future
		cHi += theta * eHi * future
	}
	incurred := spent + uMean

	if !active {
		cp.wasActive = false
		cp.theta = 0
		c.setTheta(cp, now, 0)
		st.Status = StatusPaused
		st.TargetToday = int64(math.Round(min(max(c.target(cp, now, budget), 0), budget)))
		st.ProjectedToday = int64(math.Round(incurred + cMean))
		cp.last = st
		return st
	}
	c.markCovered(cp, now)
	if cp.replan || !cp.wasActive {
		cp.anchorAt, cp.anchorSpent = now, incurred
		cp.replan, cp.wasActive = false, true
	}
	end := c.windowEnd(cp)

	// The throttle issued now is applied in [now+lag, now+lag+iv).
	from := min(now+c.lag, end)
	to := min(now+c.lag+c.iv, end)
	gap := c.target(cp, from, budget) - (incurred + cMean)
	planned := c.target(cp, to, budget) - c.target(cp, from, budget) + gap/c.catchUp

	var raw float64
	switch {
	case planned <= 0:
		raw = 0
	case !known || lam <= 0:
		raw = c.cfg.InitialThrottle // measure before trusting
	case e <= 0:
		raw = 1 // admitted before and never spent: nothing to hold back
	default:
		raw = planned / e
	}
	// The budget guard. Spend that can still land without the next step being able to stop it:
	// unreported (uHi), committed under throttles already issued (cHi), and one interval of the
	// throttle issued now (each bidder applies it for one interval, fresh ones from now, stale ones
	// from now+lag, and by then the next step can have issued 0). Its expected values are taken
	// 1.5× for model error (eHi), and spend comes in wins, so the sum z is bounded as a count of
	// events of the average size s, with four standard deviations and two events of margin:
	// z + 4√(z·s) + 2s must fit in what is left of the budget.
	left := budget - spent
	s := cp.eventSize
	zMax := max(0, math.Sqrt(max(left+2*s, 0))-2*math.Sqrt(s))
	room := zMax*zMax - uHi - cHi
	ceiling := 1.0
	switch {
	case left <= 0 || room <= 0:
		ceiling = 0
	case eHi > 0:
		ceiling = room / eHi
	}
	// Decreases take effect at once; increases at most double (plus the initial throttle) per step,
	// like TCP's slow start, so that an estimate thrown off by an anomaly (traffic back after an
	// outage, a first measurement) cannot open the campaign to full admission in one step.
	theta := min(max(raw, 0), ceiling, 1, 2*cp.theta+c.cfg.InitialThrottle)

	saturated := raw >= 1 && ceiling >= 1
	switch {
	case saturated && gap > 0:
		cp.mult = min(cp.mult+c.multStep, c.cfg.MaxMultiplier)
	case raw < 0.9 || gap < 0:
		cp.mult = max(cp.mult-c.multStep, 1)
	}
	cp.theta = theta
	c.setTheta(cp, now, theta)

	projected := budget
	if known {
		projected = min(budget, incurred+cMean+c.fullRest(cp, now, end, e))
	}
	projected = max(projected, spent)
	switch {
	case ceiling <= 0:
		st.Status = StatusBudgetReached
	case saturated && projected < 0.99*budget:
		st.Status = StatusUnderDelivering
	default:
		st.Status = StatusPacing
	}
	st.Throttle = theta
	if theta > 0 {
		st.Multiplier = cp.mult
	}
	st.TargetToday = int64(math.Round(min(max(c.target(cp, now, budget), 0), budget)))
	st.ProjectedToday = int64(math.Round(projected))
	cp.last = st
	return st
}

// setTheta records the throttle bidders will apply in the interval starting lag from now.
func (c *Controller) setTheta(cp *campaign, now int64, theta float64) {
	idx := floorDiv(now+c.lag, c.iv)
	b := &cp.ring[idx&c.ringMask]
	if b.idx != idx {
		if idx < b.idx {
			return
		}
		*b = bucket{idx: idx}
	}
	b.theta, b.hasTheta = theta, true
}

// consume folds the buckets whose spend is complete (older than NoticeDelay) into the estimates of
// the opportunity rate and of spend per admitted opportunity.
//
// While the campaign is inactive the opportunity rate is left as it was: bidders need not count
// traffic for paused campaigns, and a rate decayed towards zero would make the first throttle
// after resuming far too high.
func (c *Controller) consume(cp *campaign, now int64, active bool) {
	horizon := floorDiv(now-c.notice, c.iv) - 1
	if cp.lastNow == 0 {
		// First step: fold what the ring already holds (a replay after a restart) into the
		// opportunity rate; throttles in force then are unknown, so spend per admission is not.
		cp.consumed = horizon - c.ringMask - 1
	}
	cp.consumed = max(cp.consumed, horizon-c.ringMask-1) // buckets older than the ring are gone
	for idx := cp.consumed + 1; idx <= horizon; idx++ {
		var spend, traffic int64
		theta, has := 0.0, false
		if b := &cp.ring[idx&c.ringMask]; b.idx == idx {
			spend, traffic, theta, has = b.spend, b.traffic, b.theta, b.hasTheta
		}
		n := float64(traffic)
		if !cp.hasTraffic {
			n = 1 // no traffic reports: estimate spend per interval of full admission instead
		}
		if !active {
			continue
		}
		cp.lastN = n
		if !cp.lamSet {
			if n > 0 { // start from the first traffic seen, not from the silence before it
				cp.lam, cp.lamSet = n, true
			}
		} else {
			cp.lam += c.aLam * (n - cp.lam)
		}
		// Only intervals that admitted something say anything about spend per admission; skipping
		// the others keeps the estimate from decaying to noise while throttled to 0.
		if has && theta*n > 0 {
			cp.kNum = (1-c.aK)*cp.kNum + float64(spend)
			cp.kDen = (1-c.aK)*cp.kDen + theta*n
		}
	}
	cp.consumed = max(cp.consumed, horizon)
}

// dayBudget is today's budget: the daily budget, or what remains of the total if less.
func (c *Controller) dayBudget(cp *campaign) int64 {
	d := max(cp.budget.Daily, 0)
	if cp.budget.Total > 0 {
		before := cp.spentTotal - cp.spentToday - cp.spentNext
		d = min(d, max(cp.budget.Total-before, 0))
	}
	return d
}

// windowEnd is when today's budget should be spent: the end of the day, or of the flight if sooner.
func (c *Controller) windowEnd(cp *campaign) int64 {
	end := cp.dayEnd
	if e := cp.budget.End; !e.IsZero() && e.UnixNano() < end {
		end = max(e.UnixNano(), cp.dayStart)
	}
	return end
}

// target is the planned spend by t: from the anchor to the day's budget at the window's end, along F.
func (c *Controller) target(cp *campaign, t int64, budget float64) float64 {
	if t <= cp.anchorAt {
		return cp.anchorSpent
	}
	end := c.windowEnd(cp)
	if t >= end {
		return budget
	}
	fa, fe := c.curve(cp, cp.anchorAt), c.curve(cp, end)
	if fe <= fa {
		return budget
	}
	return cp.anchorSpent + (budget-cp.anchorSpent)*(c.curve(cp, t)-fa)/(fe-fa)
}

// curve is F: the fraction of the day's budget to be spent by t (0 at the day's start, 1 at its end).
func (c *Controller) curve(cp *campaign, t int64) float64 {
	x := float64(t-cp.dayStart) / float64(cp.dayEnd-cp.dayStart)
	x = min(max(x, 0), 1)
	if !c.cfg.UseTrafficShape || cp.shape == nil {
		return x
	}
	// A little even spend keeps F strictly increasing, so a slot with no traffic yesterday neither
	// freezes the plan nor divides by zero when re-planning there.
	const even = 0.05
	return (1-even)*cumAt(cp.shape, x) + even*x
}

// fullRest estimates what full admission would spend from now to end, given e per interval now: the
// learned traffic shape scales today's rate to the rest of the day; without one, traffic is taken
// as flat.
func (c *Controller) fullRest(cp *campaign, now, end int64, e float64) float64 {
	if end <= now {
		return 0
	}
	intervals := float64(end-now) / float64(c.iv)
	if cp.shape == nil || !cp.hasTraffic {
		return e * intervals
	}
	span := float64(cp.dayEnd - cp.dayStart)
	x := float64(now-cp.dayStart) / span
	xe := float64(end-cp.dayStart) / span
	i := min(int(x*shapeSlots), shapeSlots-1)
	density := float64(cp.shape[i+1]-cp.shape[i]) * shapeSlots // traffic now relative to the day's mean
	rest := cumAt(cp.shape, xe) - cumAt(cp.shape, x)           // share of the day's traffic still to come
	if density <= 0 {
		return e * intervals
	}
	return e * intervals * min(rest/(density*(xe-x)), 10)
}

// roll moves the campaign to the day containing now, learning the finished day's traffic shape.
func (c *Controller) roll(cp *campaign, now int64) {
	c.learn(cp)
	next := cp.spentNext
	if now < cp.nextEnd {
		cp.dayStart, cp.dayEnd = cp.dayEnd, cp.nextEnd
		_, cp.nextEnd = c.dayOf(cp.dayEnd, cp.loc)
		cp.day = time.Unix(0, cp.dayStart).In(cp.loc)
		cp.anchorAt, cp.anchorSpent = cp.dayStart, 0
		cp.dayFull = true
	} else {
		// Days went by without an Update. Spend booked "after the old day" may belong to any of
		// them; counting it today is the conservative choice.
		c.setDay(cp, now)
		cp.dayFull = false
	}
	cp.spentToday, cp.spentNext = next, 0
	cp.replan = false
	cp.covered = [2]uint64{}
	if cp.hist != nil {
		*cp.hist = [shapeSlots]int64{}
	}
}

// learn folds the finished day's traffic into the shape if the campaign was live for (almost) the
// whole day: a day with gaps would teach the gaps.
func (c *Controller) learn(cp *campaign) {
	if !cp.dayFull || cp.hist == nil {
		return
	}
	if n := bits.OnesCount64(cp.covered[0]) + bits.OnesCount64(cp.covered[1]); n < shapeSlots*9/10 {
		return
	}
	var sum int64
	for _, v := range cp.hist {
		sum += v
	}
	if sum <= 0 {
		return
	}
	var w [shapeSlots]float64
	for i, v := range cp.hist {
		w[i] = float64(v) / float64(sum)
	}
	if cp.shape == nil {
		cp.shape = new([shapeSlots + 1]float32)
	} else {
		// Recent days count more: equal weight to yesterday and to everything before.
		for i := range w {
			w[i] = 0.5*w[i] + 0.5*float64(cp.shape[i+1]-cp.shape[i])
		}
	}
	acc := 0.0
	cp.shape[0] = 0
	for i, v := range w {
		acc += v
		cp.shape[i+1] = float32(acc)
	}
	cp.shape[shapeSlots] = 1
}

func (c *Controller) markCovered(cp *campaign, now int64) {
	if now < cp.dayStart || now >= cp.dayEnd {
		return
	}
	i := slotOf(now, cp.dayStart, cp.dayEnd)
	cp.covered[i/64] |= 1 << (i % 64)
}

// cumAt interpolates a cumulative shape at day fraction x.
func cumAt(shape *[shapeSlots + 1]float32, x float64) float64 {
	if x <= 0 {
		return 0
	}
	if x >= 1 {
		return 1
	}
	p := x * shapeSlots
	i := int(p)
	f := p - float64(i)
	return float64(shape[i]) + f*float64(shape[i+1]-shape[i])
}

func slotOf(t, start, end int64) int {
	i := int((t - start) * shapeSlots / (end - start))
	return min(max(i, 0), shapeSlots-1)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }

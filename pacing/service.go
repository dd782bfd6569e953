package pacing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	campaigns "rtb/bidder/campaign"
	"rtb/events"
)

// ServiceConfig configures a pacer.
type ServiceConfig struct {
	Controller Config
	Brokers    []string
	Group      string // consumer group of the pacers; default "rtb-pacer"
	// BillOnWin names the exchanges that send no billing notice: their win notice is the spend.
	// Everywhere else spend is counted from billing (burl) alone, so it is counted once.
	BillOnWin []string
	// ReadModel, if set, receives every state this pacer computes (the admin port's /api/pacing).
	ReadModel *ReadModel
	Logger    *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Service is the pacer: it rebuilds today's spend of the campaigns whose partitions it owns from the
// event log (event sourcing: a restarted or newly assigned pacer replays the day and ends with the
// numbers an uninterrupted one would have), runs the controller every interval, and publishes each
// campaign's state to rtb.pacing, where every bidder picks it up.
//
// Lifetime spend before today comes from the last state published to rtb.pacing (a snapshot);
// today's spend always from the log.
type Service struct {
	cfg       ServiceConfig
	log       *slog.Logger
	billOnWin map[string]bool

	ccfg Config // the controller's configuration, defaults filled in (s.ctrl is replaced under mu)

	mu       sync.Mutex
	ctrl     *Controller
	budgets  []Budget
	owned    map[string]*time.Location // campaigns of the partitions this member owns, and their zone
	parts    map[int]bool
	total    int  // partitions of the event topics
	live     bool // assigned and caught up: states may be published
	snapshot map[string]State
	carry    map[string]*dayCarry // CPM micros not yet booked (spend is booked in whole micros)

	writer *events.StateWriter
}

// NewService returns a pacer for the campaigns of set.
func NewService(cfg ServiceConfig, set *campaigns.Set) (*Service, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("pacer: no Kafka brokers")
	}
	if cfg.Group == "" {
		cfg.Group = "rtb-pacer"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{cfg: cfg, log: cfg.Logger.With("component", "pacer"), billOnWin: map[string]bool{},
		snapshot: map[string]State{}, carry: map[string]*dayCarry{}, owned: map[string]*time.Location{}, parts: map[int]bool{}}
	for _, x := range cfg.BillOnWin {
		s.billOnWin[x] = true
	}
	s.ctrl = NewController(cfg.Controller)
	s.ccfg = s.ctrl.Config()
	s.SetCampaigns(set)
	return s, nil
}

// Controller returns the controller's configuration with its defaults filled in.
func (s *Service) Controller() Config { return s.ccfg }

// SetCampaigns applies a campaign reload: budgets edited mid-day, campaigns added and removed.
func (s *Service) SetCampaigns(set *campaigns.Set) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.budgets = Budgets(set.Campaigns)
	owned := s.ownedBudgets()
	s.ctrl.SetBudgets(owned, s.cfg.Now())
	if s.total > 0 {
		s.owned = map[string]*time.Location{}
		for _, b := range owned {
			s.owned[b.CampaignID] = b.Location
		}
	}
	if rm := s.cfg.ReadModel; rm != nil {
		names := map[string]string{}
		for _, c := range set.Campaigns {
			names[c.ID] = c.Name
		}
		rm.SetCampaigns(names)
	}
}

func (s *Service) ownedBudgets() []Budget {
	var out []Budget
	for _, b := range s.budgets {
		if s.total > 0 && s.parts[events.PartitionOf(b.CampaignID, s.total)] {
			out = append(out, b)
		}
	}
	return out
}

// Run consumes until ctx is done: the last published states first (lifetime totals), then the
// event topics of the partitions this member is given, publishing states every interval once caught up.
func (s *Service) Run(ctx context.Context) error {
	s.writer = events.NewStateWriter(s.cfg.Brokers, events.TopicPacing)
	defer s.writer.Close()

	reader := events.NewStateReader(s.cfg.Brokers, events.TopicPacing, func(key string, value []byte) {
		if value == nil {
			return
		}
		st, err := DecodeState(value)
		if err != nil {
			s.log.Warn("unreadable pacing state skipped", "campaign_id", key, "error", err)
			return
		}
		s.mu.Lock()
		if old, ok := s.snapshot[key]; !ok || st.UpdatedAt.After(old.UpdatedAt) {
			s.snapshot[key] = st
		}
		s.mu.Unlock()
	})
	rctx, stopReader := context.WithCancel(ctx)
	defer stopReader()
	readerDone := make(chan error, 1)
	go func() { readerDone <- reader.Run(rctx) }()
	select {
	case <-reader.Ready():
	case err := <-readerDone:
		return fmt.Errorf("pacer: read %s: %w", events.TopicPacing, err)
	case <-ctx.Done():
		return nil
	}
	// The snapshot is needed only once per assignment; past the initial read it stays current anyway.

	rp, err := events.NewReplayer(events.ReplayConfig{
		Brokers: s.cfg.Brokers, Group: s.cfg.Group, Topics: []string{events.TopicWins, events.TopicBids},
		From: s.replayFrom, Logger: s.cfg.Logger,
	}, s)
	if err != nil {
		return fmt.Errorf("pacer: %w", err)
	}
	replayDone := make(chan error, 1)
	go func() { replayDone <- rp.Run(ctx) }()

	t := time.NewTicker(s.ccfg.Interval)
	defer t.Stop()
	trickle := time.NewTicker(max(s.ccfg.Interval/refreshSlices, time.Millisecond))
	defer trickle.Stop()
	var states, refreshBuf []State
	var refreshes []State // unchanged states still to re-send in this interval
	var kvs []events.KV
	perSlice := 0
	sent := newPublished(3 * s.ccfg.Interval)
	publish := func(sts []State) {
		kvs = kvs[:0]
		for _, st := range sts {
			kvs = append(kvs, events.KV{Key: st.CampaignID, Value: EncodeState(st)})
		}
		if len(kvs) == 0 {
			return
		}
		// A slow write delays the next step rather than losing this one: states must not go stale.
		wctx, cancel := context.WithTimeout(ctx, max(s.ccfg.Interval, time.Second))
		defer cancel()
		if err := s.writer.Write(wctx, kvs...); err != nil && ctx.Err() == nil {
			s.log.Warn("pacing states not published; bidders keep the previous ones until they go stale", "error", err)
		}
	}
	var changed []State
	for {
		select {
		case <-ctx.Done():
			return <-replayDone
		case err := <-replayDone:
			return err
		case <-trickle.C:
			n := min(perSlice, len(refreshes))
			publish(refreshes[:n])
			refreshes = refreshes[n:]
			continue
		case <-t.C:
		}
		// Whatever the last interval's slices left goes out first.
		publish(refreshes)
		refreshes = refreshBuf[:0]
		states = s.step(states[:0])
		sent.beginStep(len(states))
		for i := 0; i < len(states); i += publishChunk {
			changed = changed[:0]
			for _, st := range states[i:min(i+publishChunk, len(states))] {
				switch sent.due(st) {
				case sendNow:
					changed = append(changed, st)
				case sendRefresh:
					refreshes = append(refreshes, st)
				}
			}
			publish(changed)
			if i+publishChunk < len(states) {
				pause()
			}
		}
		refreshBuf = refreshes
		// One slice fewer than the trickle ticks in an interval, so they are all out before the
		// next step however the two tickers drift.
		perSlice = (len(refreshes) + refreshSlices - 2) / (refreshSlices - 1)
	}
}

// publishChunk is how many states a step looks at between pauses, and pause how long it stops,
// so that a pacer of 10,000 campaigns does not hold a CPU for tens of milliseconds each interval:
// a bidder in the same process (rtb serve) or on the same cores waits behind it, which showed in
// its p99. runtime.Gosched would not do: the scheduler looks for requests ready on their sockets
// only when it has nothing else to run (or every 10 ms), so a goroutine that yields is run again
// first; a sleep leaves it nothing else.
const publishChunk = 256

func pause() { time.Sleep(50 * time.Microsecond) }

// refreshSlices is how many slices an interval's unchanged re-sends are spread over. Every bidder
// decodes every state it is sent: 10,000 campaigns' refreshes sent in one batch per interval made a
// burst of work in the pacer, the broker and every bidder at once, which showed in the bidders'
// p99; states that changed still go out at once, as the step makes them.
const refreshSlices = 10

// step runs one control step if this member owns partitions and has replayed them.
func (s *Service) step(dst []State) []State {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.live {
		return dst
	}
	dst = s.ctrl.AppendUpdate(dst, s.cfg.Now())
	if rm := s.cfg.ReadModel; rm != nil {
		for _, st := range dst {
			rm.Apply(st)
		}
	}
	return dst
}

// replayFrom is where a newly assigned partition is read from: the earliest start of any campaign's
// current day, less the notice delay, since spend of today may be written a little before it is due.
func (s *Service) replayFrom() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	from := now
	for _, b := range s.budgets {
		if start, _ := s.ctrl.DayOf(now, b.Location); start.Before(from) {
			from = start
		}
	}
	return from.Add(-s.ccfg.NoticeDelay)
}

// Assigned implements events.ReplayHandler: a new controller for the campaigns of the partitions
// this member now owns, their lifetime totals from the snapshot, today's spend about to be replayed.
func (s *Service) Assigned(gen []events.Assignment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parts, s.total, s.live = map[int]bool{}, 0, false
	for _, a := range gen {
		if a.Topic != events.TopicWins {
			continue
		}
		s.total = a.Total
		for _, p := range a.Partitions {
			s.parts[p] = true
		}
	}
	now := s.cfg.Now()
	s.ctrl = NewController(s.cfg.Controller)
	owned := s.ownedBudgets()
	s.ctrl.SetBudgets(owned, now)
	s.owned = map[string]*time.Location{}
	s.carry = map[string]*dayCarry{}
	for _, b := range owned {
		s.owned[b.CampaignID] = b.Location
		snap, ok := s.snapshot[b.CampaignID]
		if !ok {
			continue
		}
		start, _ := s.ctrl.DayOf(now, b.Location)
		before := snap.SpentTotal
		if !snap.Day.Before(start) {
			// The snapshot is of today: today's share of it is replayed from the log.
			before -= snap.SpentToday
		}
		s.ctrl.Restore(b.CampaignID, start, 0, before)
	}
	s.log.Info("pacer assigned campaigns; replaying today's events", "campaigns", len(owned), "partitions", len(s.parts))
}

// CaughtUp implements events.CaughtUpHandler: the replay reached the end of the log as it was at
// assignment, so the numbers are complete and states may be published.
func (s *Service) CaughtUp() {
	s.mu.Lock()
	s.live = true
	n := len(s.owned)
	s.mu.Unlock()
	s.log.Info("pacer caught up; publishing pacing states", "campaigns", n)
}

// Revoked implements events.ReplayHandler.
func (s *Service) Revoked() {
	s.mu.Lock()
	s.live = false
	s.mu.Unlock()
}

// Event implements events.ReplayHandler.
func (s *Service) Event(e *events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	loc, ok := s.owned[e.CampaignID]
	if !ok {
		return nil
	}
	switch e.Type {
	case events.Bill:
	case events.Win:
		if !s.billOnWin[e.Exchange] {
			return nil
		}
	case events.Traffic:
		s.ctrl.Traffic(e.CampaignID, int(e.Count), e.TS)
		return nil
	default:
		return nil
	}
	if start, _ := s.ctrl.DayOf(s.cfg.Now(), loc); e.TS.Before(start) && !s.live {
		// Replaying: spend of an earlier day is in the snapshot's lifetime total already. Once live,
		// a late notice of the day before (23:59:59 arriving after midnight) is new: the controller
		// books it to that day, or only to the lifetime total if it has rolled over already.
		return nil
	}
	// Prices are CPM: one impression costs a thousandth. The remainder is carried so that spend is
	// exact over many impressions rather than rounded once per impression; per day, so that a
	// replay of today books exactly what an uninterrupted pacer booked to it.
	dc := s.carry[e.CampaignID]
	if dc == nil {
		dc = &dayCarry{}
		s.carry[e.CampaignID] = dc
	}
	day, _ := s.ctrl.DayOf(e.TS, loc)
	if micros := dc.book(day.UnixNano(), e.PriceMicros); micros != 0 {
		s.ctrl.Spend(e.CampaignID, micros, e.TS)
	}
	return nil
}

// dayCarry is one campaign's CPM remainders of its two latest days (today, and yesterday for its
// late notices).
type dayCarry struct {
	day [2]int64 // day starts, unix nanoseconds, newest first
	rem [2]int64
}

// book adds cpm micros to day's remainder and returns the whole micros to book.
func (c *dayCarry) book(day, cpm int64) int64 {
	i := -1
	switch {
	case day == c.day[0]:
		i = 0
	case day == c.day[1]:
		i = 1
	case day > c.day[0]:
		c.day[1], c.rem[1] = c.day[0], c.rem[0]
		c.day[0], c.rem[0] = day, 0
		i = 0
	case day > c.day[1]:
		c.day[1], c.rem[1] = day, 0
		i = 1
	}
	if i < 0 {
		return cpm / 1000 // older than both days: rounded on its own
	}
	v := c.rem[i] + cpm
	c.rem[i] = v % 1000
	return v / 1000
}

// published remembers what was last published of each campaign, so that a state that says nothing
// new is not sent every interval. Every bidder decodes every state it is sent, and with 10,000
// campaigns publishing them all each second cost each bidder a burst of CPU and garbage per second
// that showed in its p99 (4 ms and more at 500 requests/s on two cores). A state is sent again when
// what bidders act on moves (throttle or multiplier by more than 1% of itself, status, day), and
// otherwise every refresh, well inside the bidders' staleness tolerance, so a quiet campaign never
// goes stale and dashboards' spend figures lag by at most a refresh. Comparing with the last state
// *sent* (not the last computed) means small steps add up until they are worth sending.
//
// Refreshes are spread: from two intervals on (refresh = 3 intervals), at most a third of the
// campaigns are re-sent unchanged in one step, else campaigns published together at start would be
// refreshed together for ever, a burst of every state at once every refresh; at three they go
// regardless, so none is ever older than a refresh.
type published struct {
	refresh time.Duration
	last    map[string]State
	budget  int // unchanged re-sends left in this step
}

func newPublished(refresh time.Duration) *published {
	return &published{refresh: refresh, last: map[string]State{}}
}

// beginStep starts a step of n states.
func (p *published) beginStep(n int) { p.budget = n/3 + 1 }

// dueness is whether and how a state is to be published.
type dueness int

const (
	notDue      dueness = iota
	sendNow             // new, or bidders would act differently on it
	sendRefresh         // unchanged, re-sent so that it does not go stale
)

// due reports whether st must be published, and if so records it as published.
func (p *published) due(st State) dueness {
	old, ok := p.last[st.CampaignID]
	if ok && sameAction(old, st) {
		// Re-send only once the refresh is near, and the early ones within the step's budget;
		// the rest wait a step. One whose refresh is due goes whatever the budget: with the budget
		// alone, when the steps' times lined up exactly the campaigns first in the step's order
		// took it every time and the last ones waited without bound.
		age := st.UpdatedAt.Sub(old.UpdatedAt)
		if age < p.refresh*2/3 || (age < p.refresh && p.budget <= 0) {
			return notDue
		}
		p.budget--
		p.last[st.CampaignID] = st
		return sendRefresh
	}
	p.last[st.CampaignID] = st
	return sendNow
}

// sameAction reports whether bidders acting on b would do what they do acting on a.
func sameAction(a, b State) bool {
	return near(a.Throttle, b.Throttle) && near(a.Multiplier, b.Multiplier) && a.Status == b.Status &&
		a.Day.Equal(b.Day) && a.DailyBudget == b.DailyBudget && a.TotalBudget == b.TotalBudget
}

func near(a, b float64) bool {
	if a == 0 || b == 0 {
		return a == b
	}
	return math.Abs(a-b) <= 0.01*max(math.Abs(a), math.Abs(b))
}

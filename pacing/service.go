package pacing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
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
	gen      int  // assignments so far: what was published before the latest one is no guide
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

	reader := events.NewStateReader(s.cfg.Brokers, events.TopicPacing, Feed{
		State: func(st State) {
			s.mu.Lock()
			if old, ok := s.snapshot[st.CampaignID]; !ok || st.UpdatedAt.After(old.UpdatedAt) {
				s.snapshot[st.CampaignID] = st
			}
			s.mu.Unlock()
		},
		Bad: func(key string, err error) {
			s.log.Warn("unreadable pacing record skipped", "key", key, "error", err)
		},
	}.Record)
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
		// rtb.bids is read for its traffic reports; the sampled bids around them, most of the
		// topic, are passed over without being decoded.
		Types: []events.Type{events.Win, events.Bill, events.Traffic},
		// Traffic counts feed a once-a-second step: they may wait for the fetch's long poll, so a
		// busy bid log wakes the pacer twice a second per partition, not once per producer batch.
		PatientTopics: []string{events.TopicBids},
		From:          s.replayFrom, Logger: s.cfg.Logger,
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
	var refreshes []State // states whose spend moved, still to re-send in this interval
	var kvs []events.KV
	perSlice := 0
	sent, sentGen := newPublished(spendRefreshes*s.ccfg.Interval), 0
	write := func(kvs []events.KV) error {
		if len(kvs) == 0 {
			return nil
		}
		// A slow write delays the next step rather than losing this one: states must not go stale.
		wctx, cancel := context.WithTimeout(ctx, max(s.ccfg.Interval, time.Second))
		defer cancel()
		err := s.writer.Write(wctx, kvs...)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("pacing states not published; bidders keep the previous ones until they go stale", "error", err)
		}
		return err
	}
	publish := func(sts []State) error {
		kvs = kvs[:0]
		for _, st := range sts {
			kvs = append(kvs, events.KV{Key: st.CampaignID, Value: EncodeState(st)})
		}
		return write(kvs)
	}
	// Sent again at the next step when a write fails; until then no heartbeat may vouch for them.
	changed := stateBatch{write: publish, forget: func(id string) { sent.forget(id) }}
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
		changed.failed = false
		var hb []Heartbeat
		states, hb = s.step(states, func(gen int, chunk []State) {
			if gen != sentGen {
				// Another member may have published other states for these campaigns meanwhile:
				// every state goes out again before a heartbeat of ours vouches for it.
				sent, sentGen = newPublished(spendRefreshes*s.ccfg.Interval), gen
			}
			for i := range chunk {
				st := &chunk[i]
				switch sent.due(st) {
				case sendNow:
					changed.add(*st)
				case sendRefresh:
					refreshes = append(refreshes, *st)
				}
			}
		})
		changed.flush()
		if !changed.failed && len(hb) > 0 {
			kvs = kvs[:0]
			for _, h := range hb {
				kvs = append(kvs, events.KV{Key: HeartbeatKey(h.Partition), Value: EncodeHeartbeat(h)})
			}
			write(kvs)
		}
		refreshBuf = refreshes
		// One slice fewer than the trickle ticks in an interval, so they are all out before the
		// next step however the two tickers drift.
		perSlice = (len(refreshes) + refreshSlices - 2) / (refreshSlices - 1)
	}
}

// stateBatch gathers the states a step found due and writes them publishChunk at a time. A chunk
// of the step ends on time as well as on count, so it may hold a few states: one write a chunk
// would be up to 16 times as many writes, each a produce request (and a partial batch waiting out
// the writer's BatchTimeout) and a fetch woken in every bidder.
type stateBatch struct {
	states []State
	write  func([]State) error
	forget func(campaignID string) // a state whose write failed
	failed bool                    // a write failed since the step began
}

func (b *stateBatch) add(st State) {
	b.states = append(b.states, st)
	if len(b.states) >= publishChunk {
		b.flush()
	}
}

func (b *stateBatch) flush() {
	if err := b.write(b.states); err != nil {
		for _, st := range b.states {
			b.forget(st.CampaignID)
		}
		b.failed = true
	}
	b.states = b.states[:0]
}

// publishChunk is how many campaigns a step computes and publishes between pauses, and pause how
// long it stops, so that a pacer of 100,000 campaigns does not hold a CPU for tens of milliseconds
// each interval: a bidder in the same process (rtb serve) or on the same cores waits behind it,
// which showed in its p99. runtime.Gosched would not do: the scheduler looks for requests ready on
// their sockets only when it has nothing else to run (or every 10 ms), so a goroutine that yields
// is run again first; a sleep leaves it nothing else.
const publishChunk = 256

// chunkBudget bounds a chunk by time as well: 256 states held the pacer's goroutine for 660 µs in
// an execution trace of rtb serve at 10,000 campaigns and 10,000 requests/s.
const chunkBudget = 200 * time.Microsecond

func pause() { time.Sleep(50 * time.Microsecond) }

// refreshSlices is how many slices an interval's spend refreshes are spread over, so that they do
// not make a burst of work in the pacer, the broker and every bidder at once; states that changed
// what bidders do still go out at once, as the step makes them.
const refreshSlices = 10

// spendRefreshes is how many intervals apart a state whose spend moved (and nothing bidders act on)
// is re-sent, for the dashboards of bidders (the pacer's own read model has every step).
const spendRefreshes = 10

// step runs one control step if this member owns partitions and has replayed them, in chunks of
// at most publishChunk campaigns and chunkBudget, calling each with the assignment's number and every chunk's states
// (valid until it returns), with a pause between chunks. It returns the heartbeats of the partitions whose campaigns it stepped to
// the end, none if the assignment changed meanwhile (the states are then another member's to
// vouch for).
func (s *Service) step(buf []State, each func(gen int, chunk []State)) ([]State, []Heartbeat) {
	s.mu.Lock()
	if !s.live {
		s.mu.Unlock()
		return buf, nil
	}
	ctrl, gen := s.ctrl, s.gen
	var hb []Heartbeat
	for p := range s.parts {
		hb = append(hb, Heartbeat{Partition: p, Partitions: s.total})
	}
	s.mu.Unlock()
	now := s.cfg.Now()
	complete, first := true, true
	buf = ctrl.UpdateChunks(buf, now, publishChunk, chunkBudget, func(chunk []State) bool {
		if !first {
			pause()
		}
		first = false
		s.mu.Lock()
		if !s.live || s.ctrl != ctrl {
			s.mu.Unlock()
			complete = false
			return false
		}
		if rm := s.cfg.ReadModel; rm != nil {
			for _, st := range chunk {
				rm.Apply(st)
			}
		}
		s.mu.Unlock()
		each(gen, chunk)
		return true
	})
	if !complete {
		return buf, nil
	}
	until := now.Add(s.ccfg.StateDelay + s.ccfg.Interval)
	for i := range hb {
		hb[i].UpdatedAt, hb[i].ValidUntil = now, until
	}
	slices.SortFunc(hb, func(a, b Heartbeat) int { return a.Partition - b.Partition })
	if rm := s.cfg.ReadModel; rm != nil {
		// Quiet campaigns are not stepped every interval (Controller.UpdateChunks): the pacer's own
		// read model, like every bidder's, keeps their last state current by the heartbeat.
		for _, h := range hb {
			rm.Heartbeat(h)
		}
	}
	return buf, hb
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
	s.gen++
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
	if e.Type == events.Traffic && len(e.Counts) > 0 {
		// A report of a bidder for the campaigns of one partition.
		for _, c := range e.Counts {
			if _, ok := s.owned[c.CampaignID]; ok {
				s.ctrl.Traffic(c.CampaignID, int(c.N), e.TS)
			}
		}
		return nil
	}
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
// new is not sent again. Every bidder decodes every state it is sent: with 10,000 campaigns,
// publishing them all each second cost each bidder a burst of CPU and garbage per second that
// showed in its p99, and re-sending unchanged ones every few seconds, so that they would not go
// stale, still grew with the number of campaigns when nothing happened. A state is sent when what
// bidders act on moves (throttle or multiplier by more than 1% of itself, status, day, budgets);
// its validity is then kept up by the pacer's heartbeats, one per partition and interval whatever
// the number of campaigns. A state whose spend moved, and nothing else, is re-sent at most every
// refresh, for the bidders' dashboards. Comparing with the last state *sent* (not the last computed)
// means small steps add up until they are worth sending.
type published struct {
	refresh time.Duration
	last    map[string]*sentState
}

// sentState is what due compares of the state last sent.
type sentState struct {
	throttle, multiplier   float64
	status                 string
	day, updatedAt         time.Time
	dailyBudget, total     int64
	spentToday, spentTotal int64
}

func (p *sentState) set(st *State) {
	*p = sentState{st.Throttle, st.Multiplier, st.Status, st.Day, st.UpdatedAt, st.DailyBudget, st.TotalBudget, st.SpentToday, st.SpentTotal}
}

func newPublished(refresh time.Duration) *published {
	return &published{refresh: refresh, last: map[string]*sentState{}}
}

// dueness is whether and how a state is to be published.
type dueness int

const (
	notDue      dueness = iota
	sendNow             // new, or bidders would act differently on it
	sendRefresh         // bidders would act alike, but its spend moved since it was last sent
)

// due reports whether st must be published, and if so records it as published.
func (p *published) due(st *State) dueness {
	old := p.last[st.CampaignID]
	if old == nil {
		old = &sentState{}
		p.last[st.CampaignID] = old
		old.set(st)
		return sendNow
	}
	if !sameAction(old, st) {
		old.set(st)
		return sendNow
	}
	if (old.spentToday == st.SpentToday && old.spentTotal == st.SpentTotal) || st.UpdatedAt.Sub(old.updatedAt) < p.refresh {
		return notDue
	}
	old.set(st)
	return sendRefresh
}

// forget makes the campaign's next state go out as new (its last publication failed).
func (p *published) forget(id string) { delete(p.last, id) }

// sameAction reports whether bidders acting on b would do what they do acting on a.
func sameAction(a *sentState, b *State) bool {
	return near(a.throttle, b.Throttle) && near(a.multiplier, b.Multiplier) && a.status == b.Status &&
		a.day.Equal(b.Day) && a.dailyBudget == b.DailyBudget && a.total == b.TotalBudget
}

func near(a, b float64) bool {
	if a == 0 || b == 0 {
		return a == b
	}
	return math.Abs(a-b) <= 0.01*max(math.Abs(a), math.Abs(b))
}

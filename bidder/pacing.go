package bidder

import (
	"context"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"rtb/events"
)

// PacingConfig is how the bidder obeys the pacer. The zero value disables pacing: every campaign is
// admitted at its full bid.
type PacingConfig struct {
	Enabled bool
	// Unknown is the throttle for a campaign the pacer has not spoken about yet (just added, or the
	// bidder just started). A short burst at full admission costs little of a day's budget; a bidder
	// that stays silent until its first pacing state loses every auction of its first seconds.
	Unknown float64
	// StaleAfter is how long past a state's validity the bidder keeps acting on it. After that the
	// campaign is not admitted: a pacer that has gone quiet must not let a campaign overspend.
	StaleAfter time.Duration
	// TrafficInterval is how often the auctions each campaign was eligible for are reported to the
	// pacer (as traffic reports); default 1s.
	TrafficInterval time.Duration
	// TrafficPartitions says how many partitions the traffic reports' topic has, so that a report
	// can carry the counts of all the campaigns of one partition (and so of one pacer); it is asked
	// again every few minutes. Nil, or an error, and reports are one event per campaign.
	TrafficPartitions func(context.Context) (int, error)
}

// pacingSlot is one campaign's pacing state as the bid path reads it: written by the pacing feed,
// read without locks by every request.
type pacingSlot struct {
	id         string
	throttle   atomic.Uint64 // float64 bits
	multiplier atomic.Uint64 // float64 bits
	validUntil atomic.Int64  // unix nanoseconds; 0 = no state received yet
	part       atomic.Int32  // partition of the campaign among the heartbeats' Partitions; -1 unknown
	traffic    atomic.Int64  // auctions the campaign was eligible for since the last report
	bids       atomic.Int64  // bids made since the bidder started (/api/campaigns): no metric series per campaign
	next       *pacingSlot   // the reporter's list of slots with traffic (see pacingTable.busy)
}

// heartbeats holds, per partition of the event topics, until when its pacer vouches for the
// states it last published: a pacer re-sends only states that changed, so a quiet campaign's own
// validity runs out while its pacer's heartbeat keeps it current.
type heartbeats struct {
	total int
	until []atomic.Int64 // unix nanoseconds
}

// pacingTable outlives engines: a campaign reload keeps the pacing state of the campaigns that stay.
type pacingTable struct {
	mu    sync.Mutex
	slots map[string]*pacingSlot
	hb    atomic.Pointer[heartbeats]
	// busy is a lock-free stack of the slots whose traffic went from 0 to 1 since the reporter
	// last took it: the reporter visits only campaigns that saw traffic, so an interval costs the
	// same with 100 campaigns as with 100,000 when few of them are eligible.
	busy atomic.Pointer[pacingSlot]
}

func (t *pacingTable) slot(id string) *pacingSlot {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.slots == nil {
		t.slots = map[string]*pacingSlot{}
	}
	s, ok := t.slots[id]
	if !ok {
		s = &pacingSlot{id: id}
		s.multiplier.Store(math.Float64bits(1))
		s.part.Store(-1)
		if h := t.hb.Load(); h != nil {
			s.part.Store(int32(events.PartitionOf(id, h.total)))
		}
		t.slots[id] = s
	}
	return s
}

// count records one auction the campaign was eligible for; the first of an interval puts the slot
// on the reporter's list. A slot on the list has traffic ≥ 1 until the reporter takes it, so it is
// never pushed twice while the reporter walks the list.
func (t *pacingTable) count(s *pacingSlot) {
	if s.traffic.Add(1) != 1 {
		return
	}
	for {
		head := t.busy.Load()
		s.next = head
		if t.busy.CompareAndSwap(head, s) {
			return
		}
	}
}

// takeBusy returns the slots with traffic and their counts, zeroing them.
func (t *pacingTable) takeBusy(dst []trafficCount) []trafficCount {
	head := t.busy.Swap(nil)
	// The links are read before any count is taken: once a slot's traffic is zeroed a request may
	// push it onto the new list, rewriting its next.
	first := len(dst)
	for s := head; s != nil; s = s.next {
		dst = append(dst, trafficCount{slot: s})
	}
	for i := first; i < len(dst); i++ {
		dst[i].n = dst[i].slot.traffic.Swap(0)
	}
	return dst
}

type trafficCount struct {
	slot *pacingSlot
	n    int64
}

// SetPacing applies a pacing state received from the pacer (rtb.pacing). It is safe to call while
// requests are served; they see the new state from their next read.
func (b *Bidder) SetPacing(campaignID string, throttle, multiplier float64, validUntil time.Time) {
	s := b.pacing.slot(campaignID)
	s.throttle.Store(math.Float64bits(min(max(throttle, 0), 1)))
	if multiplier <= 0 || math.IsNaN(multiplier) {
		multiplier = 1
	}
	s.multiplier.Store(math.Float64bits(multiplier))
	s.validUntil.Store(validUntil.UnixNano())
}

// SetPacingHeartbeat applies a pacer's heartbeat: the states it last published for the campaigns of
// partition part (of total partitions of the event topics, events.PartitionOf) hold until
// validUntil. Heartbeats never make a campaign known: one without a state stays at
// PacingConfig.Unknown.
func (b *Bidder) SetPacingHeartbeat(part, total int, validUntil time.Time) {
	if total <= 0 || part < 0 || part >= total {
		return
	}
	t := &b.pacing
	h := t.hb.Load()
	if h == nil || h.total != total {
		t.mu.Lock()
		if h = t.hb.Load(); h == nil || h.total != total {
			h = &heartbeats{total: total, until: make([]atomic.Int64, total)}
			for id, s := range t.slots {
				s.part.Store(int32(events.PartitionOf(id, total)))
			}
			t.hb.Store(h)
		}
		t.mu.Unlock()
	}
	for v := validUntil.UnixNano(); ; {
		old := h.until[part].Load()
		if v <= old || h.until[part].CompareAndSwap(old, v) {
			return
		}
	}
}

// validUntil is until when the campaign's state holds: its own validity or its pacer's heartbeat's,
// whichever is later; 0 when no state was received.
func (t *pacingTable) validUntil(s *pacingSlot) int64 {
	until := s.validUntil.Load()
	if until == 0 {
		return 0
	}
	if h := t.hb.Load(); h != nil {
		if p := s.part.Load(); p >= 0 && int(p) < len(h.until) {
			until = max(until, h.until[p].Load())
		}
	}
	return until
}

// admit draws whether the campaign takes part in this auction, counting the opportunity for the
// pacer first (whatever the draw), and returns its bid multiplier.
func (p *PacingConfig) admit(t *pacingTable, s *pacingSlot, now time.Time) (bool, float64) {
	if !p.Enabled {
		return true, 1
	}
	t.count(s)
	until := t.validUntil(s)
	throttle := p.Unknown
	if until != 0 {
		if now.UnixNano() > until+int64(p.StaleAfter) {
			return false, 1
		}
		throttle = math.Float64frombits(s.throttle.Load())
	}
	if throttle <= 0 || (throttle < 1 && rand.Float64() >= throttle) {
		return false, 1
	}
	return true, math.Float64frombits(s.multiplier.Load())
}

// maxReportBytes bounds one traffic report: the campaigns of a partition that saw traffic go out in
// as few messages as fit, each well under Kafka's default message size (1 MiB) and the producer's
// batch; 100,000 campaigns with traffic over 8 partitions make about 200 KB a partition.
const maxReportBytes = 512 << 10

func decimalLen(n int64) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

// partitionsMaxAge is how long a partition count is trusted before it is asked again (partitions
// added to a topic are rare, but must not misroute traffic for ever).
const partitionsMaxAge = 5 * time.Minute

// ReportTraffic publishes, every TrafficInterval until ctx is done, how many auctions each campaign
// was eligible for: one report per partition of the campaigns that saw traffic (so it reaches the
// pacer that owns them), whatever the number of campaigns.
func (b *Bidder) ReportTraffic(ctx context.Context) {
	if !b.cfg.Pacing.Enabled || b.cfg.Events == nil {
		return
	}
	iv := b.cfg.Pacing.TrafficInterval
	if iv <= 0 {
		iv = time.Second
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	r := trafficReporter{b: b}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.report(ctx, b.now())
	}
}

// trafficReporter is ReportTraffic's state, kept between intervals so that reports reuse buffers.
type trafficReporter struct {
	b        *Bidder
	counts   []trafficCount
	byPart   [][]trafficCount
	parts    int // partitions of the traffic topic; 0 unknown
	askedAt  time.Time
	warned   bool
	e        events.Event
	idPrefix []byte
}

func (r *trafficReporter) partitions(ctx context.Context, now time.Time) int {
	f := r.b.cfg.Pacing.TrafficPartitions
	if f == nil || (r.parts > 0 && now.Sub(r.askedAt) < partitionsMaxAge) {
		return r.parts
	}
	r.askedAt = now
	n, err := f(ctx)
	switch {
	case err == nil && n > 0:
		r.parts, r.warned = n, false
	case r.parts == 0 && !r.warned && ctx.Err() == nil:
		r.warned = true
		r.b.log.Warn("partitions of the traffic topic unknown; traffic is reported one event per campaign until they are", "error", err)
	}
	return r.parts
}

func (r *trafficReporter) report(ctx context.Context, now time.Time) {
	r.counts = r.b.pacing.takeBusy(r.counts[:0])
	if len(r.counts) == 0 {
		return
	}
	stamp := now.UTC().Format("20060102T150405.000000000")
	parts := r.partitions(ctx, now)
	if parts <= 0 {
		for _, c := range r.counts {
			if c.n == 0 {
				continue
			}
			r.e = events.Event{V: events.Version, Type: events.Traffic, TS: now, CampaignID: c.slot.id, Count: c.n,
				Exchange: "all", ID: r.b.cfg.BidIDPrefix + "traffic-" + c.slot.id + "-" + stamp}
			r.b.cfg.Events.Publish(&r.e)
		}
		return
	}
	for len(r.byPart) < parts {
		r.byPart = append(r.byPart, nil)
	}
	for i := range r.byPart {
		r.byPart[i] = r.byPart[i][:0]
	}
	for _, c := range r.counts {
		if c.n > 0 {
			p := events.PartitionOf(c.slot.id, parts)
			r.byPart[p] = append(r.byPart[p], c)
		}
	}
	for p, cs := range r.byPart[:parts] {
		for chunk := 0; len(cs) > 0; chunk++ {
			r.e = events.Event{V: events.Version, Type: events.Traffic, TS: now, Exchange: "all", Counts: r.e.Counts[:0]}
			size := 0
			for len(cs) > 0 {
				// "id":n, — ids are plain (campaign ids are [A-Za-z0-9._-]), so no escapes.
				n := len(cs[0].slot.id) + 4 + decimalLen(cs[0].n)
				if size > 0 && size+n > maxReportBytes {
					break
				}
				r.e.Counts = append(r.e.Counts, events.CampaignCount{CampaignID: cs[0].slot.id, N: cs[0].n})
				r.e.Count += cs[0].n
				size += n
				cs = cs[1:]
			}
			// The key is one of the report's campaigns: the producer places it, like every event
			// of theirs, on their partition.
			r.e.CampaignID = r.e.Counts[0].CampaignID
			r.idPrefix = append(r.idPrefix[:0], r.b.cfg.BidIDPrefix...)
			r.idPrefix = append(r.idPrefix, "traffic-p"...)
			r.idPrefix = strconv.AppendInt(r.idPrefix, int64(p), 10)
			r.idPrefix = append(r.idPrefix, '.')
			r.idPrefix = strconv.AppendInt(r.idPrefix, int64(chunk), 10)
			r.idPrefix = append(r.idPrefix, '-')
			r.idPrefix = append(r.idPrefix, stamp...)
			r.e.ID = string(r.idPrefix)
			r.b.cfg.Events.Publish(&r.e)
		}
	}
}

package bidder

import (
	"context"
	"math"
	"math/rand/v2"
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
	// StaleAfter is how long past a state's ValidUntil the bidder keeps acting on it. After that the
	// campaign is not admitted: a pacer that has gone quiet must not let a campaign overspend.
	StaleAfter time.Duration
	// TrafficInterval is how often the auctions each campaign was eligible for are reported to the
	// pacer (as traffic events); default 1s.
	TrafficInterval time.Duration
}

// pacingSlot is one campaign's pacing state as the bid path reads it: written by the pacing feed,
// read without locks by every request.
type pacingSlot struct {
	throttle   atomic.Uint64 // float64 bits
	multiplier atomic.Uint64 // float64 bits
	validUntil atomic.Int64  // unix nanoseconds; 0 = no state received yet
	traffic    atomic.Int64  // auctions the campaign was eligible for since the last report
}

// pacingTable outlives engines: a campaign reload keeps the pacing state of the campaigns that stay.
type pacingTable struct {
	mu    sync.Mutex
	slots map[string]*pacingSlot
}

func (t *pacingTable) slot(id string) *pacingSlot {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.slots == nil {
		t.slots = map[string]*pacingSlot{}
	}
	s, ok := t.slots[id]
	if !ok {
		s = &pacingSlot{}
		s.multiplier.Store(math.Float64bits(1))
		t.slots[id] = s
	}
	return s
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

// admit draws whether the campaign takes part in this auction, counting the opportunity for the
// pacer first (whatever the draw), and returns its bid multiplier.
func (p *PacingConfig) admit(s *pacingSlot, now time.Time) (bool, float64) {
	if !p.Enabled {
		return true, 1
	}
	s.traffic.Add(1)
	until := s.validUntil.Load()
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

// ReportTraffic publishes, every TrafficInterval until ctx is done, how many auctions each campaign
// was eligible for, as traffic events keyed by campaign (so they reach the pacer that owns it).
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
	var e events.Event
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := b.now()
		b.pacing.mu.Lock()
		for id, s := range b.pacing.slots {
			n := s.traffic.Swap(0)
			if n == 0 {
				continue
			}
			e = events.Event{V: events.Version, Type: events.Traffic, TS: now, CampaignID: id, Count: n,
				Exchange: "all", ID: b.cfg.BidIDPrefix + "traffic-" + id + "-" + now.UTC().Format("20060102T150405.000000000")}
			b.cfg.Events.Publish(&e)
		}
		b.pacing.mu.Unlock()
	}
}

package features

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Online click-through estimates per campaign and per campaign × segment ("FORMAT|INVENTORY"),
// counted from impression and click events.
//
// Storage: plain maps, bounded by MaxCampaigns and MaxSegments, published to readers as immutable
// snapshots through an atomic pointer; the counters inside are atomics updated in place, so only
// a new key needs a new snapshot. Not ristretto, because the key space is small and known
// (campaigns × a few dozen segments, bounded by configuration, not by traffic), and because
// counts must not be lost: an evicted or refused key would silently fall back to its prior and
// learn again from zero. The bound is there against garbage, not for churn: keys past it are
// counted in Stats and left out (their estimates stay at the campaign level or the prior).
//
// Smoothing: Beta(m·prior, m·(1−prior)) as the prior on the click rate, m = PriorImpressions, so
// the estimate is (clicks + m·prior) / (impressions + m): a new campaign starts at its prior,
// moves toward what it observes as impressions accumulate, and is about halfway there after m
// impressions. Segments are shrunk the same way toward their campaign's estimate, so a rare
// segment borrows strength from its campaign instead of swinging on a handful of impressions.

// CTRConfig configures CTRs. The zero value is usable.
type CTRConfig struct {
	// PriorImpressions is m, the weight of the prior in impressions; default 1000.
	PriorImpressions float64
	// DefaultPrior is the prior Snapshot uses when given no prior function; default DefaultCTRPrior.
	DefaultPrior float64
	// MaxCampaigns and MaxSegments bound the campaigns and the campaign × segment pairs counted;
	// defaults 10,000 and 200,000.
	MaxCampaigns, MaxSegments int
	// PublishEvery is the longest a new campaign or segment waits before Estimate sees it (its
	// counts meanwhile are kept); default 100 ms. A new key copies the maps once per interval.
	PublishEvery time.Duration
}

// CTRs holds the online CTR estimates. Estimate and Snapshot are for any goroutine; Impression,
// Click and Flush too (writers are serialised by a mutex the request path never takes). A nil
// *CTRs estimates every prior.
type CTRs struct {
	m                        float64
	defaultPrior             float64
	maxCampaigns, maxSegment int
	publishEvery             time.Duration

	snap atomic.Pointer[ctrMaps]

	mu          sync.Mutex
	next        *ctrMaps // the maps with keys not yet published; nil when none
	lastPublish time.Time

	droppedKeys atomic.Uint64
}

type ctrMaps struct {
	campaigns map[string]*ctrCell
	segments  map[segKey]*ctrCell
}

type segKey struct{ campaign, segment string }

type ctrCell struct{ imps, clicks atomic.Int64 }

// NewCTRs returns empty estimates.
func NewCTRs(cfg CTRConfig) (*CTRs, error) {
	switch {
	case cfg.PriorImpressions < 0 || math.IsNaN(cfg.PriorImpressions) || math.IsInf(cfg.PriorImpressions, 0):
		return nil, fmt.Errorf("ctr: PriorImpressions %v is not a non-negative number", cfg.PriorImpressions)
	case !(cfg.DefaultPrior >= 0 && cfg.DefaultPrior <= 1):
		return nil, fmt.Errorf("ctr: DefaultPrior %v outside [0,1]", cfg.DefaultPrior)
	case cfg.MaxCampaigns < 0 || cfg.MaxSegments < 0:
		return nil, fmt.Errorf("ctr: MaxCampaigns %d or MaxSegments %d negative", cfg.MaxCampaigns, cfg.MaxSegments)
	case cfg.PublishEvery < 0:
		return nil, fmt.Errorf("ctr: PublishEvery %v negative", cfg.PublishEvery)
	}
	c := &CTRs{
		m:            cmp.Or(cfg.PriorImpressions, 1000),
		defaultPrior: cmp.Or(cfg.DefaultPrior, DefaultCTRPrior),
		maxCampaigns: cmp.Or(cfg.MaxCampaigns, 10_000),
		maxSegment:   cmp.Or(cfg.MaxSegments, 200_000),
		publishEvery: cmp.Or(cfg.PublishEvery, 100*time.Millisecond),
	}
	c.snap.Store(&ctrMaps{campaigns: map[string]*ctrCell{}, segments: map[segKey]*ctrCell{}})
	return c, nil
}

// Estimate is the smoothed CTR of campaign on segment ("" for the campaign as a whole) given the
// campaign's prior CTR. Unknown campaigns get the prior; unknown segments their campaign's
// estimate. It never blocks and does not allocate.
func (c *CTRs) Estimate(campaign, segment string, prior float64) float64 {
	prior = clamp01(prior)
	if c == nil {
		return prior
	}
	s := c.snap.Load()
	cc := s.campaigns[campaign]
	if cc == nil {
		return prior
	}
	p := smooth(cc.clicks.Load(), cc.imps.Load(), c.m, prior)
	if segment == "" {
		return p
	}
	if sc := s.segments[segKey{campaign, segment}]; sc != nil {
		return smooth(sc.clicks.Load(), sc.imps.Load(), c.m, p)
	}
	return p
}

// smooth is the posterior mean of a Beta(m·prior, m·(1−prior)) after clicks in imps. Clicks can
// outnumber the impressions seen (a click's impression before the lookback, or dropped): they
// are capped at imps so the estimate stays a rate.
func smooth(clicks, imps int64, m, prior float64) float64 {
	clicks = min(clicks, imps)
	if d := float64(imps) + m; d > 0 {
		return clamp01((float64(clicks) + m*prior) / d)
	}
	return prior
}

func clamp01(x float64) float64 {
	switch {
	case x > 1:
		return 1
	case x >= 0:
		return x
	}
	return 0 // negative or NaN
}

// Impression counts an impression of campaign on segment.
func (c *CTRs) Impression(campaign, segment string) { c.add(campaign, segment, 1, 0) }

// Click counts a click on campaign's ad on segment.
func (c *CTRs) Click(campaign, segment string) { c.add(campaign, segment, 0, 1) }

func (c *CTRs) add(campaign, segment string, imps, clicks int64) {
	if c == nil || campaign == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() {
		if c.next != nil && time.Since(c.lastPublish) >= c.publishEvery {
			c.publish()
		}
	}()
	cc := c.campaignCell(campaign)
	if cc == nil {
		return
	}
	cc.imps.Add(imps)
	cc.clicks.Add(clicks)
	if segment == "" {
		return
	}
	if sc := c.segmentCell(segKey{campaign, segment}); sc != nil {
		sc.imps.Add(imps)
		sc.clicks.Add(clicks)
	}
}

// campaignCell finds or makes campaign's cell (nil past MaxCampaigns); under mu.
func (c *CTRs) campaignCell(campaign string) *ctrCell {
	if cc := c.current().campaigns[campaign]; cc != nil {
		return cc
	}
	if len(c.current().campaigns) >= c.maxCampaigns {
		c.droppedKeys.Add(1)
		return nil
	}
	cc := &ctrCell{}
	c.writable().campaigns[campaign] = cc
	return cc
}

func (c *CTRs) segmentCell(k segKey) *ctrCell {
	if sc := c.current().segments[k]; sc != nil {
		return sc
	}
	if len(c.current().segments) >= c.maxSegment {
		c.droppedKeys.Add(1)
		return nil
	}
	sc := &ctrCell{}
	c.writable().segments[k] = sc
	return sc
}

// current is the newest maps, published or not; under mu.
func (c *CTRs) current() *ctrMaps {
	if c.next != nil {
		return c.next
	}
	return c.snap.Load()
}

// writable is a private copy of the maps to add keys to; under mu.
func (c *CTRs) writable() *ctrMaps {
	if c.next == nil {
		s := c.snap.Load()
		c.next = &ctrMaps{
			campaigns: make(map[string]*ctrCell, len(s.campaigns)+1),
			segments:  make(map[segKey]*ctrCell, len(s.segments)+1),
		}
		for k, v := range s.campaigns {
			c.next.campaigns[k] = v
		}
		for k, v := range s.segments {
			c.next.segments[k] = v
		}
	}
	return c.next
}

func (c *CTRs) publish() {
	c.snap.Store(c.next)
	c.next = nil
	c.lastPublish = time.Now()
}

// Flush makes every key counted so far visible to Estimate. The Updater calls it periodically.
func (c *CTRs) Flush() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.next != nil {
		c.publish()
	}
}

// CTREstimate is one line of Snapshot.
type CTREstimate struct {
	Campaign    string  `json:"campaign"`
	Segment     string  `json:"segment,omitempty"` // "" for the campaign as a whole
	Impressions int64   `json:"impressions"`
	Clicks      int64   `json:"clicks"`
	Prior       float64 `json:"prior"`    // the campaign's prior, as given
	Estimate    float64 `json:"estimate"` // what Estimate returns for the same prior
}

// DefaultCTRPrior is the click-through rate assumed of a campaign that states none (display
// campaigns bought per mille): 0.1%, typical of display banners.
const DefaultCTRPrior = 0.001

// Snapshot lists every campaign (Segment "") and campaign × segment counted, sorted by campaign
// then segment (the campaign's own line first), with estimates for the prior that prior gives
// each campaign (nil: CTRConfig.DefaultPrior for all), e.g. the campaign's configured prior for
// an admin endpoint. It publishes keys not yet visible to Estimate first.
func (c *CTRs) Snapshot(prior func(campaign string) float64) []CTREstimate {
	if c == nil {
		return nil
	}
	c.Flush()
	s := c.snap.Load() // published maps are never written again
	if prior == nil {
		prior = func(string) float64 { return c.defaultPrior }
	}
	out := make([]CTREstimate, 0, len(s.campaigns)+len(s.segments))
	priors := make(map[string]float64, len(s.campaigns))
	campEst := make(map[string]float64, len(s.campaigns))
	for id, cc := range s.campaigns {
		p := clamp01(prior(id))
		priors[id] = p
		imps, clicks := cc.imps.Load(), cc.clicks.Load()
		campEst[id] = smooth(clicks, imps, c.m, p)
		out = append(out, CTREstimate{Campaign: id, Impressions: imps, Clicks: clicks, Prior: p, Estimate: campEst[id]})
	}
	for k, sc := range s.segments {
		imps, clicks := sc.imps.Load(), sc.clicks.Load()
		out = append(out, CTREstimate{Campaign: k.campaign, Segment: k.segment, Impressions: imps, Clicks: clicks,
			Prior: priors[k.campaign], Estimate: smooth(clicks, imps, c.m, campEst[k.campaign])})
	}
	slices.SortFunc(out, func(a, b CTREstimate) int {
		return cmp.Or(cmp.Compare(a.Campaign, b.Campaign), cmp.Compare(a.Segment, b.Segment))
	})
	return out
}

// CTRStats are the counters of CTRs.
type CTRStats struct {
	Campaigns, Segments int
	// DroppedKeys counts events whose campaign or segment was past MaxCampaigns/MaxSegments.
	DroppedKeys uint64
}

// Stats returns the counters; a nil CTRs reports zeros.
func (c *CTRs) Stats() CTRStats {
	if c == nil {
		return CTRStats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.current()
	return CTRStats{Campaigns: len(s.campaigns), Segments: len(s.segments), DroppedKeys: c.droppedKeys.Load()}
}

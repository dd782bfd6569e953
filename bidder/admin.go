package bidder

import (
	"encoding/json"
	"net/http"
	"time"

	"rtb/features"
)

// CampaignsAPI serves the campaigns in force as JSON, for the admin port, with the bids this bidder
// has made for each since it started ("bids": {campaign id: count}, campaigns that have bid only):
// the per-campaign count that is not a metric series, so that /metrics does not grow with campaigns.
func (b *Bidder) CampaignsAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := b.eng.Load()
		bids := map[string]int64{}
		for r := range e.ranks {
			if n := e.ranks[r].pacing.bids.Load(); n > 0 {
				bids[e.index.Entries[r].Campaign.ID] = n
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(struct {
			Source    string           `json:"source"`
			LoadedAt  time.Time        `json:"loaded_at"`
			Indexed   int              `json:"indexed"`
			Bids      map[string]int64 `json:"bids"`
			Campaigns any              `json:"campaigns"`
		}{e.set.Source, e.builtAt, e.index.Len(), bids, e.set.Campaigns}); err != nil {
			b.log.Debug("write /api/campaigns", "error", err)
		}
	})
}

// CTRAPI serves the click-through estimates of snapshot (features.CTRs.Snapshot) as JSON, each
// campaign's estimate pulled toward the prior its campaign file gives, for the admin port:
// {"campaigns":[{"campaign_id","impressions","clicks","estimate","prior"}],"segments":[… "segment" …]}.
func (b *Bidder) CTRAPI(snapshot func(prior func(campaign string) float64) []features.CTREstimate) http.Handler {
	type row struct {
		CampaignID  string  `json:"campaign_id"`
		Segment     string  `json:"segment,omitempty"`
		Impressions int64   `json:"impressions"`
		Clicks      int64   `json:"clicks"`
		Estimate    float64 `json:"estimate"`
		Prior       float64 `json:"prior"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		set := b.eng.Load().set
		prior := func(id string) float64 {
			if c := set.ByID(id); c != nil && c.Bid.CTR > 0 {
				return c.Bid.CTR
			}
			return features.DefaultCTRPrior
		}
		out := struct {
			Campaigns []row `json:"campaigns"`
			Segments  []row `json:"segments"`
		}{Campaigns: []row{}, Segments: []row{}}
		for _, e := range snapshot(prior) {
			x := row{e.Campaign, e.Segment, e.Impressions, e.Clicks, e.Estimate, e.Prior}
			if e.Segment == "" {
				out.Campaigns = append(out.Campaigns, x)
			} else {
				out.Segments = append(out.Segments, x)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
}

// CapWindow is the frequency-cap window of a campaign in force (false when it has none), widened
// by a second: impressions are timed by whoever fires the pixel, whose clock may lead ours a
// little, and a window that is slightly too long only makes a cap stricter.
func (b *Bidder) CapWindow(campaignID string) (time.Duration, bool) {
	c := b.eng.Load().set.ByID(campaignID)
	if c == nil || c.FrequencyCap == nil {
		return 0, false
	}
	return time.Duration(c.FrequencyCap.Window) + time.Second, true
}

package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// What a target's admin port tells about its campaigns (GET /api/campaigns). Money is a JSON number
// of currency units (the bidder's Micros marshal exactly that way), windows are Go duration strings.
// Only the fields the market judges by are read; this package must not import the bidder's types.
type adminCampaigns struct {
	Source    string          `json:"source"`
	Campaigns []adminCampaign `json:"campaigns"`
}

type adminCampaign struct {
	ID  string `json:"id"`
	Bid struct {
		Type   string  `json:"type"`
		CPM    float64 `json:"cpm"`
		CPC    float64 `json:"cpc"`
		CTR    float64 `json:"ctr"`
		MaxBid float64 `json:"max_bid"`
	} `json:"bid"`
	Budget struct {
		Daily float64 `json:"daily"`
		Total float64 `json:"total"`
	} `json:"budget"`
	FrequencyCap *struct {
		Impressions int    `json:"impressions"`
		Window      string `json:"window"`
	} `json:"frequency_cap"`
}

// campInfo is what the market knows of one campaign of one target.
type campInfo struct {
	value     float64 // true value of an impression, per mille (currency units)
	hasValue  bool
	daily     float64
	capN      int
	capWindow time.Duration
}

// ctrEstimates is GET /api/ctr.
type ctrEstimates struct {
	Campaigns []struct {
		ID          string  `json:"campaign_id"`
		Impressions int64   `json:"impressions"`
		Clicks      int64   `json:"clicks"`
		Estimate    float64 `json:"estimate"`
		Prior       float64 `json:"prior"`
	} `json:"campaigns"`
}

var adminClient = &http.Client{Timeout: 5 * time.Second}

// errNotFound is an admin endpoint the target does not serve (yet).
type errNotFound struct{ url string }

func (e errNotFound) Error() string { return e.url + ": 404 not found" }

func getJSON(base, path string, v any) error {
	u := strings.TrimRight(base, "/") + path
	resp, err := adminClient.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return errNotFound{u}
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", u, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	return nil
}

// fetchCampaigns asks a target's admin port for its campaigns and values each impression as the
// simulator knows the truth: a fixed_cpm campaign's CPM, a target_cpc campaign's CPC times the
// campaign's true CTR (not the bidder's prior or estimate, which is what is being judged).
func fetchCampaigns(admin string, ctr Param) (map[string]*campInfo, string, error) {
	var ac adminCampaigns
	if err := getJSON(admin, "/api/campaigns", &ac); err != nil {
		return nil, "", err
	}
	out := make(map[string]*campInfo, len(ac.Campaigns))
	for _, c := range ac.Campaigns {
		ci := &campInfo{daily: c.Budget.Daily}
		switch c.Bid.Type {
		case "fixed_cpm":
			ci.value, ci.hasValue = c.Bid.CPM, true
		case "target_cpc":
			ci.value, ci.hasValue = surplusValue(c.Bid.CPC, ctr.of(c.ID)), true
		}
		if fc := c.FrequencyCap; fc != nil && fc.Impressions > 0 {
			w, err := time.ParseDuration(fc.Window)
			if err != nil || w <= 0 {
				return nil, "", fmt.Errorf("%s/api/campaigns: campaign %q: frequency_cap.window %q: not a duration", admin, c.ID, fc.Window)
			}
			ci.capN, ci.capWindow = fc.Impressions, w
		}
		out[c.ID] = ci
	}
	return out, ac.Source, nil
}

// surplusValue is a target_cpc campaign's value per mille: what a click is worth times the chance
// of one, for a thousand impressions.
func surplusValue(cpc, trueCTR float64) float64 { return cpc * trueCTR * 1000 }

// surplusOf is the advertiser's surplus of one won impression in currency units: its value less its
// price, both per mille.
func surplusOf(valueCPM, priceCPM float64) float64 { return (valueCPM - priceCPM) / 1000 }

package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMarketLearning runs the learning loop end to end, as benchmarks/market.sh does at length: two
// `rtb serve` processes with the same campaigns, one bidding full value (--shading none) and one
// learning (--shading learned), both sent the same requests by `rtb loadgen --market` with the same
// competing bids. Through Kafka, the learning bidder's trainer fits win-rate models from its wins
// and losses and its bids fall toward the surplus-maximising price; the fan-out feature updater
// counts impressions against frequency caps and clicks into CTR estimates. What a campaign manager
// would notice: far more surplus for the same campaigns, no cap exceeded, estimates moving from the
// prior toward the true CTR.
func TestMarketLearning(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary for about a minute")
	}
	bin := buildRTB(t)
	campaigns, err := filepath.Abs("testdata/market-campaigns.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type arm struct{ label, listen, admin string }
	var arms []arm
	for _, mode := range []string{"none", "learned"} {
		listen, admin, _, stop := startServe(t, bin, filepath.Join(t.TempDir(), mode),
			"--campaigns", campaigns, "--shading", mode, "--shading-interval", "2s", "--log-level", "warn")
		t.Cleanup(stop)
		arms = append(arms, arm{mode, listen, admin})
	}
	out := filepath.Join(t.TempDir(), "market.json")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "loadgen", "--market", "--seed", "7", "--rate", "200", "--duration", "40s",
		"--target", "http://"+arms[0].listen+"/openrtb2/bid,http://"+arms[1].listen+"/openrtb2/bid",
		"--admin", arms[0].admin+","+arms[1].admin, "--label", "none,learned",
		"--market-mu", "0.47,banner-300x250=0.588,banner-728x90=-0.105,banner-320x50=-0.511,video=1.792",
		"--market-sigma", "0.5", "--ctr", "0.01,m-cpc=0.02", "--out", out)
	text, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("loadgen: %v\n%s", err, text)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Comparison []struct {
			Label         string  `json:"label"`
			Wins          int64   `json:"wins"`
			Impressions   int64   `json:"impressions"`
			Surplus       float64 `json:"surplus"`
			CapViolations int64   `json:"cap_violations"`
		} `json:"comparison"`
		Targets []struct {
			Label  string `json:"label"`
			Market struct {
				Notices map[string]struct {
					S4xx int64 `json:"4xx"`
					S5xx int64 `json:"5xx"`
					Err  int64 `json:"errors"`
				} `json:"notices"`
				Campaigns []struct {
					CID      string `json:"cid"`
					CTRCheck *struct {
						Estimate float64 `json:"estimate"`
						Prior    float64 `json:"prior"`
						TrueCTR  float64 `json:"true_ctr"`
					} `json:"ctr_check"`
				} `json:"campaigns"`
			} `json:"market"`
		} `json:"targets"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, raw)
	}
	if len(rep.Comparison) != 2 || len(rep.Targets) != 2 {
		t.Fatalf("want two arms in the report:\n%s", text)
	}
	none, learned := rep.Comparison[0], rep.Comparison[1]
	t.Logf("surplus: none %.2f (%d imps), learned %.2f (%d imps)", none.Surplus, none.Impressions, learned.Surplus, learned.Impressions)
	if learned.Wins == 0 || learned.Surplus < 1.2*none.Surplus || learned.Surplus <= 0 {
		t.Errorf("learned shading made surplus %.2f, no shading %.2f: want at least 20%% more\n%s", learned.Surplus, none.Surplus, text)
	}
	for _, c := range rep.Comparison {
		if c.CapViolations != 0 {
			t.Errorf("%s: %d frequency-cap violations in the market's impression log\n%s", c.Label, c.CapViolations, text)
		}
	}
	for _, tg := range rep.Targets {
		for typ, n := range tg.Market.Notices {
			if n.S4xx+n.S5xx+n.Err > 0 {
				t.Errorf("%s: %s notices refused or failed: %+v", tg.Label, typ, n)
			}
		}
		// m-cpc's prior is 1%, the market clicks at 2%: after its impressions the estimate must
		// have left the prior toward the truth.
		for _, c := range tg.Market.Campaigns {
			if c.CID == "m-cpc" && c.CTRCheck != nil {
				if !(c.CTRCheck.Estimate > c.CTRCheck.Prior && c.CTRCheck.Estimate < 1.5*c.CTRCheck.TrueCTR) {
					t.Errorf("%s: m-cpc CTR estimate %v (prior %v, true %v): not moving toward the truth", tg.Label, c.CTRCheck.Estimate, c.CTRCheck.Prior, c.CTRCheck.TrueCTR)
				}
			}
		}
	}
	// The learning arm really used models from rtb.models.
	_, metrics := get("http://" + arms[1].admin + "/metrics")
	shaded := 0.0
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, `rtb_shading_decisions_total{decision="shaded"}`) {
			shaded, _ = strconv.ParseFloat(strings.Fields(line)[1], 64)
		}
	}
	if shaded == 0 {
		t.Errorf("the learning bidder never shaded with a model; its metrics:\n%s", metrics)
	}
}

package features

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

func newTestCTRs(t testing.TB, cfg CTRConfig) *CTRs {
	t.Helper()
	c, err := NewCTRs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// simulate counts n impressions of campaign on segment, each clicked with probability ctr.
func simulate(c *CTRs, rng *rand.Rand, campaign, segment string, n int, ctr float64) {
	for range n {
		c.Impression(campaign, segment)
		if rng.Float64() < ctr {
			c.Click(campaign, segment)
		}
	}
	c.Flush()
}

func TestCTRPriorForNewCampaign(t *testing.T) {
	c := newTestCTRs(t, CTRConfig{})
	for _, tc := range []struct {
		prior, want float64
	}{{0.002, 0.002}, {0, 0}, {-1, 0}, {2, 1}, {math.NaN(), 0}} {
		if got := c.Estimate("new", "banner-300x250|site", tc.prior); got != tc.want {
			t.Errorf("prior %v: %v, want %v", tc.prior, got, tc.want)
		}
	}
	var nilCTRs *CTRs
	if got := nilCTRs.Estimate("x", "", 0.01); got != 0.01 {
		t.Errorf("nil CTRs: %v", got)
	}
	nilCTRs.Impression("x", "")
	nilCTRs.Flush()
}

// TestCTRSmoothing: few observations stay near the prior (neither zero nor wild); many converge to
// the observed rate; a segment without data gets its campaign's estimate.
func TestCTRSmoothing(t *testing.T) {
	const prior, seg = 0.01, "banner-300x250|site"
	for _, tc := range []struct {
		name        string
		imps, click int
		lo, hi      float64
	}{
		{"no clicks in 10", 10, 0, 0.0098, 0.01},
		{"5 clicks in 10", 10, 5, 0.01, 0.0155},
		{"m impressions, true 2%: halfway", 1000, 20, 0.0149, 0.0151},
		{"clicks beyond impressions are capped", 2, 50, 0.01, 0.0121},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCTRs(t, CTRConfig{PriorImpressions: 1000})
			for range tc.imps {
				c.Impression("c", seg)
			}
			for range tc.click {
				c.Click("c", seg)
			}
			c.Flush()
			if got := c.Estimate("c", "", prior); got < tc.lo || got > tc.hi {
				t.Errorf("campaign estimate %v, want in [%v, %v]", got, tc.lo, tc.hi)
			}
			campaign := c.Estimate("c", "", prior)
			if got := c.Estimate("c", "video|app", prior); got != campaign {
				t.Errorf("unseen segment %v, want the campaign's %v", got, campaign)
			}
		})
	}
}

// TestCTRRecovers: a campaign with a known CTR, and a segment of it with another, are recovered
// within 10% once impressions are many times PriorImpressions, starting far from the prior.
func TestCTRRecovers(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	c := newTestCTRs(t, CTRConfig{PriorImpressions: 1000})
	const prior = 0.001
	simulate(c, rng, "c-1", "banner-300x250|site", 300_000, 0.02)
	simulate(c, rng, "c-1", "video|app", 100_000, 0.05)
	// the campaign: (0.02·300k + 0.05·100k)/400k = 0.0275
	for _, tc := range []struct {
		segment string
		want    float64
	}{{"", 0.0275}, {"banner-300x250|site", 0.02}, {"video|app", 0.05}} {
		got := c.Estimate("c-1", tc.segment, prior)
		if math.Abs(got-tc.want) > 0.1*tc.want {
			t.Errorf("segment %q: estimate %.5f, true %.5f: off by more than 10%%", tc.segment, got, tc.want)
		}
	}
	// Convergence is monotone in the amount of data: at 100 impressions it is still near the prior.
	c2 := newTestCTRs(t, CTRConfig{PriorImpressions: 1000})
	simulate(c2, rng, "c-2", "", 100, 0.02)
	if got := c2.Estimate("c-2", "", prior); got > 0.005 {
		t.Errorf("after 100 impressions: %v, want still near the prior %v", got, prior)
	}
}

func TestCTRSnapshot(t *testing.T) {
	c := newTestCTRs(t, CTRConfig{PriorImpressions: 10, PublishEvery: 1 << 62})
	c.Impression("b", "s2")
	c.Impression("b", "s1")
	c.Click("b", "s1")
	c.Impression("a", "")
	// Not flushed: Snapshot publishes first.
	got := c.Snapshot(func(id string) float64 {
		if id == "a" {
			return 0.5
		}
		return 0.1
	})
	want := []CTREstimate{
		{Campaign: "a", Impressions: 1, Prior: 0.5, Estimate: 5.0 / 11},
		{Campaign: "b", Impressions: 2, Clicks: 1, Prior: 0.1, Estimate: 2.0 / 12},
		{Campaign: "b", Segment: "s1", Impressions: 1, Clicks: 1, Prior: 0.1, Estimate: (1 + 10*(2.0/12)) / 11},
		{Campaign: "b", Segment: "s2", Impressions: 1, Prior: 0.1, Estimate: (10 * (2.0 / 12)) / 11},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Campaign != w.Campaign || g.Segment != w.Segment || g.Impressions != w.Impressions || g.Clicks != w.Clicks ||
			g.Prior != w.Prior || math.Abs(g.Estimate-w.Estimate) > 1e-12 {
			t.Errorf("line %d: %+v, want %+v", i, g, w)
		}
		if g.Segment == "" {
			if e := c.Estimate(g.Campaign, "", g.Prior); math.Abs(e-g.Estimate) > 1e-12 {
				t.Errorf("Estimate(%s) = %v, Snapshot says %v", g.Campaign, e, g.Estimate)
			}
		}
	}
	if d := c.Snapshot(nil); d[0].Prior != 0.001 {
		t.Errorf("default prior %v", d[0].Prior)
	}
}

func TestCTRBounds(t *testing.T) {
	c := newTestCTRs(t, CTRConfig{MaxCampaigns: 2, MaxSegments: 1})
	for _, id := range []string{"a", "b", "c"} {
		c.Impression(id, "s1")
		c.Impression(id, "s2")
	}
	c.Flush()
	st := c.Stats()
	if st.Campaigns != 2 || st.Segments != 1 || st.DroppedKeys != 2+3 {
		t.Errorf("stats %+v, want 2 campaigns, 1 segment, 5 dropped", st)
	}
	if got := c.Estimate("c", "s1", 0.3); got != 0.3 {
		t.Errorf("dropped campaign: %v, want its prior", got)
	}
}

func TestNewCTRsRefusals(t *testing.T) {
	for _, cfg := range []CTRConfig{{PriorImpressions: -1}, {PriorImpressions: math.NaN()}, {DefaultPrior: 2},
		{MaxCampaigns: -1}, {MaxSegments: -1}, {PublishEvery: -1}} {
		if _, err := NewCTRs(cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

// TestCTRConcurrent: readers during writes (for the race detector) and counts exact afterwards.
func TestCTRConcurrent(t *testing.T) {
	c := newTestCTRs(t, CTRConfig{PublishEvery: 1})
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
					c.Estimate("c-1", "s-3", 0.01)
					c.Estimate("c-9", "", 0.01)
				}
			}
		})
	}
	segs := []string{"s-1", "s-2", "s-3", ""}
	for i := range 20_000 {
		c.Impression("c-"+string(rune('0'+i%10)), segs[i%4])
		if i%10 == 0 {
			c.Click("c-1", "s-3")
		}
		if i%5000 == 0 {
			_ = c.Snapshot(nil)
		}
	}
	close(done)
	wg.Wait()
	found := false
	for _, e := range c.Snapshot(nil) {
		if e.Campaign == "c-1" && e.Segment == "" {
			found = true
			if e.Impressions != 2000 || e.Clicks != 2000 {
				t.Errorf("c-1: %+v", e)
			}
		}
	}
	if !found {
		t.Error("c-1 missing from the snapshot")
	}
}

func TestCTRAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	c := newTestCTRs(t, CTRConfig{})
	c.Impression("campaign-1", "banner-300x250|site")
	c.Flush()
	seg := string([]byte("banner-300x250|site")) // not the same pointer as the stored key
	for name, f := range map[string]func(){
		"segment":  func() { c.Estimate("campaign-1", seg, 0.01) },
		"campaign": func() { c.Estimate("campaign-1", "", 0.01) },
		"miss":     func() { c.Estimate("campaign-2", seg, 0.01) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocs", name, n)
		}
	}
}

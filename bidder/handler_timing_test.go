package bidder

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valyala/fasthttp"

	"rtb/auction"
	"rtb/bidder/campaign"
	"rtb/bidder/campaign/campaigntest"
	"rtb/features"
)

// typicalBanner is a common open-auction display request: one 300×250 imp with a format list, a
// site, a desktop device in the USA and a user with segments.
var typicalBanner = []byte(`{"id":"80ce30c53c16e6ede735f123ef6e32361bfc7b22","at":1,"cur":["USD"],"tmax":120,
"imp":[{"id":"1","bidfloor":0.03,"bidfloorcur":"USD","secure":1,"tagid":"top",
 "banner":{"w":300,"h":250,"pos":1,"format":[{"w":300,"h":250},{"w":336,"h":280}],"battr":[13,14]}}],
"site":{"id":"102855","domain":"www.site3.com","cat":["IAB3-1"],"page":"https://www.site3.com/1234.html",
 "publisher":{"id":"pub-7","name":"site3","domain":"site3.com"}},
"device":{"ua":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
 "ip":"123.145.167.10","devicetype":2,"os":"Windows","language":"en","geo":{"country":"USA","region":"CA","city":"Los Angeles"}},
"user":{"id":"55816b39711f9b5acf3b90e313ed29e51665623f","buyeruid":"b-123","data":[{"id":"dmp","segment":[{"id":"seg-3"},{"id":"seg-40"}]}]},
"bcat":["IAB25","IAB26"],"badv":["competitor.com"],"regs":{"coppa":0,"gdpr":0},
"source":{"tid":"t-1","schain":{"complete":1,"ver":"1.0","nodes":[{"asi":"exchange.com","sid":"123","hp":1}]}}}`)

// servingConfig is what rtb serve runs with: pacing obeyed (every campaign fully admitted until the
// pacer speaks), frequency caps and CTR estimates from the feature store, and learned bid shading
// with a model for the request's segment, so the bench pays for every lookup the bid path makes.
func servingConfig(t testing.TB) func(*Config) {
	caps, err := features.NewCaps(features.CapsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(caps.Close)
	ctrs, err := features.NewCTRs(features.CTRConfig{})
	if err != nil {
		t.Fatal(err)
	}
	shader, err := auction.NewLearnedShader(auction.ShaderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := auction.NewSegmentModel(auction.ModelParams{
		Key: auction.KeyOf("default", "banner-300x250|site"), Mu: math.Log(1.5e6), Sigma: 0.6, N: 1000, FittedAt: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	shader.Swap(auction.NewModels(m))
	return func(c *Config) {
		c.Pacing = PacingConfig{Enabled: true, Unknown: 1, StaleAfter: 5 * time.Second}
		c.Caps, c.CTR, c.Shader = caps, ctrs, shader
	}
}

func handlerCtx(body []byte) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/openrtb2/bid")
	ctx.Request.SetBody(body)
	return &ctx
}

func campaignSet(n int) *campaign.Set {
	s := campaigntest.Synthetic(n, 1)
	s.Campaigns = append(s.Campaigns, campaign.Samples().Campaigns...)
	return s
}

// BenchmarkHandler is the whole exchange-port handler (decode, features, targeting, auction, tokens,
// response encoding, metrics) for a typical banner request, against growing campaign counts.
func BenchmarkHandler(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("campaigns=%d", n), func(b *testing.B) {
			bd, _ := newTestBidder(b, campaignSet(n), servingConfig(b))
			h := bd.Handler()
			ctx := handlerCtx(typicalBanner)
			h(ctx)
			if ctx.Response.StatusCode() != 200 {
				b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
			}
			b.ReportAllocs()
			for b.Loop() {
				ctx.Response.Reset()
				h(ctx)
			}
		})
	}
}

// TestHandlerAllocations holds a whole bid to no allocation, as fasthttp asserts for its own paths:
// the decoder reuses the pooled request's nested objects, and nothing else on the path allocates.
// Garbage per request is what made the collector's mark phases take both cores under load. A no-bid
// is held to the same, its reason included.
func TestHandlerAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race (sync.Pool drops items); the README's test command also runs this test without it")
	}
	bd, _ := newTestBidder(t, campaignSet(1000), servingConfig(t))
	h := bd.Handler()
	floorAbove := bytes.Replace(typicalBanner, []byte(`"bidfloor":0.03`), []byte(`"bidfloor":900`), 1)
	var all []string
	for i := 1; i <= 26; i++ {
		all = append(all, fmt.Sprintf(`"IAB%d"`, i))
	}
	blocked := bytes.Replace(typicalBanner, []byte(`"bcat":["IAB25","IAB26"]`), []byte(`"bcat":[`+strings.Join(all, ",")+`]`), 1)
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		reason noBid
	}{
		{"typical banner bid", typicalBanner, 200, 0},
		{"no bid: floor above every value", floorAbove, 204, nbFloor},
		{"no bid: bcat blocks every category", blocked, 204, nbBlocked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := handlerCtx(tc.body)
			h(ctx)
			if ctx.Response.StatusCode() != tc.status {
				t.Fatalf("status %d, want %d: %s", ctx.Response.StatusCode(), tc.status, ctx.Response.Body())
			}
			var before float64
			if tc.status == 204 {
				before = testutil.ToFloat64(bd.m.noBid[tc.reason])
			}
			n := testing.AllocsPerRun(200, func() {
				ctx.Response.Reset()
				h(ctx)
			})
			if tc.status == 204 {
				if d := testutil.ToFloat64(bd.m.noBid[tc.reason]) - before; d < 200 {
					t.Errorf("rtb_no_bid_total{reason=%q} rose by %v over 200+ no-bids", tc.reason, d)
				}
			}
			const limit = 0
			if n > limit {
				t.Errorf("%s allocates %.0f times, want at most %d", tc.name, n, limit)
			}
			t.Logf("allocations per request: %.0f", n)
		})
	}
}

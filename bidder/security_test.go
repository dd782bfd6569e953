package bidder

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"rtb/bidder/campaign"
	"rtb/bidder/notice"
	"rtb/events"
)

// The exchange port faces the internet; these tests pin down what it must never do.

// serveURI runs one request through the exchange port's handler and returns the status, the
// Location header and the body.
func serveURI(b *Bidder, method, uri string, headers ...string) (int, string, string) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	for i := 0; i+1 < len(headers); i += 2 {
		ctx.Request.Header.Set(headers[i], headers[i+1])
	}
	b.Handler()(&ctx)
	return ctx.Response.StatusCode(), string(ctx.Response.Header.Peek("Location")), string(ctx.Response.Body())
}

// adminPaths are the admin port's pages, and spellings of them a path normaliser might fold onto
// them.
var adminPaths = []string{
	"/metrics", "/metrics/", "/METRICS", "//metrics", "/./metrics", "/x/../metrics", "/%6Detrics", "/metrics?format=text",
	"/api/campaigns", "/api/pacing", "/api/pacing?campaign=sample-banner", "/api/ctr", "/api/", "/api",
	"/dashboard", "/dashboard/", "/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/goroutine?debug=2",
	"/debug/pprof/cmdline", "/debug/vars", "/openrtb2/../api/campaigns", "/openrtb2/bid/../../metrics",
	"/win/../api/pacing", "/%2e%2e/metrics", "/static/../dashboard",
}

func TestExchangePortServesNothingOfTheAdminPort(t *testing.T) {
	b, _ := newTestBidder(t, campaign.Samples(), func(c *Config) { c.Events = &recorder{} })
	for _, p := range adminPaths {
		for _, method := range []string{"GET", "POST", "HEAD"} {
			status, _, body := serveURI(b, method, p)
			if status != 404 {
				t.Errorf("%s %s on the exchange port: %d %.80q, want 404", method, p, status, body)
			}
			for _, leak := range []string{"rtb_", "goroutine", "sample-", "<html", "campaigns", "spent"} {
				if strings.Contains(body, leak) {
					t.Errorf("%s %s on the exchange port leaks %q: %.200s", method, p, leak, body)
				}
			}
		}
	}
}

// The click redirect goes to the creative's landing URL whatever the query, the headers or the
// request line say: nobody can use our domain to send users elsewhere.
func TestClickRedirectNeverLeavesTheLandingURL(t *testing.T) {
	rec := &recorder{}
	b, _ := newTestBidder(t, campaign.Samples(), func(c *Config) { c.Events = rec })
	u := bidOn(t, b, exampleRequests(t)["v25-banner"], "/openrtb2/bid")
	click := path(t, u.click, nil)
	serveURI(b, "GET", click)
	evs := rec.take()
	if len(evs) != 1 {
		t.Fatalf("click: %d events", len(evs))
	}
	landing := b.landingURL(evs[0].CampaignID, evs[0].CreativeID)
	if landing == "" {
		t.Fatal("no landing URL for the clicked creative")
	}
	evil := "https://evil.example/phish"
	for _, tc := range []struct {
		name    string
		uri     string
		headers []string
	}{
		{"plain", click, nil},
		{"redirect parameters", click + "&url=" + url.QueryEscape(evil) + "&redirect=" + url.QueryEscape(evil) + "&next=" + url.QueryEscape(evil) + "&to=" + url.QueryEscape(evil), nil},
		{"a second token", click + "&t=" + url.QueryEscape(evil), nil},
		{"header injection", click + "&url=%0d%0aLocation:%20" + url.QueryEscape(evil), nil},
		{"absolute request line", "http://evil.example" + click, nil},
		{"host headers", click, []string{"Host", "evil.example", "X-Forwarded-Host", "evil.example", "Referer", evil}},
		{"path after the endpoint", strings.Replace(click, "/click?", "/click/https:%2f%2fevil.example?", 1), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, loc, _ := serveURI(b, "GET", tc.uri, tc.headers...)
			if status == 404 && tc.name == "path after the endpoint" {
				return // not the click endpoint at all: no redirect anywhere
			}
			if status != 302 {
				t.Fatalf("status %d, want 302", status)
			}
			want, _ := url.Parse(landing)
			got, err := url.Parse(loc)
			if err != nil || got.Scheme != want.Scheme || got.Host != want.Host || got.Path != want.Path || got.RawQuery != want.RawQuery {
				t.Errorf("Location %q, want the landing URL %q", loc, landing)
			}
			if strings.Contains(loc, "evil") {
				t.Errorf("Location %q leads elsewhere", loc)
			}
		})
	}
}

// A notice's campaign, user, creative, exchange and bid come from its signed token and nothing
// else: query parameters naming others are ignored, a token changed in any field or re-signed
// with another key is refused, a price above the bid is refused, and the same token billed at
// another price is the same event (counted once).
func TestNoticeTokensCannotBeReplayedElsewhere(t *testing.T) {
	rec := &recorder{}
	now := time.Now()
	b, _ := newTestBidder(t, campaign.Samples(), func(c *Config) {
		c.Events = rec
		c.Clock = func() time.Time { return now }
	})
	signer, err := notice.NewSigner([]byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	claimsA := notice.Claims{RequestID: "req-a", ImpID: "1", CampaignID: "sample-banner", CreativeID: "banner-300x250",
		Exchange: "x", Currency: "USD", BidMicros: 2_000_000, Time: now, Segment: "banner-300x250|site", User: 42}
	claimsB := claimsA
	claimsB.CampaignID, claimsB.RequestID, claimsB.User = "sample-video", "req-b", 43
	tokA := string(signer.Append(nil, &claimsA))
	tokB := string(signer.Append(nil, &claimsB))
	bill := func(tok, price string, extra ...string) string {
		return "/bill?t=" + url.QueryEscape(tok) + "&p=" + price + strings.Join(extra, "")
	}

	t.Run("query parameters naming another campaign, user or price are ignored", func(t *testing.T) {
		rec.take()
		uri := bill(tokA, "1.5", "&campaign=sample-video&campaign_id=sample-video&cid=sample-video&c=sample-video",
			"&user=43&buyeruid=someone-else&crid=video-1&exchange=other&price=1.99&bid=9&p=1.99&cur=EUR")
		if status, _, body := serveURI(b, "GET", uri); status != 200 {
			t.Fatalf("status %d %s", status, body)
		}
		evs := rec.take()
		if len(evs) != 1 {
			t.Fatalf("%d events", len(evs))
		}
		e := evs[0]
		if e.CampaignID != "sample-banner" || e.User != "000000000000002a" || e.CreativeID != "banner-300x250" ||
			e.Exchange != "x" || e.PriceMicros != 1_500_000 || e.BidMicros != 2_000_000 || e.RequestID != "req-a" {
			t.Errorf("event %+v: want campaign, user, creative, exchange, bid from token A and the first p", e)
		}
	})

	raw, err := base64.RawURLEncoding.DecodeString(tokA)
	if err != nil {
		t.Fatal(err)
	}
	rawB, _ := base64.RawURLEncoding.DecodeString(tokB)
	enc := base64.RawURLEncoding.EncodeToString
	other, _ := notice.NewSigner([]byte(strings.Repeat("attacker-key-", 4)))
	forged := claimsA
	forged.BidMicros = 50_000_000
	refused := []struct{ name, tok string }{
		{"campaign A's tag on campaign B's claims", enc(append(append([]byte{}, rawB[:len(rawB)-16]...), raw[len(raw)-16:]...))},
		{"campaign id rewritten", enc([]byte(strings.Replace(string(raw), "sample-banner", "sample-native", 1)))},
		{"request id rewritten", enc([]byte(strings.Replace(string(raw), "req-a", "req-z", 1)))},
		{"user hash changed", func() string {
			r := append([]byte{}, raw...)
			r[strings.Index(string(r), "\x2a\x05req-a")] = 43 // user 42 → 43, right before the request id
			return enc(r)
		}()},
		{"signed with another key", string(other.Append(nil, &forged))},
		{"truncated", tokA[:len(tokA)-3]},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			rec.take()
			if status, _, _ := serveURI(b, "GET", bill(tc.tok, "1.5")); status != 403 {
				t.Errorf("status %d, want 403", status)
			}
			if evs := rec.take(); len(evs) != 0 {
				t.Errorf("refused token became events: %+v", evs)
			}
		})
	}

	t.Run("a price above the bid is refused, the bid itself is not", func(t *testing.T) {
		rec.take()
		if status, _, _ := serveURI(b, "GET", bill(tokA, "2.000001")); status != 403 {
			t.Errorf("price 1 micro above the bid: status %d, want 403", status)
		}
		if status, _, _ := serveURI(b, "GET", bill(tokA, "2")); status != 200 {
			t.Errorf("price = bid: status %d, want 200", status)
		}
		if evs := rec.take(); len(evs) != 1 || evs[0].PriceMicros != 2_000_000 {
			t.Errorf("events %+v, want the one at the bid", evs)
		}
	})

	t.Run("the same token at another price is the same event", func(t *testing.T) {
		rec.take()
		serveURI(b, "GET", bill(tokB, "1"))
		serveURI(b, "GET", bill(tokB, "1.9"))
		evs := rec.take()
		if len(evs) != 2 || evs[0].ID != evs[1].ID {
			t.Fatalf("events %+v: want two with one id (consumers count it once)", evs)
		}
	})

	t.Run("a token of one bid names one event per notice type", func(t *testing.T) {
		rec.take()
		serveURI(b, "GET", "/win?t="+url.QueryEscape(tokB)+"&p=1")
		serveURI(b, "GET", bill(tokB, "1"))
		evs := rec.take()
		if len(evs) != 2 || evs[0].Type != events.Win || evs[1].Type != events.Bill || evs[0].ID == evs[1].ID {
			t.Fatalf("events %+v", evs)
		}
	})
}

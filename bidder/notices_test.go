package bidder

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"rtb/bidder/campaign"
	"rtb/events"
)

// recorder is a Publisher that keeps copies of what it is given, as the real producer must.
type recorder struct {
	mu     sync.Mutex
	events []events.Event
}

func (r *recorder) Publish(e *events.Event) {
	c := *e
	c.Counts = slices.Clone(c.Counts)
	for _, s := range []*string{&c.ID, &c.RequestID, &c.ImpID, &c.CampaignID, &c.CreativeID, &c.DealID, &c.Exchange, &c.Segment, &c.User} {
		*s = strings.Clone(*s)
	}
	r.mu.Lock()
	r.events = append(r.events, c)
	r.mu.Unlock()
}

func (r *recorder) take() []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

type bidURLs struct {
	nurl, burl, lurl, imp, click string
	price                        float64
	campaign, requestID          string
}

// bidOn posts body and returns the notice URLs of its first bid, as the exchange and browser see them.
func bidOn(t testing.TB, b *Bidder, body []byte, uri string) bidURLs {
	t.Helper()
	r := do(b, "POST", uri, body)
	if r.status != 200 {
		t.Fatalf("no bid: %d %s", r.status, r.body)
	}
	var resp struct {
		ID      string
		SeatBid []struct {
			Bid []struct {
				NURL, BURL, LURL, AdM, CID string
				Price                      float64
			}
		}
	}
	if err := json.Unmarshal(r.body, &resp); err != nil {
		t.Fatal(err)
	}
	bid := resp.SeatBid[0].Bid[0]
	u := bidURLs{nurl: bid.NURL, burl: bid.BURL, lurl: bid.LURL, price: bid.Price, campaign: bid.CID, requestID: resp.ID}
	for _, f := range strings.FieldsFunc(bid.AdM, func(r rune) bool { return r == '"' }) {
		switch {
		case strings.Contains(f, "/imp?t="):
			u.imp = f
		case strings.Contains(f, "/click?t="):
			u.click = f
		}
	}
	if u.imp == "" || u.click == "" {
		t.Fatalf("adm lacks the impression or click URL: %s", bid.AdM)
	}
	return u
}

// path turns a notice URL into the request URI the bidder serves, with the macros substituted.
func path(t testing.TB, raw string, macros map[string]string) string {
	t.Helper()
	for k, v := range macros {
		raw = strings.ReplaceAll(raw, "${"+k+"}", v)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.RequestURI()
}

func TestNoticesBecomeEvents(t *testing.T) {
	rec := &recorder{}
	now := testNow
	b, _ := newTestBidder(t, campaign.Samples(), func(c *Config) {
		c.Events = rec
		c.Clock = func() time.Time { return now }
	})
	u := bidOn(t, b, exampleRequests(t)["v25-banner"], "/openrtb2/bid?exchange=x1")
	price := map[string]string{"AUCTION_PRICE": "1.5"}

	for _, n := range []struct {
		uri    string
		status int
		typ    events.Type
	}{
		{path(t, u.nurl, price), 200, events.Win},
		{path(t, u.burl, price), 200, events.Bill},
		{path(t, u.imp, nil), 200, events.Imp},
		{path(t, u.click, nil), 302, events.Click},
		{path(t, u.lurl, map[string]string{"AUCTION_LOSS": "102", "AUCTION_MIN_TO_WIN": "2.25"}), 200, events.Loss},
	} {
		r := do(b, "GET", n.uri, nil)
		if r.status != n.status {
			t.Fatalf("%s: status %d (%s), want %d", n.typ, r.status, r.body, n.status)
		}
		evs := rec.take()
		if len(evs) != 1 {
			t.Fatalf("%s: %d events published, want 1", n.typ, len(evs))
		}
		e := evs[0]
		if e.Type != n.typ || e.V != events.Version || e.RequestID != u.requestID || e.CampaignID != u.campaign ||
			e.ImpID != "1" || e.Exchange != "x1" || e.BidMicros != int64(u.price*1e6) || !e.TS.Equal(now) || len(e.ID) != 32 {
			t.Errorf("%s event: %+v", n.typ, e)
		}
		switch n.typ {
		case events.Win, events.Bill:
			if e.PriceMicros != 1_500_000 {
				t.Errorf("%s price %d micros, want 1500000", n.typ, e.PriceMicros)
			}
		case events.Loss:
			if e.Reason != 102 || e.MinToWinMicros != 2_250_000 {
				t.Errorf("loss reason %d, min to win %d", e.Reason, e.MinToWinMicros)
			}
		case events.Imp:
			if !strings.HasPrefix(string(r.body), "GIF89a") {
				t.Errorf("impression pixel is not a GIF: %q", r.body)
			}
		}
		// The exchange retries: the same notice is accepted again and is the same logical event.
		if again := do(b, "GET", n.uri, nil); again.status != n.status {
			t.Errorf("%s retry: status %d", n.typ, again.status)
		}
		if evs := rec.take(); len(evs) != 1 || evs[0].ID != e.ID {
			t.Errorf("%s retry published %+v, want the same event id %s", n.typ, evs, e.ID)
		}
	}
	if n := testutil.ToFloat64(b.m.notices[events.Win][noticeOK]); n != 2 {
		t.Errorf("rtb_notices_total{type=win,result=ok} = %v, want 2", n)
	}
}

func TestNoticeRefusals(t *testing.T) {
	rec := &recorder{}
	now := testNow
	b, _ := newTestBidder(t, campaign.Samples(), func(c *Config) {
		c.Events = rec
		c.Clock = func() time.Time { return now }
	})
	u := bidOn(t, b, exampleRequests(t)["v25-banner"], "/openrtb2/bid")
	win := func(p string) string { return path(t, u.nurl, map[string]string{"AUCTION_PRICE": p}) }
	tampered := strings.Replace(win("1"), "t=A", "t=B", 1)
	above := win("1000")
	tests := []struct {
		name   string
		uri    string
		status int
		typ    events.Type
		result string
		later  time.Duration
	}{
		{"no token", "/win?p=1", 403, events.Win, noticeBadToken, 0},
		{"tampered token", tampered, 403, events.Win, noticeBadToken, 0},
		{"price above the bid", above, 403, events.Win, noticeFraudPrice, 0},
		{"macro not substituted", path(t, u.nurl, nil), 400, events.Win, noticeBadPrice, 0},
		{"negative price", win("-1"), 400, events.Win, noticeBadPrice, 0},
		{"not a number", win("NaN"), 400, events.Win, noticeBadPrice, 0},
		{"bill above the bid", path(t, u.burl, map[string]string{"AUCTION_PRICE": "99"}), 403, events.Bill, noticeFraudPrice, 0},
		{"expired", win("1"), 403, events.Win, noticeExpired, 25 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now = testNow.Add(tc.later)
			before := testutil.ToFloat64(b.m.notices[tc.typ][tc.result])
			r := do(b, "GET", tc.uri, nil)
			if r.status != tc.status {
				t.Errorf("status %d (%s), want %d", r.status, r.body, tc.status)
			}
			if got := testutil.ToFloat64(b.m.notices[tc.typ][tc.result]) - before; got != 1 {
				t.Errorf("rtb_notices_total{result=%s} moved by %v", tc.result, got)
			}
			if evs := rec.take(); len(evs) != 0 {
				t.Errorf("a refused notice became an event: %+v", evs)
			}
		})
	}

	t.Run("click on a campaign that went", func(t *testing.T) {
		now = testNow
		b.SetCampaigns(&campaign.Set{Source: "empty"})
		if r := do(b, "GET", path(t, u.click, nil), nil); r.status != 410 {
			t.Errorf("status %d, want 410 and no redirect", r.status)
		}
	})
	t.Run("no event sink", func(t *testing.T) {
		b2, _ := newTestBidder(t, campaign.Samples(), nil)
		u := bidOn(t, b2, exampleRequests(t)["v25-banner"], "/openrtb2/bid")
		if r := do(b2, "GET", path(t, u.nurl, map[string]string{"AUCTION_PRICE": "1"}), nil); r.status != 503 {
			t.Errorf("status %d, want 503 when events cannot be published", r.status)
		}
	})
}

func TestClickRedirectsOnlyToLandingURL(t *testing.T) {
	rec := &recorder{}
	b, _ := newTestBidder(t, campaign.Samples(), func(c *Config) { c.Events = rec })
	u := bidOn(t, b, exampleRequests(t)["v25-banner"], "/openrtb2/bid")
	uri := path(t, u.click, nil) + "&url=https://evil.example/&redirect=https://evil.example/"
	var ctx = handlerCtx(nil)
	ctx.Request.Header.SetMethod("GET")
	ctx.Request.SetRequestURI(uri)
	b.Handler()(ctx)
	loc := string(ctx.Response.Header.Peek("Location"))
	want := campaign.Samples().ByID(u.campaign).Creatives[0].LandingURL
	if ctx.Response.StatusCode() != 302 || !strings.HasPrefix(loc, "https://www.") || strings.Contains(loc, "evil") {
		t.Errorf("click: %d to %q, want 302 to the campaign's landing URL (e.g. %s)", ctx.Response.StatusCode(), loc, want)
	}
}

func TestSampledBidEvents(t *testing.T) {
	rec := &recorder{}
	b, _ := newTestBidder(t, campaign.Samples(), func(c *Config) { c.Events = rec; c.BidSampleRate = 1 })
	u := bidOn(t, b, exampleRequests(t)["v26-video"], "/openrtb2/bid")
	evs := rec.take()
	if len(evs) != 1 || evs[0].Type != events.Bid || evs[0].CampaignID != u.campaign || evs[0].BidMicros != int64(u.price*1e6) {
		t.Fatalf("bid log events %+v", evs)
	}
	b0, _ := newTestBidder(t, campaign.Samples(), func(c *Config) { c.Events = rec })
	bidOn(t, b0, exampleRequests(t)["v26-video"], "/openrtb2/bid")
	if evs := rec.take(); len(evs) != 0 {
		t.Errorf("bid events published at sample rate 0: %d", len(evs))
	}
}

// durableRecorder is a DurablePublisher whose money events become durable or not as told.
type durableRecorder struct {
	recorder
	err     error
	durable []events.Type // the types that went through PublishDurable
}

func (r *durableRecorder) PublishDurable(e *events.Event, _ time.Duration) error {
	r.mu.Lock()
	r.durable = append(r.durable, e.Type)
	r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.Publish(e)
	return nil
}

// A win, bill or impression is answered 2xx only once its event is durable; when it is not, the
// exchange gets 503 (and retries with the same event id) instead of an acknowledgement a crash
// could turn into lost money.
func TestMoneyNoticesAnsweredOnlyWhenDurable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		status  map[events.Type]int
		durable []events.Type
	}{
		{"durable", nil, map[events.Type]int{events.Win: 200, events.Bill: 200, events.Imp: 200, events.Click: 302, events.Loss: 200},
			[]events.Type{events.Win, events.Bill, events.Imp}},
		{"not durable in time", events.ErrNotDurable, map[events.Type]int{events.Win: 503, events.Bill: 503, events.Imp: 503, events.Click: 302, events.Loss: 200},
			[]events.Type{events.Win, events.Bill, events.Imp}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &durableRecorder{err: tc.err}
			b, _ := newTestBidder(t, campaign.Samples(), func(c *Config) { c.Events = rec })
			u := bidOn(t, b, exampleRequests(t)["v25-banner"], "/openrtb2/bid")
			price := map[string]string{"AUCTION_PRICE": "1.5"}
			for _, n := range []struct {
				typ events.Type
				uri string
			}{
				{events.Win, path(t, u.nurl, price)}, {events.Bill, path(t, u.burl, price)}, {events.Imp, path(t, u.imp, nil)},
				{events.Click, path(t, u.click, nil)}, {events.Loss, path(t, u.lurl, map[string]string{"AUCTION_LOSS": "102", "AUCTION_MIN_TO_WIN": "2"})},
			} {
				before := testutil.ToFloat64(b.m.notices[n.typ][noticeUnavailable])
				r := do(b, "GET", n.uri, nil)
				if r.status != tc.status[n.typ] {
					t.Errorf("%s: status %d (%s), want %d", n.typ, r.status, r.body, tc.status[n.typ])
				}
				if got := testutil.ToFloat64(b.m.notices[n.typ][noticeUnavailable]) - before; (r.status == 503) != (got == 1) {
					t.Errorf("%s: rtb_notices_total{result=unavailable} moved by %v for status %d", n.typ, got, r.status)
				}
			}
			if !slices.Equal(rec.durable, tc.durable) {
				t.Errorf("waited for durability of %v, want %v", rec.durable, tc.durable)
			}
		})
	}
}

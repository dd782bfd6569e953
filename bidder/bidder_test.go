package bidder

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valyala/fasthttp"

	"rtb/bidder/campaign"
	"rtb/bidder/notice"
	"rtb/bidder/openrtb"
	"rtb/features"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/golden")

var testNow = time.Date(2026, 11, 23, 15, 0, 0, 0, time.UTC)

const testKey = "0123456789abcdef0123456789abcdef-test-only"

// newTestBidder returns a bidder on set with a fixed clock (so no test depends on this machine's
// speed: the deadline never passes unless a test moves the clock), a fixed key and bid id prefix
// (so responses are byte-for-byte reproducible), and the sample feature store.
func newTestBidder(t testing.TB, set *campaign.Set, mod func(*Config)) (*Bidder, *prometheus.Registry) {
	t.Helper()
	signer, err := notice.NewSigner([]byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	store, err := features.New(features.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	if _, err := store.LoadSample(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := Config{
		NoticeBaseURL: "https://bid.example.com", Signer: signer, Features: store, Registerer: reg,
		Clock: func() time.Time { return testNow }, BidIDPrefix: "t-",
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(cfg, set)
	if err != nil {
		t.Fatal(err)
	}
	return b, reg
}

type response struct {
	status int
	allow  string
	body   []byte
}

// do runs one request through the exchange-port handler, as fasthttp would.
func do(b *Bidder, method, uri string, body []byte, headers ...string) response {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	for i := 0; i+1 < len(headers); i += 2 {
		ctx.Request.Header.Set(headers[i], headers[i+1])
	}
	ctx.Request.SetBody(body)
	b.Handler()(&ctx)
	return response{status: ctx.Response.StatusCode(), allow: string(ctx.Response.Header.Peek("Allow")),
		body: append([]byte(nil), ctx.Response.Body()...)}
}

func post(b *Bidder, body []byte, headers ...string) response {
	return do(b, "POST", "/openrtb2/bid", body, headers...)
}

func exampleRequests(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("openrtb/testdata/requests/*.json")
	if err != nil || len(files) < 6 {
		t.Fatalf("IAB example requests missing from openrtb/testdata/requests (%d found, %v)", len(files), err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = b
	}
	return out
}

// TestIABExamplesGolden posts every IAB example request to a bidder running the built-in sample
// campaigns and compares the answer with testdata/golden (go test -run Golden -update rewrites them).
// Every example must get a bid: that is what a new user tries first.
func TestIABExamplesGolden(t *testing.T) {
	for name, body := range exampleRequests(t) {
		t.Run(name, func(t *testing.T) {
			b, _ := newTestBidder(t, campaign.Samples(), nil)
			r := post(b, body)
			if why, ok := noBidExamples[name]; ok {
				if r.status != fasthttp.StatusNoContent {
					t.Fatalf("status %d (%s), want 204: %s", r.status, r.body, why)
				}
				return
			}
			if r.status != fasthttp.StatusOK {
				t.Fatalf("status %d (%s), want 200 with a bid", r.status, r.body)
			}
			checkResponse(t, body, r.body)
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, r.body, "", "  "); err != nil {
				t.Fatalf("response is not JSON: %v\n%s", err, r.body)
			}
			pretty.WriteByte('\n')
			path := filepath.Join("testdata", "golden", name+".json")
			if *update {
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("golden file: %v (run go test -run Golden -update)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("response differs from %s (go test -run Golden -update to accept):\n%s", path, pretty.Bytes())
			}
		})
	}
}

// noBidExamples are the examples no campaign can bid on, and why.
var noBidExamples = map[string]string{
	"v25-native": `the 2.5 specification's native example has a placeholder ("assets":[ ... ]) for its native request`,
	"v26-spec-banner": "the 2.6 specification nests user inside site, so the request names no user; the only sample " +
		"campaign for its 300x250 slot is frequency-capped, and a cap cannot hold for an unknown user",
}

// checkResponse checks what an exchange checks of a bid response, whatever the campaigns.
func checkResponse(t *testing.T, reqBody, respBody []byte) {
	t.Helper()
	var req openrtb.BidRequest
	if err := json.Unmarshal(reqBody, &req); err != nil {
		t.Fatal(err)
	}
	var resp struct {
		ID      string `json:"id"`
		Cur     string `json:"cur"`
		SeatBid []struct {
			Seat string `json:"seat"`
			Bid  []struct {
				ID, ImpID, AdM, NURL, BURL, LURL, CrID, DealID string
				Price                                          float64
				ADomain                                        []string
				Cat                                            []string
				MType                                          int
			} `json:"bid"`
		} `json:"seatbid"`
	}
	if err := json.Unmarshal(respBody, &resp); err != nil {
		t.Fatalf("response is not JSON: %v\n%s", err, respBody)
	}
	if resp.ID != req.ID {
		t.Errorf("response id %q, request id %q", resp.ID, req.ID)
	}
	if len(resp.SeatBid) != 1 || len(resp.SeatBid[0].Bid) == 0 {
		t.Fatalf("no bids in %s", respBody)
	}
	for _, bid := range resp.SeatBid[0].Bid {
		var imp *openrtb.Imp
		for i := range req.Imp {
			if req.Imp[i].ID == bid.ImpID {
				imp = &req.Imp[i]
			}
		}
		if imp == nil {
			t.Fatalf("bid for unknown imp %q", bid.ImpID)
		}
		floor := imp.BidFloor
		if bid.DealID != "" {
			for _, d := range imp.PMP.Deals {
				if d.ID == bid.DealID && d.BidFloor > 0 {
					floor = d.BidFloor
				}
			}
		} else if imp.PMP != nil && imp.PMP.PrivateAuction == 1 {
			t.Errorf("open-auction bid on a private auction imp %s", imp.ID)
		}
		if bid.Price < floor || bid.Price <= 0 {
			t.Errorf("bid price %v below floor %v", bid.Price, floor)
		}
		for _, a := range bid.ADomain {
			for _, blocked := range req.BAdv {
				if a == blocked {
					t.Errorf("bid for blocked advertiser %s", a)
				}
			}
		}
		for _, c := range bid.Cat {
			for _, blocked := range req.BCat {
				if c == blocked || strings.HasPrefix(c, blocked+"-") {
					t.Errorf("bid in blocked category %s", c)
				}
			}
		}
		for _, u := range []string{bid.NURL, bid.BURL} {
			if !strings.Contains(u, "?t=") || !strings.Contains(u, "${AUCTION_PRICE}") {
				t.Errorf("notice URL %q lacks its token or price macro", u)
			}
		}
		if !strings.Contains(bid.LURL, "${AUCTION_LOSS}") || !strings.Contains(bid.LURL, "${AUCTION_MIN_TO_WIN}") {
			t.Errorf("lurl %q lacks the loss macros", bid.LURL)
		}
		if bid.AdM == "" || strings.Contains(bid.AdM, "{{") {
			t.Errorf("adm empty or with unreplaced macros: %q", bid.AdM)
		}
		switch {
		case imp.Video != nil && bid.MType == openrtb.MTypeVideo:
			if !strings.Contains(bid.AdM, "<VAST") {
				t.Errorf("video adm is not VAST: %q", bid.AdM)
			}
		case imp.Native != nil && bid.MType == openrtb.MTypeNative:
			if !json.Valid([]byte(bid.AdM)) {
				t.Errorf("native adm is not JSON: %q", bid.AdM)
			}
		}
	}
}

// TestNoticeTokens checks that the token in a bid's notice URLs verifies and carries the bid.
func TestNoticeTokens(t *testing.T) {
	b, _ := newTestBidder(t, campaign.Samples(), nil)
	body := exampleRequests(t)["v25-banner"]
	r := post(b, body)
	var resp struct {
		SeatBid []struct {
			Bid []struct {
				ImpID, NURL, CrID string
				Price             float64
			}
		}
	}
	if err := json.Unmarshal(r.body, &resp); err != nil {
		t.Fatal(err)
	}
	bid := resp.SeatBid[0].Bid[0]
	u := bid.NURL
	tok := u[strings.Index(u, "?t=")+3 : strings.Index(u, "&")]
	c, err := b.cfg.Signer.Verify(tok, testNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if c.ImpID != bid.ImpID || c.CreativeID != bid.CrID || float64(c.BidMicros)/1e6 != bid.Price || !c.Time.Equal(testNow) || c.Currency != "USD" {
		t.Errorf("claims %+v do not match bid %+v", c, bid)
	}
	tampered := []byte(tok)
	tampered[10] ^= 1
	if _, err := b.cfg.Signer.Verify(string(tampered), testNow, time.Hour); err == nil {
		t.Error("tampered token verified")
	}
}

func gz(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestHTTPRefusals(t *testing.T) {
	b, reg := newTestBidder(t, campaign.Samples(), func(c *Config) { c.MaxBodyBytes = 4096 })
	banner := exampleRequests(t)["v25-banner"]
	tests := []struct {
		name    string
		method  string
		body    []byte
		headers []string
		status  int
		reason  string
		msg     string
	}{
		{"GET", "GET", nil, nil, 405, reasonMethod, "use POST"},
		{"PUT", "PUT", banner, nil, 405, reasonMethod, "use POST"},
		{"not json", "POST", []byte("<xml/>"), nil, 400, "not_json", "not a valid OpenRTB JSON"},
		{"empty", "POST", nil, nil, 400, "empty_body", "empty body"},
		{"missing id", "POST", []byte(`{"imp":[{"id":"1","banner":{}}]}`), nil, 400, "missing_id", "request id is missing"},
		{"no imps", "POST", []byte(`{"id":"x","imp":[]}`), nil, 400, "no_imp", "has no imp"},
		{"imp without id", "POST", []byte(`{"id":"x","imp":[{"banner":{}}]}`), nil, 400, "imp_missing_id", "has no id"},
		{"duplicate imp ids", "POST", []byte(`{"id":"x","imp":[{"id":"1","banner":{}},{"id":"1","banner":{}}]}`), nil, 400, "duplicate_imp_id", "appears twice"},
		{"imp without media", "POST", []byte(`{"id":"x","imp":[{"id":"1"}]}`), nil, 400, "imp_no_media", "none of banner"},
		{"negative floor", "POST", []byte(`{"id":"x","imp":[{"id":"1","banner":{},"bidfloor":-1}]}`), nil, 400, "negative_floor", "negative bidfloor"},
		{"bad gzip", "POST", []byte("not gzip"), []string{"Content-Encoding", "gzip"}, 400, reasonBadGzip, "not valid gzip"},
		{"gzip bomb", "POST", gz(t, bytes.Repeat([]byte(" "), 1<<20)), []string{"Content-Encoding", "gzip"}, 413, reasonTooLarge, "once decompressed"},
		{"brotli", "POST", banner, []string{"Content-Encoding", "br"}, 415, reasonEncoding, "only gzip"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(b.m.reason[tc.reason])
			r := do(b, tc.method, "/openrtb2/bid", tc.body, tc.headers...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d (%s)", r.status, tc.status, r.body)
			}
			msg := string(r.body)
			if !strings.Contains(msg, tc.msg) || strings.Count(msg, "\n") != 1 {
				t.Errorf("body %q: want one line containing %q", msg, tc.msg)
			}
			if got := testutil.ToFloat64(b.m.reason[tc.reason]) - before; got != 1 {
				t.Errorf("rtb_bid_request_errors_total{reason=%q} moved by %v, want 1", tc.reason, got)
			}
		})
	}
	if r := do(b, "GET", "/openrtb2/bid", nil); r.allow != "POST" {
		t.Error("405 without an Allow header")
	}
	if n := testutil.ToFloat64(b.m.outcome[outcomeInvalid]); n != float64(len(tests)+1) {
		t.Errorf("invalid outcomes counted %v, want %d", n, len(tests)+1)
	}
	_ = reg
}

func TestGzipAccepted(t *testing.T) {
	b, _ := newTestBidder(t, campaign.Samples(), nil)
	body := exampleRequests(t)["v25-banner"]
	plain := post(b, body)
	zipped := post(b, gz(t, body), "Content-Encoding", "gzip")
	if zipped.status != 200 || plain.status != 200 {
		t.Fatalf("status plain %d, gzip %d", plain.status, zipped.status)
	}
}

// noBidReason is the reason rtb_no_bid_total counted for the one request post made ("" for none).
func noBidReason(t *testing.T, b *Bidder, body []byte) (response, string) {
	t.Helper()
	var before [numNoBid]float64
	for i, c := range b.m.noBid {
		if c != nil {
			before[i] = testutil.ToFloat64(c)
		}
	}
	r := post(b, body)
	reason := ""
	for i, c := range b.m.noBid {
		if c != nil && testutil.ToFloat64(c) != before[i] {
			if reason != "" {
				t.Errorf("one request counted under two no-bid reasons, %s and %s", reason, noBid(i))
			}
			reason = noBid(i).String()
		}
	}
	return r, reason
}

func TestNoBid(t *testing.T) {
	b, _ := newTestBidder(t, campaign.Samples(), nil)
	for _, tc := range []struct{ name, body, reason string }{
		{"size nobody has", `{"id":"x","imp":[{"id":"1","banner":{"w":1,"h":1}}]}`, "no_match"},
		{"floor above all", `{"id":"x","imp":[{"id":"1","banner":{"w":300,"h":250},"bidfloor":1000}],"user":{"id":"u-1"}}`, "floor"},
		{"capped campaign and no user, before the floor", `{"id":"x","imp":[{"id":"1","banner":{"w":300,"h":250},"bidfloor":1000}]}`, "capped"},
		{"unknown currency", `{"id":"x","imp":[{"id":"1","banner":{"w":300,"h":250},"bidfloorcur":"XXX","bidfloor":0.1}]}`, "currency"},
		{"only unknown cur", `{"id":"x","cur":["XXX"],"imp":[{"id":"1","banner":{"w":300,"h":250}}]}`, "currency"},
		{"private, no deal", `{"id":"x","imp":[{"id":"1","banner":{"w":300,"h":250},"pmp":{"private_auction":1,"deals":[{"id":"unknown-deal"}]}}]}`, "no_match"},
		{"one imp's currency unknown, the other's size", `{"id":"x","imp":[{"id":"1","banner":{"w":300,"h":250},"bidfloorcur":"XXX","bidfloor":0.1},{"id":"2","banner":{"w":1,"h":1}}]}`, "no_match"},
		{"one imp fits nothing, the other under the floor", `{"id":"x","user":{"id":"u-1"},"imp":[{"id":"1","banner":{"w":1,"h":1}},{"id":"2","banner":{"w":728,"h":90},"bidfloor":1000}]}`, "floor"},
		{"bcat blocks the only fitting campaign", `{"id":"x","user":{"id":"u-1"},"bcat":["IAB22"],"imp":[{"id":"1","banner":{"w":160,"h":600}}]}`, "blocked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, reason := noBidReason(t, b, []byte(tc.body))
			if r.status != fasthttp.StatusNoContent || len(r.body) != 0 {
				t.Errorf("status %d body %q, want 204 and no body", r.status, r.body)
			}
			if reason != tc.reason {
				t.Errorf("no-bid reason %q, want %q", reason, tc.reason)
			}
		})
	}
}

func TestDeadline(t *testing.T) {
	body := exampleRequests(t)["v25-banner"]
	tests := []struct {
		name   string
		step   time.Duration // how far the clock moves per reading
		budget time.Duration
		tmax   string
		want   int
	}{
		{"fast answer", 0, time.Millisecond, "", 200},
		{"budget passed", 2 * time.Millisecond, time.Millisecond, "", 204},
		{"tmax tighter than budget", 300 * time.Microsecond, 50 * time.Millisecond, `"tmax":10,`, 204},
		{"tmax roomy", 300 * time.Microsecond, 50 * time.Millisecond, `"tmax":500,`, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := testNow
			b, _ := newTestBidder(t, campaign.Samples(), func(c *Config) {
				c.Budget = tc.budget
				c.Clock = func() time.Time { now = now.Add(tc.step); return now }
			})
			req := bytes.Replace(body, []byte(`"tmax"`), []byte(`"ignored_tmax"`), 1)
			req = bytes.Replace(req, []byte(`{`), []byte(`{`+tc.tmax), 1)
			r := post(b, req)
			if r.status != tc.want {
				t.Fatalf("status %d, want %d", r.status, tc.want)
			}
			if want := map[int]float64{200: 0, 204: 1}[tc.want]; testutil.ToFloat64(b.m.outcome[outcomeTimeout]) != want ||
				testutil.ToFloat64(b.m.noBid[nbDeadline]) != want {
				t.Errorf("timeouts counted %v, no-bids for the deadline %v, want %v", testutil.ToFloat64(b.m.outcome[outcomeTimeout]),
					testutil.ToFloat64(b.m.noBid[nbDeadline]), want)
			}
		})
	}
}

// blockingFeatures holds requests inside the handler until released, to fill the in-flight limit.
type blockingFeatures struct {
	entered chan struct{}
	release chan struct{}
}

func (f blockingFeatures) User(string) (*features.UserRecord, bool) {
	f.entered <- struct{}{}
	<-f.release
	return nil, false
}
func (f blockingFeatures) Publisher(string) (*features.PublisherRecord, bool) { return nil, false }

func TestShedWhenOverloaded(t *testing.T) {
	f := blockingFeatures{entered: make(chan struct{}), release: make(chan struct{})}
	b, _ := newTestBidder(t, campaign.Samples(), func(c *Config) { c.MaxInFlight = 1; c.Features = f })
	body := exampleRequests(t)["v25-banner"]
	done := make(chan response)
	go func() { done <- post(b, body) }()
	<-f.entered
	if r := post(b, body); r.status != fasthttp.StatusNoContent {
		t.Errorf("request over the in-flight limit: status %d, want 204", r.status)
	}
	close(f.release)
	if r := <-done; r.status != 200 {
		t.Errorf("held request: status %d, want 200", r.status)
	}
	if n := testutil.ToFloat64(b.m.outcome[outcomeShed]); n != 1 {
		t.Errorf("shed counted %v, want 1", n)
	}
	if n := testutil.ToFloat64(b.m.noBid[nbShed]); n != 1 {
		t.Errorf("rtb_no_bid_total{reason=\"shed\"} %v, want 1", n)
	}
}

func TestHealthAndReady(t *testing.T) {
	b, _ := newTestBidder(t, campaign.Samples(), nil)
	if r := do(b, "GET", "/healthz", nil); r.status != 200 {
		t.Errorf("healthz %d", r.status)
	}
	if r := do(b, "GET", "/readyz", nil); r.status != 200 {
		t.Errorf("readyz %d", r.status)
	}
	b.Drain()
	if r := do(b, "GET", "/readyz", nil); r.status != 503 {
		t.Errorf("readyz while draining %d, want 503", r.status)
	}
	if r := do(b, "GET", "/nope", nil); r.status != 404 {
		t.Errorf("unknown path %d, want 404", r.status)
	}
}

// TestBidsMetricHasNoCampaignLabel: rtb_bids_total keeps a series per media kind, however many
// campaigns bid (a series per campaign cost ~32 MB at 100,000 campaigns), and each campaign's bids
// are counted on /api/campaigns instead, across a reload that keeps the campaign.
func TestBidsMetricHasNoCampaignLabel(t *testing.T) {
	b, reg := newTestBidder(t, campaign.Samples(), nil)
	ex := exampleRequests(t)
	for _, name := range []string{"v25-banner", "v26-banner", "v25-video", "v26-native", "v26-app"} {
		if r := post(b, ex[name]); r.status != 200 {
			t.Fatalf("%s: status %d", name, r.status)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "rtb_bids_total" {
			continue
		}
		found = true
		if n := len(mf.GetMetric()); n != numMedia {
			t.Errorf("rtb_bids_total has %d series, want %d (one per media kind)", n, numMedia)
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "media" {
					t.Errorf("rtb_bids_total has label %s=%s; only media is allowed", l.GetName(), l.GetValue())
				}
			}
			total += m.GetCounter().GetValue()
		}
	}
	if !found || total != 5 {
		t.Errorf("rtb_bids_total sums to %v over the 5 bids made (found: %v)", total, found)
	}
	campaignBids := func() map[string]int64 {
		rec := httptest.NewRecorder()
		b.CampaignsAPI().ServeHTTP(rec, httptest.NewRequest("GET", "/api/campaigns", nil))
		var out struct{ Bids map[string]int64 }
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("/api/campaigns: %v", err)
		}
		return out.Bids
	}
	sum := func(m map[string]int64) (n int64) {
		for _, v := range m {
			n += v
		}
		return n
	}
	before := campaignBids()
	if sum(before) != 5 {
		t.Fatalf("/api/campaigns bids %v, want 5 in all", before)
	}
	if err := b.SetCampaigns(campaign.Samples()); err != nil {
		t.Fatal(err)
	}
	if after := campaignBids(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("bids per campaign after a reload %v, want %v", after, before)
	}
	if err := b.SetCampaigns(&campaign.Set{Source: "empty"}); err != nil {
		t.Fatal(err)
	}
	if after := campaignBids(); len(after) != 0 {
		t.Errorf("bids of removed campaigns still listed: %v", after)
	}
	if r := post(b, ex["v25-banner"]); r.status != 204 {
		t.Errorf("bid with no campaigns: status %d", r.status)
	}
}

func ExampleBidder_Handler() {
	signer, _ := notice.NewSigner([]byte(testKey))
	b, _ := New(Config{NoticeBaseURL: "https://bid.example.com", Signer: signer}, campaign.Samples())
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/openrtb2/bid")
	ctx.Request.SetBodyString(`{"id":"r","imp":[{"id":"1","banner":{"w":1,"h":1}}]}`)
	b.Handler()(&ctx)
	fmt.Println(ctx.Response.StatusCode())
	// Output: 204
}

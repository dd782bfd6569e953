package bidder

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"rtb/auction"
	"rtb/bidder/campaign"
	"rtb/bidder/openrtb"
)

// The conformance corpus: public sample requests no one here wrote (exchange captures and other
// OpenRTB libraries' test data) and hostile cases, each posted over HTTP to a bidder running the
// built-in sample campaigns, as an exchange would. Where every file comes from is in the corpus's
// SOURCES.md; the specification's own examples (openrtb/testdata/requests) run here too.
const conformanceDir = "openrtb/testdata/conformance"

// The classes of answer an exchange can get.
const (
	classBid   = "bid"    // 200 with a bid response that passes checkAsExchange
	classNoBid = "no-bid" // 204, empty body
	class400   = "400"    // refused as malformed, with a one-line reason
	class413   = "413"    // refused as too large
)

// conformanceCases states the class of every file of conformanceDir. For refusals, want is a
// substring of the one-line reason the exchange gets; for no-bids, why no campaign of the samples
// bids; for bids, what the file shows.
var conformanceCases = []struct{ file, class, want string }{
	// Other OpenRTB libraries' test data.
	{"bsm-breq-banner.json", classBid, "bsm/openrtb's banner request"},
	{"bsm-breq-exp.json", classBid, "expandable banner with user data segments"},
	{"bsm-breq-native.json", classNoBid, `the native request is a placeholder ("...Native Spec request as an encoded string...") and wseat names seats 771 and 772 only`},
	{"bsm-breq-video.json", classBid, "video with companions and a 2.3 protocols list"},
	{"prebid-2.5-expandable-creative.json", classBid, "the 2.5 example as prebid/openrtb keeps it (zero values dropped)"},
	{"prebid-2.5-mobile.json", classBid, "2.5 mobile example"},
	{"prebid-2.5-native-ad.json", classNoBid, `the 2.5 specification's native example has a placeholder ("assets":[ ... ]) for its native request`},
	{"prebid-2.5-pmp-with-direct-deal.json", classBid, "private auction: the bid is for deal AB-Agency1-0001 above its 2.50 floor"},
	{"prebid-2.5-simple-banner.json", classBid, "2.5 simple banner"},
	{"prebid-2.5-video.json", classBid, "2.5 video: VAST 3.0 inline"},
	{"prebid-2.6-expandable-creative.json", classBid, "2.6 expandable, data segment moved under segment[]"},
	{"prebid-2.6-mobile.json", classBid, "2.6 mobile"},
	{"prebid-2.6-pmp-with-direct-deal.json", classBid, "2.6 private auction"},
	{"prebid-2.6-simple-banner.json", classBid, "2.6 simple banner with user moved to the top level"},
	{"prebid-2.6-video.json", classBid, "2.6 video with video.apis renamed api"},

	// Exchange requests collected by RTB4FREE (jacamars/Newbidder SampleBids).
	{"rtb4free-fyber-video-at500.json", classNoBid, `"at":500 is decoded (it was a 400); wseat ["seat1"] does not name our seat`},
	{"rtb4free-fyber-mobile-inapp.json", classNoBid, `video "protocol":[3] and "at":500 decoded; wseat ["seat1"] does not name our seat`},
	{"rtb4free-fyber-video-protocol-array.json", classBid, `Fyber's "protocol":[3] (an array where 2.2 had one integer) read as protocols; bid in the EUR the request asks for`},
	{"rtb4free-w-h-strings.json", classBid, `"w":"728","h":"90": numbers written as strings`},
	{"rtb4free-secure-string.json", classBid, `"secure":"1": a number written as a string; the bid's markup and URLs are https only`},
	{"rtb4free-cappture-empty-strings.json", classBid, `"wmax":"", "topframe":"", "tmax":"": empty strings for numbers read as absent`},
	{"rtb4free-cappture.json", classNoBid, "a 99x99 banner: no sample creative has that size"},
	{"rtb4free-smaato.json", classNoBid, "the request names no user, so the frequency-capped 320x50 campaign cannot bid"},
	{"rtb4free-smaato-text-ad.json", classNoBid, "a 168x28 text ad in an app: no sample creative has that size"},
	{"rtb4free-smaato-rich-media.json", classNoBid, "a 120x20 banner: no sample creative has that size"},
	{"rtb4free-smaato-keywords-array.json", classNoBid, `user.keywords as an array (Smaato) is decoded; a 300x300 in-app banner: no sample creative has that size`},
	{"rtb4free-c1x.json", classNoBid, "user is {}: no user, so the frequency-capped 300x250 campaign cannot bid"},
	{"rtb4free-c1x-multi.json", classBid, "two imps whose ids carry # separators; the bid names its imp exactly"},
	{"rtb4free-atomx.json", classBid, "320x50 with bidfloorcur and no floor"},
	{"rtb4free-epom.json", classBid, "first price, 12 blocked categories and 7 blocked attributes honoured"},
	{"rtb4free-smartyads.json", classNoBid, "user is nested inside device, so the request names no user and the capped campaign cannot bid"},
	{"rtb4free-bidswitch-banner.json", classNoBid, `wseat ["165","16"] does not name our seat`},
	{"rtb4free-bidswitch-app.json", classNoBid, `wseat ["165","16"] does not name our seat`},
	{"rtb4free-nexage.json", classBid, "Nexage site banner"},
	{"rtb4free-nexage-video.json", classBid, "Nexage video"},
	{"rtb4free-nexage-pmp.json", classNoBid, "private auction for deal AB-Agency1-0001 at 320x50: the deal's campaign has 300x250 and 728x90 only"},
	{"rtb4free-nexage-private-auction.json", classNoBid, "private auction for deal AB-Agency1-0001 at 320x50: the deal's campaign has 300x250 and 728x90 only"},
	{"rtb4free-nexage-native-app-wall.json", classNoBid, `native assets inline in imp.native instead of in native.request (pre-2.3 Nexage): there is no native request to fill`},
	{"rtb4free-nexage-native-video.json", classNoBid, `native assets inline in imp.native instead of in native.request: there is no native request to fill`},
	{"rtb4free-openx-pmp.json", classNoBid, "private auction for deal OX-yum-ZOfr38, which no sample campaign buys"},
	{"rtb4free-gdpr-consent.json", classBid, "GDPR applies, consent string given"},
	{"rtb4free-gdpr-no-consent.json", classBid, "GDPR applies, no consent string: the sample campaigns do not target on consent"},
	{"rtb4free-liveramp.json", classBid, "LiveRamp ids in user.ext"},
	{"rtb4free-interstitial.json", classNoBid, "an interstitial banner without size and a request without user"},
	{"rtb4free-appnexus-log-record.json", class400, "has the wrong type (want object)"},
	{"rtb4free-mimes-numbers.json", class400, "has the wrong type (want string)"},
	{"rtb4free-c1x-trailing-comma.txt", class400, "invalid char at byte 1957"},
	{"rtb4free-invalid-escape.txt", class400, "invalid escape at byte 100"},
	{"rtb4free-truncated.txt", class400, "invalid char at byte 2"},
	{"rtb4free-google-protobuf.txt", class400, "invalid char at byte 0"},
	{"rtb4free-adx-protobuf-wrapper.json", class400, "request id is missing"},

	// Hostile cases, written for this corpus: not JSON.
	{"hostile-invalid-escape.txt", class400, "invalid escape"},
	{"hostile-invalid-utf8.txt", class400, "invalid UTF-8 in string"},
	{"hostile-invalid-utf8-key.txt", class400, "invalid UTF-8 in string"},
	{"hostile-overlong-utf8.txt", class400, "invalid UTF-8 in string"},
	{"hostile-surrogate-utf8.txt", class400, "invalid UTF-8 in string"},
	{"hostile-control-char.txt", class400, "control character in string"},
	{"hostile-nan.txt", class400, "invalid char"},
	{"hostile-infinity.txt", class400, "invalid char"},
	{"hostile-trailing-garbage.txt", class400, "invalid char"},
	{"hostile-two-documents.txt", class400, "invalid char"},
	{"hostile-leading-zero.txt", class400, "invalid char"},
	{"hostile-single-quotes.txt", class400, "invalid char"},
	{"hostile-comments.txt", class400, "invalid char"},
	{"hostile-trailing-comma.txt", class400, "invalid char"},
	{"hostile-bom.txt", class400, "invalid char at byte 0"},
	{"hostile-empty-body.txt", class400, "empty body"},
	{"hostile-whitespace-body.txt", class400, "empty body"},
	{"hostile-deep-nesting.txt", class400, "nesting deeper than 64"},
	// JSON, refused.
	{"hostile-quoted-nan.json", class400, "wrong type (want number)"},
	{"hostile-float-out-of-range.json", class400, "number out of range"},
	{"hostile-w-fraction.json", class400, "wrong type (want integer)"},
	{"hostile-object-for-string.json", class400, "wrong type (want string)"},
	{"hostile-duplicate-key-floor.json", class400, `duplicate key "bidfloor"`},
	{"hostile-duplicate-key-id.json", class400, `duplicate key "id"`},
	{"hostile-duplicate-key-imp.json", class400, `duplicate key "imp"`},
	{"hostile-negative-floor.json", class400, "negative bidfloor"},
	{"hostile-empty-imp.json", class400, "has no imp"},
	{"hostile-imp-empty-object.json", class400, "imp[0] has no id"},
	{"hostile-imp-no-media.json", class400, "none of banner, video, audio, native"},
	{"hostile-no-id.json", class400, "request id is missing"},
	{"hostile-null-body.json", class400, "request id is missing"},
	{"hostile-top-level-array.json", class400, "wrong type (want object)"},
	{"hostile-duplicate-imp-ids.json", class400, `imp id "1" appears twice`},
	{"hostile-site-and-app.json", class400, "more than one of site, app and dooh"},
	{"hostile-too-many-imps.json", class400, "has 65 imps, at most 64"},
	// Accepted.
	{"hostile-deep-nesting-within-bound.json", classBid, "ext nested 60 deep"},
	{"hostile-trailing-whitespace.json", classBid, "white space after the document"},
	{"hostile-w-h-floats.json", classBid, "w/h as 300.0, 2.5e2, 3E2, 250.00"},
	{"hostile-numbers-as-strings.json", classBid, `"w":"300", "bidfloor":"0.5", "secure":"1", "tmax":"200", "devicetype":"2"`},
	{"hostile-empty-strings-for-numbers.json", classBid, `"bidfloor":"", "instl":"", "tmax":""`},
	{"hostile-large-numeric-ids.json", classBid, "request id 123456789012345678901234567890 and other ids as numbers: echoed with every digit"},
	{"hostile-integers-out-of-range.json", classBid, "at 1e20, tmax 1e30, devicetype 300: read as unknown or saturated (tmax 1e30 was a 204: its nanoseconds wrapped negative)"},
	{"hostile-tmax-beyond-int64-ms.json", classBid, "tmax 10^13 ms, whose nanoseconds do not fit int64 (was a 204)"},
	{"hostile-at-500.json", classBid, "an exchange-specific auction type"},
	{"hostile-escapes.json", classBid, `escapes, a lone surrogate (read as U+FFFD) and an escaped key`},
	{"hostile-nulls.json", classBid, "null for objects, arrays and numbers"},
	{"hostile-imp-numeric-id-multi.json", classBid, "two imps with numeric ids: each bid names its imp"},
	{"hostile-segment-no-blocks.json", classBid, "an auto-intender user: sample-cpc (IAB2, motors.example, 3.00) outbids sample-banner (2.00)"},
	{"hostile-blocked-category.json", classBid, "the same with bcat IAB2: sample-cpc is excluded, sample-banner's IAB22 is no child of IAB2 and bids"},
	{"hostile-blocked-advertiser.json", classBid, "the same with badv motors.example: sample-banner bids"},
	{"hostile-battr-all.json", classBid, "every creative attribute blocked: the sample creatives declare none"},
	{"hostile-eur.json", classBid, "EUR floor and currency: the bid is in EUR above the floor"},
	{"hostile-secure.json", classBid, "secure 1: https markup and notice URLs"},
	{"hostile-deal-open-auction.json", classBid, "an open auction with deal AB-Agency1-0001: the deal campaign bids in its deal"},
	{"hostile-unknown-currency.json", classNoBid, "RUB is not in the currency table: no campaign can know it clears the floor"},
	{"hostile-floor-above-value.json", classNoBid, "a 50.00 floor is above every campaign's value"},
	{"hostile-tmax-too-short.json", classNoBid, "tmax 5 ms is below the network allowance: past the deadline on arrival"},
	{"hostile-private-auction-unknown-deal.json", classNoBid, "a private auction for a deal no campaign buys"},
	{"hostile-wseat-excludes-us.json", classNoBid, "wseat names another seat"},
}

// sourcesRow is a row of SOURCES.md's table: file and class.
var sourcesRow = regexp.MustCompile("(?m)^\\| `([^`]+)` \\| ([a-z0-9-]+) \\|")

// generatedCases are bodies too large, or too binary, to keep as files.
var generatedCases = []struct {
	name, class, want string
	body              func(t *testing.T) []byte
	headers           []string
}{
	{"huge body (300 KiB of ext)", class413, "262144-byte limit",
		func(t *testing.T) []byte { return padded(t, 300<<10) }, nil},
	{"body just under the limit", classBid, "",
		func(t *testing.T) []byte { return padded(t, 250<<10) }, nil},
	{"gzip bomb (1 MiB of spaces)", class413, "once decompressed",
		func(t *testing.T) []byte { return gz(t, bytes.Repeat([]byte(" "), 1<<20)) }, []string{"Content-Encoding", "gzip"}},
	{"gzipped request", classBid, "",
		func(t *testing.T) []byte { return gz(t, conformanceFile(t, "hostile-at-500.json")) }, []string{"Content-Encoding", "gzip"}},
}

// padded is a request that bids, grown to n bytes by an ext of a long string.
func padded(t *testing.T, n int) []byte {
	base := conformanceFile(t, "hostile-at-500.json")
	pad := n - len(base) - len(`,"ext":{"pad":""}`)
	return append(bytes.TrimRight(base, "}\n")[:len(base)-1:len(base)-1], `,"ext":{"pad":"`+strings.Repeat("x", pad)+`"}}`...)
}

func conformanceFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(conformanceDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConformance posts every corpus file and checks the class of its answer, and every 200 as an
// exchange would.
func TestConformance(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(conformanceDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, c := range conformanceCases {
		if listed[c.file] {
			t.Errorf("%s is listed twice", c.file)
		}
		listed[c.file] = true
	}
	for _, f := range files {
		if name := filepath.Base(f); name != "SOURCES.md" && !listed[name] {
			t.Errorf("%s has no expected class in conformanceCases", name)
		}
	}
	sources, err := os.ReadFile(filepath.Join(conformanceDir, "SOURCES.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{}
	for _, m := range sourcesRow.FindAllStringSubmatch(string(sources), -1) {
		documented[m[1]] = m[2]
	}
	for _, c := range conformanceCases {
		if documented[c.file] != c.class {
			t.Errorf("SOURCES.md gives %s the class %q, this test %q", c.file, documented[c.file], c.class)
		}
		delete(documented, c.file)
	}
	for f := range documented {
		t.Errorf("SOURCES.md lists %s, which this test does not", f)
	}
	for _, c := range conformanceCases {
		t.Run(c.file, func(t *testing.T) {
			body := conformanceFile(t, c.file)
			checkClass(t, body, nil, c.class, c.want)
		})
	}
	for name, body := range exampleRequests(t) {
		t.Run("spec/"+name, func(t *testing.T) {
			class := classBid
			if _, ok := noBidExamples[name]; ok {
				class = classNoBid
			}
			checkClass(t, body, nil, class, "")
		})
	}
	for _, c := range generatedCases {
		t.Run("generated/"+c.name, func(t *testing.T) {
			checkClass(t, c.body(t), c.headers, c.class, c.want)
		})
	}
}

// TestConformanceAttributes: the sample creatives declare no attributes, so battr cannot exclude one
// of them; here the highest bidder's creative has attribute 14 (windows dialog or alert style, which
// the 2.5 mobile example blocks) and must give way to the next one wherever it is blocked.
func TestConformanceAttributes(t *testing.T) {
	set, err := campaign.Parse([]byte(`campaigns:
  - id: alert-style
    advertiser_domain: loud.example
    categories: [IAB22]
    creatives:
      - {id: loud, type: banner, w: 728, h: 90, html: '<a href="{{CLICK_URL}}">!</a>', landing_url: 'https://loud.example/', attributes: [14]}
    bid: {type: fixed_cpm, cpm: 5, max_bid: 5}
    budget: {daily: 10}
  - id: plain
    advertiser_domain: calm.example
    categories: [IAB22]
    creatives:
      - {id: calm, type: banner, w: 728, h: 90, html: '<a href="{{CLICK_URL}}">.</a>', landing_url: 'https://calm.example/', attributes: [1]}
    bid: {type: fixed_cpm, cpm: 1, max_bid: 1}
    budget: {daily: 10}
`), "attributes.yaml", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"v25-app", "v26-app", "v26-spec-app"} {
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("openrtb/testdata/requests", name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			checkClassWith(t, set, body, nil, classBid, "")
		})
	}
}

// checkClass posts body through a fasthttp server configured as rtb serve configures it, with the
// sample campaigns, and checks that the answer is of class, with want in the reason of a refusal.
func checkClass(t *testing.T, body []byte, headers []string, class, want string) {
	t.Helper()
	checkClassWith(t, campaign.Samples(), body, headers, class, want)
}

func checkClassWith(t *testing.T, set *campaign.Set, body []byte, headers []string, class, want string) {
	t.Helper()
	b, _ := newTestBidder(t, set, nil)
	status, respHeader, resp := postOverHTTP(t, b, body, headers)
	switch class {
	case classBid:
		if status != fasthttp.StatusOK {
			t.Fatalf("status %d (%s), want 200 with a bid", status, resp)
		}
		if ct := respHeader.ContentType(); !bytes.HasPrefix(ct, []byte("application/json")) {
			t.Errorf("Content-Type %q", ct)
		}
		plain := body
		if slices.Contains(headers, "gzip") {
			plain = gunzipped(t, body)
		}
		checkAsExchange(t, plain, resp)
	case classNoBid:
		if status != fasthttp.StatusNoContent || len(resp) != 0 {
			t.Fatalf("status %d (%s), want 204 with no body", status, resp)
		}
	case class400, class413:
		wantStatus := fasthttp.StatusBadRequest
		if class == class413 {
			wantStatus = fasthttp.StatusRequestEntityTooLarge
		}
		if status != wantStatus {
			t.Fatalf("status %d (%.200s), want %d", status, resp, wantStatus)
		}
		if !bytes.Contains(resp, []byte(want)) || bytes.Count(resp, []byte("\n")) != 1 || !bytes.HasSuffix(resp, []byte("\n")) {
			t.Errorf("answer %q: want one line containing %q", resp, want)
		}
	default:
		t.Fatalf("unknown class %q", class)
	}
}

func postOverHTTP(t *testing.T, b *Bidder, body []byte, headers []string) (int, *fasthttp.ResponseHeader, []byte) {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: b.Handler(), ErrorHandler: b.ErrorHandler, MaxRequestBodySize: b.MaxBodyBytes(),
		NoDefaultContentType: true, NoDefaultServerHeader: true}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	conn, err := ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://bidder/openrtb2/bid")
	req.Header.SetMethod("POST")
	req.Header.SetContentType("application/json")
	req.Header.Set("X-Openrtb-Version", "2.5")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	req.SetBody(body)
	// The request is written while the answer is read: a server refusing a body over its limit answers
	// and closes without reading the rest, and a client that must finish writing first never sees it.
	go func() {
		defer fasthttp.ReleaseRequest(req)
		w := bufio.NewWriter(conn)
		if req.Write(w) == nil {
			w.Flush()
		}
	}()
	if err := resp.Read(bufio.NewReader(conn)); err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	var h fasthttp.ResponseHeader
	resp.Header.CopyTo(&h)
	return resp.StatusCode(), &h, append([]byte(nil), resp.Body()...)
}

func gunzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	out, err := fasthttp.AppendGunzipBytes(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// exchangeResponse is a bid response as an exchange reads it.
type exchangeResponse struct {
	ID      string `json:"id"`
	BidID   string `json:"bidid"`
	Cur     string `json:"cur"`
	SeatBid []struct {
		Seat string `json:"seat"`
		Bid  []struct {
			ID      string   `json:"id"`
			ImpID   string   `json:"impid"`
			Price   float64  `json:"price"`
			AdM     string   `json:"adm"`
			AdID    string   `json:"adid"`
			CID     string   `json:"cid"`
			NURL    string   `json:"nurl"`
			BURL    string   `json:"burl"`
			LURL    string   `json:"lurl"`
			ADomain []string `json:"adomain"`
			Bundle  string   `json:"bundle"`
			CrID    string   `json:"crid"`
			Cat     []string `json:"cat"`
			Attr    []int    `json:"attr"`
			DealID  string   `json:"dealid"`
			W       int64    `json:"w"`
			H       int64    `json:"h"`
			MType   int      `json:"mtype"`
		} `json:"bid"`
	} `json:"seatbid"`
}

// ortbMacro is an OpenRTB substitution ortbMacro (2.6 §4.4).
var ortbMacro = regexp.MustCompile(`\$\{([A-Z_]+)\}`)

var knownMacros = map[string]bool{"AUCTION_ID": true, "AUCTION_BID_ID": true, "AUCTION_IMP_ID": true,
	"AUCTION_SEAT_ID": true, "AUCTION_AD_ID": true, "AUCTION_PRICE": true, "AUCTION_CURRENCY": true,
	"AUCTION_MBR": true, "AUCTION_LOSS": true, "AUCTION_MIN_TO_WIN": true, "AUCTION_MULTIPLIER": true,
	"AUCTION_IMP_TS": true}

// checkAsExchange checks a 200 answer to reqBody the way an exchange validates a bid before it enters
// the auction: whatever fails here an exchange drops (or, for blocks and floors, holds against us).
func checkAsExchange(t *testing.T, reqBody, respBody []byte) {
	t.Helper()
	var req openrtb.BidRequest
	if err := openrtb.Decode(reqBody, &req); err != nil {
		t.Fatalf("the request bid on does not decode: %v", err)
	}
	if !json.Valid(respBody) {
		t.Fatalf("response is not JSON: %s", respBody)
	}
	var resp exchangeResponse
	dec := json.NewDecoder(bytes.NewReader(respBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&resp); err != nil {
		t.Fatalf("response: %v\n%.300s", err, respBody)
	}
	if resp.ID != req.ID {
		t.Errorf("response id %q, request id %q", resp.ID, req.ID)
	}
	cur := resp.Cur
	if cur == "" {
		cur = "USD"
	}
	if len(req.Cur) > 0 && !slices.Contains(req.Cur, cur) {
		t.Errorf("response currency %s, request allows %v", cur, req.Cur)
	}
	if len(resp.SeatBid) == 0 {
		t.Fatalf("200 without a seatbid: %s", respBody)
	}
	bidIDs, impsBid := map[string]bool{}, map[string]bool{}
	for _, sb := range resp.SeatBid {
		if len(sb.Bid) == 0 {
			t.Errorf("seatbid %q without bids", sb.Seat)
		}
		if (len(req.WSeat) > 0 && !slices.Contains(req.WSeat, sb.Seat)) || slices.Contains(req.BSeat, sb.Seat) {
			t.Errorf("seat %q, request wseat %v bseat %v", sb.Seat, req.WSeat, req.BSeat)
		}
		for _, bid := range sb.Bid {
			if bid.ID == "" || bidIDs[bid.ID] {
				t.Errorf("bid id %q empty or repeated", bid.ID)
			}
			bidIDs[bid.ID] = true
			var imp *openrtb.Imp
			for i := range req.Imp {
				if req.Imp[i].ID == bid.ImpID {
					imp = &req.Imp[i]
				}
			}
			if imp == nil {
				t.Errorf("bid for imp %q, which the request does not have", bid.ImpID)
				continue
			}
			if impsBid[bid.ImpID] {
				t.Errorf("two bids for imp %q", bid.ImpID)
			}
			impsBid[bid.ImpID] = true
			if bid.CrID == "" || len(bid.ADomain) == 0 {
				t.Errorf("bid %s lacks crid or adomain (exchanges require them to review creatives)", bid.ID)
			}

			// Price against the floor the bid must clear, in the response currency.
			floor, floorCur := imp.BidFloor, imp.BidFloorCur
			if bid.DealID != "" {
				var deal *openrtb.Deal
				if imp.PMP != nil {
					for i := range imp.PMP.Deals {
						if imp.PMP.Deals[i].ID == bid.DealID {
							deal = &imp.PMP.Deals[i]
						}
					}
				}
				if deal == nil {
					t.Errorf("bid for deal %q, which imp %s does not offer", bid.DealID, imp.ID)
					continue
				}
				// A deal's floor currency defaults to USD, not to the imp's (2.6 §3.2.12).
				floor, floorCur = deal.BidFloor, deal.BidFloorCur
				if len(deal.WSeat) > 0 && !slices.Contains(deal.WSeat, sb.Seat) {
					t.Errorf("bid in deal %s from seat %q, deal wseat %v", deal.ID, sb.Seat, deal.WSeat)
				}
				for _, d := range bid.ADomain {
					if len(deal.WADomain) > 0 && !slices.Contains(deal.WADomain, d) {
						t.Errorf("bid in deal %s for %s, deal wadomain %v", deal.ID, d, deal.WADomain)
					}
				}
			} else if imp.PMP != nil && imp.PMP.PrivateAuction == 1 {
				t.Errorf("open-auction bid on the private auction of imp %s", imp.ID)
			}
			if bid.MType == openrtb.MTypeVideo && imp.Video != nil && len(imp.Video.DurFloors) > 0 {
				if f, ok := imp.Video.FloorFor(vastDuration(t, bid.AdM)); ok {
					floor = f
				}
			}
			if floorCur == "" {
				floorCur = "USD"
			}
			if bid.Price <= 0 || bid.Price < inCurrency(t, floor, floorCur, cur) {
				t.Errorf("bid price %v %s, floor %v %s", bid.Price, cur, floor, floorCur)
			}

			// Blocks.
			for _, c := range bid.Cat {
				for _, blocked := range req.BCat {
					if c == blocked || strings.HasPrefix(c, blocked+"-") {
						t.Errorf("bid in blocked category %s", c)
					}
				}
			}
			if len(req.BCat) > 0 && len(bid.Cat) == 0 {
				t.Errorf("bid without cat on a request with bcat: the exchange cannot check it")
			}
			for _, a := range bid.ADomain {
				for _, blocked := range req.BAdv {
					if a == blocked || strings.HasSuffix(a, "."+blocked) {
						t.Errorf("bid for blocked advertiser %s", a)
					}
				}
			}
			if bid.Bundle != "" && slices.Contains(req.BApp, bid.Bundle) {
				t.Errorf("bid for blocked app %s", bid.Bundle)
			}
			var battr []int
			switch {
			case bid.MType == openrtb.MTypeBanner && imp.Banner != nil:
				battr = imp.Banner.BAttr
			case bid.MType == openrtb.MTypeVideo && imp.Video != nil:
				battr = imp.Video.BAttr
			case bid.MType == openrtb.MTypeNative && imp.Native != nil:
				battr = imp.Native.BAttr
			}
			for _, a := range bid.Attr {
				if slices.Contains(battr, a) {
					t.Errorf("bid with blocked attribute %d", a)
				}
			}

			// Markup of the imp's media kind.
			if bid.AdM == "" || strings.Contains(bid.AdM, "{{") {
				t.Errorf("adm empty or with unreplaced macros: %q", bid.AdM)
			}
			switch bid.MType {
			case openrtb.MTypeBanner:
				if imp.Banner == nil {
					t.Errorf("banner bid on imp %s, which offers no banner", imp.ID)
				} else if !sizeOffered(imp.Banner, bid.W, bid.H) {
					t.Errorf("banner bid %dx%d, imp offers %dx%d and formats %+v", bid.W, bid.H, imp.Banner.W, imp.Banner.H, imp.Banner.Format)
				}
				if !strings.Contains(bid.AdM, "<") || strings.Contains(bid.AdM, "<VAST") {
					t.Errorf("banner adm is not HTML: %q", bid.AdM)
				}
			case openrtb.MTypeVideo:
				if imp.Video == nil {
					t.Errorf("video bid on imp %s, which offers no video", imp.ID)
				}
				checkVAST(t, bid.AdM)
			case openrtb.MTypeNative:
				if imp.Native == nil {
					t.Errorf("native bid on imp %s, which offers no native", imp.ID)
				} else {
					checkNativeMarkup(t, imp.Native, bid.AdM)
				}
			case openrtb.MTypeAudio:
				if imp.Audio == nil {
					t.Errorf("audio bid on imp %s, which offers no audio", imp.ID)
				}
			default:
				t.Errorf("bid mtype %d", bid.MType)
			}

			// Notice URLs: absolute, with the macros the exchange substitutes and no others.
			for name, u := range map[string]string{"nurl": bid.NURL, "burl": bid.BURL, "lurl": bid.LURL} {
				for _, m := range ortbMacro.FindAllStringSubmatch(u, -1) {
					if !knownMacros[m[1]] {
						t.Errorf("%s has an unknown ortbMacro %s", name, m[0])
					}
				}
				if p, err := url.Parse(ortbMacro.ReplaceAllString(u, "1")); err != nil || !p.IsAbs() {
					t.Errorf("%s %q is not an absolute URL (%v)", name, u, err)
				}
			}
			if !strings.Contains(bid.NURL, "${AUCTION_PRICE}") || !strings.Contains(bid.BURL, "${AUCTION_PRICE}") {
				t.Errorf("nurl %q or burl %q lacks ${AUCTION_PRICE}", bid.NURL, bid.BURL)
			}
			if !strings.Contains(bid.LURL, "${AUCTION_LOSS}") || !strings.Contains(bid.LURL, "${AUCTION_MIN_TO_WIN}") {
				t.Errorf("lurl %q lacks ${AUCTION_LOSS} or ${AUCTION_MIN_TO_WIN}", bid.LURL)
			}
			if imp.Secure != nil && *imp.Secure == 1 {
				for _, s := range []string{bid.AdM, bid.NURL, bid.BURL, bid.LURL} {
					if strings.Contains(s, "http://") {
						t.Errorf("secure imp %s, but a bid URL or the markup uses http://: %.120q", imp.ID, s)
					}
				}
			}
		}
	}
}

// inCurrency converts amount of from into to as the bidder's fixed table does, rounding the floor
// up, then down into to: what a bid must reach to clear it.
func inCurrency(t *testing.T, amount float64, from, to string) float64 {
	t.Helper()
	if from == to {
		return amount
	}
	usd, ok := auction.FloorMicros(amount, from)
	if !ok {
		t.Fatalf("a bid on a floor in %s, which the currency table does not know", from)
	}
	m, ok := auction.FromAccount(usd, to)
	if !ok {
		t.Fatalf("a response in %s, which the currency table does not know", to)
	}
	return float64(m) / 1e6
}

func sizeOffered(b *openrtb.Banner, w, h int64) bool {
	if len(b.Format) == 0 && b.W == 0 && b.H == 0 {
		return true
	}
	if w == b.W && h == b.H {
		return true
	}
	for _, f := range b.Format {
		if f.W == w && f.H == h {
			return true
		}
	}
	return false
}

// checkVAST checks that adm is a well-formed VAST document with at least one ad.
func checkVAST(t *testing.T, adm string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(adm))
	root, ads := "", 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Errorf("video adm is not well-formed XML: %v\n%s", err, adm)
			return
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			if se.Name.Local == "Ad" {
				ads++
			}
		}
	}
	if root != "VAST" || ads == 0 {
		t.Errorf("video adm: root %q with %d ads, want VAST with an Ad", root, ads)
	}
}

// vastDuration is the duration in seconds of the first Linear of a VAST document.
func vastDuration(t *testing.T, adm string) int64 {
	t.Helper()
	i := strings.Index(adm, "<Duration>")
	j := strings.Index(adm, "</Duration>")
	if i < 0 || j < i {
		t.Fatalf("VAST without a Duration: %s", adm)
	}
	d, err := time.Parse("15:04:05", strings.TrimSpace(adm[i+len("<Duration>"):j]))
	if err != nil {
		t.Fatalf("VAST Duration: %v", err)
	}
	return int64(d.Hour()*3600 + d.Minute()*60 + d.Second())
}

// checkNativeMarkup checks that adm is a native response whose assets answer assets of the native
// request, each with the kind of value the request asked for, and that required assets are there.
func checkNativeMarkup(t *testing.T, n *openrtb.Native, adm string) {
	t.Helper()
	type asset struct {
		ID    int64            `json:"id"`
		Title *json.RawMessage `json:"title"`
		Img   *json.RawMessage `json:"img"`
		Data  *json.RawMessage `json:"data"`
		Video *json.RawMessage `json:"video"`
	}
	var m struct {
		Native *struct {
			Assets []asset          `json:"assets"`
			Link   *json.RawMessage `json:"link"`
		} `json:"native"`
		Assets []asset           `json:"assets"`
		Link   *json.RawMessage  `json:"link"`
		Ver    json.RawMessage   `json:"ver"`
		Imp    []json.RawMessage `json:"imptrackers"`
		Ev     []json.RawMessage `json:"eventtrackers"`
	}
	if err := json.Unmarshal([]byte(adm), &m); err != nil {
		t.Errorf("native adm is not a native response: %v\n%s", err, adm)
		return
	}
	assets, link := m.Assets, m.Link
	if m.Native != nil {
		assets, link = m.Native.Assets, m.Native.Link
	}
	if link == nil || len(assets) == 0 {
		t.Errorf("native adm without link or assets: %s", adm)
	}
	var nr openrtb.NativeRequest
	if err := openrtb.ParseNativeRequest(n.Request, &nr); err != nil {
		t.Errorf("a native bid on a native request that does not parse: %v", err)
		return
	}
	got := map[int64]asset{}
	for _, a := range assets {
		got[a.ID] = a
	}
	for _, ra := range nr.Assets {
		a, ok := got[ra.ID]
		if !ok {
			if ra.Required == 1 {
				t.Errorf("required native asset %d missing", ra.ID)
			}
			continue
		}
		if (ra.Title != nil) != (a.Title != nil) || (ra.Img != nil) != (a.Img != nil) || (ra.Data != nil) != (a.Data != nil) {
			t.Errorf("native asset %d answers with another kind of value", ra.ID)
		}
		delete(got, ra.ID)
	}
	for id := range got {
		t.Errorf("native asset %d is not in the request", id)
	}
}

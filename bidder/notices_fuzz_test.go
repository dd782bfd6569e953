package bidder

import (
	"strings"
	"testing"

	"rtb/bidder/campaign"
)

// FuzzNotice sends arbitrary query strings to the notice endpoints, as anyone on the internet can:
// no panic, never a 5xx, and no event unless the token is one this bidder signed.
func FuzzNotice(f *testing.F) {
	rec := &recorder{}
	b, _ := newTestBidder(f, campaign.Samples(), func(c *Config) { c.Events = rec })
	good := bidOn(f, b, exampleRequests(f)["v25-banner"], "/openrtb2/bid")
	for _, s := range []string{
		path(f, good.nurl, map[string]string{"AUCTION_PRICE": "1.5"}),
		path(f, good.lurl, map[string]string{"AUCTION_LOSS": "102", "AUCTION_MIN_TO_WIN": "9e999"}),
		"/win?t=&p=", "/bill?p=NaN&t=AAAA", "/click?t=%ff%fe", "/imp?t=" + string(make([]byte, 300)),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		rec.take()
		for _, p := range []string{"/win", "/bill", "/loss", "/imp", "/click"} {
			q := uri
			if i := strings.IndexByte(uri, '?'); i >= 0 {
				q = uri[i:]
			}
			r := do(b, "GET", p+q, nil)
			if r.status >= 500 && r.status != 503 {
				t.Fatalf("%s%s: status %d", p, q, r.status)
			}
		}
		for _, e := range rec.take() {
			if e.RequestID != good.requestID {
				t.Fatalf("event from a token this bidder did not sign: %+v", e)
			}
		}
	})
}

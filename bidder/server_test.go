package bidder

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"rtb/bidder/campaign"
)

// TestBodyOverLimitThroughServer: fasthttp refuses a body over the limit before the handler runs; the
// exchange still gets a 413 with a reason, and it is counted.
func TestBodyOverLimitThroughServer(t *testing.T) {
	b, _ := newTestBidder(t, campaign.Samples(), func(c *Config) { c.MaxBodyBytes = 1024 })
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: b.Handler(), ErrorHandler: b.ErrorHandler, MaxRequestBodySize: b.MaxBodyBytes()}
	go srv.Serve(ln)
	defer srv.Shutdown()
	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://bidder/openrtb2/bid")
	req.Header.SetMethod("POST")
	req.SetBody(bytes.Repeat([]byte(" "), 4096))
	if err := c.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != 413 || !bytes.Contains(resp.Body(), []byte("1024-byte limit")) {
		t.Errorf("status %d %q, want 413 naming the limit", resp.StatusCode(), resp.Body())
	}
	if n := testutil.ToFloat64(b.m.reason[reasonTooLarge]); n != 1 {
		t.Errorf("too_large counted %v, want 1", n)
	}
}

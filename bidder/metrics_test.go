package bidder

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"rtb/bidder/campaign"
)

// TestMetricsPassPromtool renders the bidder's metrics after some traffic and has Prometheus' own
// linter check them (Debian package prometheus; .ci/run installs it).
func TestMetricsPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (.ci/run does)")
	}
	b, reg := newTestBidder(t, campaign.Samples(), nil)
	for _, body := range exampleRequests(t) {
		post(b, body)
	}
	post(b, []byte("junk"))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"rtb_bid_requests_total", "rtb_bid_request_duration_seconds_bucket", "rtb_bids_total", "rtb_bid_request_errors_total"} {
		if !strings.Contains(buf.String(), name) {
			t.Errorf("metrics lack %s", name)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	if n := testutil.ToFloat64(b.m.outcome[outcomeBid]); n == 0 {
		t.Error("no bid outcome counted")
	}
}

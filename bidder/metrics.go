package bidder

import (
	"github.com/prometheus/client_golang/prometheus"

	"rtb/bidder/openrtb"
	"rtb/bidder/targeting"
	"rtb/events"
)

// Outcomes of a bid request; each is a value of the outcome label.
const (
	outcomeBid     = "bid"
	outcomeNoBid   = "nobid"
	outcomeInvalid = "invalid"
	outcomeTimeout = "timeout"
	outcomeShed    = "shed"
)

// Request-level refusals that happen before the OpenRTB decoder sees the body.
const (
	reasonTooLarge  = "too_large"
	reasonBadGzip   = "bad_gzip"
	reasonMethod    = "method_not_allowed"
	reasonEncoding  = "unsupported_encoding"
	reasonBadHeader = "bad_http"
)

// metrics holds every series the bid path touches, resolved once so that the path never looks up
// a label value.
type metrics struct {
	requests  *prometheus.CounterVec
	outcome   map[string]prometheus.Counter
	latency   prometheus.Histogram
	invalid   *prometheus.CounterVec
	reason    map[string]prometheus.Counter
	bids      [numMedia]prometheus.Counter // by targeting.Kind
	noBid     [numNoBid]prometheus.Counter
	campaigns prometheus.Gauge
	reloads   *prometheus.CounterVec
	inflight  prometheus.GaugeFunc
	notices   map[events.Type]map[string]prometheus.Counter
	capped    [numCapReasons]prometheus.Counter
}

// Why a frequency-capped campaign was passed over; values of the reason label.
const (
	capReached = iota
	capNoUser
	capWarming
	numCapReasons
)

var capReasons = [numCapReasons]string{"cap_reached", "no_user", "warming_up"}

// Media kinds of bids, by targeting.Kind; values of rtb_bids_total's media label.
const numMedia = 4

var mediaNames = [numMedia]string{targeting.KindBanner: "banner", targeting.KindVideo: "video", targeting.KindAudio: "audio", targeting.KindNative: "native"}

func newMetrics(reg prometheus.Registerer, inflight func() float64) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtb_bid_requests_total",
			Help: "Bid requests answered, by outcome: bid, nobid, invalid (4xx), timeout (deadline passed, 204), shed (overload, 204).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rtb_bid_request_duration_seconds",
			Help: "Time from the bid handler's start to its answer, whatever the outcome.",
			Buckets: []float64{
				0.000010, 0.000025, 0.000050, 0.000075, 0.0001, 0.00015, 0.0002, 0.0003, 0.0004, 0.0005,
				0.00075, 0.001, 0.0015, 0.002, 0.005, 0.01, 0.025, 0.1,
			},
		}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtb_bid_request_errors_total",
			Help: "Bid requests refused with a 4xx, by reason.",
		}, []string{"reason"}),
		campaigns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rtb_campaigns",
			Help: "Campaigns in the bidder's index (active, not paused, not ended).",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtb_campaign_reloads_total",
			Help: "Campaign reloads, by result (ok, error).",
		}, []string{"result"}),
	}
	m.inflight = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rtb_bid_requests_in_flight",
		Help: "Bid requests being handled right now.",
	}, inflight)
	m.outcome = map[string]prometheus.Counter{}
	for _, o := range []string{outcomeBid, outcomeNoBid, outcomeInvalid, outcomeTimeout, outcomeShed} {
		m.outcome[o] = m.requests.WithLabelValues(o)
	}
	m.reason = map[string]prometheus.Counter{}
	for _, r := range openrtb.Reasons {
		m.reason[string(r)] = m.invalid.WithLabelValues(string(r))
	}
	for _, r := range []string{reasonTooLarge, reasonBadGzip, reasonMethod, reasonEncoding, reasonBadHeader} {
		m.reason[r] = m.invalid.WithLabelValues(r)
	}
	noticeVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rtb_notices_total",
		Help: "Notices received (win, bill, loss, imp, click), by result: ok, or why refused (bad_token, expired, bad_price, price_above_bid, campaign_gone, unavailable).",
	}, []string{"type", "result"})
	m.notices = map[events.Type]map[string]prometheus.Counter{}
	for _, t := range []events.Type{events.Win, events.Bill, events.Loss, events.Imp, events.Click} {
		m.notices[t] = map[string]prometheus.Counter{}
		for _, r := range noticeResults {
			m.notices[t][r] = noticeVec.WithLabelValues(string(t), r)
		}
	}
	cappedVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rtb_frequency_capped_total",
		Help: "Candidate campaigns passed over for their frequency cap: cap_reached (impressions plus pending bids at the cap), no_user (the request names no user, so a cap could not hold), warming_up (the bidder is still reading the impressions of cap windows).",
	}, []string{"reason"})
	for i, r := range capReasons {
		m.capped[i] = cappedVec.WithLabelValues(r)
	}
	bidsVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rtb_bids_total",
		Help: "Bids made, by media of the creative (banner, video, audio, native). Per campaign: GET /api/campaigns on the admin port (bids), not a series per campaign.",
	}, []string{"media"})
	for k, name := range mediaNames {
		m.bids[k] = bidsVec.WithLabelValues(name)
	}
	noBidVec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rtb_no_bid_total", Help: noBidHelp}, []string{"reason"})
	for r, name := range noBidNames {
		if name != "" {
			m.noBid[r] = noBidVec.WithLabelValues(name)
		}
	}
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("error")
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.invalid, bidsVec, noBidVec, m.campaigns, m.reloads, m.inflight, noticeVec, cappedVec)
	}
	return m
}

// Package bidder is the exchange-facing bid server: it decodes OpenRTB requests, finds the campaigns
// that may bid through the targeting index, runs the internal auction per imp, and answers within a
// per-request deadline, from in-memory state only.
//
// The request path allocates little and never waits on I/O: per-request state lives in a pooled
// scratch value, the response is encoded by appending into reused buffers, and the campaign state is
// an immutable engine swapped atomically on reload.
package bidder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"rtb/auction"
	"rtb/bidder/campaign"
	"rtb/bidder/notice"
	"rtb/bidder/openrtb"
	"rtb/bidder/targeting"
	"rtb/events"
	"rtb/features"
)

// Features is what the bidder reads from the feature store; a miss means "no information".
type Features interface {
	User(id string) (*features.UserRecord, bool)
	Publisher(id string) (*features.PublisherRecord, bool)
}

// FrequencyCaps is what the bid path asks of the frequency-cap store (features.Caps). Both calls run
// on the request path: they must not block or allocate.
type FrequencyCaps interface {
	// Allow reports whether user may be shown campaign once more: its impressions in the cap window
	// plus the bids still pending are under limit.
	Allow(user uint64, campaign string, limit int, now time.Time) bool
	// TryReserve counts a bid about to be made as pending, until its impression arrives through the
	// stream, unless that would pass limit (two requests for one user at once): then false.
	TryReserve(user uint64, campaign string, limit int, now time.Time) bool
}

// CTREstimator predicts a campaign's click-through rate on a segment of inventory, pulled toward
// prior where it knows little (features.CTRs). It runs on the request path.
type CTREstimator interface {
	Estimate(campaign, segment string, prior float64) float64
}

// Config configures a Bidder. Zero values take the defaults documented on each field.
type Config struct {
	Budget           time.Duration // internal answer budget per request; default 1ms
	NetworkAllowance time.Duration // subtracted from the exchange's tmax; default 10ms
	MaxBodyBytes     int           // largest accepted body, after gunzip too; default 256 KiB
	MaxInFlight      int           // requests handled at once before shedding with a fast 204; default 128 per CPU
	NoticeBaseURL    string        // base of the notice URLs put into bids, as exchanges reach us; required
	Seat             string        // seatbid.seat; default "rtb"
	Signer           *notice.Signer
	Features         Features      // optional
	Events           Publisher     // where notices and sampled bids go; nil refuses notices with 503
	BidSampleRate    float64       // share of bids published to the bid log (rtb.bids), 0..1
	NoticeMaxAge     time.Duration // how late a notice may arrive; default 24h
	Pacing           PacingConfig
	Shader           auction.Shader // first-price pricing; default no shading
	// Caps enforces campaigns' frequency caps; nil leaves caps unenforced (tests, tools). A capped
	// campaign never bids on a request that names no user: its cap could not hold.
	Caps FrequencyCaps
	// CapsReady is closed once Caps holds the impressions of the cap windows (the feature updater
	// has caught up); until then capped campaigns do not bid and /readyz answers 503. nil = ready.
	CapsReady   <-chan struct{}
	CTR         CTREstimator // click-through estimates for CPC campaigns; nil = each campaign's configured ctr
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
	Clock       func() time.Time // default time.Now; tests inject one
	BidIDPrefix string           // default: random per process, so bid ids are unique across restarts
}

// Bidder serves bid requests. It is safe for concurrent use.
type Bidder struct {
	cfg      Config
	log      *slog.Logger
	m        *metrics
	eng      atomic.Pointer[engine]
	inflight atomic.Int64
	seq      atomic.Uint64
	pool     sync.Pool
	now      func() time.Time
	draining atomic.Bool
	pacing   pacingTable
}

// New returns a bidder serving set.
func New(cfg Config, set *campaign.Set) (*Bidder, error) {
	if cfg.Budget <= 0 {
		cfg.Budget = time.Millisecond
	}
	if cfg.NetworkAllowance < 0 {
		return nil, fmt.Errorf("network allowance %s is negative", cfg.NetworkAllowance)
	}
	if cfg.NetworkAllowance == 0 {
		cfg.NetworkAllowance = 10 * time.Millisecond
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 256 << 10
	}
	if cfg.MaxInFlight <= 0 {
		// A bid costs about 10 µs of CPU: 128 waiting per core is about a millisecond of queue,
		// the whole budget, so beyond it a fast 204 serves the exchange better than a late bid.
		cfg.MaxInFlight = 128 * runtime.GOMAXPROCS(0)
	}
	if cfg.Seat == "" {
		cfg.Seat = "rtb"
	}
	if cfg.NoticeBaseURL == "" {
		return nil, fmt.Errorf("notice base URL is required")
	}
	if cfg.Signer == nil {
		return nil, fmt.Errorf("notice signer is required")
	}
	if cfg.NoticeMaxAge <= 0 {
		cfg.NoticeMaxAge = defaultNoticeMaxAge
	}
	if cfg.BidSampleRate < 0 || cfg.BidSampleRate > 1 {
		return nil, fmt.Errorf("bid sample rate %v is not within 0..1", cfg.BidSampleRate)
	}
	if cfg.Shader == nil {
		cfg.Shader = auction.NoShading{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.BidIDPrefix == "" {
		cfg.BidIDPrefix = strconv.FormatInt(time.Now().UnixNano()%(1<<40), 36) + "-"
	}
	if err := openrtb.Pretouch(); err != nil {
		return nil, fmt.Errorf("prepare the OpenRTB decoder: %w", err)
	}
	b := &Bidder{cfg: cfg, log: cfg.Logger, now: cfg.Clock}
	b.m = newMetrics(cfg.Registerer, func() float64 { return float64(b.inflight.Load()) })
	b.pool.New = func() any { return new(scratch) }
	if err := b.SetCampaigns(set); err != nil {
		return nil, err
	}
	return b, nil
}

// SetCampaigns compiles set and swaps it in atomically; requests in flight finish on the old one.
func (b *Bidder) SetCampaigns(set *campaign.Set) error {
	e, err := newEngine(set, b.cfg.Seat, &b.pacing, b.now())
	if err != nil {
		b.m.reloads.WithLabelValues("error").Inc()
		return err
	}
	b.eng.Store(e)
	b.m.campaigns.Set(float64(e.index.Len()))
	b.m.reloads.WithLabelValues("ok").Inc()
	return nil
}

// Campaigns returns the campaign set in force.
func (b *Bidder) Campaigns() *campaign.Set { return b.eng.Load().set }

// capsReady reports whether frequency caps can be trusted yet.
func (b *Bidder) capsReady() bool {
	if b.cfg.CapsReady == nil {
		return true
	}
	select {
	case <-b.cfg.CapsReady:
		return true
	default:
		return false
	}
}

// Drain makes /readyz answer 503 so that load balancers stop sending before the server shuts down.
func (b *Bidder) Drain() { b.draining.Store(true) }

// scratch is the per-request working memory, pooled so that a request reuses what an earlier one grew.
type scratch struct {
	req      openrtb.BidRequest
	dec      openrtb.Decoder
	resp     openrtb.BidResponse
	q        targeting.Query
	it       targeting.Iter
	arena    []byte
	out      []byte
	gz       []byte
	gzr      *gzip.Reader
	br       bytes.Reader
	segs     []string
	native   openrtb.NativeRequest
	nativeOK int8 // 0 not parsed for this imp, 1 parsed, -1 unparseable
	event    events.Event
	exchange string     // of the request being served (aliases the query)
	inv      int        // invSite, invApp or invDOOH
	user     uint64     // features.UserKey of the request's user, 0 for none
	userHex  [16]byte   // user as events carry it
	stage    noBid      // the furthest any campaign got on any imp of the request (see noBid)
	dropped  noBid      // why the last offer appendBid dropped was dropped
	x        *explainer // set only while explaining a request (Explain): no side effects
}

// Handler returns the fasthttp handler of the exchange port.
func (b *Bidder) Handler() fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/openrtb2/bid":
			b.HandleBid(ctx)
		case "/win":
			b.handleNotice(ctx, events.Win)
		case "/bill":
			b.handleNotice(ctx, events.Bill)
		case "/loss":
			b.handleNotice(ctx, events.Loss)
		case "/imp":
			b.handleNotice(ctx, events.Imp)
		case "/click":
			b.handleNotice(ctx, events.Click)
		case "/healthz":
			ctx.SetBodyString("ok\n")
		case "/readyz":
			if b.draining.Load() || b.eng.Load() == nil {
				ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
				ctx.SetBodyString("draining\n")
				return
			}
			if !b.capsReady() {
				ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
				ctx.SetBodyString("warming up: reading the impressions of frequency-cap windows\n")
				return
			}
			ctx.SetBodyString("ready\n")
		default:
			ctx.Error("not found\n", fasthttp.StatusNotFound)
		}
	}
}

// ErrorHandler answers requests fasthttp refuses before the handler runs (above all bodies over
// the size limit) with a one-line reason, and counts them.
func (b *Bidder) ErrorHandler(ctx *fasthttp.RequestCtx, err error) {
	b.m.outcome[outcomeInvalid].Inc()
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		b.m.reason[reasonTooLarge].Inc()
		ctx.Error(fmt.Sprintf("body over the %d-byte limit\n", b.cfg.MaxBodyBytes), fasthttp.StatusRequestEntityTooLarge)
		return
	}
	b.m.reason[reasonBadHeader].Inc()
	ctx.Error("malformed HTTP request\n", fasthttp.StatusBadRequest)
}

// MaxBodyBytes is the body limit the server must enforce before the handler (fasthttp.Server's
// MaxRequestBodySize).
func (b *Bidder) MaxBodyBytes() int { return b.cfg.MaxBodyBytes }

// HandleBid answers one bid request.
func (b *Bidder) HandleBid(ctx *fasthttp.RequestCtx) {
	start := b.now()
	if b.inflight.Add(1) > int64(b.cfg.MaxInFlight) {
		b.inflight.Add(-1)
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		b.m.outcome[outcomeShed].Inc()
		b.m.noBid[nbShed].Inc()
		b.m.latency.Observe(b.now().Sub(start).Seconds())
		return
	}
	s := b.pool.Get().(*scratch)
	outcome := b.serve(ctx, s, start)
	switch outcome {
	case outcomeNoBid:
		b.m.noBid[s.reason()].Inc()
	case outcomeTimeout:
		b.m.noBid[nbDeadline].Inc()
	}
	b.pool.Put(s)
	b.inflight.Add(-1)
	b.m.outcome[outcome].Inc()
	b.m.latency.Observe(b.now().Sub(start).Seconds())
}

func (b *Bidder) refuse(ctx *fasthttp.RequestCtx, status int, reason, msg string) string {
	b.m.reason[reason].Inc()
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(msg + "\n")
	return outcomeInvalid
}

func (b *Bidder) serve(ctx *fasthttp.RequestCtx, s *scratch, start time.Time) string {
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		return b.refuse(ctx, fasthttp.StatusMethodNotAllowed, reasonMethod, "method not allowed: use POST")
	}
	body := ctx.Request.Body()
	if enc := ctx.Request.Header.ContentEncoding(); len(enc) > 0 && string(enc) != "identity" {
		if string(enc) != "gzip" {
			return b.refuse(ctx, fasthttp.StatusUnsupportedMediaType, reasonEncoding, "unsupported content encoding: only gzip is accepted")
		}
		var err error
		if body, err = s.gunzip(body, b.cfg.MaxBodyBytes); err != nil {
			if err == errTooLarge {
				return b.refuse(ctx, fasthttp.StatusRequestEntityTooLarge, reasonTooLarge, fmt.Sprintf("body over the %d-byte limit once decompressed", b.cfg.MaxBodyBytes))
			}
			return b.refuse(ctx, fasthttp.StatusBadRequest, reasonBadGzip, "body is not valid gzip")
		}
	}
	req := &s.req
	if err := s.dec.Decode(body, req); err != nil {
		e := openrtb.AsError(err)
		if b.log.Enabled(context.Background(), slog.LevelDebug) {
			b.log.Debug("invalid bid request", "request_id", req.ID, "reason", e.Reason, "error", e.Msg)
		}
		return b.refuse(ctx, fasthttp.StatusBadRequest, string(e.Reason), e.Msg)
	}

	budget := b.cfg.Budget
	// A tmax that cannot shorten the budget is left alone before it is multiplied: the decoder
	// saturates a huge one (1e30) at MaxInt64, whose nanoseconds would wrap negative.
	if req.TMax > 0 && req.TMax <= int64((budget+b.cfg.NetworkAllowance)/time.Millisecond) {
		budget = min(budget, time.Duration(req.TMax)*time.Millisecond-b.cfg.NetworkAllowance)
	}
	deadline := start.Add(budget)
	if !b.now().Before(deadline) {
		return b.timeout(ctx, req)
	}

	e := b.eng.Load()
	bids, timedOut := b.bid(e, s, ctx.QueryArgs().Peek("exchange"), deadline, start)
	if timedOut {
		return b.timeout(ctx, req)
	}
	if bids == 0 {
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return outcomeNoBid
	}
	s.out = s.resp.AppendJSON(s.out[:0])
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("X-Openrtb-Version", "2.6")
	ctx.SetBody(s.out)
	return outcomeBid
}

func (b *Bidder) timeout(ctx *fasthttp.RequestCtx, req *openrtb.BidRequest) string {
	if b.log.Enabled(context.Background(), slog.LevelDebug) {
		b.log.Debug("bid request past its deadline", "request_id", req.ID)
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return outcomeTimeout
}

var errTooLarge = fmt.Errorf("decompressed body too large")

// gunzip inflates body into the scratch buffer, refusing to inflate past limit (a gzip bomb must not
// cost more memory than an honest request).
func (s *scratch) gunzip(body []byte, limit int) ([]byte, error) {
	s.br.Reset(body)
	if s.gzr == nil {
		r, err := gzip.NewReader(&s.br)
		if err != nil {
			return nil, err
		}
		s.gzr = r
	} else if err := s.gzr.Reset(&s.br); err != nil {
		return nil, err
	}
	out := s.gz[:0]
	for {
		if len(out) == cap(out) {
			if len(out) > limit {
				return nil, errTooLarge
			}
			out = append(out, 0)[:len(out)]
		}
		n, err := s.gzr.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if len(out) > limit {
			return nil, errTooLarge
		}
		if err == io.EOF {
			s.gz = out
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// str returns a string over arena[from:]; see bid for why this is safe.
func str(arena []byte, from int) string {
	if len(arena) == from {
		return ""
	}
	return unsafe.String(&arena[from], len(arena)-from)
}

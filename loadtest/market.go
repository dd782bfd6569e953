package loadtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// MarketConfig turns the generator into a first-price exchange: for every bid it draws the highest
// competing bid, decides the auction and sends the notices a real exchange (and browser) would.
type MarketConfig struct {
	Mu, Sigma   Param         // log-normal of the highest competing CPM, per segment ("banner-300x250", "video", …)
	CTR         Param         // true click-through rate per campaign id
	NoticeDelay time.Duration // each win's or loss's notices go out after a uniform delay up to this
	NoticeDup   float64       // share of notices sent twice (exchange retries)
	Workers     int           // notice senders (default 64)
	Queue       int           // notices waiting for a sender at most (default 65,536); beyond, dropped and counted
	Seed        uint64
}

// Param is a default value with overrides by key.
type Param struct {
	Default float64
	By      map[string]float64
}

// ParseParam parses "DEFAULT[,KEY=VALUE…]", e.g. "0.4,banner-300x250=0.6,video=1.2".
func ParseParam(s string) (Param, error) {
	var p Param
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		k, v, kv := strings.Cut(part, "=")
		if i == 0 && !kv {
			f, err := strconv.ParseFloat(part, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return p, fmt.Errorf("%q is not a number", part)
			}
			p.Default = f
			continue
		}
		if !kv || k == "" {
			return p, fmt.Errorf("%q is not KEY=VALUE", part)
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return p, fmt.Errorf("%q: %q is not a number", part, v)
		}
		if p.By == nil {
			p.By = map[string]float64{}
		}
		p.By[k] = f
	}
	return p, nil
}

// of is the value for key: its own, else that of its media type (the part before '-'), else the default.
func (p Param) of(key string) float64 {
	if v, ok := p.By[key]; ok {
		return v
	}
	if mt, _, ok := strings.Cut(key, "-"); ok {
		if v, ok := p.By[mt]; ok {
			return v
		}
	}
	return p.Default
}

// DefaultMarket is a market with a median competing bid of 1.50 CPM.
func DefaultMarket() MarketConfig {
	return MarketConfig{Mu: Param{Default: math.Log(1.5)}, Sigma: Param{Default: 0.6}, CTR: Param{Default: 0.002},
		NoticeDelay: 500 * time.Millisecond, NoticeDup: 0.01}
}

func (c *MarketConfig) check() error {
	for _, v := range append([]float64{c.Sigma.Default}, mapValues(c.Sigma.By)...) {
		if v < 0 {
			return errors.New("--market-sigma must not be negative")
		}
	}
	for _, v := range append([]float64{c.CTR.Default}, mapValues(c.CTR.By)...) {
		if v < 0 || v > 1 {
			return errors.New("--ctr must be within [0,1]")
		}
	}
	if c.NoticeDup < 0 || c.NoticeDup > 1 {
		return errors.New("--notice-dup must be within [0,1]")
	}
	if c.NoticeDelay < 0 {
		return errors.New("--notice-delay must not be negative")
	}
	if c.Workers <= 0 {
		c.Workers = 64
	}
	if c.Queue <= 0 {
		c.Queue = 1 << 16
	}
	return nil
}

func mapValues(m map[string]float64) []float64 {
	var vs []float64
	for _, v := range m {
		vs = append(vs, v)
	}
	return vs
}

// impInfo is what the market needs of one imp of a pooled request.
type impInfo struct {
	id       string
	seg      string // media type, with size for banner and video
	floor    float64
	floorCur string
}

// bodyInfo is what the market needs of one pooled request.
type bodyInfo struct {
	user string // user.buyeruid, else user.id: whom frequency caps count
	imps []impInfo
}

type reqImps struct {
	Cur []string `json:"cur"`
	Imp []struct {
		ID     string `json:"id"`
		Banner *struct {
			W int `json:"w"`
			H int `json:"h"`
		} `json:"banner"`
		Video *struct {
			W int `json:"w"`
			H int `json:"h"`
		} `json:"video"`
		Native      json.RawMessage `json:"native"`
		BidFloor    float64         `json:"bidfloor"`
		BidFloorCur string          `json:"bidfloorcur"`
	} `json:"imp"`
	User *struct {
		ID       string `json:"id"`
		BuyerUID string `json:"buyeruid"`
	} `json:"user"`
}

// parseBodies extracts what the market needs of each pooled body, once for every target.
func parseBodies(bodies []Body) ([]bodyInfo, error) {
	out := make([]bodyInfo, len(bodies))
	for i := range bodies {
		var r reqImps
		if err := json.Unmarshal(bodies[i].JSON, &r); err != nil {
			return nil, err
		}
		infos := make([]impInfo, len(r.Imp))
		for k, im := range r.Imp {
			info := impInfo{id: im.ID, floor: im.BidFloor, floorCur: im.BidFloorCur}
			if info.floorCur == "" {
				info.floorCur = "USD"
			}
			switch {
			case im.Banner != nil:
				info.seg = fmt.Sprintf("banner-%dx%d", im.Banner.W, im.Banner.H)
			case im.Video != nil:
				info.seg = fmt.Sprintf("video-%dx%d", im.Video.W, im.Video.H)
			case im.Native != nil:
				info.seg = "native"
			default:
				info.seg = "other"
			}
			infos[k] = info
		}
		out[i].imps = infos
		if u := r.User; u != nil {
			out[i].user = u.BuyerUID
			if out[i].user == "" {
				out[i].user = u.ID
			}
		}
	}
	return out, nil
}

type mResp struct {
	Cur     string `json:"cur"`
	SeatBid []struct {
		Bid []mBid `json:"bid"`
	} `json:"seatbid"`
}

type mBid struct {
	ImpID string  `json:"impid"`
	Price float64 `json:"price"`
	AdM   string  `json:"adm"`
	NURL  string  `json:"nurl"`
	BURL  string  `json:"burl"`
	LURL  string  `json:"lurl"`
	CID   string  `json:"cid"`
	W     int     `json:"w"`
	H     int     `json:"h"`
}

// Notice types.
const (
	nWin = iota
	nBill
	nLoss
	nImp
	nClick
	nTypes
)

var noticeNames = [nTypes]string{"win", "bill", "loss", "imp", "click"}

// Notice outcomes.
const (
	r2xx = iota
	r3xx
	r4xx
	r5xx
	rErr
	nResults
)

type campStats struct {
	bids, wins, imps, clicks int64
	spend                    float64 // currency units
	surplus                  float64 // currency units; meaningful only when the campaign's value is known
	hourly                   [24]float64
	lastWin                  time.Duration // since the day's start (day mode)
}

// capKey is one user of one campaign: the unit of frequency capping.
type capKey struct{ user, cid string }

// notice is one URL the exchange or browser calls.
type notice struct {
	url string
	cap *capKey // for an impression pixel of a capped campaign: log its time when fired
}

// dayClock places events in the compressed pacing day (day mode only).
type dayClock struct {
	start  time.Time
	length time.Duration
}

type market struct {
	cfg    MarketConfig
	bodies []bodyInfo
	camps  map[string]*campInfo // from the target's admin port; nil if unknown. Read-only.
	day    *dayClock
	client *fasthttp.Client
	tmo    time.Duration

	mu    sync.Mutex
	stats map[string]*campStats
	noImp int64 // wins whose adm had no impression URL

	capMu  sync.Mutex
	capLog map[capKey][]int64 // impression pixel times, unix ns

	results  [nTypes][nResults]atomic.Int64
	dups     atomic.Int64
	dropped  atomic.Int64
	badResp  atomic.Int64
	lastErr  atomic.Value // string
	queue    chan []notice
	pending  sync.WaitGroup
	workers  sync.WaitGroup
	stopOnce sync.Once
}

func newMarket(cfg MarketConfig, bodies []bodyInfo, timeout time.Duration, camps map[string]*campInfo, day *dayClock) (*market, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	m := &market{cfg: cfg, bodies: bodies, camps: camps, day: day, tmo: timeout,
		stats: map[string]*campStats{}, capLog: map[capKey][]int64{}, queue: make(chan []notice, cfg.Queue),
		client: &fasthttp.Client{MaxConnsPerHost: cfg.Workers, NoDefaultUserAgentHeader: true,
			DisablePathNormalizing: true, MaxIdleConnDuration: time.Minute}}
	for range cfg.Workers {
		m.workers.Add(1)
		go m.work()
	}
	return m, nil
}

// onBid runs on a sender goroutine with the body of a 200 answer to scheduled request seq (pooled
// body bi). It decides every auction and schedules the notices; it never blocks on them.
func (m *market) onBid(seq uint64, bi int, body []byte) {
	var r mResp
	if err := json.Unmarshal(body, &r); err != nil {
		m.badResp.Add(1)
		return
	}
	cur := r.Cur
	if cur == "" {
		cur = "USD"
	}
	bd := &m.bodies[bi]
	for _, sb := range r.SeatBid {
		for i := range sb.Bid {
			b := &sb.Bid[i]
			k := slices.IndexFunc(bd.imps, func(im impInfo) bool { return im.id == b.ImpID })
			info := impInfo{seg: "other"}
			if k >= 0 {
				info = bd.imps[k]
			} else {
				// An imp id the request did not have: still decided, on draws no real imp uses.
				k = len(bd.imps) + i
			}
			seg := info.seg
			if strings.HasPrefix(seg, "banner-") && b.W > 0 && b.H > 0 {
				seg = fmt.Sprintf("banner-%dx%d", b.W, b.H)
			}
			d := drawsFor(m.cfg.Seed, seq, k)
			m.auction(b, seg, info, cur, bd.user, &d)
		}
	}
}

func (m *market) auction(b *mBid, seg string, info impInfo, cur, user string, d *draws) {
	comp := d.competing(m.cfg.Mu.of(seg), m.cfg.Sigma.of(seg))
	delay := time.Duration(d.delay * float64(m.cfg.NoticeDelay))
	// The floor binds only in its own currency (the bidder converts; this simulator does not).
	floorOK := info.floorCur != cur || b.Price >= info.floor
	win := b.Price > comp && floorOK
	var urls []notice
	ci := m.camps[b.CID]
	var at time.Duration
	if m.day != nil {
		at = time.Since(m.day.start)
	}
	m.mu.Lock()
	c := m.stats[b.CID]
	if c == nil {
		c = &campStats{}
		m.stats[b.CID] = c
	}
	c.bids++
	if win {
		price := strconv.FormatFloat(b.Price, 'f', -1, 64)
		c.wins++
		c.spend += b.Price / 1000
		if ci != nil && ci.hasValue {
			c.surplus += surplusOf(ci.value, b.Price)
		}
		if m.day != nil {
			c.hourly[hourOf(at, m.day.length)] += b.Price / 1000
			c.lastWin = at
		}
		for _, u := range []string{b.NURL, b.BURL} {
			if u != "" {
				urls = append(urls, notice{url: strings.ReplaceAll(u, "${AUCTION_PRICE}", price)})
			}
		}
		imp, click := trackers(b.AdM)
		if imp != "" {
			c.imps++
			n := notice{url: imp}
			if ci != nil && ci.capN > 0 && user != "" {
				n.cap = &capKey{user: user, cid: b.CID}
			}
			urls = append(urls, n)
			if click != "" && d.click < m.cfg.CTR.of(b.CID) {
				c.clicks++
				urls = append(urls, notice{url: click})
			}
		} else {
			m.noImp++
		}
	} else if b.LURL != "" {
		mtw := strconv.FormatFloat(math.Max(comp, info.floor)+0.01, 'f', 2, 64)
		u := strings.ReplaceAll(b.LURL, "${AUCTION_LOSS}", "102")
		urls = append(urls, notice{url: strings.ReplaceAll(u, "${AUCTION_MIN_TO_WIN}", mtw)})
	}
	m.mu.Unlock()
	var chain []notice
	for i, u := range urls {
		chain = append(chain, u)
		if d.dupped(i, m.cfg.NoticeDup) {
			u.cap = nil // a retried pixel is one impression
			chain = append(chain, u)
		}
	}
	if len(chain) == 0 {
		return
	}
	m.pending.Add(1)
	time.AfterFunc(delay, func() {
		select {
		case m.queue <- chain:
		default:
			m.dropped.Add(int64(len(chain)))
			m.pending.Done()
		}
	})
}

var (
	impRe   = regexp.MustCompile(`[^"'\s<>\[\]]*/imp\?t=[^"'\s<>\[\]]*`)
	clickRe = regexp.MustCompile(`[^"'\s<>\[\]]*/click\?t=[^"'\s<>\[\]]*`)
	cdataRe = regexp.MustCompile(`(?s)<Impression[^>]*>\s*(?:<!\[CDATA\[)?\s*(.*?)\s*(?:\]\]>)?\s*</Impression>`)
	clickTh = regexp.MustCompile(`(?s)<ClickThrough[^>]*>\s*(?:<!\[CDATA\[)?\s*(.*?)\s*(?:\]\]>)?\s*</ClickThrough>`)
)

// trackers finds the impression pixel and the click URL in a bid's markup: native JSON
// (imptrackers, link.url), VAST (<Impression>, <ClickThrough>) or HTML.
func trackers(adm string) (imp, click string) {
	s := strings.TrimSpace(adm)
	switch {
	case strings.HasPrefix(s, "{"):
		type nat struct {
			ImpTrackers []string `json:"imptrackers"`
			Link        struct {
				URL string `json:"url"`
			} `json:"link"`
		}
		var n struct {
			nat
			Native *nat `json:"native"`
		}
		if json.Unmarshal([]byte(s), &n) != nil {
			return "", ""
		}
		x := n.nat
		if n.Native != nil {
			x = *n.Native
		}
		for _, t := range x.ImpTrackers {
			if strings.Contains(t, "/imp?") {
				imp = t
				break
			}
		}
		if imp == "" && len(x.ImpTrackers) > 0 {
			imp = x.ImpTrackers[0]
		}
		return imp, x.Link.URL
	case strings.Contains(s, "<VAST"):
		for _, mm := range cdataRe.FindAllStringSubmatch(s, -1) {
			if imp == "" || strings.Contains(mm[1], "/imp?") {
				imp = html.UnescapeString(mm[1])
			}
		}
		if mm := clickTh.FindStringSubmatch(s); mm != nil {
			click = html.UnescapeString(mm[1])
		}
		return imp, click
	default:
		return html.UnescapeString(impRe.FindString(s)), html.UnescapeString(clickRe.FindString(s))
	}
}

func (m *market) work() {
	defer m.workers.Done()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	prev := ""
	for chain := range m.queue {
		for _, n := range chain {
			if n.url == prev {
				m.dups.Add(1)
			}
			prev = n.url
			if n.cap != nil {
				// The impression happens when the pixel fires, which is what the bidder can count.
				t := time.Now().UnixNano()
				m.capMu.Lock()
				m.capLog[*n.cap] = append(m.capLog[*n.cap], t)
				m.capMu.Unlock()
			}
			m.send(req, resp, n.url)
		}
		prev = ""
		m.pending.Done()
	}
}

func (m *market) send(req *fasthttp.Request, resp *fasthttp.Response, u string) {
	t := noticeType(u)
	req.Reset()
	resp.Reset()
	req.SetRequestURI(u)
	req.Header.SetMethod(fasthttp.MethodGet)
	err := m.client.DoTimeout(req, resp, m.tmo) // redirects are not followed: a click answers 302
	var r int
	switch s := resp.StatusCode(); {
	case err != nil:
		r = rErr
		m.lastErr.Store(err.Error())
	case s < 300:
		r = r2xx
	case s < 400:
		r = r3xx
	case s < 500:
		r = r4xx
	default:
		r = r5xx
	}
	m.results[t][r].Add(1)
}

func noticeType(u string) int {
	path := u
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	switch {
	case strings.HasSuffix(path, "/win"):
		return nWin
	case strings.HasSuffix(path, "/bill"):
		return nBill
	case strings.HasSuffix(path, "/loss"):
		return nLoss
	case strings.HasSuffix(path, "/click"):
		return nClick
	default:
		return nImp
	}
}

// finish waits up to wait for the notices still scheduled or queued, then stops the senders.
func (m *market) finish(wait time.Duration) {
	done := make(chan struct{})
	go func() { m.pending.Wait(); close(done) }()
	select {
	case <-done:
		m.stopOnce.Do(func() { close(m.queue) })
		m.workers.Wait()
	case <-time.After(wait):
		// Timers may still fire and find the queue; leave it open (dropped with the process).
	}
	m.client.CloseIdleConnections()
}

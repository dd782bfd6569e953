package loadtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"math/rand/v2"
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
	seg      string // media type, with size for banner and video
	floor    float64
	floorCur string
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
}

type market struct {
	cfg    MarketConfig
	bodies [][]impInfo
	client *fasthttp.Client
	tmo    time.Duration

	mu    sync.Mutex
	rng   *rand.Rand
	camps map[string]*campStats
	noImp int64 // wins whose adm had no impression URL

	results  [nTypes][nResults]atomic.Int64
	dups     atomic.Int64
	dropped  atomic.Int64
	badResp  atomic.Int64
	lastErr  atomic.Value // string
	queue    chan []string
	pending  sync.WaitGroup
	workers  sync.WaitGroup
	stopOnce sync.Once
}

func newMarket(cfg MarketConfig, bodies []Body, timeout time.Duration) (*market, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	m := &market{cfg: cfg, tmo: timeout, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6d61726b6574)),
		camps: map[string]*campStats{}, queue: make(chan []string, cfg.Queue),
		client: &fasthttp.Client{MaxConnsPerHost: cfg.Workers, NoDefaultUserAgentHeader: true,
			DisablePathNormalizing: true, MaxIdleConnDuration: time.Minute}}
	m.bodies = make([][]impInfo, len(bodies))
	for i := range bodies {
		var r reqImps
		if err := json.Unmarshal(bodies[i].JSON, &r); err != nil {
			return nil, err
		}
		infos := make([]impInfo, len(r.Imp))
		for k, im := range r.Imp {
			info := impInfo{floor: im.BidFloor, floorCur: im.BidFloorCur}
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
		// Imp ids are the imp's position ("0", "1", …) in the generated bodies; index by position.
		m.bodies[i] = infos
	}
	for range cfg.Workers {
		m.workers.Add(1)
		go m.work()
	}
	return m, nil
}

// onBid runs on a sender goroutine with the body of a 200 answer to pooled request bi. It decides
// every auction and schedules the notices; it never blocks on them.
func (m *market) onBid(bi int, body []byte) {
	var r mResp
	if err := json.Unmarshal(body, &r); err != nil {
		m.badResp.Add(1)
		return
	}
	cur := r.Cur
	if cur == "" {
		cur = "USD"
	}
	imps := m.bodies[bi]
	for _, sb := range r.SeatBid {
		for i := range sb.Bid {
			b := &sb.Bid[i]
			var info impInfo
			if k, err := strconv.Atoi(b.ImpID); err == nil && k >= 0 && k < len(imps) {
				info = imps[k]
			} else {
				info = impInfo{seg: "other"}
			}
			seg := info.seg
			if strings.HasPrefix(seg, "banner-") && b.W > 0 && b.H > 0 {
				seg = fmt.Sprintf("banner-%dx%d", b.W, b.H)
			}
			m.auction(b, seg, info, cur)
		}
	}
}

func (m *market) auction(b *mBid, seg string, info impInfo, cur string) {
	m.mu.Lock()
	comp := math.Exp(m.cfg.Mu.of(seg) + m.cfg.Sigma.of(seg)*m.rng.NormFloat64())
	comp = math.Round(comp*100) / 100
	delay := time.Duration(0)
	if m.cfg.NoticeDelay > 0 {
		delay = time.Duration(m.rng.Int64N(int64(m.cfg.NoticeDelay) + 1))
	}
	c := m.camps[b.CID]
	if c == nil {
		c = &campStats{}
		m.camps[b.CID] = c
	}
	c.bids++
	// The floor binds only in its own currency (the bidder converts; this simulator does not).
	floorOK := info.floorCur != cur || b.Price >= info.floor
	win := b.Price > comp && floorOK
	var urls []string
	if win {
		price := strconv.FormatFloat(b.Price, 'f', -1, 64)
		c.wins++
		c.spend += b.Price / 1000
		for _, u := range []string{b.NURL, b.BURL} {
			if u != "" {
				urls = append(urls, strings.ReplaceAll(u, "${AUCTION_PRICE}", price))
			}
		}
		imp, click := trackers(b.AdM)
		if imp != "" {
			c.imps++
			urls = append(urls, imp)
			if click != "" && m.rng.Float64() < m.cfg.CTR.of(b.CID) {
				c.clicks++
				urls = append(urls, click)
			}
		} else {
			m.noImp++
		}
	} else if b.LURL != "" {
		mtw := strconv.FormatFloat(math.Max(comp, info.floor)+0.01, 'f', 2, 64)
		u := strings.ReplaceAll(b.LURL, "${AUCTION_LOSS}", "102")
		urls = append(urls, strings.ReplaceAll(u, "${AUCTION_MIN_TO_WIN}", mtw))
	}
	// Decide duplicates now, under the lock, so the draws follow the seed.
	var chain []string
	for _, u := range urls {
		chain = append(chain, u)
		if m.cfg.NoticeDup > 0 && m.rng.Float64() < m.cfg.NoticeDup {
			chain = append(chain, u)
		}
	}
	m.mu.Unlock()
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
		for _, u := range chain {
			if u == prev {
				m.dups.Add(1)
			}
			prev = u
			m.send(req, resp, u)
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

// MarketReport is what the market simulator saw.
type MarketReport struct {
	Overall   CampaignReport            `json:"overall"`
	Campaigns []CampaignReport          `json:"campaigns"`
	Notices   map[string]NoticeOutcomes `json:"notices"`
	Dups      int64                     `json:"notices_duplicated"`
	Dropped   int64                     `json:"notices_dropped"` // queue full
	BadResp   int64                     `json:"bad_responses"`   // 200s whose body did not decode
	NoImp     int64                     `json:"wins_without_imp_url"`
	LastError string                    `json:"last_notice_error,omitempty"`
}

// CampaignReport is one campaign's (or all campaigns') auctions.
type CampaignReport struct {
	CID         string  `json:"cid,omitempty"`
	Bids        int64   `json:"bids"`
	Wins        int64   `json:"wins"`
	WinRate     float64 `json:"win_rate"`
	Impressions int64   `json:"impressions"`
	Spend       float64 `json:"spend"` // sum of clearing prices / 1000, in the response currency
	ECPM        float64 `json:"ecpm"`
	Clicks      int64   `json:"clicks"`
	CTR         float64 `json:"ctr"`
}

// NoticeOutcomes counts the answers to one notice type.
type NoticeOutcomes struct {
	S2xx int64 `json:"2xx"`
	S3xx int64 `json:"3xx"`
	S4xx int64 `json:"4xx"`
	S5xx int64 `json:"5xx"`
	Err  int64 `json:"errors"`
}

func (c *CampaignReport) add(s *campStats) {
	c.Bids += s.bids
	c.Wins += s.wins
	c.Impressions += s.imps
	c.Spend += s.spend
	c.Clicks += s.clicks
}

func (c *CampaignReport) ratios() {
	if c.Bids > 0 {
		c.WinRate = float64(c.Wins) / float64(c.Bids)
	}
	if c.Impressions > 0 {
		c.ECPM = 1000 * c.Spend / float64(c.Impressions)
		c.CTR = float64(c.Clicks) / float64(c.Impressions)
	}
}

func (m *market) report() *MarketReport {
	r := &MarketReport{Notices: map[string]NoticeOutcomes{}, Dups: m.dups.Load(), Dropped: m.dropped.Load(),
		BadResp: m.badResp.Load()}
	if s, ok := m.lastErr.Load().(string); ok {
		r.LastError = s
	}
	m.mu.Lock()
	r.NoImp = m.noImp
	for cid, s := range m.camps {
		c := CampaignReport{CID: cid}
		c.add(s)
		c.ratios()
		r.Campaigns = append(r.Campaigns, c)
		r.Overall.add(s)
	}
	m.mu.Unlock()
	r.Overall.ratios()
	slices.SortFunc(r.Campaigns, func(a, b CampaignReport) int { return strings.Compare(a.CID, b.CID) })
	for t := range nTypes {
		x := &m.results[t]
		r.Notices[noticeNames[t]] = NoticeOutcomes{S2xx: x[r2xx].Load(), S3xx: x[r3xx].Load(), S4xx: x[r4xx].Load(),
			S5xx: x[r5xx].Load(), Err: x[rErr].Load()}
	}
	return r
}

func (r *MarketReport) writeText(w io.Writer) {
	line := func(c CampaignReport, name string) {
		fmt.Fprintf(w, "  %-18s bids %7d  wins %7d (%5.1f%%)  imps %7d  spend %10.4f  eCPM %6.3f  clicks %5d  CTR %.3f%%\n",
			name, c.Bids, c.Wins, 100*c.WinRate, c.Impressions, c.Spend, c.ECPM, c.Clicks, 100*c.CTR)
	}
	fmt.Fprintln(w, "market      first-price auctions against a log-normal highest competing bid")
	for _, c := range r.Campaigns {
		line(c, c.CID)
	}
	line(r.Overall, "overall")
	fmt.Fprint(w, "notices    ")
	for _, n := range noticeNames {
		o := r.Notices[n]
		fmt.Fprintf(w, " %s 2xx %d 3xx %d 4xx %d 5xx %d err %d;", n, o.S2xx, o.S3xx, o.S4xx, o.S5xx, o.Err)
	}
	fmt.Fprintf(w, "\n            %d sent twice, %d dropped (queue full), %d undecodable 200s, %d wins without an impression URL\n",
		r.Dups, r.Dropped, r.BadResp, r.NoImp)
	if r.LastError != "" {
		fmt.Fprintf(w, "            last notice error: %s\n", r.LastError)
	}
}

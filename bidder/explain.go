package bidder

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"rtb/auction"
	"rtb/bidder/campaign"
	"rtb/bidder/openrtb"
	"rtb/bidder/targeting"
)

// Explanation is the answer of POST /api/explain: what the bid endpoint would answer to a bid
// request, and why each campaign did or did not bid on each imp.
type Explanation struct {
	RequestID string `json:"request_id,omitempty"`
	// Status is what the bid endpoint would answer: 200 (a bid), 204 (no bid) or 400 (invalid).
	Status int `json:"status"`
	// Reason of a 204, one of rtb_no_bid_total's reasons; of a 400, rtb_bid_request_errors_total's.
	Reason   string           `json:"reason,omitempty"`
	Error    string           `json:"error,omitempty"`    // of a 400: the message the bid endpoint gives
	Response json.RawMessage  `json:"response,omitempty"` // of a 200: the bid response (ids and tokens of this explanation)
	Imps     []ImpExplanation `json:"imps,omitempty"`
	Notes    []string         `json:"notes,omitempty"`
}

// ImpExplanation is one imp's auction.
type ImpExplanation struct {
	ImpID string `json:"imp_id"`
	// Result is "bid" when the imp got one, else the furthest stage reached on it (a no-bid reason).
	Result    string                `json:"result"`
	Detail    string                `json:"detail,omitempty"`
	Campaigns []CampaignExplanation `json:"campaigns"`
}

// CampaignExplanation is how far one campaign got on one imp.
type CampaignExplanation struct {
	CampaignID string `json:"campaign_id"`
	// Result: bid (it won the imp), outbid (it made an offer, or could have, below the winner's),
	// or a no-bid reason: currency, no_match, blocked, capped, paced, floor.
	Result string `json:"result"`
	// Price of its offer (bid, outbid), in the account currency's units CPM.
	Price  *float64 `json:"price,omitempty"`
	DealID string   `json:"deal_id,omitempty"`
	// Detail names the check that stopped it, with the figures it compared (with ?debug=1).
	Detail string `json:"detail,omitempty"`
}

// explainer follows one request through the bid path while it is explained: scratch.x points to it,
// and every side effect of the path (pacing traffic and draws, cap reservations, metrics, events,
// bid ids, shading statistics and exploration) is skipped while it does.
type explainer struct {
	debug   bool
	shader  auction.Shader
	imp     int
	deal    string // the deal of the phase being walked, "" in the open auction
	dealWon bool   // walking the open auction only to explain it: a deal already has an offer
	noCur   bool   // none of the request's currencies is one we bid in: no imp was looked at
	bids    int
	rows    [][]explainRow // [imp][rank]
	impWhy  []string       // [imp]: an imp-level reason (its floor's currency)
}

type explainRow struct {
	seen   bool
	stage  noBid
	why    string
	a, b   int64 // the figures why compares (micros)
	offer  bool  // an offer at price
	price  int64
	deal   string
	won    bool
	byDeal bool // an open offer that a deal's offer beat
	pace   float64
}

func (x *explainer) startImp(i int) { x.imp = i }

// note records how far rank r got on the current imp; the first note at the furthest stage stays.
// r < 0 is a note on the imp itself.
func (x *explainer) note(r int, st noBid, why string, a, b int64) {
	if r < 0 {
		if x.impWhy[x.imp] == "" {
			x.impWhy[x.imp] = why
		}
		return
	}
	row := &x.rows[x.imp][r]
	if row.seen && st <= row.stage {
		return
	}
	*row = explainRow{seen: true, stage: st, why: why, a: a, b: b, deal: x.deal, pace: row.pace}
}

// offer records rank r's offer at price bid.
func (x *explainer) offer(r int, value, bid int64) {
	x.note(r, nbOffer, "", value, bid)
	row := &x.rows[x.imp][r]
	if row.stage == nbOffer && !row.offer {
		row.offer, row.price, row.byDeal = true, bid, x.dealWon
	}
}

// won records that o's campaign bid on the current imp.
func (x *explainer) won(o auction.Offer) {
	row := &x.rows[x.imp][o.Rank]
	row.seen, row.stage, row.won, row.offer, row.price, row.deal = true, nbOffer, true, true, o.Price, o.DealID
}

// admit is PacingConfig.admit without its side effects (traffic counted for the pacer, a random
// draw): a campaign is admitted when its throttle is above 0, and the explanation says at which.
func (x *explainer) admit(p *PacingConfig, t *pacingTable, s *pacingSlot, now time.Time, r int) (bool, float64) {
	if !p.Enabled {
		return true, 1
	}
	until := t.validUntil(s)
	throttle := p.Unknown
	if until != 0 {
		if now.UnixNano() > until+int64(p.StaleAfter) {
			x.note(r, nbPaced, "its pacing state is stale (its pacer has gone quiet)", 0, 0)
			return false, 1
		}
		throttle = math.Float64frombits(s.throttle.Load())
	}
	x.rows[x.imp][r].pace = throttle
	if throttle <= 0 {
		x.note(r, nbPaced, "pacing throttle 0: budget reached, paused, or held back to its target", 0, 0)
		return false, 1
	}
	return true, math.Float64frombits(s.multiplier.Load())
}

// quietShader prices as a LearnedShader does without exploring and without counting its decisions:
// the finest model for the segment if it is fresh, else the shader's default factor.
type quietShader struct{ s *auction.LearnedShader }

func (q quietShader) Shade(exchange, segment string, value, _ int64) int64 {
	cfg := q.s.Config()
	now := time.Now()
	if cfg.Now != nil {
		now = cfg.Now()
	}
	if m := q.s.Models().Lookup(exchange, segment); m != nil && now.Sub(m.Params().FittedAt) <= cfg.StaleAfter {
		return m.Bid(value)
	}
	if cfg.Default <= 0 || cfg.Default == 1 {
		return value
	}
	return int64(cfg.Default * float64(value))
}

// Explain runs body through the engine in force as the bid endpoint would, without side effects,
// and says what it would answer and why. exchange is the bid endpoint's ?exchange= (shading models
// are per exchange); only, if not empty, limits the campaigns listed.
func (b *Bidder) Explain(body []byte, exchange string, debug bool, only map[string]bool) *Explanation {
	e := b.eng.Load()
	s := &scratch{}
	x := &explainer{debug: debug, shader: b.cfg.Shader}
	if ls, ok := b.cfg.Shader.(*auction.LearnedShader); ok {
		x.shader = quietShader{ls}
	}
	s.x = x
	out := &Explanation{}
	if err := s.dec.Decode(body, &s.req); err != nil {
		out.Status, out.Error = http.StatusBadRequest, err.Error()
		if oe := openrtb.AsError(err); oe != nil {
			out.Reason, out.Error = string(oe.Reason), oe.Msg
		}
		return out
	}
	req := &s.req
	out.RequestID = req.ID
	x.rows = make([][]explainRow, len(req.Imp))
	for i := range x.rows {
		x.rows[i] = make([]explainRow, e.index.Len())
	}
	x.impWhy = make([]string, len(req.Imp))
	now := b.now()
	// No deadline: an explanation walks every candidate, which the bid path does not.
	bids, _ := b.bid(e, s, []byte(exchange), now.Add(time.Hour), now)
	if bids > 0 {
		out.Status = http.StatusOK
		out.Response = json.RawMessage(s.resp.AppendJSON(nil))
	} else {
		out.Status, out.Reason = http.StatusNoContent, s.reason().String()
	}
	if x.noCur {
		for i := range x.impWhy {
			x.impWhy[i] = "none of the request's currencies (cur) is one we can bid in"
		}
	}
	if b.cfg.Pacing.Enabled {
		out.Notes = append(out.Notes, "pacing: a campaign whose throttle is above 0 is shown admitted; the bid path admits it with that probability")
	}
	if b.cfg.Caps != nil && !b.capsReady() {
		out.Notes = append(out.Notes, "frequency caps are warming up: capped campaigns do not bid yet")
	}

	// Campaigns of the set the index leaves out (paused, or their flight has ended) are listed too.
	indexed := make(map[*campaign.Campaign]int, e.index.Len())
	for r := range e.index.Entries {
		indexed[e.index.Entries[r].Campaign] = r
	}
	ids := make([]*campaign.Campaign, 0, len(e.set.Campaigns))
	for _, c := range e.set.Campaigns {
		if len(only) == 0 || only[c.ID] {
			ids = append(ids, c)
		}
	}
	slices.SortFunc(ids, func(a, b *campaign.Campaign) int { return strings.Compare(a.ID, b.ID) })

	for i := range req.Imp {
		rows := x.rows[i]
		// Which rule kept a campaign out of the imp's open-auction candidates (the query is still
		// prepared for this request).
		var open targeting.Iter
		if !x.noCur {
			s.q.Open(&open, &req.Imp[i])
		}
		ie := ImpExplanation{ImpID: req.Imp[i].ID, Campaigns: []CampaignExplanation{}}
		furthest, winner := nbNone, int64(-1)
		if x.impWhy[i] != "" {
			furthest = nbCurrency
			if debug {
				ie.Detail = x.impWhy[i]
			}
		}
		for r := range rows {
			if rows[r].seen {
				furthest = max(furthest, rows[r].stage)
			}
			if rows[r].won {
				winner = rows[r].price
			}
		}
		switch {
		case winner >= 0:
			ie.Result = "bid"
		case furthest == nbNone:
			ie.Result = nbNoMatch.String()
		case furthest == nbOffer:
			ie.Result = s.dropped.String()
		default:
			ie.Result = furthest.String()
		}
		for _, c := range ids {
			ce := CampaignExplanation{CampaignID: c.ID}
			r, ok := indexed[c]
			switch {
			case !ok:
				ce.Result, ce.Detail = nbNoMatch.String(), "not in the index: paused, or its flight ended before the campaigns were loaded"
			case x.impWhy[i] != "" && !rows[r].seen:
				ce.Result, ce.Detail = nbCurrency.String(), x.impWhy[i]
			case !rows[r].seen:
				ce.Result = nbNoMatch.String()
				ce.Detail = "not a candidate: its targeting or its creatives' media and sizes exclude this imp"
				if why := open.Excludes(r); why != "" {
					ce.Detail = "not a candidate, by its targeting: " + why
				}
				if req.Imp[i].PMP != nil && req.Imp[i].PMP.PrivateAuction == 1 {
					ce.Detail = "not a candidate: a private auction, and the campaign targets none of its deals"
				}
			default:
				x.describe(&ce, &rows[r], winner)
			}
			if !debug {
				ce.Detail = ""
			}
			ie.Campaigns = append(ie.Campaigns, ce)
		}
		out.Imps = append(out.Imps, ie)
	}
	return out
}

func (x *explainer) describe(ce *CampaignExplanation, row *explainRow, winner int64) {
	ce.DealID = row.deal
	if row.pace > 0 && row.pace < 1 {
		defer func() { ce.Detail += fmt.Sprintf(" (pacing admits it to %.0f%% of auctions)", 100*row.pace) }()
	}
	switch {
	case row.won:
		ce.Result, ce.Price = "bid", units(row.price)
		ce.Detail = "won the imp"
		if row.deal != "" {
			ce.Detail = "won the imp in deal " + row.deal
		}
	case row.offer:
		ce.Result, ce.Price = "outbid", units(row.price)
		switch {
		case row.byDeal:
			ce.Detail = "outbid: a deal's offer takes the imp before the open auction"
		case winner >= 0:
			ce.Detail = fmt.Sprintf("outbid: offered %s, the winning offer was %s", money(row.price), money(winner))
		default:
			ce.Detail = "its offer was dropped when written: " + row.why
		}
	case row.stage == nbOffer:
		ce.Result = "outbid"
		ce.Detail = fmt.Sprintf("outbid: its max_bid %s cannot beat the best offer %s", money(row.a), money(row.b))
	case row.stage == nbFloor:
		ce.Result = nbFloor.String()
		if row.b == 0 {
			ce.Detail = row.why
		} else {
			ce.Detail = fmt.Sprintf("its value %s (after the pacing multiplier, at most max_bid) is below the floor %s", money(row.a), money(row.b))
		}
	default:
		ce.Result, ce.Detail = row.stage.String(), row.why
	}
}

func units(m int64) *float64 { f := float64(m) / 1e6; return &f }

func money(m int64) string { return campaign.Micros(m).String() }

// ExplainAPI serves POST /api/explain for the admin port: the body is a bid request, the answer an
// Explanation as JSON. ?debug=1 adds each campaign's detail (the check that stopped it and the
// figures it compared); ?campaign=ID[,ID…] lists only those campaigns; ?exchange= is the bid
// endpoint's. Nothing is counted, reserved, paced or published: explaining does not change what
// the bidder does next.
func (b *Bidder) ExplainAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "method not allowed: POST a bid request", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(b.cfg.MaxBodyBytes)))
		if err != nil {
			http.Error(w, fmt.Sprintf("read the bid request: %v", err), http.StatusRequestEntityTooLarge)
			return
		}
		q := r.URL.Query()
		debug := false
		switch q.Get("debug") {
		case "", "0", "false":
		case "1", "true":
			debug = true
		default:
			http.Error(w, "debug: want 1 or 0", http.StatusBadRequest)
			return
		}
		var only map[string]bool
		for _, v := range q["campaign"] {
			for id := range strings.SplitSeq(v, ",") {
				if id = strings.TrimSpace(id); id != "" {
					if only == nil {
						only = map[string]bool{}
					}
					only[id] = true
				}
			}
		}
		out := b.Explain(body, q.Get("exchange"), debug, only)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			b.log.Debug("write explanation", "error", err)
		}
	})
}

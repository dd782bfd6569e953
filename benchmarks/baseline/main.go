// Command baseline is the plain comparison bidder of the benchmarks: the same decision rtb makes,
// written the straightforward way with the standard library only, as a competent engineer would in
// an afternoon. net/http serves, encoding/json decodes the request into rtb's openrtb.BidRequest and
// encodes the response, and every imp is matched by scanning every campaign linearly. There is no
// pooling, no index, no pre-computation beyond loading the campaigns, on purpose: its numbers are the
// "what if we had just written it plainly" line that rtb's numbers are compared against.
//
// Decision, per imp, over every live campaign: inventory kind, country, region, device type, OS,
// publisher and site/app allow and block lists, dayparts, deals (a deal-only campaign bids only into
// its deals; a private auction takes only deal bids), creative fit (banner size in w/h or format,
// video/audio/native need the matching object), bcat, badv, bapp, battr, then a price (fixed CPM,
// or CPC × CTR for target-CPC campaigns, capped at max_bid) that must clear the floor, converted to
// USD with rtb's own currency table (auction.FloorMicros). The highest price wins. Campaigns that
// target user segments are skipped: the baseline has no user store. Budgets, pacing and frequency
// caps are not applied (rtb is benchmarked with --pacing=false too).
//
// Notice URLs (nurl, burl, lurl) are plain strings with the ids in the query: no signing, no notice
// endpoints behind them. The baseline is a measuring instrument for benchmarks/run.sh, not part of the
// product.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"rtb/auction"
	"rtb/bidder/campaign"
	"rtb/bidder/campaign/campaigntest"
	"rtb/bidder/openrtb"
)

// BidResponse is the answer (OpenRTB 2.6 §4.2.1), only the fields the baseline fills.
type BidResponse struct {
	ID      string    `json:"id"`
	SeatBid []SeatBid `json:"seatbid"`
	BidID   string    `json:"bidid,omitempty"`
	Cur     string    `json:"cur"`
}

// SeatBid is one seat's bids (§4.2.2).
type SeatBid struct {
	Bid  []Bid  `json:"bid"`
	Seat string `json:"seat,omitempty"`
}

// Bid is one bid (§4.2.3).
type Bid struct {
	ID      string   `json:"id"`
	ImpID   string   `json:"impid"`
	Price   float64  `json:"price"`
	NURL    string   `json:"nurl,omitempty"`
	BURL    string   `json:"burl,omitempty"`
	LURL    string   `json:"lurl,omitempty"`
	AdM     string   `json:"adm,omitempty"`
	AdID    string   `json:"adid,omitempty"`
	ADomain []string `json:"adomain,omitempty"`
	CID     string   `json:"cid,omitempty"`
	CrID    string   `json:"crid,omitempty"`
	Cat     []string `json:"cat,omitempty"`
	Attr    []int    `json:"attr,omitempty"`
	DealID  string   `json:"dealid,omitempty"`
	W       int      `json:"w,omitempty"`
	H       int      `json:"h,omitempty"`
	MType   int      `json:"mtype,omitempty"`
}

type server struct {
	campaigns []*campaign.Campaign
	baseURL   string
	seat      string
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8091", "address to listen on")
	file := flag.String("campaigns", "", "campaign FILE (YAML or JSON) instead of the built-in samples")
	synthetic := flag.Int("synthetic", 0, "also add N synthetic campaigns (campaigntest.Synthetic)")
	seed := flag.Uint64("seed", 1, "seed of the synthetic campaigns")
	flag.Parse()

	set := campaign.Samples()
	if *file != "" {
		var err error
		if set, err = campaign.Load(*file); err != nil {
			log.Fatal(err)
		}
	}
	all := slices.Clone(set.Campaigns)
	if *synthetic > 0 {
		all = append(all, campaigntest.Synthetic(*synthetic, *seed).Campaigns...)
	}
	s := &server{campaigns: all, baseURL: "http://" + *listen, seat: "baseline"}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /openrtb2/bid", s.handleBid)
	log.Printf("baseline: %d campaigns, listening on %s", len(all), *listen)
	log.Fatal(http.ListenAndServe(*listen, mux))
}

func (s *server) handleBid(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 256<<10))
	if err != nil {
		http.Error(w, "read error", http.StatusBadRequest)
		return
	}
	var req openrtb.BidRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	if req.ID == "" || len(req.Imp) == 0 {
		http.Error(w, "id and imp required", http.StatusBadRequest)
		return
	}
	if len(req.Cur) > 0 && !slices.Contains(req.Cur, "USD") {
		w.WriteHeader(http.StatusNoContent)
		return
	}

	now := time.Now()
	var bids []Bid
	for i := range req.Imp {
		if b, ok := s.bestBid(&req, &req.Imp[i], now); ok {
			bids = append(bids, b)
		}
	}
	if len(bids) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	resp := BidResponse{ID: req.ID, SeatBid: []SeatBid{{Bid: bids, Seat: s.seat}}, BidID: bids[0].ID, Cur: "USD"}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Openrtb-Version", "2.6")
	if err := json.NewEncoder(w).Encode(resp); err != nil {
		log.Printf("write: %v", err)
	}
}

// bestBid scans every campaign and creative for imp and returns the highest-priced eligible bid.
func (s *server) bestBid(req *openrtb.BidRequest, imp *openrtb.Imp, now time.Time) (Bid, bool) {
	impFloor, ok := auction.FloorMicros(imp.BidFloor, imp.BidFloorCur)
	if !ok {
		return Bid{}, false
	}
	private := imp.PMP != nil && imp.PMP.PrivateAuction == 1
	var best Bid
	var bestPrice int64
	found := false
	for _, c := range s.campaigns {
		if !s.campaignMatches(req, c, now) {
			continue
		}
		// Deals: a deal-only campaign needs one of its deals in the imp; others bid in the open
		// auction unless it is private.
		floor, dealID := impFloor, ""
		if len(c.Targeting.Deals) > 0 {
			if imp.PMP == nil {
				continue
			}
			matched := false
			for _, d := range imp.PMP.Deals {
				if slices.Contains(c.Targeting.Deals, d.ID) {
					if d.BidFloor > 0 {
						f, ok := auction.FloorMicros(d.BidFloor, d.BidFloorCur)
						if !ok {
							continue
						}
						floor = f
					}
					dealID, matched = d.ID, true
					break
				}
			}
			if !matched {
				continue
			}
		} else if private {
			continue
		}
		price := int64(c.Bid.CPM)
		if c.Bid.Type == campaign.TargetCPC {
			price = int64(float64(c.Bid.CPC) * c.Bid.CTR * 1000)
		}
		if c.Bid.MaxBid > 0 && price > int64(c.Bid.MaxBid) {
			price = int64(c.Bid.MaxBid)
		}
		if price <= 0 || price < floor || (found && price <= bestPrice) {
			continue
		}
		for k := range c.Creatives {
			cr := &c.Creatives[k]
			w, h, mtype, ok := creativeFits(imp, cr)
			if !ok {
				continue
			}
			if anyIn(req.BCat, c.CreativeCategories(cr)) || blockedAttr(imp, cr.Attributes) {
				continue
			}
			id := strconv.FormatUint(rand.Uint64(), 16)
			q := "?id=" + id + "&c=" + c.ID + "&cr=" + cr.ID + "&imp=" + imp.ID
			best = Bid{
				ID: id, ImpID: imp.ID, Price: float64(price) / 1e6,
				NURL:    s.baseURL + "/win" + q + "&price=${AUCTION_PRICE}",
				BURL:    s.baseURL + "/bill" + q + "&price=${AUCTION_PRICE}",
				LURL:    s.baseURL + "/loss" + q + "&reason=${AUCTION_LOSS}",
				AdM:     adMarkup(cr, s.baseURL+"/click"+q, s.baseURL+"/imp"+q),
				AdID:    cr.ID,
				ADomain: []string{c.AdvertiserDomain},
				CID:     c.ID, CrID: cr.ID, Cat: c.CreativeCategories(cr), Attr: cr.Attributes,
				DealID: dealID, W: w, H: h, MType: mtype,
			}
			bestPrice, found = price, true
			break
		}
	}
	return best, found
}

// campaignMatches applies the request-level targeting of c.
func (s *server) campaignMatches(req *openrtb.BidRequest, c *campaign.Campaign, now time.Time) bool {
	t := &c.Targeting
	if !c.Live(now) || len(t.Segments) > 0 {
		return false
	}
	if t.Dayparts != nil && !t.Dayparts.Active(now) {
		return false
	}
	geo := req.Device.Geo
	if len(t.Countries) > 0 && !slices.Contains(t.Countries, geo.Country) {
		return false
	}
	if len(t.Regions) > 0 && !slices.Contains(t.Regions, geo.Region) {
		return false
	}
	if len(t.DeviceTypes) > 0 && !slices.Contains(t.DeviceTypes, int(req.Device.DeviceType)) {
		return false
	}
	if len(t.OS) > 0 && !slices.Contains(t.OS, strings.ToLower(req.Device.OS)) {
		return false
	}
	if slices.Contains(req.BAdv, c.AdvertiserDomain) {
		return false
	}
	if c.AppBundle != "" && slices.Contains(req.BApp, c.AppBundle) {
		return false
	}
	var pub string
	switch {
	case req.Site != nil:
		if t.Inventory != "" && t.Inventory != campaign.InventorySite {
			return false
		}
		if len(t.Apps.Allow) > 0 || !listAllows(t.Sites, strings.ToLower(req.Site.Domain)) {
			return false
		}
		pub = req.Site.Publisher.ID
	case req.App != nil:
		if t.Inventory != "" && t.Inventory != campaign.InventoryApp {
			return false
		}
		if len(t.Sites.Allow) > 0 || !listAllows(t.Apps, req.App.Bundle) {
			return false
		}
		pub = req.App.Publisher.ID
	case req.DOOH != nil:
		if t.Inventory != "" && t.Inventory != campaign.InventoryDOOH {
			return false
		}
		if len(t.Sites.Allow) > 0 || len(t.Apps.Allow) > 0 {
			return false
		}
		pub = req.DOOH.Publisher.ID
	default:
		return false
	}
	if len(t.Publishers) > 0 && !slices.Contains(t.Publishers, pub) {
		return false
	}
	return true
}

// creativeFits reports whether cr can fill imp, with the size and OpenRTB 2.6 mtype of the bid.
func creativeFits(imp *openrtb.Imp, cr *campaign.Creative) (w, h, mtype int, ok bool) {
	switch cr.Type {
	case campaign.TypeBanner:
		b := imp.Banner
		if b == nil {
			return 0, 0, 0, false
		}
		if b.W == int64(cr.W) && b.H == int64(cr.H) {
			return cr.W, cr.H, 1, true
		}
		for _, f := range b.Format {
			if f.W == int64(cr.W) && f.H == int64(cr.H) {
				return cr.W, cr.H, 1, true
			}
		}
		return 0, 0, 0, false
	case campaign.TypeVideo:
		if imp.Video == nil {
			return 0, 0, 0, false
		}
		if len(imp.Video.MIMEs) > 0 && len(cr.MIMEs) > 0 && !anyIn(imp.Video.MIMEs, cr.MIMEs) {
			return 0, 0, 0, false
		}
		if d := int64(cr.Duration); d > 0 && imp.Video.MaxDuration > 0 && d > imp.Video.MaxDuration {
			return 0, 0, 0, false
		}
		return cr.W, cr.H, 2, true
	case campaign.TypeAudio:
		return 0, 0, 3, imp.Audio != nil
	case campaign.TypeNative:
		return 0, 0, 4, imp.Native != nil && cr.Native != nil
	}
	return 0, 0, 0, false
}

func adMarkup(cr *campaign.Creative, click, impURL string) string {
	switch cr.Type {
	case campaign.TypeBanner:
		if cr.HTML != "" {
			return cr.HTML
		}
		return fmt.Sprintf(`<a href=%q><img src=%q width="%d" height="%d"></a><img src=%q width="1" height="1">`,
			click, cr.LandingURL, cr.W, cr.H, impURL)
	case campaign.TypeVideo, campaign.TypeAudio:
		return cr.VAST
	case campaign.TypeNative:
		n, _ := json.Marshal(map[string]any{"native": map[string]any{
			"link":        map[string]string{"url": click},
			"imptrackers": []string{impURL},
			"assets": []map[string]any{
				{"id": 1, "title": map[string]string{"text": cr.Native.Title}},
				{"id": 2, "data": map[string]string{"value": cr.Native.Body}},
			},
		}})
		return string(n)
	}
	return ""
}

func blockedAttr(imp *openrtb.Imp, attrs []int) bool {
	var battr []int
	switch {
	case imp.Banner != nil:
		battr = imp.Banner.BAttr
	case imp.Video != nil:
		battr = imp.Video.BAttr
	case imp.Native != nil:
		battr = imp.Native.BAttr
	}
	for _, a := range attrs {
		if slices.Contains(battr, a) {
			return true
		}
	}
	return false
}

func listAllows(l campaign.ListRule, v string) bool {
	if len(l.Allow) > 0 && !slices.Contains(l.Allow, v) {
		return false
	}
	return !slices.Contains(l.Block, v)
}

func anyIn(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

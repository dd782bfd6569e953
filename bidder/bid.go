package bidder

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"rtb/auction"
	"rtb/bidder/campaign"
	"rtb/bidder/notice"
	"rtb/bidder/openrtb"
	"rtb/bidder/targeting"
	"rtb/events"
	"rtb/features"
)

// pricing carries what the auction of one imp phase needs to price an offer.
type pricing struct {
	floor      int64
	firstPrice bool
	fixed      bool          // deal at=3: the floor is the agreed price
	deal       *openrtb.Deal // set in a deal phase
}

// bid runs the auction of every imp of s.req and fills s.resp; it returns the number of bids and
// whether the deadline passed on the way.
//
// Strings of the response are appended to s.arena and referenced with unsafe.String rather than
// copied: each is written once and never modified, and if the arena grows the old array stays alive
// (and unchanged) for as long as a string points into it. The arena is reset only when the scratch
// serves its next request, after this response has been written.
func (b *Bidder) bid(e *engine, s *scratch, exchange []byte, deadline, now time.Time) (int, bool) {
	req := &s.req
	s.arena = s.arena[:0]
	s.resp.Reset()
	s.stage, s.dropped = nbNone, nbNone

	// Respond in the account currency where allowed, else in the first listed currency we know.
	cur := auction.Account
	if len(req.Cur) > 0 && !contains(req.Cur, auction.Account) {
		cur = ""
		for _, c := range req.Cur {
			if auction.Known(c) {
				cur = c
				break
			}
		}
		if cur == "" {
			s.stage = nbCurrency
			if s.x != nil {
				s.x.noCur = true
			}
			return 0, false
		}
	}

	s.segs = s.segs[:0]
	s.user = features.UserKey(userID(req))
	var pubCTR float64
	if f := b.cfg.Features; f != nil {
		if u, ok := f.User(userID(req)); ok {
			s.segs = append(s.segs, u.Segments...)
		}
		if p, ok := f.Publisher(publisherID(req)); ok {
			pubCTR = p.CTR
		}
	}
	e.index.Prepare(&s.q, req, s.segs)

	s.exchange = "default"
	if len(exchange) > 0 && len(exchange) <= 32 {
		s.exchange = b2s(exchange)
	}
	s.inv = invSite
	switch {
	case req.App != nil:
		s.inv = invApp
	case req.DOOH != nil:
		s.inv = invDOOH
	}

	bids := 0
	for i := range req.Imp {
		imp := &req.Imp[i]
		s.nativeOK = 0
		if s.x != nil {
			s.x.startImp(i)
		}
		floor, ok := auction.FloorMicros(imp.BidFloor, imp.BidFloorCur)
		if !ok {
			s.reach(-1, nbCurrency, "the imp's bidfloorcur is a currency we do not know")
			continue
		}
		// The imp was looked at: a campaign the index does not yield for it is no_match.
		s.stage = max(s.stage, nbNoMatch)
		var deal, open auction.Best
		private := false
		if pmp := imp.PMP; pmp != nil {
			private = pmp.PrivateAuction == 1
			for k := range pmp.Deals {
				d := &pmp.Deals[k]
				if !s.q.Deal(&s.it, imp, d.ID) {
					continue
				}
				p := pricing{floor: floor, firstPrice: req.FirstPrice(), deal: d}
				if d.BidFloor > 0 {
					// A deal's floor currency defaults to USD, not to the imp's (2.6 §3.2.12).
					if p.floor, ok = auction.FloorMicros(d.BidFloor, d.BidFloorCur); !ok {
						s.reach(-1, nbCurrency, "the deal's bidfloorcur is a currency we do not know")
						continue
					}
				}
				switch d.AT {
				case 1:
					p.firstPrice = true
				case 2:
					p.firstPrice = false
				case 3:
					p.fixed = true
				}
				b.phase(e, s, imp, &deal, p, pubCTR, now)
			}
		}
		if !deal.Have && !private {
			s.q.Open(&s.it, imp)
			b.phase(e, s, imp, &open, pricing{floor: floor, firstPrice: req.FirstPrice()}, pubCTR, now)
		} else if s.x != nil && !private {
			// The bid path skips the open auction once a deal has an offer; an explanation runs it
			// into a discarded best, so that every open campaign gets its own reason.
			var lost auction.Best
			s.x.dealWon = true
			s.q.Open(&s.it, imp)
			b.phase(e, s, imp, &lost, pricing{floor: floor, firstPrice: req.FirstPrice()}, pubCTR, now)
			s.x.dealWon = false
		}
		if o, ok := auction.Resolve(&deal, &open, private); ok {
			if b.appendBid(e, s, imp, o, cur, now) {
				bids++
				if s.x != nil {
					s.x.won(o)
				}
			}
		}
		if !b.now().Before(deadline) {
			return bids, true
		}
	}
	return bids, false
}

// phase walks the candidates s.it yields, richest first, until no later one can beat the best. Each
// candidate that drops out records how far it got (scratch.reach), for the no-bid reason.
func (b *Bidder) phase(e *engine, s *scratch, imp *openrtb.Imp, best *auction.Best, p pricing, pubCTR float64, now time.Time) {
	req := &s.req
	shader := b.cfg.Shader
	if s.x != nil {
		shader = s.x.shader
		s.x.deal = ""
		if p.deal != nil {
			s.x.deal = p.deal.ID
		}
	}
	for r := s.it.Next(); r >= 0; r = s.it.Next() {
		en := &e.index.Entries[r]
		if !best.Beatable(en.Bound) {
			if s.x == nil {
				return
			}
			// An explanation walks on to give every candidate its reason: outbid by the best
			// offer, which the bid path stops at.
			s.x.note(r, nbOffer, "outbid: its max_bid cannot beat the best offer", en.Bound, best.Offer.Price)
			continue
		}
		c := en.Campaign
		// Status and flight dates: the index leaves out what had ended when it was built, but a
		// flight can start or end while the index is in force.
		if !c.Live(now) {
			s.reach(r, nbNoMatch, "not live: paused, or outside its flight dates")
			continue
		}
		if !c.Targeting.Dayparts.Active(now) {
			s.reach(r, nbNoMatch, "outside its dayparts")
			continue
		}
		cr, st, why := b.fit(s, en, imp)
		if cr < 0 {
			s.reach(r, st, why)
			continue
		}
		if auction.DomainBlocked(req.BAdv, c.AdvertiserDomain) {
			s.reach(r, nbBlocked, "badv blocks its advertiser domain")
			continue
		}
		if c.AppBundle != "" && contains(req.BApp, c.AppBundle) {
			s.reach(r, nbBlocked, "bapp blocks its app")
			continue
		}
		seat := e.ranks[r].seat
		if len(req.WSeat) > 0 && !contains(req.WSeat, seat) {
			s.reach(r, nbBlocked, "its seat is not in wseat")
			continue
		}
		if contains(req.BSeat, seat) {
			s.reach(r, nbBlocked, "bseat blocks its seat")
			continue
		}
		dealID := ""
		if d := p.deal; d != nil {
			if len(d.WSeat) > 0 && !contains(d.WSeat, seat) {
				s.reach(r, nbBlocked, "its seat is not in the deal's wseat")
				continue
			}
			if len(d.WADomain) > 0 && !containsFold(d.WADomain, c.AdvertiserDomain) {
				s.reach(r, nbBlocked, "its advertiser domain is not in the deal's wadomain")
				continue
			}
			dealID = d.ID
		}
		if fc := c.FrequencyCap; fc != nil {
			if s.user == 0 {
				b.countCapped(s, capNoUser)
				s.reach(r, nbCapped, "frequency-capped, and the request names no user")
				continue
			}
			if !b.capsReady() {
				b.countCapped(s, capWarming)
				s.reach(r, nbCapped, "frequency-capped, and caps are still warming up")
				continue
			}
			if b.cfg.Caps != nil && !b.cfg.Caps.Allow(s.user, c.ID, fc.Impressions, now) {
				b.countCapped(s, capReached)
				s.reach(r, nbCapped, "frequency cap reached for this user")
				continue
			}
		}
		var admitted bool
		var multiplier float64
		if s.x == nil {
			admitted, multiplier = b.cfg.Pacing.admit(&b.pacing, e.ranks[r].pacing, now)
		} else {
			admitted, multiplier = s.x.admit(&b.cfg.Pacing, &b.pacing, e.ranks[r].pacing, now, r)
		}
		if !admitted {
			s.reach(r, nbPaced, "not admitted by pacing")
			continue
		}
		floor := p.floor
		if p.deal == nil && imp.Video != nil && en.Creatives[cr].Kind == targeting.KindVideo {
			// Duration floors (2.6) replace the imp floor for creatives of their range.
			if f, ok := imp.Video.FloorFor(int64(en.Creatives[cr].Duration)); ok {
				if floor, ok = auction.FloorMicros(f, imp.BidFloorCur); !ok {
					s.reach(r, nbCurrency, "the duration floor's currency is one we do not know")
					continue
				}
			}
		}
		seg := e.segment(r, cr, s.inv)
		value := min(int64(float64(b.campaignValue(c, seg, pubCTR))*multiplier), int64(c.Bid.MaxBid))
		var bid int64
		var ok bool
		if p.fixed {
			bid, ok = floor, value >= floor && floor > 0
		} else {
			bid, ok = auction.Price(shader, s.exchange, seg, p.firstPrice, value, floor)
		}
		if !ok {
			if s.stage < nbFloor {
				s.stage = nbFloor
			}
			if s.x != nil {
				s.x.note(r, nbFloor, "its value is below the floor", value, floor)
			}
			continue
		}
		if s.stage < nbOffer {
			s.stage = nbOffer
		}
		if s.x != nil {
			s.x.offer(r, value, bid)
		}
		best.Consider(auction.Offer{Rank: r, Creative: cr, Value: value, Price: bid, DealID: dealID})
	}
}

// countCapped counts a campaign passed over for its cap, unless the request is only being explained.
func (b *Bidder) countCapped(s *scratch, why int) {
	if s.x == nil {
		b.m.capped[why].Inc()
	}
}

// campaignValue is what an impression of segment is worth to c, capped by its max bid. A CPC
// campaign values it at target CPC × predicted CTR: the online estimate from the stream where there
// is one, which starts from (and is pulled toward) the campaign's configured ctr — averaged with the
// publisher's observed CTR when the feature store knows it.
func (b *Bidder) campaignValue(c *campaign.Campaign, segment string, pubCTR float64) int64 {
	var v int64
	switch c.Bid.Type {
	case "fixed_cpm":
		v = int64(c.Bid.CPM)
	case "target_cpc":
		ctr := c.Bid.CTR
		if pubCTR > 0 {
			ctr = (ctr + pubCTR) / 2
		}
		if b.cfg.CTR != nil {
			ctr = b.cfg.CTR.Estimate(c.ID, segment, ctr)
		}
		v = auction.CPCValue(int64(c.Bid.CPC), ctr)
	}
	return min(v, int64(c.Bid.MaxBid))
}

// fit returns the index of the first creative of en that fits imp and its blocks, or -1 with how
// far the best creative got: nbBlocked when one fits the imp but bcat or battr blocks it, else
// nbNoMatch; why names the check.
func (b *Bidder) fit(s *scratch, en *targeting.Entry, imp *openrtb.Imp) (int, noBid, string) {
	req := &s.req
	st, why := nbNoMatch, "no creative fits the imp's media, size, duration, mimes or protocols"
	for i := range en.Creatives {
		cr := &en.Creatives[i]
		var battr []int
		switch cr.Kind {
		case targeting.KindBanner:
			bn := imp.Banner
			if bn == nil || !bannerFits(bn, int64(cr.W), int64(cr.H)) {
				continue
			}
			battr = bn.BAttr
		case targeting.KindVideo:
			v := imp.Video
			if v == nil || !mediaFits(cr.Creative, v.MIMEs, v.MinDuration, v.MaxDuration, v.RqdDurs, v.Protocols, v.Protocol) {
				continue
			}
			battr = v.BAttr
		case targeting.KindAudio:
			a := imp.Audio
			if a == nil || !mediaFits(cr.Creative, a.MIMEs, a.MinDuration, a.MaxDuration, a.RqdDurs, a.Protocols, 0) {
				continue
			}
			battr = a.BAttr
		case targeting.KindNative:
			n := imp.Native
			if n == nil || !s.nativeFits(n, cr.Native) {
				continue
			}
			battr = n.BAttr
		}
		if auction.CategoryBlocked(req.BCat, cr.Cats) {
			st, why = nbBlocked, "bcat blocks the category of every creative that fits"
			continue
		}
		if auction.AttrBlocked(battr, cr.Attributes) {
			st, why = nbBlocked, "battr blocks an attribute of every creative that fits"
			continue
		}
		return i, 0, ""
	}
	return -1, st, why
}

func bannerFits(bn *openrtb.Banner, w, h int64) bool {
	if len(bn.Format) == 0 && (bn.W == 0 || bn.H == 0) {
		return true
	}
	if bn.W == w && bn.H == h {
		return true
	}
	for _, f := range bn.Format {
		if f.W == w && f.H == h {
			return true
		}
	}
	return false
}

func mediaFits(cr *campaign.Creative, mimes []string, minDur, maxDur int64, rqd []int64, protocols []int, protocol int) bool {
	ok := len(mimes) == 0
	for _, m := range mimes {
		if containsFold(cr.MIMEs, m) {
			ok = true
			break
		}
	}
	if !ok {
		return false
	}
	d := int64(cr.Duration)
	if len(rqd) > 0 {
		found := false
		for _, r := range rqd {
			found = found || r == d
		}
		if !found {
			return false
		}
	} else if (minDur > 0 && d < minDur) || (maxDur > 0 && d > maxDur) {
		return false
	}
	if len(cr.Protocols) > 0 && (len(protocols) > 0 || protocol > 0) {
		for _, p := range cr.Protocols {
			if p == protocol || containsInt(protocols, p) {
				return true
			}
		}
		return false
	}
	return true
}

// nativeFits parses the imp's native request once per imp and checks that every required asset can be
// filled from the creative.
func (s *scratch) nativeFits(n *openrtb.Native, ad *campaign.Native) bool {
	if ad == nil {
		return false
	}
	if s.nativeOK == 0 {
		s.nativeOK = -1
		if openrtb.ParseNativeRequest(n.Request, &s.native) == nil {
			s.nativeOK = 1
		}
	}
	if s.nativeOK < 0 {
		return false
	}
	for i := range s.native.Assets {
		a := &s.native.Assets[i]
		if a.Required == 1 && nativeAsset(a, ad) == "" {
			return false
		}
		if a.Title != nil && a.Title.Len > 0 && int64(len(ad.Title)) > a.Title.Len && a.Required == 1 {
			return false
		}
	}
	return true
}

// nativeAsset is the creative's value for asset a ("" when it has none).
func nativeAsset(a *openrtb.NativeAsset, ad *campaign.Native) string {
	switch {
	case a.Title != nil:
		return ad.Title
	case a.Img != nil:
		if a.Img.Type == openrtb.NativeImgIcon {
			return ad.IconURL
		}
		return ad.ImageURL
	case a.Data != nil:
		switch a.Data.Type {
		case openrtb.NativeDataSponsor:
			return ad.Sponsored
		case openrtb.NativeDataDesc:
			return ad.Body
		case openrtb.NativeDataCTA:
			return ad.CTA
		}
	}
	return ""
}

// appendBid writes the winning offer of imp into the response.
func (b *Bidder) appendBid(e *engine, s *scratch, imp *openrtb.Imp, o auction.Offer, cur string, now time.Time) bool {
	price, ok := auction.FromAccount(o.Price, cur)
	if !ok || price <= 0 {
		s.dropped = max(s.dropped, nbFloor)
		if s.x != nil {
			s.x.note(o.Rank, nbFloor, "its price rounds to 0 in the response currency", o.Price, 0)
		}
		return false
	}
	en := &e.index.Entries[o.Rank]
	c := en.Campaign
	// An explanation reserves nothing: Allow, checked in phase, is its answer.
	if fc := c.FrequencyCap; fc != nil && b.cfg.Caps != nil && s.x == nil && !b.cfg.Caps.TryReserve(s.user, c.ID, fc.Impressions, now) {
		b.m.capped[capReached].Inc()
		s.dropped = max(s.dropped, nbCapped)
		return false
	}
	cr := &en.Creatives[o.Creative]
	rd := &e.ranks[o.Rank]

	s.resp.ID, s.resp.Cur = s.req.ID, cur
	sb := s.seatBid(rd.seat)
	a := s.arena
	mark := len(a)
	a = append(a, b.cfg.BidIDPrefix...)
	if s.x == nil {
		a = strconv.AppendUint(a, b.seq.Add(1), 36)
	} else {
		a = append(a, "explain-"...)
		s.x.bids++
		a = strconv.AppendInt(a, int64(s.x.bids), 10)
	}
	id := str(a, mark)

	mark = len(a)
	a = b.cfg.Signer.Append(a, &notice.Claims{
		RequestID: s.req.ID, ImpID: imp.ID, CampaignID: c.ID, CreativeID: cr.ID, Exchange: s.exchange,
		Currency: cur, DealID: o.DealID, BidMicros: price, Time: now, Segment: e.segment(o.Rank, o.Creative, s.inv), User: s.user,
	})
	token := str(a, mark)

	url := func(path, tail string) string {
		m := len(a)
		a = append(a, b.cfg.NoticeBaseURL...)
		a = append(a, path...)
		a = append(a, "?t="...)
		a = append(a, token...)
		a = append(a, tail...)
		return str(a, m)
	}
	nurl := url("/win", "&p=${AUCTION_PRICE}")
	burl := url("/bill", "&p=${AUCTION_PRICE}")
	lurl := url("/loss", "&r=${AUCTION_LOSS}&m=${AUCTION_MIN_TO_WIN}")
	impURL := url("/imp", "")
	clickURL := url("/click", "")

	mark = len(a)
	var mtype int8
	var w, h int64
	switch cr.Kind {
	case targeting.KindBanner:
		mtype, w, h = openrtb.MTypeBanner, int64(cr.W), int64(cr.H)
		a = rd.creatives[o.Creative].append(a, clickURL, impURL)
	case targeting.KindVideo, targeting.KindAudio:
		mtype = openrtb.MTypeVideo
		if cr.Kind == targeting.KindAudio {
			mtype = openrtb.MTypeAudio
		}
		a = rd.creatives[o.Creative].append(a, clickURL, impURL)
	case targeting.KindNative:
		mtype = openrtb.MTypeNative
		a = s.appendNative(a, cr.Native, clickURL, impURL)
	}
	adm := str(a, mark)
	s.arena = a

	sb.Bid = append(sb.Bid, openrtb.Bid{
		ID: id, ImpID: imp.ID, Price: price, NURL: nurl, BURL: burl, LURL: lurl, AdM: adm,
		AdID: cr.ID, ADomain: rd.adomain, Bundle: c.AppBundle, CID: c.ID, CrID: cr.ID, Cat: cr.Cats, Attr: cr.Attributes,
		DealID: o.DealID, W: w, H: h, MType: mtype,
	})
	if s.x != nil {
		return true
	}
	rd.pacing.bids.Add(1)
	b.m.bids[cr.Kind].Inc()
	if r := b.cfg.BidSampleRate; r > 0 && b.cfg.Events != nil && (r >= 1 || rand.Float64() < r) {
		s.event = events.Event{
			V: events.Version, Type: events.Bid, ID: id, TS: now, RequestID: s.req.ID, ImpID: imp.ID,
			CampaignID: c.ID, CreativeID: cr.ID, DealID: o.DealID, Exchange: s.exchange,
			BidMicros: o.Price, PriceMicros: o.Price, Segment: e.segment(o.Rank, o.Creative, s.inv), User: userHex(&s.userHex, s.user),
		}
		b.cfg.Events.Publish(&s.event)
	}
	return true
}

// seatBid returns the response's seatbid of seat, adding it (reusing its earlier backing array) if
// needed.
func (s *scratch) seatBid(seat string) *openrtb.SeatBid {
	sbs := s.resp.SeatBid
	for i := range sbs {
		if sbs[i].Seat == seat {
			return &sbs[i]
		}
	}
	if len(sbs) < cap(sbs) {
		sbs = sbs[:len(sbs)+1]
		sbs[len(sbs)-1].Bid = sbs[len(sbs)-1].Bid[:0]
	} else {
		sbs = append(sbs, openrtb.SeatBid{})
	}
	sbs[len(sbs)-1].Seat = seat
	s.resp.SeatBid = sbs
	return &sbs[len(sbs)-1]
}

func (t template) append(dst []byte, click, imp string) []byte {
	for _, p := range t {
		switch p.macro {
		case macroClick:
			dst = append(dst, click...)
		case macroImp:
			dst = append(dst, imp...)
		default:
			dst = append(dst, p.lit...)
		}
	}
	return dst
}

// appendNative writes the Native Ads response for the parsed request in s.native (1.0 and 1.1 wrap
// it in {"native": …}, 1.2 does not).
func (s *scratch) appendNative(dst []byte, ad *campaign.Native, click, imp string) []byte {
	wrap := s.native.Ver == "" || strings.HasPrefix(s.native.Ver, "1.0") || strings.HasPrefix(s.native.Ver, "1.1") || s.native.Ver == "1"
	if wrap {
		dst = append(dst, `{"native":`...)
	}
	dst = append(dst, `{"ver":`...)
	ver := s.native.Ver
	if ver == "" {
		ver = "1.0"
	}
	dst = openrtb.AppendString(dst, ver)
	dst = append(dst, `,"assets":[`...)
	n := 0
	for i := range s.native.Assets {
		a := &s.native.Assets[i]
		v := nativeAsset(a, ad)
		if v == "" {
			continue
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = append(dst, `{"id":`...)
		dst = strconv.AppendInt(dst, a.ID, 10)
		switch {
		case a.Title != nil:
			dst = append(dst, `,"title":{"text":`...)
			dst = openrtb.AppendString(dst, v)
			dst = append(dst, '}')
		case a.Img != nil:
			w, h := ad.ImageW, ad.ImageH
			if a.Img.Type == openrtb.NativeImgIcon {
				w, h = ad.IconW, ad.IconH
			}
			dst = append(dst, `,"img":{"url":`...)
			dst = openrtb.AppendString(dst, v)
			dst = append(dst, `,"w":`...)
			dst = strconv.AppendInt(dst, int64(w), 10)
			dst = append(dst, `,"h":`...)
			dst = strconv.AppendInt(dst, int64(h), 10)
			dst = append(dst, '}')
		case a.Data != nil:
			dst = append(dst, `,"data":{"value":`...)
			dst = openrtb.AppendString(dst, v)
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `],"link":{"url":`...)
	dst = openrtb.AppendString(dst, click)
	dst = append(dst, `},"imptrackers":[`...)
	dst = openrtb.AppendString(dst, imp)
	dst = append(dst, "]}"...)
	if wrap {
		dst = append(dst, '}')
	}
	return dst
}

// userID is the exchange's id of the user: buyeruid (ours, if we sync) before the exchange's id.
func userID(req *openrtb.BidRequest) string {
	if req.User.BuyerUID != "" {
		return req.User.BuyerUID
	}
	return req.User.ID
}

// userHex writes k as the 16 hex digits events carry into buf ("" for no user).
func userHex(buf *[16]byte, k uint64) string {
	if k == 0 {
		return ""
	}
	for i := 15; i >= 0; i-- {
		buf[i] = "0123456789abcdef"[k&0xf]
		k >>= 4
	}
	return unsafe.String(&buf[0], 16)
}

func publisherID(req *openrtb.BidRequest) string {
	switch {
	case req.Site != nil:
		return req.Site.Publisher.ID
	case req.App != nil:
		return req.App.Publisher.ID
	case req.DOOH != nil:
		return req.DOOH.Publisher.ID
	}
	return ""
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func containsFold(ss []string, s string) bool {
	for _, x := range ss {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func b2s(b []byte) string { return unsafe.String(&b[0], len(b)) }

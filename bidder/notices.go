package bidder

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"rtb/auction"
	"rtb/bidder/notice"
	"rtb/events"
)

// Publisher takes events off the request path. Publish must not block and must copy what it keeps:
// the event's strings alias request buffers.
type Publisher interface {
	Publish(e *events.Event)
}

// DurablePublisher is a Publisher that can also say when a money event is durable (the events
// producer: acknowledged by Kafka or fsynced into its spill). When Events is one, a win, bill or
// impression notice is answered only once its event is durable, so that a bidder killed right
// after answering cannot lose money the exchange counts as notified; a notice whose event is not
// durable within noticeDurableWait gets 503, and the exchange's retry carries the same event id.
type DurablePublisher interface {
	Publisher
	PublishDurable(e *events.Event, timeout time.Duration) error
}

// noticeDurableWait bounds how long a money notice waits for its event to be durable. It is
// longer than the producer's Kafka write timeout (5 s): the first write of an outage fails only
// after it, and then the event goes to the spill within an fsync.
const noticeDurableWait = 10 * time.Second

// Results of a notice; each is a value of the result label.
const (
	noticeOK          = "ok"
	noticeBadToken    = "bad_token"
	noticeExpired     = "expired"
	noticeBadPrice    = "bad_price"
	noticeFraudPrice  = "price_above_bid"
	noticeUnavailable = "unavailable"
	noticeGone        = "campaign_gone"
)

var noticeResults = []string{noticeOK, noticeBadToken, noticeExpired, noticeBadPrice, noticeFraudPrice, noticeUnavailable, noticeGone}

// pixel is a transparent 1×1 GIF, the body of the impression pixel.
var pixel = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b")

// handleNotice serves /win, /bill, /loss, /imp and /click: it verifies the bid's token, reads the
// prices the exchange substituted into the macros, and publishes one event. The event id is derived
// from the token and the notice type, so an exchange retrying a notice produces the same event and
// downstream counts it once.
func (b *Bidder) handleNotice(ctx *fasthttp.RequestCtx, typ events.Type) {
	if !ctx.IsGet() && !ctx.IsHead() && !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "GET, HEAD, POST")
		ctx.Error("method not allowed\n", fasthttp.StatusMethodNotAllowed)
		return
	}
	result := b.notice(ctx, typ)
	b.m.notices[typ][result].Inc()
}

func (b *Bidder) notice(ctx *fasthttp.RequestCtx, typ events.Type) string {
	args := ctx.QueryArgs()
	c, err := b.cfg.Signer.Verify(string(args.Peek("t")), b.now(), b.cfg.NoticeMaxAge)
	switch {
	case errors.Is(err, notice.ErrExpired):
		ctx.Error("notice token expired\n", fasthttp.StatusForbidden)
		return noticeExpired
	case err != nil:
		ctx.Error("invalid notice token\n", fasthttp.StatusForbidden)
		return noticeBadToken
	}
	if b.cfg.Events == nil {
		ctx.Error("events unavailable\n", fasthttp.StatusServiceUnavailable)
		return noticeUnavailable
	}
	bid, ok := auction.FloorMicros(float64(c.BidMicros)/1e6, c.Currency)
	if !ok {
		ctx.Error("invalid notice token\n", fasthttp.StatusForbidden)
		return noticeBadToken
	}
	e := events.Event{
		V: events.Version, Type: typ, ID: eventID(typ, ctx.QueryArgs().Peek("t")), TS: b.now(),
		RequestID: c.RequestID, ImpID: c.ImpID, CampaignID: c.CampaignID, CreativeID: c.CreativeID,
		DealID: c.DealID, Exchange: c.Exchange, BidMicros: bid, Segment: c.Segment,
	}
	var user [16]byte
	e.User = userHex(&user, c.User)
	switch typ {
	case events.Win, events.Bill:
		price, ok := parsePrice(args.Peek("p"))
		if !ok {
			ctx.Error("price missing or not a number: substitute ${AUCTION_PRICE} with the clearing price\n", fasthttp.StatusBadRequest)
			return noticeBadPrice
		}
		if price > c.BidMicros {
			// An exchange never charges more than the bid: such a notice is forged or broken, and
			// must not become spend.
			ctx.Error("price above the bid\n", fasthttp.StatusForbidden)
			return noticeFraudPrice
		}
		e.PriceMicros, _ = auction.FloorMicros(float64(price)/1e6, c.Currency)
	case events.Loss:
		if r, err := strconv.Atoi(string(args.Peek("r"))); err == nil && r >= 0 {
			e.Reason = r
		}
		if m, ok := parsePrice(args.Peek("m")); ok {
			e.MinToWinMicros, _ = auction.FloorMicros(float64(m)/1e6, c.Currency)
		}
	case events.Click:
		target := b.landingURL(c.CampaignID, c.CreativeID)
		if target == "" {
			ctx.Error("this ad is no longer available\n", fasthttp.StatusGone)
			return noticeGone
		}
		b.cfg.Events.Publish(&e)
		// Only ever to the creative's own landing URL: the token says which creative, never where.
		ctx.Response.Header.Set("Cache-Control", "no-store")
		ctx.Redirect(target, fasthttp.StatusFound)
		return noticeOK
	}
	if dp, ok := b.cfg.Events.(DurablePublisher); ok && typ.Money() {
		if err := dp.PublishDurable(&e, noticeDurableWait); err != nil {
			ctx.Response.Header.Set("Retry-After", "1")
			ctx.Error("notice not recorded yet: retry\n", fasthttp.StatusServiceUnavailable)
			return noticeUnavailable
		}
	} else {
		b.cfg.Events.Publish(&e)
	}
	if typ == events.Imp {
		ctx.Response.Header.Set("Cache-Control", "no-store, max-age=0")
		ctx.SetContentType("image/gif")
		ctx.SetBody(pixel)
		return noticeOK
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	return noticeOK
}

// parsePrice reads a decimal CPM as exchanges substitute it (e.g. 1.2345) into micros. An
// unsubstituted macro, a negative or non-finite number is refused.
func parsePrice(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 32 {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f > 1e9 {
		return 0, false
	}
	return int64(math.Round(f * 1e6)), true
}

// eventID names the logical event of one notice type for one bid: the same notice twice has the
// same id.
func eventID(typ events.Type, token []byte) string {
	h := sha256.New()
	h.Write([]byte(typ))
	h.Write([]byte{0})
	h.Write(token)
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// landingURL is the landing URL of a creative of the campaigns in force ("" when gone).
func (b *Bidder) landingURL(campaignID, creativeID string) string {
	c := b.eng.Load().set.ByID(campaignID)
	if c == nil {
		return ""
	}
	for i := range c.Creatives {
		if c.Creatives[i].ID == creativeID {
			return c.Creatives[i].LandingURL
		}
	}
	return ""
}

// noticeMaxAge bounds how late a notice may arrive: billing notices can lag the auction by hours
// (an ad rendered from a cache), but not by days.
const defaultNoticeMaxAge = 24 * time.Hour

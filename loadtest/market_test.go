package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// fakeBidder bids price on every imp, with notice URLs pointing back to itself, and records the
// notices it receives by token.
type fakeBidder struct {
	base  string
	price float64
	// Admin API bodies; "" answers 404.
	campaigns, ctr string
	mu             sync.Mutex
	got            map[string]map[string]int // type → token → count
	bad            []string
	ids            map[string]bool // request ids bid on
}

func (f *fakeBidder) handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	switch path {
	case "/api/campaigns", "/api/ctr":
		body := f.campaigns
		if path == "/api/ctr" {
			body = f.ctr
		}
		if body == "" {
			ctx.SetStatusCode(404)
			return
		}
		ctx.SetContentType("application/json")
		ctx.SetBodyString(body)
		return
	}
	if path == "/openrtb2/bid" {
		var req struct {
			ID  string `json:"id"`
			Imp []struct {
				ID     string          `json:"id"`
				Banner json.RawMessage `json:"banner"`
				Video  json.RawMessage `json:"video"`
			} `json:"imp"`
		}
		if err := json.Unmarshal(ctx.PostBody(), &req); err != nil {
			ctx.SetStatusCode(400)
			return
		}
		f.mu.Lock()
		f.ids[req.ID] = true
		f.mu.Unlock()
		type bid struct {
			ID    string  `json:"id"`
			ImpID string  `json:"impid"`
			Price float64 `json:"price"`
			AdM   string  `json:"adm"`
			NURL  string  `json:"nurl"`
			BURL  string  `json:"burl"`
			LURL  string  `json:"lurl"`
			CID   string  `json:"cid"`
		}
		var bids []bid
		for i, im := range req.Imp {
			tok := req.ID + "-" + im.ID
			imp, click := f.base+"/imp?t="+tok, f.base+"/click?t="+tok
			var adm string
			switch {
			case im.Banner != nil:
				adm = `<a href="` + click + `"><img src="https://cdn.example.com/a.png"></a><img src="` + imp + `" width="1" height="1">`
			case im.Video != nil:
				adm = `<VAST version="3.0"><Ad><InLine><Impression><![CDATA[` + imp + `]]></Impression><Creatives><Creative><Linear><VideoClicks><ClickThrough><![CDATA[` + click + `]]></ClickThrough></VideoClicks></Linear></Creative></Creatives></InLine></Ad></VAST>`
			default:
				b, _ := json.Marshal(map[string]any{"native": map[string]any{"ver": "1.2", "link": map[string]string{"url": click}, "imptrackers": []string{imp}}})
				adm = string(b)
			}
			bids = append(bids, bid{ID: strconv.Itoa(i), ImpID: im.ID, Price: f.price, AdM: adm, CID: "c" + strconv.Itoa(i%2),
				NURL: f.base + "/win?t=" + tok + "&p=${AUCTION_PRICE}", BURL: f.base + "/bill?t=" + tok + "&p=${AUCTION_PRICE}",
				LURL: f.base + "/loss?t=" + tok + "&r=${AUCTION_LOSS}&m=${AUCTION_MIN_TO_WIN}"})
		}
		b, _ := json.Marshal(map[string]any{"id": req.ID, "cur": "USD", "seatbid": []any{map[string]any{"seat": "rtb", "bid": bids}}})
		ctx.SetContentType("application/json")
		ctx.SetBody(b)
		return
	}
	typ := strings.TrimPrefix(path, "/")
	a := ctx.QueryArgs()
	tok := string(a.Peek("t"))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.got[typ] == nil {
		f.got[typ] = map[string]int{}
	}
	f.got[typ][tok]++
	switch typ {
	case "win", "bill":
		if p, err := strconv.ParseFloat(string(a.Peek("p")), 64); err != nil || p != f.price {
			f.bad = append(f.bad, string(ctx.RequestURI()))
		}
	case "loss":
		m, err := strconv.ParseFloat(string(a.Peek("m")), 64)
		if string(a.Peek("r")) != "102" || err != nil || m <= 0 {
			f.bad = append(f.bad, string(ctx.RequestURI()))
		}
	case "click":
		ctx.Redirect("https://www.example.com/landing", 302)
		return
	}
	ctx.SetStatusCode(200)
}

func startFake(t *testing.T, price float64) (*fakeBidder, string) {
	return startFakeAdmin(t, price, "", "")
}

// startFakeAdmin starts a fake that also serves /api/campaigns and /api/ctr on its one port.
func startFakeAdmin(t *testing.T, price float64, campaigns, ctr string) (*fakeBidder, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeBidder{base: "http://" + ln.Addr().String(), price: price, got: map[string]map[string]int{},
		ids: map[string]bool{}, campaigns: campaigns, ctr: ctr}
	srv := &fasthttp.Server{Handler: f.handle}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return f, f.base + "/openrtb2/bid"
}

func TestMarket(t *testing.T) {
	const price = 3.0
	f, url := startFake(t, price)
	mc := DefaultMarket()
	mc.CTR = Param{Default: 0.1}
	mc.NoticeDelay = 50 * time.Millisecond
	mc.NoticeDup = 0.05
	mc.Seed = 3
	rep, err := Run(context.Background(), Config{Target: url, Rate: 1000, Duration: 1500 * time.Millisecond,
		Connections: 16, PoolSize: 300, Seed: 3, Market: &mc})
	if err != nil {
		t.Fatal(err)
	}
	m := rep.Market
	if m == nil {
		t.Fatal("no market report")
	}
	o := m.Overall
	t.Logf("overall %+v notices %+v dups %d dropped %d", o, m.Notices, m.Dups, m.Dropped)
	// P(log-normal(ln 1.5, 0.6) < 3) = Φ(ln 2 / 0.6) ≈ 0.876; floors (≤ 3.00) never bind at 3.00.
	want := 0.5 * (1 + math.Erf(math.Log(2)/0.6/math.Sqrt2))
	if o.Bids < 1000 || math.Abs(o.WinRate-want) > 0.04 {
		t.Fatalf("bids %d win rate %.3f, want about %.3f", o.Bids, o.WinRate, want)
	}
	if o.Impressions != o.Wins || m.NoImp != 0 || m.BadResp != 0 || m.Dropped != 0 {
		t.Fatalf("wins %d impressions %d noimp %d bad %d dropped %d", o.Wins, o.Impressions, m.NoImp, m.BadResp, m.Dropped)
	}
	if math.Abs(o.Spend-float64(o.Wins)*price/1000) > 1e-6 || math.Abs(o.ECPM-price) > 1e-6 {
		t.Fatalf("spend %v ecpm %v for %d wins at %v", o.Spend, o.ECPM, o.Wins, price)
	}
	if o.Wins < 1000 || o.CTR < 0.05 || o.CTR > 0.15 {
		t.Fatalf("%d wins, CTR %.3f, want 0.05-0.15 of at least 1000 wins", o.Wins, o.CTR)
	}
	if len(m.Campaigns) != 2 || m.Campaigns[0].CID != "c0" || m.Campaigns[0].Bids+m.Campaigns[1].Bids != o.Bids {
		t.Fatalf("campaigns %+v", m.Campaigns)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bad) > 0 {
		t.Fatalf("%d bad notices, e.g. %s", len(f.bad), f.bad[0])
	}
	distinct := func(typ string) (n, total int) {
		for _, c := range f.got[typ] {
			n++
			total += c
		}
		return
	}
	var sent, received int
	for typ, want := range map[string]int64{"win": o.Wins, "bill": o.Wins, "imp": o.Impressions, "click": o.Clicks, "loss": o.Bids - o.Wins} {
		n, total := distinct(typ)
		if int64(n) != want {
			t.Errorf("%s: %d distinct tokens, want %d", typ, n, want)
		}
		no := m.Notices[typ]
		if no.S4xx+no.S5xx+no.Err != 0 || int(no.S2xx+no.S3xx) != total {
			t.Errorf("%s: outcomes %+v, server saw %d", typ, no, total)
		}
		if typ == "click" && no.S3xx != int64(total) {
			t.Errorf("clicks: %d 3xx of %d", no.S3xx, total)
		}
		sent += n
		received += total
	}
	for tok := range f.got["win"] {
		if f.got["bill"][tok] == 0 || f.got["imp"][tok] == 0 || f.got["loss"][tok] != 0 {
			t.Fatalf("win %s: bill %d imp %d loss %d", tok, f.got["bill"][tok], f.got["imp"][tok], f.got["loss"][tok])
		}
	}
	dups := received - sent
	if int64(dups) != m.Dups || float64(dups) < 0.02*float64(sent) || float64(dups) > 0.08*float64(sent) {
		t.Fatalf("%d duplicates received, %d reported, of %d notices (want about 5%%)", dups, m.Dups, sent)
	}
	var sb strings.Builder
	rep.WriteText(&sb)
	if !strings.Contains(sb.String(), "overall") {
		t.Fatal(sb.String())
	}
}

func TestTrackersAndParam(t *testing.T) {
	imp, click := trackers(`<a href="http://x/click?t=A&amp;z=1"><img src="http://x/imp?t=A"></a>`)
	if imp != "http://x/imp?t=A" || click != "http://x/click?t=A&z=1" {
		t.Fatal(imp, click)
	}
	imp, _ = trackers(`<VAST><Ad><InLine><Impression><![CDATA[http://x/imp?t=B]]></Impression></InLine></Ad></VAST>`)
	if imp != "http://x/imp?t=B" {
		t.Fatal(imp)
	}
	imp, click = trackers(`{"link":{"url":"http://x/click?t=C"},"imptrackers":["http://x/imp?t=C"]}`)
	if imp != "http://x/imp?t=C" || click != "http://x/click?t=C" {
		t.Fatal(imp, click)
	}
	p, err := ParseParam("0.4,banner-300x250=0.6,video=1.2")
	if err != nil || p.of("banner-300x250") != 0.6 || p.of("video-640x480") != 1.2 || p.of("native") != 0.4 {
		t.Fatal(p, err)
	}
	for _, bad := range []string{"x", "1,a", "1,a=b"} {
		if _, err := ParseParam(bad); err == nil {
			t.Fatal(fmt.Sprint("accepted ", bad))
		}
	}
}

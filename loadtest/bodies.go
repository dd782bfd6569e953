package loadtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
)

// IDPlaceholder is the request id every pooled body carries; a sender overwrites these bytes in its
// own copy of the body with a unique id of the same width, so no request is encoded per send.
const IDPlaceholder = "@@rtb-loadgen-id@@@@"

// IDWidth is the width of the request id patched into each body.
const IDWidth = len(IDPlaceholder)

// Body is one pre-generated bid request.
type Body struct {
	JSON    []byte
	IDAt    int    // offset of IDPlaceholder in JSON
	Version string // "2.5" or "2.6": the x-openrtb-version header sent with it
}

// PatchID writes a unique request id for sequence number seq (with a per-run nonce) into b, a copy
// of a Body's JSON, at off. The id is IDWidth lower-case hex digits.
func PatchID(b []byte, off int, nonce uint32, seq uint64) {
	const hex = "0123456789abcdef"
	id := b[off : off+IDWidth]
	v := seq
	for i := IDWidth - 1; i >= 8; i-- {
		id[i] = hex[v&15]
		v >>= 4
	}
	n := nonce
	for i := 7; i >= 0; i-- {
		id[i] = hex[n&15]
		n >>= 4
	}
}

// The traffic mix. Weights are rough shares of what a mid-size exchange sends.
var (
	bannerSizes = [][2]int{{300, 250}, {728, 90}, {320, 50}, {160, 600}, {300, 600}, {970, 250}}
	// Same-slot alternatives an exchange lists in banner.format.
	altSizes = map[[2]int][][2]int{
		{300, 250}: {{336, 280}, {320, 250}},
		{728, 90}:  {{970, 90}, {468, 60}},
		{320, 50}:  {{300, 50}, {320, 100}},
		{160, 600}: {{120, 600}},
		{300, 600}: {{300, 250}, {160, 600}},
		{970, 250}: {{970, 90}, {728, 90}},
	}
	countries = []weighted{{"USA", 50}, {"GBR", 8}, {"DEU", 7}, {"FRA", 5}, {"CAN", 5}, {"BRA", 4}, {"JPN", 4},
		{"AUS", 3}, {"IND", 3}, {"MEX", 2}, {"ESP", 2}, {"ITA", 2}, {"NLD", 2}, {"SWE", 1}, {"POL", 1}, {"IRL", 1}}
	gdprCountries = map[string]bool{"GBR": true, "DEU": true, "FRA": true, "ESP": true, "ITA": true, "NLD": true,
		"SWE": true, "POL": true, "IRL": true}
	iabCats  = []string{"IAB1", "IAB2", "IAB3", "IAB5", "IAB7", "IAB9", "IAB12", "IAB17", "IAB18", "IAB19", "IAB20"}
	tmaxes   = []int{100, 120, 150, 200, 250, 300}
	agencies = []string{"Agency1", "Agency2", "Agency3", "Agency4"}
)

type weighted struct {
	v string
	w int
}

func pickWeighted(r *rand.Rand, ws []weighted) string {
	total := 0
	for _, w := range ws {
		total += w.w
	}
	n := r.IntN(total)
	for _, w := range ws {
		if n < w.w {
			return w.v
		}
		n -= w.w
	}
	return ws[len(ws)-1].v
}

const nativeRequest = `{"ver":"1.2","context":1,"plcmttype":1,"plcmtcnt":1,"assets":[` +
	`{"id":1,"required":1,"title":{"len":90}},` +
	`{"id":2,"required":1,"img":{"type":3,"wmin":1200,"hmin":627}},` +
	`{"id":3,"required":0,"img":{"type":1,"w":80,"h":80}},` +
	`{"id":4,"required":0,"data":{"type":2,"len":140}},` +
	`{"id":5,"required":0,"data":{"type":1,"len":25}}]}`

// Bodies pre-generates n bid requests from seed: the same seed gives the same bodies, byte for byte.
// The mix: site and app inventory over a Zipf-distributed long tail of domains and bundles; banner
// (IAB sizes with format lists), video and native (1.2) imps; a USA-heavy country mix; a Zipf
// population of users so that user ids recur; floors in USD, EUR and GBP; some private deals;
// OpenRTB 2.5 (regs.ext.gdpr, user.ext.consent, source.ext.schain) and 2.6 (regs.gdpr, user.consent,
// user.eids, source.schain) shapes.
func Bodies(seed uint64, n int) ([]Body, error) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	domains := rand.NewZipf(r, 1.1, 1, 4999)  // 5,000 sites
	bundles := rand.NewZipf(r, 1.1, 1, 4999)  // 5,000 apps
	users := rand.NewZipf(r, 1.05, 1, 999999) // a million users, heavy head
	out := make([]Body, 0, n)
	for i := 0; i < n; i++ {
		req, ver := genRequest(r, domains, bundles, users)
		b, err := json.Marshal(req)
		if err != nil {
			return nil, err
		}
		at := bytes.Index(b, []byte(`"`+IDPlaceholder+`"`))
		if at < 0 {
			return nil, fmt.Errorf("body %d lost its id placeholder", i)
		}
		out = append(out, Body{JSON: b, IDAt: at + 1, Version: ver})
	}
	return out, nil
}

type obj = map[string]any

func genRequest(r *rand.Rand, domains, bundles, users *rand.Zipf) (obj, string) {
	v26 := r.IntN(2) == 0
	ver := "2.5"
	if v26 {
		ver = "2.6"
	}
	country := pickWeighted(r, countries)
	gdpr := 0
	if gdprCountries[country] {
		gdpr = 1
	}
	uidx := users.Uint64()
	req := obj{"id": IDPlaceholder, "cur": []string{"USD"}, "tmax": tmaxes[r.IntN(len(tmaxes))]}
	if r.IntN(100) < 95 {
		req["at"] = 1
	} else {
		req["at"] = 2
	}
	inApp := r.IntN(100) < 35
	device := obj{"ip": fmt.Sprintf("%d.%d.%d.%d", 11+r.IntN(200), r.IntN(256), r.IntN(256), 1+r.IntN(254)),
		"language": "en", "js": 1, "connectiontype": 2 + r.IntN(5)}
	geo := obj{"country": country, "type": 2}
	if country == "USA" {
		geo["region"] = []string{"CA", "NY", "TX", "FL", "IL", "WA"}[r.IntN(6)]
		geo["metro"] = strconv.Itoa(500 + r.IntN(300))
	}
	device["geo"] = geo
	if inApp {
		b := bundles.Uint64()
		ios := r.IntN(100) < 45
		bundle := fmt.Sprintf("com.example.app%04d", b)
		store := "https://play.google.com/store/apps/details?id=" + bundle
		if ios {
			bundle = strconv.Itoa(1000000000 + int(b))
			store = "https://apps.apple.com/app/id" + bundle
		}
		req["app"] = obj{"id": fmt.Sprintf("app%04d", b), "name": fmt.Sprintf("App %d", b), "bundle": bundle,
			"storeurl": store, "cat": []string{iabCats[int(b)%len(iabCats)]},
			"publisher": obj{"id": fmt.Sprintf("pub%03d", b%400)}}
		device["devicetype"] = []int{4, 4, 4, 1}[r.IntN(4)]
		device["ifa"] = fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", uidx, uidx>>3&0xffff, uidx&0xfff, uidx>>5&0xfff, uidx*2654435761&0xffffffffffff)
		device["lmt"] = 0
		if ios {
			device["os"], device["osv"], device["make"], device["model"] = "iOS", "17.4", "Apple", "iPhone"
			device["ua"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
		} else {
			device["os"], device["osv"], device["make"], device["model"] = "Android", "14", "Samsung", "SM-S918B"
			device["ua"] = "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36"
		}
	} else {
		d := domains.Uint64()
		domain := fmt.Sprintf("site%04d.example.com", d)
		req["site"] = obj{"id": fmt.Sprintf("site%04d", d), "domain": domain,
			"page": fmt.Sprintf("https://%s/article/%d", domain, r.IntN(1000)), "cat": []string{iabCats[int(d)%len(iabCats)]},
			"publisher": obj{"id": fmt.Sprintf("pub%03d", d%400), "domain": domain}}
		switch x := r.IntN(100); {
		case x < 50:
			device["devicetype"], device["os"] = 2, []string{"Windows", "macOS", "Linux"}[r.IntN(3)]
			device["ua"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
		case x < 90:
			device["devicetype"], device["os"] = 4, []string{"iOS", "Android"}[r.IntN(2)]
			device["ua"] = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36"
		default:
			device["devicetype"], device["os"] = 5, "iOS"
			device["ua"] = "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
		}
	}
	req["device"] = device

	nimp := 1
	if r.IntN(100) < 10 {
		nimp = 2 + r.IntN(2)
	}
	imps := make([]obj, 0, nimp)
	for k := 1; k <= nimp; k++ {
		imps = append(imps, genImp(r, k, inApp))
	}
	req["imp"] = imps

	user := obj{"id": fmt.Sprintf("u%07x", uidx)}
	if r.IntN(100) < 70 {
		user["buyeruid"] = fmt.Sprintf("b%07x", uidx)
	}
	consent := ""
	if gdpr == 1 {
		consent = "CPzHq4APzHq4AAHABBENBACsAP_AAH_AAAqIHNtf_X__b3_j-_59__t0eY1f9_7_v-0zjhfdt-8N2f_X_L8X42M7vF36pq4KuR4Eu3LBIQdlHOHcTUmw6okVrTPsbk2Mr7NKJ7PEmnMbO2dYGH9_n93TuZKY7__8___z__-v_v____f_r-3_3__59X---_e_V399zLv9____39nN___9v-_9_____4IhgEmGpeQBdmWODJtGlUKIEYVhIdAKACigGFoisIHVwU7K4CfUELABAKgIwIgQYgowYBAAIJAEhEQEgB4IBEARAIAAQAqQEIACNgEFgBYGAQACgGhYgRQBCBIQZEBEcpgQFSJRQT2ViCUHexphCGWeBFAo_oqEBGs0QLAyEhYOY4AkBLxZIHmKF8gAAAAA.YAAAAAAAAAAA"
	}
	if v26 {
		if consent != "" {
			user["consent"] = consent
		}
		if r.IntN(100) < 40 {
			user["eids"] = []obj{{"source": "id5-sync.com", "uids": []obj{{"id": fmt.Sprintf("ID5*%012x", uidx*7919), "atype": 1}}}}
		}
		req["regs"] = obj{"gdpr": gdpr}
		req["source"] = obj{"tid": fmt.Sprintf("t-%x", r.Uint64()), "schain": schain(r)}
	} else {
		if consent != "" {
			user["ext"] = obj{"consent": consent}
		}
		regs := obj{"ext": obj{"gdpr": gdpr}}
		if country == "USA" {
			regs["ext"].(obj)["us_privacy"] = "1YNN"
		}
		req["regs"] = regs
		req["source"] = obj{"tid": fmt.Sprintf("t-%x", r.Uint64()), "ext": obj{"schain": schain(r)}}
	}
	req["user"] = user
	return req, ver
}

func schain(r *rand.Rand) obj {
	nodes := []obj{{"asi": "exchange.example", "sid": fmt.Sprintf("%05d", r.IntN(50000)), "hp": 1}}
	if r.IntN(3) == 0 {
		nodes = append(nodes, obj{"asi": "reseller.example", "sid": fmt.Sprintf("r%04d", r.IntN(5000)), "hp": 1})
	}
	return obj{"complete": 1, "ver": "1.0", "nodes": nodes}
}

func genImp(r *rand.Rand, k int, inApp bool) obj {
	imp := obj{"id": strconv.Itoa(k), "secure": 1, "tagid": fmt.Sprintf("tag-%d", r.IntN(2000))}
	switch x := r.IntN(100); {
	case x < 65:
		sz := bannerSizes[r.IntN(len(bannerSizes))]
		if inApp && r.IntN(2) == 0 {
			sz = [2]int{320, 50}
		}
		formats := []obj{{"w": sz[0], "h": sz[1]}}
		for _, a := range altSizes[sz] {
			if r.IntN(2) == 0 {
				formats = append(formats, obj{"w": a[0], "h": a[1]})
			}
		}
		imp["banner"] = obj{"w": sz[0], "h": sz[1], "format": formats, "pos": r.IntN(4), "api": []int{3, 5}}
	case x < 82:
		w, h := 640, 480
		if r.IntN(3) == 0 {
			w, h = 1920, 1080
		}
		imp["video"] = obj{"mimes": []string{"video/mp4", "video/webm"}, "minduration": 5, "maxduration": []int{15, 30, 60}[r.IntN(3)],
			"protocols": []int{2, 3, 5, 6, 7, 8}, "w": w, "h": h, "startdelay": 0, "linearity": 1, "skip": r.IntN(2),
			"plcmt": 1 + r.IntN(4), "playbackmethod": []int{1 + r.IntN(6)}}
	default:
		imp["native"] = obj{"request": nativeRequest, "ver": "1.2", "api": []int{3, 5}}
	}
	if r.IntN(100) < 70 {
		imp["bidfloor"] = float64(5+r.IntN(296)) / 100
		switch x := r.IntN(100); {
		case x < 15:
			imp["bidfloorcur"] = "EUR"
		case x < 25:
			imp["bidfloorcur"] = "GBP"
		case x < 50:
			imp["bidfloorcur"] = "USD"
		}
	}
	if r.IntN(100) < 10 {
		deals := []obj{}
		if r.IntN(2) == 0 {
			deals = append(deals, obj{"id": "AB-Agency1-0001", "bidfloor": 2.5, "at": 1})
		}
		deals = append(deals, obj{"id": fmt.Sprintf("AB-%s-%04d", agencies[r.IntN(len(agencies))], 1+r.IntN(20)),
			"bidfloor": float64(100+r.IntN(900)) / 100, "at": 1})
		imp["pmp"] = obj{"private_auction": r.IntN(2), "deals": deals}
	}
	return imp
}

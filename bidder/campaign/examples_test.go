package campaign

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The built-in samples exist so that the OpenRTB example requests get bids out of the box. This test
// holds them to that with a deliberately simple reading of each request: the facts the samples were
// designed against (sizes, floors, inventory, device, geo, segments, deals, block lists, video
// constraints), not the bidder's targeting, which lives elsewhere and may be stricter. Dayparts,
// budgets, seats and currencies are left to the bidder.

const examplesDir = "../openrtb/testdata/requests"

// wantBidders lists, per example request, the sample campaigns that should bid on it.
var wantBidders = map[string][]string{
	"v25-banner.json":                 {"sample-banner"},
	"v25-expandable.json":             {"sample-banner", "sample-cpc"},
	"v25-app.json":                    {"sample-banner", "sample-mobile-app"},
	"v25-video.json":                  {"sample-video"},
	"v25-pmp-deal.json":               {"sample-deal"},
	"v25-native.json":                 nil, // the spec's placeholder native request has no assets
	"v26-spec-banner.json":            {"sample-banner"},
	"v26-schema-simple-banner.json":   {"sample-banner"},
	"v26-spec-expandable.json":        {"sample-banner"}, // its user.data has no segment arrays
	"v26-spec-app.json":               {"sample-banner", "sample-mobile-app"},
	"v26-schema-mobile-app.json":      {"sample-banner", "sample-mobile-app"},
	"v26-spec-video.json":             {"sample-video"},
	"v26-schema-video.json":           {"sample-video"},
	"v26-spec-pmp-deal.json":          {"sample-deal"},
	"v26-schema-pmp-direct-deal.json": {"sample-deal"},
	"v26-pmp-deal.json":               {"sample-deal"},
	"v26-banner.json":                 {"sample-banner", "sample-daypart"}, // the daypart one only in its hours
	"v26-video.json":                  {"sample-video"},
	"v26-app.json":                    {"sample-banner", "sample-mobile-app"},
	"v26-native.json":                 {"sample-native"},
	"v26-dooh.json":                   {"sample-dooh"},       // bidding in the GBP it asks for
	"v26-dooh-video.json":             {"sample-dooh-video"}, // private deal V123
}

type exampleRequest struct {
	Imp []struct {
		BidFloor float64 `json:"bidfloor"`
		Banner   *struct {
			W      int                  `json:"w"`
			H      int                  `json:"h"`
			Format []struct{ W, H int } `json:"format"`
		} `json:"banner"`
		Video *struct {
			W, H        int
			MIMEs       []string `json:"mimes"`
			MinDuration int      `json:"minduration"`
			MaxDuration int      `json:"maxduration"`
			Protocols   []int    `json:"protocols"`
		} `json:"video"`
		Native *struct {
			Request string `json:"request"`
		} `json:"native"`
		PMP *struct {
			Private int `json:"private_auction"`
			Deals   []struct {
				ID       string  `json:"id"`
				BidFloor float64 `json:"bidfloor"`
			} `json:"deals"`
		} `json:"pmp"`
	} `json:"imp"`
	Site   *struct{} `json:"site"`
	App    *struct{} `json:"app"`
	DOOH   *struct{} `json:"dooh"`
	Device struct {
		DeviceType int `json:"devicetype"`
		Geo        struct {
			Country string `json:"country"`
		} `json:"geo"`
	} `json:"device"`
	User struct {
		Data []struct {
			Segment []struct {
				ID string `json:"id"`
			} `json:"segment"`
		} `json:"data"`
	} `json:"user"`
	BCat []string `json:"bcat"`
	BAdv []string `json:"badv"`
}

func TestSamplesBidOnExamples(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(examplesDir, "*.json"))
	if len(files) == 0 {
		t.Skip("no example requests in " + examplesDir)
	}
	samples := Samples()
	for _, path := range files {
		name := filepath.Base(path)
		want, known := wantBidders[name]
		if !known {
			t.Logf("%s: new example request; add it to wantBidders", name)
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var req exampleRequest
		if err := json.Unmarshal(data, &req); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got []string
		for _, c := range samples.Campaigns {
			if why := exampleMismatch(c, &req); why == "" {
				got = append(got, c.ID)
			} else if slices.Contains(want, c.ID) {
				t.Errorf("%s: %s should bid but %s", name, c.ID, why)
			}
		}
		for _, id := range got {
			if !slices.Contains(want, id) {
				t.Errorf("%s: %s bids, but is not expected to", name, id)
			}
		}
	}
}

// exampleMismatch says why c would not bid on req's first imp, or "".
func exampleMismatch(c *Campaign, req *exampleRequest) string {
	if c.Status != StatusActive {
		return "it is paused"
	}
	imp := req.Imp[0]
	tg := &c.Targeting
	inventory := map[bool]string{req.Site != nil: InventorySite, req.App != nil: InventoryApp, req.DOOH != nil: InventoryDOOH}[true]
	switch {
	case tg.Inventory != "" && tg.Inventory != inventory:
		return "inventory is " + inventory
	case len(tg.DeviceTypes) > 0 && !slices.Contains(tg.DeviceTypes, req.Device.DeviceType):
		return "the device type does not match"
	case len(tg.Countries) > 0 && !slices.Contains(tg.Countries, req.Device.Geo.Country):
		return "the country does not match"
	case slices.Contains(req.BAdv, c.AdvertiserDomain):
		return "badv blocks the advertiser"
	}
	if len(tg.Segments) > 0 {
		found := false
		for _, d := range req.User.Data {
			for _, s := range d.Segment {
				found = found || slices.Contains(tg.Segments, s.ID)
			}
		}
		if !found {
			return "the user has none of its segments"
		}
	}
	price := c.Bid.CPM.Float()
	if c.Bid.Type == TargetCPC {
		price = c.Bid.CPC.Float() * c.Bid.CTR * 1000
	}
	floor := imp.BidFloor
	if len(tg.Deals) > 0 || (imp.PMP != nil && imp.PMP.Private == 1) {
		floor = -1
		if imp.PMP != nil {
			for _, d := range imp.PMP.Deals {
				if slices.Contains(tg.Deals, d.ID) {
					floor = d.BidFloor
				}
			}
		}
		if floor < 0 {
			return "it is not in the request's deals"
		}
	}
	if price < floor {
		return "its price is below the floor"
	}
	for i := range c.Creatives {
		cr := &c.Creatives[i]
		if blockedCategory(c.CreativeCategories(cr), req.BCat) {
			continue
		}
		switch {
		case cr.Type == TypeBanner && imp.Banner != nil:
			if cr.W == imp.Banner.W && cr.H == imp.Banner.H {
				return ""
			}
			for _, f := range imp.Banner.Format {
				if cr.W == f.W && cr.H == f.H {
					return ""
				}
			}
		case cr.Type == TypeVideo && imp.Video != nil:
			v := imp.Video
			if (cr.W == 0 || cr.W == v.W && cr.H == v.H) &&
				cr.Duration >= v.MinDuration && (v.MaxDuration == 0 || cr.Duration <= v.MaxDuration) &&
				slices.ContainsFunc(cr.MIMEs, func(m string) bool { return slices.Contains(v.MIMEs, m) }) &&
				(len(v.Protocols) == 0 || slices.ContainsFunc(cr.Protocols, func(p int) bool { return slices.Contains(v.Protocols, p) })) {
				return ""
			}
		case cr.Type == TypeNative && imp.Native != nil:
			if nativeFits(cr.Native, imp.Native.Request) {
				return ""
			}
		}
	}
	return "no creative fits the imp"
}

func blockedCategory(cats, bcat []string) bool {
	for _, c := range cats {
		for _, b := range bcat {
			if c == b || strings.HasPrefix(c, b+"-") {
				return true
			}
		}
	}
	return false
}

// nativeFits checks the required assets of a Native 1.x request against the creative's.
func nativeFits(n *Native, request string) bool {
	var r struct {
		Assets []struct {
			Required int                `json:"required"`
			Title    *struct{ Len int } `json:"title"`
			Img      *struct {
				Type int `json:"type"`
				WMin int `json:"wmin"`
				HMin int `json:"hmin"`
			} `json:"img"`
			Data *struct{ Type, Len int } `json:"data"`
		} `json:"assets"`
	}
	if err := json.Unmarshal([]byte(request), &r); err != nil || len(r.Assets) == 0 {
		return false
	}
	for _, a := range r.Assets {
		ok := true
		switch {
		case a.Title != nil:
			ok = n.Title != "" && len(n.Title) <= a.Title.Len
		case a.Img != nil && a.Img.Type == 1:
			ok = n.IconURL != "" && n.IconW >= a.Img.WMin && n.IconH >= a.Img.HMin
		case a.Img != nil:
			ok = n.ImageURL != "" && n.ImageW >= a.Img.WMin && n.ImageH >= a.Img.HMin
		case a.Data != nil && a.Data.Type == 1:
			ok = n.Sponsored != "" && len(n.Sponsored) <= a.Data.Len
		case a.Data != nil && a.Data.Type == 2:
			ok = n.Body != "" && len(n.Body) <= a.Data.Len
		case a.Data != nil && a.Data.Type == 12:
			ok = n.CTA != "" && len(n.CTA) <= a.Data.Len
		default:
			ok = false
		}
		if !ok && a.Required == 1 {
			return false
		}
	}
	return true
}

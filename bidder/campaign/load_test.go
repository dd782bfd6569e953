package campaign

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// badFiles maps every testdata/*.bad.* file to a substring of the error it must produce. The
// substrings include field paths and lines: where an error points matters as much as what it says.
var badFiles = map[string]string{
	"alias-bomb.bad.yaml":              "alias-bomb.bad.yaml: the file expands to too many values (YAML aliases nested too much)",
	"anchors-unknown.bad.yaml":         `campaign "a": creatives[0].weight: unknown field "weight"`,
	"bad-id.bad.yaml":                  `campaign "c 42": id: "c 42" must be 1-64 characters`,
	"banner-no-size.bad.yaml":          `banner-no-size.bad.yaml: campaign "c-42": creatives[1].w: must be > 0 for a banner (line 11)`,
	"bid-type.bad.yaml":                `bid.type: "fixed" is not fixed_cpm or target_cpc (line 12)`,
	"budget-tz.bad.yaml":               `budget.timezone: "EST5EDTX" is not an IANA time zone`,
	"countries-not-list.bad.yaml":      `targeting.countries: want a list, got text "USA" (line 12)`,
	"country-alpha2.bad.yaml":          `targeting.countries[0]: "US" is not an ISO-3166-1 alpha-3 code like "USA"`,
	"cpc-without-ctr.bad.yaml":         `bid.ctr: must be a prior click-through rate between 0 and 1`,
	"cpm-above-max.bad.yaml":           `bid.cpm: 5.01 is above max_bid 5 (line 13)`,
	"creative-type.bad.yaml":           `creatives[0].type: "display" is not banner, video, audio or native`,
	"daypart-day.bad.yaml":             `targeting.dayparts.windows[0].days[0]: "monday" is not a day`,
	"daypart-tz.bad.yaml":              `targeting.dayparts.timezone: "Mars/Olympus" is not an IANA time zone`,
	"daypart-window.bad.yaml":          `targeting.dayparts.windows[0].to: must be after from (22)`,
	"deal-dup.bad.yaml":                `targeting.deals[1]: deal "AB-Agency1-0001" listed twice`,
	"device-type.bad.yaml":             `targeting.device_types[0]: 9 is not an OpenRTB device type (1..8)`,
	"dup-campaign-id.bad.yaml":         `campaign "c-42": id: duplicate campaign id (campaigns[0] has it too) (line 17)`,
	"dup-creative-id.bad.yaml":         `creatives[1].id: duplicate creative id "b1" (creatives[0] has it too)`,
	"duplicate-key.bad.json":           `campaign "j1": id: given twice (first at line 1)`,
	"duplicate-key.bad.yaml":           `budget.daily: given twice (first at line 16)`,
	"empty.bad.yaml":                   `empty.bad.yaml: the file is empty`,
	"end-before-start.bad.yaml":        `end: must be after start (2026-02-01T00:00:00Z)`,
	"fractional-width.bad.yaml":        `creatives[0].w: want a whole number, got "300.5" (line 7)`,
	"freq-cap-window.bad.yaml":         `frequency_cap.window: invalid duration "1 day"`,
	"freq-cap.bad.yaml":                `frequency_cap.window: must be > 0`,
	"inventory-contradiction.bad.yaml": `targeting.sites.allow: site allow list on a campaign with inventory "app" can never match`,
	"landing-relative.bad.yaml":        `creatives[0].landing_url: "/landing" must be an absolute http(s) URL`,
	"location-field.bad.yaml":          `budget.location: unknown field "location"; known fields: daily, timezone, total`,
	"many-problems.bad.yaml":           "and 14 more problem(s)",
	"micros-as-micros.bad.yaml":        `bid.max_bid: 5000000 per thousand is implausible`,
	"micros-exponent.bad.yaml":         `bid.cpm: invalid amount "1e400": exponent out of range (line 13)`,
	"micros-nan.bad.yaml":              `bid.cpm: invalid amount ".nan"`,
	"micros-negative.bad.yaml":         `bid.cpm: invalid amount "-2": must not be negative`,
	"micros-precision.bad.yaml":        `bid.cpm: invalid amount "0.0000001": more than 6 decimal places`,
	"missing-id.bad.yaml":              `missing-id.bad.yaml: campaigns[0]: id: required (line 2)`,
	"native-no-title.bad.yaml":         `creatives[1].native.title: required for a native creative`,
	"no-adomain.bad.yaml":              `campaign "c-42": advertiser_domain: required`,
	"no-campaigns.bad.yaml":            `campaigns: no campaigns`,
	"no-creatives.bad.yaml":            `creatives: at least one creative required (line 4)`,
	"quoted-width.bad.json":            `campaign "j1": creatives[0].w: want a whole number, got text "300" (line 2)`,
	"quoted-width.bad.yaml":            `creatives[0].w: want a whole number, got text "300" (line 7)`,
	"site-scheme.bad.yaml":             `targeting.sites.allow[0]: "https://a.example.com/" must be a bare domain without scheme`,
	"sites-both.bad.yaml":              `targeting.sites.block[0]: "b.example.com" is in both allow and block`,
	"start-date-only.bad.yaml":         `start: "2026-01-01" is not an RFC 3339 time`,
	"status.bad.yaml":                  `status: "stopped" is not "active" or "paused" (line 3)`,
	"syntax.bad.json":                  `syntax.bad.json: JSON syntax error: invalid character '}' looking for beginning of object key string (line 6)`,
	"syntax.bad.yaml":                  `syntax.bad.yaml: YAML syntax error: could not find expected ':' (line 11)`,
	"top-level-list.bad.yaml":          `want a top-level mapping with a "campaigns:" list, got a list (line 1)`,
	"total-below-daily.bad.yaml":       `budget.total: 50 is below the daily budget 100`,
	"two-documents.bad.yaml":           `more than one YAML document`,
	"unknown-field.bad.json":           `campaign "j1": budget.Daily: unknown field "Daily"; did you mean "daily"? (line 8)`,
	"unknown-field.bad.yaml":           `campaign "c-42": budget.dayly: unknown field "dayly"; did you mean "daily"? (line 16)`,
	"unknown-macro.bad.yaml":           `creatives[0].html: unknown macro {{CLICK_ULR}}`,
	"video-bad-vast.bad.yaml":          `creatives[1].vast: not well-formed XML`,
	"video-html.bad.yaml":              `creatives[1].html: only for banner creatives, not video`,
	"video-no-vast.bad.yaml":           `creatives[1].vast: required for video`,
}

func TestBadFiles(t *testing.T) {
	defer func(v int) { minVisits = v }(minVisits)
	minVisits = 10_000
	files, err := filepath.Glob("testdata/*.bad.*")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		if _, ok := badFiles[filepath.Base(path)]; !ok {
			t.Errorf("%s has no expected error in badFiles", path)
		}
	}
	for name, want := range badFiles {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name)
			s, err := Load(path)
			if err == nil {
				t.Fatalf("Load(%s) succeeded with %d campaigns, want an error containing %q", path, len(s.Campaigns), want)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Load(%s) error:\n%v\nwant it to contain:\n%s", path, err, want)
			}
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) == 0 {
				t.Fatalf("error is %T, want *Error with problems", err)
			}
			// Every line of the message names the file, so that each stands alone in a log.
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, path+": ") {
					t.Errorf("line %q does not start with the file name", line)
				}
			}
		})
	}
}

func TestGoodFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.*")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("only %d good files", len(files))
	}
	for _, path := range files {
		s, err := Load(path)
		if err != nil {
			t.Errorf("Load(%s): %v", path, err)
			continue
		}
		if s.Source != path || len(s.Campaigns) == 0 || len(s.Digest) != 64 {
			t.Errorf("Load(%s): Source %q, %d campaigns, digest %q", path, s.Source, len(s.Campaigns), s.Digest)
		}
		checkCompiled(t, path, s)
	}
}

// checkCompiled asserts what every loaded set guarantees the bidder, so that it needs no nil checks.
func checkCompiled(t *testing.T, name string, s *Set) {
	t.Helper()
	for _, c := range s.Campaigns {
		if s.ByID(c.ID) != c {
			t.Errorf("%s: ByID(%q) does not find the campaign", name, c.ID)
		}
		if c.Status != StatusActive && c.Status != StatusPaused {
			t.Errorf("%s: %s: status %q", name, c.ID, c.Status)
		}
		if c.Budget.Location == nil || c.Budget.TimeZone == "" {
			t.Errorf("%s: %s: budget time zone not loaded", name, c.ID)
		}
		if d := c.Targeting.Dayparts; d != nil && (d.Location == nil || d.Mask == [7]uint32{}) {
			t.Errorf("%s: %s: daypart not compiled", name, c.ID)
		}
	}
	if s.ByID("no such campaign") != nil {
		t.Errorf("%s: ByID of an unknown id is not nil", name)
	}
}

func TestFullFileValues(t *testing.T) {
	s, err := Load("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := s.ByID("full.1_A-z")
	if c == nil {
		t.Fatal("campaign missing")
	}
	eq := func(what string, got, want any) {
		t.Helper()
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		if !bytes.Equal(gj, wj) {
			t.Errorf("%s = %s, want %s", what, gj, wj)
		}
	}
	eq("advertiser_domain", c.AdvertiserDomain, "shop.example.com")
	eq("categories", c.Categories, []string{"IAB22", "IAB22-4"})
	eq("start", c.Start.UTC(), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	eq("end", c.End.UTC(), time.Date(2027, 1, 1, 4, 59, 59, 0, time.UTC))
	eq("creative categories", c.CreativeCategories(&c.Creatives[0]), []string{"IAB22-2"})
	eq("inherited categories", c.CreativeCategories(&c.Creatives[1]), []string{"IAB22", "IAB22-4"})
	eq("mimes", c.Creatives[1].MIMEs, []string{"video/mp4", "video/webm"})
	eq("native", c.Creatives[3].Native.ImageW, 1200)
	tg := c.Targeting
	eq("countries", tg.Countries, []string{"USA", "CAN"})
	eq("regions", tg.Regions, []string{"CA", "NY"})
	eq("os", tg.OS, []string{"ios", "android"})
	eq("sites", tg.Sites, ListRule{Allow: []string{"www.foobar.com", "news.example.org"}, Block: []string{"bad.example.net"}})
	eq("apps", tg.Apps.Block, []string{"com.example.Game"}) // bundles keep their case
	eq("days", tg.Dayparts.Windows[0].Days, []string{"mon", "tue", "wed", "thu", "fri"})
	eq("daypart zone", tg.Dayparts.Location.String(), "America/New_York")
	eq("bid", c.Bid, BidStrategy{Type: FixedCPM, CPM: 2_900_000, MaxBid: 4_500_000})
	eq("budget", []Micros{c.Budget.Daily, c.Budget.Total}, []Micros{250_750_000, 10_000_000_000})
	eq("budget zone", c.Budget.Location.String(), "Europe/Berlin")
	eq("frequency cap", *c.FrequencyCap, FrequencyCap{Impressions: 5, Window: Duration(24 * time.Hour)})

	cpc := s.ByID("cpc")
	eq("cpc bid", cpc.Bid, BidStrategy{Type: TargetCPC, CPC: 1_500_000, CTR: 0.002, MaxBid: 10_000_000})
	eq("exact micros", cpc.Budget.Daily, Micros(290_000))
	eq("default budget zone", cpc.Budget.TimeZone, "UTC")
	eq("paused", cpc.Status, StatusPaused)
	if cpc.Live(time.Now()) {
		t.Error("a paused campaign is live")
	}

	// The flight: start inclusive, end exclusive.
	if c.Live(c.Start.Add(-time.Nanosecond)) || !c.Live(*c.Start) || c.Live(*c.End) || !c.Live(c.End.Add(-time.Nanosecond)) {
		t.Error("Live does not follow the flight dates")
	}
}

func TestAnchorsAreIndependentCopies(t *testing.T) {
	s, err := Load("testdata/anchors.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, b := s.ByID("a"), s.ByID("b")
	if a.Creatives[0].W != 320 || b.Creatives[0].W != 300 || a.Bid.CPM != 1_000_000 || b.Bid.CPM != 2_000_000 {
		t.Errorf("merge keys: a %+v %+v, b %+v %+v", a.Creatives[0], a.Bid, b.Creatives[0], b.Bid)
	}
	if a.Budget.Daily != 50_000_000 || b.Budget.Daily != 50_000_000 {
		t.Errorf("aliases: budgets %v %v", a.Budget.Daily, b.Budget.Daily)
	}
}

func TestParseFormats(t *testing.T) {
	yamlText, err := os.ReadFile("testdata/minimal.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	jsonText, err := os.ReadFile("testdata/full.good.json")
	if err != nil {
		t.Fatal(err)
	}
	bom := append([]byte("\xef\xbb\xbf\n "), jsonText...)
	for _, tt := range []struct {
		name, format string
		data         []byte
		wantErr      string
	}{
		{"yaml sniffed", "", yamlText, ""},
		{"json sniffed", "", jsonText, ""},
		{"json with BOM sniffed", "", bom, ""},
		{"json as yaml", FormatYAML, jsonText, ""}, // JSON is YAML; errors would be YAML's
		{"yaml as json", FormatJSON, yamlText, "x.conf: JSON syntax error"},
		{"unknown format", "toml", yamlText, `x.conf: unknown campaign file format "toml"`},
	} {
		_, err := Parse(tt.data, "x.conf", tt.format)
		if tt.wantErr == "" && err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.wantErr)
		}
	}
	if _, err := Load("testdata/does-not-exist.yaml"); err == nil || !strings.Contains(err.Error(), "does-not-exist.yaml") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

// TestRoundTrip writes the samples out as YAML and as JSON and reads them back: the struct tags of
// both formats, and the marshalers of Micros and Duration, must agree.
func TestRoundTrip(t *testing.T) {
	full, err := Load("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, orig := range []*Set{Samples(), full} {
		roundTrip(t, orig)
	}
}

func roundTrip(t *testing.T, orig *Set) {
	t.Helper()
	want, err := json.Marshal(orig.Campaigns)
	if err != nil {
		t.Fatal(err)
	}
	top := file{Campaigns: orig.Campaigns}
	asYAML, err := yaml.Marshal(top)
	if err != nil {
		t.Fatal(err)
	}
	asJSON, err := json.MarshalIndent(top, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		format string
		data   []byte
	}{{FormatYAML, asYAML}, {FormatJSON, asJSON}} {
		back, err := Parse(tt.data, "round-trip."+tt.format, tt.format)
		if err != nil {
			t.Fatalf("%s: %v", tt.format, err)
		}
		got, _ := json.Marshal(back.Campaigns)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %s round trip differs:\n got %s\nwant %s", orig.Source, tt.format, got, want)
		}
	}
}

func TestNewSet(t *testing.T) {
	mk := func(id string) *Campaign {
		return &Campaign{
			ID:               id,
			AdvertiserDomain: "Example.COM",
			Creatives: []Creative{{ID: "b", Type: TypeBanner, W: 300, H: 250, HTML: "<b>{{IMP_URL}}</b>",
				LandingURL: "https://example.com/"}},
			Targeting: Targeting{Countries: []string{"usa"},
				Dayparts: &Daypart{TimeZone: "Europe/Paris", Windows: []DayWindow{{From: 8, To: 20}}}},
			Bid:    BidStrategy{Type: FixedCPM, CPM: 2 * MicrosPerUnit, MaxBid: 3 * MicrosPerUnit},
			Budget: Budget{Daily: 100 * MicrosPerUnit},
		}
	}
	s, err := NewSet("code", []*Campaign{mk("a"), mk("b")})
	if err != nil {
		t.Fatal(err)
	}
	checkCompiled(t, "NewSet", s)
	a := s.ByID("a")
	if a.AdvertiserDomain != "example.com" || a.Targeting.Countries[0] != "USA" || a.Status != StatusActive {
		t.Errorf("not normalised: %+v", a)
	}

	_, err = NewSet("code", []*Campaign{mk("a"), mk("a")})
	if err == nil || !strings.Contains(err.Error(), `code: campaign "a": id: duplicate campaign id`) {
		t.Errorf("duplicate ids: %v", err)
	}
	_, err = NewSet("code", []*Campaign{mk("a"), nil})
	if err == nil || !strings.Contains(err.Error(), `code: campaigns[1]: nil campaign`) {
		t.Errorf("nil campaign: %v", err)
	}
	bad := mk("c")
	bad.Creatives[0].W = 0
	_, err = NewSet("code", []*Campaign{bad})
	if err == nil || err.Error() != `code: campaign "c": creatives[0].w: must be > 0 for a banner` {
		t.Errorf("error without a file has no line: %v", err)
	}

	// A Set literal has no index; ByID still works.
	lit := &Set{Campaigns: []*Campaign{mk("x")}}
	if lit.ByID("x") == nil || lit.ByID("y") != nil {
		t.Error("ByID on a literal Set")
	}
	var nilSet *Set
	if nilSet.ByID("x") != nil {
		t.Error("ByID on a nil Set")
	}
}

func TestErrorCapsProblems(t *testing.T) {
	_, err := Load("testdata/many-problems.bad.yaml")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%T", err)
	}
	if len(e.Problems) != maxProblems || e.More != 14 {
		t.Errorf("%d problems and %d more, want %d and 14", len(e.Problems), e.More, maxProblems)
	}
	if lines := strings.Count(err.Error(), "\n") + 1; lines != maxProblems+1 {
		t.Errorf("%d lines", lines)
	}
}

func TestSamples(t *testing.T) {
	s := Samples()
	if s.Source != SamplesSource {
		t.Errorf("Source = %q", s.Source)
	}
	checkCompiled(t, "samples", s)
	if s2 := Samples(); s2 == s || s2.Campaigns[0] == s.Campaigns[0] {
		t.Error("Samples must return fresh copies")
	}
	if !bytes.Equal(SamplesFile(), samplesYAML) {
		t.Error("SamplesFile")
	}

	// The example requests' block lists: samples must not be blocked by them.
	bcat := []string{"IAB25", "IAB7-39", "IAB8-18", "IAB8-5", "IAB9-9"}
	badv := []string{"apple.com", "go-text.me", "go-test.me", "heywire.com"}
	kinds := map[string]bool{}
	for _, c := range s.Campaigns {
		if slices.Contains(badv, c.AdvertiserDomain) {
			t.Errorf("%s: advertiser %s is in the examples' badv", c.ID, c.AdvertiserDomain)
		}
		for i := range c.Creatives {
			cr := &c.Creatives[i]
			for _, cat := range c.CreativeCategories(cr) {
				for _, b := range bcat {
					if cat == b || strings.HasPrefix(cat, b+"-") {
						t.Errorf("%s/%s: category %s is blocked by the examples' bcat", c.ID, cr.ID, cat)
					}
				}
			}
			if len(cr.Attributes) > 0 {
				t.Errorf("%s/%s: attributes %v could meet the examples' battr", c.ID, cr.ID, cr.Attributes)
			}
			for _, markup := range []string{cr.HTML, cr.VAST} {
				if markup != "" && (!strings.Contains(markup, MacroClickURL) || !strings.Contains(markup, MacroImpURL)) {
					t.Errorf("%s/%s: markup lacks a macro", c.ID, cr.ID)
				}
			}
		}
		switch {
		case c.Status == StatusPaused:
			kinds["paused"] = true
		case len(c.Targeting.Deals) > 0:
			kinds["deal"] = true
		case c.Targeting.Dayparts != nil:
			kinds["daypart"] = true
		case c.Bid.Type == TargetCPC:
			kinds["cpc"] = true
		case c.Targeting.Inventory == InventoryApp:
			kinds["app"] = true
		case c.Targeting.Inventory == InventoryDOOH:
			kinds["dooh"] = true
		default:
			kinds[c.Creatives[0].Type] = true
		}
	}
	for _, k := range []string{"banner", "app", "video", "native", "deal", "cpc", "paused", "daypart", "dooh"} {
		if !kinds[k] {
			t.Errorf("no %s sample campaign", k)
		}
	}
}

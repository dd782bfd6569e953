// Package campaign holds the bidder's campaign definitions: the types the targeting index and the
// auction read, loading them from a YAML or JSON file that operators edit by hand, strict validation
// of that file, the built-in sample campaigns that `rtb serve` starts with, and a watcher that swaps in
// a new file when it changes.
//
// Everything here runs at start-up or on reload, never on the request path, so it favours clear errors
// over speed: a file with a typo, an unknown field or an impossible setting is refused as a whole, with
// the file, the campaign and the field named, and the previous campaigns stay in force.
//
// A campaign file holds one mapping with a "campaigns:" list; field names are the snake_case names of
// the struct tags below, the same in YAML and JSON. Money is written in currency units ("2.50") and read
// exactly into Micros. Top-level keys starting with "x-" are ignored, as a place for YAML anchors that
// campaigns share through aliases and "<<" merge keys. samples.yaml (see SamplesFile) is a commented
// example of every kind of campaign.
//
// A loaded Set is immutable by convention: the bidder shares it between goroutines without locks, so
// callers must not modify a Set or its campaigns after Load, Parse, NewSet or Samples returned it.
package campaign

import (
	"time"

	// Campaigns name IANA zones for budgets and dayparts; embedding the database keeps loading
	// independent of the machine's zoneinfo (scratch containers have none).
	_ "time/tzdata"
)

// Set is one loaded, validated campaign file.
type Set struct {
	Campaigns []*Campaign // in file order
	Source    string      // the file's path, or "built-in samples"
	// Digest is the hex SHA-256 of the bytes the set was parsed from ("" for sets built in code). The
	// Watcher uses it to notice a change made between Load and Watcher.Run.
	Digest string

	byID map[string]*Campaign
}

// ByID returns the campaign with the given id, or nil.
func (s *Set) ByID(id string) *Campaign {
	if s == nil {
		return nil
	}
	if s.byID != nil {
		return s.byID[id]
	}
	// A Set assembled as a literal (tests) has no index; it is small.
	for _, c := range s.Campaigns {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// Campaign is one advertiser campaign: what it shows, where, and for how much.
type Campaign struct {
	ID               string        `yaml:"id" json:"id"`
	Name             string        `yaml:"name,omitempty" json:"name,omitempty"`
	Status           string        `yaml:"status,omitempty" json:"status,omitempty"` // StatusActive (the default) or StatusPaused
	AdvertiserDomain string        `yaml:"advertiser_domain" json:"advertiser_domain"`
	Seat             string        `yaml:"seat,omitempty" json:"seat,omitempty"`             // buyer seat at the exchange (deals' wseat name seats); "" = the bidder's seat
	AppBundle        string        `yaml:"app_bundle,omitempty" json:"app_bundle,omitempty"` // the advertised app's store id, for app-install campaigns (checked against bapp)
	Categories       []string      `yaml:"categories,omitempty" json:"categories,omitempty"` // IAB content categories of the ads, matched against bcat
	Start            *time.Time    `yaml:"start,omitempty" json:"start,omitempty"`           // flight start, inclusive; nil = open
	End              *time.Time    `yaml:"end,omitempty" json:"end,omitempty"`               // flight end, exclusive; nil = open
	Creatives        []Creative    `yaml:"creatives" json:"creatives"`
	Targeting        Targeting     `yaml:"targeting,omitempty" json:"targeting,omitzero"`
	Bid              BidStrategy   `yaml:"bid" json:"bid"`
	Budget           Budget        `yaml:"budget" json:"budget"`
	FrequencyCap     *FrequencyCap `yaml:"frequency_cap,omitempty" json:"frequency_cap,omitempty"`
}

// Campaign statuses.
const (
	StatusActive = "active"
	StatusPaused = "paused"
)

// Live reports whether the campaign may bid at t: active and inside its flight dates. Budget, pacing
// and dayparts are separate gates.
func (c *Campaign) Live(t time.Time) bool {
	if c.Status != StatusActive && c.Status != "" {
		return false
	}
	if c.Start != nil && t.Before(*c.Start) {
		return false
	}
	if c.End != nil && !t.Before(*c.End) {
		return false
	}
	return true
}

// CreativeCategories returns the categories to declare for a bid with cr: the creative's own when it
// has any, else the campaign's.
func (c *Campaign) CreativeCategories(cr *Creative) []string {
	if len(cr.Categories) > 0 {
		return cr.Categories
	}
	return c.Categories
}

// Creative types.
const (
	TypeBanner = "banner"
	TypeVideo  = "video"
	TypeAudio  = "audio"
	TypeNative = "native"
)

// Macros the bidder replaces in creative markup, once per bid. Markup may use no other {{...}} macro:
// an unknown one would reach the browser verbatim.
const (
	MacroClickURL = "{{CLICK_URL}}"
	MacroImpURL   = "{{IMP_URL}}"
)

// Creative is one ad of a campaign.
type Creative struct {
	ID         string   `yaml:"id" json:"id"`
	Type       string   `yaml:"type" json:"type"`                                 // TypeBanner, TypeVideo, TypeAudio or TypeNative
	W          int      `yaml:"w,omitempty" json:"w,omitempty"`                   // banner: required; video/audio: player size, optional
	H          int      `yaml:"h,omitempty" json:"h,omitempty"`                   //
	HTML       string   `yaml:"html,omitempty" json:"html,omitempty"`             // banner markup; may use MacroClickURL and MacroImpURL
	VAST       string   `yaml:"vast,omitempty" json:"vast,omitempty"`             // video/audio VAST XML; same macros
	MIMEs      []string `yaml:"mimes,omitempty" json:"mimes,omitempty"`           // video/audio, e.g. video/mp4
	Duration   int      `yaml:"duration,omitempty" json:"duration,omitempty"`     // video/audio, seconds
	Protocols  []int    `yaml:"protocols,omitempty" json:"protocols,omitempty"`   // VAST protocol ids
	Native     *Native  `yaml:"native,omitempty" json:"native,omitempty"`         // native assets
	LandingURL string   `yaml:"landing_url" json:"landing_url"`                   // the only place the click redirect may send a user
	Attributes []int    `yaml:"attributes,omitempty" json:"attributes,omitempty"` // OpenRTB creative attributes, matched against battr
	Categories []string `yaml:"categories,omitempty" json:"categories,omitempty"` // overrides the campaign's categories when set
}

// Native holds the assets of a native creative; the bidder maps them onto the request's asset list.
type Native struct {
	Title     string `yaml:"title" json:"title"`
	Body      string `yaml:"body,omitempty" json:"body,omitempty"`
	Sponsored string `yaml:"sponsored,omitempty" json:"sponsored,omitempty"`
	CTA       string `yaml:"cta,omitempty" json:"cta,omitempty"`
	ImageURL  string `yaml:"image_url,omitempty" json:"image_url,omitempty"`
	ImageW    int    `yaml:"image_w,omitempty" json:"image_w,omitempty"`
	ImageH    int    `yaml:"image_h,omitempty" json:"image_h,omitempty"`
	IconURL   string `yaml:"icon_url,omitempty" json:"icon_url,omitempty"`
	IconW     int    `yaml:"icon_w,omitempty" json:"icon_w,omitempty"`
	IconH     int    `yaml:"icon_h,omitempty" json:"icon_h,omitempty"`
}

// Targeting restricts where a campaign bids. Every empty rule matches everything; set rules all must
// match. Values are normalised at load to the case OpenRTB requests carry.
type Targeting struct {
	Countries   []string `yaml:"countries,omitempty" json:"countries,omitempty"`       // ISO-3166-1 alpha-3 ("USA"), upper case
	Regions     []string `yaml:"regions,omitempty" json:"regions,omitempty"`           // ISO-3166-2 subdivision ("CA"), upper case
	DeviceTypes []int    `yaml:"device_types,omitempty" json:"device_types,omitempty"` // OpenRTB device types 1..8
	OS          []string `yaml:"os,omitempty" json:"os,omitempty"`                     // device.os, lower case
	Sites       ListRule `yaml:"sites,omitempty" json:"sites,omitzero"`                // site domains, lower case
	Apps        ListRule `yaml:"apps,omitempty" json:"apps,omitzero"`                  // app bundles, as given
	Publishers  []string `yaml:"publishers,omitempty" json:"publishers,omitempty"`     // publisher ids, allow list
	Inventory   string   `yaml:"inventory,omitempty" json:"inventory,omitempty"`       // "" (any), InventorySite, InventoryApp, InventoryDOOH
	Segments    []string `yaml:"segments,omitempty" json:"segments,omitempty"`         // bid only if the user has any of these
	Dayparts    *Daypart `yaml:"dayparts,omitempty" json:"dayparts,omitempty"`
	Deals       []string `yaml:"deals,omitempty" json:"deals,omitempty"` // if set, the campaign bids ONLY into these deals
}

// Inventory kinds for Targeting.Inventory.
const (
	InventorySite = "site"
	InventoryApp  = "app"
	InventoryDOOH = "dooh"
)

// ListRule is an allow list and a block list. An empty allow list allows everything not blocked.
type ListRule struct {
	Allow []string `yaml:"allow,omitempty" json:"allow,omitempty"`
	Block []string `yaml:"block,omitempty" json:"block,omitempty"`
}

// BidStrategy says what the campaign offers per impression.
type BidStrategy struct {
	Type   string  `yaml:"type" json:"type"`                   // FixedCPM or TargetCPC
	CPM    Micros  `yaml:"cpm,omitempty" json:"cpm,omitempty"` // FixedCPM: the price per thousand
	CPC    Micros  `yaml:"cpc,omitempty" json:"cpc,omitempty"` // TargetCPC: what a click is worth
	CTR    float64 `yaml:"ctr,omitempty" json:"ctr,omitempty"` // TargetCPC: prior CTR until the online estimate takes over
	MaxBid Micros  `yaml:"max_bid" json:"max_bid"`             // CPM ceiling for any bid of the campaign
}

// Bid strategy types.
const (
	FixedCPM  = "fixed_cpm"
	TargetCPC = "target_cpc"
)

// Budget limits spend. The day is the calendar day in TimeZone.
type Budget struct {
	Daily    Micros         `yaml:"daily" json:"daily"`
	Total    Micros         `yaml:"total,omitempty" json:"total,omitempty"` // 0 = unlimited
	TimeZone string         `yaml:"timezone,omitempty" json:"timezone,omitempty"`
	Location *time.Location `yaml:"-" json:"-"` // TimeZone loaded; never nil after loading
}

// FrequencyCap limits impressions per user and window.
type FrequencyCap struct {
	Impressions int      `yaml:"impressions" json:"impressions"`
	Window      Duration `yaml:"window" json:"window"`
}

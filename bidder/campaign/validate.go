package campaign

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxBidCeiling catches amounts written in micros instead of currency units: no sane campaign bids
// more than 1000 USD per thousand impressions.
const maxBidCeiling = 1000 * MicrosPerUnit

const idRule = "must be 1-64 characters of A-Z a-z 0-9 . _ -"

// validID is ^[A-Za-z0-9._-]{1,64}$, without a regexp: it runs for every campaign and creative.
func validID(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// validateSet normalises every campaign in place (defaults, letter case, time zones, daypart masks),
// reports what is wrong to ps and, when nothing is, indexes the set.
func validateSet(s *Set, ps *problems) {
	ps.campaignID = func(i int) string {
		if i < len(s.Campaigns) && s.Campaigns[i] != nil {
			return s.Campaigns[i].ID
		}
		return ""
	}
	first := make(map[string]int, len(s.Campaigns))
	m := &memo{zones: map[string]zone{}, urls: map[string]string{}, vast: map[string]error{}}
	for i, c := range s.Campaigns {
		v := validator{ps: ps, index: i, memo: m}
		if j, dup := first[c.ID]; dup && c.ID != "" {
			v.add("id", "duplicate campaign id (campaigns[%d] has it too)", j)
		} else {
			first[c.ID] = i
		}
		v.campaign(c)
	}
	if len(ps.list) > 0 {
		return
	}
	s.byID = make(map[string]*Campaign, len(s.Campaigns))
	for _, c := range s.Campaigns {
		s.byID[c.ID] = c
	}
}

// validator checks one campaign; paths it reports are relative to campaigns[index].
type validator struct {
	ps    *problems
	index int
	memo  *memo
}

func (v *validator) add(field, format string, args ...any) {
	v.ps.addPath("campaigns["+strconv.Itoa(v.index)+"]."+field, fmt.Sprintf(format, args...))
}

// memo remembers the checks of values that repeat across a file's campaigns: a large file names the
// same zones, landing pages and markup thousands of times, and each check costs microseconds and
// allocations. Zones loaded once are also shared by the campaigns instead of a copy each.
type memo struct {
	zones map[string]zone
	urls  map[string]string
	vast  map[string]error
}

type zone struct {
	loc *time.Location
	err error
}

func (m *memo) location(name string) (*time.Location, error) {
	if m == nil {
		return time.LoadLocation(name)
	}
	z, ok := m.zones[name]
	if !ok {
		z.loc, z.err = time.LoadLocation(name)
		m.zones[name] = z
	}
	return z.loc, z.err
}

func (m *memo) checkURL(u string) string {
	if m == nil {
		return checkURL(u)
	}
	msg, ok := m.urls[u]
	if !ok {
		msg = checkURL(u)
		m.urls[u] = msg
	}
	return msg
}

func (m *memo) checkVAST(s string) error {
	if m == nil {
		return checkVAST(s)
	}
	err, ok := m.vast[s]
	if !ok {
		err = checkVAST(s)
		m.vast[s] = err
	}
	return err
}

func (v *validator) campaign(c *Campaign) {
	switch {
	case c.ID == "":
		v.add("id", "required")
	case !validID(c.ID):
		v.add("id", "%q %s", c.ID, idRule)
	}
	switch c.Status {
	case "":
		c.Status = StatusActive
	case StatusActive, StatusPaused:
	default:
		v.add("status", "%q is not %q or %q", c.Status, StatusActive, StatusPaused)
	}
	if c.AdvertiserDomain == "" {
		v.add("advertiser_domain", "required (the advertiser's domain, e.g. \"ford.com\"; exchanges check it against badv)")
	} else {
		c.AdvertiserDomain = strings.ToLower(c.AdvertiserDomain)
		if msg := checkDomain(c.AdvertiserDomain); msg != "" {
			v.add("advertiser_domain", "%q %s", c.AdvertiserDomain, msg)
		}
	}
	if c.AppBundle != "" && (len(c.AppBundle) > 256 || strings.ContainsAny(c.AppBundle, " \t\r\n")) {
		v.add("app_bundle", "%q must be an app store id or bundle name without spaces", c.AppBundle)
	}
	if c.Seat != "" && !validID(c.Seat) {
		v.add("seat", "%q %s", c.Seat, idRule)
	}
	v.categories("categories", c.Categories)
	if c.Start != nil && c.End != nil && !c.End.After(*c.Start) {
		v.add("end", "must be after start (%s)", c.Start.Format(time.RFC3339))
	}

	if len(c.Creatives) == 0 {
		v.add("creatives", "at least one creative required")
	}
	for i := range c.Creatives {
		cr := &c.Creatives[i]
		path := "creatives[" + strconv.Itoa(i) + "]"
		// Campaigns have a few creatives: a scan is cheaper than a map each.
		for j := range i {
			if cr.ID != "" && c.Creatives[j].ID == cr.ID {
				v.add(path+".id", "duplicate creative id %q (creatives[%d] has it too)", cr.ID, j)
				break
			}
		}
		v.creative(path, cr)
	}
	v.targeting(&c.Targeting)
	v.bid(&c.Bid)
	v.budget(&c.Budget)
	if fc := c.FrequencyCap; fc != nil {
		if fc.Impressions <= 0 {
			v.add("frequency_cap.impressions", "must be > 0")
		}
		if fc.Window <= 0 {
			v.add("frequency_cap.window", "must be > 0, e.g. 24h")
		}
	}
}

// categories checks and upper-cases IAB category ids in place: requests carry "IAB2", and matching
// against bcat is exact.
func (v *validator) categories(path string, cats []string) {
	for i, cat := range cats {
		if cat == "" || strings.ContainsAny(cat, " \t\r\n,") {
			v.add(fmt.Sprintf("%s[%d]", path, i), "%q is not a category id like \"IAB2\"", cat)
			continue
		}
		cats[i] = strings.ToUpper(cat)
	}
}

func (v *validator) creative(path string, cr *Creative) {
	at := func(field string) string { return path + "." + field }
	switch {
	case cr.ID == "":
		v.add(at("id"), "required")
	case !validID(cr.ID):
		v.add(at("id"), "%q %s", cr.ID, idRule)
	}
	if cr.LandingURL == "" {
		v.add(at("landing_url"), "required (the advertiser page a click leads to)")
	} else if msg := v.memo.checkURL(cr.LandingURL); msg != "" {
		v.add(at("landing_url"), "%q %s", cr.LandingURL, msg)
	}
	for i, a := range cr.Attributes {
		if a < 1 || a > 17 {
			v.add(fmt.Sprintf("%s[%d]", at("attributes"), i), "%d is not an OpenRTB creative attribute (1..17)", a)
		}
	}
	v.categories(at("categories"), cr.Categories)
	if cr.W < 0 {
		v.add(at("w"), "must not be negative")
	}
	if cr.H < 0 {
		v.add(at("h"), "must not be negative")
	}

	// onlyFor reports fields set that do not belong to the creative's type: a VAST on a banner is a
	// mistake the bidder would otherwise ignore silently.
	onlyFor := func(field string, set bool, types string) {
		if set {
			v.add(at(field), "only for %s creatives, not %s", types, cr.Type)
		}
	}
	switch cr.Type {
	case TypeBanner:
		if cr.W <= 0 {
			v.add(at("w"), "must be > 0 for a banner")
		}
		if cr.H <= 0 {
			v.add(at("h"), "must be > 0 for a banner")
		}
		if strings.TrimSpace(cr.HTML) == "" {
			v.add(at("html"), "required for a banner")
		} else {
			v.macros(at("html"), cr.HTML)
		}
		onlyFor("vast", cr.VAST != "", "video and audio")
		onlyFor("mimes", len(cr.MIMEs) > 0, "video and audio")
		onlyFor("duration", cr.Duration != 0, "video and audio")
		onlyFor("protocols", len(cr.Protocols) > 0, "video and audio")
		onlyFor("native", cr.Native != nil, "native")
	case TypeVideo, TypeAudio:
		if (cr.W > 0) != (cr.H > 0) {
			v.add(at("w"), "give both w and h (the player size) or neither")
		}
		if strings.TrimSpace(cr.VAST) == "" {
			v.add(at("vast"), "required for %s", cr.Type)
		} else {
			if err := v.memo.checkVAST(cr.VAST); err != nil {
				v.add(at("vast"), "%v", err)
			}
			v.macros(at("vast"), cr.VAST)
		}
		if len(cr.MIMEs) == 0 {
			v.add(at("mimes"), "required for %s, e.g. [%s/mp4]", cr.Type, cr.Type)
		}
		for i, m := range cr.MIMEs {
			cr.MIMEs[i] = strings.ToLower(m)
			if typ, sub, ok := strings.Cut(m, "/"); !ok || typ == "" || sub == "" || strings.ContainsAny(m, " ;,") {
				v.add(fmt.Sprintf("%s[%d]", at("mimes"), i), "%q is not a MIME type like %s/mp4", m, cr.Type)
			}
		}
		if cr.Duration <= 0 {
			v.add(at("duration"), "must be > 0 seconds for %s", cr.Type)
		}
		for i, p := range cr.Protocols {
			if p < 1 || p > 12 {
				v.add(fmt.Sprintf("%s[%d]", at("protocols"), i), "%d is not an OpenRTB protocol id (1..12)", p)
			}
		}
		onlyFor("html", cr.HTML != "", "banner")
		onlyFor("native", cr.Native != nil, "native")
	case TypeNative:
		if cr.Native == nil {
			v.add(at("native"), "required for a native creative (title, image_url, ...)")
		} else {
			v.native(at("native"), cr.Native)
		}
		onlyFor("w", cr.W != 0, "banner, video and audio")
		onlyFor("h", cr.H != 0, "banner, video and audio")
		onlyFor("html", cr.HTML != "", "banner")
		onlyFor("vast", cr.VAST != "", "video and audio")
		onlyFor("mimes", len(cr.MIMEs) > 0, "video and audio")
		onlyFor("duration", cr.Duration != 0, "video and audio")
		onlyFor("protocols", len(cr.Protocols) > 0, "video and audio")
	case "":
		v.add(at("type"), "required: %s, %s, %s or %s", TypeBanner, TypeVideo, TypeAudio, TypeNative)
	default:
		v.add(at("type"), "%q is not %s, %s, %s or %s", cr.Type, TypeBanner, TypeVideo, TypeAudio, TypeNative)
	}
}

func (v *validator) native(path string, n *Native) {
	if strings.TrimSpace(n.Title) == "" {
		v.add(path+".title", "required for a native creative")
	}
	image := func(name, u string, w, h int) {
		if u == "" {
			if w != 0 || h != 0 {
				v.add(path+"."+name+"_url", "required when %s_w or %s_h is set", name, name)
			}
			return
		}
		if msg := v.memo.checkURL(u); msg != "" {
			v.add(path+"."+name+"_url", "%q %s", u, msg)
		}
		// Exchanges match native image assets by size, so an image without one cannot be placed.
		if w <= 0 {
			v.add(path+"."+name+"_w", "must be > 0 when %s_url is set", name)
		}
		if h <= 0 {
			v.add(path+"."+name+"_h", "must be > 0 when %s_url is set", name)
		}
	}
	image("image", n.ImageURL, n.ImageW, n.ImageH)
	image("icon", n.IconURL, n.IconW, n.IconH)
}

// macros refuses {{...}} macros the bidder does not replace: they would reach the page verbatim.
func (v *validator) macros(path, markup string) {
	rest := markup
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			return
		}
		rest = rest[i:]
		j := strings.Index(rest, "}}")
		if j < 0 {
			v.add(path, "unterminated macro %q", truncate(rest, 20))
			return
		}
		if m := rest[:j+2]; m != MacroClickURL && m != MacroImpURL {
			v.add(path, "unknown macro %s (the bidder replaces only %s and %s)", m, MacroClickURL, MacroImpURL)
		}
		rest = rest[j+2:]
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// checkVAST makes sure the markup is well-formed XML with a VAST root: players reject anything else,
// and a load-time error is cheaper than a campaign that wins and never plays.
func checkVAST(s string) error {
	dec := xml.NewDecoder(strings.NewReader(s))
	root := ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "VAST" {
		if root == "" {
			return errors.New("want VAST XML, found no element")
		}
		return fmt.Errorf("want a <VAST> root element, got <%s>", root)
	}
	return nil
}

func (v *validator) targeting(t *Targeting) {
	const p = "targeting."
	for i, c := range t.Countries {
		c = strings.ToUpper(c)
		t.Countries[i] = c
		if len(c) != 3 || !isUpperAlpha(c) {
			v.add(fmt.Sprintf(p+"countries[%d]", i), "%q is not an ISO-3166-1 alpha-3 code like \"USA\" (OpenRTB sends alpha-3)", c)
		}
	}
	for i, r := range t.Regions {
		r = strings.ToUpper(r)
		t.Regions[i] = r
		if r == "" || len(r) > 6 || strings.Trim(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
			v.add(fmt.Sprintf(p+"regions[%d]", i), "%q is not an ISO-3166-2 subdivision code like \"CA\"", r)
		}
	}
	for i, d := range t.DeviceTypes {
		if d < 1 || d > 8 {
			v.add(fmt.Sprintf(p+"device_types[%d]", i), "%d is not an OpenRTB device type (1..8)", d)
		}
	}
	for i, o := range t.OS {
		t.OS[i] = strings.ToLower(o)
		if strings.TrimSpace(o) == "" {
			v.add(fmt.Sprintf(p+"os[%d]", i), "empty")
		}
	}
	for i, s := range t.Sites.Allow {
		t.Sites.Allow[i] = strings.ToLower(s)
	}
	for i, s := range t.Sites.Block {
		t.Sites.Block[i] = strings.ToLower(s)
	}
	v.listRule(p+"sites", t.Sites, checkDomain)
	v.listRule(p+"apps", t.Apps, func(s string) string {
		if s == "" || strings.ContainsAny(s, " \t\r\n/") {
			return "is not an app bundle like \"com.example.game\""
		}
		return ""
	})
	v.nonEmpty(p+"publishers", t.Publishers)
	v.nonEmpty(p+"segments", t.Segments)
	v.nonEmpty(p+"deals", t.Deals)
	for i, d := range t.Deals {
		if j := slices.Index(t.Deals, d); j < i {
			v.add(fmt.Sprintf(p+"deals[%d]", i), "deal %q listed twice", d)
		}
	}
	switch t.Inventory {
	case "", InventorySite, InventoryApp, InventoryDOOH:
	default:
		v.add(p+"inventory", "%q is not %q, %q or %q (or absent for any)", t.Inventory, InventorySite, InventoryApp, InventoryDOOH)
	}
	// Allow lists for inventory the campaign excludes can never match: the file says two things.
	if len(t.Sites.Allow) > 0 && (t.Inventory == InventoryApp || t.Inventory == InventoryDOOH) {
		v.add(p+"sites.allow", "site allow list on a campaign with inventory %q can never match", t.Inventory)
	}
	if len(t.Apps.Allow) > 0 && (t.Inventory == InventorySite || t.Inventory == InventoryDOOH) {
		v.add(p+"apps.allow", "app allow list on a campaign with inventory %q can never match", t.Inventory)
	}
	if d := t.Dayparts; d != nil {
		v.daypart(p+"dayparts", d)
	}
}

func (v *validator) listRule(path string, r ListRule, check func(string) string) {
	for _, list := range []struct {
		name    string
		entries []string
	}{{"allow", r.Allow}, {"block", r.Block}} {
		for i, e := range list.entries {
			if msg := check(e); msg != "" {
				v.add(fmt.Sprintf("%s.%s[%d]", path, list.name, i), "%q %s", e, msg)
			}
		}
	}
	for i, e := range r.Block {
		if slices.Contains(r.Allow, e) {
			v.add(fmt.Sprintf("%s.block[%d]", path, i), "%q is in both allow and block", e)
		}
	}
}

func (v *validator) nonEmpty(path string, list []string) {
	for i, s := range list {
		if strings.TrimSpace(s) == "" {
			v.add(fmt.Sprintf("%s[%d]", path, i), "empty")
		}
	}
}

func (v *validator) daypart(path string, d *Daypart) {
	if d.TimeZone == "" {
		v.add(path+".timezone", "required: an IANA zone like \"America/New_York\"")
	} else if loc, err := v.memo.location(d.TimeZone); err != nil {
		v.add(path+".timezone", "%q is not an IANA time zone like \"America/New_York\"", d.TimeZone)
	} else {
		d.Location = loc
	}
	if len(d.Windows) == 0 {
		v.add(path+".windows", "at least one window required")
	}
	ok := true
	for i := range d.Windows {
		w := &d.Windows[i]
		wp := fmt.Sprintf("%s.windows[%d]", path, i)
		for j, day := range w.Days {
			w.Days[j] = strings.ToLower(day)
			if _, known := weekdays[w.Days[j]]; !known {
				v.add(fmt.Sprintf("%s.days[%d]", wp, j), "%q is not a day: mon, tue, wed, thu, fri, sat or sun", day)
				ok = false
			}
		}
		if w.From < 0 || w.From > 23 {
			v.add(wp+".from", "%d is not an hour 0..23", w.From)
			ok = false
		}
		if w.To < 1 || w.To > 24 {
			v.add(wp+".to", "%d is not an hour 1..24 (to is exclusive: 24 means until midnight)", w.To)
			ok = false
		} else if w.To <= w.From {
			v.add(wp+".to", "must be after from (%d); split a window that crosses midnight in two", w.From)
			ok = false
		}
	}
	if ok {
		d.compile()
	}
}

func (v *validator) bid(b *BidStrategy) {
	const p = "bid."
	if b.MaxBid <= 0 {
		v.add(p+"max_bid", "required, > 0 (the CPM ceiling in currency units, e.g. 5.00)")
	} else if b.MaxBid > maxBidCeiling {
		v.add(p+"max_bid", "%s per thousand is implausible; amounts are in currency units (2.50), not micros", b.MaxBid)
	}
	switch b.Type {
	case FixedCPM:
		if b.CPM <= 0 {
			v.add(p+"cpm", "must be > 0 for %s", FixedCPM)
		} else if b.MaxBid > 0 && b.CPM > b.MaxBid {
			v.add(p+"cpm", "%s is above max_bid %s", b.CPM, b.MaxBid)
		}
		if b.CPC != 0 {
			v.add(p+"cpc", "only for %s", TargetCPC)
		}
		if b.CTR != 0 {
			v.add(p+"ctr", "only for %s", TargetCPC)
		}
	case TargetCPC:
		if b.CPC <= 0 {
			v.add(p+"cpc", "must be > 0 for %s", TargetCPC)
		}
		if !(b.CTR > 0 && b.CTR < 1) {
			v.add(p+"ctr", "must be a prior click-through rate between 0 and 1 (exclusive) for %s, e.g. 0.002", TargetCPC)
		}
		if b.CPM != 0 {
			v.add(p+"cpm", "only for %s", FixedCPM)
		}
	case "":
		v.add(p+"type", "required: %s or %s", FixedCPM, TargetCPC)
	default:
		v.add(p+"type", "%q is not %s or %s", b.Type, FixedCPM, TargetCPC)
	}
}

func (v *validator) budget(b *Budget) {
	const p = "budget."
	if b.Daily <= 0 {
		v.add(p+"daily", "required, > 0 (currency units per day)")
	}
	if b.Total < 0 {
		v.add(p+"total", "must not be negative")
	} else if b.Total > 0 && b.Total < b.Daily {
		v.add(p+"total", "%s is below the daily budget %s (0 or absent means unlimited)", b.Total, b.Daily)
	}
	if b.TimeZone == "" {
		b.TimeZone = "UTC"
	}
	loc, err := v.memo.location(b.TimeZone)
	if err != nil {
		v.add(p+"timezone", "%q is not an IANA time zone like \"UTC\" or \"America/New_York\"", b.TimeZone)
		return
	}
	b.Location = loc
}

// checkDomain returns why s is not a bare lower-case domain, or "".
func checkDomain(s string) string {
	switch {
	case s == "":
		return "is empty"
	case strings.Contains(s, "://"):
		return "must be a bare domain without scheme, like \"example.com\""
	case strings.ContainsAny(s, "/?#:@ \t"):
		return "must be a bare domain without path or port, like \"example.com\""
	case !strings.Contains(s, ".") || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, ".."):
		return "is not a domain like \"example.com\""
	case strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789.-") != "":
		return "has characters a domain cannot have"
	}
	return ""
}

// checkURL returns why s is not an absolute http(s) URL, or "".
func checkURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "must be an absolute http(s) URL"
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return "must not contain spaces"
	}
	return ""
}

func isUpperAlpha(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// Package targeting compiles campaigns into an index that answers "which campaigns may bid on this
// impression" without scanning them.
//
// Every targeting dimension (inventory type, country, region, device type, OS, site or app, publisher,
// user segment, media and size, deal) maps a request value to a dense bitset of campaigns, with the
// campaigns that do not restrict that dimension folded in at build time. Campaigns are numbered in
// descending order of the most they can bid, so walking the intersection word by word yields the
// richest candidates first: the bidder stops as soon as no later campaign can beat the best offer it
// holds. The cost of a lookup therefore grows with the number of 64-campaign words it must look at
// before finding a winner, not with the number of campaigns.
package targeting

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"rtb/bidder/campaign"
)

// Entry is one compiled campaign.
type Entry struct {
	Rank      int // position in the index: lower ranks can bid more
	Campaign  *campaign.Campaign
	Bound     int64 // the most this campaign can bid, micros CPM
	DealOnly  bool
	Creatives []Creative
}

// Creative is a compiled creative.
type Creative struct {
	*campaign.Creative
	Kind Kind
	Cats []string // the creative's categories, else its campaign's: what bcat is checked against
}

// Kind is the media kind of a creative or an imp's media object.
type Kind uint8

// Media kinds.
const (
	KindBanner Kind = iota
	KindVideo
	KindAudio
	KindNative
)

// dimension maps values to bitsets; any holds the campaigns that do not restrict the dimension and
// is folded into every value's set, so that a lookup of an unknown value returns any.
type dimension struct {
	byValue map[string]bitset
	any     bitset
}

func newDimension(words int) dimension {
	return dimension{byValue: map[string]bitset{}, any: make(bitset, words)}
}

func (d *dimension) add(value string, rank, words int) {
	b, ok := d.byValue[value]
	if !ok {
		b = make(bitset, words)
		d.byValue[value] = b
	}
	b.set(rank)
}

func (d *dimension) finish() {
	for _, b := range d.byValue {
		b.or(d.any)
	}
}

// get returns the set for value; v is looked up as given, so callers normalise first.
func (d *dimension) get(v string) bitset {
	if b, ok := d.byValue[v]; ok {
		return b
	}
	return d.any
}

// getBytes is get for a key held in a byte slice; indexing a map with string(b) does not copy b.
func (d *dimension) getBytes(v []byte) bitset {
	if b, ok := d.byValue[string(v)]; ok {
		return b
	}
	return d.any
}

// Index is immutable once built; a reload builds a new one and swaps it in.
type Index struct {
	Entries []Entry
	words   int

	inventory  [3]bitset // site, app, dooh
	country    dimension
	region     dimension
	deviceType dimension
	os         dimension
	site       dimension // allow lists of site domains
	unlisted   bitset    // campaigns with neither a site nor an app allow list
	siteBlock  map[string]bitset
	app        dimension
	appBlock   map[string]bitset
	publisher  dimension
	segment    dimension // any = campaigns without segment targeting; byValue NOT folded (OR-ed at lookup)
	banner     map[size]bitset
	bannerAny  bitset // campaigns with a banner creative of any size (for imps without sizes)
	video      bitset
	audio      bitset
	native     bitset
	deal       map[string]bitset
	openOnly   bitset // complement of deal-only campaigns
	zero       bitset
}

type size struct{ w, h int64 }

// Inventory types of Query.Inventory.
const (
	InvSite = iota
	InvApp
	InvDOOH
)

// Build compiles the active campaigns of set. Paused campaigns and those whose flight has ended by
// now are left out; flight start and dayparts are time-dependent and checked per candidate.
func Build(set *campaign.Set, now time.Time) (*Index, error) {
	live := func(c *campaign.Campaign) bool {
		return c.Status != "paused" && (c.End == nil || now.Before(*c.End))
	}
	n, ncr := 0, 0
	for _, c := range set.Campaigns {
		if live(c) {
			n++
			ncr += len(c.Creatives)
		}
	}
	// The compiled creatives of all campaigns share one allocation: 100,000 campaigns would
	// otherwise leave as many small objects for the collector to mark.
	creatives := make([]Creative, 0, ncr)
	unsorted := make([]Entry, 0, n)
	for _, c := range set.Campaigns {
		if !live(c) {
			continue
		}
		e := Entry{Campaign: c, Bound: bound(c), DealOnly: len(c.Targeting.Deals) > 0}
		first := len(creatives)
		for i := range c.Creatives {
			cr := &c.Creatives[i]
			k, err := kindOf(cr.Type)
			if err != nil {
				return nil, fmt.Errorf("campaign %q creative %q: %w", c.ID, cr.ID, err)
			}
			creatives = append(creatives, Creative{Creative: cr, Kind: k, Cats: c.CreativeCategories(cr)})
		}
		e.Creatives = creatives[first:len(creatives):len(creatives)]
		unsorted = append(unsorted, e)
	}
	// Richest first; ties keep file order so that results are reproducible. Sorting positions with
	// file order as the tie-break gives the stable order without a stable sort's O(n log² n) moves
	// of whole entries.
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		if c := cmp.Compare(unsorted[b].Bound, unsorted[a].Bound); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	entries := make([]Entry, n)
	for r, i := range order {
		entries[r] = unsorted[i]
	}

	w := (n + 63) / 64
	ix := &Index{
		Entries: entries, words: w,
		country: newDimension(w), region: newDimension(w), deviceType: newDimension(w), os: newDimension(w),
		site: newDimension(w), siteBlock: map[string]bitset{}, app: newDimension(w), appBlock: map[string]bitset{},
		publisher: newDimension(w), segment: newDimension(w),
		banner: map[size]bitset{}, bannerAny: make(bitset, w), video: make(bitset, w), audio: make(bitset, w),
		native: make(bitset, w), deal: map[string]bitset{}, openOnly: make(bitset, w),
		zero: make(bitset, w), unlisted: make(bitset, w),
	}
	for i := range ix.inventory {
		ix.inventory[i] = make(bitset, w)
	}
	for r := range entries {
		e := &entries[r]
		e.Rank = r
		t := &e.Campaign.Targeting
		switch strings.ToLower(t.Inventory) {
		case "site":
			ix.inventory[InvSite].set(r)
		case "app":
			ix.inventory[InvApp].set(r)
		case "dooh":
			ix.inventory[InvDOOH].set(r)
		default:
			for i := range ix.inventory {
				ix.inventory[i].set(r)
			}
		}
		addAll(&ix.country, t.Countries, r, w, strings.ToUpper)
		addAll(&ix.region, t.Regions, r, w, strings.ToUpper)
		if len(t.DeviceTypes) == 0 {
			ix.deviceType.any.set(r)
		}
		for _, d := range t.DeviceTypes {
			key := strconv.Itoa(d)
			if d > 0 && d < len(deviceTypeKeys) {
				key = deviceTypeKeys[d] // the request path's keys, without an allocation each
			}
			ix.deviceType.add(key, r, w)
		}
		addAll(&ix.os, t.OS, r, w, strings.ToLower)
		// An allow list of sites or apps restricts the campaign to the listed inventory: a campaign
		// naming only sites does not bid in apps, nor one naming only apps on sites.
		if len(t.Sites.Allow) == 0 && len(t.Apps.Allow) == 0 {
			ix.site.any.set(r)
			ix.app.any.set(r)
			ix.unlisted.set(r)
		}
		for _, v := range t.Sites.Allow {
			ix.site.add(NormalizeDomain(v), r, w)
		}
		for _, v := range t.Apps.Allow {
			ix.app.add(strings.ToLower(v), r, w)
		}
		addBlocks(ix.siteBlock, t.Sites.Block, r, w, NormalizeDomain)
		addBlocks(ix.appBlock, t.Apps.Block, r, w, strings.ToLower)
		addAll(&ix.publisher, t.Publishers, r, w, nil)
		addAll(&ix.segment, t.Segments, r, w, nil)
		if e.DealOnly {
			for _, d := range t.Deals {
				b, ok := ix.deal[d]
				if !ok {
					b = make(bitset, w)
					ix.deal[d] = b
				}
				b.set(r)
			}
		} else {
			ix.openOnly.set(r)
		}
		for i := range e.Creatives {
			cr := &e.Creatives[i]
			switch cr.Kind {
			case KindBanner:
				sz := size{int64(cr.W), int64(cr.H)}
				b, ok := ix.banner[sz]
				if !ok {
					b = make(bitset, w)
					ix.banner[sz] = b
				}
				b.set(r)
				ix.bannerAny.set(r)
			case KindVideo:
				ix.video.set(r)
			case KindAudio:
				ix.audio.set(r)
			case KindNative:
				ix.native.set(r)
			}
		}
	}
	for _, d := range []*dimension{&ix.country, &ix.region, &ix.deviceType, &ix.os, &ix.site, &ix.app, &ix.publisher} {
		d.finish()
	}
	return ix, nil
}

func addAll(d *dimension, values []string, rank, words int, norm func(string) string) {
	if len(values) == 0 {
		d.any.set(rank)
		return
	}
	for _, v := range values {
		if norm != nil {
			v = norm(v)
		}
		d.add(v, rank, words)
	}
}

func addBlocks(m map[string]bitset, values []string, rank, words int, norm func(string) string) {
	for _, v := range values {
		v = norm(v)
		b, ok := m[v]
		if !ok {
			b = make(bitset, words)
			m[v] = b
		}
		b.set(rank)
	}
}

func kindOf(t string) (Kind, error) {
	switch t {
	case "banner":
		return KindBanner, nil
	case "video":
		return KindVideo, nil
	case "audio":
		return KindAudio, nil
	case "native":
		return KindNative, nil
	}
	return 0, fmt.Errorf("unknown creative type %q", t)
}

// bound is the most a campaign can bid: its ceiling.
//
// It is the max bid even for a fixed CPM below it, because pacing may multiply a bid up to that
// ceiling.
func bound(c *campaign.Campaign) int64 {
	return int64(c.Bid.MaxBid)
}

// NormalizeDomain lower-cases a domain and drops a leading "www.", so that campaigns naming
// "foobar.com" match requests from "www.foobar.com".
func NormalizeDomain(d string) string {
	d = strings.ToLower(d)
	return strings.TrimPrefix(d, "www.")
}

// Len is the number of campaigns in the index.
func (ix *Index) Len() int { return len(ix.Entries) }

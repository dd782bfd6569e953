package bidder

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"rtb/bidder/campaign"
	"rtb/bidder/targeting"
)

// engine is the immutable state one request reads: the index and, per campaign rank, what the bid path
// needs precomputed. A reload builds a new engine and swaps the pointer, so an in-flight request
// finishes on the engine it started with.
type engine struct {
	set     *campaign.Set
	index   *targeting.Index
	ranks   []rankData
	builtAt time.Time
	// segNames are the distinct segments, "FORMAT|INVENTORY", built once here so that the bid path
	// never concatenates; campaigns refer to them by number. At 100,000 campaigns a string per
	// creative and inventory was nine heap objects a campaign for the collector to mark at every
	// cycle, for a few dozen distinct values.
	segNames []string
}

type rankData struct {
	pacing    *pacingSlot
	seat      string
	adomain   []string
	creatives []template // by creative index
	// segments[creative][inventory] is the bid's segment, an index into engine.segNames: without
	// pointers, the collector does not scan it.
	segments [][numInventories]uint32
}

// segment is the bid's segment of creative cr of rank r on inventory inv.
func (e *engine) segment(r, cr, inv int) string { return e.segNames[e.ranks[r].segments[cr][inv]] }

// Inventory kinds of a request: where the ad would show.
const (
	invSite = iota
	invApp
	invDOOH
	numInventories
)

var inventoryNames = [numInventories]string{"site", "app", "dooh"}

// formatOf names a creative's format in segments: banners by size (competition differs by size),
// other media by kind.
func formatOf(cr *targeting.Creative) string {
	switch cr.Kind {
	case targeting.KindBanner:
		return fmt.Sprintf("banner-%dx%d", cr.W, cr.H)
	case targeting.KindVideo:
		return "video"
	case targeting.KindAudio:
		return "audio"
	case targeting.KindNative:
		return "native"
	}
	return "other"
}

// template is a creative's markup split at its macros, so that a bid fills it by appending.
type template []piece

type piece struct {
	lit   string
	macro macro
}

type macro uint8

const (
	macroNone macro = iota
	macroClick
	macroImp
)

var macros = []struct {
	text string
	m    macro
}{{"{{CLICK_URL}}", macroClick}, {"{{IMP_URL}}", macroImp}}

// compileTemplate appends the pieces of markup s to t.
func compileTemplate(t template, s string) template {
	for len(s) > 0 {
		at, which := -1, macroNone
		for _, m := range macros {
			if i := strings.Index(s, m.text); i >= 0 && (at < 0 || i < at) {
				at, which = i, m.m
			}
		}
		if at < 0 {
			t = append(t, piece{lit: s})
			break
		}
		if at > 0 {
			t = append(t, piece{lit: s[:at]})
		}
		t = append(t, piece{macro: which})
		for _, m := range macros {
			if m.m == which {
				s = s[at+len(m.text):]
			}
		}
	}
	return t
}

func newEngine(set *campaign.Set, seat string, pacing *pacingTable, now time.Time) (*engine, error) {
	ix, err := targeting.Build(set, now)
	if err != nil {
		return nil, fmt.Errorf("index campaigns of %s: %w", set.Source, err)
	}
	e := &engine{set: set, index: ix, ranks: make([]rankData, ix.Len()), builtAt: now}
	segIDs := map[string]uint32{}
	// Every template's pieces in one array (two passes: the array must not move once templates
	// point into it), one heap object instead of one per creative.
	// Sized up front (a piece per macro and one around each): grown by append, the array was
	// copied a dozen times while 100,000 campaigns loaded.
	pieces, creatives := 0, 0
	for r := range ix.Entries {
		for i := range ix.Entries[r].Creatives {
			pieces += 2*strings.Count(creativeMarkup(&ix.Entries[r].Creatives[i]), "{{") + 1
			creatives++
		}
	}
	slab := make([]piece, 0, pieces)
	ends := make([]int, 0, creatives) // where each creative's pieces end in slab, in index order
	for r := range ix.Entries {
		for i := range ix.Entries[r].Creatives {
			slab = compileTemplate(slab, creativeMarkup(&ix.Entries[r].Creatives[i]))
			ends = append(ends, len(slab))
		}
	}
	slab = slices.Clip(slab)
	at, k := 0, 0
	for r := range ix.Entries {
		en := &ix.Entries[r]
		c := en.Campaign
		rd := &e.ranks[r]
		rd.adomain = []string{c.AdvertiserDomain}
		rd.seat = seat
		rd.pacing = pacing.slot(c.ID)
		if c.Seat != "" {
			rd.seat = c.Seat
		}
		rd.creatives = make([]template, len(en.Creatives))
		rd.segments = make([][numInventories]uint32, len(en.Creatives))
		for i := range en.Creatives {
			f := formatOf(&en.Creatives[i])
			for inv, name := range inventoryNames {
				seg := f + "|" + name
				id, ok := segIDs[seg]
				if !ok {
					id = uint32(len(e.segNames))
					segIDs[seg] = id
					e.segNames = append(e.segNames, seg)
				}
				rd.segments[i][inv] = id
			}
			if end := ends[k]; end > at {
				rd.creatives[i] = slab[at:end:end]
				at = end
			}
			k++
		}
	}
	return e, nil
}

// creativeMarkup is the markup a bid on cr carries: banners' HTML, video and audio's VAST.
func creativeMarkup(cr *targeting.Creative) string {
	switch cr.Kind {
	case targeting.KindBanner:
		return cr.Creative.HTML
	case targeting.KindVideo, targeting.KindAudio:
		return cr.Creative.VAST
	}
	return ""
}

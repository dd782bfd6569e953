package targeting

import (
	"bytes"
	"strconv"
	"strings"

	"rtb/bidder/openrtb"
)

// Bounds on per-request work: requests carrying more segments or sizes than this are matched on the
// first ones only, so that no request can make the lookup unbounded.
const (
	maxSegments = 32
	maxSizes    = 16
)

// Query holds the request-level sets of one bid request. It is meant to be reused across requests
// (it lives in the bidder's per-request scratch), and holds no reference to the request after
// Prepare returns apart from the sets of the index it was prepared against.
type Query struct {
	ix                                        *Index
	inv, country, region, dev, os, allow, pub bitset
	block                                     bitset
	segs                                      [maxSegments]bitset
	nsegs                                     int
	segFilter                                 bool
}

// Prepare looks up the request-level dimensions of req. extraSegments are the user's segments known
// to the bidder (the feature store), in addition to those the request carries in user.data.
func (ix *Index) Prepare(q *Query, req *openrtb.BidRequest, extraSegments []string) {
	q.ix = ix
	var pubID string
	q.allow, q.block = ix.unlisted, ix.zero
	switch {
	case req.Site != nil:
		q.inv = ix.inventory[InvSite]
		var buf [128]byte
		d := bytes.TrimPrefix(lower(req.Site.Domain, buf[:]), []byte("www."))
		q.allow = ix.site.getBytes(d)
		if b, ok := ix.siteBlock[string(d)]; ok {
			q.block = b
		}
		pubID = req.Site.Publisher.ID
	case req.App != nil:
		q.inv = ix.inventory[InvApp]
		var buf [128]byte
		bundle := lower(req.App.Bundle, buf[:])
		q.allow = ix.app.getBytes(bundle)
		if b, ok := ix.appBlock[string(bundle)]; ok {
			q.block = b
		}
		pubID = req.App.Publisher.ID
	case req.DOOH != nil:
		q.inv = ix.inventory[InvDOOH]
		pubID = req.DOOH.Publisher.ID
	default:
		// Neither site nor app: only campaigns that do not care about inventory type.
		q.inv = ix.inventory[InvSite]
	}
	geo := &req.Device.Geo
	if geo.Country == "" {
		geo = &req.User.Geo
	}
	q.country = ix.country.get(upper(geo.Country))
	q.region = ix.region.get(upper(geo.Region))
	q.dev = ix.deviceType.get(deviceTypeKey(req.Device.DeviceType))
	var buf [32]byte
	q.os = ix.os.getBytes(lower(req.Device.OS, buf[:]))
	q.pub = ix.publisher.get(pubID)

	q.nsegs = 0
	q.segFilter = len(ix.segment.byValue) > 0
	if q.segFilter {
		for i := range req.User.Data {
			for _, s := range req.User.Data[i].Segment {
				q.addSegment(s.ID)
			}
		}
		for _, s := range extraSegments {
			q.addSegment(s)
		}
	}
}

func (q *Query) addSegment(id string) {
	if q.nsegs == maxSegments {
		return
	}
	if b, ok := q.ix.segment.byValue[id]; ok {
		q.segs[q.nsegs] = b
		q.nsegs++
	}
}

var deviceTypeKeys = func() (k [256]string) {
	for i := range k {
		k[i] = strconv.Itoa(i)
	}
	return k
}()

func deviceTypeKey(t int8) string {
	if t <= 0 {
		return ""
	}
	return deviceTypeKeys[t]
}

// upper returns s in upper case; the common case (already upper) does not allocate.
func upper(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'a' && c <= 'z' {
			return strings.ToUpper(s)
		}
	}
	return s
}

// lower returns s lower-cased in buf (or a new slice when s does not fit), so that the lookups of
// the bid path do not allocate: a map index by string(bytes) does not copy.
func lower(s string, buf []byte) []byte {
	if len(s) > len(buf) {
		return []byte(strings.ToLower(s))
	}
	b := buf[:len(s)]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	return b
}

// word is the request-level intersection for word i.
func (q *Query) word(i int) uint64 {
	w := q.inv[i] & q.country[i] & q.region[i] & q.dev[i] & q.os[i] & q.allow[i] & q.pub[i] &^ q.block[i]
	if w != 0 && q.segFilter {
		s := q.ix.segment.any[i]
		for k := 0; k < q.nsegs; k++ {
			s |= q.segs[k][i]
		}
		w &= s
	}
	return w
}

// Iter walks the candidates for one imp in rank order (richest first). The caller stops calling Next
// as soon as it holds an offer no later rank can beat.
type Iter struct {
	q      *Query
	media  [maxSizes]bitset
	nmedia int
	gate   bitset // openOnly for the open auction, a deal's set for a deal
	word   int
	cur    uint64
}

// Open prepares it to walk the open-auction candidates (campaigns that are not deal-only) for imp.
func (q *Query) Open(it *Iter, imp *openrtb.Imp) {
	q.start(it, imp, q.ix.openOnly)
}

// Deal prepares it to walk the campaigns that target dealID for imp; it reports false when none does.
func (q *Query) Deal(it *Iter, imp *openrtb.Imp, dealID string) bool {
	b, ok := q.ix.deal[dealID]
	if !ok {
		return false
	}
	q.start(it, imp, b)
	return true
}

func (q *Query) start(it *Iter, imp *openrtb.Imp, gate bitset) {
	ix := q.ix
	it.q, it.gate, it.word, it.cur, it.nmedia = q, gate, -1, 0, 0
	if b := imp.Banner; b != nil {
		if len(b.Format) == 0 && (b.W == 0 || b.H == 0) {
			it.addMedia(ix.bannerAny)
		} else {
			if b.W > 0 && b.H > 0 {
				it.addMedia(ix.banner[size{b.W, b.H}])
			}
			for _, f := range b.Format {
				it.addMedia(ix.banner[size{f.W, f.H}])
			}
		}
	}
	if imp.Video != nil {
		it.addMedia(ix.video)
	}
	if imp.Audio != nil {
		it.addMedia(ix.audio)
	}
	if imp.Native != nil {
		it.addMedia(ix.native)
	}
}

func (it *Iter) addMedia(b bitset) {
	if len(b) == 0 || it.nmedia == maxSizes {
		return
	}
	for k := 0; k < it.nmedia; k++ {
		if &it.media[k][0] == &b[0] {
			return
		}
	}
	it.media[it.nmedia] = b
	it.nmedia++
}

// Next returns the next candidate's rank, or -1 when there is none.
func (it *Iter) Next() int {
	for it.cur == 0 {
		it.word++
		if it.word >= it.q.ix.words || it.nmedia == 0 {
			return -1
		}
		i := it.word
		m := uint64(0)
		for k := 0; k < it.nmedia; k++ {
			m |= it.media[k][i]
		}
		if m &= it.gate[i]; m != 0 {
			it.cur = m & it.q.word(i)
		}
	}
	b := it.cur & -it.cur
	it.cur ^= b
	return it.word<<6 + trailingZeros(b)
}

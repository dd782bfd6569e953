package targeting

// has reports whether rank is in b.
func (b bitset) has(rank int) bool { return b[rank>>6]&(1<<(uint(rank)&63)) != 0 }

// Excludes names the first rule that keeps rank out of its candidates, in the order media and
// size, deals, inventory type, country, region, device type, OS, site or app allow list, site or
// app block list, publisher, segments; "" when rank is a candidate. It is for explanations
// (POST /api/explain) only: it tests one rank's bits, which the walk never does.
func (it *Iter) Excludes(rank int) string {
	q := it.q
	if q == nil || rank < 0 || rank >= len(q.ix.Entries) {
		return ""
	}
	media := false
	for k := 0; k < it.nmedia; k++ {
		media = media || it.media[k].has(rank)
	}
	switch {
	case !media:
		return "no creative of the imp's media and sizes"
	case !it.gate.has(rank):
		if q.ix.Entries[rank].DealOnly {
			return "deals: it bids only into its deals, and the imp offers none of them"
		}
		return "deals: it does not target this deal"
	case !q.inv.has(rank):
		return "inventory type"
	case !q.country.has(rank):
		return "country"
	case !q.region.has(rank):
		return "region"
	case !q.dev.has(rank):
		return "device type"
	case !q.os.has(rank):
		return "OS"
	case !q.allow.has(rank):
		return "site or app allow list"
	case q.block.has(rank):
		return "site or app block list"
	case !q.pub.has(rank):
		return "publisher"
	}
	if q.segFilter && !q.ix.segment.any.has(rank) {
		for k := 0; k < q.nsegs; k++ {
			if q.segs[k].has(rank) {
				return ""
			}
		}
		return "segments: the user has none of its segments"
	}
	return ""
}

package loadtest

import (
	"math"
	"math/rand/v2"
)

// maxNotices is the most notices one auction can send (nurl, burl, impression pixel, click).
const maxNotices = 4

// draws are every random choice the market makes about one imp of one scheduled request.
//
// They are common random numbers: a pure function of (seed, request sequence number, imp index),
// never taken from a shared sequential generator. Comparing bidders then measures only what the
// bidders do: every target meets the same competing bid and the same user's click decision, however
// their answers interleave, and a rerun with the same seed meets them again.
type draws struct {
	z     float64            // standard normal: the highest competing bid is exp(mu + sigma·z)
	delay float64            // uniform [0,1): share of --notice-delay before the notices go out
	click float64            // uniform [0,1): the user clicks when below the campaign's true CTR
	dup   [maxNotices]uint64 // per notice, uniform bits: sent twice when below --notice-dup
}

// drawsFor draws the auction of imp (its position in the request) of scheduled request seq. Every
// field is drawn in a fixed order from a PCG seeded by a hash of the three, whether or not it ends
// up used, so that one field never depends on whether another was needed.
func drawsFor(seed, seq uint64, imp int) draws {
	src := rand.NewPCG(mix(seed^0x6d61726b6574, seq), mix(seq+0x9e3779b97f4a7c15, uint64(imp)^seed))
	r := rand.New(src)
	d := draws{z: r.NormFloat64(), delay: r.Float64(), click: r.Float64()}
	for i := range d.dup {
		d.dup[i] = r.Uint64()
	}
	return d
}

// dupped reports whether notice i is sent twice at share p.
func (d *draws) dupped(i int, p float64) bool {
	if p <= 0 || i >= maxNotices {
		return false
	}
	return float64(d.dup[i]>>11)/(1<<53) < p
}

// competing is the highest competing bid for mu and sigma, rounded to a cent as exchanges report it.
func (d *draws) competing(mu, sigma float64) float64 {
	return math.Round(math.Exp(mu+sigma*d.z)*100) / 100
}

// mix is a splitmix64-style hash of two words: neighbouring sequence numbers must seed unrelated
// streams.
func mix(a, b uint64) uint64 {
	x := a ^ (b * 0xbf58476d1ce4e5b9)
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

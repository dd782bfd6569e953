// Package auction decides, for one impression, which of the eligible offers the bidder makes and at
// what price: deals before the open auction, floors in the account currency, private auctions
// honoured, and the pricing step that distinguishes first-price auctions (where bid shading applies)
// from second-price ones. It does no I/O and allocates nothing.
package auction

import "math"

// Offer is one campaign's candidate bid for one imp.
type Offer struct {
	Rank     int    // the campaign's rank in the bidder's index
	Creative int    // index of the creative within the campaign
	Value    int64  // what the impression is worth to the campaign, account micros CPM
	Price    int64  // the bid, account micros CPM
	DealID   string // set for a deal offer
}

// Shader picks a first-price bid for a value in one segment of inventory: exchange, and segment as
// "FORMAT|INVENTORY" (see events.Event.Segment). Implementations must be safe for concurrent use and
// must not allocate: they run on the bid path. The bid-shading models implement it.
type Shader interface {
	Shade(exchange, segment string, value, floor int64) int64
}

// NoShading bids the full value: the safe default until a model has learned the market.
type NoShading struct{}

// Shade implements Shader.
func (NoShading) Shade(_, _ string, value, _ int64) int64 { return value }

// Price turns a value into a bid. Second-price auctions are bid truthfully (the exchange charges the
// second price); first-price auctions go through the shader. The bid never exceeds the value and
// never falls below the floor; ok is false when the value does not clear the floor.
func Price(s Shader, exchange, segment string, firstPrice bool, value, floor int64) (bid int64, ok bool) {
	if value <= 0 || value < floor {
		return 0, false
	}
	if !firstPrice || s == nil {
		return value, true
	}
	bid = s.Shade(exchange, segment, value, floor)
	return min(max(bid, floor), value), true
}

// Best keeps the best offer of one auction phase. Ties go to the earlier offer, which is the one of
// lower rank, so results are reproducible.
type Best struct {
	Offer Offer
	Have  bool
}

// Consider records o if it beats the best so far.
func (b *Best) Consider(o Offer) {
	if !b.Have || o.Price > b.Offer.Price {
		b.Offer, b.Have = o, true
	}
}

// Beatable reports whether a candidate that can bid at most bound could still beat the best offer;
// candidates come in descending bound, so the first false ends the phase.
func (b *Best) Beatable(bound int64) bool { return !b.Have || bound > b.Offer.Price }

// Resolve chooses between the phases of one imp: a deal offer wins over the open auction; a private
// auction admits only deal offers.
func Resolve(deal, open *Best, privateAuction bool) (Offer, bool) {
	if deal.Have {
		return deal.Offer, true
	}
	if privateAuction || !open.Have {
		return Offer{}, false
	}
	return open.Offer, true
}

// CPCValue is the worth of an impression to a campaign paying per click: target CPC × predicted CTR,
// per mille, in micros.
func CPCValue(cpcMicros int64, ctr float64) int64 {
	if ctr <= 0 || cpcMicros <= 0 {
		return 0
	}
	return int64(math.Floor(float64(cpcMicros) * ctr * 1000))
}

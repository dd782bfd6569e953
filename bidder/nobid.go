package bidder

// noBid is how far a campaign got towards a bid on one imp, in the order the bid path checks: a
// request that ends without a bid is given the furthest stage any campaign reached on any of its
// imps, because that campaign is the one that came closest and so names what stopped the bid
// ("floor" says some campaign wanted the imp but valued it under the floor; "no_match" says none
// even wanted it). The values up to nbFloor are stages; nbOffer marks an offer made; nbDeadline and
// nbShed are request-level. Each is one value of rtb_no_bid_total's reason label, so the set is
// fixed and small.
type noBid uint8

const (
	nbNone     noBid = iota // nothing looked at yet (counted as no_match)
	nbCurrency              // no currency we can bid in, or a floor in a currency we do not know
	nbNoMatch               // not a candidate: targeting, flight, dayparts, or no creative fits the imp
	nbBlocked               // a fitting creative, blocked by bcat/battr, badv, bapp, wseat/bseat or a deal's wseat/wadomain
	nbCapped                // frequency cap reached, the request names no user, or caps still warming up
	nbPaced                 // not admitted by pacing: throttled, budget reached, or pacing state stale
	nbFloor                 // the campaign's value (after the pacing multiplier, at most max_bid) below the floor
	nbOffer                 // an offer was made (not a reason: the imp gets a bid unless the offer is dropped)
	nbDeadline              // the request's deadline (budget or tmax) passed
	nbShed                  // refused unread: too many requests in flight
	numNoBid
)

var noBidNames = [numNoBid]string{
	nbCurrency: "currency", nbNoMatch: "no_match", nbBlocked: "blocked", nbCapped: "capped",
	nbPaced: "paced", nbFloor: "floor", nbDeadline: "deadline", nbShed: "shed",
}

func (r noBid) String() string {
	if r == nbOffer {
		return "offer"
	}
	return noBidNames[r]
}

const noBidHelp = "Bid requests answered 204 (no bid), by reason. A request's reason is the furthest stage any " +
	"campaign reached on any of its imps, in the order the bidder checks: currency (no currency we can bid in, " +
	"or a floor in an unknown one) < no_match (no campaign targets the request, is in flight and dayparts, and " +
	"has a creative that fits) < blocked (bcat, battr, badv, bapp, wseat, bseat, a deal's wseat or wadomain) < " +
	"capped (frequency cap, no user, caps warming up) < paced (throttled by pacing, budget reached, state stale) < " +
	"floor (value below the floor, or the price rounds to 0 in the response currency). " +
	"deadline (budget or tmax passed) and shed (overload) are request-level. " +
	"Invalid requests are 400s, counted in rtb_bid_request_errors_total, not here. " +
	"The sum over reasons equals rtb_bid_requests_total of outcomes nobid, timeout and shed."

// reach records that campaign rank r got as far as st on the imp being auctioned; why names the
// check for explanations (a constant, so that the bid path pays nothing for it).
func (s *scratch) reach(r int, st noBid, why string) {
	if st > s.stage {
		s.stage = st
	}
	if s.x != nil {
		s.x.note(r, st, why, 0, 0)
	}
}

// reason is why the request just served got no bid.
func (s *scratch) reason() noBid {
	switch s.stage {
	case nbNone:
		return nbNoMatch
	case nbOffer:
		// Every offer was dropped when it was written (appendBid).
		if s.dropped == nbNone {
			return nbFloor
		}
		return s.dropped
	}
	return s.stage
}

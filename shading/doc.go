// Package shading learns first-price bid shading from auction outcomes and brings the models to
// every bidder. The models themselves (a censored log-normal of the highest competing bid per
// segment, and the surplus-maximising bid under it) are in package auction; see auction/shading.go
// for which model and why.
//
// Trainer consumes rtb.wins, rtb.losses and rtb.bids as a consumer group, keeps a bounded recent
// window of competitive outcomes per model key (exchange|format|inventory, exchange|format,
// exchange, and any), refits the keys with new data every interval and publishes each model to the
// compacted rtb.models, key = auction.ModelKey.String(). Reader, in every bidder, follows
// rtb.models and swaps the set of models into an auction.LearnedShader.
//
// Why it is built the way it is:
//
// Only competitive outcomes are evidence about the highest competing bid: a win notice (it was
// below our bid), a loss to a higher bid (102), to a deal (103) or of no stated reason (0) (at or
// above our bid, or at the minimum bid to win where the exchange says it). A loss below the floor,
// an invalid bid or a filtered creative says nothing about competitors and is ignored; so is
// anything bid for a deal, whose price is agreed, not competed for.
//
// One outcome is one observation whatever arrives: observations are keyed by request id + imp id +
// campaign, so a retried notice (same event id, also caught by the consumer's dedupe), a win and a
// loss for the same imp, or a bid and its outcome count once. For an exchange that sends no loss
// notices (TrainerConfig.InferLossExchanges) losses are inferred from the sampled bid log instead:
// a sampled bid with no win within OutcomeWait lost, at or above its bid. There, only outcomes of
// sampled bids count (wins of unsampled bids would otherwise outnumber the inferred losses and
// bias the market low); elsewhere the bid log adds nothing the notices do not say.
//
// The window per key is the last Window observations no older than MaxAge, optionally weighted by
// a half-life, so a model follows a moving market and memory is bounded; the number of keys is
// bounded too (MaxKeys), and so is what is remembered of outcomes (MaxPending): the ids of the last
// ones where notices say everything (a repeat older than that would count twice, nothing is
// dropped), the bids and outcomes waiting for each other where losses are inferred (beyond it
// they are dropped, and counted). A trainer's windows live in memory: a restarted trainer starts empty and
// publishes again once keys have enough new data, while bidders keep the last published models
// until they go stale. Run one trainer per cluster: the consumer group would split one segment's
// outcomes (keyed by campaign) over several, and each would publish its own fit.
package shading

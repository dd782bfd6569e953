// Package pacing is budget pacing: every control interval (default 1 s) its Controller turns the
// billed spend and the bid opportunities of each campaign into an admission probability (Throttle,
// 0..1) and a bid Multiplier that spend the campaign's daily budget along a target curve through the
// day (evenly by default, or following the traffic shape of earlier days) and never more than its
// daily or lifetime budget, however many bidders act on them.
//
// The Controller is pure: no Kafka, no HTTP, no clock, no randomness. Every output is a function of
// the calls made (SetBudgets, Spend, Traffic, Restore, Update and the times passed to them), so
// tests drive whole simulated days in milliseconds, and a pacer that restarts and replays the same
// events books the same spend. The service around it (the event consumer, the publisher of
// rtb.pacing, the read model for campaign managers) feeds it and publishes its States. The sim
// subpackage is a market simulator that drives a Controller the way bidders and exchanges do, for
// tests and demonstrations.
//
// # Method, and why
//
// Actuator: probabilistic throttling, as in LinkedIn's budget pacing (Agarwal et al., "Budget Pacing
// for Targeted Online Advertisements at LinkedIn", KDD 2014) and Yahoo's smart pacing (Xu et al.,
// "Smart Pacing for Effective Online Ad Campaign Optimization", KDD 2015). Each bidder admits a
// candidate campaign into a request's auction with probability Throttle. We throttle rather than
// shade bids for the reasons Xu et al. give: the admission probability scales spend directly
// (spend ≈ Throttle × opportunities × spend per admitted opportunity) whatever the auction's price
// landscape; reserve prices and first-price auctions make the spend response to a lower bid
// unpredictable; and it leaves the bid price to the value and shading models instead of fighting
// them. Because every bidder applies the same probability independently, the fleet admits
// Throttle × the fleet's traffic: the number of bidders needs no coordination.
//
// Target curve: the campaign's budget for the day times F(t), the fraction of the day's budget that
// should be spent by t. F is the elapsed fraction of the day by default (even delivery); with
// Config.UseTrafficShape it is the cumulative traffic shape learned from the campaign's earlier full
// days (LinkedIn's idea: spend should follow the opportunities, so that the campaign reaches the whole
// day's audience at the same rate and buys cheaper night traffic only in proportion).
//
// Control law: Xu et al.'s adaptive, model-based rate update rather than LinkedIn's fixed
// multiplicative step or a plain PID loop. Each interval the controller estimates the spend that full
// admission would produce in the next interval, E = k × λ, where λ is the recent rate of opportunities
// (from Traffic) and k the spend per admitted opportunity (spend ÷ (throttle in force × opportunities),
// a ratio of exponentially weighted sums). The throttle is then the planned spend for the interval in
// which bidders will apply it divided by E:
//
//	Throttle = [ T(t+L+Δ) − T(t+L) + (T(t+L) − Â(t+L)) / N ] / E
//
// where T is the target curve, L how stale the state the bidders act on may be, Δ the interval, Â the
// estimated spend incurred by t+L (reported spend + spend the model expects but not yet reported +
// spend committed under throttles already issued) and N the catch-up horizon in intervals (1/96 of a
// day). The first term is feedforward: it follows the target and the traffic swings of the day at
// once, where a PID loop on the spend error reacts only after the error has built up, and
// LinkedIn's ±α step fluctuates around the curve and is slow after traffic changes (as Xu et al.
// report against it). The second term is integral action on the spend rate error and removes what
// the model gets wrong (k drifting, traffic misforecast). Neither term needs per-campaign tuning:
// gains are expressed in the campaign's own spend, time constants in fractions of the day.
// Predicting the unreported and committed spend from the model (a Smith predictor) is what keeps
// the loop stable although spend is reported up to NoticeDelay late and acted on L late. Xu et al.'s
// layers (separate throttles by predicted response rate) are not used: the pacer has no per-request
// quality signal, and the bidder's value model already prices quality.
//
// Bid multiplier: 1 normally. When admission is already full (Throttle 1) and the campaign is still
// behind its target, the multiplier rises slowly up to Config.MaxMultiplier so the campaign wins more
// of the auctions it enters; it falls back to 1 as soon as throttling has room again. Raising bids is
// the only lever left when there is not enough traffic, and doing it only then keeps prices paid
// as low as throttling allows.
//
// # Budget exhaustion
//
// Spend reported late and bidders acting on old state mean that at every step some spend is already
// committed that the controller cannot stop: the spend incurred but not yet reported (up to
// NoticeDelay), spend in the next L under throttles already issued, and the interval each bidder
// spends under the throttle being issued before a following zero reaches it. The controller takes
// each at a pessimistic spend rate (1.5 × the estimate, and the latest traffic if higher), bounds
// their sum as a count of wins (four standard deviations and two wins of margin, with the average
// Spend event as the size of a win) and caps the throttle so that reported spend plus that bound
// never exceeds the day's budget; a campaign at or over its budget gets Throttle 0 at once. The day's
// budget is the daily budget, or what remains of the lifetime Total if less, so neither is exceeded.
// The reserve is a few intervals of paced spend, so paced days end a fraction of a percent under
// budget.
//
// # Days
//
// With Config.DayLength 24h a campaign's day runs from local midnight to the next in its Budget
// Location (DST days last 23 or 25 hours). Any other DayLength (a compressed day for demonstrations,
// `rtb serve --day-length 10m`) makes days consecutive windows of that length from Config.Epoch, in
// every zone alike. Spend is booked to the day its event time falls in, so a notice for 23:59:59
// arriving after midnight counts for the day before. At rollover today's spend starts from what was
// already booked to the new day and the plan starts over; the finished day's traffic, if the
// campaign was live for (almost) all of it, updates the learned traffic shape.
//
// Budgets edited during the day, campaigns added during the day and campaigns resuming after a pause
// or at their flight start re-plan: what remains of the day's budget is spread along the target curve
// over what remains of the day (or of the flight, if it ends first), rather than catching up in a
// burst. A budget lowered below the day's spend reports budget_reached with Throttle 0 at the next
// Update.
//
// # What callers must do
//
// Bidders: count every request in which the campaign passed targeting and reached the pacing gate
// (before the throttle draw, and also while the throttle is 0) and get the counts to the pacer's
// Traffic; admit the campaign with probability Throttle (a fresh uniform draw per request); multiply
// the bid by Multiplier before capping it at the campaign's max bid; stop admitting a campaign whose
// state is past its ValidUntil (the pacer or its feed is down), or accept that it may overspend.
//
// The pacer: feed billed spend with its event time through Spend, one call per billed impression
// (the reserve's noise bound takes the average Spend as the size of one win, so pre-aggregated spend
// only makes it more cautious); call SetBudgets before replaying the log after a restart; run
// Update every Interval. Spend must arrive within Config.NoticeDelay of its event time (default 1 s)
// and bidders act on states at most Config.StateDelay old (default one interval): set both to the
// real worst case of the notice pipeline and of the state feed. Spend later than NoticeDelay is still
// booked but was not reserved for; Stats counts it. In simulation the budget held with spend up to
// twice NoticeDelay late and bidders three intervals behind; at five times NoticeDelay the steepest
// approach to a budget overshot by 2%.
package pacing

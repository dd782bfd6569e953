package pacing

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// APIHandler serves GET /api/pacing: the read model as JSON, for the dashboard and for scripts.
//
// Query parameters:
//   - campaign=ID: only that campaign (repeat it, or separate ids with commas, for several); an id
//     the model does not hold is left out, so the answer may be an empty list.
//   - series=false: leave out each campaign's series (a lighter answer for polling scripts).
//
// The answer is {"generated_at": time, "campaigns": [...]}, campaigns sorted by id, each with:
//
//	id                      campaign id
//	name                    display name (the id when the campaign has none)
//	status                  the controller's status: pacing (on its target curve, throttled as
//	                        needed), under_delivering (bidding in every auction it can and still
//	                        projected short of the day's budget), budget_reached (today's or the
//	                        lifetime budget is spent, or reserved for spend in flight; not bidding),
//	                        paused (paused, or outside its flight dates; not bidding)
//	stale                   true when generated_at is more than 5 s past valid_until: the pacer's
//	                        updates stopped, and the figures are old
//	day_start, day_end      the campaign's current day (in its time zone when days are 24 h)
//	updated_at              when the controller computed this state
//	valid_until             when bidders stop acting on it (see State.ValidUntil)
//	age_seconds             generated_at − updated_at
//	daily_budget            today's budget: the daily budget, or what remains of the total if less
//	spent_today             billed spend booked to today so far
//	target_today            what the target curve says should be spent by now
//	projected_today         expected spend by the end of the day at the current pace
//	spent_total             lifetime spend
//	total_budget            lifetime budget; null when there is none
//	pace                    spent_today / target_today (1 = on target); null while the target is 0
//	throttle                share of eligible auctions the campaign enters, 0..1
//	bid_multiplier          factor on its bids, ≥ 1 (above 1 only when throttle 1 is not enough)
//	series                  [{at, spent_micros, target_micros}]: the day so far, at most 288 points,
//	                        the latest state in each 1/288 of the day (5 minutes of a 24-hour day);
//	                        it starts over when a new day starts
//
// Money: every amount is given twice, as integer micros of the account currency in the field named
// with a `_micros` suffix (daily_budget_micros: 500000000), exact and the unit the rest of rtb uses,
// and as a decimal string of currency units in the plain field (daily_budget: "500.00"), exact, with
// at least two decimals, for people and spreadsheets. Series points carry micros only. Times are
// RFC 3339. The answer is never cached (Cache-Control: no-store).
func (m *ReadModel) APIHandler() http.Handler {
	return http.HandlerFunc(m.serveAPI)
}

func (m *ReadModel) serveAPI(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	var only map[string]bool
	if ids, ok := q["campaign"]; ok {
		only = make(map[string]bool)
		for _, v := range ids {
			for id := range strings.SplitSeq(v, ",") {
				if id = strings.TrimSpace(id); id != "" {
					only[id] = true
				}
			}
		}
	}
	series := true
	if v := q.Get("series"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			http.Error(w, "series: want true or false", http.StatusBadRequest)
			return
		}
		series = b
	}
	body, err := json.Marshal(m.snapshot(m.now(), only, series))
	if err != nil { // cannot happen: view keeps NaN and ±Inf out
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(append(body, '\n'))
}

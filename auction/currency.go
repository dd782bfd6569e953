package auction

import "math"

// Account is the account currency: budgets, values and bids are micros of it.
const Account = "USD"

// rates are units of each currency per one USD. The table is fixed on purpose: floors must convert the
// same way on every bidder and in every test, and a bidder must not depend on a rates feed to answer.
var rates = map[string]float64{
	"USD": 1,
	"EUR": 0.92,
	"GBP": 0.79,
	"JPY": 150,
	"CAD": 1.36,
	"AUD": 1.52,
	"CHF": 0.88,
	"CNY": 7.2,
	"INR": 83,
	"BRL": 5.0,
	"MXN": 17,
	"SEK": 10.5,
	"NOK": 10.6,
	"DKK": 6.9,
	"PLN": 4.0,
	"KRW": 1350,
}

// Known reports whether cur is in the currency table ("" means the OpenRTB default, USD).
func Known(cur string) bool {
	if cur == "" {
		return true
	}
	_, ok := rates[cur]
	return ok
}

// FloorMicros converts a floor of amount in cur (per mille) to account micros, rounding up so that a
// bid equal to the converted floor never falls below the exchange's floor. ok is false for an unknown
// currency: the bidder cannot know whether it clears such a floor, so it does not bid.
func FloorMicros(amount float64, cur string) (micros int64, ok bool) {
	if amount <= 0 {
		return 0, true
	}
	r := 1.0
	if cur != "" && cur != Account {
		if r, ok = rates[cur]; !ok {
			return 0, false
		}
	}
	// Round away the float noise of amounts like 0.29 before rounding up.
	m := math.Ceil(math.Round(amount/r*1e9) / 1e3)
	if !(m < math.MaxInt64) {
		// Too large for int64 (or NaN, +Inf): converting would wrap to a negative floor that every
		// bid clears. No bid can clear it.
		return math.MaxInt64, true
	}
	return int64(m), true
}

// FromAccount converts account micros to micros of cur, rounding down so that a converted bid never
// exceeds what the campaign values. ok is false for an unknown currency.
func FromAccount(micros int64, cur string) (int64, bool) {
	if cur == "" || cur == Account {
		return micros, true
	}
	r, ok := rates[cur]
	if !ok {
		return 0, false
	}
	return int64(math.Floor(float64(micros) * r)), true
}

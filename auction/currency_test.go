package auction

import (
	"math"
	"sort"
	"testing"
)

func TestKnown(t *testing.T) {
	for _, cur := range []string{"", "USD", "EUR", "GBP", "JPY", "KRW"} {
		if !Known(cur) {
			t.Errorf("Known(%q) = false, want true", cur)
		}
	}
	// Codes are ISO 4217 as OpenRTB sends them: upper case only.
	for _, cur := range []string{"XXX", "usd", "eur", "US", "USDX", " USD"} {
		if Known(cur) {
			t.Errorf("Known(%q) = true, want false", cur)
		}
	}
	for cur := range rates {
		if !Known(cur) {
			t.Errorf("Known(%q) = false for a currency of the table", cur)
		}
	}
}

func TestFloorMicros(t *testing.T) {
	tests := []struct {
		amount float64
		cur    string
		want   int64
		ok     bool
	}{
		{0.29, "USD", 290_000, true}, // 0.29*1e6 is 289999.99999999994 in float64
		{0.29, "", 290_000, true},    // "" is the OpenRTB default, USD
		{0.57, "USD", 570_000, true}, // 0.57*1e6 is 569999.9999999999
		{0.1 + 0.2, "USD", 300_000, true},
		{1, "USD", 1_000_000, true},
		{1.000001, "USD", 1_000_001, true},
		{1.0000001, "USD", 1_000_001, true},    // a tenth of a micro rounds up
		{1.0000000001, "USD", 1_000_000, true}, // 1e-4 micro: float noise, below the 1e-3 micro grain
		{1.0000011, "USD", 1_000_002, true},    // 1.1 micro rounds up
		{1, "EUR", 1_086_957, true},            // 1e6/0.92 = 1086956.52… rounds up
		{0.92, "EUR", 1_000_000, true},         // exactly one USD
		{150, "JPY", 1_000_000, true},          // exactly one USD
		{1, "JPY", 6_667, true},                // 6666.67 rounds up
		{100, "JPY", 666_667, true},            // 666666.67 rounds up
		{1350, "KRW", 1_000_000, true},         //
		{0.79, "GBP", 1_000_000, true},         //
		{2.5, "GBP", 3_164_557, true},          // 3164556.96…
		{10.6, "NOK", 1_000_000, true},         // 10.6 is below its float64 value
		{0, "USD", 0, true},                    // no floor
		{0, "EUR", 0, true},                    //
		{-1, "USD", 0, true},                   // a negative floor is no floor
		{-0.5, "JPY", 0, true},                 //
		{1, "XXX", 0, false},                   // unknown currency: no bid
		{1, "usd", 0, false},                   // lower case is not ISO 4217
		{0.01, "XYZ", 0, false},                //
		{1e13, "USD", math.MaxInt64, true},     // 1e19 micros does not fit int64: unreachable, not negative
		{1e300, "EUR", math.MaxInt64, true},    //
		{math.Inf(1), "USD", math.MaxInt64, true},
		{math.NaN(), "USD", math.MaxInt64, true}, // a floor that cannot be read cannot be cleared
		{9e12, "USD", 9_000_000_000_000_000_000, true},
	}
	for _, tt := range tests {
		got, ok := FloorMicros(tt.amount, tt.cur)
		if got != tt.want || ok != tt.ok {
			t.Errorf("FloorMicros(%v, %q) = %d, %v; want %d, %v", tt.amount, tt.cur, got, ok, tt.want, tt.ok)
		}
	}
}

// Every whole-cent USD floor converts to exactly cents*10_000 micros, float noise notwithstanding.
func TestFloorMicrosCentsExact(t *testing.T) {
	for cents := int64(1); cents <= 1_000_000; cents++ {
		f := float64(cents) / 100
		if got, ok := FloorMicros(f, "USD"); !ok || got != cents*10_000 {
			t.Fatalf("FloorMicros(%v, USD) = %d, %v; want %d", f, got, ok, cents*10_000)
		}
	}
}

func TestFromAccount(t *testing.T) {
	tests := []struct {
		micros int64
		cur    string
		want   int64
		ok     bool
	}{
		{1_000_000, "USD", 1_000_000, true},
		{1_000_000, "", 1_000_000, true},
		{1_000_000, "EUR", 920_000, true},
		{1_000_000, "JPY", 150_000_000, true},
		{1_086_957, "EUR", 1_000_000, true}, // 1000000.44 rounds down
		{1, "EUR", 0, true},                 // 0.92 rounds down
		{3, "GBP", 2, true},                 // 2.37 rounds down
		{0, "EUR", 0, true},
		{1_000_000, "XXX", 0, false},
		{1_000_000, "eur", 0, false},
	}
	for _, tt := range tests {
		got, ok := FromAccount(tt.micros, tt.cur)
		if got != tt.want || ok != tt.ok {
			t.Errorf("FromAccount(%d, %q) = %d, %v; want %d, %v", tt.micros, tt.cur, got, ok, tt.want, tt.ok)
		}
	}
}

// For a floor f in currency C, a bid of FloorMicros(f, C) converted back with FromAccount is never
// below f (the exchange would reject it), and one micro less would be (the floor is not overpaid).
// Checked for every cent from 0.01 to 50.00 in every currency of the table.
func TestFloorRoundTrip(t *testing.T) {
	curs := make([]string, 0, len(rates)+1)
	for cur := range rates {
		curs = append(curs, cur)
	}
	sort.Strings(curs)
	curs = append(curs, "")
	for _, cur := range curs {
		for cents := int64(1); cents <= 5000; cents++ {
			f := float64(cents) / 100
			want := cents * 10_000 // f in micros of cur
			m, ok := FloorMicros(f, cur)
			if !ok {
				t.Fatalf("FloorMicros(%v, %q) not ok", f, cur)
			}
			back, ok := FromAccount(m, cur)
			if !ok {
				t.Fatalf("FromAccount(%d, %q) not ok", m, cur)
			}
			if back < want {
				t.Errorf("%s %v: floor %d account micros converts back to %d < %d", cur, f, m, back, want)
			}
			if below, _ := FromAccount(m-1, cur); below >= want {
				t.Errorf("%s %v: floor %d account micros is not the least: %d already converts back to %d >= %d",
					cur, f, m, m-1, below, want)
			}
		}
	}
}

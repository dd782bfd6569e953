package loadtest

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestMarketDrawsCommonRandomNumbers(t *testing.T) {
	type key struct {
		seed, seq uint64
		imp       int
	}
	keys := []key{{1, 0, 0}, {1, 0, 1}, {1, 1, 0}, {2, 0, 0}, {1, 1 << 40, 2}, {7, 12345, 0}}
	// The same key gives the same draws whatever was drawn before it and on whichever goroutine.
	forward := map[key]draws{}
	for _, k := range keys {
		forward[k] = drawsFor(k.seed, k.seq, k.imp)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := len(keys) - 1; i >= 0; i-- {
		k := keys[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = drawsFor(k.seed+100, k.seq*3, 5) // unrelated draws in between change nothing
			d := drawsFor(k.seed, k.seq, k.imp)
			mu.Lock()
			defer mu.Unlock()
			if d != forward[k] {
				t.Errorf("%+v: %+v, then %+v", k, forward[k], d)
			}
		}()
	}
	wg.Wait()
	// Different keys, different draws.
	seen := map[float64]key{}
	for _, k := range keys {
		z := forward[k].z
		if other, dup := seen[z]; dup {
			t.Errorf("%+v and %+v drew the same z %v", k, other, z)
		}
		seen[z] = k
	}
	// Over neighbouring sequence numbers the draws have the distributions the market assumes.
	const n = 20000
	var sz, szz, sc, sd float64
	var dups int
	for seq := range uint64(n) {
		d := drawsFor(1, seq, 0)
		sz += d.z
		szz += d.z * d.z
		sc += d.click
		sd += d.delay
		if d.dupped(0, 0.1) {
			dups++
		}
	}
	if m := sz / n; math.Abs(m) > 0.03 {
		t.Errorf("mean z %.3f, want 0", m)
	}
	if v := szz / n; math.Abs(v-1) > 0.05 {
		t.Errorf("var z %.3f, want 1", v)
	}
	if math.Abs(sc/n-0.5) > 0.01 || math.Abs(sd/n-0.5) > 0.01 {
		t.Errorf("mean click %.3f, delay %.3f, want 0.5", sc/n, sd/n)
	}
	if math.Abs(float64(dups)/n-0.1) > 0.01 {
		t.Errorf("dup share %.3f, want 0.1", float64(dups)/n)
	}
}

func TestMarketCapViolations(t *testing.T) {
	const w = 100
	for _, tc := range []struct {
		name  string
		times []int64
		n     int
		want  int
	}{
		{"none", nil, 1, 0},
		{"at the cap", []int64{0, 10, 20}, 3, 0},
		{"one over", []int64{0, 10, 20, 30}, 3, 1},
		{"unsorted", []int64{30, 0, 20, 10}, 3, 1},
		{"window end is exclusive: t=open+window opens a new window", []int64{0, 50, 100, 150}, 2, 0},
		{"one before the end is still in the window", []int64{0, 50, 99}, 2, 1},
		{"the next window opens at the next impression, not at open+window", []int64{0, 150, 200, 240}, 2, 1},
		{"not a sliding window: 2 in [50,150) across two windows is fine", []int64{0, 90, 110, 180}, 2, 0},
		{"every impression past the cap counts", []int64{0, 1, 2, 3, 4}, 1, 4},
		{"simultaneous", []int64{5, 5, 5}, 2, 1},
		{"violations in several windows", []int64{0, 1, 2, 100, 101, 102}, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := capViolations(tc.times, tc.n, w); got != tc.want {
				t.Errorf("capViolations(%v, %d, %d) = %d, want %d", tc.times, tc.n, w, got, tc.want)
			}
		})
	}
}

func TestMarketSurplus(t *testing.T) {
	for _, tc := range []struct {
		name             string
		value, price     float64
		wantPerWin       float64
		cpc, ctr, value2 float64
	}{
		{name: "fixed_cpm above price", value: 2.0, price: 1.5, wantPerWin: 0.0005},
		{name: "overpaid", value: 2.0, price: 2.6, wantPerWin: -0.0006},
		{name: "at value", value: 3.0, price: 3.0, wantPerWin: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := surplusOf(tc.value, tc.price); math.Abs(got-tc.wantPerWin) > 1e-12 {
				t.Errorf("surplusOf(%v, %v) = %v, want %v", tc.value, tc.price, got, tc.wantPerWin)
			}
		})
	}
	// target_cpc: 1.50 a click at a true CTR of 0.2% is worth 3.00 per mille.
	if v := surplusValue(1.5, 0.002); math.Abs(v-3) > 1e-12 {
		t.Errorf("surplusValue(1.5, 0.002) = %v, want 3", v)
	}

	// From the admin API as rtb serve writes it: money as JSON numbers, windows as Go durations.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/campaigns" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"source": "test", "loaded_at": time.Now(), "indexed": 3,
			"campaigns": []any{
				json.RawMessage(`{"id":"fixed","bid":{"type":"fixed_cpm","cpm":2.5,"max_bid":3},"budget":{"daily":500,"timezone":"UTC"},"frequency_cap":{"impressions":20,"window":"24h0m0s"}}`),
				json.RawMessage(`{"id":"cpc","bid":{"type":"target_cpc","cpc":1.5,"ctr":0.004,"max_bid":4},"budget":{"daily":0.25}}`),
				json.RawMessage(`{"id":"odd","bid":{"type":"something_new","max_bid":1},"budget":{"daily":1}}`),
			}})
	}))
	defer srv.Close()
	camps, src, err := fetchCampaigns(srv.URL, Param{Default: 0.002, By: map[string]float64{"cpc": 0.01}})
	if err != nil || src != "test" {
		t.Fatal(src, err)
	}
	f, c, o := camps["fixed"], camps["cpc"], camps["odd"]
	if f == nil || !f.hasValue || f.value != 2.5 || f.daily != 500 || f.capN != 20 || f.capWindow != 24*time.Hour {
		t.Errorf("fixed: %+v", f)
	}
	// The true CTR (--ctr), not the bidder's prior 0.004, values the click: 1.5 × 0.01 × 1000 = 15.
	if c == nil || !c.hasValue || math.Abs(c.value-15) > 1e-9 || c.daily != 0.25 || c.capN != 0 {
		t.Errorf("cpc: %+v", c)
	}
	if o == nil || o.hasValue {
		t.Errorf("a strategy the simulator cannot value must stay unvalued: %+v", o)
	}
	if _, _, err := fetchCampaigns("http://127.0.0.1:1", Param{}); err == nil {
		t.Error("unreachable admin: no error")
	}
}

func TestLoadgenDiurnalProfile(t *testing.T) {
	var sum float64
	peak := 0
	for h, v := range DiurnalProfile {
		if v <= 0 || v > 1 {
			t.Fatalf("hour %d: %v, want (0,1]", h, v)
		}
		if v > DiurnalProfile[peak] {
			peak = h
		}
		sum += v
	}
	if peak < 18 || peak > 22 || DiurnalProfile[peak] != 1 {
		t.Errorf("peak at %02d:00 (%v), want 1 in the evening", peak, DiurnalProfile[peak])
	}
	night := min(DiurnalProfile[2], DiurnalProfile[3], DiurnalProfile[4])
	if night > 0.25 {
		t.Errorf("night low %v, want ≤ 0.25 of peak", night)
	}
	const day = 24 * time.Second // a "hour" a second: the schedule below is computed, not waited for
	if got := profileShare(&DiurnalProfile, 0, day, day); math.Abs(got-sum/24) > 1e-12 {
		t.Errorf("share of a whole day %v, want the mean %v", got, sum/24)
	}
	for _, tc := range []struct {
		name     string
		from, to time.Duration
		want     float64
	}{
		{"first hour", 0, time.Second, DiurnalProfile[0] / 24},
		{"half of hour 20", 20 * time.Second, 20500 * time.Millisecond, 0.5 / 24},
		{"last two hours", 22 * time.Second, day, (DiurnalProfile[22] + DiurnalProfile[23]) / 24},
	} {
		if got := profileShare(&DiurnalProfile, tc.from, tc.to, day); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	// The scheduler's intended times, stepped through a whole day: each hour holds rate × hour ×
	// profile requests, and the day rate × day × mean.
	const rate = 1000.0
	cfg := Config{Rate: rate, DayLength: day}
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	var perHour [24]int
	total := 0
	for at := time.Duration(0); at < day; at = cfg.nextAt(at) {
		perHour[hourOf(at, day)]++
		total++
	}
	for h, n := range perHour {
		if want := rate * DiurnalProfile[h]; math.Abs(float64(n)-want) > 1.5 {
			t.Errorf("hour %02d: %d requests, want %.0f", h, n, want)
		}
	}
	if want := rate * day.Seconds() * sum / 24; math.Abs(float64(total)-want) > 24 {
		t.Errorf("%d requests in the day, want %.0f", total, want)
	}
	flat := Config{Rate: rate, DayLength: day, FlatDay: true}
	_ = flat.defaults()
	if r := flat.rateAt(3 * time.Second); r != rate {
		t.Errorf("flat day rate %v", r)
	}
}

func TestLoadgenDayAlignment(t *testing.T) {
	const d = 10 * time.Minute
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name       string
		now        string
		length     time.Duration
		startNow   bool
		wantStart  string
		wantOffset time.Duration
	}{
		{"waits for the next day", "2026-11-23T10:03:20Z", d, false, "2026-11-23T10:10:00Z", 0},
		{"at a day start it starts now", "2026-11-23T10:10:00Z", d, false, "2026-11-23T10:10:00Z", 0},
		{"just after a day start waits a whole day", "2026-11-23T10:10:00.000000001Z", d, false, "2026-11-23T10:20:00Z", 0},
		{"now: the rest of the current day", "2026-11-23T10:03:20Z", d, true, "2026-11-23T10:00:00Z", 200 * time.Second},
		{"days from the epoch, not from the hour", "2026-11-23T10:05:00Z", 7 * time.Minute, true, "2026-11-23T10:03:00Z", 2 * time.Minute},
		{"24h days are UTC days", "2026-11-23T10:03:20+05:00", 24 * time.Hour, true, "2026-11-23T00:00:00Z", 5*time.Hour + 3*time.Minute + 20*time.Second},
		{"before the epoch floors", "1969-12-31T23:55:00Z", d, true, "1969-12-31T23:50:00Z", 5 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start, off := planDay(at(tc.now), tc.length, tc.startNow)
			if !start.Equal(at(tc.wantStart)) || off != tc.wantOffset {
				t.Errorf("planDay(%s, %s, %v) = %s, %s; want %s, %s", tc.now, tc.length, tc.startNow,
					start.UTC().Format(time.RFC3339Nano), off, tc.wantStart, tc.wantOffset)
			}
			if start.UnixNano()%int64(tc.length) != 0 {
				t.Errorf("day start %s is not a multiple of %s from the epoch", start, tc.length)
			}
		})
	}
	for _, tc := range []struct {
		t    time.Duration
		hour int
		hhmm string
	}{
		{0, 0, "00:00"}, {d / 24, 1, "01:00"}, {d/24 - 1, 0, "00:59"}, {d / 2, 12, "12:00"},
		{d - 1, 23, "23:59"}, {d, 23, "24:00"}, {-time.Second, 0, "00:00"},
	} {
		if h, c := hourOf(tc.t, d), clock(tc.t, d); h != tc.hour || c != tc.hhmm {
			t.Errorf("at %s of a %s day: hour %d clock %s, want %d %s", tc.t, d, h, c, tc.hour, tc.hhmm)
		}
	}
}

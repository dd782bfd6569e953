package features

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"rtb/events"
	"rtb/events/eventstest"
)

const upWait = 60 * time.Second

func upBroker(t testing.TB) []string {
	t.Helper()
	return eventstest.Broker(t, nil)
}

// upPublish publishes evs and returns once Kafka has them all.
func upPublish(t testing.TB, brokers []string, evs ...events.Event) {
	t.Helper()
	p, err := events.NewProducer(events.ProducerConfig{Brokers: brokers, SpillDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		p.Publish(&evs[i])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func upEvent(typ events.Type, id, campaign, segment, user string, ts time.Time) events.Event {
	return events.Event{V: events.Version, Type: typ, ID: id, TS: ts, RequestID: "r-" + id, ImpID: "1",
		CampaignID: campaign, Exchange: "x", Segment: segment, User: user}
}

func upUser(id string) string { return fmt.Sprintf("%016x", UserKey(id)) }

// bidderState is one "bidder": its caps, estimates and updater.
type bidderState struct {
	caps *Caps
	ctrs *CTRs
	up   *Updater
	reg  *prometheus.Registry
	stop func()
}

func upStart(t *testing.T, brokers []string) *bidderState {
	t.Helper()
	caps := newTestCaps(t, CapsConfig{})
	ctrs := newTestCTRs(t, CTRConfig{PriorImpressions: 10})
	reg := prometheus.NewRegistry()
	up, err := NewUpdater(UpdaterConfig{
		Brokers: brokers, Caps: caps, CTRs: ctrs, Registerer: reg, Logger: slog.New(slog.DiscardHandler),
		CapWindow: func(id string) (time.Duration, bool) {
			if id == "c-capped" {
				return time.Hour, true
			}
			return 0, false
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- up.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("updater Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("updater did not stop within 30s")
		}
	}
	t.Cleanup(stop)
	select {
	case <-up.Ready():
	case <-time.After(upWait):
		t.Fatal("updater not ready")
	}
	return &bidderState{caps: caps, ctrs: ctrs, up: up, reg: reg, stop: stop}
}

func upWaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(upWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", upWait, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUpdaterFanOut: two bidders' updaters read the same impressions and clicks and end with the
// same caps and estimates; retried notices count once, events older than the lookback not at all,
// uncapped campaigns are not stored in caps; a restarted updater rebuilds the same state from its
// lookback; events after Ready reach both.
func TestUpdaterFanOut(t *testing.T) {
	t.Parallel()
	brokers := upBroker(t)
	now := time.Now().UTC()
	const site, app = "banner-300x250|site", "video|app"
	u1, u2, u3 := upUser("alice"), upUser("bob"), upUser("carol")
	var evs []events.Event
	add := func(typ events.Type, id, campaign, segment, user string, ago time.Duration) {
		evs = append(evs, upEvent(typ, id, campaign, segment, user, now.Add(-ago)))
	}
	add(events.Imp, "i1", "c-capped", site, u1, 50*time.Minute)
	add(events.Imp, "i2", "c-capped", site, u1, 40*time.Minute)
	add(events.Imp, "i2", "c-capped", site, u1, 40*time.Minute) // a retried pixel
	add(events.Imp, "i3", "c-capped", app, u1, 30*time.Minute)
	add(events.Imp, "i4", "c-capped", app, u2, 2*time.Hour) // its window ended an hour ago
	add(events.Imp, "i5", "c-capped", app, u3, 10*time.Minute)
	add(events.Imp, "i6", "c-capped", app, "", 10*time.Minute) // no user: CTR only
	add(events.Imp, "i7", "c-free", site, u1, 10*time.Minute)
	add(events.Imp, "i8", "c-free", site, u1, 9*time.Minute)
	add(events.Click, "k1", "c-capped", site, u1, 49*time.Minute)
	add(events.Click, "k1", "c-capped", site, u1, 49*time.Minute) // a retried click
	add(events.Click, "k2", "c-free", site, u1, 8*time.Minute)
	add(events.Imp, "old", "c-capped", site, u3, 25*time.Hour) // before the lookback
	upPublish(t, brokers, evs...)

	a, b := upStart(t, brokers), upStart(t, brokers)
	wantCaps := map[string]int{u1 + "/c-capped": 3, u2 + "/c-capped": 0, u3 + "/c-capped": 1, u1 + "/c-free": 0}
	checkCaps := func(name string, s *bidderState) {
		t.Helper()
		for k, want := range wantCaps {
			user, camp := k[:16], k[17:]
			key, _ := ParseUserKey(user)
			if got := s.caps.Count(key, camp, time.Now()); got != want {
				t.Errorf("%s: Count(%s, %s) = %d, want %d", name, user, camp, got, want)
			}
		}
		u1k, _ := ParseUserKey(u1)
		if s.caps.Allow(u1k, "c-capped", 3, time.Now()) || !s.caps.Allow(u1k, "c-capped", 4, time.Now()) {
			t.Errorf("%s: Allow disagrees with a count of 3", name)
		}
	}
	wantCTR := []CTREstimate{
		{Campaign: "c-capped", Impressions: 6, Clicks: 1}, // i4's window is over, not its impression
		{Campaign: "c-capped", Segment: site, Impressions: 2, Clicks: 1},
		{Campaign: "c-capped", Segment: app, Impressions: 4},
		{Campaign: "c-free", Impressions: 2, Clicks: 1},
		{Campaign: "c-free", Segment: site, Impressions: 2, Clicks: 1},
	}
	checkCTR := func(name string, s *bidderState) {
		t.Helper()
		got := s.ctrs.Snapshot(func(string) float64 { return 0.01 })
		if len(got) != len(wantCTR) {
			t.Fatalf("%s: snapshot %+v", name, got)
		}
		for i, w := range wantCTR {
			g := got[i]
			if g.Campaign != w.Campaign || g.Segment != w.Segment || g.Impressions != w.Impressions || g.Clicks != w.Clicks {
				t.Errorf("%s: snapshot line %d: %+v, want %+v", name, i, g, w)
			}
		}
	}
	checkCaps("a", a)
	checkCaps("b", b)
	checkCTR("a", a)
	checkCTR("b", b)
	if ea, eb := a.ctrs.Snapshot(nil), b.ctrs.Snapshot(nil); !reflect.DeepEqual(ea, eb) {
		t.Errorf("bidders disagree:\n%+v\n%+v", ea, eb)
	}
	if got := testutil.ToFloat64(a.up.tooOld); got != 1 {
		t.Errorf("too_old = %v, want 1", got)
	}
	if got := testutil.ToFloat64(a.up.noUser); got != 1 {
		t.Errorf("no_user = %v, want 1", got)
	}
	// i1…i8 once each (i2's retry is a duplicate, "old" is before the lookback), k1 and k2.
	if got := testutil.ToFloat64(a.up.imps); got != 8 {
		t.Errorf(`rtb_features_events_total{type="imp"} = %v, want 8`, got)
	}
	if got := testutil.ToFloat64(a.up.clicks); got != 2 {
		t.Errorf(`rtb_features_events_total{type="click"} = %v, want 2`, got)
	}

	// Restart a: a fresh bidder rebuilds the same state from the lookback.
	a.stop()
	a2 := upStart(t, brokers)
	checkCaps("a restarted", a2)
	checkCTR("a restarted", a2)

	// The tail: one more impression for u3 reaches both.
	upPublish(t, brokers, upEvent(events.Imp, "i9", "c-capped", site, u3, time.Now()))
	u3k, _ := ParseUserKey(u3)
	upWaitFor(t, "both bidders to count the new impression", func() bool {
		return a2.caps.Count(u3k, "c-capped", time.Now()) == 2 && b.caps.Count(u3k, "c-capped", time.Now()) == 2
	})
	upWaitFor(t, "both bidders' estimates to count it", func() bool {
		return a2.ctrs.Snapshot(nil)[0].Impressions == 7 && b.ctrs.Snapshot(nil)[0].Impressions == 7
	})
}

func TestNewUpdaterRefusals(t *testing.T) {
	caps := newTestCaps(t, CapsConfig{})
	win := func(string) (time.Duration, bool) { return time.Hour, true }
	for name, cfg := range map[string]UpdaterConfig{
		"nothing to update":    {Brokers: []string{"x:1"}},
		"caps without windows": {Brokers: []string{"x:1"}, Caps: caps},
		"no brokers":           {Caps: caps, CapWindow: win},
		"negative lookback":    {Brokers: []string{"x:1"}, Caps: caps, CapWindow: win, Lookback: -1},
	} {
		if _, err := NewUpdater(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

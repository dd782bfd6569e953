package pacing_test

// Helpers of the tests that run the pacer Service against an embedded broker: the broker, event
// producers, a reader of rtb.pacing, running and stopping services, and bounded waits.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	campaigns "rtb/bidder/campaign"
	"rtb/events"
	"rtb/events/eventstest"
	"rtb/pacing"
)

// testLogger logs warnings and errors to stderr (RTB_TEST_LOG=debug|info for more).
func testLogger() *slog.Logger {
	level := slog.LevelWarn
	switch os.Getenv("RTB_TEST_LOG") {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// startBroker starts an embedded broker (4 partitions per event topic) on a free loopback port and
// closes it when the test ends (as startTestBroker in package events).
func startBroker(t testing.TB) []string {
	t.Helper()
	return eventstest.Broker(t, testLogger())
}

// newProducer returns an events.Producer closed (flushed) when the test ends, if not before.
func newProducer(t testing.TB, brokers []string) *events.Producer {
	t.Helper()
	return newProducerWith(t, brokers, nil)
}

// newProducerWith is newProducer with its metrics on reg.
func newProducerWith(t testing.TB, brokers []string, reg prometheus.Registerer) *events.Producer {
	t.Helper()
	p, err := events.NewProducer(events.ProducerConfig{Brokers: brokers, SpillDir: t.TempDir(), Logger: testLogger(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeProducer(t, p) })
	return p
}

// closeProducer flushes p: once it returns, every event published is on Kafka.
func closeProducer(t testing.TB, p *events.Producer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Errorf("close producer: %v", err)
	}
}

// publishAll publishes evs with a producer of its own and returns once Kafka has them all.
func publishAll(t testing.TB, brokers []string, evs []events.Event) {
	t.Helper()
	p := newProducer(t, brokers)
	for i := range evs {
		p.Publish(&evs[i])
	}
	closeProducer(t, p)
}

// campaignSet is a campaign set with the given daily budgets (micros), all active, in UTC.
func campaignSet(daily map[string]int64) *campaigns.Set {
	ids := make([]string, 0, len(daily))
	for id := range daily {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	set := &campaigns.Set{Source: "test"}
	for _, id := range ids {
		set.Campaigns = append(set.Campaigns, &campaigns.Campaign{ID: id, Name: id, Status: campaigns.StatusActive,
			Budget: campaigns.Budget{Daily: campaigns.Micros(daily[id])}})
	}
	return set
}

// billEvent is a billing notice: price is the CPM in micros, so the impression costs price/1000.
func billEvent(id, campaign string, ts time.Time, price int64) events.Event {
	return events.Event{V: events.Version, Type: events.Bill, ID: id, TS: ts, RequestID: "r-" + id, ImpID: "1",
		CampaignID: campaign, Exchange: "x", PriceMicros: price, BidMicros: price + price/4}
}

// stateFeed reads rtb.pacing as a bidder does and keeps every campaign's latest state.
type stateFeed struct {
	mu     sync.Mutex
	latest map[string]pacing.State
	hb     []pacing.Heartbeat // by partition
	on     func(pacing.State) // called for every state read, under mu
}

// watchStates starts a reader of rtb.pacing, stopped when the test ends, and returns once it has
// read the topic as it was (on, if not nil, sees every state read).
func watchStates(t testing.TB, brokers []string, on func(pacing.State)) *stateFeed {
	t.Helper()
	f := &stateFeed{latest: map[string]pacing.State{}, on: on}
	r := events.NewStateReader(brokers, events.TopicPacing, pacing.Feed{
		State: func(st pacing.State) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if old, ok := f.latest[st.CampaignID]; !ok || st.UpdatedAt.After(old.UpdatedAt) {
				f.latest[st.CampaignID] = st
			}
			if f.on != nil {
				f.on(st)
			}
		},
		Heartbeat: func(h pacing.Heartbeat) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.hb) != h.Partitions {
				f.hb = make([]pacing.Heartbeat, h.Partitions)
			}
			if h.ValidUntil.After(f.hb[h.Partition].ValidUntil) {
				f.hb[h.Partition] = h
			}
		},
		Bad: func(key string, err error) { t.Errorf("rtb.pacing: unreadable record %s: %v", key, err) },
	}.Record)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("state reader: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("state reader did not stop within 30 s")
		}
	})
	select {
	case <-r.Ready():
	case err := <-done:
		t.Fatalf("state reader stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("rtb.pacing not read within 30 s")
	}
	return f
}

// get returns the latest state of id.
func (f *stateFeed) get(id string) (pacing.State, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.latest[id]
	return st, ok
}

// validUntil is until when a bidder acts on id's latest state: its own validity or its partition's
// heartbeat's, as bidder.SetPacingHeartbeat has it.
func (f *stateFeed) validUntil(id string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	until := f.latest[id].ValidUntil
	if len(f.hb) > 0 {
		if h := f.hb[events.PartitionOf(id, len(f.hb))]; h.ValidUntil.After(until) {
			until = h.ValidUntil
		}
	}
	return until
}

// runningService is a Service whose Run goroutine the test controls.
type runningService struct {
	name    string
	svc     *pacing.Service
	rm      *pacing.ReadModel
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

// startService runs a pacer (with a read model of its own, which sees every state it publishes)
// until stop or the end of the test.
func startService(t testing.TB, name string, cfg pacing.ServiceConfig, set *campaigns.Set) *runningService {
	t.Helper()
	cfg.ReadModel = pacing.NewReadModel()
	cfg.ReadModel.SetDayLength(cfg.Controller.DayLength)
	if cfg.Logger == nil {
		cfg.Logger = testLogger().With("pacer", name)
	}
	svc, err := pacing.NewService(cfg, set)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rs := &runningService{name: name, svc: svc, rm: cfg.ReadModel, cancel: cancel, done: make(chan error, 1)}
	go func() { rs.done <- svc.Run(ctx) }()
	t.Cleanup(func() { rs.stop(t) })
	return rs
}

// stop cancels the service and waits (bounded) for Run to return.
func (rs *runningService) stop(t testing.TB) {
	t.Helper()
	if rs.stopped {
		return
	}
	rs.stopped = true
	rs.cancel()
	select {
	case err := <-rs.done:
		if err != nil {
			t.Errorf("pacer %s: Run: %v", rs.name, err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("pacer %s did not stop within 30 s of its context ending", rs.name)
	}
}

// recent returns the campaigns this service published a state for at or after since.
func (rs *runningService) recent(since time.Time) map[string]pacing.State {
	out := map[string]pacing.State{}
	for _, c := range rs.rm.Snapshot(time.Now()).Campaigns {
		if !c.UpdatedAt.Before(since) {
			out[c.ID] = pacing.State{CampaignID: c.ID, UpdatedAt: c.UpdatedAt, SpentToday: c.SpentTodayMicros,
				SpentTotal: c.SpentTotalMicros, Status: c.Status}
		}
	}
	return out
}

// waitFor polls cond every 50 ms until it holds or timeout passes; then the test fails with the
// last explanation cond gave.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ledger is the truth about spend: the distinct billing events published, by campaign.
type ledger struct {
	seen map[string]bool
	cpm  map[string]int64 // summed CPM micros of the distinct events, by campaign
}

func newLedger() *ledger { return &ledger{seen: map[string]bool{}, cpm: map[string]int64{}} }

// add records e unless its id was recorded before (a retried notice).
func (l *ledger) add(e events.Event) {
	if l.seen[e.ID] {
		return
	}
	l.seen[e.ID] = true
	l.cpm[e.CampaignID] += e.PriceMicros
}

// micros is what the pacer books for the campaign: the CPM sum / 1000, the remainder carried.
func (l *ledger) micros(id string) int64 { return l.cpm[id] / 1000 }

// diff describes how the states differ from want (nil map entries are skipped).
func diffSpend(want map[string][2]int64, got func(string) (pacing.State, bool)) string {
	var b strings.Builder
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		w := want[id]
		st, ok := got(id)
		switch {
		case !ok:
			fmt.Fprintf(&b, "%s: no state; ", id)
		case st.SpentToday != w[0] || st.SpentTotal != w[1]:
			fmt.Fprintf(&b, "%s: today %d total %d, want %d %d; ", id, st.SpentToday, st.SpentTotal, w[0], w[1])
		}
	}
	return b.String()
}

// droppedEvents sums rtb_events_dropped_total in reg, by "topic/reason".
func droppedEvents(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "rtb_events_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if v := m.GetCounter().GetValue(); v > 0 {
				key := ""
				for _, l := range m.GetLabel() {
					key += "/" + l.GetValue()
				}
				out[strings.TrimPrefix(key, "/")] += v
			}
		}
	}
	return out
}

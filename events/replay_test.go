package events

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// The replay tests run against the embedded broker (4 partitions a topic), with events written by
// a Hash-balanced kafka-go writer (as the Producer does) with message time = event time. Waits
// poll a condition under a deadline; nothing asserts on a fixed sleep.

const rpWait = 60 * time.Second

// rpDay is the start of the test's "day": 20 hours ago, so every event is in the past (and well
// inside the broker's 7-day retention, which kfake applies by message time).
func rpDay() time.Time { return time.Now().UTC().Add(-20 * time.Hour).Truncate(time.Minute) }

// rpBill is a billing event (rtb.wins) of campaign c at ts.
func rpBill(id, c string, ts time.Time, price int64) Event {
	return Event{V: Version, Type: Bill, ID: id, TS: ts, RequestID: "req-" + id, ImpID: "1",
		CampaignID: c, Exchange: "x", PriceMicros: price, BidMicros: price + 1}
}

// rpMsg is e as the producer writes it, with the message time set to the event time.
func rpMsg(e Event) kafka.Message {
	return kafka.Message{Topic: TopicOf(e.Type), Key: []byte(e.CampaignID), Value: e.AppendJSON(nil), Time: e.TS}
}

// rpProduce writes msgs with a Hash-balanced writer (the producer's placement), acks from all.
func rpProduce(t testing.TB, brokers []string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 2 * time.Millisecond,
		BatchSize:    1000,
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce %d messages: %v", len(msgs), err)
	}
}

// rpCampaigns are n campaign ids, at least one on each of 4 partitions.
func rpCampaigns(t testing.TB, n int) []string {
	var cs []string
	on := map[int]bool{}
	for i := range n {
		c := "c-" + strconv.Itoa(i)
		cs = append(cs, c)
		on[PartitionOf(c, 4)] = true
	}
	if len(on) != 4 {
		t.Fatalf("campaigns %v cover partitions %v only", cs, on)
	}
	return cs
}

type rpTotal struct {
	N     int
	Spend int64
}

// rpDayLog is a day of billing: every campaign billed every step from rpDay() for 20 hours, plus
// retried notices (the same event twice) and poison messages. want is what a replay from `from`
// must total per campaign.
type rpDayLog struct {
	msgs   []kafka.Message
	unique map[string]Event // by id
	dups   int              // copies written twice at or after from
	poison int              // poison messages at or after from
}

func rpMakeDay(campaigns []string, step time.Duration, from time.Time) *rpDayLog {
	d := &rpDayLog{unique: map[string]Event{}}
	day := rpDay()
	slot := 0
	var later []kafka.Message // a retry that lands a few messages after its first copy
	for ts := day; ts.Before(day.Add(20 * time.Hour)); ts = ts.Add(step) {
		for i, c := range campaigns {
			e := rpBill(fmt.Sprintf("b-%s-%05d", c, slot), c, ts, int64(1000*(slot%97+1)+i))
			d.unique[e.ID] = e
			d.msgs = append(d.msgs, rpMsg(e))
			// Retried notices, away from `from` so both copies fall on the same side of it.
			far := ts.Sub(from) > 30*time.Minute || from.Sub(ts) > 30*time.Minute
			switch {
			case far && slot%50 == 7 && i == 1:
				d.msgs = append(d.msgs, rpMsg(e)) // straight after
				if !ts.Before(from) {
					d.dups++
				}
			case far && slot%50 == 9 && i == 2:
				later = append(later, rpMsg(e)) // after the next slot's events
				if !ts.Before(from) {
					d.dups++
				}
			}
		}
		if slot%50 == 10 {
			d.msgs = append(d.msgs, later...)
			later = nil
		}
		if slot%200 == 120 { // poison: not JSON, and an event on the wrong topic
			d.msgs = append(d.msgs,
				kafka.Message{Topic: TopicWins, Key: []byte(campaigns[3]), Value: []byte("not json"), Time: ts},
				kafka.Message{Topic: TopicWins, Key: []byte(campaigns[3]), Time: ts,
					Value: (&Event{V: Version, Type: Click, ID: "click-" + strconv.Itoa(slot), TS: ts, CampaignID: campaigns[3], Exchange: "x"}).AppendJSON(nil)})
			if !ts.Before(from) {
				d.poison += 2
			}
		}
		slot++
	}
	d.msgs = append(d.msgs, later...)
	return d
}

// want is the totals per campaign of the unique events at or after from.
func (d *rpDayLog) want(from time.Time) map[string]rpTotal {
	w := map[string]rpTotal{}
	for _, e := range d.unique {
		if !e.TS.Before(from) {
			t := w[e.CampaignID]
			t.N++
			t.Spend += e.PriceMicros
			w[e.CampaignID] = t
		}
	}
	return w
}

func (d *rpDayLog) count(from time.Time) int {
	n := 0
	for _, t := range d.want(from) {
		n += t.N
	}
	return n
}

// rpHandler is a pacer in miniature: totals per campaign, reset on every assignment. It records
// what a replay handler must never see: concurrent calls, an event of a partition it does not own,
// a campaign's events out of order, an event before Assigned.
type rpHandler struct {
	inCall atomic.Int32

	mu         sync.Mutex
	violations []string
	gens       int // Assigned calls
	revokes    int
	caughtGen  int // gens at the last CaughtUp
	caughtUps  int
	owned      map[int]bool // partitions of rtb.wins owned now
	total      int
	assigned   bool // between Assigned and Revoked
	totals     map[string]rpTotal
	ids        map[string]int
	last       map[string]time.Time
	minTS      time.Time
	failFirst  map[string]bool // ids whose first Event call fails
	failed     map[string]int
	allEvents  int // Event calls that succeeded, over all generations
	assignLogs [][]Assignment
}

func newRPHandler() *rpHandler {
	return &rpHandler{totals: map[string]rpTotal{}, ids: map[string]int{}, last: map[string]time.Time{},
		owned: map[int]bool{}, failFirst: map[string]bool{}, failed: map[string]int{}}
}

func (h *rpHandler) enter() {
	if h.inCall.Add(1) != 1 {
		h.mu.Lock()
		h.violations = append(h.violations, "concurrent handler calls")
		h.mu.Unlock()
	}
}

func (h *rpHandler) exit() { h.inCall.Add(-1) }

func (h *rpHandler) Assigned(gen []Assignment) {
	h.enter()
	defer h.exit()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.assigned {
		h.violations = append(h.violations, "Assigned twice without Revoked")
	}
	h.assigned = true
	h.gens++
	h.assignLogs = append(h.assignLogs, slices.Clone(gen))
	h.owned = map[int]bool{}
	h.total = 0
	for _, a := range gen {
		if a.Topic == TopicWins {
			for _, p := range a.Partitions {
				h.owned[p] = true
			}
			h.total = a.Total
		}
		// Co-partitioned topics: the same partition numbers of each, so a campaign has one owner.
		if !slices.Equal(a.Partitions, gen[0].Partitions) || a.Total != gen[0].Total {
			h.violations = append(h.violations, fmt.Sprintf("assignment %+v is not co-partitioned", gen))
		}
	}
	clear(h.totals)
	clear(h.ids)
	clear(h.last)
	h.minTS = time.Time{}
}

func (h *rpHandler) Event(e *Event) error {
	h.enter()
	defer h.exit()
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.assigned {
		h.violations = append(h.violations, "event "+e.ID+" outside a generation")
	}
	if h.failFirst[e.ID] && h.failed[e.ID] == 0 {
		h.failed[e.ID]++
		return fmt.Errorf("transient failure of %s", e.ID)
	}
	if p := PartitionOf(e.CampaignID, h.total); !h.owned[p] {
		h.violations = append(h.violations, fmt.Sprintf("event %s of partition %d, not owned (%v)", e.ID, p, h.owned))
	}
	// Order is kept per partition, so per campaign within a topic (the test writes in time order).
	stream := TopicOf(e.Type) + "/" + e.CampaignID
	if e.TS.Before(h.last[stream]) {
		h.violations = append(h.violations, fmt.Sprintf("%s: event %s at %s after one at %s", stream, e.ID, e.TS, h.last[stream]))
	}
	h.last[stream] = e.TS
	if h.minTS.IsZero() || e.TS.Before(h.minTS) {
		h.minTS = e.TS
	}
	h.ids[e.ID]++
	t := h.totals[e.CampaignID]
	t.N++
	t.Spend += e.PriceMicros
	h.totals[e.CampaignID] = t
	h.allEvents++
	return nil
}

func (h *rpHandler) Revoked() {
	h.enter()
	defer h.exit()
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.assigned {
		h.violations = append(h.violations, "Revoked without Assigned")
	}
	h.assigned = false
	h.revokes++
}

func (h *rpHandler) CaughtUp() {
	h.enter()
	defer h.exit()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.caughtGen == h.gens {
		h.violations = append(h.violations, "CaughtUp twice in a generation")
	}
	h.caughtGen = h.gens
	h.caughtUps++
}

// state is a snapshot: totals, owned partitions, and whether the current generation caught up.
func (h *rpHandler) state() (totals map[string]rpTotal, owned []int, caught bool, gens int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.totals), slices.Sorted(maps.Keys(h.owned)), h.assigned && h.caughtGen == h.gens, h.gens
}

func (h *rpHandler) check(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, v := range h.violations {
		if i == 10 {
			t.Errorf("... %d more", len(h.violations)-10)
			break
		}
		t.Error(v)
	}
	for id, n := range h.ids {
		if n > 1 {
			t.Errorf("event %s handled %d times in one generation", id, n)
		}
	}
}

type rpRun struct {
	r      *Replayer
	h      *rpHandler
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func rpStart(t testing.TB, cfg ReplayConfig, h *rpHandler) *rpRun {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger, _ = newTestLogger(t)
	}
	r, err := NewReplayer(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &rpRun{r: r, h: h, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	t.Cleanup(func() { run.stop(t) })
	return run
}

// stop cancels Run and waits for it to return; it reports how long that took.
func (x *rpRun) stop(t testing.TB) time.Duration {
	t.Helper()
	var took time.Duration
	x.once.Do(func() {
		t0 := time.Now()
		x.cancel()
		select {
		case err := <-x.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return within 30s of cancel")
		}
		took = time.Since(t0)
		x.h.mu.Lock()
		gens, revokes := x.h.gens, x.h.revokes
		x.h.mu.Unlock()
		if gens != revokes {
			t.Errorf("%d Assigned but %d Revoked", gens, revokes)
		}
	})
	return took
}

func rpWaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rpCaughtUp waits until x owns want (nil: any) and has caught up, by its handler and by CaughtUp.
func rpCaughtUp(t testing.TB, x *rpRun, want []int, what string) {
	t.Helper()
	rpWaitFor(t, rpWait, what, func() bool {
		_, owned, caught, _ := x.h.state()
		return caught && x.r.CaughtUp() && (want == nil || slices.Equal(owned, want))
	})
}

func rpMetric(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue metrics
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

func rpSameTotals(t testing.TB, what string, got, want map[string]rpTotal) {
	t.Helper()
	if maps.Equal(got, want) {
		return
	}
	n := 0
	for _, c := range slices.Sorted(maps.Keys(want)) {
		if got[c] != want[c] && n < 10 {
			t.Errorf("%s: campaign %s: got %+v, want %+v", what, c, got[c], want[c])
			n++
		}
	}
	for c := range got {
		if _, ok := want[c]; !ok && n < 10 {
			t.Errorf("%s: campaign %s: got %+v, want nothing", what, c, got[c])
			n++
		}
	}
	if n == 0 {
		t.Errorf("%s: totals differ", what)
	}
}

// rpReadPartition reads every message of a partition with a plain kafka-go reader (not the code
// under test).
func rpReadPartition(t testing.TB, brokers []string, topic string, partition int) []kafka.Message {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	res, err := cl.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		topic: {kafka.FirstOffsetOf(partition), kafka.LastOffsetOf(partition)}}})
	if err != nil {
		t.Fatal(err)
	}
	po := res.Topics[topic][0]
	if po.Error != nil {
		t.Fatal(po.Error)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: partition, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(po.FirstOffset); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rpWait)
	defer cancel()
	var out []kafka.Message
	for int64(len(out)) < po.LastOffset-po.FirstOffset {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("read %s/%d: %d of %d: %v", topic, partition, len(out), po.LastOffset-po.FirstOffset, err)
		}
		out = append(out, m)
	}
	return out
}

// A day of billing, replayed from the middle of the day: exactly the events from then on, each
// once (retried notices skipped), poison messages dead-lettered, CaughtUp once the backlog is
// done, then live events as they come.
func TestReplayFromTimestamp(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	brokers := b.Addrs()
	campaigns := rpCampaigns(t, 16)
	from := rpDay().Add(10*time.Hour + 1*time.Minute) // between two steps
	day := rpMakeDay(campaigns, 2*time.Minute, from)
	rpProduce(t, brokers, day.msgs...)

	// kfake keeps the producer's timestamps (CreateTime): check one partition as read back.
	back := rpReadPartition(t, brokers, TopicWins, 0)
	for i, m := range back {
		if i == 0 || i == len(back)-1 {
			e, err := Decode(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			if !m.Time.Equal(e.TS) {
				t.Fatalf("message time %s, event time %s: the broker does not keep produce timestamps", m.Time, e.TS)
			}
		}
	}

	reg := prometheus.NewRegistry()
	h := newRPHandler()
	t0 := time.Now()
	x := rpStart(t, ReplayConfig{Brokers: brokers, Group: "pacer", Topics: []string{TopicWins},
		From: func() time.Time { return from }, Registerer: reg}, h)
	rpCaughtUp(t, x, []int{0, 1, 2, 3}, "the replay to catch up")
	took := time.Since(t0)
	want := day.want(from)
	totals, _, _, _ := h.state()
	rpSameTotals(t, "replay from mid-day", totals, want)
	h.mu.Lock()
	minTS, caughtUps := h.minTS, h.caughtUps
	h.mu.Unlock()
	if minTS.Before(from) {
		t.Errorf("an event of %s was replayed; From is %s", minTS, from)
	}
	if caughtUps != 1 {
		t.Errorf("CaughtUp called %d times, want 1", caughtUps)
	}
	n := day.count(from)
	t.Logf("%d messages written over the day; %d events from mid-day replayed in %v (join included) (%.0f events/s), %d duplicates and %d poison messages skipped",
		len(day.msgs), n, took.Round(time.Millisecond), float64(n)/took.Seconds(), day.dups, day.poison)
	wins := map[string]string{"topic": TopicWins, "group": "pacer"}
	for name, want := range map[string]float64{
		"rtb_replay_events_total":        float64(n),
		"rtb_replay_duplicates_total":    float64(day.dups),
		"rtb_replay_dead_lettered_total": float64(day.poison),
		"rtb_replay_lag":                 0,
		"rtb_replay_partitions":          4,
	} {
		if got := rpMetric(t, reg, name, wins); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := rpMetric(t, reg, "rtb_replay_caught_up", map[string]string{"group": "pacer"}); got != 1 {
		t.Errorf("rtb_replay_caught_up = %v, want 1", got)
	}

	// The dead letters carry the error and where the message came from.
	letters := rpReadPartition(t, brokers, TopicDLQ, 0)
	if len(letters) != day.poison {
		t.Fatalf("%d dead letters, want %d", len(letters), day.poison)
	}
	for _, l := range letters {
		hs := map[string]string{}
		for _, h := range l.Headers {
			hs[h.Key] = string(h.Value)
		}
		if hs[HeaderDLQError] == "" || hs[HeaderDLQTopic] != TopicWins || hs[HeaderDLQGroup] != "pacer" || hs[HeaderDLQOffset] == "" {
			t.Errorf("dead letter headers %v", hs)
		}
	}

	// Live: events written now are handled as they come, totals move on.
	var live []kafka.Message
	for i, c := range campaigns {
		e := rpBill("live-"+c, c, time.Now().UTC(), 777+int64(i))
		live = append(live, rpMsg(e))
		day.unique[e.ID] = e
	}
	rpProduce(t, brokers, live...)
	want = day.want(from)
	rpWaitFor(t, rpWait, "the live events", func() bool {
		totals, _, _, _ := h.state()
		return maps.Equal(totals, want)
	})
	leave := x.stop(t)
	t.Logf("stopped and left the group in %v", leave.Round(time.Millisecond))
	h.check(t)
}

// A member stopped and started again (a new process) replays the same events and ends with the
// same totals; events written while it was down are in them.
func TestReplayRestartGivesSameTotals(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	brokers := b.Addrs()
	campaigns := rpCampaigns(t, 12)
	from := rpDay().Add(6*time.Hour + 30*time.Second)
	day := rpMakeDay(campaigns, 5*time.Minute, from)
	rpProduce(t, brokers, day.msgs...)
	cfg := ReplayConfig{Brokers: brokers, Group: "pacer", Topics: []string{TopicWins}, From: func() time.Time { return from }}

	h1 := newRPHandler()
	x1 := rpStart(t, cfg, h1)
	rpCaughtUp(t, x1, []int{0, 1, 2, 3}, "the first run to catch up")
	first, _, _, _ := h1.state()
	rpSameTotals(t, "first run", first, day.want(from))
	x1.stop(t)
	h1.check(t)

	// While no pacer runs, billing goes on.
	var more []kafka.Message
	for i, c := range campaigns {
		e := rpBill("while-down-"+c, c, time.Now().UTC(), 5000+int64(i))
		more = append(more, rpMsg(e))
		day.unique[e.ID] = e
	}
	more = append(more, more[0]) // and an exchange retries one notice
	rpProduce(t, brokers, more...)

	h2 := newRPHandler()
	t0 := time.Now()
	x2 := rpStart(t, cfg, h2)
	rpCaughtUp(t, x2, []int{0, 1, 2, 3}, "the second run to catch up")
	t.Logf("restarted member caught up in %v (group join included)", time.Since(t0).Round(time.Millisecond))
	second, _, _, _ := h2.state()
	rpSameTotals(t, "restarted run", second, day.want(from))
	for c, tot := range first {
		if s := second[c]; s.N != tot.N+1 || s.Spend <= tot.Spend {
			t.Errorf("campaign %s: first run %+v, second %+v: want one more event", c, tot, s)
		}
	}
	x2.stop(t)
	h2.check(t)
}

// Two members split the partitions (disjoint, together all, the same numbers of both topics) and
// each replays its own; when one stops, the other is assigned everything, replays it, and ends
// with the totals of a member that had it all along.
func TestReplaySplitAndTakeover(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	brokers := b.Addrs()
	campaigns := rpCampaigns(t, 16)
	from := rpDay().Add(4*time.Hour + 30*time.Second)
	day := rpMakeDay(campaigns, 5*time.Minute, from)
	// Impressions too, on their own topic: a campaign's events of both go to the same member.
	for i, c := range campaigns {
		for j := range 20 {
			e := Event{V: Version, Type: Imp, ID: fmt.Sprintf("imp-%s-%d", c, j), TS: from.Add(time.Duration(j) * time.Minute),
				CampaignID: c, Exchange: "x", PriceMicros: int64(10*i + j)}
			day.unique[e.ID] = e
			day.msgs = append(day.msgs, rpMsg(e))
		}
	}
	rpProduce(t, brokers, day.msgs...)
	topics := []string{TopicWins, TopicImpressions}
	cfg := ReplayConfig{Brokers: brokers, Group: "pacers", Topics: topics, From: func() time.Time { return from }}

	// A member alone in its own group: the reference totals.
	solo := rpStart(t, ReplayConfig{Brokers: brokers, Group: "solo", Topics: topics,
		From: func() time.Time { return from }}, newRPHandler())
	a := rpStart(t, cfg, newRPHandler())
	rpCaughtUp(t, a, []int{0, 1, 2, 3}, "a to own everything")
	bb := rpStart(t, cfg, newRPHandler())
	t0 := time.Now()
	var ta, tb map[string]rpTotal
	var oa, ob []int
	rpWaitFor(t, rpWait, "a and b to split the partitions and catch up", func() bool {
		var ca, cb bool
		ta, oa, ca, _ = a.h.state()
		tb, ob, cb, _ = bb.h.state()
		return ca && cb && len(oa) > 0 && len(ob) > 0 && len(oa)+len(ob) == 4 &&
			!slices.ContainsFunc(oa, func(p int) bool { return slices.Contains(ob, p) })
	})
	t.Logf("split %v / %v, both caught up %v after b started", oa, ob, time.Since(t0).Round(time.Millisecond))
	union := maps.Clone(ta)
	for c, tot := range tb {
		if _, ok := union[c]; ok {
			t.Errorf("campaign %s counted by both members", c)
		}
		union[c] = tot
	}
	rpSameTotals(t, "a and b together", union, day.want(from))

	// Live events go to whichever member owns their campaign.
	var live []kafka.Message
	for i, c := range campaigns {
		e := rpBill("live-"+c, c, time.Now().UTC(), 900+int64(i))
		live = append(live, rpMsg(e))
		day.unique[e.ID] = e
	}
	rpProduce(t, brokers, live...)
	want := day.want(from)
	rpWaitFor(t, rpWait, "the live events on both members", func() bool {
		ta, _, _, _ := a.h.state()
		tb, _, _, _ := bb.h.state()
		u := maps.Clone(ta)
		maps.Copy(u, tb)
		return maps.Equal(u, want)
	})

	t1 := time.Now()
	leave := bb.stop(t)
	rpCaughtUp(t, a, []int{0, 1, 2, 3}, "a to take over b's partitions")
	t.Logf("b left in %v; a owned everything again and had replayed it %v after b was told to stop",
		leave.Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
	rpCaughtUp(t, solo, []int{0, 1, 2, 3}, "the solo member")
	takeover, _, _, _ := a.h.state()
	reference, _, _, _ := solo.h.state()
	rpSameTotals(t, "a after the takeover vs a member that had it all along", takeover, reference)
	rpSameTotals(t, "a after the takeover", takeover, want)
	a.h.mu.Lock()
	gens := a.h.gens
	a.h.mu.Unlock()
	if gens < 3 {
		t.Errorf("a was assigned %d times, want at least 3 (alone, split, takeover)", gens)
	}
	a.stop(t)
	solo.stop(t)
	for _, x := range []*rpRun{a, bb, solo} {
		x.h.check(t)
	}
}

// From nil replays everything; From after the last event replays nothing and is caught up at
// once, then tails. A failing handler call is retried, the event counted once. Replayers and a
// Consumer share one registry.
func TestReplayFromBounds(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	brokers := b.Addrs()
	campaigns := rpCampaigns(t, 8)
	day := rpMakeDay(campaigns, 30*time.Minute, rpDay().Add(-time.Hour))
	rpProduce(t, brokers, day.msgs...)
	reg := prometheus.NewRegistry()
	if _, err := NewConsumer(ConsumerConfig{Brokers: brokers, Group: "all", Topics: []string{TopicWins}, Registerer: reg},
		func(context.Context, *Event) error { return nil }); err != nil {
		t.Fatal(err)
	}

	all := newRPHandler()
	all.failFirst["b-c-1-00003"] = true
	xa := rpStart(t, ReplayConfig{Brokers: brokers, Group: "all", Topics: []string{TopicWins}, Registerer: reg}, all)
	future := time.Now().Add(time.Hour)
	none := newRPHandler()
	xn := rpStart(t, ReplayConfig{Brokers: brokers, Group: "future", Topics: []string{TopicWins}, Registerer: reg,
		From: func() time.Time { return future }}, none)

	rpCaughtUp(t, xa, []int{0, 1, 2, 3}, "the full replay")
	got, _, _, _ := all.state()
	rpSameTotals(t, "From nil", got, day.want(time.Time{}))
	all.mu.Lock()
	failed := all.failed["b-c-1-00003"]
	all.mu.Unlock()
	if failed != 1 {
		t.Errorf("the failing event failed %d times, want 1", failed)
	}
	if got := rpMetric(t, reg, "rtb_replay_handler_errors_total", map[string]string{"topic": TopicWins, "group": "all"}); got != 1 {
		t.Errorf("rtb_replay_handler_errors_total = %v, want 1", got)
	}

	rpCaughtUp(t, xn, []int{0, 1, 2, 3}, "the empty replay")
	if got, _, _, _ := none.state(); len(got) != 0 {
		t.Errorf("From after the last event replayed %v", got)
	}
	e := rpBill("after-future", campaigns[0], time.Now().UTC(), 1)
	rpProduce(t, brokers, rpMsg(e))
	rpWaitFor(t, rpWait, "the live event", func() bool {
		got, _, _, _ := none.state()
		return got[campaigns[0]].N == 1
	})
	xa.stop(t)
	xn.stop(t)
	all.check(t)
	none.check(t)
}

// A replayer given Types hands the handler those types only, passing over the others of its topics
// (sampled bids on rtb.bids, for the pacer) — undecoded where the producer wrote them, decoded and
// dropped where another writer laid the fields out otherwise — and still dead-letters poison.
func TestReplayTypes(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	brokers := b.Addrs()
	campaigns := rpCampaigns(t, 8)
	ts := rpDay().Add(time.Hour)
	var msgs []kafka.Message
	const bidsPer = 50
	for i, c := range campaigns {
		for j := range bidsPer {
			e := Event{V: Version, Type: Bid, ID: fmt.Sprintf("bid-%s-%d", c, j), TS: ts, RequestID: "r", ImpID: "1",
				CampaignID: c, Exchange: "x", BidMicros: 1000}
			msgs = append(msgs, rpMsg(e))
		}
		traffic := Event{V: Version, Type: Traffic, ID: "tr-" + c, TS: ts, CampaignID: c, Count: int64(i + 1),
			Counts: Counts{{CampaignID: c, N: int64(i + 1)}}}
		msgs = append(msgs, rpMsg(traffic), rpMsg(rpBill("bill-"+c, c, ts, 5000)))
	}
	// A bid of another writer, its fields in another order: decoded, then passed over.
	other := mustJSON(map[string]any{"v": 1, "type": "bid", "id": "other-bid", "ts": ts.Format(time.RFC3339Nano),
		"campaign_id": campaigns[0], "exchange": "x", "request_id": "r", "imp_id": "1", "price_micros": 0, "bid_micros": 1, "reason": 0})
	msgs = append(msgs,
		kafka.Message{Topic: TopicBids, Key: []byte(campaigns[0]), Value: other, Time: ts},
		kafka.Message{Topic: TopicBids, Key: []byte(campaigns[1]), Value: []byte("not json"), Time: ts})
	rpProduce(t, brokers, msgs...)

	reg := prometheus.NewRegistry()
	h := newRPHandler()
	x := rpStart(t, ReplayConfig{Brokers: brokers, Group: "pacer", Topics: []string{TopicWins, TopicBids},
		Types: []Type{Bill, Traffic}, PatientTopics: []string{TopicBids}, Registerer: reg}, h)
	rpCaughtUp(t, x, []int{0, 1, 2, 3}, "the replay to catch up")
	h.mu.Lock()
	handled := h.allEvents
	h.mu.Unlock()
	if want := 2 * len(campaigns); handled != want {
		t.Errorf("the handler got %d events, want %d (a traffic report and a bill per campaign)", handled, want)
	}
	bids := map[string]string{"topic": TopicBids, "group": "pacer"}
	for name, want := range map[string]float64{
		"rtb_replay_skipped_total":       float64(bidsPer*len(campaigns) + 1),
		"rtb_replay_events_total":        float64(len(campaigns)),
		"rtb_replay_dead_lettered_total": 1,
	} {
		if got := rpMetric(t, reg, name, bids); got != want {
			t.Errorf("%s{topic=%s} = %v, want %v", name, TopicBids, got, want)
		}
	}
	x.stop(t)
	h.check(t)
}

func TestNewReplayerRefusals(t *testing.T) {
	h := newRPHandler()
	ok := ReplayConfig{Brokers: []string{"127.0.0.1:1"}, Group: "g", Topics: []string{TopicWins}}
	for name, c := range map[string]struct {
		cfg ReplayConfig
		h   ReplayHandler
	}{
		"nil handler":    {ok, nil},
		"no group":       {ReplayConfig{Brokers: ok.Brokers, Topics: ok.Topics}, h},
		"no topics":      {ReplayConfig{Brokers: ok.Brokers, Group: "g"}, h},
		"no brokers":     {ReplayConfig{Group: "g", Topics: ok.Topics}, h},
		"repeated topic": {ReplayConfig{Brokers: ok.Brokers, Group: "g", Topics: []string{TopicWins, TopicWins}}, h},
		"empty topic":    {ReplayConfig{Brokers: ok.Brokers, Group: "g", Topics: []string{""}}, h},
	} {
		if _, err := NewReplayer(c.cfg, c.h); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	r, err := NewReplayer(ok, h)
	if err != nil {
		t.Fatal(err)
	}
	if r.CaughtUp() {
		t.Error("caught up before running")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Run(ctx); err != nil {
		t.Errorf("Run on a cancelled context: %v", err)
	}
	if err := r.Run(ctx); err == nil {
		t.Error("second Run accepted")
	}

	// A different collector under one of the names is an error, not a panic.
	bad := prometheus.NewRegistry()
	bad.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "rtb_replay_events_total", Help: "other"}))
	if _, err := NewReplayer(ReplayConfig{Brokers: ok.Brokers, Group: "g", Topics: ok.Topics, Registerer: bad}, h); err == nil {
		t.Error("NewReplayer accepted a registry with a conflicting metric")
	}
}

// PartitionOf agrees with kafka-go's Hash balancer on every key and partition count tried.
func TestPartitionOfMatchesHashBalancer(t *testing.T) {
	var hb kafka.Hash
	keys := []string{"", "c", "c-42", "campaign-ü", "\x00\xff"}
	for i := range 5000 {
		keys = append(keys, "c-"+strconv.Itoa(i), fmt.Sprintf("%x", i*2654435761))
	}
	negative := 0
	for _, k := range keys {
		for n := 1; n <= 64; n++ {
			parts := make([]int, n)
			for i := range parts {
				parts[i] = i
			}
			want := hb.Balance(kafka.Message{Key: []byte(k)}, parts...)
			if got := PartitionOf(k, n); got != want {
				t.Fatalf("PartitionOf(%q, %d) = %d, Hash balancer says %d", k, n, got, want)
			}
		}
		h := uint32(2166136261)
		for i := 0; i < len(k); i++ {
			h = (h ^ uint32(k[i])) * 16777619
		}
		if int32(h) < 0 {
			negative++
		}
	}
	if negative == 0 {
		t.Error("no key with a negative hash was tried")
	}
	if PartitionOf("c", 0) != -1 {
		t.Error("PartitionOf(_, 0) != -1")
	}
}

// PartitionOf names the partition a Hash-balanced writer really put each key in.
func TestPartitionOfMatchesPlacement(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	var msgs []kafka.Message
	for i := range 400 {
		c := "camp-" + strconv.Itoa(i)
		msgs = append(msgs, kafka.Message{Topic: TopicClicks, Key: []byte(c), Value: []byte(c)})
	}
	rpProduce(t, b.Addrs(), msgs...)
	seen := 0
	for p := range 4 {
		for _, m := range rpReadPartition(t, b.Addrs(), TopicClicks, p) {
			seen++
			if got := PartitionOf(string(m.Key), 4); got != p {
				t.Errorf("key %s is on partition %d, PartitionOf says %d", m.Key, p, got)
			}
		}
	}
	if seen != len(msgs) {
		t.Errorf("read %d messages back, wrote %d", seen, len(msgs))
	}
}

// The replay balancer gives each member the same partition numbers of every topic, whatever order
// the metadata lists partitions in; together the members get every partition once.
func TestReplayBalancerCoPartitions(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 8, 9} {
		var members []kafka.GroupMember
		for i := range n {
			members = append(members, kafka.GroupMember{ID: fmt.Sprintf("m-%d", (i*7)%n), Topics: []string{TopicWins, TopicImpressions}})
		}
		var parts []kafka.Partition
		for _, p := range []int{5, 2, 7, 0, 3, 6, 1, 4} { // unsorted, as metadata may list them
			parts = append(parts, kafka.Partition{Topic: TopicWins, ID: p}, kafka.Partition{Topic: TopicImpressions, ID: 7 - p})
		}
		got := replayBalancer{}.AssignGroups(members, parts)
		owner := map[int]string{}
		for id, topics := range got {
			if !slices.Equal(topics[TopicWins], topics[TopicImpressions]) {
				t.Errorf("%d members: %s has %v of %s and %v of %s", n, id, topics[TopicWins], TopicWins, topics[TopicImpressions], TopicImpressions)
			}
			for _, p := range topics[TopicWins] {
				if o, ok := owner[p]; ok {
					t.Errorf("%d members: partition %d to %s and %s", n, p, o, id)
				}
				owner[p] = id
			}
		}
		if len(owner) != 8 {
			t.Errorf("%d members: %d of 8 partitions assigned", n, len(owner))
		}
	}
}

// Through a broker restart (same address, same data dir) a replayer loses its generation, joins
// again when the broker is back, replays, and ends with the right totals; a state reader resumes
// its tail.
func TestReplaySurvivesBrokerRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	// Not startTestBroker: this test closes the broker itself, and Broker.Close may run only once.
	b, err := StartBroker(context.Background(), BrokerConfig{Addr: addr, DataDir: dir, Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	var closeOnce sync.Once
	t.Cleanup(func() { closeOnce.Do(b.Close) })
	brokers := b.Addrs()
	campaigns := rpCampaigns(t, 8)
	from := rpDay().Add(2*time.Hour + 30*time.Second)
	day := rpMakeDay(campaigns, 20*time.Minute, from)
	rpProduce(t, brokers, day.msgs...)

	x := rpStart(t, ReplayConfig{Brokers: brokers, Group: "pacer", Topics: []string{TopicWins}, From: func() time.Time { return from }}, newRPHandler())
	rpCaughtUp(t, x, []int{0, 1, 2, 3}, "the replay before the restart")
	state := newSTMap()
	sr := stStart(t, brokers, TopicPacing, state)
	stReady(t, sr, "the state reader")

	closeOnce.Do(b.Close)
	t0 := time.Now()
	rpWaitFor(t, rpWait, "the replayer to lose its generation", func() bool { return !x.r.CaughtUp() })
	t.Logf("generation lost %v after the broker stopped", time.Since(t0).Round(time.Millisecond))
	b2, err := StartBroker(context.Background(), BrokerConfig{Addr: addr, DataDir: dir, Partitions: 4})
	if err != nil {
		t.Fatalf("restart broker on %s: %v", addr, err)
	}
	t.Cleanup(b2.Close)
	t1 := time.Now()
	e := rpBill("after-restart", campaigns[2], time.Now().UTC(), 4242)
	day.unique[e.ID] = e
	rpProduce(t, brokers, rpMsg(e))
	want := day.want(from)
	rpWaitFor(t, rpWait, "the replay after the restart", func() bool {
		got, _, caught, _ := x.h.state()
		return caught && maps.Equal(got, want)
	})
	t.Logf("replayed and caught up again %v after the broker was back", time.Since(t1).Round(time.Millisecond))

	w := NewStateWriter(brokers, TopicPacing)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), rpWait)
	defer cancel()
	if err := w.Write(ctx, KV{"c-1", []byte("after")}); err != nil {
		t.Fatal(err)
	}
	rpWaitFor(t, rpWait, "the state reader to resume", func() bool {
		got, _ := state.snapshot()
		return string(got["c-1"]) == "after"
	})
	x.stop(t)
	x.h.check(t)
}

// rpNop is a handler that only counts.
type rpNop struct{ n atomic.Int64 }

func (*rpNop) Assigned([]Assignment) {}
func (h *rpNop) Event(*Event) error  { h.n.Add(1); return nil }
func (*rpNop) Revoked()              {}

// BenchmarkReplayCatchUp: how fast one member replays a backlog of 100k events (4 partitions,
// dedupe on, no-op handler) on the embedded broker, from Run to CaughtUp, group join included.
func BenchmarkReplayCatchUp(b *testing.B) {
	br := startTestBroker(b, "")
	const n = 100_000
	day := rpDay()
	msgs := make([]kafka.Message, 0, n)
	for i := range n {
		msgs = append(msgs, rpMsg(rpBill(fmt.Sprintf("0190f3c2-7d1e-7a4b-9c2d-%012d", i), "c-"+strconv.Itoa(i%64), day.Add(time.Duration(i)*time.Second/2), 1000)))
	}
	rpProduce(b, br.Addrs(), msgs...)
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		h := &rpNop{}
		r, err := NewReplayer(ReplayConfig{Brokers: br.Addrs(), Group: "bench-" + strconv.Itoa(i), Topics: []string{TopicWins},
			Logger: slog.New(slog.DiscardHandler)}, h)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		t0 := time.Now()
		go func() { done <- r.Run(ctx) }()
		for !r.CaughtUp() {
			if time.Since(t0) > 2*rpWait {
				b.Fatal("not caught up")
			}
			time.Sleep(time.Millisecond)
		}
		total += time.Since(t0)
		if got := h.n.Load(); got != n {
			b.Fatalf("%d events handled, want %d", got, n)
		}
		cancel()
		<-done
	}
	b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "events/s")
}

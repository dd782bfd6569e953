package events

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// flSeen is what a follower's handler saw.
type flSeen struct {
	mu       sync.Mutex
	ids      map[string]int
	minTS    time.Time
	inCall   bool
	overlaps int
}

func newFLSeen() *flSeen { return &flSeen{ids: map[string]int{}} }

func (s *flSeen) handle(e *Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inCall {
		s.overlaps++
	}
	s.inCall = true
	s.ids[e.ID]++
	if s.minTS.IsZero() || e.TS.Before(s.minTS) {
		s.minTS = e.TS
	}
	s.inCall = false
}

func (s *flSeen) snapshot() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.ids)
}

// flStart runs a follower until the test ends.
func flStart(t testing.TB, cfg FollowConfig, s *flSeen) *Follower {
	t.Helper()
	f, err := NewFollower(cfg, s.handle)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("follower Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("follower did not stop within 30s")
		}
	})
	return f
}

func flImp(id, c string, ts time.Time) Event {
	return Event{V: Version, Type: Imp, ID: id, TS: ts, RequestID: "r-" + id, ImpID: "1", CampaignID: c,
		Exchange: "x", Segment: "banner-300x250|site", User: "00000000000000ff"}
}

func flClick(id, c string, ts time.Time) Event {
	e := flImp(id, c, ts)
	e.Type = Click
	return e
}

// TestFollowerReadsEverythingFromTime: two followers (two bidders) each read every partition of
// both topics from From on (by message time), skip retried notices and poison messages, and see
// the same events; events written after Ready reach both.
func TestFollowerReadsEverythingFromTime(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	brokers := b.Addrs()
	now := time.Now().UTC()
	old, from := now.Add(-3*time.Hour), now.Add(-time.Hour)
	want := map[string]int{}
	var msgs, olds []kafka.Message
	for i := range 200 {
		c := fmt.Sprintf("c-%d", i%13) // spread over the 4 partitions
		ts := now.Add(-time.Duration(i) * time.Second)
		e := flImp(fmt.Sprintf("imp-%d", i), c, ts)
		if i%5 == 0 {
			e = flClick(fmt.Sprintf("click-%d", i), c, ts)
		}
		msgs = append(msgs, rpMsg(e))
		want[e.ID] = 1
		if i%7 == 0 { // a retried notice: same id, same key, later offset
			msgs = append(msgs, rpMsg(e))
		}
		// Older than From, and before the rest in each partition: must not be read. (One written
		// after a message at or after From would be: timestamps need not grow with offsets.)
		olds = append(olds, rpMsg(flImp(fmt.Sprintf("old-%d", i), c, old)))
	}
	// Poison: not JSON, and an event on the wrong topic.
	misplaced := flImp("misplaced", "c-2", now)
	msgs = append(msgs,
		kafka.Message{Topic: TopicImpressions, Key: []byte("c-1"), Value: []byte("{nope"), Time: now},
		kafka.Message{Topic: TopicClicks, Key: []byte("c-2"), Value: misplaced.AppendJSON(nil), Time: now},
	)
	rpProduce(t, brokers, olds...)
	rpProduce(t, brokers, msgs...)

	topics := []string{TopicImpressions, TopicClicks}
	reg := prometheus.NewRegistry()
	s1, s2 := newFLSeen(), newFLSeen()
	f1 := flStart(t, FollowConfig{Brokers: brokers, Topics: topics, Name: "a", From: func() time.Time { return from }, Registerer: reg}, s1)
	f2 := flStart(t, FollowConfig{Brokers: brokers, Topics: topics, Name: "b", From: func() time.Time { return from }, Registerer: reg}, s2)
	for _, f := range []*Follower{f1, f2} {
		select {
		case <-f.Ready():
		case <-time.After(rpWait):
			t.Fatal("follower not ready")
		}
	}
	for name, s := range map[string]*flSeen{"a": s1, "b": s2} {
		got := s.snapshot()
		if !maps.Equal(got, want) {
			t.Errorf("follower %s: %d distinct ids, want %d (an id seen twice, an old one or a missing one)", name, len(got), len(want))
			for id, n := range got {
				if want[id] != n {
					t.Errorf("  %s: %d times, want %d", id, n, want[id])
				}
			}
		}
		if s.overlaps > 0 {
			t.Errorf("follower %s: handler called concurrently", name)
		}
	}
	if got := rpMetric(t, reg, "rtb_follower_undecodable_total", map[string]string{"follower": "a", "topic": TopicImpressions}); got != 1 {
		t.Errorf("undecodable on %s = %v, want 1", TopicImpressions, got)
	}
	if got := rpMetric(t, reg, "rtb_follower_undecodable_total", map[string]string{"follower": "a", "topic": TopicClicks}); got != 1 {
		t.Errorf("undecodable on %s = %v, want 1", TopicClicks, got)
	}
	if got := rpMetric(t, reg, "rtb_follower_caught_up", map[string]string{"follower": "b"}); got != 1 {
		t.Errorf("caught_up = %v, want 1", got)
	}

	// The tail: written after Ready, seen by both.
	late := flClick("late-click", "c-3", time.Now())
	rpProduce(t, brokers, rpMsg(late), rpMsg(late))
	wantDups := 0
	for i := 0; i < 200; i += 7 {
		wantDups++
	}
	wantDups++ // the late click's retry
	rpWaitFor(t, rpWait, "both followers to see the late click and skip its retry", func() bool {
		return s1.snapshot()["late-click"] > 0 && s2.snapshot()["late-click"] > 0 &&
			flSum(t, reg, "rtb_follower_duplicates_total", "a") == float64(wantDups) &&
			flSum(t, reg, "rtb_follower_duplicates_total", "b") == float64(wantDups)
	})
	for name, s := range map[string]*flSeen{"a": s1, "b": s2} {
		if n := s.snapshot()["late-click"]; n != 1 {
			t.Errorf("follower %s: late click handled %d times", name, n)
		}
	}
}

// flSum is the sum of a follower's counter over topics.
func flSum(t testing.TB, reg *prometheus.Registry, name, follower string) float64 {
	t.Helper()
	return rpMetric(t, reg, name, map[string]string{"follower": follower, "topic": TopicImpressions}) +
		rpMetric(t, reg, name, map[string]string{"follower": follower, "topic": TopicClicks})
}

// TestFollowerEmptyAndFuture: with nothing to read (or From after every message), Ready closes at
// once, and new messages are still read.
func TestFollowerEmptyAndFuture(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	brokers := b.Addrs()
	rpProduce(t, brokers, rpMsg(flImp("before", "c-1", time.Now().Add(-time.Minute))))
	s := newFLSeen()
	f := flStart(t, FollowConfig{Brokers: brokers, Topics: []string{TopicImpressions}, From: func() time.Time { return time.Now().Add(time.Hour) }}, s)
	select {
	case <-f.Ready():
	case <-time.After(rpWait):
		t.Fatal("follower not ready")
	}
	rpProduce(t, brokers, rpMsg(flImp("after", "c-1", time.Now())))
	rpWaitFor(t, rpWait, "the new message", func() bool { return s.snapshot()["after"] == 1 })
	if s.snapshot()["before"] != 0 {
		t.Error("a message older than From was read")
	}
}

func TestNewFollowerRefusals(t *testing.T) {
	h := func(*Event) {}
	for name, tc := range map[string]struct {
		cfg FollowConfig
		h   func(*Event)
	}{
		"nil handler":    {FollowConfig{Brokers: []string{"x:1"}, Topics: []string{TopicClicks}}, nil},
		"no brokers":     {FollowConfig{Topics: []string{TopicClicks}}, h},
		"no topics":      {FollowConfig{Brokers: []string{"x:1"}}, h},
		"repeated topic": {FollowConfig{Brokers: []string{"x:1"}, Topics: []string{TopicClicks, TopicClicks}}, h},
	} {
		if _, err := NewFollower(tc.cfg, tc.h); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	f, err := NewFollower(FollowConfig{Brokers: []string{"127.0.0.1:1"}, Topics: []string{TopicClicks}}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- f.Run(ctx) }()
	go func() { done <- f.Run(ctx) }()
	first := <-done // the refused call returns at once; the other runs until cancelled
	cancel()
	second := <-done
	if (first == nil) == (second == nil) {
		t.Errorf("two Runs returned %v and %v: want exactly one refused", first, second)
	}
}

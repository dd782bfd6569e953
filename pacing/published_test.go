package pacing

import (
	"fmt"
	"testing"
	"time"
)

// A state bidders would act on differently goes out at once; an unchanged one only as a refresh:
// from two of the three intervals of its refresh on, at most a third of the campaigns per step (so
// that campaigns published together at start do not stay in step for ever), at three regardless.
func TestPublishedDue(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	day := t0.Truncate(24 * time.Hour)
	st := func(id string, at time.Duration, throttle float64) State {
		return State{CampaignID: id, Day: day, UpdatedAt: t0.Add(at), Throttle: throttle, Multiplier: 1, DailyBudget: 1e8}
	}
	p := newPublished(3 * time.Second)
	p.beginStep(1)
	for _, tc := range []struct {
		what string
		st   State
		want dueness
	}{
		{"new campaign", st("a", 0, 0.5), sendNow},
		{"unchanged a second later", st("a", time.Second, 0.5), notDue},
		{"throttle within 1%", st("a", time.Second, 0.504), notDue},
		{"throttle moved 2%", st("a", time.Second, 0.51), sendNow},
		{"unchanged, refresh not yet near", st("a", 2500*time.Millisecond, 0.51), notDue},
		{"unchanged, refresh near", st("a", 3500*time.Millisecond, 0.51), sendRefresh},
		{"paused", st("a", 3600*time.Millisecond, 0), sendNow},
	} {
		if got := p.due(tc.st); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.what, got, tc.want)
		}
	}

	// 30 campaigns published together, unchanged: none ever goes more than the refresh (3 steps)
	// without a publication, and their refreshes spread over the steps instead of all coming in one.
	p = newPublished(3 * time.Second)
	last := map[string]time.Duration{}
	p.beginStep(30)
	for i := range 30 {
		id := fmt.Sprint("c-", i)
		p.due(st(id, 0, 1))
		last[id] = 0
	}
	var perStep []int
	for s := 1; s <= 30; s++ {
		at := time.Duration(s) * time.Second
		p.beginStep(30)
		n := 0
		for i := range 30 {
			id := fmt.Sprint("c-", i)
			if p.due(st(id, at, 1)) == sendRefresh {
				n++
				last[id] = at
			}
			if age := at - last[id]; age > 3*time.Second {
				t.Fatalf("step %d: %s last published %s ago, more than the refresh", s, id, age)
			}
		}
		perStep = append(perStep, n)
	}
	for _, n := range perStep[3:] {
		if n > 20 {
			t.Errorf("refreshes per step %v: not spread", perStep)
			break
		}
	}
	t.Logf("refreshes per step: %v", perStep)
}

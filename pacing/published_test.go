package pacing

import (
	"fmt"
	"testing"
	"time"
)

// A state bidders would act on differently goes out at once; one whose spend moved, and nothing
// else, at most every refresh; an unchanged one never (heartbeats keep it valid), however long.
func TestPublishedDue(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	day := t0.Truncate(24 * time.Hour)
	st := func(id string, at time.Duration, throttle float64, spent int64) State {
		return State{CampaignID: id, Day: day, UpdatedAt: t0.Add(at), Throttle: throttle, Multiplier: 1, DailyBudget: 1e8, SpentToday: spent, SpentTotal: spent}
	}
	p := newPublished(10 * time.Second)
	for _, tc := range []struct {
		what string
		st   State
		want dueness
	}{
		{"new campaign", st("a", 0, 0.5, 0), sendNow},
		{"unchanged a second later", st("a", time.Second, 0.5, 0), notDue},
		{"throttle within 1%", st("a", time.Second, 0.504, 0), notDue},
		{"throttle moved 2%", st("a", time.Second, 0.51, 0), sendNow},
		{"unchanged an hour later", st("a", time.Hour, 0.51, 0), notDue},
		{"spend moved, first time in the hour", st("a", time.Hour+time.Second, 0.51, 5), sendRefresh},
		{"spend moved again within the refresh", st("a", time.Hour+5*time.Second, 0.51, 9), notDue},
		{"spend moved, refresh passed", st("a", time.Hour+11*time.Second, 0.51, 12), sendRefresh},
		{"paused", st("a", time.Hour+12*time.Second, 0, 12), sendNow},
		{"a new day", State{CampaignID: "a", Day: day.Add(24 * time.Hour), UpdatedAt: t0.Add(15 * time.Hour), DailyBudget: 1e8}, sendNow},
	} {
		if got := p.due(&tc.st); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.what, got, tc.want)
		}
	}
	p.forget("a")
	if s := st("a", 16*time.Hour, 0, 0); p.due(&s) != sendNow {
		t.Error("after forget (a failed write): not sent as new")
	}

	// 10,000 quiet campaigns: after their first states, nothing is published for a day of steps.
	p = newPublished(10 * time.Second)
	sent := 0
	for s := range 600 {
		for i := range 10_000 {
			if st := st(fmt.Sprint("c-", i), time.Duration(s)*time.Second, 0.05, 0); p.due(&st) != notDue {
				sent++
			}
		}
	}
	if sent != 10_000 {
		t.Errorf("10,000 quiet campaigns over 600 steps: %d states published, want 10,000 (their first)", sent)
	}
}

// A step's chunks may hold as few as 16 states when they end on time: what they find due is still
// written publishChunk states at a time, every state once and in order, and a failed write forgets
// exactly its states (sent again at the next step) and keeps the heartbeat back.
func TestStateBatchWritesFullBatches(t *testing.T) {
	for _, tc := range []struct {
		states, chunk int
		failAt        int // the write that fails, 0 for none
		wantWrites    int
	}{
		{1000, 16, 0, 4},
		{1000, 256, 0, 4},
		{10, 16, 0, 1},
		{0, 16, 0, 1}, // the empty write is the writer's to skip
		{1000, 16, 2, 4},
	} {
		var writes [][]string
		forgot := map[string]bool{}
		b := stateBatch{
			write: func(sts []State) error {
				ids := make([]string, len(sts))
				for i, st := range sts {
					ids[i] = st.CampaignID
				}
				writes = append(writes, ids)
				if len(writes) == tc.failAt {
					return fmt.Errorf("broker down")
				}
				return nil
			},
			forget: func(id string) { forgot[id] = true },
		}
		for i := 0; i < tc.states; i += tc.chunk {
			for j := i; j < min(i+tc.chunk, tc.states); j++ {
				b.add(State{CampaignID: fmt.Sprintf("c-%04d", j)})
			}
		}
		b.flush()
		name := fmt.Sprintf("%d states in chunks of %d, write %d failing", tc.states, tc.chunk, tc.failAt)
		if len(writes) != tc.wantWrites {
			t.Errorf("%s: %d writes, want %d", name, len(writes), tc.wantWrites)
		}
		next := 0
		for w, ids := range writes {
			if len(ids) > publishChunk {
				t.Errorf("%s: write %d of %d states, more than %d", name, w+1, len(ids), publishChunk)
			}
			for _, id := range ids {
				if want := fmt.Sprintf("c-%04d", next); id != want {
					t.Fatalf("%s: write %d has %s where %s was due", name, w+1, id, want)
				}
				next++
				if forgot[id] != (w+1 == tc.failAt) {
					t.Errorf("%s: %s (write %d) forgotten %v", name, id, w+1, forgot[id])
				}
			}
		}
		if next != tc.states {
			t.Errorf("%s: %d states written, want %d", name, next, tc.states)
		}
		if b.failed != (tc.failAt > 0) {
			t.Errorf("%s: failed %v", name, b.failed)
		}
	}
}

package bidder

import (
	"sync"
	"sync/atomic"
	"testing"

	"rtb/bidder/campaign"
	"rtb/bidder/campaign/campaigntest"
)

// TestReloadUnderTraffic swaps campaign sets while requests are in flight (run with -race): no
// request may fail, and every answer is a bid or a no-bid.
func TestReloadUnderTraffic(t *testing.T) {
	sets := []*campaign.Set{campaign.Samples(), campaigntest.Synthetic(500, 7), {Source: "empty"}, campaigntest.Synthetic(50, 8)}
	b, _ := newTestBidder(t, sets[0], nil)
	bodies := exampleRequests(t)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var answered, bad atomic.Int64
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				for _, body := range bodies {
					r := post(b, body)
					answered.Add(1)
					if r.status != 200 && r.status != 204 {
						bad.Add(1)
						t.Errorf("status %d during reload: %s", r.status, r.body)
					}
				}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		if err := b.SetCampaigns(sets[i%len(sets)]); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if answered.Load() == 0 {
		t.Fatal("no request was answered during the reloads")
	}
}

package bidder

import (
	"runtime"
	"testing"

	"rtb/bidder/campaign/campaigntest"
	"rtb/pacing/heaptest"
)

// TestEngineHeapAllocations holds what the engine keeps per campaign for the garbage collector to
// mark at every cycle: at 100,000 campaigns a cycle's mark competes with requests for the cores, so
// a string or slice more per creative shows as milliseconds of waiting requests. It counted 12.8
// objects a campaign when each creative had its own segment strings and template slice.
func TestEngineHeapAllocations(t *testing.T) {
	if !heaptest.Alone(t) {
		return
	}
	const n = 10000
	set := campaigntest.Synthetic(n, 1)
	var pt pacingTable
	o0, s0 := heaptest.Live()
	e, err := newEngine(set, "rtb", &pt, testNow)
	if err != nil {
		t.Fatal(err)
	}
	o1, s1 := heaptest.Live()
	objects, scan := float64(o1-o0)/n, float64(s1-s0)/n
	t.Logf("engine: %.1f heap objects and %.0f scannable bytes a campaign", objects, scan)
	if objects > 6 {
		t.Errorf("the engine keeps %.1f heap objects a campaign, want at most 6", objects)
	}
	if scan > 800 {
		t.Errorf("the engine keeps %.0f scannable bytes a campaign, want at most 800", scan)
	}
	runtime.KeepAlive(e)
}

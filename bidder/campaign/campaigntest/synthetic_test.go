package campaigntest

import (
	"testing"

	"rtb/bidder/campaign"
)

// Benchmarks rest on these campaigns: they must be ones a campaign file could hold.
func TestSyntheticIsValid(t *testing.T) {
	set := Synthetic(2000, 1)
	if _, err := campaign.NewSet(set.Source, set.Campaigns); err != nil {
		t.Fatal(err)
	}
	again := Synthetic(2000, 1)
	for i := range set.Campaigns {
		if set.Campaigns[i].Bid != again.Campaigns[i].Bid || len(set.Campaigns[i].Creatives) != len(again.Campaigns[i].Creatives) {
			t.Fatalf("campaign %d differs between two draws of the same seed", i)
		}
	}
}

package pacing

import campaigns "rtb/bidder/campaign"

// Budgets returns the pacing budgets of a campaign file's campaigns, for SetBudgets. A paused
// campaign is inactive; flight dates become Start and End, so that the controller switches the
// campaign on and off at their times without a reload.
func Budgets(cs []*campaigns.Campaign) []Budget {
	bs := make([]Budget, 0, len(cs))
	for _, c := range cs {
		b := Budget{
			CampaignID: c.ID,
			Daily:      int64(c.Budget.Daily),
			Total:      int64(c.Budget.Total),
			Location:   c.Budget.Location,
			Active:     c.Status == "" || c.Status == campaigns.StatusActive, // as Campaign.Live
		}
		if c.Start != nil {
			b.Start = *c.Start
		}
		if c.End != nil {
			b.End = *c.End
		}
		bs = append(bs, b)
	}
	return bs
}

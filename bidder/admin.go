package bidder

import (
	"encoding/json"
	"net/http"
	"time"
)

// CampaignsAPI serves the campaigns in force as JSON, for the admin port.
func (b *Bidder) CampaignsAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := b.eng.Load()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(struct {
			Source    string    `json:"source"`
			LoadedAt  time.Time `json:"loaded_at"`
			Indexed   int       `json:"indexed"`
			Campaigns any       `json:"campaigns"`
		}{e.set.Source, e.builtAt, e.index.Len(), e.set.Campaigns})
	})
}

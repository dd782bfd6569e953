package pacing

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// apiModel is a read model with two campaigns, a fixed clock and the names set.
func apiModel(t *testing.T) (*ReadModel, time.Time) {
	t.Helper()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	m := NewReadModel()
	m.SetCampaigns(map[string]string{"c-2": "Winter boots", "c-1": "Spring sale"})
	day := time.Date(2026, 11, 22, 0, 0, 0, 0, berlin)
	at := day.Add(12 * time.Hour).UTC()
	m.Apply(State{
		CampaignID: "c-2", Day: day, UpdatedAt: at.Add(-5 * time.Minute), ValidUntil: at.Add(-5*time.Minute + 2*time.Second),
		Throttle: 1, Multiplier: 1.1, DailyBudget: 200_000_000, SpentToday: 60_000_000, TargetToday: 95_000_000,
		ProjectedToday: 130_500_000, SpentTotal: 1_060_000_000, TotalBudget: 5_000_000_000, Status: StatusUnderDelivering,
	})
	m.Apply(State{
		CampaignID: "c-1", Day: day, UpdatedAt: at.Add(-6 * time.Minute), ValidUntil: at.Add(-6*time.Minute + 2*time.Second),
		Throttle: 0.25, Multiplier: 1, DailyBudget: 500_000_000, SpentToday: 240_000_000, TargetToday: 240_000_000,
		ProjectedToday: 499_000_000, SpentTotal: 240_000_000, Status: StatusPacing,
	})
	m.Apply(State{
		CampaignID: "c-1", Day: day, UpdatedAt: at.Add(-time.Second), ValidUntil: at.Add(time.Second),
		Throttle: 0.5, Multiplier: 1, DailyBudget: 500_000_000, SpentToday: 250_000_000, TargetToday: 250_000_000,
		ProjectedToday: 500_000_000, SpentTotal: 250_000_000, Status: StatusPacing,
	})
	SetReadModelClock(m, func() time.Time { return at })
	return m, at
}

const apiGolden = `{
  "generated_at": "2026-11-22T11:00:00Z",
  "campaigns": [
    {
      "id": "c-1",
      "name": "Spring sale",
      "status": "pacing",
      "stale": false,
      "day_start": "2026-11-22T00:00:00+01:00",
      "day_end": "2026-11-23T00:00:00+01:00",
      "updated_at": "2026-11-22T10:59:59Z",
      "valid_until": "2026-11-22T11:00:01Z",
      "age_seconds": 1,
      "daily_budget_micros": 500000000,
      "daily_budget": "500.00",
      "spent_today_micros": 250000000,
      "spent_today": "250.00",
      "target_today_micros": 250000000,
      "target_today": "250.00",
      "projected_today_micros": 500000000,
      "projected_today": "500.00",
      "spent_total_micros": 250000000,
      "spent_total": "250.00",
      "total_budget_micros": null,
      "total_budget": null,
      "pace": 1,
      "throttle": 0.5,
      "bid_multiplier": 1,
      "series": [
        {
          "at": "2026-11-22T10:54:00Z",
          "spent_micros": 240000000,
          "target_micros": 240000000
        },
        {
          "at": "2026-11-22T10:59:59Z",
          "spent_micros": 250000000,
          "target_micros": 250000000
        }
      ]
    },
    {
      "id": "c-2",
      "name": "Winter boots",
      "status": "under_delivering",
      "stale": true,
      "day_start": "2026-11-22T00:00:00+01:00",
      "day_end": "2026-11-23T00:00:00+01:00",
      "updated_at": "2026-11-22T10:55:00Z",
      "valid_until": "2026-11-22T10:55:02Z",
      "age_seconds": 300,
      "daily_budget_micros": 200000000,
      "daily_budget": "200.00",
      "spent_today_micros": 60000000,
      "spent_today": "60.00",
      "target_today_micros": 95000000,
      "target_today": "95.00",
      "projected_today_micros": 130500000,
      "projected_today": "130.50",
      "spent_total_micros": 1060000000,
      "spent_total": "1060.00",
      "total_budget_micros": 5000000000,
      "total_budget": "5000.00",
      "pace": 0.631578947368421,
      "throttle": 1,
      "bid_multiplier": 1.1,
      "series": [
        {
          "at": "2026-11-22T10:55:00Z",
          "spent_micros": 60000000,
          "target_micros": 95000000
        }
      ]
    }
  ]
}`

func get(t *testing.T, h http.Handler, method, target string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAPIGolden(t *testing.T) {
	m, _ := apiModel(t)
	r := get(t, m.APIHandler(), http.MethodGet, "/api/pacing")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("status %d", r.StatusCode)
	}
	for k, want := range map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	raw := body(t, r)
	var out bytes.Buffer
	if err := json.Indent(&out, []byte(raw), "", "  "); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, raw)
	}
	if got := strings.TrimSpace(out.String()); got != apiGolden {
		t.Errorf("GET /api/pacing:\n%s\nwant:\n%s", got, apiGolden)
	}
}

func TestAPIQuery(t *testing.T) {
	m, _ := apiModel(t)
	h := m.APIHandler()
	decode := func(target string) Snapshot {
		t.Helper()
		r := get(t, h, http.MethodGet, target)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", target, r.StatusCode)
		}
		var s Snapshot
		if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		return s
	}
	for target, want := range map[string]string{
		"/api/pacing?campaign=c-2":              "c-2",
		"/api/pacing?campaign=c-2&campaign=c-1": "c-1 c-2",
		"/api/pacing?campaign=c-1,c-2":          "c-1 c-2",
		"/api/pacing?campaign=nope":             "",
		"/api/pacing?campaign=":                 "",
	} {
		if got := ids(decode(target)); got != want {
			t.Errorf("%s: %q, want %q", target, got, want)
		}
	}
	s := decode("/api/pacing?series=false")
	if len(s.Campaigns) != 2 || s.Campaigns[0].Series != nil || s.Campaigns[1].Series != nil {
		t.Errorf("series=false still has series: %+v", s.Campaigns)
	}
	raw := body(t, get(t, h, http.MethodGet, "/api/pacing?series=0&campaign=c-1"))
	if strings.Contains(raw, `"series"`) {
		t.Errorf("series=0: the field is still there: %s", raw)
	}

	if r := get(t, h, http.MethodGet, "/api/pacing?series=maybe"); r.StatusCode != http.StatusBadRequest {
		t.Errorf("series=maybe: status %d, want 400", r.StatusCode)
	}
	if r := get(t, h, http.MethodPost, "/api/pacing"); r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: status %d, Allow %q", r.StatusCode, r.Header.Get("Allow"))
	}
	r := get(t, h, http.MethodHead, "/api/pacing")
	if b := body(t, r); r.StatusCode != http.StatusOK || b != "" || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("HEAD: status %d, body %q", r.StatusCode, b)
	}

	empty := NewReadModel()
	if b := body(t, get(t, empty.APIHandler(), http.MethodGet, "/api/pacing")); !strings.Contains(b, `"campaigns":[]`) {
		t.Errorf("no campaigns: %s, want an empty list (not null)", b)
	}
}

// TestReadModelConcurrentUse applies States, renames and removes campaigns while the API is read
// and the metrics scraped; run it with -race.
func TestReadModelConcurrentUse(t *testing.T) {
	m := NewReadModel()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Collector())
	srv := httptest.NewServer(m.APIHandler())
	defer srv.Close()

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := []string{"c-1", "c-2", "c-3"}[(i+w)%3]
				m.Apply(rmState(id, rmDay, time.Duration(i)*time.Second))
				if i%50 == 0 {
					m.SetCampaigns(map[string]string{"c-1": "one", id: "changing"})
				}
			}
		})
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	for n := 0; time.Now().Before(deadline) || n < 20; n++ {
		r, err := http.Get(srv.URL + "?campaign=c-1,c-2")
		if err != nil {
			t.Fatal(err)
		}
		var s Snapshot
		err = json.NewDecoder(r.Body).Decode(&s)
		r.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
		m.Snapshot(time.Now())
	}
	close(stop)
	wg.Wait()
}

package pacing_test

// The dashboard is tested the way a campaign manager uses it: a real headless Chromium (Debian's
// chromium package; .ci/run installs it) loads /dashboard from a test server whose /api/pacing
// is fed by the market simulator driving a real Controller through the morning, and the test
// reads the page's DOM, watches it refresh, fail over to its error banner and show an empty state,
// and saves screenshots (to the test's temporary directory and, if RTB_SCREENSHOT_DIR is set,
// there too).

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"rtb/pacing"
	"rtb/pacing/sim"
)

func TestDashboardHandler(t *testing.T) {
	h := pacing.DashboardHandler(`/api/pacing?x="<y>"`)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/dashboard", nil))
	page := rec.Body.String()
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("status %d, Content-Type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("Content-Security-Policy %q does not hold the page to itself and its API", csp)
	}
	if !strings.Contains(page, `<meta name="rtb-api" content="/api/pacing?x=&#34;&lt;y&gt;&#34;">`) {
		t.Errorf("the API path is not in the page, escaped")
	}
	// Self-contained: nothing is loaded from anywhere. The SVG namespace is a name, not a fetch.
	rest := strings.ReplaceAll(page, `"http://www.w3.org/2000/svg"`, "")
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)https?://`), regexp.MustCompile(`(?i)\bsrc\s*=`), regexp.MustCompile(`(?i)@import`),
		regexp.MustCompile(`(?i)url\(`), regexp.MustCompile(`(?i)<link[^>]+href="(?:[^d]|d[^a])`),
	} {
		if m := bad.FindString(rest); m != "" {
			t.Errorf("the page refers to something outside itself: %q", m)
		}
	}
	if rec := httptest.NewRecorder(); true {
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/dashboard", nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST: status %d", rec.Code)
		}
	}
}

// chromium returns the browser's path, or fails the test naming the package to install.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: install Debian's chromium package (apt-get install chromium; .ci/run does)")
	return ""
}

// simCampaign is a campaign whose full admission would spend supply × its daily budget in a day of
// 1440 one-minute intervals.
func simCampaign(id string, daily int64, supply float64) sim.Campaign {
	const winRate, price = 0.3, 2_000
	return sim.Campaign{ID: id, Daily: daily, WinRate: winRate, Price: price,
		Opportunities: supply * float64(daily) / (1440 * winRate * price)}
}

// dashboardDay drives a real Controller through a simulated morning (24-hour day, one-minute
// steps) and feeds every State to a read model: one campaign paced evenly, one without enough
// traffic, one whose budget is cut below its spend at 11:00, one paused at 9:00. It returns the
// model and the time of the next step (the model's clock).
func dashboardDay(t *testing.T) (*pacing.ReadModel, time.Time) {
	t.Helper()
	start := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	camps := []sim.Campaign{
		simCampaign("c-brand", 500_000_000, 5),
		simCampaign("c-launch", 1_200_000_000, 0.6),
		simCampaign("c-retarget", 120_000_000, 8),
		simCampaign("c-teaser", 80_000_000, 4),
	}
	s := sim.New(sim.Config{Pacing: pacing.Config{Interval: time.Minute}, Start: start, Seed: 3}, camps)
	m := pacing.NewReadModel()
	m.SetCampaigns(map[string]string{
		"c-brand": "Brand awareness — autumn", "c-launch": "Product launch", "c-retarget": "Retargeting", "c-teaser": "Holiday teaser",
	})
	for s.Now().Before(start.Add(14*time.Hour + 30*time.Minute)) {
		switch s.Now() {
		case start.Add(9 * time.Hour):
			camps[3].Paused = true
			s.SetCampaigns(camps)
		case start.Add(11 * time.Hour):
			camps[2].Daily = 40_000_000
			s.SetCampaigns(camps)
		}
		s.Step()
		for _, st := range s.States() {
			m.Apply(st)
		}
	}
	return m, s.Now()
}

// domCard is what the page shows of one campaign.
type domCard struct {
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Fields      map[string]string `json:"fields"`
	Paths       map[string]string `json:"paths"`
	StaleHidden bool              `json:"staleHidden"`
}

const readCards = `[...document.querySelectorAll("article[data-campaign]")].map((c) => ({
	id: c.dataset.campaign,
	status: c.dataset.status,
	fields: Object.fromEntries([...c.querySelectorAll("[data-field]")].map((e) => [e.dataset.field, e.textContent])),
	paths: Object.fromEntries([...c.querySelectorAll("svg[data-chart] path[data-series]")].map((p) => [p.dataset.series, p.getAttribute("d")])),
	staleHidden: c.querySelector('[data-field="stale"]').hidden,
}))`

// moneyText and percentText are the page's formats (money and percent in dashboard.html).
func moneyText(micros int64) string {
	sign := ""
	if micros < 0 {
		sign, micros = "-", -micros
	}
	cents := (micros + 5_000) / 10_000
	units := strconv.FormatInt(cents/100, 10)
	for i := len(units) - 3; i > 0; i -= 3 {
		units = units[:i] + "," + units[i:]
	}
	return fmt.Sprintf("%s%s.%02d", sign, units, cents%100)
}

func percentText(x float64) string {
	p := x * 100
	if p > 0 && p < 10 {
		return strconv.FormatFloat(p, 'f', 1, 64) + "%"
	}
	return strconv.Itoa(int(math.Round(p))) + "%"
}

func TestDashboardInChromium(t *testing.T) {
	exe := chromium(t)
	m, simNow := dashboardDay(t)
	var clock atomic.Int64
	clock.Store(simNow.UnixNano())
	pacing.SetReadModelClock(m, func() time.Time { return time.Unix(0, clock.Load()).UTC() })
	snap := m.Snapshot(simNow)
	wantStatus := map[string]string{"c-brand": pacing.StatusPacing, "c-launch": pacing.StatusUnderDelivering,
		"c-retarget": pacing.StatusBudgetReached, "c-teaser": pacing.StatusPaused}
	for _, c := range snap.Campaigns {
		if c.Status != wantStatus[c.ID] {
			t.Fatalf("the simulated morning left %s %s, want %s (the test's setup is off)", c.ID, c.Status, wantStatus[c.ID])
		}
	}

	var down atomic.Bool
	api := m.APIHandler()
	mux := http.NewServeMux()
	mux.Handle("GET /api/pacing", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "pacer unavailable", http.StatusServiceUnavailable)
			return
		}
		api.ServeHTTP(w, r)
	}))
	mux.Handle("GET /dashboard", pacing.DashboardHandler("/api/pacing"))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// Everything, the browser included, ends by this deadline.
	bound, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), // this network refuses Chromium's own connections
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(bound, opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(actx)
	defer cancelTab()

	// Collect what the page writes to its console: an exception or an error fails the test.
	console := make(chan chromedp.ConsoleMessage, 64)
	messages := chromedp.Console(ctx)
	go func() {
		for msg, err := range messages {
			if err != nil {
				return
			}
			select {
			case console <- msg:
			default:
			}
		}
	}()
	defer func() {
		for {
			select {
			case msg := <-console:
				// The browser logs the 503s of step 4; anything else is the page's fault.
				expected := msg.Source == "network" && strings.Contains(msg.Text, "503")
				if msg.IsException() || msg.Type == chromedp.ConsoleError && !expected {
					t.Errorf("page console: %s (%s:%d)", msg, msg.URL, msg.Line)
				}
			default:
				return
			}
		}
	}()

	step := func(what string, d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	waitFor := func(what, predicate string) {
		t.Helper()
		step(what, 20*time.Second, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Poll[bool](predicate, chromedp.WithPollingInterval(100*time.Millisecond),
				chromedp.WithPollingTimeout(15*time.Second))(ctx, tg)
			return chromedp.Void{}, err
		})
	}
	cards := func() []domCard {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		cs, err := chromedp.Run(sctx, chromedp.Evaluate[[]domCard](readCards))
		if err != nil {
			t.Fatalf("reading the cards: %v", err)
		}
		return cs
	}
	screenshot := func(name string) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		dirs := []string{t.TempDir()}
		if d := os.Getenv("RTB_SCREENSHOT_DIR"); d != "" {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			dirs = append(dirs, d)
		}
		for _, d := range dirs {
			p := filepath.Join(d, name)
			if err := os.WriteFile(p, png, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("screenshot: %s", p)
		}
	}

	// 1. The page loads and shows every campaign with the API's figures.
	step("loading the dashboard", 30*time.Second, chromedp.Navigate(srv.URL+"/dashboard"))
	waitFor("the first data", `document.body.dataset.state === "ok" && document.querySelectorAll("article[data-campaign]").length === 4`)
	got := cards()
	if len(got) != len(snap.Campaigns) {
		t.Fatalf("%d cards, want %d", len(got), len(snap.Campaigns))
	}
	for i, c := range snap.Campaigns {
		d := got[i]
		if d.ID != c.ID || d.Status != c.Status {
			t.Errorf("card %d: %s %s, want %s %s (sorted by id)", i, d.ID, d.Status, c.ID, c.Status)
			continue
		}
		pace := "—"
		if c.Pace != nil {
			pace = percentText(*c.Pace)
		}
		want := map[string]string{
			"name": c.Name, "budget": moneyText(c.DailyBudgetMicros), "spent": moneyText(c.SpentTodayMicros),
			"target": moneyText(c.TargetTodayMicros), "projected": moneyText(c.ProjectedTodayMicros),
			"pace": pace, "throttle": percentText(c.Throttle), "multiplier": "×" + strconv.FormatFloat(c.BidMultiplier, 'f', 2, 64),
			"lifetime": moneyText(c.SpentTotalMicros),
		}
		for f, w := range want {
			if d.Fields[f] != w {
				t.Errorf("%s: %s shows %q, want %q", c.ID, f, d.Fields[f], w)
			}
		}
		if d.Fields["status"] == "" || d.Fields["verdict"] == "" || !d.StaleHidden {
			t.Errorf("%s: status %q, verdict %q, stale badge hidden %v", c.ID, d.Fields["status"], d.Fields["verdict"], d.StaleHidden)
		}
		checkChart(t, c, d)
	}
	if s := cards()[1].Fields["multiplier"]; s == "×1.00" {
		t.Errorf("the under-delivering campaign shows bid adjustment %s; the simulation should have raised it", s)
	}
	screenshot("dashboard.png")

	// 2. It refreshes by itself: ten minutes without an update make every campaign stale.
	clock.Add(int64(10 * time.Minute))
	waitFor("the stale badges", `document.querySelectorAll('[data-field="stale"]:not([hidden])').length === 4`)

	// 3. A campaign removed from the model leaves the page.
	m.SetCampaigns(map[string]string{"c-brand": "Brand awareness — autumn", "c-launch": "Product launch", "c-retarget": "Retargeting"})
	waitFor("the removal", `document.querySelectorAll("article[data-campaign]").length === 3 && !document.querySelector('[data-campaign="c-teaser"]')`)

	// 4. The API down: an error banner, the last figures kept.
	down.Store(true)
	waitFor("the error banner", `document.body.dataset.state === "error" && !document.getElementById("error-banner").hidden &&
		document.getElementById("error-banner").textContent.includes("HTTP 503")`)
	if n := len(cards()); n != 3 {
		t.Errorf("%d cards while the API is down, want the last 3 kept", n)
	}
	screenshot("dashboard-error.png")
	down.Store(false)
	waitFor("the recovery", `document.body.dataset.state === "ok" && document.getElementById("error-banner").hidden`)

	// 5. No campaign to show: a message, not an empty page.
	step("loading a filtered dashboard", 30*time.Second, chromedp.Navigate(srv.URL+"/dashboard?campaign=nope"))
	waitFor("the empty state", `document.body.dataset.state === "ok" && !document.getElementById("empty").hidden &&
		document.getElementById("empty").textContent.includes("No campaign nope") &&
		document.querySelectorAll("article[data-campaign]").length === 0`)
	screenshot("dashboard-empty.png")
	step("loading one campaign", 30*time.Second, chromedp.Navigate(srv.URL+"/dashboard?campaign=c-launch"))
	waitFor("one campaign", `document.body.dataset.state === "ok" && document.querySelectorAll("article[data-campaign]").length === 1 &&
		!!document.querySelector('[data-campaign="c-launch"]')`)
}

var coord = regexp.MustCompile(`[ML](-?[\d.]+) (-?[\d.]+)`)

// checkChart checks a card's chart: a spent and a target line with a point per series point, in
// the chart's box and in time order; the plan and projection except for a paused campaign.
func checkChart(t *testing.T, c pacing.CampaignPacing, d domCard) {
	t.Helper()
	for _, series := range []string{"spent", "target", "budget"} {
		if d.Paths[series] == "" {
			t.Errorf("%s: no %s path in the chart", c.ID, series)
		}
	}
	_, hasPlan := d.Paths["plan"]
	_, hasProjected := d.Paths["projected"]
	if paused := c.Status == pacing.StatusPaused; hasPlan == paused || hasProjected == paused {
		t.Errorf("%s (%s): plan drawn %v, projection drawn %v", c.ID, c.Status, hasPlan, hasProjected)
	}
	pts := coord.FindAllStringSubmatch(d.Paths["spent"], -1)
	if len(pts) != len(c.Series) {
		t.Errorf("%s: spent line has %d points, want %d (one per series point)", c.ID, len(pts), len(c.Series))
	}
	prevX := -1.0
	for _, p := range pts {
		x, _ := strconv.ParseFloat(p[1], 64)
		y, _ := strconv.ParseFloat(p[2], 64)
		if x < 0 || x > 640 || y < 0 || y > 240 || x < prevX {
			t.Errorf("%s: spent point (%v, %v) outside the 640×240 chart or out of order", c.ID, x, y)
			break
		}
		prevX = x
	}
}

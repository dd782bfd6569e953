package pacing

import (
	_ "embed"
	"html"
	"net/http"
	"strconv"
	"strings"
)

// dashboardHTML is the whole page: markup, style and script inline, no external asset of any kind,
// so that it works on an admin port with no way out to the internet (and the Content-Security-Policy
// below holds it to that).
//
//go:embed dashboard.html
var dashboardHTML string

// apiPlaceholder in dashboard.html is replaced by the API's path.
const apiPlaceholder = "__RTB_PACING_API__"

// DashboardHandler serves GET /dashboard: the live pacing page for campaign managers. The page
// fetches apiPath (the path of APIHandler on the same host, e.g. "/api/pacing") every 3 seconds and
// draws, per campaign, its spend against its target through the day and its figures. The page's
// own query string is passed on to the API, so /dashboard?campaign=c-42 shows one campaign.
//
// Elements a test or a script may rely on: body[data-state] is "loading", "ok" or "error";
// #last-updated; #error-banner (shown while the API cannot be reached); #empty (shown when there is
// no campaign); one article[data-campaign=ID][data-status=STATUS] per campaign, holding
// [data-field=name|id|status|verdict|budget|spent|target|pace|projected|throttle|multiplier|lifetime]
// and an svg[data-chart] whose paths are [data-series=spent|target|plan|projected|budget].
func DashboardHandler(apiPath string) http.Handler {
	page := []byte(strings.Replace(dashboardHTML, apiPlaceholder, html.EscapeString(apiPath), 1))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(page)))
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Inline style and script only; the only connection is to the API on this origin.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "+
			"connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		if r.Method == http.MethodHead {
			return
		}
		w.Write(page)
	})
}

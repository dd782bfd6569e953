package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"rtb/events/eventstest"
)

// buildRTB builds the binary once per test run, as a user's `go build ./cmd/rtb` would.
func buildRTB(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rtb")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond until it holds or the deadline passes; no test here depends on how fast.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func postFile(t *testing.T, url, path string) (int, string) {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// noBids is the server's count of no-bids for reason, from its /metrics.
func noBids(t *testing.T, admin, reason string) string {
	t.Helper()
	_, m := get("http://" + admin + "/metrics")
	return grepLines(m, `rtb_no_bid_total{reason="`+reason+`"}`)
}

// grepLines is the lines of text that start with prefix.
func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

const oneCampaign = `campaigns:
  - id: only-%s
    advertiser_domain: shop.example
    categories: [IAB22]
    creatives:
      - id: b
        type: banner
        w: 300
        h: 250
        html: '<a href="{{CLICK_URL}}">ad</a><img src="{{IMP_URL}}">'
        landing_url: https://www.shop.example/
    bid: {type: fixed_cpm, cpm: 1.25, max_bid: 2}
    budget: {daily: 100}
`

// TestServe runs `rtb serve` as a user would: it bids on an IAB example, reloads its campaign file
// on change and on SIGHUP, keeps the old campaigns when the file breaks, serves metrics that
// promtool accepts, and shuts down cleanly on SIGTERM.
func TestServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildRTB(t)
	dir := t.TempDir()
	camp := filepath.Join(dir, "campaigns.yaml")
	if err := os.WriteFile(camp, fmt.Appendf(nil, oneCampaign, "a"), 0o644); err != nil {
		t.Fatal(err)
	}
	listen, admin := eventstest.FreeAddr(t), eventstest.FreeAddr(t)
	var logs lockedBuffer
	// Exploration would bid a random 50-100% of the value on 2% of requests; this test asserts the
	// exact price the campaign states, which is what an unshaded first-price bid is.
	cmd := exec.Command(bin, "serve", "--listen", listen, "--admin", admin, "--campaigns", camp, "--broker-addr", eventstest.FreeAddr(t), "--shading-explore", "0")
	cmd.Env = append(os.Environ(), "RTB_DATA_DIR="+filepath.Join(dir, "data"))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("rtb serve output:\n%s", logs.String())
		}
	})
	waitFor(t, "the exchange port to be ready", func() bool { s, _ := get("http://" + listen + "/readyz"); return s == 200 })

	bidURL := "http://" + listen + "/openrtb2/bid"
	example := filepath.Join("..", "..", "bidder", "openrtb", "testdata", "requests", "v25-banner.json")
	status, body := postFile(t, bidURL, example)
	if status != 200 || !strings.Contains(body, `"cid":"only-a"`) || !strings.Contains(body, `"price":1.25`) {
		t.Fatalf("bid: %d %s", status, body)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "notice.key")); err != nil {
		t.Errorf("no notice key kept in the data dir (RTB_DATA_DIR): %v", err)
	}

	// A changed file is picked up without a signal.
	os.WriteFile(camp, fmt.Appendf(nil, oneCampaign, "b"), 0o644)
	waitFor(t, "the file change to be reloaded", func() bool {
		_, b := get("http://" + admin + "/api/campaigns")
		return strings.Contains(b, `"only-b"`)
	})
	// A broken file is refused and the campaigns in force keep bidding.
	os.WriteFile(camp, []byte("campaigns:\n  - id: broken\n    dayly: 5\n"), 0o644)
	waitFor(t, "the broken file to be refused", func() bool { return strings.Contains(logs.String(), "campaign reload refused") })
	// A bid the race-built server could not answer within its budget on a loaded CI machine is a
	// no-bid for a reason the reload has nothing to do with: ask again then, and only then.
	for try := 0; ; try++ {
		before := noBids(t, admin, "deadline")
		status, body = postFile(t, bidURL, example)
		if status == 200 || try == 4 || noBids(t, admin, "deadline") == before {
			break
		}
	}
	if status != 200 || !strings.Contains(body, `"cid":"only-b"`) {
		_, m := get("http://" + admin + "/metrics")
		t.Fatalf("bid after a broken reload: %d %s; no-bid reasons:\n%s", status, body, grepLines(m, "rtb_no_bid_total"))
	}
	// SIGHUP re-reads the file.
	os.WriteFile(camp, fmt.Appendf(nil, oneCampaign, "c"), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "SIGHUP reload", func() bool {
		_, b := get("http://" + admin + "/api/campaigns")
		return strings.Contains(b, `"only-c"`)
	})

	// The pacer publishes states for the campaigns in force; the admin port shows them.
	waitFor(t, "pacing states on /api/pacing", func() bool {
		_, b := get("http://" + admin + "/api/pacing?series=false")
		return strings.Contains(b, `"id":"only-c"`) && strings.Contains(b, `"throttle"`)
	})
	if status, page := get("http://" + admin + "/dashboard"); status != 200 || !strings.Contains(page, "<html") {
		t.Errorf("dashboard: %d", status)
	}

	status, metrics := get("http://" + admin + "/metrics")
	// The pacing series are written by the admin port itself, after the registry's.
	if status != 200 || !strings.Contains(metrics, `rtb_bid_requests_total{outcome="bid"} 2`) || !strings.Contains(metrics, `rtb_campaign_reloads_total{result="error"}`) ||
		!strings.Contains(metrics, `rtb_pacing_throttle{campaign="only-c"}`) || !strings.Contains(metrics, "\nrtb_pacing_overspend_micros_total ") {
		t.Errorf("metrics: %d\n%s", status, metrics)
	}
	// The collector's own accounts, which say what one cycle must mark at 100,000 campaigns.
	for _, name := range []string{"go_gc_scan_heap_bytes", "go_gc_heap_live_bytes", "go_gc_heap_objects_objects", "go_cpu_classes_gc_total_cpu_seconds_total"} {
		if !strings.Contains(metrics, "\n"+name+" ") {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if promtool, err := exec.LookPath("promtool"); err != nil {
		t.Error("promtool not found: install Debian's prometheus package (.ci/run does)")
	} else {
		check := exec.Command(promtool, "check", "metrics")
		check.Stdin = strings.NewReader(metrics)
		if out, err := check.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("promtool check metrics on /metrics: %v\n%s", err, out)
		}
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("rtb serve did not stop on SIGTERM")
	}
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	var last string
	for sc.Scan() {
		last = sc.Text()
	}
	if !strings.Contains(last, "stopped") {
		t.Errorf("last log line %q, want the stop", last)
	}
}

func TestServeRefusesBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildRTB(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("campaigns:\n  - id: c-1\n    dayly: 5\n"), 0o644)
	tests := []struct {
		name string
		args []string
		env  []string
		code int
		want string
	}{
		{"bad campaign file names file, campaign and field", []string{"serve", "--campaigns", bad}, nil, 1, `bad.yaml: campaign "c-1": dayly`},
		{"missing campaign file", []string{"serve", "--campaigns", filepath.Join(dir, "nope.yaml")}, nil, 1, "nope.yaml"},
		{"short notice key", []string{"serve", "--notice-key", "short"}, nil, 1, "notice signing key has 5 bytes"},
		{"bad env value names the variable", []string{"serve"}, []string{"RTB_BUDGET=fast"}, 1, "RTB_BUDGET"},
		{"unknown flag", []string{"serve", "--nope"}, nil, 1, "flag provided but not defined: -nope"},
		{"unknown command", []string{"frobnicate"}, nil, 2, `unknown command "frobnicate"`},
		{"help", []string{"serve", "--help"}, nil, 0, "RTB_NOTICE_KEY"},
		{"bidder needs a cluster", []string{"bidder"}, nil, 1, "--kafka is required"},
		{"pacer needs a cluster", []string{"pacer"}, nil, 1, "--kafka is required"},
		{"pacer help", []string{"pacer", "--help"}, nil, 0, "split the campaigns by Kafka partition"},
		{"bad shading mode", []string{"serve", "--shading", "1.5"}, nil, 1, `--shading "1.5": want learned, none, or a factor`},
		{"bad exploration share", []string{"serve", "--shading-explore", "0.9"}, nil, 1, "--shading-explore 0.9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tc.args...)
			cmd.Env = append(append(os.Environ(), "RTB_DATA_DIR="+filepath.Join(dir, "data"), "RTB_LISTEN=127.0.0.1:0", "RTB_ADMIN=127.0.0.1:0", "RTB_BROKER_ADDR=127.0.0.1:0"), tc.env...)
			out, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != tc.code || !strings.Contains(string(out), tc.want) {
				t.Errorf("exit %d, want %d; output should contain %q:\n%s", code, tc.code, tc.want, out)
			}
		})
	}
}

// startServe runs `rtb serve` on free ports with dir as its data dir and returns its addresses and a
// function that stops it with SIGTERM and waits for a clean exit.
func startServe(t *testing.T, bin, dir string, extra ...string) (listen, admin, broker string, stop func()) {
	t.Helper()
	listen, admin, broker = eventstest.FreeAddr(t), eventstest.FreeAddr(t), eventstest.FreeAddr(t)
	var logs lockedBuffer
	cmd := exec.Command(bin, append([]string{"serve", "--listen", listen, "--admin", admin, "--broker-addr", broker, "--data-dir", dir}, extra...)...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitFor(t, "rtb serve to be ready", func() bool { s, _ := get("http://" + listen + "/readyz"); return s == 200 })
	return listen, admin, broker, func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("rtb serve exit: %v\n%s", err, logs.String())
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("rtb serve did not stop\n%s", logs.String())
		}
	}
}

// TestServeRestartKeepsEvents: a billing notice accepted before a restart of `rtb serve` is still on
// rtb.wins after it, read by a plain Kafka client.
func TestServeRestartKeepsEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildRTB(t)
	dir := t.TempDir()
	listen, _, _, stop := startServe(t, bin, dir)
	example := filepath.Join("..", "..", "bidder", "openrtb", "testdata", "requests", "v25-banner.json")
	status, body := postFile(t, "http://"+listen+"/openrtb2/bid", example)
	if status != 200 {
		t.Fatalf("bid: %d %s", status, body)
	}
	var resp struct {
		SeatBid []struct{ Bid []struct{ BURL string } }
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	burl := strings.ReplaceAll(resp.SeatBid[0].Bid[0].BURL, "${AUCTION_PRICE}", "1.5")
	burl = strings.Replace(burl, "http://localhost"+portOf(listen), "http://"+listen, 1)
	if status, b := get(burl); status != 200 {
		t.Fatalf("bill notice: %d %s", status, b)
	}
	stop()

	_, _, broker, stop2 := startServe(t, bin, dir)
	defer stop2()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, GroupID: "restart-test", Topic: "rtb.wins", MaxWait: 200 * time.Millisecond})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("no event on rtb.wins after the restart: %v", err)
	}
	if !strings.Contains(string(m.Value), `"type":"bill"`) || !strings.Contains(string(m.Value), `"price_micros":1500000`) {
		t.Errorf("event after restart: %s", m.Value)
	}
}

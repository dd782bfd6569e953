package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"rtb/bidder/notice"
	"rtb/events"
	"rtb/events/eventstest"
)

// The crash tests run the real binary as subprocesses against an embedded broker in the test
// process, kill them with SIGKILL at the worst moments (notices in flight, money queued in memory,
// the broker down and the spill in use) and restart them on the same data dirs. What a buyer's
// finance team asks of it: every bill answered 2xx is on rtb.wins exactly once (by event id) and
// counted once by the pacer; nothing else is.

// proc is one `rtb` subprocess.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	logs   *lockedBuffer
	exited chan error
}

// startProc starts bin with args and waits until ready answers 200.
func startProc(t *testing.T, name, bin, ready string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, cmd: exec.Command(bin, args...), logs: &lockedBuffer{}, exited: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("%s log (last 4 KB):\n%s", name, tail(p.logs.String(), 4096))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if s, _ := get(ready); s == 200 {
			return p
		}
		select {
		case err := <-p.exited:
			p.exited <- err
			t.Fatalf("%s exited before it was ready: %v\n%s", name, err, p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready at %s\n%s", name, ready, p.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill9 kills the process with SIGKILL: no shutdown, no flush, no spill of what is queued.
func (p *proc) kill9() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("kill -9 %s: %v", p.name, err)
	}
	<-p.exited
	p.exited <- errors.New("killed")
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// crashBroker is the embedded broker, stoppable and restartable on its address and log.
type crashBroker struct {
	t         *testing.T
	addr, dir string
	b         *events.Broker
}

func (c *crashBroker) start() {
	c.t.Helper()
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c.b, err = events.StartBroker(context.Background(), events.BrokerConfig{
			Addr: c.addr, DataDir: c.dir, Partitions: 4, Logger: slog.New(slog.DiscardHandler),
		}); err == nil {
			c.t.Cleanup(c.b.Close)
			return
		}
	}
	c.t.Fatalf("start broker on %s: %v", c.addr, err)
}

func (c *crashBroker) stop() { c.b.Close() }

// exchange sends billing notices as an exchange does: each one until it is answered 2xx (a retry
// carries the same token, so it is the same event), and remembers what was acknowledged.
type exchange struct {
	url      string
	signer   *notice.Signer
	seq      atomic.Int64
	stopping atomic.Bool
	wg       sync.WaitGroup
	mu       sync.Mutex
	acked    map[string]int64 // request id → price (CPM micros)
	spend    map[string]int64 // campaign → acknowledged CPM micros
	statuses map[int]int      // answers seen, 0 for a failed connection
}

var crashCampaigns = []string{"sample-banner", "sample-video", "sample-native"}

func newExchange(t *testing.T, listen, key string) *exchange {
	s, err := notice.NewSigner([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return &exchange{url: "http://" + listen, signer: s, acked: map[string]int64{}, spend: map[string]int64{}, statuses: map[int]int{}}
}

func (x *exchange) run(senders int) {
	client := &http.Client{Timeout: 30 * time.Second}
	for range senders {
		x.wg.Add(1)
		go func() {
			defer x.wg.Done()
			for !x.stopping.Load() {
				n := x.seq.Add(1)
				camp := crashCampaigns[n%int64(len(crashCampaigns))]
				c := notice.Claims{
					RequestID: fmt.Sprintf("crash-%d", n), ImpID: "1", CampaignID: camp, CreativeID: "b",
					Exchange: "x", Currency: "USD", BidMicros: 2_000_000, Time: time.Now(), Segment: "banner-300x250|site",
				}
				// Whole thousands of micros, so that the pacer's spend (CPM ÷ 1000) is exact.
				price := 1000 * (1000 + n%500)
				u := fmt.Sprintf("%s/bill?t=%s&p=%.3f", x.url, x.signer.Append(nil, &c), float64(price)/1e6)
				for {
					status := 0
					if resp, err := client.Get(u); err == nil {
						status = resp.StatusCode
						resp.Body.Close()
					}
					x.mu.Lock()
					x.statuses[status]++
					if status == 200 {
						x.acked[c.RequestID] = price
						x.spend[camp] += price
					}
					x.mu.Unlock()
					if status == 200 {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
}

func (x *exchange) ackedN() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.acked)
}

// waitAcked waits for n more acknowledged bills.
func (x *exchange) waitAcked(t *testing.T, n int) {
	t.Helper()
	want := x.ackedN() + n
	deadline := time.Now().Add(60 * time.Second)
	for x.ackedN() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d bills acknowledged, waited for %d; answers %v", x.ackedN(), want, x.statuses)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop lets every sender finish its notice (until acknowledged) and stops them.
func (x *exchange) stop() {
	x.stopping.Store(true)
	x.wg.Wait()
}

// billsOnKafka reads rtb.wins whole and returns the billing events by event id, with how many
// messages carried each.
func billsOnKafka(t *testing.T, broker string) (map[string]events.Event, map[string]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	parts, err := events.PartitionCount(ctx, []string{broker}, events.TopicWins)
	if err != nil {
		t.Fatal(err)
	}
	byID, copies := map[string]events.Event{}, map[string]int{}
	for part := range parts {
		conn, err := kafka.DialLeader(ctx, "tcp", broker, events.TopicWins, part)
		if err != nil {
			t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		if last == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: events.TopicWins, Partition: part, MaxWait: 200 * time.Millisecond})
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("read %s/%d: %v", events.TopicWins, part, err)
			}
			if e, err := events.Decode(m.Value); err == nil && e.Type == events.Bill {
				byID[e.ID] = e
				copies[e.ID]++
			}
			if m.Offset >= last-1 {
				break
			}
		}
		r.Close()
	}
	return byID, copies
}

// pacerSpend reads the pacer's spend today per campaign (micros) from /api/pacing.
func pacerSpend(admin string) (map[string]int64, error) {
	resp, err := http.Get("http://" + admin + "/api/pacing?series=false")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var doc struct {
		Campaigns []struct {
			ID    string `json:"id"`
			Spent int64  `json:"spent_today_micros"`
		} `json:"campaigns"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, c := range doc.Campaigns {
		out[c.ID] = c.Spent
	}
	return out, nil
}

// TestCrashesLoseNoBill: bills flow into `rtb bidder` while it is killed with SIGKILL mid-traffic,
// while the broker is down (money in the spill and queued in memory), and while the pacer is
// killed too; everything restarts on the same data dirs. Every acknowledged bill must be on Kafka
// once by event id, no unacknowledged one may appear, and the pacer's spend must be exactly the
// acknowledged prices. Before bills were acknowledged only once durable, the kill during the
// outage lost every bill acknowledged from the memory queue.
func TestCrashesLoseNoBill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildRTB(t)
	br := &crashBroker{t: t, addr: eventstest.FreeAddr(t), dir: t.TempDir()}
	br.start()
	key := strings.Repeat("crash-test-key-", 3)
	listen, admin, bidderDir := eventstest.FreeAddr(t), eventstest.FreeAddr(t), t.TempDir()
	startBidder := func() *proc {
		return startProc(t, "rtb bidder", bin, "http://"+listen+"/healthz", "bidder", "--kafka", br.addr,
			"--listen", listen, "--admin", admin, "--data-dir", bidderDir, "--notice-key", key,
			"--notice-url", "http://"+listen, "--drain-delay", "0s")
	}
	pacerAdmin, pacerDir := eventstest.FreeAddr(t), t.TempDir()
	startPacer := func() *proc {
		return startProc(t, "rtb pacer", bin, "http://"+pacerAdmin+"/api/pacing", "pacer", "--kafka", br.addr,
			"--admin", pacerAdmin, "--data-dir", pacerDir, "--shading-interval", "0")
	}
	bd, pc := startBidder(), startPacer()
	// The wiring too: the exchange port of the real binary serves nothing of its admin port.
	for _, p := range []string{"/metrics", "/api/campaigns", "/api/pacing", "/api/ctr", "/dashboard", "/debug/pprof/", "/debug/pprof/heap"} {
		if status, _ := get("http://" + listen + p); status != 404 {
			t.Errorf("GET %s on the exchange port: %d, want 404", p, status)
		}
		if status, _ := get("http://" + admin + p); status != 200 {
			t.Errorf("GET %s on the admin port: %d, want 200", p, status)
		}
	}

	x := newExchange(t, listen, key)
	x.run(8)
	x.waitAcked(t, 300)
	bd.kill9() // mid-traffic
	bd = startBidder()
	x.waitAcked(t, 300)

	br.stop() // the broker goes: bills go to the spill
	x.waitAcked(t, 300)
	bd.kill9() // with the spill in use and money queued
	pc.kill9()
	br.start()
	bd = startBidder()
	startPacer() // runs to the end (its cleanup stops it)
	x.waitAcked(t, 300)
	bd.kill9() // once more, while the spill may still be replaying
	startBidder()
	x.waitAcked(t, 300)
	x.stop()

	var onKafka map[string]events.Event
	var copies map[string]int
	missing := func() int {
		onKafka, copies = billsOnKafka(t, br.addr)
		byReq := map[string]bool{}
		for _, e := range onKafka {
			byReq[e.RequestID] = true
		}
		n := 0
		for id := range x.acked {
			if !byReq[id] {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(60 * time.Second)
	for missing() > 0 && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
	}
	if n := missing(); n > 0 {
		t.Fatalf("%d of %d acknowledged bills are not on Kafka (lost); answers %v", n, len(x.acked), x.statuses)
	}
	if len(onKafka) != len(x.acked) {
		t.Errorf("%d distinct billing events on Kafka for %d acknowledged bills", len(onKafka), len(x.acked))
	}
	dups := 0
	for _, n := range copies {
		dups += n - 1
	}
	t.Logf("%d bills acknowledged, %d distinct on Kafka, %d duplicate messages (consumers drop them by id); answers %v",
		len(x.acked), len(onKafka), dups, x.statuses)

	var got map[string]int64
	deadline = time.Now().Add(60 * time.Second)
	for {
		var err error
		got, err = pacerSpend(pacerAdmin)
		ok := err == nil
		for _, c := range crashCampaigns {
			ok = ok && got[c] == x.spend[c]/1000
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			for _, c := range crashCampaigns {
				t.Errorf("pacer: %s spent %d micros today, acknowledged bills %d (%v)", c, got[c], x.spend[c]/1000, err)
			}
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
}

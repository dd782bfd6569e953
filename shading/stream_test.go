package shading

import (
	"context"
	"log/slog"
	"math"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"rtb/auction"
	"rtb/events"
	"rtb/events/eventstest"
)

func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("RTB_TEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func startBroker(t *testing.T) []string {
	t.Helper()
	return eventstest.Broker(t, testLogger())
}

// run starts fn in the background; the test's cleanup stops it and checks it returned nil.
func run(t *testing.T, name string, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var err error
	wg.Go(func() { err = fn(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
}

// Through the event stream: outcomes of one segment against a known log-normal market go to Kafka;
// the trainer fits and publishes, a bidder's Reader loads the models, and its shader bids within
// 2% of the true curve's optimum, within 30 s.
func TestTrainerToShaderThroughKafka(t *testing.T) {
	brokers := startBroker(t)
	mu, sigma := math.Log(1.5e6), 0.6
	const exchange, segment = "x", "banner-300x250|site"
	evs := lognormalMarket(11, 8000, mu, sigma, 0.3, exchange, segment, time.Now())
	p, err := events.NewProducer(events.ProducerConfig{Brokers: brokers, SpillDir: t.TempDir(), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		p.Publish(&evs[i])
	}
	// A model another writer broke must be skipped, not crash the reader.
	w := events.NewStateWriter(brokers, events.TopicModels)
	defer w.Close()
	if err := w.Write(context.Background(), events.KV{Key: "x|video", Value: []byte(`{"v":1,"mu":"junk"}`)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}

	treg := prometheus.NewRegistry()
	// The window holds every event: a backlog arrives topic by topic (all losses, then all wins, or
	// the reverse), and a window by count would keep a biased tail of it.
	tr, err := NewTrainer(TrainerConfig{Brokers: brokers, Interval: 300 * time.Millisecond, Window: 10000, Registerer: treg, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "trainer", tr.Run)

	shader, err := auction.NewLearnedShader(auction.ShaderConfig{Explore: -1})
	if err != nil {
		t.Fatal(err)
	}
	rreg := prometheus.NewRegistry()
	rd, err := NewReader(ReaderConfig{Brokers: brokers, Shader: shader, RebuildInterval: 100 * time.Millisecond, Registerer: rreg, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "reader", rd.Run)
	select {
	case <-rd.Ready():
	case <-ctx.Done():
		t.Fatal("reader not ready in 30 s")
	}

	truth, err := auction.NewSegmentModel(auction.ModelParams{Key: auction.ModelKey{Exchange: exchange}, Mu: mu, Sigma: sigma, N: 1, FittedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	values := []int64{1_000_000, 2_000_000, 4_000_000}
	start := time.Now()
	for {
		worst := 0.0
		for _, v := range values {
			want := float64(truth.OptimalBid(v))
			worst = max(worst, math.Abs(float64(shader.Shade(exchange, segment, v, 0))-want)/want)
		}
		m := shader.Models().Lookup(exchange, segment)
		if m != nil && m.Params().Key.Inventory != "" && worst <= 0.02 && m.Params().N == len(evs) {
			t.Logf("after %v: model %+v, bids within %.2f%% of the optimum", time.Since(start).Round(time.Millisecond), m.Params(), 100*worst)
			break
		}
		if ctx.Err() != nil {
			var got any = "none"
			if m != nil {
				got = m.Params()
			}
			t.Fatalf("no model within 2%% of the optimum in 30 s: model %v, worst %.2f%%", got, 100*worst)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := testutil.ToFloat64(tr.metrics.outcome("win")) + testutil.ToFloat64(tr.metrics.outcome("outbid")) + testutil.ToFloat64(tr.metrics.outcome("min_to_win")); n != float64(len(evs)) {
		t.Errorf("%v observations, want %d", n, len(evs))
	}
	if got := testutil.ToFloat64(rd.rejected); got != 1 {
		t.Errorf("rejected %v models, want the broken one", got)
	}
	// Every key level was published (coarser ones serve this exchange's other segments).
	if got := shader.Models().Lookup(exchange, "video|app"); got == nil || got.Params().Key != (auction.ModelKey{Exchange: exchange}) {
		t.Errorf("exchange-level fallback: %v", got)
	}
	if st := shader.Stats(); st.Shaded == 0 {
		t.Errorf("stats %+v", st)
	}
}

package main

import (
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
	"github.com/valyala/fasthttp"

	"rtb/auction"
	"rtb/bidder"
	"rtb/bidder/campaign"
	"rtb/bidder/notice"
	"rtb/events"
	"rtb/features"
	"rtb/pacing"
	"rtb/shading"
)

type serveFlags struct {
	listen, admin, dataDir, campaigns, featuresFile string
	noticeURL, noticeKey, seat                      string
	budget, allowance, drainDelay, shutdownTimeout  time.Duration
	maxBody, maxInFlight                            int
	logLevel, logFormat                             string
	kafka, brokerAddr                               string
	bidSample                                       float64
	noticeMaxAge, dayLength                         time.Duration
	billOnWin                                       string
	pacing                                          bool
	shading                                         string
	shadingExplore                                  float64
	shadingInterval                                 time.Duration
	capPending, featuresLookback                    time.Duration
	ctrPriorImps                                    float64
}

// The roles of the binary: serve runs them all on one machine; bidder and pacer run one role each
// against a real Kafka cluster.
const (
	roleServe  = "serve"
	roleBidder = "bidder"
	rolePacer  = "pacer"
)

var roleUsage = map[string]string{
	roleServe:  "Usage: rtb serve [flags]\n\nRuns everything on one machine: the bidder on the exchange port, the notice endpoints, the\npacer, the shading trainer, the feature updater (frequency caps, CTR estimates), the admin port\n(/metrics, /api/campaigns, /api/pacing, /api/ctr, /dashboard, /debug/pprof/, and POST /api/explain:\nwhy a bid request gets the answer it gets, per campaign) and, unless --kafka names a cluster, an\nembedded Kafka-compatible broker.",
	roleBidder: "Usage: rtb bidder --kafka BROKERS [flags]\n\nRuns the bidder alone (exchange port, notice endpoints, admin port) against a Kafka cluster; it\nobeys the pacing states the pacers publish on rtb.pacing, shades first-price bids with the models\non rtb.models, and reads every impression and click for frequency caps and CTR estimates.",
	rolePacer:  "Usage: rtb pacer --kafka BROKERS [flags]\n\nRuns a budget pacer and the bid-shading trainer alone (and an admin port with /api/pacing and\n/dashboard). Pacers of one consumer group split the campaigns by Kafka partition; one that dies\nis replaced by the others. Run the trainer once per cluster: give other pacers --shading-interval 0.",
}

func serve(args []string) error     { return runRoles(roleServe, args) }
func bidderCmd(args []string) error { return runRoles(roleBidder, args) }
func pacerCmd(args []string) error  { return runRoles(rolePacer, args) }

func runRoles(role string, args []string) error {
	fs := flag.NewFlagSet(role, flag.ContinueOnError)
	var f serveFlags
	fs.StringVar(&f.listen, "listen", ":8080", "exchange port address: POST /openrtb2/bid, /healthz, /readyz")
	fs.StringVar(&f.admin, "admin", "127.0.0.1:8081", "admin address (not for exchanges): /metrics, /api/campaigns, /debug/pprof/")
	fs.StringVar(&f.dataDir, "data-dir", "rtb-data", "directory for state kept across restarts: the embedded broker's log, the spill\nfile of events Kafka could not take yet, the generated notice signing key")
	fs.StringVar(&f.campaigns, "campaigns", "", "campaign `FILE` (YAML or JSON) replacing the built-in samples;\nreloaded on change and on SIGHUP")
	fs.StringVar(&f.featuresFile, "features", "", "feature snapshot `FILE` (JSON Lines of user and publisher records)\nreplacing the built-in sample")
	fs.StringVar(&f.noticeURL, "notice-url", "", "base URL at which exchanges and browsers reach the exchange port, put into\nnurl/burl/lurl and creative trackers (default http://localhost:PORT)")
	fs.StringVar(&f.noticeKey, "notice-key", "", "secret that signs notice URLs, at least 32 bytes; when empty one is generated\nonce and kept in --data-dir/notice.key. Every bidder of a fleet needs the same key")
	fs.StringVar(&f.seat, "seat", "rtb", "seat id put into seatbid.seat")
	fs.StringVar(&f.kafka, "kafka", "", "Kafka brokers host:port,… of a real cluster; when empty, an embedded broker\nruns in this process, persisting under --data-dir/broker")
	fs.StringVar(&f.brokerAddr, "broker-addr", "127.0.0.1:9092", "address of the embedded broker (when --kafka is empty)")
	fs.Float64Var(&f.bidSample, "bid-sample", 0.05, "share of bids sent to the bid log (rtb.bids) for learning, 0..1")
	fs.DurationVar(&f.noticeMaxAge, "notice-max-age", 24*time.Hour, "notices arriving later than this after their bid are refused")
	fs.DurationVar(&f.budget, "budget", time.Millisecond, "internal answer budget per bid request; past it the answer is 204")
	fs.DurationVar(&f.allowance, "network-allowance", 10*time.Millisecond, "subtracted from an exchange's tmax to leave room for the network")
	fs.IntVar(&f.maxBody, "max-body", 256<<10, "largest accepted bid request body in bytes, also after gunzip (413 above)")
	fs.IntVar(&f.maxInFlight, "max-inflight", 0, "bid requests handled at once; above it requests are shed with a fast 204\n(default 128 per CPU)")
	fs.DurationVar(&f.drainDelay, "drain-delay", 0, "on shutdown, time /readyz answers 503 before the listener closes,\nfor load balancers to notice")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 10*time.Second, "longest wait for in-flight requests on shutdown")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", logFormatAuto, logFormatUsage)
	fs.DurationVar(&f.dayLength, "day-length", 24*time.Hour, "length of a pacing day; shorter (e.g. 10m) compresses a whole day of pacing into\nminutes for tests and the simulator. Every bidder and pacer must agree")
	fs.StringVar(&f.billOnWin, "bill-on-win", "", "exchanges (comma-separated, as in ?exchange=) that send no billing notice: their\nwin notice counts as the spend")
	fs.BoolVar(&f.pacing, "pacing", true, "obey pacing: admit campaigns at the pacer's throttle and bid multiplier")
	fs.StringVar(&f.shading, "shading", "learned", "first-price bid shading: learned (the win-rate models the trainer publishes on\nrtb.models; full value where a segment has none yet), none (bid the value), or a\nfixed factor of the value such as 0.8")
	fs.Float64Var(&f.shadingExplore, "shading-explore", 0.02, "with --shading learned, share of first-price bids made at a random 50-100% of\nthe value, so the models keep learning when the market moves (0 turns it off)")
	fs.DurationVar(&f.shadingInterval, "shading-interval", 10*time.Second, "how often the shading trainer refits and publishes the segments with new data;\n0 runs no trainer here (run one per cluster: pacers of one group would split its events)")
	fs.DurationVar(&f.capPending, "cap-pending", 30*time.Second, "a bid counts against its user's frequency cap for this long, until its impression\narrives through Kafka; it must cover the exchange's notice delay")
	fs.DurationVar(&f.featuresLookback, "features-lookback", 24*time.Hour, "on start, impressions and clicks this far back are read to rebuild frequency caps;\nit must cover the longest cap window")
	fs.Float64Var(&f.ctrPriorImps, "ctr-prior-imps", 1000, "weight of a campaign's configured ctr in its click-through estimate, in impressions:\nthe estimate moves from the prior to the observed CTR as impressions outgrow it")
	fs.Usage = usage(fs, roleUsage[role])
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (flags start with --)", fs.Args())
	}
	shader, err := parseShading(f.shading, f.shadingExplore)
	if err != nil {
		return err
	}
	if role != roleServe && f.kafka == "" {
		return fmt.Errorf("--kafka is required: rtb %s runs against a Kafka cluster (rtb serve embeds a broker)", role)
	}
	log, err := newLogger(f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// stops run in reverse order of start, on every way out.
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()

	// Start order: state first (campaigns, features, key), then the admin port, then the exchange port
	// last, so that nothing is offered traffic before it can answer. Stop runs in reverse.
	set := campaign.Samples()
	if f.campaigns != "" {
		if set, err = campaign.Load(f.campaigns); err != nil {
			return err
		}
	}
	// Refuse a bad key before starting anything.
	var signer *notice.Signer
	if role != rolePacer {
		key, err := noticeKey(f.noticeKey, f.dataDir, log)
		if err != nil {
			return err
		}
		if signer, err = notice.NewSigner(key); err != nil {
			return err
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(goCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfoGauge())

	var brokers []string
	if f.kafka != "" {
		brokers = strings.Split(f.kafka, ",")
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := events.EnsureTopics(tctx, brokers, events.Topics(0))
		cancel()
		if err != nil {
			return fmt.Errorf("kafka %s: %w", f.kafka, err)
		}
	} else {
		br, err := events.StartBroker(ctx, events.BrokerConfig{Addr: f.brokerAddr, DataDir: filepath.Join(f.dataDir, "broker"), Logger: log})
		if err != nil {
			return err
		}
		// Closed last, after the producer has flushed into it.
		stops = append(stops, br.Close)
		brokers = br.Addrs()
	}
	log.Info("campaigns loaded", "source", set.Source, "campaigns", len(set.Campaigns))

	// The read model behind /api/pacing and /dashboard: fed by the pacer itself in a pacer, by the
	// states on rtb.pacing in a bidder.
	rm := pacing.NewReadModel()
	rm.SetDayLength(f.dayLength)
	// Not registered: /metrics writes the per-campaign pacing series itself (metricsHandler).
	// A campaign the controller has not measured yet is admitted fully: its first intervals cost a
	// sliver of a day's budget, while a low initial throttle would turn away an exchange's first
	// requests (and a new user's first curl).
	pacingCfg := pacing.Config{DayLength: f.dayLength, InitialThrottle: 1}
	// onReload is every consumer of a campaign reload; each refuses what it cannot take.
	var onReload []func(*campaign.Set) error

	var pacer *pacing.Service
	if role != roleBidder {
		var fed *pacing.ReadModel
		if role == rolePacer {
			fed = rm
		}
		pacer, err = pacing.NewService(pacing.ServiceConfig{
			Controller: pacingCfg, Brokers: brokers, BillOnWin: splitList(f.billOnWin), ReadModel: fed, Logger: log,
		}, set)
		if err != nil {
			return err
		}
		onReload = append(onReload, func(s *campaign.Set) error { pacer.SetCampaigns(s); return nil })
		stops = append(stops, runBackground(ctx, log, "pacer", pacer.Run))
		// Impressions and clicks have no consumer group of their own (every bidder follows them):
		// this one puts their poison messages into rtb.dlq, once per cluster.
		checker, err := events.NewChecker(events.ConsumerConfig{
			Brokers: brokers, Group: "rtb-check", Topics: []string{events.TopicImpressions, events.TopicClicks},
			DedupeWarmup: -1, DedupeWindow: 1024, Registerer: reg, Logger: log,
		})
		if err != nil {
			return err
		}
		stops = append(stops, runBackground(ctx, log, "dead-letter check", checker.Run))
		// The shading trainer learns from every bidder's wins and losses; one per cluster (it runs
		// where the pacer runs), since two in one group would each fit half of the events and
		// publish their own models of the same segments.
		if f.shadingInterval > 0 {
			trainer, err := shading.NewTrainer(shading.TrainerConfig{
				Brokers: brokers, Interval: f.shadingInterval, Registerer: reg, Logger: log,
			})
			if err != nil {
				return err
			}
			stops = append(stops, runBackground(ctx, log, "shading trainer", trainer.Run))
		}
	}

	var b *bidder.Bidder
	var ctrAPI http.Handler
	if role != rolePacer {
		store, err := features.New(features.Config{})
		if err != nil {
			return err
		}
		stops = append(stops, store.Close)
		var nfeat int
		if f.featuresFile != "" {
			nfeat, err = store.LoadSnapshotFile(f.featuresFile)
		} else {
			nfeat, err = store.LoadSample()
		}
		if err != nil {
			return err
		}
		log.Info("features loaded", "records", nfeat)
		if f.noticeURL == "" {
			f.noticeURL = "http://localhost" + portOf(f.listen)
		}
		producer, err := events.NewProducer(events.ProducerConfig{
			Brokers: brokers, SpillDir: filepath.Join(f.dataDir, "spill"), Registerer: reg, Logger: log,
		})
		if err != nil {
			return err
		}
		stops = append(stops, func() {
			fctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
			defer cancel()
			if err := producer.Close(fctx); err != nil {
				log.Error("event producer close", "error", err)
			}
		})
		caps, err := features.NewCaps(features.CapsConfig{PendingFor: f.capPending})
		if err != nil {
			return err
		}
		stops = append(stops, caps.Close) // after the bid path and the updater (stops run in reverse)
		ctrs, err := features.NewCTRs(features.CTRConfig{PriorImpressions: f.ctrPriorImps})
		if err != nil {
			return err
		}
		// The updater is created before the bidder but asks it for cap windows only once running.
		var capWindow func(string) (time.Duration, bool)
		updater, err := features.NewUpdater(features.UpdaterConfig{
			Brokers: brokers, Caps: caps, CTRs: ctrs, Lookback: f.featuresLookback,
			CapWindow:  func(id string) (time.Duration, bool) { return capWindow(id) },
			Registerer: reg, Logger: log,
		})
		if err != nil {
			return err
		}
		b, err = bidder.New(bidder.Config{
			Budget: f.budget, NetworkAllowance: f.allowance, MaxBodyBytes: f.maxBody, MaxInFlight: f.maxInFlight,
			NoticeBaseURL: strings.TrimRight(f.noticeURL, "/"), Seat: f.seat, Signer: signer, Features: store,
			Events: producer, BidSampleRate: f.bidSample, NoticeMaxAge: f.noticeMaxAge,
			Pacing: bidder.PacingConfig{Enabled: f.pacing, Unknown: 1, StaleAfter: 5 * time.Second,
				TrafficPartitions: func(ctx context.Context) (int, error) {
					return events.PartitionCount(ctx, brokers, events.TopicBids)
				}},
			Shader: shader, Caps: caps, CapsReady: updater.Ready(), CTR: ctrs,
			Logger: log, Registerer: reg,
		}, set)
		if err != nil {
			return err
		}
		capWindow = b.CapWindow
		ctrAPI = b.CTRAPI(ctrs.Snapshot)
		stops = append(stops, runBackground(ctx, log, "feature updater", updater.Run))
		if ls, ok := shader.(*auction.LearnedShader); ok {
			models, err := shading.NewReader(shading.ReaderConfig{Brokers: brokers, Shader: ls, Registerer: reg, Logger: log})
			if err != nil {
				return err
			}
			stops = append(stops, runBackground(ctx, log, "shading model reader", models.Run))
		}
		onReload = append(onReload, b.SetCampaigns)
		go b.ReportTraffic(ctx)
		// Every bidder reads all pacing states (and shows them on its own /dashboard).
		states := events.NewStateReader(brokers, events.TopicPacing, pacing.Feed{
			State: func(st pacing.State) {
				b.SetPacing(st.CampaignID, st.Throttle, st.Multiplier, st.ValidUntil)
				rm.Apply(st)
			},
			Heartbeat: func(h pacing.Heartbeat) {
				b.SetPacingHeartbeat(h.Partition, h.Partitions, h.ValidUntil)
				rm.Heartbeat(h)
			},
			Bad: func(key string, err error) {
				log.Warn("unreadable pacing record skipped", "key", key, "error", err)
			},
		}.Record)
		go func() {
			if err := states.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("pacing state feed stopped; campaigns stop bidding as their states go stale", "error", err)
			}
		}()
	}
	setNames := func(s *campaign.Set) error {
		names := map[string]string{}
		for _, c := range s.Campaigns {
			names[c.ID] = c.Name
		}
		rm.SetCampaigns(names)
		return nil
	}
	setNames(set)
	onReload = append(onReload, setNames)

	if f.campaigns != "" {
		w := campaign.NewWatcher(f.campaigns, time.Second, func(s *campaign.Set) {
			for _, apply := range onReload {
				if err := apply(s); err != nil {
					log.Error("campaign reload refused; previous campaigns stay in force", "error", err)
					return
				}
			}
			log.Info("campaigns reloaded", "source", s.Source, "campaigns", len(s.Campaigns))
		}, func(err error) {
			log.Error("campaign reload refused; previous campaigns stay in force", "error", err)
		})
		go w.Run(ctx)
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for {
				select {
				case <-hup:
					w.Reload()
				case <-ctx.Done():
					return
				}
			}
		}()
	}

	adminLn, err := net.Listen("tcp", f.admin)
	if err != nil {
		return fmt.Errorf("admin listener %s: %w", f.admin, err)
	}
	adminSrv := &http.Server{Handler: adminMux(reg, b, rm, ctrAPI), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := adminSrv.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server", "error", err)
		}
	}()

	if b == nil {
		log.Info("rtb pacer running", "admin", adminLn.Addr().String(), "kafka", f.kafka)
		<-ctx.Done()
		log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
		defer cancel()
		adminSrv.Shutdown(sctx)
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
		stops = nil
		log.Info("stopped")
		return nil
	}

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		adminSrv.Close()
		return fmt.Errorf("exchange listener %s: %w", f.listen, err)
	}
	srv := &fasthttp.Server{
		Handler:               b.Handler(),
		ErrorHandler:          b.ErrorHandler,
		Name:                  "rtb",
		MaxRequestBodySize:    b.MaxBodyBytes(),
		ReadTimeout:           5 * time.Second,
		WriteTimeout:          5 * time.Second,
		IdleTimeout:           90 * time.Second,
		NoDefaultContentType:  true,
		NoDefaultServerHeader: true,
		Logger:                fasthttpLogger{log},
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("rtb serving", "exchange", ln.Addr().String(), "admin", adminLn.Addr().String(), "notice_url", f.noticeURL)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		adminSrv.Close()
		return fmt.Errorf("exchange server: %w", err)
	}
	log.Info("shutting down: draining")
	b.Drain()
	time.Sleep(f.drainDelay)
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	if err := srv.ShutdownWithContext(sctx); err != nil {
		log.Error("exchange server shutdown", "error", err)
	}
	if err := adminSrv.Shutdown(sctx); err != nil {
		log.Error("admin server shutdown", "error", err)
	}
	log.Info("exchange port closed; flushing events")
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
	stops = nil
	log.Info("stopped")
	return nil
}

func adminMux(reg *prometheus.Registry, b *bidder.Bidder, rm *pacing.ReadModel, ctrAPI http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler(reg, rm))
	if b != nil {
		mux.Handle("GET /api/campaigns", b.CampaignsAPI())
		// Any method: the handler answers all but POST with 405 and its Allow.
		mux.Handle("/api/explain", b.ExplainAPI())
	}
	if ctrAPI != nil {
		mux.Handle("GET /api/ctr", ctrAPI)
	}
	mux.Handle("GET /api/pacing", rm.APIHandler())
	mux.Handle("GET /dashboard", pacing.DashboardHandler("/api/pacing"))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "rtb admin: /dashboard /api/pacing /api/campaigns /api/ctr /metrics /debug/pprof/ (POST /api/explain)\n")
	})
	return mux
}

// metricsHandler serves the registry's metrics and then the read model's per-campaign pacing
// series, written directly (pacing.ReadModel.WriteText): through client_golang those cost a
// 100,000-campaign bidder 9 s of CPU a scrape. Always the text format (what every Prometheus
// reads), gzipped when the scraper accepts it, as promhttp does.
func metricsHandler(reg prometheus.Gatherer, rm *pacing.ReadModel) http.Handler {
	format := expfmt.NewFormat(expfmt.TypeTextPlain)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mfs, err := reg.Gather()
		if err != nil {
			http.Error(w, "gather metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", string(format))
		var out io.Writer = w
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
			defer gz.Close()
			out = gz
		}
		enc := expfmt.NewEncoder(out, format)
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				return // the scraper went away
			}
		}
		rm.WriteText(out)
	})
}

// noticeKey returns the notice signing key: the flag's value, else the key kept in the data dir,
// generated on first start so that tokens stay valid across restarts.
func noticeKey(flagKey, dataDir string, log *slog.Logger) ([]byte, error) {
	if flagKey != "" {
		return []byte(flagKey), nil
	}
	path := filepath.Join(dataDir, "notice.key")
	if b, err := os.ReadFile(path); err == nil {
		return []byte(strings.TrimSpace(string(b))), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read notice key %s: %w", path, err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", dataDir, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate notice key: %w", err)
	}
	key := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write notice key %s: %w", path, err)
	}
	log.Info("generated a notice signing key", "path", path)
	return []byte(key), nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func portOf(addr string) string {
	if _, port, err := net.SplitHostPort(addr); err == nil {
		return ":" + port
	}
	return ""
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format = resolveLogFormat(format); format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text, json or auto", format)
}

// fasthttpLogger routes fasthttp's own messages (connection errors) into slog.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn(fmt.Sprintf(format, args...), "component", "fasthttp")
}

// runBackground runs a service until ctx is done; the returned stop cancels it and waits for it.
func runBackground(ctx context.Context, log *slog.Logger, name string, run func(context.Context) error) func() {
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := run(rctx); err != nil && rctx.Err() == nil {
			log.Error(name+" stopped", "error", err)
		}
	}()
	return func() { cancel(); <-done }
}

// parseShading turns --shading into the bidder's shader.
func parseShading(mode string, explore float64) (auction.Shader, error) {
	switch mode {
	case "none":
		return auction.NoShading{}, nil
	case "learned":
		if explore < 0 || explore > 0.5 {
			return nil, fmt.Errorf("--shading-explore %v: want a share within 0..0.5", explore)
		}
		if explore == 0 {
			explore = -1 // the shader's "off"; its zero value means the default share
		}
		s, err := auction.NewLearnedShader(auction.ShaderConfig{Explore: explore})
		if err != nil {
			return nil, fmt.Errorf("--shading-explore: %w", err)
		}
		return s, nil
	}
	factor, err := strconv.ParseFloat(mode, 64)
	if err != nil || !(factor > 0 && factor <= 1) {
		return nil, fmt.Errorf("--shading %q: want learned, none, or a factor in (0,1] such as 0.8", mode)
	}
	return auction.FixedShader{Factor: factor}, nil
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"

	"rtb/bidder"
	"rtb/bidder/campaign"
	"rtb/bidder/notice"
	"rtb/events"
	"rtb/features"
)

type serveFlags struct {
	listen, admin, dataDir, campaigns, featuresFile string
	noticeURL, noticeKey, seat                      string
	budget, allowance, drainDelay, shutdownTimeout  time.Duration
	maxBody, maxInFlight                            int
	logLevel, logFormat                             string
	kafka, brokerAddr                               string
	bidSample                                       float64
	noticeMaxAge                                    time.Duration
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
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
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fs.Usage = usage(fs, "Usage: rtb serve [flags]\n\nRuns the bidder on one machine with in-memory campaigns and features.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (flags start with --)", fs.Args())
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
	key, err := noticeKey(f.noticeKey, f.dataDir, log)
	if err != nil {
		return err
	}
	signer, err := notice.NewSigner(key)
	if err != nil {
		return err
	}
	if f.noticeURL == "" {
		f.noticeURL = "http://localhost" + portOf(f.listen)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

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

	b, err := bidder.New(bidder.Config{
		Budget: f.budget, NetworkAllowance: f.allowance, MaxBodyBytes: f.maxBody, MaxInFlight: f.maxInFlight,
		NoticeBaseURL: strings.TrimRight(f.noticeURL, "/"), Seat: f.seat, Signer: signer, Features: store,
		Events: producer, BidSampleRate: f.bidSample, NoticeMaxAge: f.noticeMaxAge,
		Logger: log, Registerer: reg,
	}, set)
	if err != nil {
		return err
	}
	log.Info("campaigns loaded", "source", set.Source, "campaigns", len(set.Campaigns))
	log.Info("features loaded", "records", nfeat)

	if f.campaigns != "" {
		w := campaign.NewWatcher(f.campaigns, time.Second, func(s *campaign.Set) {
			if err := b.SetCampaigns(s); err != nil {
				log.Error("campaign reload refused; previous campaigns stay in force", "error", err)
				return
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
	adminSrv := &http.Server{Handler: adminMux(reg, b), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := adminSrv.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server", "error", err)
		}
	}()

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

func adminMux(reg *prometheus.Registry, b *bidder.Bidder) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("GET /api/campaigns", b.CampaignsAPI())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "rtb admin: /metrics /api/campaigns /debug/pprof/\n")
	})
	return mux
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
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// fasthttpLogger routes fasthttp's own messages (connection errors) into slog.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn(fmt.Sprintf(format, args...), "component", "fasthttp")
}

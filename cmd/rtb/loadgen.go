package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"rtb/loadtest"
)

// exit is os.Exit, replaceable in tests.
var exit = os.Exit

const loadgenSynopsis = `Usage: rtb loadgen [flags]

Send realistic OpenRTB bid requests to --target (a URL, or host:port; a target without a path means
its bid endpoint, /openrtb2/bid) on an open-loop schedule (requests go out on time whether or not
earlier ones were answered) and report latency measured from each request's intended send time, so
a stalling server cannot hide its stall (no coordinated omission).

Schedules: a constant --rate for --duration; --steps 1000,2000,4000 each for --step-duration; a
linear ramp from --rate to --ramp-to over --duration; or --day-length D: one compressed pacing day
(aligned as rtb serve --day-length D aligns it: days start at multiples of D from the Unix epoch),
waiting for the next day to start (or, with --day-start now, the rest of the current day), its rate
following a diurnal profile whose evening peak is --rate (hour 00..23 as a share of the peak:
.42 .30 .22 .17 .15 .17 .25 .37 .48 .56 .61 .65 .70 .68 .66 .66 .70 .77 .86 .95 1 .95 .80 .60;
mean 0.57), or flat with --day-shape flat. A progress line per second goes to stderr, the final
report to stdout (and as JSON to --out). Ctrl-C stops sending and reports what was sent.

--market makes it a first-price exchange that judges the bidder: at start it reads each target's
campaigns from its admin port (GET /api/campaigns) and reports per campaign the advertiser's surplus
(true value − price: fixed_cpm's cpm, target_cpc's cpc × the true --ctr), delivery (spend ÷ daily
budget; with --day-length also the spend of each "hour" and when the budget ran out), frequency-cap
violations found in the impressions it fired, and at the end the bidder's CTR estimates (GET
/api/ctr) against the true CTR. Without a reachable admin port it says so and reports the rest.

Compare mode: several --target URLs (with --label and --admin lists in the same order) each get
every request at the same intended time; with --market every target meets the same competing bid
and click decision for each (request, imp), drawn from --seed, so the arms differ only by what the
bidders do. The report gives each target's, then a comparison table.

A run where more than half the requests sent fail (4xx, 5xx, or no HTTP answer) measured error pages
or refused connections, not a bidder: it ends with a WARNING naming the most common failure, its
usual cause and the first distinct answers (e.g. "8000 of 8000 requests answered 404: is --target
the bid endpoint, http://host:port/openrtb2/bid?"), on stdout and stderr, and exits 4.

Exit status: 0 done, 1 error, 2 bad usage, 3 the overall p99 exceeded --slo-p99, 4 most requests
failed (the warning above).`

func loadgen(args []string) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.Usage = usage(fs, loadgenSynopsis)
	var cfg loadtest.Config
	var steps, out string
	var seed uint64
	var market bool
	var mu, sigma, ctr string
	mcfg := loadtest.DefaultMarket()
	var slo time.Duration
	var targets, labels, admins, dayStart, dayShape string
	fs.StringVar(&targets, "target", "http://localhost:8080/openrtb2/bid", "bid endpoint to POST requests to (host:port, or a URL without a path, means http://host:port/openrtb2/bid);\nseveral, comma-separated, compare bidders (every request goes to each)")
	fs.StringVar(&labels, "label", "", "names of the targets in reports, comma-separated in --target order (default host:port, or t1,t2,… for several)")
	fs.StringVar(&admins, "admin", "", "admin base URL of each target, comma-separated in --target order, for --market's surplus, delivery,\nfrequency-cap and CTR checks (default http://127.0.0.1:8081 for a single target, none for several; \"none\" for none)")
	fs.DurationVar(&cfg.DayLength, "day-length", 0, "run one pacing day of this length, aligned as rtb serve --day-length aligns it, instead of --duration\n(the same value the bidders run with; 24h aligns to UTC days)")
	fs.StringVar(&dayStart, "day-start", "next", "with --day-length: \"next\" waits for the next day to start and runs it whole; \"now\" runs the rest of the current day")
	fs.StringVar(&dayShape, "day-shape", "diurnal", "with --day-length: \"diurnal\" follows the hourly profile above, its peak at --rate; \"flat\" keeps --rate all day")
	fs.Int64Var(&cfg.CTRMinImps, "ctr-min-imps", 5000, "--market: judge a bidder's CTR estimate (within 10% of the true CTR) only for campaigns with this many impressions")
	fs.Float64Var(&cfg.Rate, "rate", 1000, "requests per second (the start rate of a --ramp-to ramp; the evening peak of a --day-length day)")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long to send (ignored with --steps)")
	fs.StringVar(&steps, "steps", "", "comma-separated rates, each sent for --step-duration, e.g. 1000,2000,4000")
	fs.DurationVar(&cfg.StepDuration, "step-duration", 10*time.Second, "how long each of --steps lasts")
	fs.Float64Var(&cfg.RampTo, "ramp-to", 0, "ramp the rate linearly from --rate to this over --duration")
	fs.IntVar(&cfg.Connections, "connections", 64, "keep-alive connections (one request in flight on each)")
	fs.DurationVar(&cfg.Timeout, "timeout", time.Second, "per-request timeout, from when it is sent")
	fs.Uint64Var(&seed, "seed", 1, "seed of the request pool and of --market's draws: the same seed sends the same requests into the same market")
	fs.IntVar(&cfg.PoolSize, "pool", 10000, "number of distinct request bodies pre-generated")
	fs.DurationVar(&slo, "slo-p99", 0, "exit with status 3 when the overall p99 latency exceeds this (e.g. 1ms)")
	fs.StringVar(&out, "out", "", "also write the final report as JSON to this file")
	fs.BoolVar(&market, "market", false, "act as a first-price exchange: decide each bid against a drawn competing bid and send win/bill/imp/click or loss notices")
	fs.StringVar(&mu, "market-mu", "0.405", "--market: mu of the log-normal highest competing CPM (median e^mu), DEFAULT[,SEGMENT=VALUE…], segments like banner-300x250, video, native")
	fs.StringVar(&sigma, "market-sigma", "0.6", "--market: sigma of that log-normal, DEFAULT[,SEGMENT=VALUE…]")
	fs.StringVar(&ctr, "ctr", "0.002", "--market: true click-through rate, DEFAULT[,CAMPAIGN_ID=VALUE…]")
	fs.DurationVar(&mcfg.NoticeDelay, "notice-delay", mcfg.NoticeDelay, "--market: notices go out after a random delay up to this")
	fs.Float64Var(&mcfg.NoticeDup, "notice-dup", mcfg.NoticeDup, "--market: share of notices sent twice, as exchanges retry")
	fs.IntVar(&mcfg.Workers, "notice-workers", 64, "--market: concurrent notice senders")
	if err := parseFlags(fs, args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		exit(2)
		return err
	}
	cfg.Seed = seed
	bad := func(format string, a ...any) error {
		fmt.Fprintf(os.Stderr, "rtb loadgen: "+format+"\n", a...)
		exit(2)
		return nil
	}
	urls, names, adminURLs := splitList(targets), splitList(labels), splitList(admins)
	if len(urls) == 0 {
		return bad("--target: no URL")
	}
	if len(names) > 0 && len(names) != len(urls) {
		return bad("--label names %d targets, --target has %d", len(names), len(urls))
	}
	switch {
	case len(adminURLs) == 1 && adminURLs[0] == "none":
		adminURLs = nil
	case len(adminURLs) == 0 && len(urls) == 1:
		adminURLs = []string{"http://127.0.0.1:8081"}
	case len(adminURLs) > 0 && len(adminURLs) != len(urls):
		return bad("--admin names %d admin URLs, --target has %d", len(adminURLs), len(urls))
	}
	for i, u := range urls {
		t := loadtest.Target{URL: u}
		if len(names) > 0 {
			t.Label = names[i]
		}
		if len(adminURLs) > 0 && adminURLs[i] != "none" {
			t.Admin = adminURLs[i]
			if !strings.Contains(t.Admin, "://") { // serve's --admin is host:port; accept the same
				t.Admin = "http://" + t.Admin
			}
		}
		cfg.Targets = append(cfg.Targets, t)
	}
	switch dayStart {
	case "next":
	case "now":
		cfg.DayStartNow = true
	default:
		return bad("--day-start %q: want next or now", dayStart)
	}
	switch dayShape {
	case "diurnal":
	case "flat":
		cfg.FlatDay = true
	default:
		return bad("--day-shape %q: want diurnal or flat", dayShape)
	}
	if market {
		for _, p := range []struct {
			name, val string
			dst       *loadtest.Param
		}{{"market-mu", mu, &mcfg.Mu}, {"market-sigma", sigma, &mcfg.Sigma}, {"ctr", ctr, &mcfg.CTR}} {
			v, err := loadtest.ParseParam(p.val)
			if err != nil {
				fmt.Fprintf(os.Stderr, "rtb loadgen: --%s: %v\n", p.name, err)
				exit(2)
				return nil
			}
			*p.dst = v
		}
		mcfg.Seed = seed
		cfg.Market = &mcfg
	}
	if steps != "" {
		for _, s := range strings.Split(steps, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil || v <= 0 {
				fmt.Fprintf(os.Stderr, "rtb loadgen: --steps %q: %q is not a positive rate\n", steps, s)
				exit(2)
				return nil
			}
			cfg.Steps = append(cfg.Steps, v)
		}
	}
	cfg.Progress = os.Stderr

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	rep, err := loadtest.Run(ctx, cfg)
	if err != nil {
		return err
	}
	met := rep.CheckSLO(slo)
	rep.WriteText(os.Stdout)
	if out != "" {
		b, err := rep.JSON()
		if err != nil {
			return err
		}
		if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if rep.Broken() {
		each := rep.Targets
		if len(each) == 0 {
			each = []*loadtest.Report{rep}
		}
		for _, r := range each {
			if r.Warning != "" {
				fmt.Fprintf(os.Stderr, "rtb loadgen: %s: %s\n", r.Target, r.Warning)
			}
		}
		cancel()
		exit(4)
		return nil
	}
	if !met {
		cancel()
		exit(3)
	}
	return nil
}

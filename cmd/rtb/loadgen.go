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

Send realistic OpenRTB bid requests to --target on an open-loop schedule (requests go out on time
whether or not earlier ones were answered) and report latency measured from each request's intended
send time, so a stalling server cannot hide its stall (no coordinated omission).

Schedules: a constant --rate for --duration; --steps 1000,2000,4000 each for --step-duration; or a
linear ramp from --rate to --ramp-to over --duration. A progress line per second goes to stderr,
the final report to stdout (and as JSON to --out). Ctrl-C stops sending and reports what was sent.

Exit status: 0 done, 1 error, 2 bad usage, 3 the overall p99 exceeded --slo-p99.`

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
	fs.StringVar(&cfg.Target, "target", "http://localhost:8080/openrtb2/bid", "bid endpoint to POST requests to")
	fs.Float64Var(&cfg.Rate, "rate", 1000, "requests per second (the start rate of a --ramp-to ramp)")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long to send (ignored with --steps)")
	fs.StringVar(&steps, "steps", "", "comma-separated rates, each sent for --step-duration, e.g. 1000,2000,4000")
	fs.DurationVar(&cfg.StepDuration, "step-duration", 10*time.Second, "how long each of --steps lasts")
	fs.Float64Var(&cfg.RampTo, "ramp-to", 0, "ramp the rate linearly from --rate to this over --duration")
	fs.IntVar(&cfg.Connections, "connections", 64, "keep-alive connections (one request in flight on each)")
	fs.DurationVar(&cfg.Timeout, "timeout", time.Second, "per-request timeout, from when it is sent")
	fs.Uint64Var(&seed, "seed", 1, "seed of the request pool: the same seed sends the same requests")
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
	if !met {
		cancel()
		exit(3)
	}
	return nil
}

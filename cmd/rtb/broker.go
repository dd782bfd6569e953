package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"rtb/events"
)

func broker(args []string) error {
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9092", "address the broker listens on (loopback by default: it is for one machine)")
	dataDir := fs.String("data-dir", "rtb-data", "the log persists under DIR/broker across restarts")
	partitions := fs.Int("partitions", 8, "partitions of the event topics when they are created")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", logFormatAuto, logFormatUsage)
	fs.Usage = usage(fs, "Usage: rtb broker [flags]\n\nRuns the embedded Kafka-compatible broker alone, with rtb's topics, for development and tests.\nProduction points --kafka at a real cluster instead.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (flags start with --)", fs.Args())
	}
	log, err := newLogger(*logLevel, *logFormat)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := events.StartBroker(ctx, events.BrokerConfig{Addr: *addr, DataDir: filepath.Join(*dataDir, "broker"), Partitions: *partitions, Logger: log})
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down broker")
	b.Close()
	log.Info("stopped")
	return nil
}

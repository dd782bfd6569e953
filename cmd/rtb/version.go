package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// version and commit may be set at link time (-ldflags "-X main.version=… -X main.commit=…") for
// builds that carry no VCS information: the container image's build context leaves out .git.
var (
	version string
	commit  string
)

// buildInfo is what `rtb version` prints and rtb_build_info labels.
type buildInfo struct {
	Version, Commit, GoVersion string
}

func readBuildInfo() buildInfo {
	bi := buildInfo{Version: "unknown", Commit: "unknown", GoVersion: runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		if info.Main.Version != "" {
			bi.Version = info.Main.Version
		}
		modified := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				bi.Commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		// A binary built from a work tree with uncommitted changes is not that commit.
		if modified && bi.Commit != "unknown" {
			bi.Commit += "-dirty"
		}
	}
	if version != "" {
		bi.Version = version
	}
	if commit != "" {
		bi.Commit = commit
	}
	return bi
}

func versionCmd(args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.Usage = usage(fs, "Usage: rtb version\n\nPrints the module version, the VCS commit and the Go version the binary was built with\n(the same values label the rtb_build_info metric on every role's /metrics).")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	bi := readBuildInfo()
	fmt.Printf("rtb %s\ncommit %s\ngo %s %s/%s\n", bi.Version, bi.Commit, bi.GoVersion, runtime.GOOS, runtime.GOARCH)
	return nil
}

// buildInfoGauge is rtb_build_info{version,commit,goversion} 1, the usual way to join a binary's
// identity onto its other series in queries (and to see a fleet mid-rollout).
func buildInfoGauge() prometheus.Collector {
	bi := readBuildInfo()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "rtb_build_info",
		Help:        "Always 1; its labels tell the build: module version, VCS commit, Go version.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "commit": bi.Commit, "goversion": bi.GoVersion},
	})
	g.Set(1)
	return g
}

// healthcheck asks a running rtb whether it is alive, for container HEALTHCHECKs: the image has no
// shell and no curl, so the binary checks itself.
func healthcheck(args []string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", defaultHealthURL(), "`URL` that must answer 200; for a pacer (no exchange port) use its admin port,\ne.g. http://127.0.0.1:8081/")
	timeout := fs.Duration("timeout", 2*time.Second, "longest wait for the answer")
	fs.Usage = usage(fs, "Usage: rtb healthcheck [--url URL]\n\nExits 0 when URL answers 200, 1 otherwise. By default it asks /healthz on the exchange port\nof --listen as RTB_LISTEN sets it (:8080 unless set).")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (flags start with --)", fs.Args())
	}
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get(*url)
	if err != nil {
		return fmt.Errorf("GET %s: %w", *url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s %s", *url, resp.Status, body)
	}
	return nil
}

// defaultHealthURL is /healthz on the port the exchange listener of this container uses.
func defaultHealthURL() string {
	port := "8080"
	if l, ok := os.LookupEnv(envName("listen")); ok {
		if _, p, err := net.SplitHostPort(l); err == nil && p != "" {
			port = p
		}
	}
	return "http://127.0.0.1:" + port + "/healthz"
}

// goCollector is the Go runtime's collector with the garbage collector's own accounts added: the
// scannable heap (what one cycle's mark must read), live heap and objects, cycles, and the CPU
// the collector took by kind (mark assists, dedicated, fractional and idle workers, pauses). At
// 100,000 campaigns one cycle's mark is what competes with requests for the cores; these series
// say how big it is without a trace.
func goCollector() prometheus.Collector {
	return collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/(scan/|heap/live|heap/objects|cycles/)`)},
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/cpu/classes/gc/`)},
	))
}

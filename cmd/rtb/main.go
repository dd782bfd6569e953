// Command rtb is the real-time bidding engine: one binary whose subcommands run the roles of the
// system. It only parses flags, wires packages together and handles signals; the logic lives in the
// packages it imports.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

const topUsage = `rtb — a real-time bidding engine for OpenRTB 2.5/2.6 exchanges.

Usage:
  rtb serve [flags]     run everything on one machine: the bidder on the exchange port
                        (POST /openrtb2/bid, notice endpoints), the pacer, the admin port
                        (/dashboard, /api/pacing, /api/campaigns, POST /api/explain, /metrics,
                        /debug/pprof/) and an
                        embedded Kafka-compatible broker, with the built-in sample campaigns
                        unless --campaigns names a file
  rtb bidder --kafka B  the bidder alone, against a Kafka cluster
  rtb pacer --kafka B   a budget pacer alone, against a Kafka cluster
  rtb broker [flags]    run the embedded Kafka-compatible broker alone (development, tests)
  rtb loadgen [flags]   send open-loop OpenRTB load to a bidder and report latency (no coordinated omission)
  rtb version           print the module version, VCS commit and Go version
  rtb healthcheck       exit 0 when a running rtb answers /healthz (for container HEALTHCHECKs)
  rtb help [command]    show this text, or a command's flags

Every flag also reads an RTB_* environment variable (--notice-key -> RTB_NOTICE_KEY).
Logs go to stderr as text on a terminal and as JSON lines otherwise (--log-format).
Run 'rtb serve --help' for the flags of serve.
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, topUsage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		err = serve(rest)
	case "broker":
		err = broker(rest)
	case "bidder":
		err = bidderCmd(rest)
	case "pacer":
		err = pacerCmd(rest)
	case "loadgen":
		err = loadgen(rest)
	case "version", "--version":
		err = versionCmd(rest)
	case "healthcheck":
		err = healthcheck(rest)
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			return run([]string{rest[0], "--help"})
		}
		fmt.Fprint(os.Stdout, topUsage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "rtb: unknown command %q\n\n%s", cmd, topUsage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "rtb %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

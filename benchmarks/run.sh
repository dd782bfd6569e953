#!/usr/bin/env bash
# benchmarks/run.sh: one reproducible comparison, on one machine, in one run, of
#   (a) floor     a fasthttp server answering a fixed ~1 KB bid (benchmarks/floor)
#   (b) rtb       `rtb serve --pacing=false --bid-sample 0` (the product)
#   (c) baseline  net/http + encoding/json + a linear campaign scan (benchmarks/baseline)
# with `rtb loadgen` (open loop, latency from intended send time) at the same rate steps, and with
# wrk (closed loop, an independent client) against (a) and (b). Writes benchmarks/RESULTS.md.
#
# Usage: bash benchmarks/run.sh          (from anywhere; about 5-6 minutes)
# Environment: STEPS (default 2000,4000,8000,12000,16000,24000), STEP_DURATION (10s), SLO_US (1000),
#              WRK_DURATION (10s), CONNECTIONS (64).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
STEPS=${STEPS:-2000,4000,8000,12000,16000,24000}
STEP_DURATION=${STEP_DURATION:-10s}
SLO_US=${SLO_US:-1000}
WRK_DURATION=${WRK_DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
WORK=$(mktemp -d -t rtb-bench.XXXXXX)
BODY=$ROOT/bidder/openrtb/testdata/requests/v26-banner.json
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '== %s\n' "$*" >&2; }

command -v jq >/dev/null || { echo "jq is required (apt-get install jq)" >&2; exit 1; }

log "building into $WORK"
go build -o "$WORK/rtb" ./cmd/rtb
go build -o "$WORK/floor" ./benchmarks/floor
go build -o "$WORK/baseline" ./benchmarks/baseline

# wait_http URL: up to 60 s for the server to answer.
wait_http() {
	for _ in $(seq 600); do
		if curl -s -o /dev/null -X POST --max-time 1 --data-binary @"$BODY" "$1"; then return 0; fi
		sleep 0.1
	done
	echo "server at $1 did not come up" >&2
	return 1
}

start_server() { # name: starts it in the background, sets URL
	case $1 in
	floor)
		"$WORK/floor" --listen 127.0.0.1:18090 >"$WORK/floor.log" 2>&1 &
		URL=http://127.0.0.1:18090/openrtb2/bid ;;
	rtb)
		# --pacing=false and --bid-sample 0: pacing state and the Kafka bid log must not shape the numbers.
		"$WORK/rtb" serve --listen 127.0.0.1:18080 --admin 127.0.0.1:18081 --broker-addr 127.0.0.1:19092 \
			--data-dir "$WORK/rtb-data" --pacing=false --bid-sample 0 --log-level warn >"$WORK/rtb.log" 2>&1 &
		URL=http://127.0.0.1:18080/openrtb2/bid ;;
	baseline)
		"$WORK/baseline" --listen 127.0.0.1:18091 >"$WORK/baseline.log" 2>&1 &
		URL=http://127.0.0.1:18091/openrtb2/bid ;;
	esac
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
	wait_http "$URL"
}

stop_server() {
	kill "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
}

# loadgen RATE OUT: one constant-rate run, report JSON to OUT. Bounded by --duration plus --timeout.
loadgen() {
	timeout 120 "$WORK/rtb" loadgen --target "$URL" --rate "$1" --duration "$STEP_DURATION" \
		--connections "$CONNECTIONS" --out "$2" >/dev/null 2>>"$WORK/loadgen.log" || true
}

# wrk_run: 2 threads, CONNECTIONS connections, WRK_DURATION, prints "rps p50 p99" (latencies in µs).
wrk_run() {
	RTB_BODY=$BODY timeout 60 wrk -t2 -c"$CONNECTIONS" -d"$WRK_DURATION" --latency -s "$ROOT/benchmarks/post.lua" "$URL" >"$WORK/wrk.out" 2>&1 || true
	awk '
		function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1e6; return v }
		/Requests\/sec:/ { rps = $2 }
		$1 == "50%" { p50 = us($2) }
		$1 == "99%" { p99 = us($2) }
		END { printf "%d %d %d\n", rps, p50, p99 }' "$WORK/wrk.out"
}

declare -A TOP MAX P50 P99 P999 BIDRATE WRK STEPLOG
for name in floor rtb baseline; do
	log "$name: starting"
	start_server "$name"
	# Warm up for one STEP_DURATION at 1,000/s (caches, connections, the GC's pacing).
	loadgen 1000 "$WORK/warm.json"
	max=0
	steplog=""
	IFS=, read -ra rates <<<"$STEPS"
	for r in "${rates[@]}"; do
		loadgen "$r" "$WORK/$name-$r.json"
		p99=$(jq -r '.latency.p99_us // 999999999' "$WORK/$name-$r.json" 2>/dev/null || echo 999999999)
		got=$(jq -r '.achieved_rate // 0 | floor' "$WORK/$name-$r.json" 2>/dev/null || echo 0)
		errs=$(jq -r '(.outcomes.error_connect + .outcomes.error_timeout + .outcomes.error_other + .outcomes.late + .outcomes.status_5xx) // 0' "$WORK/$name-$r.json" 2>/dev/null || echo 0)
		log "$name @ $r/s: achieved $got/s, p99 ${p99}µs, errors+late $errs"
		steplog+="$r:${p99} "
		# Sustained = p99 under the SLO, the rate actually achieved (within 2%), no errors or late sends.
		if (( p99 < SLO_US && got * 100 >= r * 98 && errs == 0 )); then
			max=$r
		else
			break # higher steps would only fail harder; keep the run short
		fi
	done
	MAX[$name]=$max
	# The top step held: the true maximum is higher than this run can tell.
	TOP[$name]=""
	if (( max == ${rates[-1]} )); then TOP[$name]="≥ "; fi
	STEPLOG[$name]=$steplog
	if (( max > 0 )); then
		half=$((max / 2))
		loadgen "$half" "$WORK/$name-half.json"
		P50[$name]=$(jq -r '.latency.p50_us' "$WORK/$name-half.json")
		P99[$name]=$(jq -r '.latency.p99_us' "$WORK/$name-half.json")
		P999[$name]=$(jq -r '.latency.p999_us' "$WORK/$name-half.json")
		BIDRATE[$name]=$(jq -r '.bid_rate * 100 | round' "$WORK/$name-half.json")
		log "$name @ $half/s (half): p50 ${P50[$name]}µs p99 ${P99[$name]}µs"
	else
		P50[$name]=-; P99[$name]=-; P999[$name]=-; BIDRATE[$name]=-
	fi
	if [[ $name != baseline ]] && command -v wrk >/dev/null; then
		WRK[$name]=$(wrk_run)
		log "$name wrk: ${WRK[$name]} (req/s p50µs p99µs)"
	else
		WRK[$name]="- - -"
	fi
	stop_server
done

ratio() { # a b: a/b to 2 decimals, or "-"
	if [[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ && $2 -gt 0 ]]; then awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; else echo -; fi
}

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
	echo "# Benchmark results"
	echo
	echo "Produced by \`bash benchmarks/run.sh\` (STEPS=$STEPS STEP_DURATION=$STEP_DURATION SLO_US=$SLO_US CONNECTIONS=$CONNECTIONS WRK_DURATION=$WRK_DURATION)."
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
	echo "- nproc: $(nproc); CPU: $CPU"
	echo "- $(go version)"
	if command -v wrk >/dev/null; then
		echo "- wrk: $( (wrk --version 2>&1 || true) | head -1 | awk '{print $1, $2}')"
	else
		echo "- wrk: not installed (apt-get install wrk)"
	fi
	echo
	echo "**Caveat: the load generator and the server share the same $(nproc) cores.** Every number below"
	echo "includes the client's own CPU use and contention with it; they compare the three servers under"
	echo "the same handicap, they are not the servers' capacity on a machine of their own."
	echo
	echo "## rtb loadgen (open loop, latency from intended send time)"
	echo
	echo "Constant-rate runs of $STEP_DURATION at each step, $CONNECTIONS connections, seeded realistic request mix."
	echo "\"Max rate\" is the highest step sustained with p99 < ${SLO_US} µs, the achieved rate within 2% of the"
	echo "target and no errors or late sends (0 = not even the first step; ≥ = the top step held, so the true"
	echo "maximum is higher than these steps can tell). p50/p99/p99.9 are measured in a"
	echo "separate run at half that rate."
	echo
	echo "| server | max rate (req/s) | p50 @ half (µs) | p99 @ half (µs) | p99.9 @ half (µs) | bids @ half | p99 per step (rate:µs) |"
	echo "|---|---:|---:|---:|---:|---:|---|"
	for n in floor rtb baseline; do
		echo "| $n | ${TOP[$n]}${MAX[$n]} | ${P50[$n]} | ${P99[$n]} | ${P999[$n]} | ${BIDRATE[$n]}% | ${STEPLOG[$n]} |"
	done
	echo
	echo "| ratio | max rate | p50 @ half | p99 @ half |"
	echo "|---|---:|---:|---:|"
	echo "| rtb ÷ floor | $(ratio "${MAX[rtb]}" "${MAX[floor]}") | $(ratio "${P50[rtb]}" "${P50[floor]}") | $(ratio "${P99[rtb]}" "${P99[floor]}") |"
	echo "| rtb ÷ baseline | $(ratio "${MAX[rtb]}" "${MAX[baseline]}") | $(ratio "${P50[rtb]}" "${P50[baseline]}") | $(ratio "${P99[rtb]}" "${P99[baseline]}") |"
	echo
	echo "The halves are measured at different rates for each server (half of its own maximum)."
	echo
	echo "## wrk (closed loop, independent client)"
	echo
	echo "\`wrk -t2 -c$CONNECTIONS -d$WRK_DURATION --latency -s benchmarks/post.lua\`, POSTing one request body"
	echo "(bidder/openrtb/testdata/requests/v26-banner.json) as fast as answers come back. Closed loop: a slow answer"
	echo "delays the next request, so its latencies suffer coordinated omission; read them as a cross-check of"
	echo "throughput, not as tail latency."
	echo
	echo "| server | req/s | p50 (µs) | p99 (µs) |"
	echo "|---|---:|---:|---:|"
	for n in floor rtb; do
		read -r a b c <<<"${WRK[$n]}"
		echo "| $n | $a | $b | $c |"
	done
	read -r fr _ _ <<<"${WRK[floor]}"
	read -r rr _ _ <<<"${WRK[rtb]}"
	echo
	echo "rtb ÷ floor throughput under wrk: $(ratio "$rr" "$fr")"
} >"$ROOT/benchmarks/RESULTS.md"

log "wrote benchmarks/RESULTS.md"
cat "$ROOT/benchmarks/RESULTS.md"

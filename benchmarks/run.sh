#!/usr/bin/env bash
# benchmarks/run.sh: one reproducible comparison, on one machine, in one run, of
#   (a) floor     a fasthttp server answering a fixed ~1 KB bid (benchmarks/floor)
#   (b) rtb       `rtb serve --pacing=false --bid-sample 0` (the product)
#   (c) baseline  net/http + encoding/json + a linear campaign scan (benchmarks/baseline)
# with `rtb loadgen` (open loop, latency from intended send time) and the same search for the knee
# for every server: a coarse climb over STEPS, then a bisection between the last sustained and the
# first failed rate down to RESOLUTION_PCT; then latency at half the knee. wrk (closed loop, an
# independent client) runs against (a) and (b). Then the many-campaign rows: rtb and the baseline
# again, each loading the same file of N synthetic campaigns (benchmarks/campaigns) for N in
# CAMPAIGNS. Writes OUT (benchmarks/RESULTS.md). See benchmarks/README.md for every variable.
#
# Usage: bash benchmarks/run.sh                       (about 15 minutes with the defaults, at most ~25)
#        STEPS=2000,4000 STEP_DURATION=3s CAMPAIGNS=1000 OUT=/tmp/r.md bash benchmarks/run.sh   (a check)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
STEPS=${STEPS:-2000,4000,8000,16000,24000,32000,48000,64000}
STEP_DURATION=${STEP_DURATION:-10s}
WARM_DURATION=${WARM_DURATION:-$STEP_DURATION}
SLO_US=${SLO_US:-1000}
RESOLUTION_PCT=${RESOLUTION_PCT:-5}
BISECT_MAX=${BISECT_MAX:-6}
WRK_DURATION=${WRK_DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
SERVERS=${SERVERS:-floor,rtb,baseline}
CAMPAIGNS=${CAMPAIGNS-1000,10000}
CAMPAIGN_SEED=${CAMPAIGN_SEED:-1}
DEGRADED_MAX_PCT=${DEGRADED_MAX_PCT:-1}
RETRY=${RETRY:-0}
PIN=${PIN:-0}
# The generator is suspected of being the bottleneck at a failing rate when it used at least this many
# cores there: half the machine when it shares all cores with the server, 0.9 of its own core pinned.
GEN_CPU_MAX=${GEN_CPU_MAX:-$(if [[ $PIN == 1 ]]; then echo 0.90; else awk -v n="$(nproc)" 'BEGIN{printf "%.2f", n/2}'; fi)}
PIN_SERVER=${PIN_SERVER:-0}
PIN_CLIENT=${PIN_CLIENT:-1}
OUT=${OUT:-$ROOT/benchmarks/RESULTS.md}
WORK=$(mktemp -d -t rtb-bench.XXXXXX)
BODY=$ROOT/bidder/openrtb/testdata/requests/v26-banner.json
PIDS=()
SERVER_PID=
T0=$SECONDS
LOAD0=$(cut -d" " -f1-3 /proc/loadavg)

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '== [%4ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

command -v jq >/dev/null || die "jq is required (apt-get install jq)"
command -v curl >/dev/null || die "curl is required"
[[ $PIN == 0 || $PIN == 1 ]] || die "PIN must be 0 or 1"
[[ $RETRY == 0 || $RETRY == 1 ]] || die "RETRY must be 0 or 1"
if [[ $PIN == 1 ]]; then
	command -v taskset >/dev/null || die "PIN=1 needs taskset (util-linux)"
	SRV_PIN=(taskset -c "$PIN_SERVER")
	CLI_PIN=(taskset -c "$PIN_CLIENT")
else
	SRV_PIN=()
	CLI_PIN=()
fi
for port in 18080 18081 18090 18091 19092; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then die "port 127.0.0.1:$port is in use"; fi
done

if awk -v l="${LOAD0%% *}" 'BEGIN{exit !(l > 0.5)}'; then
	log "WARNING: load average $LOAD0 before the run: the machine is not quiet, figures will be noisy"
fi
log "building into $WORK"
# What the binaries are built from, taken now: at the end OUT itself is being written, so the tree
# always differs then.
BUILT_FROM="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' with uncommitted changes')"
go build -o "$WORK/rtb" ./cmd/rtb
go build -o "$WORK/floor" ./benchmarks/floor
go build -o "$WORK/baseline" ./benchmarks/baseline
go build -o "$WORK/campaigns" ./benchmarks/campaigns
# The sample campaigns without their frequency caps, for rtb and the baseline alike: the baseline
# implements no caps, and the load generator's pool brings each user back many times a minute, so
# capped campaigns would soon stop bidding in rtb: it would do less work than the baseline per
# request (and look faster for it) instead of the same.
SAMPLES=$WORK/samples-uncapped.yaml
awk '/^    frequency_cap:/ { skip = 2; next } skip > 0 { skip--; next } { print }' bidder/campaign/samples.yaml >"$SAMPLES"
grep -q frequency_cap "$SAMPLES" && die "could not strip the frequency caps from the samples"

# wait_http URL: up to 120 s for the server to answer (10,000 campaigns take a few seconds to load).
wait_http() {
	local _
	for _ in $(seq 1200); do
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then echo "server for $1 exited; its log:" >&2; cat "$WORK"/*.log >&2 || true; return 1; fi
		if curl -s -o /dev/null -X POST --max-time 1 --data-binary @"$BODY" "$1"; then return 0; fi
		sleep 0.1
	done
	echo "server at $1 did not come up" >&2
	return 1
}

# start_server KIND [CAMPAIGN_FILE]: starts it in the background, sets URL and ADMIN ("" if none).
start_server() {
	local file=${2:-}
	ADMIN=
	case $1 in
	floor)
		"${SRV_PIN[@]}" "$WORK/floor" --listen 127.0.0.1:18090 >"$WORK/floor.log" 2>&1 &
		URL=http://127.0.0.1:18090/openrtb2/bid ;;
	rtb)
		# --pacing=false and --bid-sample 0: pacing state and the Kafka bid log must not shape the numbers.
		rm -rf "$WORK/rtb-data"
		"${SRV_PIN[@]}" "$WORK/rtb" serve --listen 127.0.0.1:18080 --admin 127.0.0.1:18081 --broker-addr 127.0.0.1:19092 \
			--data-dir "$WORK/rtb-data" --pacing=false --bid-sample 0 --log-level warn \
			${file:+--campaigns "$file"} >"$WORK/rtb.log" 2>&1 &
		URL=http://127.0.0.1:18080/openrtb2/bid
		ADMIN=http://127.0.0.1:18081 ;;
	baseline)
		"${SRV_PIN[@]}" "$WORK/baseline" --listen 127.0.0.1:18091 ${file:+--campaigns "$file"} >"$WORK/baseline.log" 2>&1 &
		URL=http://127.0.0.1:18091/openrtb2/bid ;;
	*) die "unknown server $1" ;;
	esac
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
	wait_http "$URL"
}

stop_server() {
	kill "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
}

# degraded: rtb's shed + timeout answers so far (fast 204s that are not decisions), from its metrics.
degraded() {
	if [[ -z $ADMIN ]]; then echo 0; return; fi
	timeout 5 curl -s "$ADMIN/metrics" 2>/dev/null |
		awk '/^rtb_bid_requests_total\{outcome="(shed|timeout)"\}/ { s += $2 } END { printf "%d\n", s }' || echo 0
}

# cputicks: CPU time (user + system, in clock ticks) the server has used so far.
cputicks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat" 2>/dev/null || echo 0; }
CLK_TCK=$(getconf CLK_TCK)

# loadgen RATE DURATION OUT: one constant-rate run, report JSON to OUT, bounded by timeout.
loadgen() {
	local secs
	secs=$(awk -v d="$2" 'BEGIN{ v = d + 0; if (d ~ /ms$/) v /= 1000; else if (d ~ /m$/) v *= 60; printf "%d", v + 60 }')
	timeout "$secs" "${CLI_PIN[@]}" "$WORK/rtb" loadgen --target "$URL" --rate "$1" --duration "$2" \
		--connections "$CONNECTIONS" --out "$3" >/dev/null 2>>"$WORK/loadgen.log" || true
}

# step RATE OUT: one measured run; sets S_OK (1/0), S_P99, S_GOT, S_ERRS, S_CPU (generator cores),
# S_SCPU (server cores), S_LAG, S_DEG, S_BIDS.
step() {
	local before after n t0 t1 c0 c1
	before=$(degraded)
	rm -f "$2"
	c0=$(cputicks) t0=$(date +%s.%N)
	loadgen "$1" "$STEP_DURATION" "$2"
	c1=$(cputicks) t1=$(date +%s.%N)
	after=$(degraded)
	S_DEG=$((after - before))
	# The server's cores over the whole run, including the loadgen's start (building its request pool
	# takes a moment, so this slightly understates the server's use while under load).
	S_SCPU=$(awk -v a="$c0" -v b="$c1" -v t0="$t0" -v t1="$t1" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", (b - a) / hz / (t1 - t0)}')
	if [[ ! -s $2 ]]; then
		S_OK=0 S_P99=999999999 S_GOT=0 S_ERRS=-1 S_CPU=0 S_LAG=0 S_BIDS=0
		log "$NAME @ $1/s: no report (see $WORK/loadgen.log)"
		return
	fi
	read -r S_P99 S_GOT S_ERRS S_CPU S_LAG S_BIDS n < <(jq -r '[
		(.latency.p99_us // 999999999), (.achieved_rate // 0 | floor),
		((.outcomes | .error_connect + .error_timeout + .error_other + .late + .status_5xx + .status_4xx) // 0),
		(.generator_cpu_cores // 0 | . * 100 | round / 100), (.send_lag.p99_us // 0),
		(.bid_rate // 0 | . * 1000 | round / 10 | tostring + "%"), (.scheduled // 0)] | @tsv' "$2")
	S_OK=0
	# Sustained = p99 under the SLO, the rate achieved (within 2%), no errors, 4xx/5xx or late sends,
	# and (rtb) at most DEGRADED_MAX_PCT of answers shed or timed out (a fast 204 is not a decision).
	if (( S_P99 < SLO_US && S_GOT * 100 >= $1 * 98 && S_ERRS == 0 && S_DEG * 100 <= n * DEGRADED_MAX_PCT )); then S_OK=1; fi
	log "$NAME @ $1/s: $([[ $S_OK == 1 ]] && echo sustained || echo FAILED): achieved $S_GOT/s, p99 ${S_P99}µs, errors+late $S_ERRS, shed+timeout $S_DEG, bids ${S_BIDS}, server ${S_SCPU} cores, generator ${S_CPU} cores (send lag p99 ${S_LAG}µs)"
}

# try RATE OUT: step, and when it fails and RETRY=1, once more (sustained if the retry passes).
# Appends "rate:p99" (✗ failed, * passed on retry) to steplog.
try() {
	step "$1" "$2"
	if [[ $S_OK == 0 && $RETRY == 1 ]]; then
		log "$NAME @ $1/s: retrying once (RETRY=1)"
		step "$1" "$2"
		if [[ $S_OK == 1 ]]; then steplog+="$1:${S_P99}* "; return; fi
	fi
	steplog+="$1:${S_P99}$([[ $S_OK == 1 ]] || echo ✗) "
}

# knee NAME: warm up, coarse climb, bisection, half-rate run, on the running server at URL.
# Sets MAX, MARK ("" measured, "≥ " top step held, "≥ " + GENB=1 generator-bound), STEPLOG, and the
# half-rate figures.
declare -A MAX MARK GENB STEPLOG P50 P99 P999 BIDS_HALF BIDS_MAX CPU_MAX CPU_FAIL HALF FAIL
knee() {
	local name=$1 lo=0 hi=0 lo_cpu=- lo_bids=- hi_cpu=- hi_gen=0 r mid n=0 steplog="" rates
	NAME=$name
	log "$name: warm-up at 1000/s for $WARM_DURATION"
	loadgen 1000 "$WARM_DURATION" "$WORK/warm.json"
	IFS=, read -ra rates <<<"$STEPS"
	for r in "${rates[@]}"; do
		try "$r" "$WORK/$name-$r.json"
		if [[ $S_OK == 1 ]]; then
			lo=$r lo_cpu="$S_SCPU / $S_CPU" lo_bids=$S_BIDS
		else
			hi=$r hi_cpu="$S_SCPU / $S_CPU" hi_gen=$S_CPU
			break # higher steps would only fail harder
		fi
	done
	# Bisection between the last sustained (lo) and the first failed (hi) rate, to RESOLUTION_PCT of
	# the knee (of hi when even the first step failed), at most BISECT_MAX runs.
	if (( hi > 0 )); then
		steplog+="→ bisect: "
		while (( n < BISECT_MAX )); do
			local ref=$lo
			if (( ref == 0 )); then ref=$hi; fi
			if (( (hi - lo) * 100 <= ref * RESOLUTION_PCT )); then break; fi
			mid=$(( (lo + hi) / 2 / 50 * 50 ))
			if (( mid <= lo || mid >= hi )); then break; fi
			try "$mid" "$WORK/$name-$mid.json"
			if [[ $S_OK == 1 ]]; then lo=$mid lo_cpu="$S_SCPU / $S_CPU" lo_bids=$S_BIDS; else hi=$mid hi_cpu="$S_SCPU / $S_CPU" hi_gen=$S_CPU; fi
			n=$((n + 1))
		done
	fi
	MAX[$name]=$lo FAIL[$name]=$hi CPU_MAX[$name]=$lo_cpu CPU_FAIL[$name]=$hi_cpu BIDS_MAX[$name]=$lo_bids
	STEPLOG[$name]=$steplog
	MARK[$name]="" GENB[$name]=0
	if (( hi == 0 )); then
		MARK[$name]="≥ "
		log "$name: held the top step $lo/s: its knee is above the steps (server / generator cores there: ${lo_cpu})"
	elif awk -v c="$hi_gen" -v m="$GEN_CPU_MAX" 'BEGIN{exit !(c >= m)}'; then
		# The generator used at least GEN_CPU_MAX cores at the failing rate: on shared cores the failure
		# may be the generator's (or its contention), not the server's.
		MARK[$name]="≥ " GENB[$name]=1
		log "$name: knee $lo/s, but the generator used ${hi_gen} cores (≥ GEN_CPU_MAX $GEN_CPU_MAX) at $hi/s: generator-bound, a lower bound"
	else
		log "$name: knee $lo/s (first failed $hi/s)"
	fi
	P50[$name]=- P99[$name]=- P999[$name]=- BIDS_HALF[$name]=- HALF[$name]=-
	if (( lo > 0 )); then
		local half=$((lo / 2 / 50 * 50))
		HALF[$name]=$half
		loadgen "$half" "$STEP_DURATION" "$WORK/$name-half.json"
		if [[ -s $WORK/$name-half.json ]]; then
			read -r P50[$name] P99[$name] P999[$name] BIDS_HALF[$name] < <(jq -r \
				'[.latency.p50_us, .latency.p99_us, .latency.p999_us, (.bid_rate * 1000 | round / 10 | tostring + "%")] | @tsv' "$WORK/$name-half.json")
		fi
		log "$name @ $half/s (half): p50 ${P50[$name]}µs p99 ${P99[$name]}µs p99.9 ${P999[$name]}µs, bids ${BIDS_HALF[$name]}"
	fi
}

# wrk_run: 2 threads, CONNECTIONS connections, WRK_DURATION; prints "rps p50 p99" (latencies in µs).
wrk_run() {
	RTB_BODY=$BODY timeout 120 "${CLI_PIN[@]}" wrk -t2 -c"$CONNECTIONS" -d"$WRK_DURATION" --latency -s "$ROOT/benchmarks/post.lua" "$URL" >"$WORK/wrk.out" 2>&1 || true
	awk '
		function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1e6; return v }
		/Requests\/sec:/ { rps = $2 }
		$1 == "50%" { p50 = us($2) }
		$1 == "99%" { p99 = us($2) }
		END { if (rps == "") print "- - -"; else printf "%d %d %d\n", rps, p50, p99 }' "$WORK/wrk.out"
}

declare -A WRK
ROWS=()
IFS=, read -ra servers <<<"$SERVERS"
for name in "${servers[@]}"; do
	[[ $name == floor || $name == rtb || $name == baseline ]] || die "SERVERS: unknown server $name"
	log "$name: starting"
	start_server "$name" "$SAMPLES"
	knee "$name"
	WRK[$name]="- - -"
	if [[ $name != baseline ]]; then
		if command -v wrk >/dev/null; then
			WRK[$name]=$(wrk_run)
			log "$name wrk: ${WRK[$name]} (req/s p50µs p99µs)"
		else
			log "wrk not installed: skipped (apt-get install wrk)"
		fi
	fi
	stop_server
	ROWS+=("$name")
done

MANY=()
if [[ -n $CAMPAIGNS ]]; then
	IFS=, read -ra counts <<<"$CAMPAIGNS"
	for c in "${counts[@]}"; do
		[[ $c =~ ^[0-9]+$ ]] || die "CAMPAIGNS: $c is not a number"
		file=$WORK/campaigns-$c.json
		"$WORK/campaigns" -n "$c" -seed "$CAMPAIGN_SEED" -o "$file" 2>&1 | sed 's/^/== /' >&2
		for kind in rtb baseline; do
			name=$kind@$c
			log "$name: starting with $c synthetic campaigns"
			start_server "$kind" "$file"
			knee "$name"
			stop_server
		done
		MANY+=("$c")
	done
fi

ratio() { # a b: a/b to 2 decimals, or "-"
	if [[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ && $2 -gt 0 ]]; then awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; else echo -; fi
}
# kratio A B AIM: knee of row A ÷ knee of row B and whether it reaches AIM, as "RATIO | VERDICT".
# A knee marked ≥ is a lower bound, so the ratio is a bound too: ≥ when only A's is, ≤ when only B's
# is, unknown when both are; the verdict says "met"/"not met" only when the bound decides it.
kratio() {
	local r a=${MARK[$1]:-} b=${MARK[$2]:-} dir=""
	if [[ ${MAX[$1]:-0} -gt 0 && ${MAX[$2]:-} == 0 ]]; then
		echo "∞ | met: $2 sustained no rate tried (first failed ${FAIL[$2]}/s)"
		return
	fi
	r=$(ratio "${MAX[$1]:-}" "${MAX[$2]:-}")
	if [[ $r == - ]]; then echo "- | -"; return; fi
	if [[ -n $a && -n $b ]]; then dir="?"; elif [[ -n $a ]]; then dir="≥"; elif [[ -n $b ]]; then dir="≤"; fi
	local ge
	ge=$(awk -v r="$r" -v a="$3" 'BEGIN{print (r >= a) ? 1 : 0}')
	case $dir$ge in
	1 | ≥1) echo "${dir:+$dir }$r | met" ;;
	0 | ≤0) echo "${dir:+$dir }$r | not met" ;;
	*) echo "${dir:+$dir }$r | undecided: a knee is a bound (≥)" ;;
	esac
}
wverdict() { # RATIO AIM
	if [[ $1 == - ]]; then echo "-"; else awk -v r="$1" -v a="$2" 'BEGIN{print (r >= a) ? "met" : "not met"}'; fi
}
has() { local x; for x in "${ROWS[@]}"; do [[ $x == "$1" ]] && return 0; done; return 1; }
mark() { echo "${MARK[$1]:-}${MAX[$1]:--}$([[ ${GENB[$1]:-0} == 1 ]] && echo ' (gen)')"; }
row() { # name label
	local n=$1
	echo "| $2 | $(mark "$n") | ${FAIL[$n]/#0/-} | ${CPU_MAX[$n]} | ${CPU_FAIL[$n]} | ${BIDS_MAX[$n]} | ${HALF[$n]} | ${P50[$n]} | ${P99[$n]} | ${P999[$n]} | ${BIDS_HALF[$n]} | ${STEPLOG[$n]}|"
}

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
TOTAL=$((SECONDS - T0))
{
	echo "# Benchmark results"
	echo
	echo "Produced in $((TOTAL / 60)) min $((TOTAL % 60)) s by (every variable at the value it had):"
	echo
	echo "    STEPS=$STEPS STEP_DURATION=$STEP_DURATION WARM_DURATION=$WARM_DURATION \\"
	echo "    SLO_US=$SLO_US RESOLUTION_PCT=$RESOLUTION_PCT BISECT_MAX=$BISECT_MAX RETRY=$RETRY DEGRADED_MAX_PCT=$DEGRADED_MAX_PCT \\"
	echo "    CONNECTIONS=$CONNECTIONS WRK_DURATION=$WRK_DURATION SERVERS=$SERVERS CAMPAIGNS=$CAMPAIGNS CAMPAIGN_SEED=$CAMPAIGN_SEED \\"
	echo "    GEN_CPU_MAX=$GEN_CPU_MAX PIN=$PIN PIN_SERVER=$PIN_SERVER PIN_CLIENT=$PIN_CLIENT bash benchmarks/run.sh"
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "- built from: $BUILT_FROM"
	echo "- nproc: $(nproc); CPU: $CPU"
	echo "- load average (1, 5, 15 min) before the run: $LOAD0; after: $(cut -d" " -f1-3 /proc/loadavg) (the run itself adds about 2)"
	echo "- $(go version)"
	if command -v wrk >/dev/null; then
		echo "- wrk: $( (wrk --version 2>&1 || true) | head -1 | awk '{print $1, $2}')"
	else
		echo "- wrk: not installed (apt-get install wrk)"
	fi
	echo
	if [[ $PIN == 1 ]]; then
		echo "**Pinned: each server ran on CPU $PIN_SERVER only (so Go's GOMAXPROCS was 1), the load generator and wrk"
		echo "on CPU $PIN_CLIENT only.** The client no longer steals the server's core, but every server has one core"
		echo "of the $(nproc): these are one-core figures, not comparable with unpinned runs."
	else
		echo "**Caveat: the load generator and the server share the same $(nproc) cores.** Every number below"
		echo "includes the client's own CPU use and contention with it (its use is shown per row); they compare"
		echo "the servers under the same handicap, they are not the servers' capacity on a machine of their own."
	fi
	echo
	echo "## rtb loadgen (open loop, latency from intended send time)"
	echo
	echo "Each rate is a separate constant-rate run of $STEP_DURATION, $CONNECTIONS connections, the seeded realistic"
	echo "request mix, after a warm-up at 1000/s. A rate is *sustained* when p99 < ${SLO_US} µs, the achieved rate is"
	echo "within 2% of the target, there were no errors, 4xx/5xx or late sends, and (rtb) at most"
	echo "${DEGRADED_MAX_PCT}% of answers were shed or timed out. The same procedure for every server: a coarse climb over"
	echo "STEPS until the first failure, then a bisection between the last sustained and the first failed"
	echo "rate until they are within ${RESOLUTION_PCT}% (at most $BISECT_MAX runs). \"Knee\" is the last sustained rate;"
	echo "the true maximum lies between it and \"first failed\". ≥ marks a lower bound: the top step held, or"
	echo "(gen) the generator used ≥ $GEN_CPU_MAX cores at the failing rate, so the failure may be the"
	echo "generator's. p50/p99/p99.9 are from one more run at half the knee."
	echo
	echo "| server | knee (req/s) | first failed | cores server / generator @ knee | @ first failed | bids @ knee | half (req/s) | p50 @ half (µs) | p99 @ half (µs) | p99.9 @ half (µs) | bids @ half | p99 per run, µs (✗ failed; * passed on retry) |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	for n in "${ROWS[@]}"; do row "$n" "$n"; done
	for c in "${MANY[@]}"; do
		row "rtb@$c" "rtb, $c campaigns"
		row "baseline@$c" "baseline, $c campaigns"
	done
	echo
	echo "## Ratios and aims"
	echo
	echo "| ratio | loadgen knee | wrk req/s | p50 @ half | p99 @ half | aim |"
	echo "|---|---:|---:|---:|---:|---|"
	read -r fw _ _ <<<"${WRK[floor]:-- - -}"
	read -r rw _ _ <<<"${WRK[rtb]:-- - -}"
	if has rtb && has floor; then
		IFS='|' read -r r1 v1 <<<"$(kratio rtb floor 0.70)"
		r2=$(ratio "$rw" "$fw")
		echo "| rtb ÷ floor | $r1 | $r2 | $(ratio "${P50[rtb]}" "${P50[floor]}") | $(ratio "${P99[rtb]}" "${P99[floor]}") | ≥ 0.70 — loadgen: ${v1# }; wrk: $(wverdict "$r2" 0.70) |"
	fi
	if has rtb && has baseline; then
		IFS='|' read -r r1 v1 <<<"$(kratio rtb baseline 2)"
		echo "| rtb ÷ baseline (sample campaigns) | $r1 | - | $(ratio "${P50[rtb]}" "${P50[baseline]}") | $(ratio "${P99[rtb]}" "${P99[baseline]}") | ≥ 2 — ${v1# } |"
	fi
	for c in "${MANY[@]}"; do
		IFS='|' read -r r1 v1 <<<"$(kratio "rtb@$c" "baseline@$c" 2)"
		echo "| rtb ÷ baseline ($c campaigns) | $r1 | - | $(ratio "${P50[rtb@$c]}" "${P50[baseline@$c]}") | $(ratio "${P99[rtb@$c]}" "${P99[baseline@$c]}") | ≥ 2 — ${v1# } |"
	done
	echo
	echo "The p50/p99 ratios compare each server at half of its own knee, so at different rates."
	echo "Bid rates must agree between rtb and the baseline for the comparison to be fair (same campaigns,"
	echo "same traffic): they are in the table above. The many-campaign rows load the same file of"
	echo "\`campaigntest.Synthetic(N, $CAMPAIGN_SEED)\` campaigns, written by \`benchmarks/campaigns\` with sites, publishers"
	echo "and deals renamed into the load generator's vocabulary."
	if has floor || has rtb; then
		echo
		echo "## wrk (closed loop, independent client)"
		echo
		echo "\`wrk -t2 -c$CONNECTIONS -d$WRK_DURATION --latency -s benchmarks/post.lua\`, POSTing one request body"
		echo "(bidder/openrtb/testdata/requests/v26-banner.json) as fast as answers come back. Closed loop: a slow answer"
		echo "delays the next request, so its latencies suffer coordinated omission; read them as a cross-check of"
		echo "throughput, not as tail latency. wrk drives as hard as it can: its throughput is a saturation figure,"
		echo "not a rate held under a p99 bound, so it is higher than the loadgen knee."
		echo
		echo "| server | req/s | p50 (µs) | p99 (µs) |"
		echo "|---|---:|---:|---:|"
		for n in floor rtb; do
			if has "$n"; then
				read -r a b c <<<"${WRK[$n]}"
				echo "| $n | $a | $b | $c |"
			fi
		done
	fi
} >"$OUT"

log "wrote $OUT ($((TOTAL / 60)) min $((TOTAL % 60)) s)"
cat "$OUT"

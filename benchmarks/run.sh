#!/usr/bin/env bash
# benchmarks/run.sh: one reproducible comparison, on one machine, in one run, of
#   (a) floor     a fasthttp server answering a fixed ~1 KB bid (benchmarks/floor)
#   (b) rtb       `rtb serve --pacing=false --bid-sample 0` (the product)
#   (c) baseline  net/http + encoding/json + a linear campaign scan (benchmarks/baseline)
# with `rtb loadgen` (open loop, latency from intended send time) and the same search for the knee
# for every server: a coarse climb over STEPS, then a bisection between the last sustained and the
# first failed rate down to RESOLUTION_PCT; then latency at half the knee. wrk (closed loop, an
# independent client) runs against (a) and (b). Then the many-campaign rows: rtb as it ships
# (`rtb serve`: pacing on, learned shading, the 5% bid log; RTB_MANY_FLAGS) for N in CAMPAIGNS, and
# the baseline for N in BASELINE_CAMPAIGNS, each loading the same file of N synthetic campaigns
# (benchmarks/campaigns). For every rtb row also: the time to ready, its idle cost (CPU, allocation
# rate, RSS with no traffic; IDLE_CAMPAIGNS adds rows started only for it) and, from an execution
# trace taken at half the knee, its longest goroutine run outside the GC (benchmarks/stalls), once
# on the shared cores and once moved onto a core of its own (PIN_SERVER, the generator on PIN_CLIENT);
# the floor gets the same traces, the control for what the machine itself does to any server's goroutines.
# Writes OUT (benchmarks/RESULTS.md). See benchmarks/README.md for every variable.
#
# Usage: bash benchmarks/run.sh                       (about 25 minutes with the defaults, at most ~40)
#        STEPS=2000,4000 STEP_DURATION=3s WRK_DURATION=3s BISECT_MAX=2 CAMPAIGNS=1000 \
#          IDLE_CAMPAIGNS=100,1000 IDLE_DURATION=5s OUT=/tmp/check.md bash benchmarks/run.sh   (a check)
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
SERVERS=${SERVERS-floor,rtb,baseline}
CAMPAIGNS=${CAMPAIGNS-1000,10000,100000}
BASELINE_CAMPAIGNS=${BASELINE_CAMPAIGNS-1000,10000}
# rtb serve's flags in the many-campaign and idle-only rows beyond ports and data dir: none, i.e. as
# it ships (pacing obeyed, learned shading, --bid-sample 0.05). The sample-campaign row keeps
# --pacing=false --bid-sample 0, like for like with the floor and the baseline.
RTB_MANY_FLAGS=${RTB_MANY_FLAGS-}
IDLE_CAMPAIGNS=${IDLE_CAMPAIGNS-100,10000,100000}
IDLE_SETTLE=${IDLE_SETTLE:-10s}
IDLE_DURATION=${IDLE_DURATION:-20s}
READY_TIMEOUT=${READY_TIMEOUT:-180}
STALL_RATE=${STALL_RATE:-1000}
STALL_SECONDS=${STALL_SECONDS:-5}
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
# stealticks: CPU time (clock ticks, all CPUs) the hypervisor gave to other guests while this
# machine wanted it ("steal", the 8th value of /proc/stat's cpu line), and alltimes: all of it. On a
# shared virtual machine stolen time shows as stalls in every process, the generator's included.
stealticks() { awk '/^cpu / { print $9; exit }' /proc/stat; }
allticks() { awk '/^cpu / { s = 0; for (i = 2; i <= 9; i++) s += $i; print s; exit }' /proc/stat; }
STEAL0=$(stealticks) ALL0=$(allticks)

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
[[ $READY_TIMEOUT =~ ^[0-9]+$ ]] || die "READY_TIMEOUT must be whole seconds"
[[ $STALL_SECONDS =~ ^[1-9][0-9]*$ ]] || die "STALL_SECONDS must be whole seconds, at least 1"
[[ $STALL_RATE =~ ^[1-9][0-9]*$ ]] || die "STALL_RATE must be a positive rate"
for v in "$IDLE_SETTLE" "$IDLE_DURATION"; do [[ $v =~ ^[0-9]+(\.[0-9]+)?[sm]?$ ]] || die "IDLE_SETTLE, IDLE_DURATION: $v is not a duration like 10s"; done
read -ra MANY_FLAGS <<<"$RTB_MANY_FLAGS"
if [[ $PIN == 1 ]]; then
	command -v taskset >/dev/null || die "PIN=1 needs taskset (util-linux)"
	SRV_PIN=(taskset -c "$PIN_SERVER")
	CLI_PIN=(taskset -c "$PIN_CLIENT")
else
	SRV_PIN=()
	CLI_PIN=()
fi
for port in 18080 18081 18090 18091 18092 19092; do
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
go build -o "$WORK/stalls" ./benchmarks/stalls
go build -o "$WORK/timers" ./benchmarks/timers
# How late this machine's timers fire with nothing else running: the VM's own noise, which no
# server's p99 can be below. Measured again at the end.
TIMERS0=$("$WORK/timers" 2>/dev/null | sed 's/.*: late by //') || TIMERS0="not measured"
log "timers before the run: time.Sleep(500µs) late by $TIMERS0"
# The sample campaigns without their frequency caps, for rtb and the baseline alike: the baseline
# implements no caps, and the load generator's pool brings each user back many times a minute, so
# capped campaigns would soon stop bidding in rtb: it would do less work than the baseline per
# request (and look faster for it) instead of the same.
SAMPLES=$WORK/samples-uncapped.yaml
awk '/^    frequency_cap:/ { skip = 2; next } skip > 0 { skip--; next } { print }' bidder/campaign/samples.yaml >"$SAMPLES"
grep -q frequency_cap "$SAMPLES" && die "could not strip the frequency caps from the samples"

# wait_ready KIND URL: until the server is ready, at most READY_TIMEOUT s from its start (T_START);
# rtb is ready when its /readyz answers 200 (campaigns loaded, caps warmed), the others when they
# answer a bid request. Sets READY_S (seconds from the start); on failure START_ERR and returns 1.
wait_ready() {
	local deadline=$((SECONDS + READY_TIMEOUT)) log=$WORK/$1.log ready=0
	while ((SECONDS < deadline)); do
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then
			READY_S=$(awk -v t0="$T_START" -v t1="$(date +%s.%N)" 'BEGIN{printf "%.1f", t1 - t0}')
			START_ERR="exited ${READY_S} s after its start, before it was ready: $(tail -n 1 "$log" 2>/dev/null | cut -c1-200)"
			echo "$1 exited; its log:" >&2
			tail -n 20 "$log" >&2 || true
			return 1
		fi
		if [[ $1 == rtb ]]; then
			if curl -sf -o /dev/null --max-time 1 "${2%/openrtb2/bid}/readyz"; then ready=1; break; fi
		elif curl -s -o /dev/null -X POST --max-time 1 --data-binary @"$BODY" "$2"; then
			ready=1; break
		fi
		sleep 0.1
	done
	READY_S=$(awk -v t0="$T_START" -v t1="$(date +%s.%N)" 'BEGIN{printf "%.1f", t1 - t0}')
	if ((ready == 0)); then
		START_ERR="not ready after ${READY_TIMEOUT} s (READY_TIMEOUT)"
		echo "$1 at $2: $START_ERR" >&2
		return 1
	fi
}

# start_server KIND [CAMPAIGN_FILE [many]]: starts it in the background, waits until it is ready,
# sets URL, ADMIN ("" if none) and READY_S; returns 1 with START_ERR when it does not get ready
# (the caller records the row as not run and stops it). "many": rtb with RTB_MANY_FLAGS instead of
# --pacing=false --bid-sample 0.
start_server() {
	local file=${2:-} flags
	ADMIN='' PPROF='' START_ERR='' READY_S=-
	T_START=$(date +%s.%N)
	case $1 in
	floor)
		"${SRV_PIN[@]}" "$WORK/floor" --listen 127.0.0.1:18090 --admin 127.0.0.1:18092 >"$WORK/floor.log" 2>&1 &
		URL=http://127.0.0.1:18090/openrtb2/bid
		PPROF=http://127.0.0.1:18092 ;;
	rtb)
		# The sample row: --pacing=false and --bid-sample 0, pacing state and the Kafka bid log must not
		# shape the comparison with the floor and the baseline. The many-campaign rows: as it ships.
		flags=(--pacing=false --bid-sample 0)
		if [[ ${3:-} == many ]]; then flags=("${MANY_FLAGS[@]}"); fi
		rm -rf "$WORK/rtb-data"
		"${SRV_PIN[@]}" "$WORK/rtb" serve --listen 127.0.0.1:18080 --admin 127.0.0.1:18081 --broker-addr 127.0.0.1:19092 \
			--data-dir "$WORK/rtb-data" --log-level warn "${flags[@]}" \
			${file:+--campaigns "$file"} >"$WORK/rtb.log" 2>&1 &
		URL=http://127.0.0.1:18080/openrtb2/bid
		ADMIN=http://127.0.0.1:18081
		PPROF=$ADMIN ;;
	baseline)
		"${SRV_PIN[@]}" "$WORK/baseline" --listen 127.0.0.1:18091 ${file:+--campaigns "$file"} >"$WORK/baseline.log" 2>&1 &
		URL=http://127.0.0.1:18091/openrtb2/bid ;;
	*) die "unknown server $1" ;;
	esac
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
	wait_ready "$1" "$URL"
}

stop_server() {
	kill "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
}

# degraded: rtb's shed + timeout answers so far (fast 204s that are not decisions), from its metrics.
# A scrape gathers every series (name[] filters only what is written), per campaign too: at 100,000
# campaigns it takes seconds of CPU, so it is given time to finish before the next run starts (a
# scrape cut short would count 0 and leave the server busy gathering during the run).
degraded() {
	if [[ -z $ADMIN ]]; then echo 0; return; fi
	timeout 120 curl -s "$ADMIN/metrics?name[]=rtb_bid_requests_total" 2>/dev/null |
		awk '/^rtb_bid_requests_total\{outcome="(shed|timeout)"\}/ { s += $2 } END { printf "%d\n", s }' || echo 0
}

# rqwait: nanoseconds the server's threads have spent runnable but waiting for a CPU (the second
# field of each thread's /proc schedstat), so far; threads that ended meanwhile are not counted.
rqwait() { cat /proc/"$SERVER_PID"/task/*/schedstat 2>/dev/null | awk '{ s += $2 } END { printf "%.0f\n", s }'; }

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
	local before after n t0 t1 c0 c1 st0 st1 al0 al1
	before=$(degraded)
	rm -f "$2"
	c0=$(cputicks) t0=$(date +%s.%N) st0=$(stealticks) al0=$(allticks)
	loadgen "$1" "$STEP_DURATION" "$2"
	c1=$(cputicks) t1=$(date +%s.%N) st1=$(stealticks) al1=$(allticks)
	S_STEAL=$(awk -v a="$st0" -v b="$st1" -v x="$al0" -v y="$al1" 'BEGIN{ printf "%.0f%%", (y > x) ? 100 * (b - a) / (y - x) : 0 }')
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
	log "$NAME @ $1/s: $([[ $S_OK == 1 ]] && echo sustained || echo FAILED): achieved $S_GOT/s, p99 ${S_P99}µs, errors+late $S_ERRS, shed+timeout $S_DEG, bids ${S_BIDS}, server ${S_SCPU} cores, generator ${S_CPU} cores (send lag p99 ${S_LAG}µs), CPU stolen by the hypervisor ${S_STEAL}"
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
			read -r "P50[$name]" "P99[$name]" "P999[$name]" "BIDS_HALF[$name]" < <(jq -r \
				'[.latency.p50_us, .latency.p99_us, .latency.p999_us, (.bid_rate * 1000 | round / 10 | tostring + "%")] | @tsv' "$WORK/$name-half.json")
		fi
		log "$name @ $half/s (half): p50 ${P50[$name]}µs p99 ${P99[$name]}µs p99.9 ${P999[$name]}µs, bids ${BIDS_HALF[$name]}"
	fi
}

# totalalloc: the bytes rtb has allocated so far (runtime.MemStats.TotalAlloc, which is also
# go_memstats_alloc_bytes_total), read from the trailer of its heap profile: /metrics carries a series
# per campaign, and one scrape at 10,000 campaigns costs ~0.3 s of CPU and ~50 MB of allocation, which
# would swamp what is measured; the heap profile's cost does not grow with the campaigns.
totalalloc() {
	timeout 10 curl -s "$ADMIN/debug/pprof/heap?debug=1" 2>/dev/null | awk '$2 == "TotalAlloc" { print $4; f = 1 } END { if (!f) print -1 }' || echo -1
}

# gcmetrics: from one /metrics scrape, the collector's accounts: "GC_CPU_SECONDS LIVE_BYTES
# SCAN_BYTES OBJECTS" (go_cpu_classes_gc_total_cpu_seconds_total, go_gc_heap_live_bytes,
# go_gc_scan_heap_bytes, go_gc_heap_objects_objects; "-" for one missing).
gcmetrics() {
	timeout 60 curl -s "$ADMIN/metrics" 2>/dev/null | awk '
		$1 == "go_cpu_classes_gc_total_cpu_seconds_total" { v[1] = $2 } $1 == "go_gc_heap_live_bytes" { v[2] = $2 }
		$1 == "go_gc_scan_heap_bytes" { v[3] = $2 } $1 == "go_gc_heap_objects_objects" { v[4] = $2 }
		END { for (i = 1; i <= 4; i++) printf "%s%s", (i > 1 ? " " : ""), (i in v ? v[i] : "-"); print "" }' || echo "- - - -"
}

# idle NAME: with the server up and no traffic, waits IDLE_SETTLE, then measures over IDLE_DURATION
# its CPU (cores, /proc/PID/stat: what process_cpu_seconds_total reads, without a scrape in the
# window), allocation rate (bytes/s, totalalloc) and, at the end, VmRSS; then the cost of one /metrics
# scrape (CPU s, bytes allocated); then one garbage collection forced (/debug/pprof/heap?gc=1): what
# the collector must mark at every cycle (live heap, its pointer-holding part, objects) and the CPU
# that cycle took by the runtime's account. Sets IDLE_CPU, IDLE_ALLOC (MB/s), IDLE_RSS (MB), SCRAPE, GCOST.
declare -A IDLE_CPU IDLE_ALLOC IDLE_RSS SCRAPE GCOST READY NOTE RAN
idle() {
	local name=$1 a0 a1 c0 c1 t0 t1 rss g0 g1 live scan objs
	IDLE_CPU[$name]=- IDLE_ALLOC[$name]=- IDLE_RSS[$name]=- SCRAPE[$name]=- GCOST[$name]="- | - | - | -"
	if [[ -z $ADMIN || $IDLE_DURATION =~ ^0+(\.0+)?[sm]?$ ]]; then return; fi
	log "$name: idle: settling $IDLE_SETTLE, then $IDLE_DURATION with no traffic"
	sleep "$IDLE_SETTLE"
	a0=$(totalalloc) c0=$(cputicks) t0=$(date +%s.%N)
	sleep "$IDLE_DURATION"
	c1=$(cputicks) t1=$(date +%s.%N)
	a1=$(totalalloc)
	rss=$(awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo -)
	IDLE_CPU[$name]=$(awk -v a="$c0" -v b="$c1" -v t0="$t0" -v t1="$t1" -v hz="$CLK_TCK" 'BEGIN{printf "%.3f", (b - a) / hz / (t1 - t0)}')
	if [[ $a0 == -1 || $a1 == -1 ]]; then
		IDLE_ALLOC[$name]=-
	else
		IDLE_ALLOC[$name]=$(awk -v a="$a0" -v b="$a1" -v t0="$t0" -v t1="$t1" 'BEGIN{printf "%.2f", (b - a) / (t1 - t0) / 1e6}')
	fi
	IDLE_RSS[$name]=${rss:--}
	a0=$(totalalloc) c0=$(cputicks)
	timeout 60 curl -s -o /dev/null "$ADMIN/metrics" || true
	c1=$(cputicks) a1=$(totalalloc)
	SCRAPE[$name]=$(awk -v a="$a0" -v b="$a1" -v c0="$c0" -v c1="$c1" -v hz="$CLK_TCK" 'BEGIN{ if (a < 0 || b < 0) m = "-"; else m = sprintf("%.1f", (b - a) / 1e6); printf "%.2f s / %s MB", (c1 - c0) / hz, m }')
	log "$name: idle ${IDLE_CPU[$name]} cores, ${IDLE_ALLOC[$name]} MB/s allocated, RSS ${IDLE_RSS[$name]} MB; one /metrics scrape: ${SCRAPE[$name]}"
	read -r g0 _ <<<"$(gcmetrics)"
	timeout 60 curl -s -o /dev/null "$ADMIN/debug/pprof/heap?gc=1" || true
	read -r g1 live scan objs <<<"$(gcmetrics)"
	GCOST[$name]=$(awk -v g0="$g0" -v g1="$g1" -v l="$live" -v s="$scan" -v o="$objs" 'BEGIN{
		if (l == "-" || s == "-" || o == "-") { printf "- | - | - | "; } else printf "%.0f | %.0f | %.2f | ", l / 1e6, s / 1e6, o / 1e6
		if (g0 == "-" || g1 == "-") print "-"; else printf "%.0f\n", (g1 - g0) * 1000 }')
	log "$name: one forced collection: live heap / scannable (MB) / objects (millions) / GC CPU (ms): ${GCOST[$name]}"
}

# stall NAME [pinned]: one run at half the knee (STALL_RATE when there is no knee) of STALL_SECONDS + 3 s,
# with an execution trace of STALL_SECONDS taken from 2 s in, read by benchmarks/stalls. Sets
# ST_RATE, ST_NONGC (µs), ST_NONGC_WHERE, ST_ASSIST (µs of GC work inside that run), ST_GC,
# ST_GC_WHERE, ST_TRACER (the tracer's own longest run, µs), ST_WAIT (a request goroutine's longest
# wait to run, µs), ST_P99 (the run's p99), ST_RQ (ms a second the server's threads waited for a CPU
# during the trace: the OS's share), ST_PROCS (the server's GOMAXPROCS, "-" when it has no metrics),
# under the key NAME. "pinned", under the key "NAME pinned": the control for the OS's share, the
# running server moved onto CPU PIN_SERVER alone (Go follows its affinity: GOMAXPROCS becomes 1) and
# the load generator onto PIN_CLIENT, so that no run is lengthened by the other process taking its
# core; the server is given back every CPU afterwards.
declare -A ST_RATE ST_NONGC ST_NONGC_WHERE ST_ASSIST ST_GC ST_GC_WHERE ST_TRACER ST_WAIT ST_P99 ST_RQ ST_PROCS
stall() {
	local name=$1 key=$1 rate lp tr js q0 q1 t0 t1 saved=()
	if [[ ${2:-} == pinned ]]; then key="$1 pinned"; fi
	tr=$WORK/${key// /-}.trace
	rate=${HALF[$name]:--}
	if [[ ! $rate =~ ^[1-9][0-9]*$ ]]; then rate=$STALL_RATE; fi
	ST_RATE[$key]=$rate ST_NONGC[$key]=- ST_NONGC_WHERE[$key]=- ST_ASSIST[$key]=- ST_GC[$key]=- ST_GC_WHERE[$key]=- ST_TRACER[$key]=- ST_WAIT[$key]=- ST_P99[$key]=- ST_RQ[$key]=- ST_PROCS[$key]=-
	if [[ ${2:-} == pinned ]]; then
		if ! taskset -a -p -c "$PIN_SERVER" "$SERVER_PID" >/dev/null 2>>"$WORK/stalls.log"; then
			log "$name: could not move the server onto CPU $PIN_SERVER (see $WORK/stalls.log): no pinned trace"
			return
		fi
		saved=("${CLI_PIN[@]}")
		CLI_PIN=(taskset -c "$PIN_CLIENT")
		sleep 3 # the runtime looks at its affinity about once a second
	fi
	if [[ -n $ADMIN ]]; then
		ST_PROCS[$key]=$(timeout 60 curl -s "$ADMIN/metrics?name[]=go_sched_gomaxprocs_threads" 2>/dev/null | awk '/^go_sched_gomaxprocs_threads / { print $2 }')
		ST_PROCS[$key]=${ST_PROCS[$key]:--}
	fi
	log "$key: execution trace of ${STALL_SECONDS}s at $rate/s (GOMAXPROCS ${ST_PROCS[$key]})"
	rm -f "$tr" "$WORK/$name-stall.json"
	loadgen "$rate" "$((STALL_SECONDS + 3))s" "$WORK/$name-stall.json" &
	lp=$!
	PIDS+=("$lp")
	sleep 2
	q0=$(rqwait) t0=$(date +%s.%N)
	timeout "$((STALL_SECONDS + 60))" curl -s -o "$tr" "$PPROF/debug/pprof/trace?seconds=$STALL_SECONDS" || true
	q1=$(rqwait) t1=$(date +%s.%N)
	ST_RQ[$key]=$(awk -v a="$q0" -v b="$q1" -v t0="$t0" -v t1="$t1" 'BEGIN{ printf "%.1f", (b - a) / 1e6 / (t1 - t0) }')
	wait "$lp" || true
	if [[ ${2:-} == pinned ]]; then
		CLI_PIN=("${saved[@]}")
		taskset -a -p -c "0-$(($(nproc) - 1))" "$SERVER_PID" >/dev/null 2>>"$WORK/stalls.log" || log "$name: could not give the server every CPU back"
		sleep 3
	fi
	if [[ -s $WORK/$name-stall.json ]]; then ST_P99[$key]=$(jq -r '.latency.p99_us // "-"' "$WORK/$name-stall.json"); fi
	if ! js=$("$WORK/stalls" -summary -frames 3 "$tr" 2>>"$WORK/stalls.log"); then
		log "$key: the trace could not be read (see $WORK/stalls.log)"
		return
	fi
	read -r "ST_NONGC[$key]" "ST_ASSIST[$key]" "ST_GC[$key]" "ST_TRACER[$key]" "ST_WAIT[$key]" < <(jq -r '[.longest_non_gc_us, .non_gc_assist_us, .longest_gc_us, .tracer_us, .longest_request_wait_us] | @tsv' <<<"$js")
	ST_NONGC_WHERE[$key]=$(jq -r '"g\(.non_gc_goroutine) \(.non_gc_where)"' <<<"$js" | sed 's/|/\\|/g')
	ST_GC_WHERE[$key]=$(jq -r 'if .longest_gc_us > 0 then "g\(.gc_goroutine) \(.gc_where)" else "no GC in the trace" end' <<<"$js" | sed 's/|/\\|/g')
	log "$key @ $rate/s: longest run outside the GC ${ST_NONGC[$key]}µs (${ST_NONGC_WHERE[$key]}), GC ${ST_GC[$key]}µs (${ST_GC_WHERE[$key]}), tracer ${ST_TRACER[$key]}µs, p99 of the run ${ST_P99[$key]}µs, threads waited for a CPU ${ST_RQ[$key]} ms/s"
	"$WORK/stalls" -top 5 -frames 4 "$tr" 2>/dev/null | sed -n '1,6p' | sed 's/^/==   /' >&2 || true
	rm -f "$tr"
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

# campaign_file N: the file of N synthetic campaigns, written once, in CFILE; returns 1 with the
# writer's complaint in CFAIL[N] when it cannot be written or does not load.
declare -A CFAIL
campaign_file() {
	local file=$WORK/campaigns-$1.json
	CFILE=$file
	if [[ -n ${CFAIL[$1]:-} ]]; then return 1; fi
	if [[ -s $file ]]; then return; fi
	if ! "$WORK/campaigns" -n "$1" -seed "$CAMPAIGN_SEED" -o "$file" 2>"$WORK/campaigns-$1.err"; then
		CFAIL[$1]="the file of $1 campaigns did not load: $(tail -n 1 "$WORK/campaigns-$1.err" | sed 's/^[0-9/]* [0-9:]* //' | cut -c1-200)"
		rm -f "$file"
		log "${CFAIL[$1]}"
		return 1
	fi
	sed 's/^/== /' "$WORK/campaigns-$1.err" >&2
}

# not_run NAME REASON: the row is recorded, with the reason instead of figures.
not_run() {
	NOTE[$1]=$2
	log "$1: not run: $2"
}

# measure NAME KIND: the whole of one row on the server just started: for rtb the idle cost, then
# the knee, then (rtb) the execution trace.
measure() {
	RAN[$1]=1 READY[$1]=$READY_S
	log "$1: ready in ${READY_S} s"
	if [[ $2 == rtb ]]; then idle "$1"; fi
	knee "$1"
	if [[ $2 == rtb || $2 == floor ]]; then
		stall "$1"
		# With PIN=1 the trace above is already of a server on a core of its own.
		if [[ $PIN == 0 ]]; then stall "$1" pinned; fi
	fi
}

declare -A WRK
ROWS=()
IFS=, read -ra servers <<<"$SERVERS"
for name in "${servers[@]}"; do
	[[ $name == floor || $name == rtb || $name == baseline ]] || die "SERVERS: unknown server $name"
	log "$name: starting"
	ROWS+=("$name")
	if ! start_server "$name" "$SAMPLES"; then
		not_run "$name" "$START_ERR"
		stop_server
		continue
	fi
	measure "$name" "$name"
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
done

inlist() { [[ ",$2," == *",$1,"* ]]; } # N LIST
MANY=()
if [[ -n $CAMPAIGNS ]]; then
	IFS=, read -ra counts <<<"$CAMPAIGNS"
	for c in "${counts[@]}"; do
		[[ $c =~ ^[0-9]+$ ]] || die "CAMPAIGNS: $c is not a number"
		MANY+=("$c")
		kinds=(rtb)
		if inlist "$c" "$BASELINE_CAMPAIGNS"; then kinds+=(baseline); fi
		for kind in "${kinds[@]}"; do
			name=$kind@$c
			if ! campaign_file "$c"; then not_run "$name" "${CFAIL[$c]}"; continue; fi
			log "$name: starting with $c synthetic campaigns"
			if ! start_server "$kind" "$CFILE" many; then
				not_run "$name" "$START_ERR"
				stop_server
				continue
			fi
			measure "$name" "$kind"
			stop_server
		done
	done
fi

# The idle-only rows: N of IDLE_CAMPAIGNS with no many-campaign row.
IDLE_ROWS=()
if inlist rtb "$SERVERS"; then IDLE_ROWS+=(rtb); fi
if [[ -n $IDLE_CAMPAIGNS ]]; then
	IFS=, read -ra counts <<<"$IDLE_CAMPAIGNS"
	for c in "${counts[@]}"; do
		[[ $c =~ ^[0-9]+$ ]] || die "IDLE_CAMPAIGNS: $c is not a number"
		name=rtb@$c
		IDLE_ROWS+=("$name")
		if inlist "$c" "$CAMPAIGNS"; then continue; fi
		if ! campaign_file "$c"; then not_run "$name" "${CFAIL[$c]}"; continue; fi
		log "$name: starting with $c synthetic campaigns (idle cost only)"
		if ! start_server rtb "$CFILE" many; then
			not_run "$name" "$START_ERR"
			stop_server
			continue
		fi
		RAN[$name]=1 READY[$name]=$READY_S
		log "$name: ready in ${READY_S} s"
		idle "$name"
		stop_server
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
has() { [[ -n ${RAN[$1]:-} ]]; } # the row NAME was measured
mark() { echo "${MARK[$1]:-}${MAX[$1]:--}$([[ ${GENB[$1]:-0} == 1 ]] && echo ' (gen)')"; }
row() { # name label
	local n=$1
	if [[ -n ${NOTE[$n]:-} ]]; then
		echo "| $2 | - | not run: ${NOTE[$n]} | - | - | - | - | - | - | - | - | - | - |"
		return
	fi
	has "$n" || return 0
	echo "| $2 | ${READY[$n]} | $(mark "$n") | ${FAIL[$n]/#0/-} | ${CPU_MAX[$n]} | ${CPU_FAIL[$n]} | ${BIDS_MAX[$n]} | ${HALF[$n]} | ${P50[$n]} | ${P99[$n]} | ${P999[$n]} | ${BIDS_HALF[$n]} | ${STEPLOG[$n]}|"
}
fmtn() { echo "$1" | sed -E ':a; s/([0-9])([0-9]{3})($|[^0-9])/\1,\2\3/; ta'; } # 100000 → 100,000
label() { if [[ $1 == rtb ]]; then echo "rtb, sample campaigns"; elif [[ $1 != *@* ]]; then echo "$1"; else echo "${1%@*}, $(fmtn "${1#*@}") campaigns"; fi; }
fratio() { # a b: a/b to 2 decimals for decimal numbers, "∞" when only b is 0, "-" when unknown
	awk -v a="$1" -v b="$2" 'BEGIN{
		if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/) { print "-"; exit }
		if (b + 0 == 0) { print (a + 0 == 0) ? "-" : "∞"; exit }
		printf "%.2f", a / b }'
}
# katleast NAME RATE: whether row NAME's knee (p99 under the SLO) reached RATE, as "KNEE | VERDICT".
katleast() {
	if [[ -n ${NOTE[$1]:-} ]]; then echo "- | not measured: ${NOTE[$1]}"; return; fi
	if ! has "$1"; then echo "- | not measured: no such row (CAMPAIGNS)"; return; fi
	local k=${MAX[$1]:-0}
	if ((k >= $2)); then echo "$(mark "$1") | met"
	elif [[ -n ${MARK[$1]:-} ]]; then echo "$(mark "$1") | undecided: the knee is a lower bound under $(fmtn "$2")/s"
	else echo "$(mark "$1") | not met"; fi
}
SLO_LABEL=$(if ((SLO_US % 1000 == 0)); then echo "$((SLO_US / 1000)) ms"; else echo "$SLO_US µs"; fi)
STALL_AIM_US=1000
# The idle ratio: the largest N of IDLE_CAMPAIGNS ÷ the smallest (the issue's aim is 100,000 ÷ 100).
IDLE_LO='' IDLE_HI=''
if [[ -n $IDLE_CAMPAIGNS ]]; then
	IDLE_LO=$(tr , '\n' <<<"$IDLE_CAMPAIGNS" | sort -n | head -n 1)
	IDLE_HI=$(tr , '\n' <<<"$IDLE_CAMPAIGNS" | sort -n | tail -n 1)
fi
idle_ratio() { # KIND(IDLE_CPU|IDLE_ALLOC): "RATIO | VERDICT" for rtb@IDLE_HI ÷ rtb@IDLE_LO, aim ≤ 2
	local -n arr=$1
	local r
	if [[ -z $IDLE_LO || $IDLE_LO == "$IDLE_HI" ]]; then echo "- | not measured: IDLE_CAMPAIGNS needs two N"; return; fi
	r=$(fratio "${arr[rtb@$IDLE_HI]:--}" "${arr[rtb@$IDLE_LO]:--}")
	case $r in
	-) echo "- | not measured" ;;
	∞) echo "∞ | not met" ;;
	*) echo "$r | $(awk -v r="$r" 'BEGIN{print (r <= 2) ? "met" : "not met"}')" ;;
	esac
}

# stall_verdict SUFFIX: the stall aim over every rtb row's trace under the key "NAME$SUFFIX".
stall_verdict() {
	local n k rows=0 over=()
	for n in rtb "${MANY[@]/#/rtb@}"; do
		k=$n$1
		[[ ${ST_NONGC[$k]:--} =~ ^[0-9]+$ ]] || continue
		rows=$((rows + 1))
		if ((ST_NONGC[$k] > STALL_AIM_US)); then over+=("$(label "$n"): ${ST_NONGC[$k]} µs"); fi
	done
	if ((rows == 0)); then
		echo "not measured"
	elif ((${#over[@]} == 0)); then
		echo "met ($rows rows)"
	else
		local v
		v=$(printf '%s; ' "${over[@]}")
		echo "not met: ${v%; }"
	fi
}

TIMERS1=$("$WORK/timers" 2>/dev/null | sed 's/.*: late by //') || TIMERS1="not measured"
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
	echo "    BASELINE_CAMPAIGNS=$BASELINE_CAMPAIGNS RTB_MANY_FLAGS='$RTB_MANY_FLAGS' READY_TIMEOUT=$READY_TIMEOUT \\"
	echo "    IDLE_CAMPAIGNS=$IDLE_CAMPAIGNS IDLE_SETTLE=$IDLE_SETTLE IDLE_DURATION=$IDLE_DURATION STALL_RATE=$STALL_RATE STALL_SECONDS=$STALL_SECONDS \\"
	echo "    GEN_CPU_MAX=$GEN_CPU_MAX PIN=$PIN PIN_SERVER=$PIN_SERVER PIN_CLIENT=$PIN_CLIENT bash benchmarks/run.sh"
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "- built from: $BUILT_FROM"
	echo "- nproc: $(nproc); CPU: $CPU"
	echo "- load average (1, 5, 15 min) before the run: $LOAD0; after: $(cut -d" " -f1-3 /proc/loadavg) (the run itself adds about 2)"
	echo "- how late \`time.Sleep(500µs)\` fires on the idle machine (\`go run ./benchmarks/timers\`, 2,000 sleeps): before the run $TIMERS0; after $TIMERS1 (a sub-millisecond sleep wakes at the next millisecond, hence a p50 near 0.6 ms; on a quiet VM the p99 stays near it, and when the p99 is milliseconds the machine, not a server, sets every p99 below)"
	echo "- CPU time stolen by the hypervisor over the whole run (steal in /proc/stat, of all CPU time): $(awk -v a="$STEAL0" -v b="$(stealticks)" -v x="$ALL0" -v y="$(allticks)" 'BEGIN{ printf "%.1f%%", (y > x) ? 100 * (b - a) / (y - x) : 0 }') (each run's share is in the progress log; on a quiet, dedicated machine it is 0)"
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
	echo "generator's. p50/p99/p99.9 are from one more run at half the knee. \"ready\" is the time from the"
	echo "server's start to its first ready answer (rtb: \`/readyz\` 200; the others: an answer to a bid request)."
	echo "rtb with the sample campaigns runs \`--pacing=false --bid-sample 0\`, like for like with the floor and"
	echo "the baseline; with N campaigns it runs as it ships (\`rtb serve${RTB_MANY_FLAGS:+ $RTB_MANY_FLAGS}\`$([[ -z $RTB_MANY_FLAGS ]] && echo ": pacing obeyed, learned shading, 5% bid log"))."
	echo
	echo "| server | ready (s) | knee (req/s) | first failed | cores server / generator @ knee | @ first failed | bids @ knee | half (req/s) | p50 @ half (µs) | p99 @ half (µs) | p99.9 @ half (µs) | bids @ half | p99 per run, µs (✗ failed; * passed on retry) |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	for n in "${ROWS[@]}"; do row "$n" "$n"; done
	for c in "${MANY[@]}"; do
		row "rtb@$c" "$(label "rtb@$c")"
		row "baseline@$c" "$(label "baseline@$c")"
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
		if ! has "rtb@$c" || ! has "baseline@$c"; then continue; fi
		IFS='|' read -r r1 v1 <<<"$(kratio "rtb@$c" "baseline@$c" 2)"
		echo "| rtb ÷ baseline ($(fmtn "$c") campaigns) | $r1 | - | $(ratio "${P50[rtb@$c]}" "${P50[baseline@$c]}") | $(ratio "${P99[rtb@$c]}" "${P99[baseline@$c]}") | ≥ 2 — ${v1# } |"
	done
	if has rtb@10000 && has rtb; then
		IFS='|' read -r r1 v1 <<<"$(kratio rtb@10000 rtb 0.60)"
		echo "| rtb 10,000 campaigns ÷ rtb samples | $r1 | - | $(ratio "${P50[rtb@10000]}" "${P50[rtb]}") | $(ratio "${P99[rtb@10000]}" "${P99[rtb]}") | ≥ 0.60 — ${v1# } |"
	else
		echo "| rtb 10,000 campaigns ÷ rtb samples | - | - | - | - | ≥ 0.60 — not measured: ${NOTE[rtb@10000]:-${NOTE[rtb]:-no such row (CAMPAIGNS, SERVERS)}} |"
	fi
	IFS='|' read -r r1 v1 <<<"$(katleast rtb@10000 10000)"
	echo "| rtb 10,000 campaigns: p99 < $SLO_LABEL at ≥ 10,000/s | $r1 | - | - | - | knee ≥ 10,000/s — ${v1# } |"
	IFS='|' read -r r1 v1 <<<"$(katleast rtb@100000 2000)"
	echo "| rtb 100,000 campaigns: p99 < $SLO_LABEL at 2,000/s | $r1 | - | - | - | knee ≥ 2,000/s — ${v1# } |"
	r1=${READY[rtb@100000]:-}
	if [[ -n $r1 ]]; then
		v1=$(awk -v r="$r1" 'BEGIN{print (r < 10) ? "met" : "not met"}')
		echo "| 100,000 campaigns start in under 10 s | - | - | - | - | < 10 s — ready in $r1 s: $v1 |"
	else
		echo "| 100,000 campaigns start in under 10 s | - | - | - | - | < 10 s — not measured: ${NOTE[rtb@100000]:-no 100000 in CAMPAIGNS or IDLE_CAMPAIGNS} |"
	fi
	for k in IDLE_CPU IDLE_ALLOC; do
		IFS='|' read -r r1 v1 <<<"$(idle_ratio "$k")"
		echo "| idle $([[ $k == IDLE_CPU ]] && echo CPU || echo "allocation rate"), rtb $(fmtn "${IDLE_HI:-?}") ÷ $(fmtn "${IDLE_LO:-?}") campaigns | $r1 | - | - | - | ≤ 2 — ${v1# } |"
	done
	# The aim is judged on the pinned traces, where a run's length is the goroutine's own work; the
	# traces on shared cores are given beside them.
	if [[ $PIN == 0 ]]; then
		v1="on a core of its own: $(stall_verdict ' pinned'); on cores shared with the load generator: $(stall_verdict '')"
	else
		v1="on a core of its own (PIN=1): $(stall_verdict '')"
	fi
	echo "| no goroutine run over 1 ms outside the GC (every rtb row, trace at half the knee) | - | - | - | - | ≤ 1 ms — $v1 |"
	echo
	echo "The p50/p99 ratios compare each server at half of its own knee, so at different rates."
	echo "Bid rates must agree between rtb and the baseline for the comparison to be fair (same campaigns,"
	echo "same traffic): they are in the table above. The many-campaign rows load the same file of"
	echo "\`campaigntest.Synthetic(N, $CAMPAIGN_SEED)\` campaigns, written by \`benchmarks/campaigns\` with sites, publishers"
	echo "and deals renamed into the load generator's vocabulary. A knee ratio of N campaigns to the samples compares"
	echo "rtb as it ships (pacing, learned shading, bid log) with rtb in the like-for-like configuration."
	echo
	echo "## Idle cost (rtb, no traffic)"
	echo
	echo "After the server is ready, $IDLE_SETTLE to settle, then $IDLE_DURATION with no request: CPU from \`/proc/PID/stat\`"
	echo "(what \`process_cpu_seconds_total\` reads), allocation from the runtime's TotalAlloc (what"
	echo "\`go_memstats_alloc_bytes_total\` is) in the heap profile's trailer, read outside the window; RSS (VmRSS)"
	echo "at its end. Not from \`/metrics\`, whose per-campaign series make one scrape cost what the scrape column says"
	echo "(measured right after the window): at Prometheus' usual 15 s interval that is the idle cost of being scraped."
	echo "Then one garbage collection forced (\`/debug/pprof/heap?gc=1\`) and the collector's accounts from \`/metrics\`: the live"
	echo "heap, its pointer-holding part (\`go_gc_scan_heap_bytes\`: what every cycle's mark must read), the heap objects, and"
	echo "the CPU that cycle took (\`go_cpu_classes_gc_total_cpu_seconds_total\`, the runtime's estimate). On 2 cores the"
	echo "collector's mark workers take a P each for up to 10 ms at a time while a cycle runs: the longer the mark, the"
	echo "more requests wait behind it, so this is the size of the disturbance a cycle brings, however rarely it comes."
	echo "The rows of N campaigns run as in the table above (\`rtb serve${RTB_MANY_FLAGS:+ $RTB_MANY_FLAGS}\`); those not in CAMPAIGNS are started for this alone."
	echo
	echo "| rtb | ready (s) | idle CPU (cores) | allocation (MB/s) | RSS (MB) | one /metrics scrape: CPU / allocated | live heap (MB) | of it scannable (MB) | heap objects (millions) | one collection's CPU (ms) |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for n in "${IDLE_ROWS[@]}"; do
		if [[ -n ${NOTE[$n]:-} ]]; then echo "| $(label "$n") | - | not run: ${NOTE[$n]} | - | - | - | - | - | - | - |"; continue; fi
		has "$n" || continue
		echo "| $(label "$n") | ${READY[$n]} | ${IDLE_CPU[$n]:--} | ${IDLE_ALLOC[$n]:--} | ${IDLE_RSS[$n]:--} | ${SCRAPE[$n]:--} | ${GCOST[$n]:-- | - | - | -} |"
	done
	echo
	for k in IDLE_CPU IDLE_ALLOC; do
		IFS='|' read -r r1 v1 <<<"$(idle_ratio "$k")"
		echo "- idle $([[ $k == IDLE_CPU ]] && echo CPU || echo "allocation rate"), $(fmtn "${IDLE_HI:-?}") ÷ $(fmtn "${IDLE_LO:-?}") campaigns: ${r1% } (aim: at most 2×): ${v1# }"
	done
	echo
	echo "## Longest stall (rtb and the floor, execution trace at half the knee)"
	echo
	echo "One more run of $((STALL_SECONDS + 3)) s at half the knee (at $STALL_RATE/s when there is no knee), with an execution"
	echo "trace of ${STALL_SECONDS} s from its admin port (\`/debug/pprof/trace\`) read by \`go run ./benchmarks/stalls -summary\`:"
	echo "the longest uninterrupted goroutine run outside the GC (a mark worker's runs are the GC's, and so is"
	echo "the mark-assist and sweep time inside another goroutine's run, which is subtracted and shown), and the"
	echo "longest GC run; each goroutine named by where that run stopped. Aim: no run over 1 ms outside the GC."
	echo "A run is the scheduler's view: time the OS gave the thread's core to another process (the load"
	echo "generator, on shared cores) counts as running. So each server is traced twice: as it runs in the"
	echo "table above, on cores shared with the load generator, and then (\"on its own core\") moved while it runs onto"
	echo "CPU $PIN_SERVER alone (\`taskset -a -p\`; Go follows its affinity, GOMAXPROCS becomes 1) with the load generator on"
	echo "CPU $PIN_CLIENT, where a run's length is the goroutine's own work; the aim is judged there. Two more controls: the floor,"
	echo "which has no work of its own besides answering, traced the same way, and per row the time the server's"
	echo "threads spent runnable but waiting for a CPU during the trace (\`/proc/PID/task/*/schedstat\`), in ms a second."
	echo "The goroutine serving the trace is the tracer (starting a trace stops the world to record every"
	echo "goroutine): its longest run is shown apart, not counted."
	echo
	echo "| server | GOMAXPROCS | rate (req/s) | p99 of the run (µs) | longest run outside the GC (µs) | GC work inside it (µs) | that goroutine | longest GC run (µs) | that goroutine | the tracer's longest run (µs) | longest wait of a request goroutine (µs) | threads waited for a CPU (ms/s) | ≤ 1 ms |"
	echo "|---|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---:|---|"
	for k in '' ' pinned'; do
		for n in floor rtb "${MANY[@]/#/rtb@}"; do
			has "$n" || continue
			m=$n$k
			[[ -n ${ST_RATE[$m]:-} ]] || continue
			if [[ ${ST_NONGC[$m]:--} =~ ^[0-9]+$ ]]; then
				v1=$( ((ST_NONGC[$m] <= STALL_AIM_US)) && echo met || echo "not met")
			else
				v1="-"
			fi
			echo "| $(label "$n")${k:+, on its own core} | ${ST_PROCS[$m]:--} | ${ST_RATE[$m]:--} | ${ST_P99[$m]:--} | ${ST_NONGC[$m]:--} | ${ST_ASSIST[$m]:--} | ${ST_NONGC_WHERE[$m]:--} | ${ST_GC[$m]:--} | ${ST_GC_WHERE[$m]:--} | ${ST_TRACER[$m]:--} | ${ST_WAIT[$m]:--} | ${ST_RQ[$m]:--} | $v1 |"
		done
	done
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

#!/usr/bin/env bash
# benchmarks/faults.sh: does money survive crashes, broker loss, overload and poison? One run.
#
# Split roles on loopback: `rtb broker` (its log on disk), two `rtb bidder`s, one `rtb pacer`, each
# bidder under its own `rtb loadgen --market` (the exchange: bids, then win, bill, impression,
# click notices). The notices go through benchmarks/ledger, which retries each one until the bidder
# answers (as exchanges retry burl) and writes down every bill acknowledged 2xx with its event id.
# Phases, one after the other:
#
#   baseline   normal traffic
#   broker     `rtb broker` stopped (SIGTERM) for BROKER_DOWN, then restarted on its data dir
#   bidder     bidder 1 killed with SIGKILL mid-traffic, restarted at once on the same data dir
#   pacer      the pacer killed with SIGKILL mid-traffic, restarted on the same data dir
#   overload2  2× RATE to each bidder for OVERLOAD, then RATE
#   overload4  4× RATE likewise
#   poison     no traffic; kcat produces onto rtb.wins and rtb.impressions: not JSON, "v":2, a
#              negative price, 2 MB
#
# After each phase the script waits for the spills to drain and the pacer to catch up, then
# compares the ledger with the billing events on rtb.wins (read with kcat) and the pacer's spend
# (/api/pacing): lost = acknowledged bills whose event id is not on Kafka, counted twice = pacer
# spend above the distinct bills' (Σ per campaign of price ÷ 1000). Writes benchmarks/FAULTS.md.
#
# Usage: bash benchmarks/faults.sh                      (about 12 minutes)
#        BROKER_DOWN=10 OVERLOAD=10 PHASE=10 AFTER=5 bash benchmarks/faults.sh   (a quick check)
# Environment: RATE per bidder (500), PHASE seconds of traffic per fault phase (40), AFTER seconds
#   of traffic after each fault (15), BROKER_DOWN seconds (60), OVERLOAD seconds (60), PACING
#   (false: with pacing on, campaigns stop bidding ~5 s into a broker outage, because their pacing
#   states can no longer be renewed, and the outage would bill almost nothing), OUT (benchmarks/FAULTS.md).
# Ports 18500-18599 on 127.0.0.1. Needs Go, curl, jq, kcat.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RATE=${RATE:-500}
PHASE=${PHASE:-40}
AFTER=${AFTER:-15}
BROKER_DOWN=${BROKER_DOWN:-60}
OVERLOAD=${OVERLOAD:-60}
PACING=${PACING:-false}
OUT=${OUT:-$ROOT/benchmarks/FAULTS.md}
COMMAND="RATE=$RATE PHASE=$PHASE AFTER=$AFTER BROKER_DOWN=$BROKER_DOWN OVERLOAD=$OVERLOAD PACING=$PACING bash benchmarks/faults.sh"
command -v kcat >/dev/null || { echo "kcat is required (apt-get install kcat)" >&2; exit 1; }

. "$ROOT/benchmarks/market.env"
start_work faults
go build -o "$WORK/ledger" ./benchmarks/ledger

BROKER=127.0.0.1:18590
LISTEN=(18511 18521) ADMIN=(18512 18522) RELAY=(18513 18523)
PACER_ADMIN=127.0.0.1:18532
KEY=faults-benchmark-notice-key-0123456789

# Roles are restarted from the faults' subshells, so their pids live in files (WORK/NAME.pid), and
# on exit every role still running is stopped before market.env's cleanup removes WORK.
spawn() { # NAME CMD...: start a role in the background, its output appended to WORK/NAME.log
	local name=$1
	shift
	"$@" >>"$WORK/$name.log" 2>&1 &
	echo $! >"$WORK/$name.pid"
}
pid_of() { cat "$WORK/$1.pid"; }
stop_role() { # NAME SIGNAL: signal a role and wait until it is gone
	local p
	p=$(pid_of "$1")
	kill "-$2" "$p" 2>/dev/null || true
	while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
}
stop_all() {
	local f
	for f in "$WORK"/*.pid; do [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
	for f in "$WORK"/*.pid; do [ -e "$f" ] && while kill -0 "$(cat "$f")" 2>/dev/null; do sleep 0.1; done; done
	cleanup
}
trap stop_all EXIT
start_broker() {
	spawn broker "$WORK/rtb" broker --addr "$BROKER" --data-dir "$WORK/broker" --partitions 4 --log-level warn
	for _ in $(seq 300); do kcat -b "$BROKER" -L -t rtb.wins >/dev/null 2>&1 && return; sleep 0.1; done
	echo "broker did not start" >&2; cat "$WORK/broker.log" >&2; exit 1
}
start_bidder() { # I
	spawn "bidder$1" "$WORK/rtb" bidder --kafka "$BROKER" --listen "127.0.0.1:${LISTEN[$1]}" --admin "127.0.0.1:${ADMIN[$1]}" \
		--data-dir "$WORK/bidder$1" --notice-key "$KEY" --notice-url "http://127.0.0.1:${RELAY[$1]}" \
		--pacing="$PACING" --log-level warn
}
start_pacer() {
	spawn pacer "$WORK/rtb" pacer --kafka "$BROKER" --admin "$PACER_ADMIN" --data-dir "$WORK/pacer" --log-level info
}
bid_url() { echo "http://127.0.0.1:${LISTEN[$1]}/openrtb2/bid"; }
now_ms() { date +%s%3N; }
since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; } # T0_MS: seconds since

# metric ADMIN NAME [LABEL_MATCH]: the sum of a metric's series on an admin port.
metric() {
	curl -s --max-time 5 "http://$1/metrics" | awk -v n="$2" -v m="${3:-}" \
		'($1 == n || index($1, n "{") == 1) && index($1, m) { s += $NF } END { printf "%.0f\n", s }'
}
rss_mb() { awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$(pid_of "$1")/status" 2>/dev/null || echo 0; }

# sample_rss FILE: every second, the largest RSS of each role so far, until FILE.stop exists.
sample_rss() {
	local f=$1 b0=0 b1=0 p=0
	while [ ! -e "$f.stop" ]; do
		b0=$(( $(rss_mb bidder0) > b0 ? $(rss_mb bidder0) : b0 ))
		b1=$(( $(rss_mb bidder1) > b1 ? $(rss_mb bidder1) : b1 ))
		p=$(( $(rss_mb pacer) > p ? $(rss_mb pacer) : p ))
		echo "$b0 $b1 $p" >"$f"
		sleep 1
	done
}

# traffic TAG RATE SECONDS: one loadgen per bidder, in parallel, reports in WORK/TAG-I.json.
SEED=1
traffic() {
	local tag=$1 rate=$2 secs=$3 i pids=()
	SEED=$((SEED + 1))
	for i in 0 1; do
		timeout $((secs + 60)) "$WORK/rtb" loadgen --market --seed "$((SEED * 10 + i))" --rate "$rate" --duration "${secs}s" \
			--target "$(bid_url "$i")" --admin "http://127.0.0.1:${ADMIN[$i]}" \
			--market-mu "$MU" --market-sigma "$SIGMA" --ctr "$CTR" \
			--out "$WORK/$tag-$i.json" >"$WORK/$tag-$i.txt" 2>&1 &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || true; done
}
p99_ms() { # TAG: the larger p99 of the two loadgens, ms
	jq -s '[.[].latency.p99_us] | max / 1000 | . * 10 | round / 10' "$WORK/$1-0.json" "$WORK/$1-1.json" 2>/dev/null || echo "-"
}
bid_share() { # TAG: share of requests answered with a bid
	jq -s '([.[].outcomes.bid_200] | add) / ([.[].completed] | add) * 100 | round' "$WORK/$1-0.json" "$WORK/$1-1.json" 2>/dev/null || echo "-"
}

# ---- the books ----

# kafka_bills: every bill on rtb.wins as "id campaign price", one per message.
kafka_bills() {
	kcat -b "$BROKER" -C -t rtb.wins -o beginning -e -q -f '%s\n' 2>/dev/null |
		jq -R -r 'fromjson? | select(.type == "bill") | "\(.id) \(.campaign_id) \(.price_micros)"'
}
pacer_spent() {
	curl -s --max-time 5 "http://$PACER_ADMIN/api/pacing?series=false" | jq '[.campaigns[].spent_today_micros] | add // 0' 2>/dev/null || echo -1
}

# settle: wait for the ledger to stop moving, the bidders' spills and queues to drain and the
# pacer to book every distinct bill on Kafka; then take the books (cumulative C_* figures).
settle() {
	local t0 i n last=-1 expected spent
	t0=$(now_ms)
	for _ in $(seq 300); do
		n=$(wc -l <"$WORK/bills.log")
		[ "$n" = "$last" ] && break
		last=$n
		sleep 2
	done
	for i in 0 1; do
		for _ in $(seq 600); do
			[ "$(metric "127.0.0.1:${ADMIN[$i]}" rtb_event_spill_bytes)" = 0 ] &&
				[ "$(metric "127.0.0.1:${ADMIN[$i]}" rtb_event_queue_length)" = 0 ] && break
			sleep 0.2
		done
	done
	for _ in $(seq 120); do
		kafka_bills >"$WORK/kafka.txt"
		expected=$(awk '!seen[$1]++ { s[$2] += $3 } END { t = 0; for (c in s) t += int(s[c] / 1000); print t }' "$WORK/kafka.txt")
		spent=$(pacer_spent)
		[ "$spent" = "$expected" ] && break
		sleep 1
	done
	awk '{ print $2 }' "$WORK/bills.log" | sort -u >"$WORK/acked.ids"
	awk '{ print $1 }' "$WORK/kafka.txt" | sort -u >"$WORK/kafka.ids"
	C_ACKED=$(wc -l <"$WORK/acked.ids")
	C_DISTINCT=$(wc -l <"$WORK/kafka.ids")
	C_MSGS=$(wc -l <"$WORK/kafka.txt")
	C_LOST=$(comm -23 "$WORK/acked.ids" "$WORK/kafka.ids" | wc -l)
	C_UNACKED=$(comm -13 "$WORK/acked.ids" "$WORK/kafka.ids" | wc -l)
	C_EXPECTED=$expected C_SPENT=$spent
	SETTLE_S=$(( ($(now_ms) - t0) / 1000 ))
}

ROWS=() NOTES=()
P_ACKED=0 P_DISTINCT=0 P_MSGS=0 P_LOST=0 P_UNACKED=0 P_EXPECTED=0 P_SPENT=0
# row PHASE WHAT RECOVERY: one line of the table, the phase's deltas of the books.
row() {
	local twice under
	twice=$(( (C_SPENT - P_SPENT) - (C_EXPECTED - P_EXPECTED) ))
	under=$(( twice < 0 ? -twice : 0 ))
	twice=$(( twice > 0 ? twice : 0 ))
	read -r r0 r1 rp <"$WORK/$1.rss"
	ROWS+=("| $1 | $2 | $((C_ACKED - P_ACKED)) | $((C_DISTINCT - P_DISTINCT)) | $((C_MSGS - P_MSGS - C_DISTINCT + P_DISTINCT)) | $((C_UNACKED - P_UNACKED)) | **$((C_LOST - P_LOST))** | $(( (C_SPENT - P_SPENT) )) | **$twice** | $under | $(p99_ms "$1") / $(p99_ms "$1-after") | $(bid_share "$1") | $r0 / $r1 / $rp → $(rss_mb bidder0) / $(rss_mb bidder1) / $(rss_mb pacer) | $3 |")
	P_ACKED=$C_ACKED P_DISTINCT=$C_DISTINCT P_MSGS=$C_MSGS P_LOST=$C_LOST P_UNACKED=$C_UNACKED P_EXPECTED=$C_EXPECTED P_SPENT=$C_SPENT
	log "phase $1: ${ROWS[-1]}"
}

# phase NAME WHAT RATE SECONDS FAULT...: traffic for SECONDS while FAULT runs (in the background,
# its recovery note written to WORK/NAME.recovery), then AFTER seconds of RATE traffic, then the books.
phase() {
	local name=$1 what=$2 rate=$3 secs=$4
	shift 4
	log "phase $name: $what"
	rm -f "$WORK/$name.rss.stop"
	sample_rss "$WORK/$name.rss" &
	local sampler=$!
	echo "-" >"$WORK/$name.recovery"
	if [ $# -gt 0 ]; then
		("$@" >"$WORK/$name.recovery") &
		local fault=$!
	fi
	traffic "$name" "$rate" "$secs"
	if [ $# -gt 0 ]; then wait "$fault"; fi
	traffic "$name-after" "$RATE" "$AFTER"
	touch "$WORK/$name.rss.stop"
	wait "$sampler"
	settle
	row "$name" "$what" "$(cat "$WORK/$name.recovery"); books settled in ${SETTLE_S} s"
}

# ---- the faults (each prints its recovery) ----

spill_drained_after() { # T0_MS: seconds from T0 until both bidders' spills are empty
	for _ in $(seq 1200); do
		if [ "$(metric "127.0.0.1:${ADMIN[0]}" rtb_event_spill_bytes)" = 0 ] && [ "$(metric "127.0.0.1:${ADMIN[1]}" rtb_event_spill_bytes)" = 0 ]; then
			break
		fi
		sleep 0.1
	done
	since "$1"
}
fault_broker() {
	sleep 5
	local spilled0 spilled1 t0
	stop_role broker TERM
	sleep "$BROKER_DOWN"
	spilled0=$(metric "127.0.0.1:${ADMIN[0]}" rtb_events_spilled_total)
	spilled1=$(metric "127.0.0.1:${ADMIN[1]}" rtb_events_spilled_total)
	t0=$(now_ms)
	start_broker
	echo "broker down ${BROKER_DOWN} s, $((spilled0 + spilled1)) money events spilled; spills empty $(spill_drained_after "$t0") s after the restart"
}
fault_bidder() {
	sleep $((PHASE / 3))
	local t0 queued
	queued=$(metric "127.0.0.1:${ADMIN[0]}" rtb_event_queue_length)
	stop_role bidder0 KILL
	t0=$(now_ms)
	start_bidder 0
	wait_ready "$(bid_url 0)"
	echo "bidder 1 killed (kill -9, $queued events queued at the last look); ready again $(since "$t0") s after the restart"
}
fault_pacer() {
	sleep $((PHASE / 3))
	local t0
	stop_role pacer KILL
	t0=$(now_ms)
	local lines
	lines=$(wc -l <"$WORK/pacer.log")
	start_pacer
	for _ in $(seq 1200); do
		tail -n +"$((lines + 1))" "$WORK/pacer.log" | grep -q "pacer caught up" && break
		sleep 0.1
	done
	echo "pacer killed (kill -9); replayed today's events and caught up $(since "$t0") s after the restart"
}
fault_overload() { # FACTOR
	local shed0 shed1
	shed0=$(metric "127.0.0.1:${ADMIN[0]}" rtb_bid_requests_total 'outcome="shed"')
	shed1=$(metric "127.0.0.1:${ADMIN[1]}" rtb_bid_requests_total 'outcome="shed"')
	sleep "$OVERLOAD"
	echo "$1× for ${OVERLOAD} s: $(( $(metric "127.0.0.1:${ADMIN[0]}" rtb_bid_requests_total 'outcome="shed"') - shed0 + $(metric "127.0.0.1:${ADMIN[1]}" rtb_bid_requests_total 'outcome="shed"') - shed1 )) requests shed with 204"
}

# ---- the run ----

: >"$WORK/bills.log"
start_broker
spawn ledger "$WORK/ledger" --relay "127.0.0.1:${RELAY[0]}=http://127.0.0.1:${LISTEN[0]},127.0.0.1:${RELAY[1]}=http://127.0.0.1:${LISTEN[1]}" --out "$WORK/bills.log"
start_pacer
start_bidder 0
start_bidder 1
wait_ready "$(bid_url 0)" "$(bid_url 1)"
log "roles up; $RATE requests/s to each bidder"

phase baseline "normal traffic" "$RATE" "$PHASE"
phase broker "broker stopped ${BROKER_DOWN} s, restarted" "$RATE" "$((BROKER_DOWN + 20))" fault_broker
phase bidder "bidder 1 kill -9, restarted" "$RATE" "$PHASE" fault_bidder
phase pacer "pacer kill -9, restarted" "$RATE" "$PHASE" fault_pacer
phase overload2 "2× overload" "$((2 * RATE))" "$OVERLOAD" fault_overload 2
phase overload4 "4× overload" "$((4 * RATE))" "$OVERLOAD" fault_overload 4

# Poison, produced by an independent client, with no traffic: spend must not move.
log "phase poison"
before=$(pacer_spent)
dlq_before=$("$WORK/ledger" --dlq "$BROKER" | wc -l)
ts=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
bill() { printf '{"v":%s,"type":"%s","id":"poison-%s","ts":"%s","request_id":"%s","imp_id":"1","campaign_id":"sample-banner","exchange":"x","price_micros":%s,"bid_micros":2000000}' "$1" "$2" "$3" "$ts" "$4" "$5"; }
POISON_ERR=()
for topic in rtb.wins rtb.impressions; do
	typ=bill
	[ $topic = rtb.impressions ] && typ=imp
	for p in notjson version negative big; do
		case $p in
		notjson) v='this is not JSON {' ;;
		version) v=$(bill 2 $typ "v2-$topic" r 1000000) ;;
		negative) v=$(bill 1 $typ "neg-$topic" r -5000000) ;;
		big) v=$(bill 1 $typ "big-$topic" "$(head -c 2097152 /dev/zero | tr '\0' r)" 1000000) ;;
		esac
		if ! err=$(printf '%s\n' "$v" | kcat -b "$BROKER" -P -t "$topic" -k sample-banner -X message.max.bytes=10000000 2>&1); then
			POISON_ERR+=("$topic $p: $err")
		elif [ -n "$err" ]; then
			POISON_ERR+=("$topic $p: $(echo "$err" | tr '\n' ' ' | cut -c1-200)")
		fi
	done
done
sleep 10
after=$(pacer_spent)
# Dead letters' reasons may span lines (a decoder's message quoting the input): ledger --dlq reads
# them with a Kafka client and prints one line each.
"$WORK/ledger" --dlq "$BROKER" >"$WORK/dlq.txt"
dlq_rows=$(sort "$WORK/dlq.txt" | uniq -c | awk '{ n = $1; $1 = ""; print substr($0, 2) " " n " |" }')

{
	echo "# Faults: crashes, broker loss, overload, poison"
	echo
	machine
	echo "Command: \`$COMMAND\`."
	echo
	echo "Split roles on loopback: \`rtb broker\`, two \`rtb bidder\` (pacing=$PACING), \`rtb pacer\`; one \`rtb loadgen --market\`"
	echo "per bidder at $RATE requests/s (the exchange), its notices relayed by \`benchmarks/ledger\`, which retries each"
	echo "until the bidder answers and records every bill acknowledged 2xx with its event id. After each phase the"
	echo "script waits for the bidders' spills to drain and the pacer to catch up, then takes the books:"
	echo
	echo "- **acked**: distinct bills the bidders answered 2xx in the phase; **on Kafka**: distinct billing events"
	echo "  added to rtb.wins; **dup msgs**: extra messages of an event id already there (consumers drop them);"
	echo "  **unacked on Kafka**: billing events whose notice never got a 2xx (the exchange would retry them: same id)."
	echo "- **lost** = acked bills whose event id is not on rtb.wins. **pacer +** = spend the pacer booked in the phase"
	echo "  (micros); **counted twice** = pacer spend above Σ per campaign of the distinct bills' price ÷ 1000;"
	echo "  **under** = below it."
	echo "- p99 from the two load generators (the larger), during the phase / in the ${AFTER} s after it; bids = share"
	echo "  of requests answered with a bid during the phase; RSS (MB) of bidder 1 / bidder 2 / pacer: the largest"
	echo "  during the phase → at its end."
	echo
	echo "| phase | fault | acked | on Kafka | dup msgs | unacked on Kafka | lost | pacer + | counted twice | under | p99 ms during / after | bids % | RSS MB | recovery |"
	echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |"
	printf '%s\n' "${ROWS[@]}"
	echo
	echo "Whole run: $C_ACKED bills acknowledged, $C_DISTINCT distinct on Kafka, $C_LOST lost; pacer $C_SPENT micros"
	echo "against $C_EXPECTED for the distinct bills."
	echo
	echo "## Poison"
	echo
	echo "Produced with \`kcat -P\` onto rtb.wins and rtb.impressions (key sample-banner), no traffic: not JSON, \`\"v\":2\`,"
	echo "a negative price, a well-formed event of 2 MB. Pacer spend before $before, after $after micros"
	echo "($([ "$before" = "$after" ] && echo unchanged || echo CHANGED)). Dead letters added: $(( $(wc -l <"$WORK/dlq.txt") - dlq_before ))."
	echo
	if [ ${#POISON_ERR[@]} -gt 0 ]; then
		echo "Refused by the broker (nothing stored):"
		echo
		for e in "${POISON_ERR[@]}"; do echo "- $e"; done
		echo
	fi
	echo "| from topic | consumer group | reason (rtb-dlq-error, cut) | entries |"
	echo "| --- | --- | --- | ---: |"
	echo "${dlq_rows:-| – | – | none | 0 |}"
} >"$OUT"
log "wrote $OUT"
cat "$OUT"

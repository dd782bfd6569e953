#!/usr/bin/env bash
# benchmarks/market.sh: bid shading judged in the load generator's market, in one run.
#
# Starts one `rtb serve` per arm (each its own ports, data dir and embedded broker, the same
# campaigns: cmd/rtb/testdata/market-campaigns.yaml), differing only by --shading: none, fixed factors,
# and learned. `rtb loadgen --market` then sends every scheduled request to every arm at the same
# time and draws the highest competing bid and the click of each auction once for all arms (common
# random numbers), so the arms differ by what they bid and nothing else. The report compares win
# rate, impressions, spend, surplus (true value − price) and eCPM per arm, checks frequency caps
# against the impressions the market fired, and the bidders' CTR estimates against the true CTRs.
# Writes benchmarks/MARKET.md (and the loadgen's JSON next to it when KEEP_JSON=1).
#
# Usage: bash benchmarks/market.sh                 (about 11 minutes)
# Environment: ARMS (default "none 0.6 0.5 0.4 0.3 learned"), RATE per arm (300), DURATION (600s),
#              SEED (1), CTR_MIN_IMPS (30000: at a 2% CTR that is 600 clicks, whose noise (±8% at 95%)
#              and the prior's pull (1,000 impressions' worth) leave the estimate within 10%).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
read -r -a ARMS <<<"${ARMS:-none 0.6 0.5 0.4 0.3 learned}"
RATE=${RATE:-300}
DURATION=${DURATION:-600s}
SEED=${SEED:-1}
CTR_MIN_IMPS=${CTR_MIN_IMPS:-30000}

. "$ROOT/benchmarks/market.env"
start_work market

TARGETS=() ADMINS=() LABELS=()
i=0
for arm in "${ARMS[@]}"; do
	port=$((18280 + 10 * i))
	label=$arm
	case $arm in none | learned) ;; *) label="fixed-$arm" ;; esac
	"$WORK/rtb" serve --listen "127.0.0.1:$port" --admin "127.0.0.1:$((port + 1))" \
		--broker-addr "127.0.0.1:$((port + 2))" --data-dir "$WORK/$label" \
		--campaigns "$ROOT/cmd/rtb/testdata/market-campaigns.yaml" --shading "$arm" --shading-interval 5s \
		--log-level warn >"$WORK/$label.log" 2>&1 &
	PIDS+=($!)
	TARGETS+=("http://127.0.0.1:$port/openrtb2/bid")
	ADMINS+=("http://127.0.0.1:$((port + 1))")
	LABELS+=("$label")
	i=$((i + 1))
done
wait_ready "${TARGETS[@]}"
join() { local IFS=,; echo "$*"; }
log "arms: ${LABELS[*]}; $RATE requests/s to each for $DURATION"
timeout $(( ${DURATION%s} + 120 )) "$WORK/rtb" loadgen --market --seed "$SEED" --rate "$RATE" --duration "$DURATION" \
	--target "$(join "${TARGETS[@]}")" --admin "$(join "${ADMINS[@]}")" --label "$(join "${LABELS[@]}")" \
	--market-mu "$MU" --market-sigma "$SIGMA" --ctr "$CTR" --ctr-min-imps "$CTR_MIN_IMPS" \
	--out "$WORK/market.json" | tee "$WORK/market.txt"
[ "${KEEP_JSON:-0}" = 1 ] && cp "$WORK/market.json" "$ROOT/benchmarks/market.json"

# The aims: learned beats no shading on surplus by at least 20% and beats the best fixed factor;
# no frequency cap exceeded; CTR estimates within 10% where judged.
J=$WORK/market.json
surplus() { jq -r --arg l "$1" '.comparison[] | select(.label==$l) | .surplus' "$J"; }
none=$(surplus none || true)
learned=$(surplus learned || true)
best_fixed=$(jq -r '[.comparison[] | select(.label|startswith("fixed-"))] | max_by(.surplus) | "\(.label) \(.surplus)"' "$J")
violations=$(jq '[.comparison[].cap_violations] | add' "$J")
ctr_rows=$(jq -r '.targets[] | .label as $l | .market.campaigns[] | select(.ctr_check.judged) |
	"| \($l) | \(.cid) | \(.ctr_check.true_ctr*100|.*1000|round/1000)% | \(.ctr_check.estimate*100|.*1000|round/1000)% | \(.ctr_check.rel_error*100|.*10|round/10)% | \(.impressions) | \(if .ctr_check.within_10pct then "yes" else "NO" end) |"' "$J")

{
	echo "# Market run: bid shading, frequency caps, CTR estimates"
	echo
	machine
	echo "Command: \`bash benchmarks/market.sh\` (ARMS=\"${ARMS[*]}\" RATE=$RATE DURATION=$DURATION SEED=$SEED)."
	echo
	echo "Every arm is an \`rtb serve\` with the campaigns of \`cmd/rtb/testdata/market-campaigns.yaml\`; each scheduled"
	echo "request goes to every arm, and the highest competing bid and the click of each auction are drawn once"
	echo "for all arms. Market: log-normal competition, medians by segment (\`--market-mu $MU\`,"
	echo "\`--market-sigma $SIGMA\`), true CTR \`$CTR\`. Surplus = Σ (true value − price) / 1000 over wins."
	echo
	echo "| arm | win rate | impressions | spend | surplus | eCPM | cap violations | p99 µs |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
	jq -r '.comparison[] | "| \(.label) | \(.win_rate*1000|round/10)% | \(.impressions) | \(.spend*100|round/100) | \(.surplus*100|round/100) | \(.ecpm*1000|round/1000) | \(.cap_violations) | \(.p99_us) |"' "$J"
	echo
	if [ -n "$none" ] && [ -n "$learned" ]; then
		echo "- learned ÷ none, surplus: $(jq -n "$learned / (if $none == 0 then 1e-9 else $none end) * 100 | round / 100") (aim ≥ 1.2; none = $(jq -n "$none*100|round/100"), learned = $(jq -n "$learned*100|round/100"))"
		echo "- best fixed factor: ${best_fixed% *} ($(jq -n "${best_fixed#* }*100|round/100")); learned ÷ best fixed: $(jq -n "$learned / ${best_fixed#* } * 100 | round / 100") (aim > 1)"
	fi
	echo "- frequency-cap violations, all arms: $violations (aim 0)"
	echo
	echo "CTR estimates (campaigns with at least $CTR_MIN_IMPS impressions):"
	echo
	echo "| arm | campaign | true CTR | estimate | error | impressions | within 10% |"
	echo "| --- | --- | --- | --- | --- | --- | --- |"
	echo "${ctr_rows:-| – | none judged | | | | | |}"
} >"$ROOT/benchmarks/MARKET.md"
log "wrote benchmarks/MARKET.md"
cat "$ROOT/benchmarks/MARKET.md"

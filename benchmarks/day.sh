#!/usr/bin/env bash
# benchmarks/day.sh: one compressed pacing day, end to end through Kafka, pacing and bid shading.
#
# Starts `rtb serve --day-length DAY` with cmd/rtb/testdata/day-campaigns.yaml (budgets the traffic
# would exhaust in a few "hours" unpaced), then `rtb loadgen --market --day-length DAY`, which waits
# for the next pacing day to start and sends one day of diurnally shaped traffic (--rate is the
# evening peak) into a first-price market. The report gives, per campaign, delivery (spend ÷ daily
# budget), spend per "hour" and when the budget ran out, frequency-cap checks and surplus. Writes
# benchmarks/DAY.md.
#
# Usage: bash benchmarks/day.sh          (DAY plus up to DAY of waiting for the day to start)
# Environment: DAY (default 10m), RATE (peak requests/s, default 400), SHADING (learned), SEED (1).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
DAY=${DAY:-10m}
RATE=${RATE:-400}
SHADING=${SHADING:-learned}
SEED=${SEED:-1}

. "$ROOT/benchmarks/market.env"
start_work day
"$WORK/rtb" serve --listen 127.0.0.1:18380 --admin 127.0.0.1:18381 --broker-addr 127.0.0.1:18382 \
	--data-dir "$WORK/data" --campaigns "$ROOT/cmd/rtb/testdata/day-campaigns.yaml" --day-length "$DAY" \
	--shading "$SHADING" --log-level warn >"$WORK/serve.log" 2>&1 &
PIDS+=($!)
wait_ready http://127.0.0.1:18380/openrtb2/bid
case $DAY in
*h) day_s=$(( ${DAY%h} * 3600 )) ;; *m) day_s=$(( ${DAY%m} * 60 )) ;; *s) day_s=${DAY%s} ;;
*) echo "DAY must be a whole number of s, m or h, e.g. 10m" >&2; exit 2 ;;
esac
timeout $(( 2 * day_s + 180 )) "$WORK/rtb" loadgen --market --day-length "$DAY" --rate "$RATE" --seed "$SEED" \
	--target http://127.0.0.1:18380/openrtb2/bid --admin http://127.0.0.1:18381 \
	--market-mu "$MU" --market-sigma "$SIGMA" --ctr "$CTR" --out "$WORK/day.json" | tee "$WORK/day.txt"

J=$WORK/day.json
{
	echo "# One compressed pacing day"
	echo
	machine
	echo "Command: \`bash benchmarks/day.sh\` (DAY=$DAY RATE=$RATE SHADING=$SHADING SEED=$SEED): \`rtb serve --day-length $DAY\` with"
	echo "\`cmd/rtb/testdata/day-campaigns.yaml\`, driven by \`rtb loadgen --market --day-length $DAY\` (diurnal traffic, peak $RATE/s)."
	echo
	echo "| campaign | daily budget | spent | delivery | ran out | impressions | eCPM | surplus | cap violations |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	jq -r '.market.campaigns[] | select(.bids > 0) | "| \(.cid) | \(.budget.daily) | \(.spend*100|round/100) | \(.budget.delivery*1000|round/10)% | \(.budget.ran_out_at // "—") | \(.impressions) | \(.ecpm*1000|round/1000) | \(.surplus*100|round/100) | \(.frequency_cap.violations // 0) |"' "$J"
	echo
	echo "Spend per hour of the compressed day (share of the daily budget):"
	echo
	echo "| campaign | $(seq -s ' | ' -f '%02g' 0 23) |"
	echo "| --- |$(printf ' --- |%.0s' $(seq 24))"
	jq -r '.market.campaigns[] | select(.bids > 0) | .budget as $b | "| \(.cid) | \([$b.hourly_spend[] | (. / $b.daily * 1000 | round / 10 | tostring) + "%"] | join(" | ")) |"' "$J"
} >"$ROOT/benchmarks/DAY.md"
log "wrote benchmarks/DAY.md"
cat "$ROOT/benchmarks/DAY.md"

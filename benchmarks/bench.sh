#!/usr/bin/env bash
# benchmarks/bench.sh: go test -bench over the hot paths, compared between runs with benchstat.
#
#   bash benchmarks/bench.sh                 run, write benchmarks/new.txt, compare with old.txt if any
#   bash benchmarks/bench.sh save            the same, then move new.txt to old.txt (the reference)
#   bash benchmarks/bench.sh compare A B     benchstat A B only (no benchmarks run)
#
# A before/after comparison of a change:
#   git stash; bash benchmarks/bench.sh save; git stash pop; bash benchmarks/bench.sh
#
# Environment:
#   PKGS       packages (patterns, so new benchmarks are picked up without naming them), default
#              ./bidder/ ./bidder/openrtb/ ./bidder/targeting/ ./auction/ ./features/ ./events/
#   BENCH      -bench regexp (default .: every benchmark of those packages)
#   COUNT      -count (default 6: benchstat wants at least 6 samples for a confidence interval at 95%)
#   BENCHTIME  -benchtime (default go test's 1s)
#   OLD, NEW   files (default benchmarks/old.txt, benchmarks/new.txt; both ignored by git)
#   BENCHSTAT  the benchstat command (default: go run of golang.org/x/perf/cmd/benchstat at a pinned
#              version, fetched through the Go module proxy on first use; not a module dependency)
#
# Run on a quiet machine: other processes on the cores show up as noise (benchstat's ± column) or,
# worse, as a difference. The events package's throughput benchmarks run an embedded broker and take
# the longest; BENCH or PKGS narrow a run.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=${PKGS:-./bidder/ ./bidder/openrtb/ ./bidder/targeting/ ./auction/ ./features/ ./events/}
BENCH=${BENCH:-.}
COUNT=${COUNT:-6}
BENCHTIME=${BENCHTIME:-}
OLD=${OLD:-benchmarks/old.txt}
NEW=${NEW:-benchmarks/new.txt}
# @latest resolved to this version on 2026-11-23; pinned so that a comparison is reproducible.
BENCHSTAT=${BENCHSTAT:-go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da}

benchstat() { $BENCHSTAT "$@"; }

case ${1:-run} in
compare)
	[[ $# == 3 ]] || { echo "usage: bash benchmarks/bench.sh compare OLD NEW" >&2; exit 2; }
	benchstat "$2" "$3"
	exit 0 ;;
run | save) ;;
*)
	echo "usage: bash benchmarks/bench.sh [run|save|compare OLD NEW]" >&2
	exit 2 ;;
esac

read -ra pkgs <<<"$PKGS"
args=(-run '^$' -bench "$BENCH" -benchmem -count "$COUNT")
if [[ -n $BENCHTIME ]]; then args+=(-benchtime "$BENCHTIME"); fi
echo "== go test ${args[*]} ${pkgs[*]} > $NEW  (commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ', uncommitted changes'))" >&2
status=0
# go test's output carries goos/goarch/pkg/cpu lines, which benchstat uses to label the tables.
timeout 3600 go test "${args[@]}" "${pkgs[@]}" >"$NEW" || status=$?
grep -E '^(FAIL|---|panic)' "$NEW" >&2 || true
if [[ $status != 0 ]]; then
	echo "== go test failed (status $status): $NEW holds what ran; fix the failure before comparing" >&2
	exit "$status"
fi
echo "== $(grep -c '^Benchmark' "$NEW") benchmark results in $NEW" >&2

if [[ -f $OLD ]]; then
	echo "== benchstat $OLD $NEW" >&2
	benchstat "$OLD" "$NEW"
else
	benchstat "$NEW"
	echo "== no $OLD to compare with: 'bash benchmarks/bench.sh save' keeps this run as the reference" >&2
fi
if [[ ${1:-run} == save ]]; then
	mv "$NEW" "$OLD"
	echo "== saved as $OLD" >&2
fi

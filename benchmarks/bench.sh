#!/usr/bin/env bash
# benchmarks/bench.sh: micro-benchmarks of the hot packages, compared with benchstat.
#
#   bash benchmarks/bench.sh            writes benchmarks/new.txt (and compares with old.txt if present)
#   mv benchmarks/new.txt benchmarks/old.txt; <change code>; bash benchmarks/bench.sh
#
# -count 5 gives benchstat enough samples for a confidence interval; run on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run xxx -bench . -benchmem -count "${COUNT:-5}" ./bidder/... ./auction/ ./events/ >benchmarks/new.txt
if [[ -f benchmarks/old.txt ]]; then
	go run golang.org/x/perf/cmd/benchstat@latest benchmarks/old.txt benchmarks/new.txt
else
	echo "wrote benchmarks/new.txt; no benchmarks/old.txt to compare with (rename new.txt to old.txt first)"
fi

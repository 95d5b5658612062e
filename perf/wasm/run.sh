#!/usr/bin/env bash
# Builds the Wasm flare benchmark (if needed) and runs bench_wasm.py; see perf/wasm/README.md.
#
#   perf/wasm/run.sh                    # 3 rounds x 5 loads x 2 sides, 5 s each (~3 min)
#   perf/wasm/run.sh --quick            # smoke run (1 round x 1 s), as the test suite runs it
#   perf/wasm/run.sh --build DIR [args] # use (or create) the build directory DIR
#
# Every other argument goes to bench_wasm.py (--help lists them). Exit status:
# bench_wasm.py's (0 done, 1 harness error, 2 usage, 3 a target failed under --strict).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../bench_lib.sh"

bench_args perf/wasm/run.sh "$@"
bench_build perf/wasm/run.sh wasm ember-wasm-bench-tools ember-wasm-bench-server \
  wasm/ember-wasm-bench-server edge/ember-sched
exec /usr/bin/python3 "$HERE/bench_wasm.py" --build "$build" "${args[@]+"${args[@]}"}"

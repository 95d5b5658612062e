#!/usr/bin/env bash
# Builds the edge benchmark's tools (if needed) and runs bench_edge.py; see perf/edge/README.md.
#
#   perf/edge/run.sh                    # 3 rounds x 5 s per server and load (~4-5 min)
#   perf/edge/run.sh --quick            # smoke run (~30 s), as the test suite runs it
#   perf/edge/run.sh --build DIR [args] # use (or create) the build directory DIR
#
# Every other argument goes to bench_edge.py (--help lists them). Ember is
# built too (ember_cli); if it does not build, the rivals still run and
# Ember's rows say "not available". Exit status: bench_edge.py's (0 done,
# 1 harness error, 3 a target failed under --strict).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../bench_lib.sh"

bench_args perf/edge/run.sh "$@"
bench_build perf/edge/run.sh edge ember-edge-tools ember_cli \
  edge/ember-ws-load edge/ember-lws-echo edge/ember-edge-floor edge/ember-idle-conns edge/ember-sched
exec /usr/bin/python3 "$HERE/bench_edge.py" --build "$build" "${args[@]+"${args[@]}"}"

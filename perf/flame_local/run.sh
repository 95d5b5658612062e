#!/usr/bin/env bash
# Builds the flame-local run_task benchmark (if needed) and runs bench.py; see
# perf/flame_local/README.md.
#
#   perf/flame_local/run.sh                    # 3 rounds x 2 loads x 2 clients, 5,000 tasks (~2 min)
#   perf/flame_local/run.sh --quick            # smoke run (300 tasks, 1 round), as the test suite runs it
#   perf/flame_local/run.sh --build DIR [args] # use (or create) the build directory DIR
#
# Every other argument goes to bench.py (--help lists them). Exit status:
# bench.py's (0 done, 1 harness error, 2 usage).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../bench_lib.sh"

bench_args perf/flame_local/run.sh "$@"
bench_build perf/flame_local/run.sh flame-local ember-flame-local-tools ember_cli \
  flame_local/ember-flame-run-task-load edge/ember-sched
exec /usr/bin/python3 "$HERE/bench.py" --build "$build" "${args[@]+"${args[@]}"}"

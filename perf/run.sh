#!/usr/bin/env bash
# Builds the Flame benchmark (if needed) and runs it; see perf/README.md.
#
#   perf/run.sh                      # both modes below, 6 scenarios x 5 rounds each (~20 min)
#   perf/run.sh --mode executor      # blocking client, Ember on defaults (as Flame's executor)
#   perf/run.sh --mode low-latency   # spinning client, Ember with EMBER_BUSY_POLL_US=200
#   perf/run.sh --quick              # smoke run (< 1 min), as scripts/test.sh runs it
#   perf/run.sh --build DIR [args]   # use (or create) the build directory DIR
#
# Every other argument goes to ember-bench-flame (--help lists them).
# Exit status: the bench's (0 ok, 1 harness error or wrong answer, 3 a target
# failed under --strict, 4 a server stalled); with both modes, the worse one.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${JOBS:-$(nproc)}

build=build-perf
mode=both
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --mode)
      [ $# -ge 2 ] || { echo "perf/run.sh: --mode needs executor, low-latency or both" >&2; exit 2; }
      mode=$2
      shift 2
      ;;
    --quick | --client-spin | --ember-busy-poll)
      # A smoke run, or modes spelled out by hand: one pass as given.
      mode=single
      args+=("$1")
      shift
      ;;
    --build)
      [ $# -ge 2 ] || { echo "perf/run.sh: --build needs a directory" >&2; exit 2; }
      build=$2
      shift 2
      ;;
    *)
      args+=("$1")
      shift
      ;;
  esac
done
case $build in /*) ;; *) build=$ROOT/$build ;; esac

if [ ! -f "$build/build.ninja" ]; then
  echo "==> configuring $build" >&2
  cmake -S "$ROOT" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEMBER_BUILD_TESTS=OFF \
    -DEMBER_BUILD_PERF=ON >/dev/null
fi
# Not a pipe into grep -q: grep exits at the first match, ninja gets SIGPIPE
# and pipefail turns the found target into a failure.
if ! grep -q '^ember-bench-flame:' <<<"$(ninja -C "$build" -t targets all 2>/dev/null)"; then
  echo "perf/run.sh: $build has no benchmark target; reconfigure it with -DEMBER_BUILD_PERF=ON" >&2
  exit 2
fi
# The bench target depends on everything it launches (echo, grpc++ rival,
# floor server, allocation shim).
ninja -C "$build" -j "$JOBS" ember-bench-flame >&2

bench="$build/perf/ember-bench-flame"
executor=()
low_latency=(--client-spin --ember-busy-poll 200)
case $mode in
  single) exec "$bench" "${args[@]+"${args[@]}"}" ;;
  executor) exec "$bench" "${executor[@]+"${executor[@]}"}" "${args[@]+"${args[@]}"}" ;;
  low-latency) exec "$bench" "${low_latency[@]}" "${args[@]+"${args[@]}"}" ;;
  both) ;;
  *) echo "perf/run.sh: unknown --mode $mode (executor, low-latency or both)" >&2; exit 2 ;;
esac
# Both modes, one after the other, each into its own results directory.
stamp=$(date -u +%Y%m%d-%H%M%S)
status=0
for m in executor low-latency; do
  echo "==> mode $m" >&2
  if [ $m = executor ]; then flags=("${executor[@]+"${executor[@]}"}"); else flags=("${low_latency[@]}"); fi
  "$bench" --out "$ROOT/perf/results/$stamp-$m" "${flags[@]+"${flags[@]}"}" "${args[@]+"${args[@]}"}" || {
    rc=$?
    [ $rc -gt $status ] && status=$rc
  }
done
exit $status

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
ROOT=$(cd "$HERE/../.." && pwd)
JOBS=${JOBS:-$(nproc)}

build=build-perf
own_ember=no
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --build)
      [ $# -ge 2 ] || { echo "perf/edge/run.sh: --build needs a directory" >&2; exit 2; }
      build=$2
      shift 2
      ;;
    --ember)
      own_ember=yes
      args+=("$1")
      shift
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
if ! grep -q '^ember-edge-tools:' <<<"$(ninja -C "$build" -t targets all 2>/dev/null)"; then
  echo "perf/edge/run.sh: $build has no edge targets; reconfigure it with -DEMBER_BUILD_PERF=ON" >&2
  exit 2
fi
if ! ninja -C "$build" -j "$JOBS" ember-edge-tools >&2; then
  # Another part of the tree may be mid-change; stale tools still measure.
  for t in ember-ws-load ember-lws-echo ember-edge-floor ember-idle-conns ember-sched; do
    [ -x "$build/perf/edge/$t" ] || { echo "perf/edge/run.sh: the edge tools did not build" >&2; exit 1; }
  done
  echo "perf/edge/run.sh: the build failed; running the edge tools already in $build" >&2
fi
if [ $own_ember = no ] && ! ninja -C "$build" -j "$JOBS" ember_cli >&2; then
  echo "perf/edge/run.sh: ember_cli did not build; Ember's rows will say not available" >&2
fi
exec /usr/bin/python3 "$HERE/bench_edge.py" --build "$build" "${args[@]+"${args[@]}"}"

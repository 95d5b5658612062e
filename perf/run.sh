#!/usr/bin/env bash
# Builds the Flame benchmark (if needed) and runs it; see perf/README.md.
#
#   perf/run.sh                      # full run: 6 scenarios x 5 rounds (~6 min)
#   perf/run.sh --quick              # smoke run (< 1 min), as scripts/test.sh runs it
#   perf/run.sh --build DIR [args]   # use (or create) the build directory DIR
#
# Every other argument goes to ember-bench-flame (--help lists them).
# Exit status: the bench's (0 ok, 1 harness error or wrong answer, 3 a target
# failed under --strict, 4 a server stalled).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${JOBS:-$(nproc)}

build=build-perf
args=()
while [ $# -gt 0 ]; do
  case $1 in
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
if ! ninja -C "$build" -t targets all 2>/dev/null | grep -q '^ember-bench-flame:'; then
  echo "perf/run.sh: $build has no benchmark target; reconfigure it with -DEMBER_BUILD_PERF=ON" >&2
  exit 2
fi
# The bench target depends on everything it launches (echo, grpc++ rival,
# floor server, allocation shim).
ninja -C "$build" -j "$JOBS" ember-bench-flame >&2

exec "$build/perf/ember-bench-flame" "${args[@]+"${args[@]}"}"

#!/usr/bin/env bash
# Builds the queue relay benchmark (if needed) and runs bench_queue.py; see perf/queue/README.md.
#
#   perf/queue/run.sh                    # 3 rounds x 2 modes x 2 relays, 50,000 messages (~3-5 min)
#   perf/queue/run.sh --quick            # smoke run (3,000 messages, 1 round), as the test suite runs it
#   perf/queue/run.sh --build DIR [args] # use (or create) the build directory DIR
#
# It starts RabbitMQ, the config service, pass, PostgreSQL and S3 with
# scripts/services.sh in a fresh temp state dir and stops them at the end
# (--services DIR reuses a running set instead). Every other argument goes to
# bench_queue.py (--help lists them). Exit status: bench_queue.py's (0 done,
# 1 harness error, 3 a target failed under --strict); a slow or failing Ember
# does not fail the run.
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
      [ $# -ge 2 ] || { echo "perf/queue/run.sh: --build needs a directory" >&2; exit 2; }
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
if ! grep -q '^ember-queue-tools:' <<<"$(ninja -C "$build" -t targets all 2>/dev/null)"; then
  echo "perf/queue/run.sh: $build has no queue targets; reconfigure it with -DEMBER_BUILD_PERF=ON" >&2
  exit 2
fi
if ! ninja -C "$build" -j "$JOBS" ember-queue-tools >&2; then
  for t in queue/ember-queue-driver queue/ember-relay-rabbitmq-c edge/ember-sched; do
    [ -x "$build/perf/$t" ] || { echo "perf/queue/run.sh: the queue tools did not build" >&2; exit 1; }
  done
  echo "perf/queue/run.sh: the build failed; running the tools already in $build" >&2
fi
if [ $own_ember = no ] && ! ninja -C "$build" -j "$JOBS" ember-queue-relay >&2; then
  echo "perf/queue/run.sh: ember-queue-relay did not build; Ember's rows will say n/a" >&2
fi
exec /usr/bin/python3 "$HERE/bench_queue.py" --build "$build" "${args[@]+"${args[@]}"}"

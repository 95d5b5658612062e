# Shared by perf/edge/run.sh and perf/queue/run.sh (sourced): their command
# line and the Release build directory with the tools they run.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${JOBS:-$(nproc)}

# bench_args NAME ARGS...: sets build (absolute), own_ember (yes/no) and
# args (the rest, for the Python harness; --ember stays in it).
bench_args() {
  local name=$1
  shift
  build=build-perf
  own_ember=no
  args=()
  while [ $# -gt 0 ]; do
    case $1 in
      --build)
        [ $# -ge 2 ] || { echo "$name: --build needs a directory" >&2; exit 2; }
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
}

# bench_build NAME KIND TOOLS_TARGET EMBER_TARGET TOOL...: configures $build
# if needed and builds the tools (falling back to the TOOLs already there,
# paths under $build/perf/, when another part of the tree is mid-change)
# and, unless --ember named one, Ember's server.
bench_build() {
  local name=$1 kind=$2 tools=$3 ember=$4
  shift 4
  if [ ! -f "$build/build.ninja" ]; then
    echo "==> configuring $build" >&2
    cmake -S "$ROOT" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEMBER_BUILD_TESTS=OFF \
      -DEMBER_BUILD_PERF=ON >/dev/null
  fi
  # Not a pipe into grep -q: grep exits at the first match, ninja gets SIGPIPE
  # and pipefail turns the found target into a failure.
  if ! grep -q "^$tools:" <<<"$(ninja -C "$build" -t targets all 2>/dev/null)"; then
    echo "$name: $build has no $kind targets; reconfigure it with -DEMBER_BUILD_PERF=ON" >&2
    exit 2
  fi
  if ! ninja -C "$build" -j "$JOBS" "$tools" >&2; then
    local t
    for t in "$@"; do
      [ -x "$build/perf/$t" ] || { echo "$name: the $kind tools did not build" >&2; exit 1; }
    done
    echo "$name: the build failed; running the $kind tools already in $build" >&2
  fi
  if [ "$own_ember" = no ] && ! ninja -C "$build" -j "$JOBS" "$ember" >&2; then
    echo "$name: $ember did not build; Ember's rows will say not available" >&2
  fi
}

#!/usr/bin/env bash
# Runs every libFuzzer target for a while; builds nothing.
#
#   tests/fuzz/run.sh [SECONDS] [BUILD_DIR]
#
# SECONDS per target (default 30); targets run in parallel, one per core
# (FUZZ_JOBS overrides). BUILD_DIR (default build-fuzz, relative to
# the repository) must hold the fuzz binaries, e.g. from
#
#   CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DEMBER_BUILD_FUZZ=ON \
#     -DEMBER_BUILD_TESTS=OFF -DEMBER_BUILD_PERF=OFF -DEMBER_BUILD_EXAMPLES=OFF
#   ninja -C build-fuzz ember_fuzz
#
# Each target starts from a scratch copy of its committed corpus
# (tests/fuzz/corpus/<target>), so the tree is never written to, and takes
# its libFuzzer flags from the "libfuzzer-options:" line of its source.
# A crash, leak, timeout or UBSan report fails the run; the input that
# caused it is kept in BUILD_DIR/fuzz-artifacts/<target>/ and the log in
# BUILD_DIR/fuzz-logs/<target>.log. Reproduce with
#   BUILD_DIR/tests/fuzz/<target> BUILD_DIR/fuzz-artifacts/<target>/crash-...
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
seconds="${1:-30}"
build="${2:-build-fuzz}"
[[ "$build" = /* ]] || build="$root/$build"

if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: $0 [SECONDS] [BUILD_DIR]  (SECONDS: a whole number >= 1)" >&2
  exit 2
fi

targets=()
for src in "$here"/fuzz_*.cpp; do
  targets+=("$(basename "$src" .cpp)")
done

missing=0
for t in "${targets[@]}"; do
  if [ ! -x "$build/tests/fuzz/$t" ]; then
    echo "missing $build/tests/fuzz/$t: build the fuzz targets first (see $0)" >&2
    missing=1
  fi
done
[ "$missing" -eq 0 ] || exit 2

# UBSan reports must fail the run, not scroll by.
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export ASAN_OPTIONS="detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$build/fuzz-logs"

# One target: its line of the report, and a FAILED marker in the scratch dir.
run_one() {
  local t=$1 options work artifacts log execs cov
  options="$(sed -n 's|^// libfuzzer-options:||p' "$here/$t.cpp" | head -n 1)"
  work="$scratch/$t"
  artifacts="$build/fuzz-artifacts/$t"
  mkdir -p "$work" "$artifacts"
  cp "$here/corpus/$t"/* "$work/"
  log="$build/fuzz-logs/$t.log"
  # shellcheck disable=SC2086  # options are words by design
  if "$build/tests/fuzz/$t" $options -max_total_time="$seconds" -print_final_stats=1 \
      -artifact_prefix="$artifacts/" "$work" >"$log" 2>&1; then
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)"
    printf '%-22s ok    %ss  %s runs  %s  corpus %s\n' "$t" "$seconds" "${execs:-?}" \
      "${cov:-cov: ?}" "$(ls "$work" | wc -l)"
  else
    printf '%-22s FAIL  see %s\n%s\n' "$t" "$log" \
      "$(grep -m 5 -E 'ERROR|runtime error|SUMMARY|Test unit written' "$log" | sed 's/^/    /')"
    touch "$scratch/$t.FAILED"
  fi
}

# As many targets at once as there are cores (FUZZ_JOBS to change it).
jobs="${FUZZ_JOBS:-$(nproc)}"
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_one "$t" &
done
wait

failed=()
for t in "${targets[@]}"; do
  [ -e "$scratch/$t.FAILED" ] && failed+=("$t")
done

if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzzing failed: ${failed[*]}" >&2
  exit 1
fi

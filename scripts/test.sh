#!/usr/bin/env bash
# Ember's whole test suite, as CI runs it on a fresh clone:
#   1. formatting check           (clang-format)
#   2. Release build + unit, integration and install tests
#   3. tests against real services (RabbitMQ, PostgreSQL, S3, pass)
#   4. ASan+UBSan build (clang, with the libFuzzer targets) + unit and
#      integration tests
#   5. ThreadSanitizer build (clang) + unit tests and the multi-loop edge server test
#   6. the libFuzzer targets of phase 4's build, FUZZ_SECONDS each (default 10)
#   7. benchmark smoke runs (check the harnesses work; assert no speed)
# Environment: JOBS (parallel build jobs), FUZZ_SECONDS, KEEP_GOING=0 (stop at
# the first failing phase; by default every phase runs and the exit status
# says whether all passed).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

FUZZ_SECONDS=${FUZZ_SECONDS:-10}
failed=()
declare -A took
order=()

phase() {
  local name=$1
  shift
  log "$name"
  local start=$SECONDS
  order+=("$name")
  if "$@"; then
    took[$name]="$((SECONDS - start))s"
  else
    took[$name]="$((SECONDS - start))s  FAILED"
    failed+=("$name")
    if [ "${KEEP_GOING:-1}" = 0 ]; then summary; exit 1; fi
  fi
}

summary() {
  log "summary"
  for name in "${order[@]}"; do printf '  %-20s %s\n' "$name" "${took[$name]}"; done
  if [ ${#failed[@]} -eq 0 ]; then
    echo "all phases passed"
  else
    echo "FAILED: ${failed[*]}"
  fi
}

check_format() {
  local files
  mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.c' '*.h')
  clang-format --dry-run -Werror "${files[@]}"
}

release_tests() {
  configure_build build-test -DCMAKE_BUILD_TYPE=Release &&
    ctest --test-dir build-test --output-on-failure -j 2 -L 'unit|integration|install'
}

# Sanitizer builds: -O1 with line tables only (-g1): the reports still name
# file and line. Compiling dominates these phases on 2 cores, and with the
# sanitizers on, -O1 compiles in ~55% of -O2's time (broker_test.cpp: 28 s vs
# 50 s) while the tests run only slightly slower.
SANITIZER_BUILD=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG"
  "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG")
# The ASan+UBSan build is clang's and also holds the libFuzzer targets
# (every object instrumented for coverage, only the fuzz programs linked
# with libFuzzer): one build instead of two, and clang builds it in 306 s
# where GCC took 480 s for the tests alone and 169 s more for the fuzz build.
ASAN_BUILD=(build-test-asan "${SANITIZER_BUILD[@]}" -DEMBER_SANITIZE=ON -DEMBER_BUILD_FUZZ=ON
  -DEMBER_BUILD_PERF=OFF)

sanitizer_tests() {
  CC=clang CXX=clang++ configure_build "${ASAN_BUILD[@]}" &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
      ctest --test-dir build-test-asan --output-on-failure -j 2 -L 'unit|integration'
}

# ThreadSanitizer looks for races, which do not hinge on the optimiser:
# that build is clang's and all -O0 (111 s here, where GCC at -O0 took 162).
TSAN_BUILD=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O0 -g1 -DNDEBUG"
  "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O0 -g1 -DNDEBUG")

thread_sanitizer_tests() {
  CC=clang CXX=clang++ configure_build build-test-tsan "${TSAN_BUILD[@]}" -DEMBER_SANITIZE_THREAD=ON \
    -DEMBER_BUILD_PERF=OFF -DEMBER_BUILD_EXAMPLES=OFF &&
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
      ctest --test-dir build-test-tsan --output-on-failure -j 2 -L 'unit|tsan'
}

fuzz() {
  # Built by the sanitizer phase; builds them if that phase stopped early.
  CC=clang CXX=clang++ configure_build "${ASAN_BUILD[@]}" -- ember_fuzz &&
    tests/fuzz/run.sh "$FUZZ_SECONDS" build-test-asan
}

# Real RabbitMQ, PostgreSQL, S3 (s3rver), config server and pass store on
# loopback with state in a temp dir; tests labelled `services` use them and
# fail (rather than skip) when one is missing.
services_tests() {
  local state rc
  state=$(mktemp -d /tmp/ember-suite-services.XXXXXX)
  (
    export EMBER_SERVICES_DIR=$state
    scripts/services.sh start &&
      source "$(scripts/services.sh env)" &&
      EMBER_REQUIRE_SERVICES=1 ctest --test-dir build-test --output-on-failure -j 1 -L services
  )
  rc=$?
  EMBER_SERVICES_DIR=$state scripts/services.sh stop || true
  rm -rf "$state"
  return $rc
}

bench_smoke() {
  perf/run.sh --quick --build build-test && perf/edge/run.sh --quick --build build-test &&
    perf/queue/run.sh --quick --build build-test &&
    perf/queue/run.sh --quick --build build-test --suite python &&
    perf/flame_local/run.sh --quick --build build-test &&
    perf/wasm/run.sh --quick --build build-test
}

phase "setup" "$ROOT/scripts/setup.sh"
phase "format" check_format
phase "release tests" release_tests
phase "services tests" services_tests
phase "sanitizer tests" sanitizer_tests
phase "thread sanitizer" thread_sanitizer_tests
phase "fuzz" fuzz
phase "bench smoke" bench_smoke
summary
[ ${#failed[@]} -eq 0 ]

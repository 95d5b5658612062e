#!/usr/bin/env bash
# Ember's main job on embedded defaults: builds Ember and runs the Flame
# example services the way Flame's executor runs them (`ember flame-run`).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

"$ROOT/scripts/setup.sh"
BUILD=${BUILD:-$ROOT/build}
log "building Ember (Release) in $BUILD"
configure_build "$BUILD" -DCMAKE_BUILD_TYPE=Release -DEMBER_BUILD_TESTS=OFF -DEMBER_BUILD_PERF=OFF

ember="$BUILD/ember"
export EMBER_LOG=${EMBER_LOG:-warn}

log "echo service: three tasks (text, empty, absent input)"
"$ember" flame-run -i "hello from ember" -i "" --no-input -- "$BUILD/examples/ember-flame-echo"

samples=2000000
tasks=8
log "pi service: $tasks tasks of $samples samples, two sessions on one instance"
hits=$(for _ in $(seq "$tasks"); do echo "$samples"; done |
  "$ember" flame-run --sessions 2 -- "$BUILD/examples/ember-flame-pi" |
  awk '{ s += $1 } END { print s }')
awk -v h="$hits" -v n="$((samples * tasks * 2))" \
  'BEGIN { printf "pi ~= 4 * %d / %d = %.6f\n", h, n, 4 * h / n }'

log "done. Flame services built with Ember: $BUILD/examples; CLI: $ember flame-run --help"

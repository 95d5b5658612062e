#!/usr/bin/env bash
# Installs Ember from a build dir into a temp prefix, builds a service outside
# the tree with find_package(ember), and runs it through the installed CLI.
set -euo pipefail
build_dir=${1:?usage: check.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/ember-install-XXXXXX")
trap 'rm -rf "$work"' EXIT

cmake --install "$build_dir" --prefix "$work/prefix" >"$work/install.log"
for f in include/ember/flame.hpp lib/cmake/ember/emberConfig.cmake bin/ember; do
  [ -e "$work/prefix/$f" ] || { echo "install is missing $f"; exit 1; }
done
cmake -S "$here/consumer" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/configure.log" \
  || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" >"$work/build.log" || { cat "$work/build.log"; exit 1; }

out=$(EMBER_LOG=warn "$work/prefix/bin/ember" flame-run -q -i hello -i "flame run" \
  -- "$work/build/shout-service")
expected=$'HELLO\nFLAME RUN'
if [ "$out" != "$expected" ]; then
  printf 'unexpected output:\n%s\nexpected:\n%s\n' "$out" "$expected"
  exit 1
fi
echo "install check passed: find_package(ember) consumer served 2 tasks"

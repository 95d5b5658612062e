#!/usr/bin/env bash
# Compiles the example Wasm flares (*.c here) with Debian's clang-14 and
# wasm-ld-14 into OUT_DIR/<name>.wasm: freestanding C against
# include/ember/flare_guest.h, no libc, no WASI.
#
#   examples/flare/wasm/build.sh OUT_DIR
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: build.sh OUT_DIR}"
mkdir -p "$out"
for src in "$here"/*.c; do
  name="$(basename "$src" .c)"
  clang-14 --target=wasm32 -O2 -nostdlib -ffreestanding -fuse-ld=lld -Wall -Wextra -Werror \
    -I "$here/../../../include" -Wl,--no-entry -Wl,--strip-all -o "$out/$name.wasm" "$src"
done

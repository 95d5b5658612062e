#!/usr/bin/env bash
# User-space instructions per request (h2c) or per message (WebSocket echo) of
# `ember serve`, counted by callgrind: deterministic to about 0.1 %, where the
# CPU-time ratios of run.sh move by 5-10 % on this shared machine. Use it to
# A/B a change to the hot path; run.sh stays the benchmark against the rivals.
#
#   perf/edge/instructions.sh [--build DIR] [--ember BIN] [--load h2c|ws|both]
#
# Each load runs twice (20,000 and 120,000 requests or messages, fresh
# server each time); the difference divided by 100,000 leaves start-up and
# shutdown out. Needs valgrind, h2load (nghttp2-client) and the build's
# perf/edge/ember-ws-load.
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
build="$here/build-perf"
ember=""
load=both
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --ember) ember=$2; shift 2 ;;
    --load) load=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "instructions.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$load" in
  h2c|ws|both) ;;
  *) echo "instructions.sh: --load is h2c, ws or both" >&2; exit 2 ;;
esac
ember=${ember:-$build/ember}
ws_load="$build/perf/edge/ember-ws-load"
for tool in valgrind h2load; do
  command -v "$tool" >/dev/null || { echo "instructions.sh: $tool not found (scripts/setup.sh installs it)" >&2; exit 1; }
done
[ -x "$ember" ] || { echo "instructions.sh: no ember binary at $ember (--build or --ember)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/ember-instructions-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$tmp/ember.yaml" <<EOF
loops: 1
log: warn
listeners:
  - listen: 127.0.0.1:$port
routes:
  - {host: "*", path: /ws, flare: ws-echo}
  - {host: "*", path: /, flare: hello}
EOF

# count LOAD N: total instructions of one server lifetime that served N.
count() {
  local what=$1 n=$2 out="$tmp/callgrind.$1.$2"
  EMBER_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$ember" serve --config "$tmp/ember.yaml" >"$tmp/server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 200); do grep -q listening "$tmp/server.log" && break; sleep 0.1; done
  if [ "$what" = h2c ]; then
    h2load -t1 -c16 -m16 -n "$n" "http://127.0.0.1:$port/" >"$tmp/load.log" 2>&1
    grep -q "$n succeeded" "$tmp/load.log" || { echo "h2load did not finish $n requests:" >&2; tail -5 "$tmp/load.log" >&2; kill "$pid"; exit 1; }
  else
    "$ws_load" -p "$port" -P /ws -c 64 -s 32 -d 300 -n "$n" >"$tmp/load.log" 2>&1
    grep -q "messages=$n " "$tmp/load.log" || { echo "ember-ws-load did not finish $n messages:" >&2; tail -5 "$tmp/load.log" >&2; kill "$pid"; exit 1; }
  fi
  kill -INT "$pid"
  wait "$pid" || true
  awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

run() {
  local what=$1 unit=$2
  echo "[$what] 20,000 and 120,000 ${unit}s under callgrind (about a minute)..." >&2
  local a b
  a=$(count "$what" 20000)
  b=$(count "$what" 120000)
  printf '%-4s %6d user-space instructions per %s  (%s)\n' "$what" $(((b - a) / 100000)) "$unit" "$ember"
}

case "$load" in
  h2c) run h2c request ;;
  ws) run ws message ;;
  both) run h2c request; run ws message ;;
esac

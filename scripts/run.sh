#!/usr/bin/env bash
# Ember's main job on embedded defaults: builds Ember, runs the Flame example
# services the way Flame's executor runs them (`ember flame-run`), runs the
# Pi client against `ember flame-local` (a single-node session manager), runs the
# queue example against real services started on loopback (RabbitMQ, S3,
# PostgreSQL, config service, pass), then serves the example flares with
# `ember serve` and reaches them with curl (HTTP/1.1, h2c) and a WebSocket
# client. KEEP_SERVING=1 leaves the edge server running
# in the foreground afterwards (Ctrl-C drains it).
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

log "flame-local: the C++ Pi client, its tasks spread over one pi instance per CPU"
flame_dir=$(mktemp -d /tmp/ember-run-flame-local.XXXXXX)
"$ember" flame-local --listen 127.0.0.1:0 --state "$flame_dir/state.db" \
  --socket-dir "$flame_dir" 2>"$flame_dir/log" &
flame_pid=$!
stop_flame() { kill -TERM "$flame_pid" 2>/dev/null; wait "$flame_pid" 2>/dev/null; rm -rf "$flame_dir"; }
trap stop_flame EXIT
for _ in $(seq 100); do grep -q "serving flame.v1.Frontend" "$flame_dir/log" && break; sleep 0.1; done
flame_endpoint=$(grep -o 'serving flame.v1.Frontend on http://[0-9.:]*' "$flame_dir/log" | awk '{ print $NF }')
"$BUILD/examples/ember-flame-pi-client" --endpoint "$flame_endpoint" \
  --service "$BUILD/examples/ember-flame-pi" --tasks 64 --samples 2000000
stop_flame
trap - EXIT

log "queue: the upper microservice against RabbitMQ, S3, PostgreSQL, a config service and pass"
services_dir=$(mktemp -d /tmp/ember-run-services.XXXXXX)
export EMBER_SERVICES_DIR=$services_dir
stop_services() { "$ROOT/scripts/services.sh" stop >/dev/null 2>&1 || true; rm -rf "$services_dir"; }
trap stop_services EXIT
"$ROOT/scripts/services.sh" start >/dev/null
# shellcheck disable=SC1090
source "$("$ROOT/scripts/services.sh" env)"
printf '{"in": "upper-in", "out": [{"case": true, "queues": ["upper-long"]}, {"case": false, "queues": ["upper-short"]}]}\n' \
  >"$CONFIG_DIR/upper.json"
mkdir -p "$CONFIG_DIR/upper"
echo ember-in >"$CONFIG_DIR/upper/in"
echo ember-out >"$CONFIG_DIR/upper/out"
# Runs one `upper` service (the command), drives it, stops it with SIGTERM.
run_upper() {
  "$@" &
  local pid=$! rc=0
  /usr/bin/python3 "$ROOT/examples/queue/driver.py"
  kill -TERM "$pid"
  wait "$pid" || rc=$?
  echo "upper exited with status $rc after SIGTERM (0: the work in flight was finished)"
}
run_upper env EMBER_METRICS=127.0.0.1:0 "$BUILD/examples/ember-queue-upper" "$CONFIG_HOST"
if [ -d "$BUILD/python/slingshot_microservice" ]; then
  log "queue: the same microservice in Python (slingshot_microservice on Ember)"
  run_upper env PYTHONPATH="$BUILD/python" /usr/bin/python3 "$ROOT/examples/queue/upper.py" "$CONFIG_HOST"
fi
stop_services
trap - EXIT

log "edge: ember serve with the bundled flares (hello, echo, ws-echo, chat)"
port=${EDGE_PORT:-8080}
"$ember" serve --listen "127.0.0.1:$port" --loops 2 &
serve_pid=$!
trap 'kill -TERM "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; echo; }
run curl -s "http://127.0.0.1:$port/"
run curl -s --data-binary 'echo me' "http://127.0.0.1:$port/echo"
run curl -s --http2-prior-knowledge -o /dev/null -w 'h2c: HTTP/%{http_version} %{http_code}\n' "http://127.0.0.1:$port/"
run curl -s --http2 -o /dev/null -w 'Upgrade: h2c -> HTTP/%{http_version} %{http_code}\n' "http://127.0.0.1:$port/"
printf '\033[2m$ WebSocket client -> ws://127.0.0.1:%s/ws and /chat/lobby\033[0m\n' "$port"
/usr/bin/python3 - "$port" <<'PY'
import asyncio, sys, websockets
port = sys.argv[1]
async def main():
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
        await ws.send("hello over WebSocket")
        print("ws-echo:", await ws.recv())
    async with websockets.connect(f"ws://127.0.0.1:{port}/chat/lobby") as a:
        print("chat:", await a.recv())
        async with websockets.connect(f"ws://127.0.0.1:{port}/chat/lobby") as b:
            print("chat:", await a.recv())
            await b.send("hi all")
            print("chat:", await a.recv())
asyncio.run(main())
PY
if [ "${KEEP_SERVING:-0}" = 1 ]; then
  log "serving on http://127.0.0.1:$port (Ctrl-C to stop)"
  wait "$serve_pid"
fi
log "done. Flame services built with Ember: $BUILD/examples; CLI: $ember flame-run --help, $ember serve --help"

#!/usr/bin/env bash
# Real services for the queue face's tests, on 127.0.0.1 only, state in one dir.
#
#   scripts/services.sh start [rabbitmq] [postgres] [s3] [config] [pass]   (none = all)
#   scripts/services.sh stop          stop everything started from the state dir
#   scripts/services.sh env           print the env file's path (`source` it)
#   scripts/services.sh check         exercise every running service
#   scripts/services.sh status
#
# State dir: $EMBER_SERVICES_DIR, default ${TMPDIR:-/tmp}/ember-services. A
# service already running from it is reused. Buckets: $S3_BUCKETS (default
# "ember-in ember-out"). Facts behind the choices: shared/notes/services.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SVC="$HERE/services"
STATE=${EMBER_SERVICES_DIR:-${TMPDIR:-/tmp}/ember-services}
PY=/usr/bin/python3
ALL=(rabbitmq postgres s3 config pass)
RABBIT_BOOT_TIMEOUT=${RABBIT_BOOT_TIMEOUT:-90}

say() { printf 'services: %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}
now_ms() { date +%s%3N; }

# A process counts as gone once it is a zombie: PID 1 reaps orphans late.
alive() {
  local pid=$1 stat
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}
# Field 22 of /proc/PID/stat: with the PID it names one process for good, so
# a stale pid file (reboot, PID reuse) never makes us signal a stranger.
start_time() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  awk '{print $20}' <<<"$stat"
}
record_pid() { echo "$2 $(start_time "$2")" >"$STATE/pids/$1.pid"; }
# The recorded PID if that very process still runs, else nothing.
pid_of() {
  local pid started
  [ -f "$STATE/pids/$1.pid" ] || return 0
  read -r pid started <"$STATE/pids/$1.pid" || return 0
  [ -n "$pid" ] && [ "$(start_time "$pid")" = "$started" ] && echo "$pid"
  return 0
}
running() {
  if [ "$1" = pass ]; then [ -f "$STATE/pass.ready" ]; else alive "$(pid_of "$1")"; fi
}

# setsid makes $! the service itself; all three streams redirected so no
# caller (CI) waits on an inherited pipe.
spawn() {
  local name=$1 log=$2
  shift 2
  setsid "$@" >"$log" 2>&1 </dev/null &
  record_pid "$name" $!
}

random_secret() { head -c 18 /dev/urandom | base64 | tr '+/' '-_'; }

init_state() {
  mkdir -p "$STATE"/{pids,env.d,config}
  # PostgreSQL runs as user postgres and must traverse the state dir.
  chmod 711 "$STATE"
  if [ ! -f "$STATE/secrets.env" ]; then
    umask 077
    cat >"$STATE/secrets.env" <<EOF
RABBITMQ_USER=ember
RABBITMQ_PASSWORD=$(random_secret)
PGUSER=ember
PGPASSWORD=$(random_secret)
PGDATABASE=ember
S3_ACCESS_KEY=EMBER$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
S3_SECRET_KEY=$(random_secret)
EOF
    umask 022
  fi
  # shellcheck disable=SC1091
  . "$STATE/secrets.env"
  PASS_RABBITMQ=ember/rabbitmq
  PASS_DB=ember/db
  PASS_S3_ACCESS_KEY=ember/s3/access-key
  PASS_S3_SECRET_KEY=ember/s3/secret-key
  EXAMPLE_SERVICE=ember-example
  S3_REGION=${S3_REGION:-garage}
}

# env_fragment NAME VAR=VALUE...: the part of the env file one service owns.
env_fragment() {
  local name=$1 kv
  shift
  {
    for kv in "$@"; do printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"; done
  } >"$STATE/env.d/$name.env"
}

write_env() {
  {
    echo "# written by scripts/services.sh; source it"
    printf 'export EMBER_SERVICES_DIR=%q\n' "$STATE"
    local f
    for f in "$STATE"/env.d/*.env; do
      [ -e "$f" ] || continue
      running "$(basename "$f" .env)" && cat "$f"
    done
  } >"$STATE/env.tmp"
  mv "$STATE/env.tmp" "$STATE/env"
}

free_ports() { "$PY" "$SVC/probe.py" free-ports "$1"; }

wait_file() {
  local file=$1 pid=$2 secs=$3 what=$4 i
  for ((i = 0; i < secs * 20; i++)); do
    [ -s "$file" ] && return 0
    alive "$pid" || die "$what exited during start-up (log: $5)"
    sleep 0.05
  done
  die "$what not ready after ${secs}s (log: $5)"
}

# ---- RabbitMQ ----------------------------------------------------------------
start_rabbitmq() {
  local d="$STATE/rabbitmq" port dist epmd_port ports
  mkdir -p "$d"/{home,mnesia,log}
  read -r port dist epmd_port <<<"$(free_ports 3)"
  # Our own epmd on loopback: otherwise Erlang daemonises one on 0.0.0.0:4369
  # that outlives the broker.
  spawn epmd "$d/epmd.log" env ERL_EPMD_ADDRESS=127.0.0.1 epmd -port "$epmd_port" -address 127.0.0.1
  cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$port
default_vhost = /
default_user = $RABBITMQ_USER
default_pass = $RABBITMQ_PASSWORD
loopback_users = none
log.console = false
log.file.level = warning
EOF
  echo '[].' >"$d/enabled_plugins"
  : >"$d/rabbitmq-env.conf"
  env_fragment rabbitmq RABBITMQ_HOST=127.0.0.1 RABBITMQ_PORT="$port" RABBITMQ_VHOST=/ \
    RABBITMQ_USER="$RABBITMQ_USER" RABBITMQ_PASSWORD="$RABBITMQ_PASSWORD" \
    RABBITMQ_EPMD_PORT="$epmd_port" RABBITMQ_NODENAME=ember@localhost \
    RABBITMQ_HOME_DIR="$d/home" PASS_RABBITMQ="$PASS_RABBITMQ"
  local i
  for ((i = 0; i < 100; i++)); do
    ss -ltn "sport = :$epmd_port" | grep -q LISTEN && break
    sleep 0.02
  done
  spawn rabbitmq "$d/server.log" env HOME="$d/home" \
    RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
    RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
    RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log" \
    RABBITMQ_NODENAME=ember@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$port" RABBITMQ_DIST_PORT="$dist" \
    ERL_EPMD_PORT="$epmd_port" ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    /usr/lib/rabbitmq/bin/rabbitmq-server
  RABBIT_PORT=$port
}

wait_rabbitmq() {
  local t0
  t0=$(now_ms)
  RABBITMQ_HOST=127.0.0.1 RABBITMQ_PORT=$RABBIT_PORT RABBITMQ_USER=$RABBITMQ_USER \
    RABBITMQ_PASSWORD=$RABBITMQ_PASSWORD "$PY" "$SVC/probe.py" wait-amqp "$RABBIT_BOOT_TIMEOUT" ||
    die "rabbitmq did not accept a login (log: $STATE/rabbitmq/server.log, $STATE/rabbitmq/log)"
  say "rabbitmq ready on 127.0.0.1:$RABBIT_PORT ($(($(now_ms) - t0)) ms after the others)"
  printf '{"host": ["127.0.0.1"], "port": [%d], "username": ["%s"], "pass": ["%s"]}\n' \
    "$RABBIT_PORT" "$RABBITMQ_USER" "$PASS_RABBITMQ" >"$STATE/config/rabbitmq.json"
}

# ---- PostgreSQL --------------------------------------------------------------
pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$d/postgres" ] || die "PostgreSQL server not installed (scripts/setup.sh installs postgresql)"
  echo "$d"
}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  local d="$STATE/postgres" bin port
  bin=$(pg_bindir)
  mkdir -p "$d/sock"
  [ "$(id -u)" -eq 0 ] && chown -R postgres: "$d"
  as_postgres test -w "$d" || die "user postgres cannot write $d: choose EMBER_SERVICES_DIR under /tmp"
  if [ ! -f "$d/data/PG_VERSION" ]; then
    as_postgres "$bin/initdb" -D "$d/data" -U postgres -E UTF8 --locale=C -N \
      --auth-local=trust --auth-host=scram-sha-256 >"$d/initdb.log" 2>&1 ||
      die "initdb failed (log: $d/initdb.log)"
  fi
  port=$(free_ports 1)
  as_postgres "$bin/pg_ctl" -D "$d/data" -l "$d/server.log" -w -t 60 -s \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$d/sock -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start </dev/null >/dev/null 2>&1 || die "postgres did not start (log: $d/server.log)"
  record_pid postgres "$(head -n 1 "$d/data/postmaster.pid")"
  local q=(psql -X -q -v ON_ERROR_STOP=1 -h "$d/sock" -p "$port" -U postgres -d postgres)
  "${q[@]}" -v u="$PGUSER" -v p="$PGPASSWORD" >/dev/null <<'EOF' || die "could not create the test role"
SELECT format('CREATE ROLE %I LOGIN', :'u') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'u') \gexec
SET password_encryption = 'scram-sha-256';
ALTER ROLE :"u" PASSWORD :'p';
EOF
  "${q[@]}" -v u="$PGUSER" -v db="$PGDATABASE" >/dev/null <<'EOF' || die "could not create the test database"
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'u') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
EOF
  PGPASSWORD=$PGPASSWORD psql -X -q -t -A -h 127.0.0.1 -p "$port" -U "$PGUSER" -d "$PGDATABASE" \
    -c 'select 1' >/dev/null || die "TCP login as $PGUSER failed (log: $d/server.log)"
  env_fragment postgres PGHOST=127.0.0.1 PGPORT="$port" PGUSER="$PGUSER" PGPASSWORD="$PGPASSWORD" \
    PGDATABASE="$PGDATABASE" PGSSLMODE=disable PASS_DB="$PASS_DB" \
    DATABASE_URL="postgresql://$PGUSER:$PGPASSWORD@127.0.0.1:$port/$PGDATABASE"
  printf '{"host": ["127.0.0.1"], "port": [%d], "username": ["%s"], "database": ["%s"], "pass": ["%s"]}\n' \
    "$port" "$PGUSER" "$PGDATABASE" "$PASS_DB" >"$STATE/config/db.json"
  say "postgres ready on 127.0.0.1:$port (database $PGDATABASE, user $PGUSER)"
}

# ---- S3 ------------------------------------------------------------------------
s3_install() {
  local dir="$SVC/s3"
  command -v node >/dev/null || die "node not installed (scripts/setup.sh installs nodejs)"
  command -v npm >/dev/null || die "npm not installed (apt-get install npm, or a nodejs that ships it)"
  if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
    [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    say "installing the S3 server's npm packages"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >"$STATE/npm.log" 2>&1) ||
      die "npm ci failed (log: $STATE/npm.log)"
  fi
}

start_s3() {
  local d="$STATE/s3" b args=() port
  s3_install
  mkdir -p "$d/data"
  rm -f "$d/port"
  for b in ${S3_BUCKETS:-ember-in ember-out}; do args+=(--bucket "$b"); done
  # Keys through the environment, not argv (ps shows argv).
  spawn s3 "$d/server.log" env S3_ACCESS_KEY="$S3_ACCESS_KEY" S3_SECRET_KEY="$S3_SECRET_KEY" \
    node "$SVC/s3/server.js" --port 0 --dir "$d/data" --region "$S3_REGION" \
    --ready-file "$d/port" "${args[@]}"
  wait_file "$d/port" "$(pid_of s3)" 30 "the S3 server" "$d/server.log"
  port=$(cat "$d/port")
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" = 403 ] ||
    die "the S3 server does not answer as expected (log: $d/server.log)"
  env_fragment s3 S3_ENDPOINT="http://127.0.0.1:$port" S3_REGION="$S3_REGION" \
    S3_ACCESS_KEY="$S3_ACCESS_KEY" S3_SECRET_KEY="$S3_SECRET_KEY" \
    S3_BUCKETS="${S3_BUCKETS:-ember-in ember-out}" \
    PASS_S3_ACCESS_KEY="$PASS_S3_ACCESS_KEY" PASS_S3_SECRET_KEY="$PASS_S3_SECRET_KEY"
  printf '{"host": ["http://127.0.0.1:%d"], "pass:access-key": ["%s"], "pass:secret-key": ["%s"]}\n' \
    "$port" "$PASS_S3_ACCESS_KEY" "$PASS_S3_SECRET_KEY" >"$STATE/config/object-storage.json"
  say "s3 ready on http://127.0.0.1:$port (region $S3_REGION, buckets: ${S3_BUCKETS:-ember-in ember-out})"
}

# ---- configuration service -----------------------------------------------------
write_example_service() {
  local c="$STATE/config" buckets
  read -ra buckets <<<"${S3_BUCKETS:-ember-in ember-out}"
  mkdir -p "$c/$EXAMPLE_SERVICE"
  cat >"$c/$EXAMPLE_SERVICE.json" <<EOF
{"in": "$EXAMPLE_SERVICE-in", "out": [
  {"case": true, "queues": ["$EXAMPLE_SERVICE-true"]},
  {"case": 1, "queues": ["$EXAMPLE_SERVICE-int-1"]},
  {"case": "1", "queues": ["$EXAMPLE_SERVICE-str-1", "$EXAMPLE_SERVICE-str-1-copy"]}
]}
EOF
  printf '%s\n' "${buckets[0]}" >"$c/$EXAMPLE_SERVICE/in"
  printf '%s\n' "${buckets[1]:-${buckets[0]}}" >"$c/$EXAMPLE_SERVICE/out"
}

start_config() {
  local d="$STATE/config-service" port
  mkdir -p "$d"
  rm -f "$d/port"
  write_example_service
  spawn config "$d/server.log" "$PY" "$SVC/config_server.py" --dir "$STATE/config" --ready-file "$d/port"
  wait_file "$d/port" "$(pid_of config)" 20 "the config service" "$d/server.log"
  port=$(cat "$d/port")
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/$EXAMPLE_SERVICE")" = 200 ] ||
    die "the config service does not answer (log: $d/server.log)"
  env_fragment config CONFIG_HOST="http://127.0.0.1:$port" CONFIG_DIR="$STATE/config" \
    EXAMPLE_SERVICE="$EXAMPLE_SERVICE"
  say "config service on http://127.0.0.1:$port serving $STATE/config"
}

# ---- pass ----------------------------------------------------------------------
start_pass() {
  export GNUPGHOME="$STATE/gnupg" PASSWORD_STORE_DIR="$STATE/password-store"
  command -v pass >/dev/null || die "pass not installed (scripts/setup.sh installs pass)"
  mkdir -p -m 700 "$GNUPGHOME"
  local fpr
  fpr=$(gpg --batch --with-colons --list-secret-keys 2>/dev/null | awk -F: '/^fpr/ {print $10; exit}')
  if [ -z "$fpr" ]; then
    # ed25519 + cv25519: gpg 2.2's "default" is RSA-3072, seconds of prime search.
    local q=(gpg --batch --pinentry-mode loopback --passphrase '')
    "${q[@]}" --quick-gen-key 'Ember test services <ember-services@localhost>' ed25519 cert never \
      >"$STATE/gpg.log" 2>&1 || die "gpg key generation failed (log: $STATE/gpg.log)"
    fpr=$(gpg --batch --with-colons --list-secret-keys 2>/dev/null | awk -F: '/^fpr/ {print $10; exit}')
    "${q[@]}" --quick-add-key "$fpr" cv25519 encr never >>"$STATE/gpg.log" 2>&1 ||
      die "gpg subkey generation failed (log: $STATE/gpg.log)"
  fi
  [ -f "$PASSWORD_STORE_DIR/.gpg-id" ] || pass init "$fpr" >>"$STATE/gpg.log" 2>&1 ||
    die "pass init failed (log: $STATE/gpg.log)"
  local entry value
  while read -r entry value; do
    printf '%s\n' "$value" | pass insert -m -f "$entry" >>"$STATE/gpg.log" 2>&1 ||
      die "pass insert $entry failed (log: $STATE/gpg.log)"
  done <<EOF
$PASS_RABBITMQ $RABBITMQ_PASSWORD
$PASS_DB $PGPASSWORD
$PASS_S3_ACCESS_KEY $S3_ACCESS_KEY
$PASS_S3_SECRET_KEY $S3_SECRET_KEY
EOF
  # No daemon of its own; gpg started an agent for this GNUPGHOME, stopped by `stop`.
  : >"$STATE/pass.ready"
  env_fragment pass GNUPGHOME="$GNUPGHOME" PASSWORD_STORE_DIR="$PASSWORD_STORE_DIR" \
    PASS_RABBITMQ="$PASS_RABBITMQ" PASS_DB="$PASS_DB" \
    PASS_S3_ACCESS_KEY="$PASS_S3_ACCESS_KEY" PASS_S3_SECRET_KEY="$PASS_S3_SECRET_KEY"
  say "pass store $PASSWORD_STORE_DIR (GNUPGHOME $GNUPGHOME): $PASS_RABBITMQ $PASS_DB $PASS_S3_ACCESS_KEY $PASS_S3_SECRET_KEY"
}

# ---- commands ------------------------------------------------------------------
cmd_start() {
  local want=("$@") s t0
  [ ${#want[@]} -eq 0 ] && want=("${ALL[@]}")
  for s in "${want[@]}"; do
    [[ " ${ALL[*]} " == *" $s "* ]] || die "unknown service '$s' (known: ${ALL[*]})"
  done
  t0=$(now_ms)
  init_state
  say "state in $STATE"
  has() { [[ " ${want[*]} " == *" $1 "* ]]; }
  # RabbitMQ boots slowest: launch it first, bring up the rest meanwhile.
  RABBIT_PORT=
  if has rabbitmq; then
    if running rabbitmq; then say "rabbitmq already running"; else start_rabbitmq; fi
  fi
  if has pass; then
    # pass has no process to reuse: (re)writing the entries is cheap and idempotent.
    start_pass
  fi
  if has postgres; then
    if running postgres; then say "postgres already running"; else start_postgres; fi
  fi
  if has s3; then
    if running s3; then say "s3 already running"; else start_s3; fi
  fi
  if has config; then
    if running config; then say "config service already running"; else start_config; fi
  fi
  [ -n "$RABBIT_PORT" ] && wait_rabbitmq
  write_env
  say "started in $(($(now_ms) - t0)) ms; env: $STATE/env"
  echo "$STATE/env"
}

# stop_pid NAME SIGNAL: signal the service's process group, wait for it.
stop_pid() {
  local name=$1 sig=$2 pid i
  pid=$(pid_of "$name")
  rm -f "$STATE/pids/$name.pid"
  alive "$pid" || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    alive "$pid" || break
    sleep 0.05
  done
  if alive "$pid"; then
    say "$name ($pid) ignored SIG$sig for 15 s: killing"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # What it left in its own session (Erlang's helpers): only that group.
  local left
  left=$(ps -eo pid=,sid= | awk -v s="$pid" '$2 == s {print $1}')
  [ -n "$left" ] && kill -KILL $left 2>/dev/null || true
}

cmd_stop() {
  [ -d "$STATE/pids" ] || {
    say "nothing to stop in $STATE"
    return 0
  }
  local t0
  t0=$(now_ms)
  stop_pid config TERM
  stop_pid s3 TERM
  stop_pid postgres INT # fast shutdown
  stop_pid rabbitmq TERM
  stop_pid epmd TERM
  if [ -d "$STATE/gnupg" ]; then
    # Asks this GNUPGHOME's own agent (by its socket) to exit.
    GNUPGHOME="$STATE/gnupg" gpgconf --kill all 2>/dev/null || true
  fi
  rm -f "$STATE/pass.ready" "$STATE/env"
  say "stopped in $(($(now_ms) - t0)) ms"
}

cmd_status() {
  local s
  for s in "${ALL[@]}" epmd; do
    if running "$s"; then echo "$s: running"; else echo "$s: stopped"; fi
  done
}

cmd_check() {
  [ -f "$STATE/env" ] || die "no env file: run '$0 start' first"
  (
    # shellcheck disable=SC1091
    . "$STATE/env"
    "$PY" "$SVC/probe.py" check
  )
}

case "${1:-}" in
  start)
    shift
    cmd_start "$@"
    ;;
  stop) cmd_stop ;;
  env)
    [ -f "$STATE/env" ] || die "no env file: run '$0 start' first"
    echo "$STATE/env"
    ;;
  check) cmd_check ;;
  status) cmd_status ;;
  *)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac

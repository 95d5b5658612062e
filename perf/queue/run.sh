#!/usr/bin/env bash
# Builds the queue relay benchmark (if needed) and runs bench_queue.py; see perf/queue/README.md.
#
#   perf/queue/run.sh                    # 3 rounds x 2 modes x 2 relays, 50,000 messages (~3-5 min)
#   perf/queue/run.sh --quick            # smoke run (3,000 messages, 1 round), as the test suite runs it
#   perf/queue/run.sh --suite python     # Python on Ember (slingshot_microservice) vs pika
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
source "$HERE/../bench_lib.sh"

bench_args perf/queue/run.sh "$@"
bench_build perf/queue/run.sh queue ember-queue-tools ember-queue-relays \
  queue/ember-queue-driver queue/ember-relay-rabbitmq-c edge/ember-sched
exec /usr/bin/python3 "$HERE/bench_queue.py" --build "$build" "${args[@]+"${args[@]}"}"

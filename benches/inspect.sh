#!/usr/bin/env bash
# Speed of `goprobe inspect` against the Go toolchain's own tools (release
# build), each pair run side by side with hyperfine, interleaved over rounds
# (ROUNDS rounds of RUNS runs of each command, so a burst of load on the
# machine hits both), reported as the median and spread (25th-75th
# percentile, min-max) of all runs:
#   * `goprobe inspect --json BIN`       vs `go version -m BIN`   (build info
#     and the per-probe verdicts against build info alone)
#   * `goprobe inspect --functions BIN`  vs `go tool nm TWIN`     (function table;
#     nm needs the unstripped twin, goprobe reads the stripped binary's pclntab)
# on the largest corpus binary and its stripped variant, the newest corpus
# toolchain's `compile` (~25 MB, symbols, no DWARF), the same `cmd/compile`
# built with DWARF (~33 MB unstripped; built once into the cache), and the
# Debian-packaged Go servers the tests install (/usr/bin/prometheus, 50 MB
# stripped; caddy; etcd) when present. Prints the load average too.
#
# Each command's CPU time (user + system, hyperfine's mean per round, then
# the median of the rounds) is printed beside its wall time: it is what a
# loaded machine disturbs least.
#
# Usage: benches/inspect.sh [BIN GO_VERSION]
# Env: ROUNDS (default 5), RUNS (default 10); NM=0 skips the function-table
# pairs; BASE=PATH runs another goprobe build (say main's release binary)
# in the same rounds as a third command, to compare a change with its base.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
cache=${GOPROBE_CACHE:-$repo/.cache}
manifest=$cache/corpus/manifest.tsv
rounds=${ROUNDS:-5}
runs=${RUNS:-10}
export GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off

command -v hyperfine >/dev/null || { echo "bench: hyperfine missing (scripts/setup.sh installs it)" >&2; exit 2; }
command -v jq >/dev/null || { echo "bench: jq missing (scripts/setup.sh installs it)" >&2; exit 2; }
[ -f "$manifest" ] || { echo "bench: corpus missing: $manifest (tests/fixtures/build-corpus.sh)" >&2; exit 2; }

cargo build --release --quiet
goprobe=$repo/target/release/goprobe
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# pair LABEL NAME_A CMD_A NAME_B CMD_B [NAME_C CMD_C]: interleaved rounds,
# then one line per command: median, interquartile range and min-max of the
# wall times in ms, the median CPU time, and the ratio of A to B.
pair() {
  local label=$1 r
  shift
  local args=()
  while [ $# -ge 2 ]; do
    args+=(-n "$1" "$2")
    shift 2
  done
  rm -f "$out"/r*.json
  for r in $(seq "$rounds"); do
    hyperfine -N --warmup 2 --runs "$runs" --export-json "$out/r$r.json" \
      "${args[@]}" >/dev/null 2>&1
  done
  jq -rs --arg what "$label" '
    def q($p): sort | .[((length - 1) * $p | floor)];
    def ms: . * 1000 * 100 | round / 100;
    [.[].results] | transpose
    | map({name: .[0].command, t: (map(.times) | add), cpu: map(.user + .system)})
    | "  \($what)",
      (.[] | "    \(.name): median \(.t | q(0.5) | ms) ms (IQR \(.t | q(0.25) | ms)-\(.t | q(0.75) | ms), range \(.t | min | ms)-\(.t | max | ms), \(.t | length) runs); CPU \(.cpu | q(0.5) | ms) ms"),
      "    ratio of medians (toolchain / goprobe; above 1: goprobe faster): \((.[0].t | q(0.5)) / (.[1].t | q(0.5)) * 100 | round / 100)"
  ' "$out"/r*.json
}

# bench LABEL BIN TWIN GO_VERSION [skip-nm]
bench() {
  local label=$1 bin=$2 twin=$3 ver=$4
  local go=$cache/go/$ver/go/bin/go
  echo "== $label: $bin ($(du -h "$bin" | cut -f1), Go $ver); load average $(cut -d' ' -f1-3 /proc/loadavg)"
  local base_json=() base_fns=()
  if [ -n "${BASE:-}" ]; then
    base_json=("base: goprobe inspect --json" "$BASE inspect --json $bin")
    base_fns=("base: goprobe inspect --functions" "$BASE inspect --functions $bin")
  fi
  pair "build info" "go version -m" "$go version -m $bin" "goprobe inspect --json" "$goprobe inspect --json $bin" "${base_json[@]}"
  if [ -z "${5:-}" ] && [ "${NM:-1}" != 0 ]; then
    local fns
    fns=$("$goprobe" inspect --functions "$bin" | wc -l)
    pair "functions ($fns)" "go tool nm (unstripped twin)" "$go tool nm $twin" "goprobe inspect --functions" "$goprobe inspect --functions $bin" "${base_fns[@]}"
  fi
}

if [ $# -ge 2 ]; then
  bench "given binary" "$1" "$1" "$2"
  exit 0
fi

# Largest corpus binary (by file size) and, when it has one, its stripped variant.
read -r ver prog variant bin twin _ < <(sort -t$'\t' -k1,1 "$manifest" | while IFS=$'\t' read -r v p va b t a; do
  printf '%s %s\t%s %s %s %s %s %s\n' "$(stat -c %s "$b")" "$b" "$v" "$p" "$va" "$b" "$t" "$a"; done | sort -n | tail -1 | cut -f2)
bench "largest corpus binary ($prog $variant)" "$bin" "$twin" "$ver"
stripped=$(awk -F'\t' -v v="$ver" -v p="$prog" -v t="$twin" '$1==v && $2==p && $5==t && $3 ~ /stripped/ {print $4; exit}' "$manifest")
if [ -n "$stripped" ]; then
  bench "its stripped variant" "$stripped" "$twin" "$ver"
fi

# A large real Go program: the compiler of the newest corpus toolchain, as
# shipped (symbols, no DWARF) and built with DWARF (unstripped, compressed
# DWARF: the verdicts cross-check DWARF against the type descriptors).
newest=$(cut -f1 "$manifest" | sort -V | tail -1)
compile=$cache/go/$newest/go/pkg/tool/linux_amd64/compile
if [ -f "$compile" ]; then
  bench "large real Go binary (cmd/compile as shipped)" "$compile" "$compile" "$newest"
  dwarf_bin=$cache/bench/compile-dwarf-$newest
  if [ ! -f "$dwarf_bin" ]; then
    mkdir -p "$cache/bench"
    echo "bench: building cmd/compile with DWARF ($newest) into $dwarf_bin" >&2
    GOCACHE=${GOCACHE:-$cache/gocache} "$cache/go/$newest/go/bin/go" build -o "$dwarf_bin" cmd/compile
  fi
  bench "large unstripped Go binary (cmd/compile with DWARF)" "$dwarf_bin" "$dwarf_bin" "$newest"
fi

# Go servers as Debian packages them (GOPATH builds, stripped).
for deb in /usr/bin/prometheus /usr/bin/caddy /usr/bin/etcd; do
  [ -f "$deb" ] && bench "Debian package ($(basename "$deb"), stripped)" "$deb" "$deb" "$newest" skip-nm
done
exit 0

#!/usr/bin/env bash
# Benchmark: `goprobe offsets` for every catalog field on the largest corpus
# binary (with DWARF), against `pahole -C` (dwarves) printing the same
# structs from the same binary, run side by side. Reports the median wall
# time of each over N runs and their ratio. Not a test: nothing is asserted.
#
# Usage: benches/offsets.sh [BIN] [N]   (default: largest DWARF binary in the corpus manifest, N=20)
# Environment: GOPROBE_CACHE (default <repo>/.cache); GOPROBE (a goprobe binary;
# default: cargo build --release and target/release/goprobe).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${GOPROBE_CACHE:-$repo/.cache}
manifest="$cache/corpus/manifest.tsv"
n=${2:-20}

if ! command -v pahole >/dev/null; then
  echo "bench: pahole missing: apt-get install dwarves (scripts/setup.sh does)" >&2
  exit 2
fi
bin=${1:-}
if [ -z "$bin" ]; then
  [ -f "$manifest" ] || { echo "bench: no corpus at $manifest: run tests/fixtures/build-corpus.sh" >&2; exit 2; }
  # Unstripped amd64 builds only: pahole needs DWARF.
  bin=$(awk -F'\t' '$3 !~ /stripped/ && $6 == "amd64" {print $4}' "$manifest" | xargs ls -S | head -1)
fi
goprobe=${GOPROBE:-}
if [ -z "$goprobe" ]; then
  (cd "$repo" && cargo build --quiet --release --bin goprobe)
  goprobe="$repo/target/release/goprobe"
fi

# The structs the catalog's fields live in, as goprobe reports them.
fields=$("$goprobe" offsets --json "$bin" | jq -r .field)
structs=$(printf '%s\n' "$fields" | sed -E 's#^(([^/]*/)*[^.]*\.[^.]*)\..*#\1#' | sort -u | paste -sd, -)

now_ms() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=int((NR+1)/2); printf "%.2f", a[m]/1e6}'; }

time_runs() {
  local i t0 t1
  for i in $(seq "$n"); do
    t0=$(now_ms); "$@" >/dev/null 2>&1 || true; t1=$(now_ms)
    echo $((t1 - t0))
  done
}

# Warm the page cache for both.
"$goprobe" offsets "$bin" >/dev/null 2>&1 || true
pahole -C "$structs" "$bin" >/dev/null 2>&1 || true

g=$(time_runs "$goprobe" offsets --json "$bin" | median)
p=$(time_runs pahole -C "$structs" "$bin" | median)
size=$(stat -c %s "$bin")
nf=$(printf '%s\n' "$fields" | wc -l)
echo "binary:  $bin ($((size / 1024 / 1024)) MB, $(file -b "$bin" | cut -d, -f1-2))"
echo "fields:  $nf catalog fields in structs $structs"
echo "goprobe offsets --json:   median ${g} ms over $n runs"
echo "pahole -C (same structs): median ${p} ms over $n runs"
awk -v g="$g" -v p="$p" 'BEGIN { if (g > 0) printf "ratio pahole/goprobe: %.1fx (goprobe %s)\n", p / g, (g < p ? "faster" : "slower") }'

#!/usr/bin/env bash
# Fuzz goprobe's parsers of untrusted bytes for a bounded time: the `parsers`
# target (build info, module info, pclntab, moduledata, type and struct
# descriptors on raw bytes), the `binary` target (whole files through
# GoBinary::from_bytes) and the `runtime_memory` target (the readers of heap
# buckets, goroutine records and stacks on arbitrary target memory, with a
# stripped goruntime fixture's code and layouts). Seeds come from the fixture
# corpus: real `.go.buildinfo` and `.gopclntab` sections and a small stripped
# binary. Stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz
# use the sanitizer flags it needs.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 120)
# Exit status: 0 no crash found, 1 a crash (artifact in fuzz/artifacts/), 2 setup error.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
cache=${GOPROBE_CACHE:-$repo/.cache}
secs=${1:-120}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install --quiet cargo-fuzz
fi
manifest=$cache/corpus/manifest.tsv
[ -f "$manifest" ] || { echo "fuzz: corpus missing: $manifest (tests/fixtures/build-corpus.sh)" >&2; exit 2; }

mkdir -p fuzz/corpus/parsers fuzz/corpus/binary fuzz/corpus/runtime_memory
logs_tmp=$(mktemp -d)
# Seeds: sections of one stripped hello per Go version, and the smallest binary whole.
while IFS=$'\t' read -r ver prog variant bin _twin _arch; do
  [ "$prog" = hello ] && [ "$variant" = stripped ] || continue
  for sec in .go.buildinfo .gopclntab; do
    objcopy -O binary --only-section="$sec" "$bin" "fuzz/corpus/parsers/go$ver$sec" 2>/dev/null || true
  done
  # Type descriptors (and the names they point at) live in .rodata: its
  # first 64 KiB as a seed for the descriptor and struct readers.
  if objcopy -O binary --only-section=.rodata "$bin" "$logs_tmp/rodata" 2>/dev/null; then
    head -c 65536 "$logs_tmp/rodata" > "fuzz/corpus/parsers/go$ver.rodata"
  fi
done < "$manifest"
# Inputs that once crashed a parser stay in the seed set.
cp fuzz/regressions/parsers-* fuzz/corpus/parsers/ 2>/dev/null || true
smallest=$(cut -f4 "$manifest" | xargs ls -S | tail -1)
cp "$smallest" fuzz/corpus/binary/smallest
max_len=$(( $(stat -c %s "$smallest") + 4096 ))

status=0
logs=$(mktemp -d)
trap 'rm -rf "$logs" "$logs_tmp"' EXIT
run() {
  local target=$1; shift
  echo "fuzz: $target for ${secs}s" >&2
  if ! RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz "$target" -- \
      -max_total_time="$secs" -print_final_stats=1 "$@" >"$logs/$target" 2>&1; then
    status=1
  fi
  tail -n 25 "$logs/$target" >&2
}
run parsers -max_len=1048576
run binary -max_len="$max_len"
# The runtime readers take a real binary's code and layouts.
GOPROBE_FUZZ_BINARY=$(awk -F'\t' '$2 == "goruntime" && $3 == "stripped" {print $4}' "$manifest" | sort | tail -1)
[ -n "$GOPROBE_FUZZ_BINARY" ] || { echo "fuzz: no stripped goruntime in the corpus" >&2; exit 2; }
export GOPROBE_FUZZ_BINARY
# Seeds shaped like runtime memory (buckets, allgs, goroutines and stacks
# with the binary's layouts and pcs), and one random.
cargo build --quiet --bin goprobe
python3 scripts/fuzz-seeds-runtime.py target/debug/goprobe "$GOPROBE_FUZZ_BINARY" fuzz/corpus/runtime_memory
head -c 4096 /dev/urandom > fuzz/corpus/runtime_memory/random
run runtime_memory -max_len=65536 -timeout=10
if compgen -G "fuzz/artifacts/*/crash-*" >/dev/null; then
  echo "fuzz: crashes found:" fuzz/artifacts/*/crash-* >&2
  status=1
fi
exit $status

#!/usr/bin/env bash
# Speed of `goprobe inspect` against the Go toolchain's own tools, run side by
# side with hyperfine (release build):
#   * `goprobe inspect --json BIN`       vs `go version -m BIN`   (build info)
#   * `goprobe inspect --functions BIN`  vs `go tool nm TWIN`     (function table;
#     nm needs the unstripped twin, goprobe reads the stripped binary's pclntab)
# on the largest corpus binary and its stripped variant, and on a large real Go
# binary (the newest corpus toolchain's `compile`, ~25 MB) unless BIN is given.
#
# Usage: benches/inspect.sh [BIN GO_VERSION]
# Prints hyperfine's tables and the ratios (baseline mean / goprobe mean).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
cache=${GOPROBE_CACHE:-$repo/.cache}
manifest=$cache/corpus/manifest.tsv
export GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off

command -v hyperfine >/dev/null || { echo "bench: hyperfine missing (scripts/setup.sh installs it)" >&2; exit 2; }
[ -f "$manifest" ] || { echo "bench: corpus missing: $manifest (tests/fixtures/build-corpus.sh)" >&2; exit 2; }

cargo build --release --quiet
goprobe=$repo/target/release/goprobe
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# mean seconds of command N (0-based) in a hyperfine JSON export
mean() { jq -r ".results[$2].mean" "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", a / b }'; }
ms() { awk -v a="$1" 'BEGIN { printf "%.2f ms", a * 1000 }'; }

# bench LABEL BIN TWIN GO_VERSION
bench() {
  local label=$1 bin=$2 twin=$3 ver=$4
  local go=$cache/go/$ver/go/bin/go
  echo "== $label: $bin ($(du -h "$bin" | cut -f1), Go $ver)"
  hyperfine -N --warmup 5 --min-runs 30 --export-json "$out/bi.json" \
    -n "go version -m" "$go version -m $bin" \
    -n "goprobe inspect --json" "$goprobe inspect --json $bin" >&2
  hyperfine -N --warmup 5 --min-runs 30 --export-json "$out/fn.json" \
    -n "go tool nm (unstripped twin)" "$go tool nm $twin" \
    -n "goprobe inspect --functions" "$goprobe inspect --functions $bin" >&2
  local fns
  fns=$("$goprobe" inspect --functions "$bin" | wc -l)
  echo "  build info: go version -m $(ms "$(mean "$out/bi.json" 0)"), goprobe $(ms "$(mean "$out/bi.json" 1)"): goprobe $(ratio "$(mean "$out/bi.json" 0)" "$(mean "$out/bi.json" 1)") faster"
  echo "  functions ($fns): go tool nm $(ms "$(mean "$out/fn.json" 0)"), goprobe $(ms "$(mean "$out/fn.json" 1)"): goprobe $(ratio "$(mean "$out/fn.json" 0)" "$(mean "$out/fn.json" 1)") faster"
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

# A large real Go program: the compiler of the newest corpus toolchain.
newest=$(cut -f1 "$manifest" | sort -V | tail -1)
compile=$cache/go/$newest/go/pkg/tool/linux_amd64/compile
if [ -f "$compile" ]; then
  bench "large real Go binary (cmd/compile)" "$compile" "$compile" "$newest"
fi

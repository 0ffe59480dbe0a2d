#!/usr/bin/env bash
# Whether two goprobe builds say the same about every Go binary at hand: a
# change meant only to make `inspect` or `offsets` faster must not change a
# byte of what they print. For each binary (every one in the corpus
# manifest, its unstripped twins, the patch-release sample when built,
# Debian's Go servers and every command of each corpus Go toolchain) it runs
#   inspect --json BIN, inspect BIN, offsets --json BIN
# with both builds and compares stdout, stderr and exit status byte for
# byte. Prints each difference (with a diff of the first lines) and the
# count of comparisons; exits 1 when any differ.
#
# Usage: scripts/inspect-identical.sh BASE_GOPROBE NEW_GOPROBE [BIN...]
#   (BIN...: only these binaries instead of the list above)
# Env: GOPROBE_CACHE (default .cache/, where the corpus and toolchains are).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${GOPROBE_CACHE:-$repo/.cache}
[ $# -ge 2 ] || { echo "usage: $0 BASE_GOPROBE NEW_GOPROBE [BIN...]" >&2; exit 2; }
base=$1 new=$2
shift 2
for g in "$base" "$new"; do
  [ -x "$g" ] || { echo "inspect-identical: $g is not executable" >&2; exit 2; }
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

if [ $# -gt 0 ]; then
  printf '%s\n' "$@" >"$out/bins"
else
  {
    for m in manifest.tsv patches.tsv; do
      f=$cache/corpus/$m
      [ -f "$f" ] && cut -f4,5 "$f" | tr '\t' '\n'
    done
    for deb in /usr/bin/prometheus /usr/bin/caddy /usr/bin/etcd /usr/bin/etcd-server; do
      [ -f "$deb" ] && echo "$deb"
    done
    for tool in "$cache"/go/*/go/bin/* "$cache"/go/*/go/pkg/tool/*/*; do
      [ -f "$tool" ] && echo "$tool"
    done
  } | awk '!seen[$0]++' >"$out/bins"
fi
[ -s "$out/bins" ] || { echo "inspect-identical: no binaries (corpus missing: tests/fixtures/build-corpus.sh)" >&2; exit 2; }

# run GOPROBE TAG ARGS...: stdout, stderr and exit status into $out/TAG.*
run() {
  local g=$1 tag=$2
  shift 2
  local rc=0
  "$g" "$@" >"$out/$tag.out" 2>"$out/$tag.err" || rc=$?
  echo "$rc" >"$out/$tag.rc"
}

same=0 differ=0 bins=0
while IFS= read -r bin; do
  bins=$((bins + 1))
  for args in "inspect --json" "inspect" "offsets --json"; do
    # shellcheck disable=SC2086 # the subcommand and its flag are two words
    run "$base" a $args "$bin"
    # shellcheck disable=SC2086
    run "$new" b $args "$bin"
    ok=1
    for part in out err rc; do
      if ! cmp -s "$out/a.$part" "$out/b.$part"; then
        ok=0
        echo "DIFFERENT ($part): goprobe $args $bin" >&2
        diff "$out/a.$part" "$out/b.$part" | head -20 >&2 || true
      fi
    done
    if [ "$ok" = 1 ]; then same=$((same + 1)); else differ=$((differ + 1)); fi
  done
done <"$out/bins"
echo "inspect-identical: $bins binaries, $((same + differ)) comparisons (stdout, stderr, exit status): $same identical, $differ different"
[ "$differ" = 0 ]

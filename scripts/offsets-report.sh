#!/usr/bin/env bash
# Where the offsets goprobe reads come from, over the fixture corpus and the
# patch-release sample: for every binary, `goprobe offsets --json` (the
# catalog fields of the probes in the binary), counted by source, with how
# many answers were cross-checked by a second source and how many sources
# disagreed (expected: 0). For the closing note of offsets work.
#
# Usage: scripts/offsets-report.sh   (GOPROBE: a goprobe binary; default: cargo build)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${GOPROBE_CACHE:-$repo/.cache}
goprobe=${GOPROBE:-}
if [ -z "$goprobe" ]; then
  (cd "$repo" && cargo build --quiet --release --bin goprobe)
  goprobe="$repo/target/release/goprobe"
fi
for m in manifest.tsv patches.tsv; do
  f="$cache/corpus/$m"
  [ -f "$f" ] || { echo "offsets-report: $f missing (tests/fixtures/build-corpus.sh)" >&2; exit 2; }
  while IFS=$'\t' read -r ver prog variant bin _twin _arch; do
    # A binary whose offsets fail (sources disagreeing are refused, never
    # picked) is counted and named, not left out of the figures.
    if out=$("$goprobe" offsets --json "$bin" 2>/tmp/offsets-report.err); then
      printf '%s\n' "$out" | sed "s|^|$m\t$ver\t$variant\t|"
    else
      printf '%s\t%s\t%s\t{"failed": %s}\n' "$m" "$ver" "$variant" \
        "$(head -1 /tmp/offsets-report.err | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()))')"
    fi
  done < "$f"
done | python3 -c '
import json, sys, collections
by = collections.defaultdict(collections.Counter)
for line in sys.stdin:
    m, ver, variant, js = line.rstrip("\n").split("\t", 3)
    r = json.loads(js)
    c = by[m]
    if "failed" in r:
        c["binaries failed"] += 1
        print(m, ver, variant, r["failed"], file=sys.stderr)
        continue
    c["fields"] += 1
    c["source:" + r["source"]] += 1
    if r.get("checked"):
        c["cross-checked"] += 1
        for s in r["checked"]:
            c[r["source"] + "=" + s] += 1
    if r.get("table") and not r["table"]["exact"] and r["source"] == "table":
        c["table, inexact release"] += 1
for m, c in by.items():
    print(m + ": " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
'

#!/usr/bin/env bash
# Benchmark-sized fault run (not part of CI): the volume test of
# tests/cli/faults.rs with a million requests instead of CI's 100,000.
# Requests while `goprobe record` runs must get byte-for-byte the answers
# of an unrecorded run, every request must be a span or a counted loss, and
# record's peak RSS stays under 200 MiB; the test prints both runs' times,
# the spans, the losses and the peak RSS.
#
# Usage (as root): benches/faults.sh [REQUESTS]   (default 1000000)
#   env: GOPROBE_CACHE (default <repo>/.cache; the corpus must be built:
#   scripts/test.sh or tests/fixtures/build-corpus.sh)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "faults.sh: run as root (eBPF)" >&2; exit 2; }
export GOPROBE_CACHE=${GOPROBE_CACHE:-$repo/.cache}
export GOPROBE_VOLUME=${1:-1000000}
cd "$repo"
# The debug build CI tests (its peak RSS is an upper bound of release's).
cargo test --locked --test cli -- --exact faults::volume_run_is_identical_and_bounded --nocapture 2>&1 |
  grep -E -A6 '^volume:|test result|panicked|FAILED'

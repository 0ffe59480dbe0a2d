#!/usr/bin/env bash
# The test command: set up a fresh machine, build the Go corpus, check the
# generated docs, and run every test (unit, corpus, CLI, eBPF end to end).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

bash scripts/setup.sh
export GOPROBE_CACHE=${GOPROBE_CACHE:-$repo/.cache}
# Corpus, Go and end-to-end tests fail (never skip) when the corpus, a Go
# toolchain or root is missing: see tests/common/mod.rs.
# --no-fail-fast: one failing target must not hide the results of the others.
cargo test --locked --all-targets --no-fail-fast 2>&1

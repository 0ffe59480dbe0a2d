#!/usr/bin/env bash
# The main job end to end on a fresh machine: install what is needed, build
# goprobe and the bundled example Go service, and look inside it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

bash scripts/setup.sh
export GOPROBE_CACHE=${GOPROBE_CACHE:-$repo/.cache}
cargo build --release --locked
goprobe=$repo/target/release/goprobe
server=$GOPROBE_CACHE/corpus/go1.26.6/httpserver/stripped

echo "== goprobe inspect (stripped Go 1.26 HTTP service)" >&2
"$goprobe" inspect "$server"
echo "== its net/http functions, from .gopclntab" >&2
"$goprobe" inspect --functions --match 'net/http.(*Transport).roundTrip' "$server"

#!/usr/bin/env bash
# Generate goprobe's embedded offsets table (src/offsets/table.json): build
# the purpose-made program tests/fixtures/programs/reflectoffsets (standard
# library only; it uses every type the probe catalog reads) with every Go
# toolchain the fixture script installed under $GOPROBE_CACHE/go, for amd64
# and arm64, and read each binary's DWARF with goprobe's own reader.
#
# Usage: scripts/gen-offsets-table.sh [--check] [--versions "1.19 1.22.10 ..."]
#   (default)  merge the entries for the toolchains present into the table
#              (entries of toolchains not installed here are kept)
#   --check    regenerate the entries for the toolchains present and exit 1
#              if the committed table differs from them in any of those slots
# Environment: GOPROBE_CACHE (default <repo>/.cache); GOPROBE (a goprobe
# binary to use; default: cargo build and target/debug/goprobe).
#
# The output is deterministic: same toolchains and sources, same bytes.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${GOPROBE_CACHE:-$repo/.cache}
table="$repo/src/offsets/table.json"
check=0
versions=""
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check=1 ;;
    --versions) versions=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "gen-offsets-table: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "gen-offsets-table: $*" >&2; }

if [ -z "$versions" ]; then
  if [ ! -d "$cache/go" ]; then
    log "no Go toolchains under $cache/go: run tests/fixtures/build-corpus.sh first"
    exit 2
  fi
  versions=$(cd "$cache/go" && for d in *; do [ -x "$d/go/bin/go" ] && echo "$d"; done | sort -V | tr '\n' ' ')
fi
if [ -z "${versions// /}" ]; then
  log "no Go toolchains found under $cache/go"
  exit 2
fi

goprobe=${GOPROBE:-}
if [ -z "$goprobe" ]; then
  (cd "$repo" && cargo build --quiet --bin goprobe)
  goprobe="$repo/target/debug/goprobe"
fi

# Fields the table holds besides the catalog's: the extra ones the
# reflect ground truth prints, so stripped binaries can be checked on them too.
extras=(
  net/http.Request.ContentLength net/http.Request.TLS net/http.Request.Response
  net/url.URL.RawPath net/url.URL.Fragment net/url.URL.User
  net/http.Response.Status net/http.Response.Proto net/http.Response.Request net/http.Response.ContentLength
  net/http.response.req net/http.response.wroteHeader net/http.response.contentLength
  net/http.pattern.method net/http.pattern.host
  net/http.Cookie.Name net/http.Cookie.Expires.ext net/http.Cookie.Expires.loc
  # goprobe heap / goroutines (src/goruntime/layout.rs): runtime state read from live processes.
  runtime.g.stack.lo runtime.g.stack.hi runtime.g.sched.sp runtime.g.sched.pc runtime.g.sched.bp
  runtime.g.syscallsp runtime.g.syscallpc runtime.g.atomicstatus runtime.g.waitsince runtime.g.waitreason
  runtime.g.gopc runtime.g.startpc runtime.g.parentGoid runtime.g.lockedm runtime.g.m runtime.m.procid
  runtime.bucket.allnext runtime.bucket.typ runtime.bucket.size runtime.bucket.nstk
  runtime.memRecord.active runtime.memRecord.future runtime.memRecord.active.allocs
  runtime.memRecord.active.frees runtime.memRecord.active.alloc_bytes runtime.memRecord.active.free_bytes
)
extra_args=()
for f in "${extras[@]}"; do extra_args+=(--field "$f"); done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src="$tmp/src"
cp -r "$repo/tests/fixtures/programs/reflectoffsets" "$src"

entries=()
for v in $versions; do
  gobin="$cache/go/$v/go/bin/go"
  if [ ! -x "$gobin" ]; then log "Go $v is not installed under $cache/go"; exit 2; fi
  goroot="$cache/go/$v/go"
  goversion=$(env -u GOFLAGS GOROOT="$goroot" GOTOOLCHAIN=local "$gobin" env GOVERSION)
  for arch in amd64 arm64; do
    out="$tmp/reflectoffsets-$v-$arch"
    log "$goversion $arch"
    (
      cd "$src"
      env -u GOFLAGS GOROOT="$goroot" PATH="$goroot/bin:$PATH" GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off \
        GOPATH="$cache/gopath" GOCACHE="$cache/gocache" GOOS=linux GOARCH="$arch" CGO_ENABLED=0 \
        "$gobin" build -o "$out" .
    )
    "$goprobe" offsets-table entry --go "$goversion" --goarch "$arch" "${extra_args[@]}" "$out" > "$out.json"
    entries+=("$out.json")
  done
done

if [ "$check" = 1 ]; then
  if "$goprobe" offsets-table check --table "$table" "${entries[@]}"; then
    log "committed table matches the generator for: $versions"
  else
    log "committed table differs from the generator (run scripts/gen-offsets-table.sh and commit)"
    exit 1
  fi
else
  "$goprobe" offsets-table merge --table "$table" "${entries[@]}"
  log "wrote $table ($versions x amd64 arm64)"
fi

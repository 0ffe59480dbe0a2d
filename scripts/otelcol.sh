#!/usr/bin/env bash
# Build the OpenTelemetry Collector that tests/cli/collector.rs runs (the
# OTLP receiver and the file exporter, tests/fixtures/otelcol/builder.yaml)
# with the Collector's builder, from the Go module proxy.
#
# Output: $GOPROBE_CACHE/otelcol/<first 16 hex digits of the manifest's
# sha256>/otelcol-goprobe. A cold build costs minutes of CPU, so the binary
# is also kept in a cache outside the work tree ($GOPROBE_TOOLS_CACHE,
# default /var/cache/goprobe) that fresh clones on the same machine reuse;
# only a fresh machine (or a changed manifest) pays the build.
#
# Usage: scripts/otelcol.sh   (prints the binary's path)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${GOPROBE_CACHE:-$repo/.cache}
tools=${GOPROBE_TOOLS_CACHE:-/var/cache/goprobe}
manifest=$repo/tests/fixtures/otelcol/builder.yaml
key=$(sha256sum "$manifest" | cut -c1-16)
dest=$cache/otelcol/$key
bin=$dest/otelcol-goprobe
log() { echo "otelcol: $*" >&2; }

if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
mkdir -p "$dest"
if [ -x "$tools/otelcol/$key/otelcol-goprobe" ]; then
  cp "$tools/otelcol/$key/otelcol-goprobe" "$bin.tmp" && mv "$bin.tmp" "$bin"
  log "reused $tools/otelcol/$key/otelcol-goprobe"
  echo "$bin"; exit 0
fi

# The newest corpus toolchain when present, else the machine's go.
gotool=go
for v in 1.26.6 1.27.3; do
  [ -x "$cache/go/$v/go/bin/go" ] && gotool=$cache/go/$v/go/bin/go
done
command -v "$gotool" >/dev/null || { log "no Go toolchain: run scripts/setup.sh"; exit 2; }
goroot=$("$gotool" env GOROOT)
builder_version=$(sed -n 's|.*otlpreceiver \(v[0-9.]*\).*|\1|p' "$manifest")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PATH="$goroot/bin:$PATH" GOTOOLCHAIN=local GOFLAGS=-modcacherw \
  GOMODCACHE="$cache/gomodcache" GOCACHE="$cache/gocache" GOPATH="$cache/gopath"
start=$(date +%s)
log "building the Collector builder $builder_version and the Collector with $("$gotool" version) (a few minutes, once)"
GOBIN="$work/bin" go install "go.opentelemetry.io/collector/cmd/builder@$builder_version" >&2
# TMPDIR: the builder leaves a temporary directory behind; keep it in $work.
(cd "$work" && TMPDIR="$work" "$work/bin/builder" --config "$manifest" >"$work/builder.log" 2>&1) \
  || { cat "$work/builder.log" >&2; log "the Collector build failed"; exit 2; }
mv "$work/out/otelcol-goprobe" "$bin.tmp" && mv "$bin.tmp" "$bin"
log "built $bin in $(( $(date +%s) - start ))s"
if mkdir -p "$tools/otelcol/$key" 2>/dev/null; then
  cp "$bin" "$tools/otelcol/$key/otelcol-goprobe.tmp.$$" \
    && mv "$tools/otelcol/$key/otelcol-goprobe.tmp.$$" "$tools/otelcol/$key/otelcol-goprobe"
fi
echo "$bin"

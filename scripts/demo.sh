#!/usr/bin/env bash
# The main job in one command (as root): build goprobe and the example Go
# service (tests/fixtures/programs/httpserver: an HTTP server whose /call
# route calls out over HTTP, and whose /panic and /recovered routes panic),
# run it, drive traffic at it on loopback while `goprobe record` watches it
# (one request arrives with a W3C traceparent and joins that trace), show
# the spans, and convert them for other tools.
# On a fresh machine it first installs everything (scripts/setup.sh).
#
# Usage: sudo scripts/demo.sh [REQUESTS]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-5}
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (eBPF uprobes)" >&2; exit 2; }
bash "$repo/scripts/setup.sh"
# Newest corpus toolchain when present (ServeMux routes need Go >= 1.22), else Debian's go.
gotool=go
for v in 1.26.6 1.25.5 1.24.11 1.23.9 1.22.10; do
  t=${GOPROBE_CACHE:-$repo/.cache}/go/$v/go/bin/go
  if [ -x "$t" ]; then gotool=$t; break; fi
done
command -v "$gotool" >/dev/null || { echo "demo: go missing: run scripts/setup.sh" >&2; exit 2; }
work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

(cd "$repo" && cargo build -q --release --locked)
goprobe=$repo/target/release/goprobe
(cd "$repo/tests/fixtures/programs/httpserver" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off "$gotool" build -o "$work/httpserver" .)

# httpmuxgo121=0: the ServeMux with patterns, so spans carry http.route.
GODEBUG=httpmuxgo121=0 "$work/httpserver" > "$work/addr" 2> "$work/server.err" &
server=$!
for _ in $(seq 50); do [ -s "$work/addr" ] && break; sleep 0.1; done
addr=$(head -1 "$work/addr")

"$goprobe" record --pid "$server" -o "$work/spans.ndjson" 2> "$work/record.err" &
rec=$!
for _ in $(seq 300); do grep -q attached "$work/record.err" && break; sleep 0.1; done
for _ in $(seq "$n"); do
  curl -s "http://$addr/hello" > /dev/null
  curl -s "http://$addr/call" > /dev/null
  curl -s "http://$addr/fail" > /dev/null || true
done
# A request that is one hop of a distributed trace started elsewhere.
curl -s -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' "http://$addr/hello" > /dev/null
# A panic the handler recovers, and one net/http recovers (no answer).
curl -s "http://$addr/recovered" > /dev/null
curl -s "http://$addr/panic" > /dev/null || true
sleep 0.5
kill -INT "$rec"; wait "$rec" || true
cat "$work/record.err" >&2
if command -v jq >/dev/null; then
  jq -c '{trace: .trace_id[0:8], span: .span_id, parent: .parent_span_id, name, kind,
          ms: ((.end_time_unix_nano - .start_time_unix_nano) / 1e6),
          status: .attributes["http.response.status_code"], code: .status.code,
          panics: [.events[] | select(.name == "exception") | .attributes["exception.message"]]}' "$work/spans.ndjson"
else
  cat "$work/spans.ndjson"
fi

echo "== the same spans converted: a pprof profile, a Chrome/Perfetto trace, OTLP/JSON" >&2
"$goprobe" convert --to pprof "$work/spans.ndjson" -o "$work/spans.pb.gz"
"$goprobe" convert --to chrome "$work/spans.ndjson" -o "$work/trace.json"
"$goprobe" convert --to otlp-json "$work/spans.ndjson" -o "$work/otlp.jsonl"
"$gotool" tool pprof -top "$work/spans.pb.gz" 2>/dev/null | head -12
ls -l "$work/spans.pb.gz" "$work/trace.json" "$work/otlp.jsonl" >&2

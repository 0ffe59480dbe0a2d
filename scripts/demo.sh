#!/usr/bin/env bash
# The main job in one command (as root): build goprobe and the example Go
# service (tests/fixtures/programs/httpserver: an HTTP server whose /call
# route calls out over HTTP, and whose /panic and /recovered routes panic),
# run it, drive traffic at it on loopback while `goprobe record` watches it
# (one request arrives with a W3C traceparent and joins that trace), show
# the spans and the per-route table, and convert them for other tools.
# On a fresh machine it first installs only what the demo needs
# (scripts/setup.sh --demo: clang, curl, jq, one Go toolchain); the test
# corpus is the test command's business (scripts/test.sh). It builds a
# debug goprobe (quick to compile; `cargo build --release` for real use).
#
# Usage: sudo scripts/demo.sh [REQUESTS]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-5}
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (eBPF uprobes)" >&2; exit 2; }
t0=$(date +%s.%N)
bash "$repo/scripts/setup.sh" --demo
t_setup=$(date +%s.%N)
# The Go on PATH when it is >= 1.22 (ServeMux routes), else setup's.
gotool=go
if ! go version 2>/dev/null | grep -Eq 'go1\.(2[2-9]|[3-9][0-9])'; then
  gotool=${GOPROBE_CACHE:-$repo/.cache}/go/1.26.6/go/bin/go
fi
command -v "$gotool" >/dev/null || { echo "demo: no Go >= 1.22: run scripts/setup.sh --demo" >&2; exit 2; }
work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# goprobe and the example service build side by side (two cores, two jobs).
echo "demo: building goprobe and the example service" >&2
(cd "$repo/tests/fixtures/programs/httpserver" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off \
  "$gotool" build -o "$work/httpserver" .) &
gobuild=$!
(cd "$repo" && cargo build -q --locked --bin goprobe)
wait "$gobuild"
goprobe=$repo/target/debug/goprobe
t_build=$(date +%s.%N)

# httpmuxgo121=0: the ServeMux with patterns, so spans carry http.route.
GODEBUG=httpmuxgo121=0 "$work/httpserver" > "$work/addr" 2> "$work/server.err" &
server=$!
for _ in $(seq 50); do [ -s "$work/addr" ] && break; sleep 0.1; done
addr=$(head -1 "$work/addr")

"$goprobe" record --pid "$server" --summary -o "$work/spans.ndjson" 2> "$work/record.err" &
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

echo "== the same spans converted: a pprof profile, a Chrome/Perfetto trace, OTLP/JSON, metrics, a waterfall" >&2
"$goprobe" convert --to pprof "$work/spans.ndjson" -o "$work/spans.pb.gz"
"$goprobe" convert --to chrome "$work/spans.ndjson" -o "$work/trace.json"
"$goprobe" convert --to otlp-json "$work/spans.ndjson" -o "$work/otlp.jsonl"
"$goprobe" convert --to metrics "$work/spans.ndjson" -o "$work/metrics.prom"
"$goprobe" convert --to html "$work/spans.ndjson" -o "$work/slowest.html"
grep -E '^(goprobe_panics_total|http_server_request_duration_seconds_count)' "$work/metrics.prom" >&2
"$gotool" tool pprof -top "$work/spans.pb.gz" 2>/dev/null | head -12
ls -l "$work/spans.pb.gz" "$work/trace.json" "$work/otlp.jsonl" "$work/metrics.prom" "$work/slowest.html" >&2
t_end=$(date +%s.%N)
awk -v a="$t0" -v b="$t_setup" -v c="$t_build" -v d="$t_end" 'BEGIN {
  printf "demo: done in %.0f s (set-up %.0f s, build %.0f s, run %.0f s)\n", d - a, b - a, c - b, d - c }' >&2

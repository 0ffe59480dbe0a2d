#!/usr/bin/env bash
# Throughput and peak memory of `goprobe convert`, per format, side by side
# with `jq -c .` over the same span NDJSON (the baseline for reading and
# writing NDJSON). Not a test: prints a table, asserts nothing.
#
# Usage: benches/convert.sh [SPANS]   (default 1000000; needs jq, python3, /usr/bin/time)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000000}
work=${BENCH_DIR:-${TMPDIR:-/tmp}/goprobe-bench-convert}
mkdir -p "$work"
input="$work/spans-$n.ndjson"

for tool in jq python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "convert.sh: $tool missing (scripts/setup.sh installs it)" >&2; exit 2; }
done

if [ ! -s "$input" ]; then
  echo "generating $n spans into $input" >&2
  python3 "$repo/benches/gen_spans.py" "$n" > "$input.tmp" && mv "$input.tmp" "$input"
fi
spans=$(wc -l < "$input")
(cd "$repo" && cargo build --release --quiet)
bin="$repo/target/release/goprobe"

# A loopback OTLP/HTTP sink for --to otlp: answers every POST with an empty
# ExportTraceServiceResponse (HTTP 200, empty protobuf body).
sink_port_file="$work/sink.port"
rm -f "$sink_port_file"
python3 - "$sink_port_file" <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.serve_forever()
PY
sink_pid=$!
trap 'kill $sink_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$sink_port_file" ] && break; sleep 0.1; done
endpoint="http://127.0.0.1:$(cat "$sink_port_file")"

# run NAME CMD...: time CMD (stdout to a file in $work), print one table row.
results=()
run() {
  local name=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -v -o "$work/$name.time" "$@" > "$work/out.$name" 2> "$work/$name.err" \
    || { echo "convert.sh: $name failed:" >&2; cat "$work/$name.err" >&2; exit 2; }
  t1=$(date +%s.%N)
  local secs rss
  secs=$(echo "$t1 - $t0" | bc -l 2>/dev/null || python3 -c "print($t1 - $t0)")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/$name.time")
  results+=("$name $secs $rss $(stat -c %s "$work/out.$name")")
}

run jq jq -c . "$input"
for format in otlp-json pprof folded flamegraph chrome text; do
  run "$format" "$bin" convert --to "$format" "$input"
done
run otlp "$bin" convert --to otlp --endpoint "$endpoint" "$input"

jq_secs=$(echo "${results[0]}" | awk '{print $2}')
echo
echo "goprobe convert, $spans spans ($(du -h "$input" | cut -f1) NDJSON), $(nproc) cores"
printf '%-11s %9s %12s %12s %12s %12s\n' format seconds spans/s "vs jq -c" "peak RSS" output
for row in "${results[@]}"; do
  read -r name secs rss bytes <<< "$row"
  python3 -c "
name, secs, rss, size, spans, jq = '$name', float('$secs'), int('$rss'), int('$bytes'), int('$spans'), float('$jq_secs')
print('%-11s %9.2f %12.0f %11.2fx %9.1f MiB %8.1f MiB' % (name, secs, spans / secs, jq / secs, rss / 1024, size / 2**20))"
done
echo "(vs jq -c: jq's time divided by this format's time; >1 means faster than jq)"
grep -h "held while grouping" "$work"/*.err | sed 's/^/  /' || true

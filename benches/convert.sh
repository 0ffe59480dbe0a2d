#!/usr/bin/env bash
# Throughput and peak memory of `goprobe convert`, per format, side by side
# with `jq -c .` over the same span NDJSON (the baseline for reading and
# writing NDJSON), `--to otlp` pushing to a loopback OTLP/HTTP receiver.
# Every job runs once per round, rounds interleaved, so a busy machine slows
# all of them alike; the table gives medians and the range over rounds.
# Not a test: prints a table, asserts nothing.
#
# Usage: benches/convert.sh [SPANS [ROUNDS]]   (defaults 200000 and 5)
#   GOPROBE_BASELINE=/path/to/goprobe adds an older build's rows ("before").
# Needs jq, python3, GNU time (scripts/setup.sh installs them).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-200000}
rounds=${2:-5}
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
baseline=${GOPROBE_BASELINE:-}

# A loopback OTLP/HTTP receiver for --to otlp: reads every request body and
# answers with an empty ExportTraceServiceResponse (HTTP 200, empty body).
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

formats=(otlp-json otlp chrome pprof folded flamegraph text)
# Jobs as NAME|BINARY|FORMAT.
jobs=("jq||jq")
for f in "${formats[@]}"; do jobs+=("$f|$bin|$f"); done
if [ -n "$baseline" ]; then
  for f in "${formats[@]}"; do jobs+=("$f (before)|$baseline|$f"); done
fi

# One line per run: name, wall seconds, CPU seconds (user+sys), peak RSS KiB, output bytes.
runs="$work/runs.tsv"
: > "$runs"
for round in $(seq "$rounds"); do
  echo "round $round/$rounds" >&2
  for spec in "${jobs[@]}"; do
    IFS='|' read -r name binary format <<< "$spec"
    case $format in
      jq) cmd=(jq -c . "$input") ;;
      otlp) cmd=("$binary" convert --to otlp --endpoint "$endpoint" "$input") ;;
      *) cmd=("$binary" convert --to "$format" "$input") ;;
    esac
    t0=$(date +%s.%N)
    /usr/bin/time -f '%U %S %M' -o "$work/time" "${cmd[@]}" > "$work/out" 2> "$work/err" \
      || { echo "convert.sh: $name failed:" >&2; cat "$work/err" >&2; exit 2; }
    t1=$(date +%s.%N)
    read -r user sys rss < "$work/time"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$(python3 -c "print($t1 - $t0)")" \
      "$(python3 -c "print($user + $sys)")" "$rss" "$(stat -c %s "$work/out")" >> "$runs"
    grep -h "held while grouping" "$work/err" > "$work/held.${name// /_}" || true
  done
done

echo
echo "goprobe convert, $spans spans ($(du -h "$input" | cut -f1) NDJSON), $rounds rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$runs" "$spans" <<'PY'
import statistics, sys
runs, spans = sys.argv[1], int(sys.argv[2])
by = {}
for line in open(runs):
    name, wall, cpu, rss, size = line.rstrip("\n").split("\t")
    by.setdefault(name, []).append((float(wall), float(cpu), int(rss), int(size)))
med = lambda xs: statistics.median(xs)
jq_wall = med([r[0] for r in by["jq"]])
jq_cpu = med([r[1] for r in by["jq"]])
print("%-20s %11s %18s %8s %9s %9s %10s %10s" % (
    "format", "spans/s", "wall s [min-max]", "CPU s", "vs jq", "vs jq CPU", "peak RSS", "output"))
for name, rs in by.items():
    wall, cpu = [r[0] for r in rs], [r[1] for r in rs]
    print("%-20s %11.0f %6.2f [%4.2f-%4.2f] %8.2f %8.1fx %8.1fx %6.1f MiB %6.1f MiB" % (
        name, spans / med(wall), med(wall), min(wall), max(wall), med(cpu),
        jq_wall / med(wall), jq_cpu / med(cpu), max(r[2] for r in rs) / 1024, rs[0][3] / 2**20))
print("(medians over rounds; vs jq: jq's median time over this one's, >1 is faster;")
print(" CPU is user+sys, steadier than wall time on a shared machine; otlp's output is the receiver's, none)")
PY
for spec in "${jobs[@]}"; do
  name=${spec%%|*}
  held="$work/held.${name// /_}"
  if [ -s "$held" ]; then sed "s/^goprobe convert: /  $name: /" "$held"; fi
done
exit 0

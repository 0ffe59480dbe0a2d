#!/usr/bin/env bash
# Benchmark (not a test): what goprobe's probes cost a Go HTTP server.
#
# Drives GET /hello load at the corpus httpserver with benches/loadgen and
# measures requests/s and latency in three configurations, interleaved over
# several rounds so that machine noise hits them alike:
#   none    no probes;
#   empty   programs that do nothing, attached at exactly the points goprobe
#           uses (entry after the stack check, every RET), via the hidden
#           `goprobe attach --baseline-empty`: the cost of the uprobe traps alone;
#   record  `goprobe record` writing span NDJSON to a file.
# Reports added latency per request for empty and record, their ratio
# (target: record within 1.15x of empty), and lost events / missing spans.
#
# bpftrace is not the baseline: Debian 12's bpftrace refuses uprobes at a
# function offset ("compiled without (k|u)probe offset support"), and every
# RET probe is at an offset.
#
# Scenario `db` instead drives GET /db/three at the corpus dbserver (lib/pq)
# against a throwaway PostgreSQL on loopback: each request makes three
# database/sql calls (query, exec, query row), so record writes 4 spans per
# request and the empty baseline has traps on the database functions too.
#
# Scenario `grpc` drives unary SayHello calls (benches/grpcload, built
# against gRPC 1.64.1 from the module proxy) at the gRPC fixture's server
# (tests/fixtures/grpc/greeter, gRPC 1.85.0 by default: env GRPC_VERSION) with
# the probe grpc.server only, and also reports the uprobe traps per call
# (the kernel's BPF statistics: run counts of the empty run's programs over
# the calls answered meanwhile). GO_VERSION must be one the gRPC fixture
# was built with (build-modules.sh: 1.19, 1.23.9, 1.26.6).
#
# Scenario `cpu` drives GET /hello as `hello` does, comparing `record`
# without CPU sampling against `record --cpu=99` and `record --cpu=999`
# (the cpu-clock perf event on every CPU: a BPF program per sample that
# walks the user stack and looks the goroutine up): the added latency per
# request of sampling, and the samples taken.
#
# Usage (as root): benches/attach.sh [GO_VERSION] [SECONDS] [CONCURRENCY] [ROUNDS] [hello|db|grpc|cpu]
#   env: GOPROBE_CACHE (default <repo>/.cache), GOPROBE_BIN (default target/release/goprobe, else debug)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${GOPROBE_CACHE:-$repo/.cache}
go_version=${1:-1.26.6}
secs=${2:-10}
conc=${3:-4}
rounds=${4:-3}
scenario=${5:-hello}
configs="none empty record"
case $scenario in
  hello) program=httpserver; path=/hello; per_request=1 ;;
  db) program=dbserver; path=/db/three; per_request=4 ;;
  grpc) program=greeter; path=/helloworld.Greeter/SayHello; per_request=1 ;;
  cpu) program=httpserver; path=/hello; per_request=1; configs="none record cpu99 cpu999" ;;
  *) echo "attach.sh: scenario is hello, db, grpc or cpu" >&2; exit 2 ;;
esac

[ "$(id -u)" -eq 0 ] || { echo "attach.sh: run as root (eBPF)" >&2; exit 2; }
command -v jq >/dev/null || { echo "attach.sh: jq missing (scripts/setup.sh)" >&2; exit 2; }
bin=$cache/corpus/go$go_version/$program/default
[ "$scenario" = grpc ] && bin=$cache/grpc/go$go_version/grpc${GRPC_VERSION:-1.85.0}/default
[ -x "$bin" ] || { echo "attach.sh: $bin missing: run tests/fixtures/build-corpus.sh --all (build-modules.sh for grpc)" >&2; exit 2; }
goprobe=${GOPROBE_BIN:-}
if [ -z "$goprobe" ]; then
  if [ -x "$repo/target/release/goprobe" ]; then goprobe=$repo/target/release/goprobe
  else (cd "$repo" && cargo build -q) && goprobe=$repo/target/debug/goprobe; fi
fi
gotool=$cache/go/1.19/go/bin/go
[ -x "$gotool" ] || gotool=go

work=$(mktemp -d)
server_pid=
pg_ctl=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  [ -n "$pg_ctl" ] && runuser -u postgres -- "$pg_ctl" stop -D "$work/pg" -m immediate >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"

server_args=()
if [ "$scenario" = db ]; then
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$pgbin/initdb" ] || { echo "attach.sh: PostgreSQL missing (scripts/setup.sh)" >&2; exit 2; }
  pg_ctl=$pgbin/pg_ctl
  mkdir -p "$work/pg" && chown postgres "$work/pg"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  runuser -u postgres -- "$pgbin/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$pg_ctl" start -D "$work/pg" -w -l "$work/pg/log" \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $work/pg" >/dev/null
  "$pgbin/psql" -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE ROLE goprobe LOGIN" >/dev/null
  "$pgbin/psql" -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE goprobe OWNER goprobe" >/dev/null
  server_args=(-dsn "postgres://goprobe@127.0.0.1:$port/goprobe?sslmode=disable")
fi

(cd "$repo/benches/loadgen" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off "$gotool" build -o "$work/loadgen" .)
probes=()
if [ "$scenario" = grpc ]; then
  # grpcload needs a Go that builds gRPC 1.64 (1.21+): the fixture's newest.
  mkdir -p "$work/grpcload"
  cp "$repo/benches/grpcload/main.go" "$work/grpcload/"
  printf 'module example.com/grpcload\n\ngo 1.21\n' > "$work/grpcload/go.mod"
  lgo=$cache/go/1.26.6/go
  (cd "$work/grpcload" && env -u GOFLAGS GOROOT="$lgo" GOTOOLCHAIN=local GOCACHE="$cache/gocache" \
    GOMODCACHE="$cache/gomodcache" GOPATH="$cache/gopath" GOFLAGS=-mod=mod GOSUMDB=off CGO_ENABLED=0 \
    GOPROXY="${GOPROXY:-https://proxy.golang.org}" sh -c \
    "'$lgo/bin/go' get google.golang.org/grpc@v1.64.1 >/dev/null 2>&1 && '$lgo/bin/go' build -o '$work/loadgen' .")
  server_args=(serve)
  probes=(--probes grpc.server)
  sysctl -qw kernel.bpf_stats_enabled=1
fi

"$bin" "${server_args[@]}" > "$work/addr" 2>/dev/null &
server_pid=$!
for _ in $(seq 50); do [ -s "$work/addr" ] && break; sleep 0.1; done
url="http://$(head -1 "$work/addr")$path"
[ "$scenario" = grpc ] && url=$(head -1 "$work/addr")

# Start a goprobe command in the background and wait until it has attached.
start_goprobe() {
  local out=$1; shift
  # Remove the previous run's stderr first: the background job truncates it
  # only once it starts, and a stale "attached" would start the load early.
  rm -f "$work/goprobe.err"
  "$goprobe" "$@" > "$out" 2> "$work/goprobe.err" &
  gp_pid=$!
  for _ in $(seq 300); do grep -q attached "$work/goprobe.err" 2>/dev/null && return 0; sleep 0.1; done
  echo "attach.sh: goprobe did not attach: $(cat "$work/goprobe.err")" >&2; exit 2
}
stop_goprobe() { kill -INT "$gp_pid"; wait "$gp_pid" || true; }

load() {
  if [ "$scenario" = grpc ]; then "$work/loadgen" -addr "$url" -c "$conc" -d "${secs}s" -warmup 1s
  else "$work/loadgen" -url "$url" -c "$conc" -d "${secs}s" -warmup 1s; fi
}
# Sum of the run counts of the BPF programs the goprobe process holds.
# (Its program ids from its file descriptors' fdinfo: this bpftool cannot
# list the processes holding a program.)
bpf_runs() {
  local ids
  ids=$(grep -h '^prog_id:' /proc/"$gp_pid"/fdinfo/* 2>/dev/null | awk '{ print $2 }' | sort -u | paste -sd, -)
  bpftool prog show --json 2>/dev/null | jq --arg ids "$ids" \
    '($ids | split(",") | map(tonumber)) as $mine | [.[] | select(.id as $i | $mine | index($i)) | .run_cnt // 0] | add // 0'
}

echo "config	round	rps	mean_us	p50_us	p99_us	answered	spans	lost	samples" > "$work/results.tsv"
for round in $(seq "$rounds"); do
  for config in $configs; do
    spans=- lost=- samples=-
    case $config in
      none) r=$(load) ;;
      empty)
        start_goprobe /dev/null attach --pid "$server_pid" --baseline-empty "${probes[@]}"
        runs0=$(bpf_runs)
        r=$(load)
        if [ "$scenario" = grpc ]; then
          echo "$(( $(bpf_runs) - runs0 ))	$(echo "$r" | jq .total)" >> "$work/traps.tsv"
        fi
        stop_goprobe ;;
      record)
        start_goprobe "$work/spans.ndjson" record --pid "$server_pid" "${probes[@]}"
        r=$(load); sleep 0.5; stop_goprobe
        spans=$(wc -l < "$work/spans.ndjson")
        lost=$(sed -n 's/.* \([0-9]*\) events lost.*/\1/p' "$work/goprobe.err" | tail -1) ;;
      cpu99|cpu999)
        start_goprobe "$work/spans.ndjson" record --pid "$server_pid" "--cpu=${config#cpu}"
        r=$(load); sleep 0.5; stop_goprobe
        samples=$(grep -c '^{"type":"cpu_sample"' "$work/spans.ndjson" || true)
        spans=$(grep -vc '^{"type":' "$work/spans.ndjson" || true)
        lost=$(sed -n 's/.* \([0-9]*\) events lost.*/\1/p' "$work/goprobe.err" | tail -1) ;;
    esac
    echo "$r" | jq -r --arg c "$config" --arg r "$round" --arg s "$spans" --arg l "$lost" --arg x "$samples" \
      '[$c, $r, (.rps|floor), (.mean_us|floor), (.p50_us|floor), (.p99_us|floor), .total, $s, $l, $x] | @tsv' >> "$work/results.tsv"
    tail -1 "$work/results.tsv" >&2
  done
done

echo
echo "Go $go_version $program GET $path, $conc connections, ${secs}s x $rounds rounds (medians):"
# Medians per config, then added latency against `none` and the ratio.
awk -F'\t' -v per="$per_request" 'NR > 1 { n[$1]++; rps[$1, n[$1]] = $3; mean[$1, n[$1]] = $4; p99[$1, n[$1]] = $6; if ($10 != "-") smp[$1, n[$1]] = $10; if ($9 != "-") { lost += $9; if ($8 != $7 * per) missing += ($7 * per > $8 ? $7 * per - $8 : 0) } }
  function median(arr, c,    i, j, t, v, k) {
    k = n[c]; for (i = 1; i <= k; i++) v[i] = arr[c, i]
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2 }
  END {
    for (c in n) printf "  %-7s %8.0f req/s  mean %7.1f us  p99 %7.1f us\n", c, median(rps, c), median(mean, c), median(p99, c)
    base = median(mean, "none"); r = median(mean, "record") - base
    if ("cpu99" in n) {
      printf "  added latency per request against none: record %.1f us", r
      for (hz = 99; hz <= 999; hz += 900) {
        c = "cpu" hz; x = median(mean, c)
        printf ", record --cpu=%d %.1f us (%+.1f us against record, %.0f samples a run)", hz, x - base, x - base - r, median(smp, c)
      }
    } else {
      e = median(mean, "empty") - base
      printf "  added latency per request: empty probes %.1f us, goprobe record %.1f us", e, r
      if (e > 0) printf ", ratio %.2f (target <= 1.15)", r / e
    }
    printf "\n  lost events over all record runs: %d; spans missing (answered x spans per request - written): %d\n", lost, missing }' "$work/results.tsv"
if [ -s "$work/traps.tsv" ]; then
  # Calls answered while the probes were attached include the warm-up's.
  awk -F'\t' '{ t += $1; c += $2 } END { if (c) printf "  uprobe traps per gRPC call (kernel BPF stats, empty probes): %.2f (%d traps, %d calls)\n", t / c, t, c }' "$work/traps.tsv"
fi
echo "  per-round results:"; sed 's/^/    /' "$work/results.tsv"

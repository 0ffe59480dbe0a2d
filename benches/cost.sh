#!/usr/bin/env bash
# Benchmark (not a test): what goprobe costs per request, in absolute terms,
# against no probes and against the physical floor of a span from uprobes.
#
# A companion to benches/attach.sh (which reports a ratio to empty programs):
# this one reads the kernel's own BPF statistics (kernel.bpf_stats_enabled,
# then run_cnt / run_time_ns of each of goprobe's programs from bpftool), so
# it reports per request and per probe family exactly how many uprobe hits
# there were and how much BPF program time they took. Configurations, run
# interleaved over rounds so that machine noise hits them alike:
#   none    no probes;
#   floor   the physical floor of the spans the request makes: do-nothing
#           programs on the entry and every RET of the hooked functions only
#           (`attach --baseline-empty --probes http.server[,db.sql]`): two
#           traps per span, no program work;
#   empty   do-nothing programs at every point `record` attaches (its
#           default probes), so `record - empty` is program time plus
#           user-space work;
#   record  `goprobe record` writing spans to a file, with BPF statistics;
#   base    (when GOPROBE_BASE_BIN is set) the same `record` with another
#           goprobe build, e.g. main's, for before/after in one run.
# BPF statistics stay enabled for every configuration (they add two clock
# reads per program run), so the latencies compare like with like.
#
# Scenario `db` drives GET /db/three at the corpus dbserver (lib/pq) against
# a throwaway PostgreSQL on loopback: one server span and three database
# spans per request.
#
# Scenario `grpc` drives unary SayHello calls (benches/grpcload, built
# against gRPC 1.64.1 from the module proxy) at the gRPC fixture's server
# (gRPC ${GRPC_VERSION:-1.85.0}; GO_VERSION one build-modules.sh built it
# with: 1.19, 1.23.9, 1.26.6), probe grpc.server: one server span per call.
#
# Scenario `call` drives GET /call at the corpus httpserver: its handler
# calls the same server's /hello through a keep-alive http.Client, so a
# request is two server spans and one client span (probes http.server,
# http.client). Scenario `panic` drives GET /recovered, whose handler panics
# and recovers: one server span and one go.panic event (with its stack).
#
# Scenario `cpu` is `hello` plus a configuration `cpu` (record with
# --cpu=${COST_CPU_HZ:-99}: the cpu-clock perf event on every CPU): the
# sampler's program runs per sample, not per request, so its hits and time
# are reported per request at that load and per hit (per sample).
#
# Usage (as root): benches/cost.sh [GO_VERSION] [SECONDS] [CONCURRENCY] [ROUNDS] [hello|db|grpc|cpu|call|panic]
#   env: GOPROBE_CACHE (default <repo>/.cache), GOPROBE_BIN (default
#        target/release/goprobe, else debug), GOPROBE_BASE_BIN (optional
#        second build, reported as `base`), COST_PROBES (record's --probes,
#        default all), COST_CONFIGS (the configurations to run, default
#        "none floor empty record" and the scenario's extra; `base` is
#        added when GOPROBE_BASE_BIN is set).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${GOPROBE_CACHE:-$repo/.cache}
go_version=${1:-1.26.6}
secs=${2:-5}
conc=${3:-4}
rounds=${4:-3}
scenario=${5:-hello}
probes=${COST_PROBES:-all}
extra_configs=""
case $scenario in
  hello) program=httpserver; path=/hello; floor_probes=http.server ;;
  db) program=dbserver; path=/db/three; floor_probes=http.server,db.sql ;;
  grpc) program=greeter; path=; floor_probes=grpc.server; probes=${COST_PROBES:-grpc.server} ;;
  cpu) program=httpserver; path=/hello; floor_probes=http.server; extra_configs=cpu ;;
  call) program=httpserver; path=/call; floor_probes=http.server,http.client; probes=${COST_PROBES:-http.server,http.client} ;;
  panic) program=httpserver; path=/recovered; floor_probes=http.server,go.panic; probes=${COST_PROBES:-http.server,go.panic} ;;
  *) echo "cost.sh: scenario is hello, db, grpc, cpu, call or panic" >&2; exit 2 ;;
esac

[ "$(id -u)" -eq 0 ] || { echo "cost.sh: run as root (eBPF)" >&2; exit 2; }
for tool in jq bpftool; do
  command -v $tool >/dev/null || { echo "cost.sh: $tool missing (scripts/setup.sh)" >&2; exit 2; }
done
bin=$cache/corpus/go$go_version/$program/default
[ "$scenario" = grpc ] && bin=$cache/grpc/go$go_version/grpc${GRPC_VERSION:-1.85.0}/default
[ -x "$bin" ] || { echo "cost.sh: $bin missing: run tests/fixtures/build-corpus.sh --versions $go_version (tests/fixtures/build-modules.sh for grpc)" >&2; exit 2; }
goprobe=${GOPROBE_BIN:-}
if [ -z "$goprobe" ]; then
  if [ -x "$repo/target/release/goprobe" ]; then goprobe=$repo/target/release/goprobe
  else (cd "$repo" && cargo build -q) && goprobe=$repo/target/debug/goprobe; fi
fi
base=${GOPROBE_BASE_BIN:-}
gotool=$cache/go/1.19/go/bin/go
[ -x "$gotool" ] || gotool=go

work=$(mktemp -d)
server_pid=
pg_ctl=
stats_before=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
  sysctl -qw kernel.bpf_stats_enabled="$stats_before" || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  [ -n "$pg_ctl" ] && runuser -u postgres -- "$pg_ctl" stop -D "$work/pg" -m immediate >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"
sysctl -qw kernel.bpf_stats_enabled=1

server_args=()
if [ "$scenario" = db ]; then
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$pgbin/initdb" ] || { echo "cost.sh: PostgreSQL missing (scripts/setup.sh)" >&2; exit 2; }
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

if [ "$scenario" = grpc ]; then
  # grpcload needs a Go that builds gRPC 1.64 (1.21+): the corpus's newest.
  mkdir -p "$work/grpcload"
  cp "$repo/benches/grpcload/main.go" "$work/grpcload/"
  printf 'module example.com/grpcload\n\ngo 1.21\n' > "$work/grpcload/go.mod"
  lgo=$cache/go/1.26.6/go
  (cd "$work/grpcload" && env -u GOFLAGS GOROOT="$lgo" GOTOOLCHAIN=local GOCACHE="$cache/gocache" \
    GOMODCACHE="$cache/gomodcache" GOPATH="$cache/gopath" GOFLAGS=-mod=mod GOSUMDB=off CGO_ENABLED=0 \
    GOPROXY="${GOPROXY:-https://proxy.golang.org}" sh -c \
    "'$lgo/bin/go' get google.golang.org/grpc@v1.64.1 >/dev/null 2>&1 && '$lgo/bin/go' build -o '$work/loadgen' .")
  server_args=(serve)
else
  (cd "$repo/benches/loadgen" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off "$gotool" build -o "$work/loadgen" .)
fi

"$bin" "${server_args[@]}" > "$work/addr" 2>/dev/null &
server_pid=$!
for _ in $(seq 50); do [ -s "$work/addr" ] && break; sleep 0.1; done
url="http://$(head -1 "$work/addr")$path"
[ "$scenario" = grpc ] && url=$(head -1 "$work/addr")

start_goprobe() {
  local exe=$1 out=$2; shift 2
  rm -f "$work/goprobe.err"
  "$exe" "$@" > "$out" 2> "$work/goprobe.err" &
  gp_pid=$!
  for _ in $(seq 300); do grep -q attached "$work/goprobe.err" 2>/dev/null && return 0; sleep 0.1; done
  echo "cost.sh: goprobe did not attach: $(cat "$work/goprobe.err")" >&2; exit 2
}
stop_goprobe() { kill -INT "$gp_pid"; wait "$gp_pid" || true; }

# After a recording: its events lost (the summary's "lost N (...)" line) and
# spans written, beside the requests answered, into lost.tsv. A lost event
# costs less BPF time than a sent one, so a run that lost many flatters its
# BPF figures: they are printed together.
losses() {
  local lost spans
  lost=$(grep -o '^goprobe: lost [0-9]*' "$work/goprobe.err" | awk '{print $3}' | head -1)
  spans=$(grep -o '[0-9]* spans (' "$work/goprobe.err" | awk '{print $1}' | head -1)
  printf '%s\t%s\t%s\t%s\t%s\n' "$config" "$round" "$(echo "$r" | jq .total)" "${lost:-?}" "${spans:-?}" >> "$work/lost.tsv"
}

# The BPF statistics of the programs goprobe process $1 holds, one line each:
# name, run_cnt, run_time_ns. The process's program ids come from its
# /proc fdinfo (Debian's bpftool cannot list a program's pids), so the
# programs of other goprobe processes on the machine are not counted.
prog_stats() {
  local ids
  ids=$(grep -h '^prog_id:' /proc/"$1"/fdinfo/* 2>/dev/null | awk '{print $2}' | sort -un | jq -sc .)
  bpftool prog show -j | jq -r --argjson ids "$ids" \
    '.[] | select(.id as $i | $ids | index($i)) | [.name, (.run_cnt // 0), (.run_time_ns // 0)] | @tsv'
}

# Appends the BPF statistics of the running goprobe to progs.tsv, per
# request answered (warm-up included: the programs ran for those too).
stats() {
  local answered
  answered=$(echo "$r" | jq .total)
  prog_stats "$gp_pid" | sed "s/^/$config\t$round\t$answered\t/" >> "$work/progs.tsv"
}

load() {
  if [ "$scenario" = grpc ]; then "$work/loadgen" -addr "$url" -c "$conc" -d "${secs}s" -warmup 1s
  else "$work/loadgen" -url "$url" -c "$conc" -d "${secs}s" -warmup 1s; fi
}

configs=${COST_CONFIGS:-"none floor empty record $extra_configs"}
[ -n "$base" ] && configs="$configs base"
printf 'config\tround\trps\tmean_us\tp50_us\tp99_us\tanswered\n' > "$work/results.tsv"
: > "$work/progs.tsv"   # config, round, answered, program, run_cnt, run_time_ns
: > "$work/lost.tsv"    # config, round, answered, events lost, spans written
for round in $(seq "$rounds"); do
  for config in $configs; do
    case $config in
      none) r=$(load) ;;
      floor)
        start_goprobe "$goprobe" /dev/null attach --pid "$server_pid" --baseline-empty --probes "$floor_probes"
        r=$(load); stats; stop_goprobe ;;
      empty)
        start_goprobe "$goprobe" /dev/null attach --pid "$server_pid" --baseline-empty --probes "$probes"
        r=$(load); stats; stop_goprobe ;;
      record|base)
        exe=$goprobe; [ "$config" = base ] && exe=$base
        start_goprobe "$exe" "$work/spans.ndjson" record --pid "$server_pid" --probes "$probes"
        r=$(load); stats; stop_goprobe; losses ;;
      cpu)
        start_goprobe "$goprobe" "$work/spans.ndjson" record --pid "$server_pid" --probes "$probes" "--cpu=${COST_CPU_HZ:-99}"
        r=$(load); stats; stop_goprobe; losses ;;
    esac
    echo "$r" | jq -r --arg c "$config" --arg r "$round" \
      '[$c, $r, (.rps|floor), .mean_us, .p50_us, .p99_us, .total] | @tsv' >> "$work/results.tsv"
    tail -1 "$work/results.tsv" >&2
  done
done

echo
echo "Go $go_version $program ${path:-SayHello}, $conc connections, ${secs}s x $rounds rounds (medians, [min-max] over rounds):"
awk -F'\t' '
  function sort(v, k,    i, j, t) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t } }
  function med(v, k) { sort(v, k); return (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2 }
  NR == FNR { if (FNR > 1) { c = $1; n[c]++; if (!(c in seen)) { seen[c] = 1; order[++nc] = c }
      rps[c, n[c]] = $3; mean[c, n[c]] = $4; p99[c, n[c]] = $6 } ; next }
  { # progs.tsv: per program and round, per answered request
    # The family of a program, from its name (bpftool shows 15 characters).
    c = $1; fam = $4
    if (fam ~ /^(http_server|http_client|grpc_server|grpc_client|cpu_sample)/) fam = substr(fam, 1, 11)
    else if (fam ~ /^db_call/) fam = "db_sql"; else if (fam ~ /^panic/) fam = "go_panic"
    else if (fam ~ /^spawn/) fam = "go_spawn"; else if (fam ~ /^ph_/) fam = "http_phases"
    else sub(/_(e|en|ent|entr|entry|r|re|ret|retu|retur|return)$/, "", fam)
    key = c SUBSEP fam SUBSEP $2
    if (!(key in fh)) { fr[c, fam]++ ; if (!((c, fam) in fseen)) { fseen[c, fam] = 1; fams[c] = fams[c] " " fam } }
    fh[key] += $5 / $3; fns[key] += $6 / $3
    pk = c SUBSEP $4; if (!(pk in pseen)) { pseen[pk] = 1; progs[c] = progs[c] " " $4 }
    ph[pk, $2] += $5 / $3; pns[pk, $2] += $6 / $3; rounds_of[c] = ($2 > rounds_of[c]) ? $2 : rounds_of[c]
  }
  END {
    for (i = 1; i <= nc; i++) { c = order[i]; k = n[c]
      for (j = 1; j <= k; j++) { a[j] = mean[c, j]; b[j] = p99[c, j]; r[j] = rps[c, j] }
      m = med(a, k); lo = a[1]; hi = a[k]; M[c] = m
      printf "  %-7s %7.0f req/s  mean %7.1f us [%.1f-%.1f]  p99 %7.1f us\n", c, med(r, k), m, lo, hi, med(b, k) }
    printf "  added latency per request (medians): floor %.1f us over none", M["floor"] - M["none"]
    if ("empty" in M) printf "; empty %.1f us over none", M["empty"] - M["none"]
    for (i = 1; i <= nc; i++) { c = order[i]; if (c == "record" || c == "base" || c == "cpu")
      printf "; %s %.1f us over none, %.1f us over the floor", c, M[c] - M["none"], M[c] - M["floor"] }
    printf "\n"
    for (i = 1; i <= nc; i++) { c = order[i]; if (!(c in fams)) continue
      printf "  %s: uprobe hits and BPF time per request, per family (median over rounds [min-max]):\n", c
      nf = split(fams[c], F, " "); th = 0; tn = 0
      for (f = 1; f <= nf; f++) { k = 0
        for (rd = 1; rd <= rounds_of[c]; rd++) if ((c, F[f], rd) in fh) { k++; h[k] = fh[c, F[f], rd]; t[k] = fns[c, F[f], rd] }
        mh = med(h, k); mt = med(t, k); th += mh; tn += mt
        printf "    %-12s %5.2f hits  %7.0f ns [%.0f-%.0f]\n", F[f], mh, mt, t[1], t[k] }
      printf "    %-12s %5.2f hits  %7.0f ns\n", "total", th, tn
      np = split(progs[c], P, " ")
      for (p = 1; p <= np; p++) { k = 0
        for (rd = 1; rd <= rounds_of[c]; rd++) if ((c, P[p], rd) in ph) { k++; h[k] = ph[c, P[p], rd]; t[k] = pns[c, P[p], rd] }
        mh = med(h, k); mt = med(t, k)
        printf "      %-16s %5.2f hits  %6.0f ns/request  %5.0f ns/hit\n", P[p], mh, mt, (mh > 0 ? mt / mh : 0) } }
  }' "$work/results.tsv" "$work/progs.tsv"
echo "  recordings: events lost and spans written per round (requests answered include the warm-up):"
awk -F'\t' '{ printf "    %-7s round %s: %s answered, %s spans written, %s events lost\n", $1, $2, $3, $5, $4 }' "$work/lost.tsv"
echo "  per-round results:"; sed 's/^/    /' "$work/results.tsv"

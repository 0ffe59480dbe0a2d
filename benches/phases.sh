#!/usr/bin/env bash
# Benchmark (not a test): what the HTTP client phase probes (http.phases,
# http.exchange) cost per outgoing call, on new and on pooled connections.
#
# Runs the corpus httpserver under `goprobe record` (the default probes and
# the opt-in http.exchange, or $PROBES) and, for
# each kind of call its /out route makes (plain HTTP or HTTPS, pooled or new
# connection, by name or by address), sends N requests and reads the
# kernel's BPF statistics (kernel.bpf_stats_enabled: exact run counts and
# run time per program) for the programs of this goprobe process only (the
# BPF program fds it holds: other goprobes on the machine are left out). Every run of a
# uprobe program is a trap here: no two families hook the same function.
# Prints hits per call for each http_phases program and, side by side, the
# http_client family's (two per call: its baseline).
#
# Usage (as root): benches/phases.sh [GO_VERSION] [CALLS]
#   env: GOPROBE_CACHE (default <repo>/.cache), GOPROBE_BIN (default
#   target/release/goprobe, else debug), PROBES (default
#   default,http.exchange; `default` alone shows what the default set costs)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${GOPROBE_CACHE:-$repo/.cache}
go_version=${1:-1.26.6}
calls=${2:-200}
probes=${PROBES:-default,http.exchange}

[ "$(id -u)" -eq 0 ] || { echo "phases.sh: run as root (eBPF)" >&2; exit 2; }
for t in jq bpftool curl; do
  command -v $t >/dev/null || { echo "phases.sh: $t missing (scripts/setup.sh)" >&2; exit 2; }
done
bin=$cache/corpus/go$go_version/httpserver/default
[ -x "$bin" ] || { echo "phases.sh: $bin missing: run tests/fixtures/build-corpus.sh" >&2; exit 2; }
goprobe=${GOPROBE_BIN:-}
if [ -z "$goprobe" ]; then
  if [ -x "$repo/target/release/goprobe" ]; then goprobe=$repo/target/release/goprobe
  else (cd "$repo" && cargo build -q) && goprobe=$repo/target/debug/goprobe; fi
fi

work=$(mktemp -d)
server_pid= gp_pid=
stats_before=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
  [ -n "$gp_pid" ] && kill -INT "$gp_pid" 2>/dev/null && wait "$gp_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  sysctl -qw kernel.bpf_stats_enabled="$stats_before" || true
  rm -rf "$work"
}
trap cleanup EXIT
sysctl -qw kernel.bpf_stats_enabled=1

"$bin" > "$work/addr" 2>/dev/null &
server_pid=$!
for _ in $(seq 50); do [ -s "$work/addr" ] && break; sleep 0.1; done
addr=$(head -1 "$work/addr")

"$goprobe" record --pid "$server_pid" --probes "$probes" -o /dev/null 2> "$work/goprobe.err" &
gp_pid=$!
for _ in $(seq 600); do grep -q attached "$work/goprobe.err" 2>/dev/null && break; sleep 0.1; done
grep -q attached "$work/goprobe.err" || { echo "phases.sh: goprobe did not attach: $(cat "$work/goprobe.err")" >&2; exit 2; }

# This goprobe's programs: the prog_id of each BPF program fd it holds.
ids=$(grep -h '^prog_id:' /proc/"$gp_pid"/fdinfo/* 2>/dev/null | awk '{print $2}' | sort -un | jq -sc .)
[ "$ids" != "[]" ] || { echo "phases.sh: no BPF programs held by goprobe (pid $gp_pid)" >&2; exit 2; }

# name<TAB>run_cnt<TAB>run_time_ns of those programs, summed by name.
snapshot() {
  bpftool prog show -j | jq -r --argjson ids "$ids" '
    [.[] | select(.id as $i | $ids | index($i))]
    | group_by(.name)[] | [.[0].name, (map(.run_cnt // 0) | add), (map(.run_time_ns // 0) | add)] | @tsv' | sort
}

call() { curl -sf -o /dev/null "http://$addr/out?$1" || { echo "phases.sh: /out?$1 failed" >&2; exit 2; }; }

printf 'Go %s httpserver, probes %s, %d calls per kind (hits per call; program time per call in ns)\n' "$go_version" "$probes" "$calls"
printf '%-34s %s\n' "kind" "http_phases programs | http_client (baseline)"
for kind in "to=http&conn=reuse" "to=https&conn=reuse" "to=http&conn=reuse&host=127.0.0.1" \
            "to=http&conn=fresh" "to=https&conn=fresh" "to=http&conn=fresh&host=127.0.0.1"; do
  call "$kind"   # a pooled kind's first call opens its connection
  snapshot > "$work/before"
  for _ in $(seq "$calls"); do call "$kind"; done
  snapshot > "$work/after"
  join -t $'\t' -a 2 -e 0 -o 0,1.2,1.3,2.2,2.3 "$work/before" "$work/after" |
    awk -F'\t' -v n="$calls" -v kind="$kind" '
      { hits = ($4 - $2) / n; ns = ($5 - $3) / n }
      $1 ~ /^ph_/ { total += hits; t += ns; if (hits > 0) line = line sprintf(" %s=%.2f", $1, hits) }
      $1 ~ /^http_client/ { base += hits; bt += ns }
      END { printf "%-34s %.2f traps, %.0f ns:%s | %.2f traps, %.0f ns\n", kind, total, t, (line == "" ? " none" : line), base, bt }'
done

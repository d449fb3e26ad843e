#!/usr/bin/env bash
# Latency at a fixed rate (issue 28): open-loop load (gatehouse-loadgen, coordinated-omission free, like
# wrk2) at 50 % and 80 % of each target's own capacity, for Gatehouse's public route, Gatehouse's JWT
# route (one valid token), NGINX as a plain proxy and HAProxy as a plain proxy, all with the same worker
# count in front of the same NGINX upstream on loopback.
#
#   benches/latency.sh [--duration SECONDS] [--connections C] [--capacity-duration SECONDS]
#                      [--rounds R] [--threads N] [--no-pin]
#
# R rounds (default 3); in each, per target, one after the other: its capacity is measured closed-loop with wrk (C connections,
# --capacity-duration seconds, default 5), then gatehouse-loadgen schedules requests at 50 % and at 80 %
# of that capacity for --duration seconds (default 10) over the same C connections (default 32). The
# latency of a request is its completion time minus its *scheduled* time, so time spent waiting behind
# a slow answer counts. Prints a table (medians over rounds of capacity, p50/p99/p99.9 ms; the worst
# max; errors summed; p99 of each round) and saves it to target/latency-report/summary.md.
#
# Binaries: $GATEHOUSE_BIN, else target/soak/gatehouse if it exists, else a `--profile soak` build (no
# fat LTO: minutes instead of ~10 on 2 cores; absolute figures are below a release build's). The load
# generator is target/soak/gatehouse-loadgen (built if missing, or $LOADGEN_BIN).
#
# When the machine has more cores than --threads (default 1), the proxies are pinned to the first
# --threads cores and wrk, the load generator and the upstream to the others (taskset), as in
# benches/load.sh; --no-pin leaves placement to the scheduler. Only 127.0.0.1 is ever targeted; every
# process started is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=10 CONNS=32 CAP_DURATION=5 THREADS=1 PIN=1 ROUNDS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --capacity-duration) CAP_DURATION=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --no-pin) PIN=0; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

. benches/common.sh
need_tools wrk nginx haproxy curl taskset python3

if [ -z "${GATEHOUSE_BIN:-}" ]; then
  GATEHOUSE_BIN=target/soak/gatehouse
  [ -x "$GATEHOUSE_BIN" ] || cargo build --profile soak -p gatehouse -p gatehouse-testkit --bins
fi
LOADGEN_BIN=${LOADGEN_BIN:-target/soak/gatehouse-loadgen}
[ -x "$LOADGEN_BIN" ] || cargo build --profile soak -p gatehouse-testkit --bin gatehouse-loadgen
export GATEHOUSE_BIN

CPUS=$(nproc)
PX=() LD=()
if [ "$PIN" = 1 ] && [ "$CPUS" -gt "$THREADS" ] && command -v taskset >/dev/null 2>&1; then
  PX=(taskset -c "0-$((THREADS - 1))") LD=(taskset -c "$THREADS-$((CPUS - 1))")
  PLACEMENT="proxies on CPU 0-$((THREADS - 1)), wrk + load generator + upstream on CPU $THREADS-$((CPUS - 1))"
else
  PLACEMENT="not pinned ($CPUS CPUs shared by everything)"
fi

W=$(mktemp -d /tmp/gatehouse-latency.XXXXXX)
pids=()
# SIGINT first (Pingora shuts down at once), then SIGTERM (a background job of a script ignores SIGINT).
cleanup() { for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$W"; }
trap cleanup EXIT INT TERM

UP=$(port) GH=$(port) GHA=$(port) HP=$(port) NG=$(port)
mkdir -p "$W/up" "$W/px"
upstream_conf "$W/up" "$UP"
"${LD[@]}" nginx -c "$W/up/nginx.conf" -p "$W/up" & pids+=($!)
gatehouse_conf "$W/gatehouse.toml" "$GH" "$GHA" "$UP" "$THREADS"
RUST_LOG=warn "${PX[@]}" "$GATEHOUSE_BIN" run --config "$W/gatehouse.toml" 2>"$W/gatehouse.log" & pids+=($!)
haproxy_plain_conf "$W/haproxy.cfg" "$HP" "$UP" "$THREADS"
"${PX[@]}" haproxy -f "$W/haproxy.cfg" -db >"$W/haproxy.log" 2>&1 & pids+=($!)
nginx_proxy_conf "$W/px" "$NG" "$UP" "$THREADS"
"${PX[@]}" nginx -c "$W/px/nginx.conf" -p "$W/px" & pids+=($!)

wait_for "upstream" 30 curl -fsS "http://127.0.0.1:$UP/"
wait_for "Gatehouse ready" 60 curl -fsS "http://127.0.0.1:$GHA/readyz"
wait_for "HAProxy" 30 curl -fsS "http://127.0.0.1:$HP/"
wait_for "NGINX proxy" 30 curl -fsS "http://127.0.0.1:$NG/"

TOKEN=$(mint_token)
u="http://127.0.0.1:$GH/jwt"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$u"); [ "$code" = 200 ] || { echo "sanity: $u answered $code" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${TOKEN}x" "$u"); [ "$code" != 200 ] || { echo "sanity: $u accepted a forged token" >&2; exit 1; }
cat > "$W/bearer.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $TOKEN"
LUA

# name|url|authorization header ("" for none)
targets=(
  "gatehouse-public|http://127.0.0.1:$GH/public|"
  "gatehouse-jwt|http://127.0.0.1:$GH/jwt|Bearer $TOKEN"
  "nginx-plain|http://127.0.0.1:$NG/|"
  "haproxy-plain|http://127.0.0.1:$HP/|"
)

STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# Results: one line per run, "round name capacity wrk_p99_ms load_pct json".
: > "$W/results"
for r in $(seq 1 "$ROUNDS"); do
  for t in "${targets[@]}"; do
    IFS='|' read -r name url auth <<< "$t"
    wrk_args=(-t1 -c"$CONNS" -d"${CAP_DURATION}s" --latency)
    lg_args=(--url "$url" --duration "$DURATION" --connections "$CONNS")
    if [ -n "$auth" ]; then wrk_args+=(-s "$W/bearer.lua"); lg_args+=(--header "Authorization: $auth"); fi
    out=$("${LD[@]}" wrk "${wrk_args[@]}" "$url")
    cap=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<< "$out")
    wrk_p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) sub(/ms$/,"",v); else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000} print v}' <<< "$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<< "$out")
    [ -z "$non2xx" ] || { echo "error: $name answered $non2xx non-2xx to wrk" >&2; exit 1; }
    if [ -z "$cap" ] || [ "$cap" -le 0 ]; then echo "error: no capacity measured for $name" >&2; exit 1; fi
    log "round $r/$ROUNDS  $name: capacity ${cap} req/s (wrk, ${CONNS} connections, closed loop; p99 ${wrk_p99} ms)"
    for pct in 50 80; do
      rate=$(( cap * pct / 100 ))
      json=$("${LD[@]}" "$LOADGEN_BIN" "${lg_args[@]}" --rate "$rate")
      echo "$r $name $cap $wrk_p99 $pct $json" >> "$W/results"
    done
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p target/latency-report
python3 - "$W/results" "$STARTED" "$PLACEMENT" "$THREADS" "$CONNS" "$DURATION" "$CAP_DURATION" \
  "$LOAD_BEFORE" "$LOAD_AFTER" "$GATEHOUSE_BIN" "$ROUNDS" <<'PY' | tee target/latency-report/summary.md
import json, statistics, sys
results, started, placement, threads, conns, duration, cap_d, before, after, binary, rounds = sys.argv[1:]
runs = {}
for line in open(results):
    r, name, cap, wrk_p99, pct, js = line.split(" ", 5)
    runs.setdefault((name, int(pct)), []).append((int(cap), float(wrk_p99), json.loads(js)))
med = statistics.median
print(f"Latency at a fixed rate, {started}: {threads} worker thread(s) per proxy, {placement}; {conns} connections;")
print(f"per round and target: capacity = wrk closed loop for {cap_d} s, then gatehouse-loadgen (open loop) for {duration} s at")
print(f"50 % and at 80 % of it; {rounds} round(s), medians over rounds; Gatehouse binary {binary};")
print(f"load average before {before}, after {after}.\n")
print("| target | load | capacity req/s | wrk p99 ms at capacity | rate req/s | achieved / rate | p50 ms | p99 ms | p99.9 ms | max ms | errors | p99 ms per round | generator CPU |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (name, pct), v in runs.items():
    js = [x[2] for x in v]
    ratio = min(j["achieved_rps"] / j["rate"] for j in js)
    errors = sum(j["errors"] for j in js)
    unsent = sum(j["scheduled"] - j["sent"] for j in js)
    per_round = ", ".join(f"{j['p99_ms']:.1f}" for j in js)
    err = f"{errors}" + (f" ({unsent} not sent)" if unsent else "") + ("" if all(j["finished_in_bound"] for j in js) else " (hit its bound)")
    print(f"| {name} | {pct} % | {med(x[0] for x in v):,.0f} | {med(x[1] for x in v):.2f} | {med(j['rate'] for j in js):,.0f} | "
          f"{ratio:.2f}{'' if ratio >= 0.97 else ' (behind)'} | {med(j['p50_ms'] for j in js):.2f} | {med(j['p99_ms'] for j in js):.2f} | "
          f"{med(j['p999_ms'] for j in js):.2f} | {max(j['max_ms'] for j in js):.2f} | {err} | "
          f"{per_round} | {max(j['generator_cpu_pct'] for j in js):.0f} % |")
lags = [j["pacer_lag_p99_ms"] for v in runs.values() for _, _, j in v]
print("\nachieved / rate: the lowest over rounds; (behind): below 0.97 — the target, or the load generator sharing its CPU")
print("with the upstream (generator CPU: the highest over rounds), did not keep up, and latencies grow with the backlog.")
print(f"load generator's own pacing lateness (p99 of each run, counted in the latencies above): up to {max(lags):.2f} ms")
PY

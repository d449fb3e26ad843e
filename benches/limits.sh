#!/usr/bin/env bash
# Request limits (issue 24): the cost of a limit on the JWT route, in one run — the route alone, with a
# local limit (this replica's counts), and with a limit counted in Redis (one script per request) —
# interleaved rounds of wrk against one Gatehouse (1 worker thread) in front of NGINX, every request
# with the same token (so one key: the worst case for the local store's per-key lock, and one Redis
# key). The limits are set high enough never to refuse: what is measured is the counting.
#
#   benches/limits.sh [--rounds N] [--duration S] [--conns C]      (GATEHOUSE_BIN=… to use another binary)
#
# Prints req/s and p99 per route and round, then the medians and the ratios to the route without a
# limit (targets: local ≥ 0.95, Redis ≥ 0.7); a fourth route has the local limit without usage headers
# (what the two extra response headers cost wrk, which shares the machine). Only 127.0.0.1 is used.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3 DURATION=5 CONNS=32
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
. benches/common.sh
need_tools wrk nginx redis-server curl python3
GATEHOUSE_BIN=${GATEHOUSE_BIN:-target/release/gatehouse}
[ -x "$GATEHOUSE_BIN" ] || cargo build --release -p gatehouse --bin gatehouse

W=$(mktemp -d /tmp/gatehouse-limits-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$W"; }
trap cleanup EXIT INT TERM

UP=$(port) RD=$(port) GH=$(port) GHA=$(port)
mkdir -p "$W/up"
upstream_conf "$W/up" "$UP"
nginx -c "$W/up/nginx.conf" -p "$W/up" & pids+=($!)
redis-server --bind 127.0.0.1 --port "$RD" --save "" --appendonly no --dir "$W" --loglevel warning >/dev/null & pids+=($!)
gatehouse_conf "$W/gatehouse.toml" "$GH" "$GHA" "$UP" 1
cat >> "$W/gatehouse.toml" <<CONF
[caches.redis]
kind = "redis"
url = "redis://127.0.0.1:$RD/0"
timeout = "1s"
[limits.local]
key = { claim = "sub" }
rate = "1000000/s"
burst = 1000000
quota = "1000000000000/day"
[limits.quiet]
key = { claim = "sub" }
rate = "1000000/s"
burst = 1000000
quota = "1000000000000/day"
headers = "none"
[limits.shared]
key = { claim = "sub" }
rate = "1000000/s"
burst = 1000000
quota = "1000000000000/day"
store = "redis"
on_store_error = "deny"
[[routes]]
name = "jwt-local"
path_prefix = "/local"
upstream = "up"
connectors = ["jwt"]
limits = ["local"]
[[routes]]
name = "jwt-quiet"
path_prefix = "/quiet"
upstream = "up"
connectors = ["jwt"]
limits = ["quiet"]
[[routes]]
name = "jwt-redis"
path_prefix = "/redis"
upstream = "up"
connectors = ["jwt"]
limits = ["shared"]
CONF
RUST_LOG=warn "$GATEHOUSE_BIN" run --config "$W/gatehouse.toml" 2>"$W/gatehouse.log" & pids+=($!)
wait_for "Gatehouse ready" 60 curl -fsS "http://127.0.0.1:$GHA/readyz"
wait_for "redis" 30 redis-cli -p "$RD" ping
TOKEN=$(GATEHOUSE_BIN=$GATEHOUSE_BIN mint_token)
cat > "$W/bearer.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $TOKEN"
LUA
for path in jwt local quiet redis; do
  wait_for "route /$path" 30 curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$GH/$path"
done

to_us() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/,"",v); print v } else if (v ~ /ms$/) { sub(/ms$/,"",v); print v*1000 } else if (v ~ /s$/) { sub(/s$/,"",v); print v*1000000 } else print v }'; }
: > "$W/results"
for r in $(seq 1 "$ROUNDS"); do
  for name in jwt local quiet redis; do
    out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$W/bearer.lua" "http://127.0.0.1:$GH/$name")
    rps=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
    p99=$(to_us "$(awk '$1=="99%" {print $2}' <<< "$out")")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<< "$out")
    [ -z "$non2xx" ] || { echo "error: /$name answered $non2xx non-2xx in round $r" >&2; exit 1; }
    echo "$name $rps $p99" >> "$W/results"
    log "round $r/$ROUNDS  /$name  ${rps} req/s  p99 ${p99} us"
  done
done
python3 - "$W/results" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for name, rps, p99 in rows:
    by.setdefault(name, []).append((float(rps), float(p99)))
base = statistics.median(r for r, _ in by["jwt"])
labels = {"jwt": "JWT route, no limit", "local": "JWT route + local limit", "quiet": "JWT route + local limit, headers = \"none\"",
          "redis": "JWT route + Redis limit"}
print("\n| route | req/s (median of rounds) | ratio to no limit | p99 µs (median) |")
print("|---|---|---|---|")
for name in ("jwt", "local", "quiet", "redis"):
    rps = statistics.median(r for r, _ in by[name]); p99 = statistics.median(p for _, p in by[name])
    print(f"| {labels[name]} | {rps:,.0f} | {rps / base:.3f} | {p99:,.0f} |")
print("\nper round: " + "; ".join(f"{n}: " + ", ".join(f"{r:,.0f}" for r, _ in by[n]) for n in ("jwt", "local", "redis")))
PY

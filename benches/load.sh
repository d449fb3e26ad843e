#!/usr/bin/env bash
# Load benchmark on loopback: Gatehouse (public, JWT and warm-userinfo routes) against HAProxy (plain and
# jwt_verify) and NGINX (plain), with the same worker count, wrk from the same machine, interleaved rounds.
# Prints a table (median req/s, p50/p99 latency per target) and the ratios the performance issue tracks.
#
#   benches/load.sh [--threads N] [--duration SECONDS] [--rounds R] [--connections C] [--distinct N]
#                   [--no-pingap] [--no-engine] [--no-pin] [--no-tls]
#
# Then the TLS targets (benches/tls.sh, same threads/duration/rounds/connections/pinning): Gatehouse,
# HAProxy and NGINX terminating TLS with one ECDSA P-256 certificate; --no-tls skips them.
#
# When the machine has more cores than --threads, the proxies are pinned to the first --threads cores
# and wrk, the upstream and the IdP to the others (taskset), so every proxy gets the same CPU and the
# load generator never competes with it; --no-pin leaves placement to the scheduler.
#
# Only 127.0.0.1 is ever targeted; every process started is stopped by PID on exit. Pingap 0.13.1 (a
# Pingora-based proxy) is measured as well: $PINGAP_BIN if set, else a copy installed once with
# `cargo install pingap@0.13.1 --locked` into ~/.cache/gatehouse-bench/pingap (about 25 minutes on
# 2 cores, bounded to one hour); --no-pingap skips it.
#
# The engine A/B (benches/engine-ab): a hello proxy that only picks the upstream, built against Pingora
# 0.8.1 and 0.9.1 with Gatehouse's allocator and release profile, measured in the same rounds — it tells
# what the engine version costs apart from what Gatehouse adds; --no-engine skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=1 DURATION=5 ROUNDS=5 CONNS=32 DISTINCT=100000 WITH_PINGAP=1 PIN=1 WITH_TLS=1 WITH_ENGINE=1
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --distinct) DISTINCT=$2; shift 2 ;;
    --no-pingap) WITH_PINGAP=0; shift ;;
    --no-engine) WITH_ENGINE=0; shift ;;
    --no-pin) PIN=0; shift ;;
    --no-tls) WITH_TLS=0; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

. benches/common.sh
need_tools wrk nginx haproxy curl taskset
[ -x target/release/gatehouse ] && [ -x target/release/gatehouse-devkit ] || cargo build --release -p gatehouse -p gatehouse-testkit --bins

mkdir -p "$CACHE"
PINGAP=${PINGAP_BIN:-}
if [ -z "$PINGAP" ] && [ "$WITH_PINGAP" = 1 ]; then
  PINGAP=$CACHE/pingap/bin/pingap
  if [ ! -x "$PINGAP" ]; then
    need_tools protoc
    echo "installing Pingap 0.13.1 into $CACHE/pingap (once; about 25 minutes on 2 cores)…" >&2
    (unset CARGO_TARGET_DIR; timeout 3600 cargo install pingap@0.13.1 --locked --quiet --root "$CACHE/pingap") ||
      { echo "Pingap could not be installed; measuring without it" >&2; PINGAP=""; }
  fi
fi

[ "$WITH_ENGINE" = 0 ] || engine_build || { echo "the engine A/B did not build; measuring without it" >&2; WITH_ENGINE=0; }

CPUS=$(nproc)
PX=() LD=()
if [ "$PIN" = 1 ] && [ "$CPUS" -gt "$THREADS" ] && command -v taskset >/dev/null 2>&1; then
  PX=(taskset -c "0-$((THREADS - 1))") LD=(taskset -c "$THREADS-$((CPUS - 1))")
  PLACEMENT="proxies on CPU 0-$((THREADS - 1)), wrk + upstream + IdP on CPU $THREADS-$((CPUS - 1))"
else
  PLACEMENT="not pinned ($CPUS CPUs shared by everything)"
fi

W=$(mktemp -d /tmp/gatehouse-bench.XXXXXX)
pids=()
# SIGINT first (Pingora-based proxies shut down at once; SIGTERM alone starts their graceful period and
# Pingap outlived the script), then SIGTERM for the rest (a background job of a script ignores SIGINT).
cleanup() { for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$W"; }
trap cleanup EXIT INT TERM

UP=$(port) IDP=$(port) GH=$(port) GHA=$(port) HP=$(port) HJ=$(port) NG=$(port) PG=$(port) E8=$(port) E9=$(port)

# Upstream: NGINX answering 200 with a small body.
mkdir -p "$W/up" "$W/px" "$W/pingap"
upstream_conf "$W/up" "$UP"
"${LD[@]}" nginx -c "$W/up/nginx.conf" -p "$W/up" & pids+=($!)

# Identity provider for the userinfo route (warm cache: it is called once).
"${LD[@]}" target/release/gatehouse-devkit --idp 127.0.0.1:$IDP >/dev/null & pids+=($!)

gatehouse_conf "$W/gatehouse.toml" "$GH" "$GHA" "$UP" "$THREADS" "$IDP"
RUST_LOG=warn "${PX[@]}" target/release/gatehouse run --config "$W/gatehouse.toml" 2>"$W/gatehouse.log" & GH_PID=$!; pids+=($GH_PID)

cat > "$W/haproxy.cfg" <<CONF
global
  nbthread $THREADS
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
backend up
  server s1 127.0.0.1:$UP
frontend plain
  bind 127.0.0.1:$HP
  default_backend up
frontend jwt
  bind 127.0.0.1:$HJ
  http-request set-var(txn.bearer) http_auth_bearer
  http-request deny unless { var(txn.bearer),jwt_header_query('\$.alg') -m str RS256 }
  http-request deny unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str $ISS }
  http-request deny unless { var(txn.bearer),jwt_payload_query('\$.aud') -m str $AUD }
  http-request deny unless { var(txn.bearer),jwt_verify("RS256","$PWD/$PUB") -m int 1 }
  http-request set-header X-User-Id %[var(txn.bearer),jwt_payload_query('\$.sub')]
  default_backend up
CONF
"${PX[@]}" haproxy -f "$W/haproxy.cfg" -db >"$W/haproxy.log" 2>&1 & pids+=($!)

cat > "$W/px/nginx.conf" <<CONF
worker_processes $THREADS; daemon off; pid $W/px/nginx.pid; error_log $W/px/error.log;
events { worker_connections 4096; }
http { access_log off;
  upstream up { server 127.0.0.1:$UP; keepalive 64; }
  server { listen 127.0.0.1:$NG; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
"${PX[@]}" nginx -c "$W/px/nginx.conf" -p "$W/px" & pids+=($!)

wait_http() { for _ in $(seq 1 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done; echo "not answering: $1" >&2; exit 1; }
wait_http "http://127.0.0.1:$UP/"; wait_http "http://127.0.0.1:$GHA/readyz"; wait_http "http://127.0.0.1:$HP/"; wait_http "http://127.0.0.1:$NG/"

# Pingap: started once the upstream answers (its health check would mark a down upstream unhealthy).
# Same worker count and, like Gatehouse's default, one runtime per worker (work stealing off).
if [ -n "$PINGAP" ]; then
  pingap_conf "$W/pingap" "$PG" "$UP" "$THREADS"
  "${PX[@]}" "$PINGAP" -c "$W/pingap/pingap.toml" >"$W/pingap.log" 2>&1 & pids+=($!)
  wait_http "http://127.0.0.1:$PG/"
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PG/"); [ "$code" = 200 ] || { echo "sanity: pingap answered $code (see $W/pingap.log)" >&2; exit 1; }
fi

if [ "$WITH_ENGINE" = 1 ]; then
  "${PX[@]}" "$ENGINE_DIR/hello-pingora-0_8" "127.0.0.1:$E8" "127.0.0.1:$UP" "$THREADS" >"$W/hello-0_8.log" 2>&1 & pids+=($!)
  "${PX[@]}" "$ENGINE_DIR/hello-pingora-0_9" "127.0.0.1:$E9" "127.0.0.1:$UP" "$THREADS" >"$W/hello-0_9.log" 2>&1 & pids+=($!)
  wait_http "http://127.0.0.1:$E8/"; wait_http "http://127.0.0.1:$E9/"
fi

TOKEN=$(mint_token)
TOKENS="$CACHE/tokens-$DISTINCT-$(date +%Y%m%d).txt"
if [ ! -s "$TOKENS" ]; then
  echo "minting $DISTINCT distinct tokens (cached in $TOKENS)…" >&2
  target/release/gatehouse token mint --key "$KEY" --kid k1 --iss "$ISS" --aud "$AUD" --sub bench --claim tenant=t1 --exp 20h --count "$DISTINCT" > "$TOKENS.tmp"
  mv "$TOKENS.tmp" "$TOKENS"
fi
cat > "$W/bearer.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $TOKEN"
LUA
cat > "$W/opaque.lua" <<LUA
wrk.headers["Authorization"] = "Bearer demo-opaque-token"
LUA
cat > "$W/distinct.lua" <<LUA
local tokens = {}
for line in io.lines("$TOKENS") do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. tokens[i] })
end
LUA
for u in "http://127.0.0.1:$GH/jwt" "http://127.0.0.1:$HJ/"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$u"); [ "$code" = 200 ] || { echo "sanity: $u answered $code" >&2; exit 1; }
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${TOKEN}x" "$u"); [ "$code" != 200 ] || { echo "sanity: $u accepted a forged token" >&2; exit 1; }
done

# name|url|lua
targets=(
  "gatehouse-public|http://127.0.0.1:$GH/public|"
  "gatehouse-jwt|http://127.0.0.1:$GH/jwt|$W/bearer.lua"
  "gatehouse-userinfo|http://127.0.0.1:$GH/ui|$W/opaque.lua"
  "gatehouse-jwt-distinct|http://127.0.0.1:$GH/jwt|$W/distinct.lua"
  "haproxy-plain|http://127.0.0.1:$HP/|"
  "haproxy-jwt|http://127.0.0.1:$HJ/|$W/bearer.lua"
  "haproxy-jwt-distinct|http://127.0.0.1:$HJ/|$W/distinct.lua"
  "nginx-plain|http://127.0.0.1:$NG/|"
)
[ -n "$PINGAP" ] && targets+=("pingap-plain|http://127.0.0.1:$PG/|")
[ "$WITH_ENGINE" = 1 ] && targets+=("hello-pingora-0.8|http://127.0.0.1:$E8/|" "hello-pingora-0.9|http://127.0.0.1:$E9/|")

# One wrk run: appends "name req/s p50 p99" to the file $1.
run_wrk() {
  local file=$1 name=$2 url=$3 lua=$4 conns=$5 r=$6
  local args=(-t1 -c"$conns" -d"${DURATION}s" --latency)
  [ -n "$lua" ] && args+=(-s "$lua")
  local out; out=$("${LD[@]}" wrk "${args[@]}" "$url")
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
  p50=$(to_us "$(awk '$1=="50%" {print $2}' <<< "$out")")
  p99=$(to_us "$(awk '$1=="99%" {print $2}' <<< "$out")")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<< "$out")
  [ -z "$non2xx" ] || echo "warning: $name had $non2xx non-2xx answers in round $r" >&2
  echo "$name $rps $p50 $p99" >> "$file"
  echo "round $r/$ROUNDS  $name  c=$conns  ${rps} req/s  p99 ${p99} us" >&2
}
to_us() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/,"",v); print v } else if (v ~ /ms$/) { sub(/ms$/,"",v); print v*1000 } else if (v ~ /s$/) { sub(/s$/,"",v); print v*1000000 } else print v }'; }
: > "$W/results"
for r in $(seq 1 "$ROUNDS"); do
  for t in "${targets[@]}"; do
    IFS='|' read -r name url lua <<< "$t"
    run_wrk "$W/results" "$name" "$url" "$lua" "$CONNS" "$r"
  done
done
# Latency added by a cached check, measured without queueing: one connection, one request at a time.
: > "$W/latency"
for r in $(seq 1 "$ROUNDS"); do
  run_wrk "$W/latency" gatehouse-public "http://127.0.0.1:$GH/public" "" 1 "$r"
  run_wrk "$W/latency" gatehouse-jwt "http://127.0.0.1:$GH/jwt" "$W/bearer.lua" 1 "$r"
  run_wrk "$W/latency" gatehouse-userinfo "http://127.0.0.1:$GH/ui" "$W/opaque.lua" 1 "$r"
done
RSS_KB=$(awk '/VmRSS/ {print $2}' /proc/$GH_PID/status)
CACHED=$(curl -s "http://127.0.0.1:$GHA/metrics" | awk '/^gatehouse_token_cache_entries\{connector="jwt"\}/ {print $2}')

python3 - "$W/results" "$RSS_KB" "$THREADS" "${CACHED:-?}" "$PLACEMENT" "$W/latency" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    n, rps, p50, p99 = line.split()
    rows[n].append((float(rps), float(p50), float(p99)))
med = {n: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v), statistics.median(r[2] for r in v)) for n, v in rows.items()}
print(f"\nthreads={sys.argv[3]}, {sys.argv[5]}  (median of rounds; latency in microseconds)")
print(f"{'target':<26}{'req/s':>12}{'p50 us':>10}{'p99 us':>10}")
for n, (rps, p50, p99) in med.items():
    print(f"{n:<26}{rps:>12.0f}{p50:>10.0f}{p99:>10.0f}")
def verdict(v, target):
    op, bound = target.split()
    ok = v >= float(bound) if op == ">=" else v < float(bound)
    return "met" if ok else "NOT MET"
def ratio(a, b, target):
    if a in med and b in med:
        v = med[a][0] / med[b][0]
        print(f"{a + ' / ' + b:<52}{v:>7.2f}   target {target:<7} {verdict(v, target)}")
print("\nratios (issue 14 targets: public >= 1.0 x Pingap, >= 0.8 x NGINX; JWT >= 2.0 x HAProxy; distinct >= 1.2 x HAProxy)")
ratio("gatehouse-jwt", "haproxy-jwt", ">= 2.0")
ratio("gatehouse-jwt-distinct", "haproxy-jwt-distinct", ">= 1.2")
ratio("gatehouse-jwt", "gatehouse-public", ">= 0.90")
ratio("gatehouse-userinfo", "gatehouse-public", ">= 0.90")
ratio("gatehouse-public", "pingap-plain", ">= 1.0")
ratio("gatehouse-public", "nginx-plain", ">= 0.80")
def info(a, b, what):
    if a in med and b in med:
        print(f"{a + ' / ' + b:<52}{med[a][0] / med[b][0]:>7.2f}   {what}")
print("\nengine A/B (a hello proxy that only picks the upstream; no targets)")
info("hello-pingora-0.9", "hello-pingora-0.8", "Pingora 0.9.1 vs 0.8.1, same code")
info("gatehouse-public", "hello-pingora-0.9", "Gatehouse's own share on its engine")
info("pingap-plain", "hello-pingora-0.8", "Pingap's own share on its engine")
lat = collections.defaultdict(list)
for line in open(sys.argv[6]):
    n, rps, p50, p99 = line.split()
    lat[n].append((float(p50), float(p99)))
lmed = {n: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for n, v in lat.items()}
print("\none connection, one request at a time (median of rounds, microseconds)")
print(f"{'target':<26}{'p50 us':>10}{'p99 us':>10}")
for n, (p50, p99) in lmed.items():
    print(f"{n:<26}{p50:>10.0f}{p99:>10.0f}")
print()
for n, what in (("gatehouse-jwt", "JWT"), ("gatehouse-userinfo", "userinfo")):
    if n in lmed and "gatehouse-public" in lmed:
        added = lmed[n][1] - lmed['gatehouse-public'][1]
        print(f"{'p99 added by a cached ' + what + ' check (us)':<52}{added:>7.0f}   target < 100   {verdict(added, '< 100')}")
rss = int(sys.argv[2]) / 1024
print(f"{'gatehouse RSS after the run (MiB, ' + sys.argv[4] + ' tokens cached)':<52}{rss:>7.1f}   target < 150   {verdict(rss, '< 150')}")
PY
if [ "$WITH_TLS" = 1 ]; then
  cleanup; pids=()
  tls_args=(--threads "$THREADS" --duration "$DURATION" --rounds "$ROUNDS" --connections "$CONNS")
  [ "$PIN" = 1 ] || tls_args+=(--no-pin)
  benches/tls.sh "${tls_args[@]}"
fi

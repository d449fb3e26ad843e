#!/usr/bin/env bash
# Memory per client connection and the throughput cost of the settings that bound it (issue 27).
# One release-optimised Gatehouse (`--profile soak`: release without fat LTO) in front of NGINX, on
# loopback, `threads = 1`, measured from /proc/PID/status:
#   1. RSS per connection: N plain HTTP/1.1 connections that sent nothing, N kept alive after one
#      request, N h2c connections after the preface and SETTINGS, N TLS connections (HTTP/1.1 by ALPN)
#      idle after the handshake, and RSS again once they are closed (after CLOSE_WAIT seconds of one
#      request per second);
#   2. requests per second with wrk (keep-alive, 50 connections, WRK_SECONDS each) for the shipped
#      defaults (read_buffer_bytes = 0, the allocator collector every second), Pingora's 64 KiB read
#      buffer, no collector, and purging on every free (MIMALLOC_PURGE_DELAY=0, the alternative the
#      collector replaced), in the same run, printed as ratios to the defaults.
#
#   N=1000 WRK_SECONDS=10 CLOSE_WAIT=5 benches/connection_memory.sh
#   GATEHOUSE_BIN=… uses that binary instead of building `--profile soak`
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000} WRK_SECONDS=${WRK_SECONDS:-10} CLOSE_WAIT=${CLOSE_WAIT:-5}
. benches/common.sh
need_tools wrk nginx curl python3
if [ -z "${GATEHOUSE_BIN:-}" ]; then cargo build --profile soak -p gatehouse --bins; fi
GATEHOUSE_BIN=${GATEHOUSE_BIN:-target/soak/gatehouse}

W=$(mktemp -d /tmp/gatehouse-connmem.XXXXXX)
pids=() GH=""
cleanup() { for p in "${pids[@]}" $GH; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

UP=$(port)
mkdir -p "$W/up"
upstream_conf "$W/up" "$UP"
nginx -c "$W/up/nginx.conf" -p "$W/up" & pids+=($!)

scripts/gen-example-certs.sh "$W/certs" >/dev/null
TP=$(port)

# start_gh READ_BUFFER COLLECT_MS [PURGE_DELAY] — Gatehouse on fresh ports with h2c; sets GH, GP
# (listen), GA (admin).
start_gh() {
  GP=$(port) GA=$(port)
  gatehouse_conf "$W/gh.toml" "$GP" "$GA" "$UP" 1
  sed -i "s/^threads = 1$/threads = 1\nh2c = true\nread_buffer_bytes = $1/" "$W/gh.toml"
  TP=$(port)
  printf '[[server.tls]]\nlisten = ["127.0.0.1:%s"]\ncertificates = [{ cert_file = "%s", key_file = "%s" }]\n' \
    "$TP" "$W/certs/api.pem" "$W/certs/api.key" > "$W/tls.toml"
  python3 - "$W/gh.toml" "$W/tls.toml" <<'PY'
import sys
cfg, tls = open(sys.argv[1]).read(), open(sys.argv[2]).read()
head, sep, rest = cfg.partition("\n[upstreams.")
open(sys.argv[1], "w").write(head + "\n" + tls + sep + rest)
PY
  local env=(GATEHOUSE_ALLOCATOR_COLLECT_MS="$2")
  [ -z "${3:-}" ] || env+=(MIMALLOC_PURGE_DELAY="$3")
  env "${env[@]}" "$GATEHOUSE_BIN" --config "$W/gh.toml" > "$W/gh.log" 2>&1 & GH=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$GP/public/" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "Gatehouse did not start"; cat "$W/gh.log"; exit 1
}
stop_gh() { kill "$GH"; wait "$GH" 2>/dev/null || true; GH=""; }

echo "== memory per connection (N = $N, threads = 1, shipped defaults: read_buffer_bytes = 0, collector every 1 s)"
start_gh 0 1000
python3 benches/tools/connection_memory.py "$GH" "$GP" "$GA" "$N" "$CLOSE_WAIT" "$TP" "$W/certs/ca.pem"
stop_gh

echo
echo "== requests per second, GET /public/ (wrk -c 50 -t 1, ${WRK_SECONDS}s, keep-alive)"
declare -A RPS
for variant in "0 1000" "65536 1000" "0 0" "0 0 0"; do
  set -- $variant
  start_gh "$@"
  wrk -t1 -c50 -d2s "http://127.0.0.1:$GP/public/" >/dev/null   # warm-up
  r=$(wrk -t1 -c50 -d"${WRK_SECONDS}s" "http://127.0.0.1:$GP/public/" | awk '/Requests\/sec/ {print $2}')
  RPS["$variant"]=$r
  printf '  read_buffer_bytes %-6s collector %-5s purge delay %-8s %10s req/s\n' "$1" "${2/#0/off}" "${3:-default}" "$r"
  stop_gh
done
python3 - "${RPS[0 1000]}" "${RPS[65536 1000]}" "${RPS[0 0]}" "${RPS[0 0 0]}" <<'PY'
import sys
d, buf, nocollect, purge0 = map(float, sys.argv[1:])
print(f"  defaults / Pingora's 64 KiB read buffer: {d / buf:.3f}")
print(f"  defaults / no collector:                 {d / nocollect:.3f}")
print(f"  purge on every free / defaults:          {purge0 / d:.3f}")
PY

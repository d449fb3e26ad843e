#!/usr/bin/env bash
# Flame graphs of one proxied request's CPU time: `perf record` (software clock, so it works in VMs
# without hardware counters; DWARF call graphs, since release builds keep no frame pointers) of each
# proxy serving wrk on loopback, folded and drawn by inferno into SVGs a reader opens in a browser.
#
#   benches/flamegraph.sh [--seconds S] [--out DIR]        (default 5 s, docs/flamegraphs)
#
# Draws: Gatehouse's public route, Gatehouse's JWT route (cached token), and the engine A/B's hello
# proxy on Pingora 0.9.1 (benches/engine-ab) — the engine alone, for comparison. Only 127.0.0.1 is
# used; everything started is stopped on exit. Installs inferno (cargo) and perf (Debian) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=5 OUT=docs/flamegraphs
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

. benches/common.sh
need_tools wrk nginx curl perf
command -v inferno-flamegraph >/dev/null 2>&1 || cargo install inferno --locked --quiet
[ -x target/release/gatehouse ] || cargo build --release -p gatehouse --bin gatehouse
engine_build

W=$(mktemp -d /tmp/gatehouse-flame.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$W"; }
trap cleanup EXIT INT TERM

UP=$(port) GH=$(port) GHA=$(port) E9=$(port)
mkdir -p "$W/up" "$OUT"
upstream_conf "$W/up" "$UP"
nginx -c "$W/up/nginx.conf" -p "$W/up" & pids+=($!)
gatehouse_conf "$W/gatehouse.toml" "$GH" "$GHA" "$UP" 1
RUST_LOG=warn target/release/gatehouse run --config "$W/gatehouse.toml" 2>"$W/gatehouse.log" & GH_PID=$!; pids+=($GH_PID)
"$ENGINE_DIR/hello-pingora-0_9" "127.0.0.1:$E9" "127.0.0.1:$UP" 1 >"$W/hello.log" 2>&1 & E9_PID=$!; pids+=($E9_PID)
for u in "http://127.0.0.1:$GH/public" "http://127.0.0.1:$E9/"; do
  for _ in $(seq 1 200); do curl -sf -o /dev/null "$u" && break; sleep 0.05; done
done
TOKEN=$(mint_token)
printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$TOKEN" > "$W/bearer.lua"

# flame NAME PID URL [LUA] — records PID while wrk loads URL, draws $OUT/NAME.svg.
flame() {
  local name=$1 pid=$2 url=$3 lua=${4:-}
  local args=(-t1 -c32 -d"$((SECS + 2))s"); [ -n "$lua" ] && args+=(-s "$lua")
  wrk "${args[@]}" "$url" >"$W/$name.wrk" & local wp=$!
  sleep 1
  perf record -q -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$pid" -o "$W/$name.data" -- sleep "$SECS" 2>/dev/null
  wait "$wp"
  perf script -i "$W/$name.data" 2>/dev/null | inferno-collapse-perf > "$W/$name.folded"
  inferno-flamegraph --title "$name: $(awk '/Requests\/sec/ {print $2}' "$W/$name.wrk") req/s under perf, wrk -c32, 1 worker" \
    --width 1600 --minwidth 1 < "$W/$name.folded" > "$OUT/$name.svg"
  echo "$OUT/$name.svg  ($(wc -l < "$W/$name.folded") stacks)"
}
flame gatehouse-public "$GH_PID" "http://127.0.0.1:$GH/public"
flame gatehouse-jwt "$GH_PID" "http://127.0.0.1:$GH/jwt" "$W/bearer.lua"
flame hello-pingora-0.9 "$E9_PID" "http://127.0.0.1:$E9/public"
